-- Every small upload inserts a pin in one commit and deletes it in the next, and each of those
-- commits wrote a page of each of the pins' four B-trees: the table (by row id), its key, and the
-- indexes by hash and by expiry. Keyed by its own id (time-ordered), the table is one tree; the
-- expiry index served only the chore that removes expired pins once a minute, which now reads the
-- table (a handful of rows: pins live as long as an upload). The index by hash, which the collector
-- asks, holds the expiry too, so that "pinned now?" is answered from it alone.
CREATE TABLE blob_pins_new (
    id          TEXT PRIMARY KEY,
    sha256      TEXT NOT NULL,
    expires_utc INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO blob_pins_new (id, sha256, expires_utc) SELECT id, sha256, expires_utc FROM blob_pins;
DROP TABLE blob_pins;
ALTER TABLE blob_pins_new RENAME TO blob_pins;
CREATE INDEX blob_pins_sha256 ON blob_pins(sha256, expires_utc);
