-- The durable job queue, the blob lifecycle decided in the database, and leases instead of start-up
-- clean-ups (SPEC §10, §13).

-- One row per queued, running or failed job; a job that succeeds is deleted.
CREATE TABLE jobs (
    id          INTEGER PRIMARY KEY,
    kind        TEXT NOT NULL,
    payload     TEXT NOT NULL,
    -- at most one queued job per key (periodic chores, one collection per blob)
    unique_key  TEXT UNIQUE,
    state       TEXT NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'running', 'failed')),
    attempts    INTEGER NOT NULL DEFAULT 0,
    run_after   INTEGER NOT NULL,
    lease_owner TEXT,
    lease_until INTEGER,
    last_error  TEXT,
    created_utc INTEGER NOT NULL
);
CREATE INDEX jobs_due ON jobs(state, run_after);

-- A blob whose refcount reached 0 keeps its row (released_utc set) until the collector deletes its
-- bytes; `deleting` marks the moment between deciding and finishing, when no upload may pin it.
ALTER TABLE blobs ADD COLUMN released_utc INTEGER;
ALTER TABLE blobs ADD COLUMN deleting INTEGER NOT NULL DEFAULT 0;

-- An upload pins the blob it is about to commit, so that the collector keeps those bytes.
CREATE TABLE blob_pins (
    id          TEXT PRIMARY KEY,
    sha256      TEXT NOT NULL,
    expires_utc INTEGER NOT NULL
);
CREATE INDEX blob_pins_sha256 ON blob_pins(sha256);
CREATE INDEX blob_pins_expiry ON blob_pins(expires_utc);

-- A two-stage upload receiving its bytes holds a lease: another node may take it over after it ends.
ALTER TABLE storage_uploads ADD COLUMN lease_until INTEGER;
