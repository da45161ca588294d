-- The attachments table rebuilt with its rows in insertion order (see `migrate.rs`): run by
-- `migrate::attachments_in_insert_order` inside one transaction on a connection with foreign keys
-- off, as SQLite's procedure for schema changes that ALTER TABLE cannot make asks
-- (https://sqlite.org/lang_altertable.html#otheralter).
CREATE TABLE attachments_in_insert_order (
    -- the row's place in insertion order: the table's rowid
    seq           INTEGER PRIMARY KEY,
    -- the public id (random, SPEC §2), which the links, share links and tus uploads refer to
    id            INTEGER NOT NULL UNIQUE,
    uploader_id   INTEGER NOT NULL REFERENCES members(id),
    file_name     TEXT NOT NULL,
    content_type  TEXT NOT NULL,
    size          INTEGER NOT NULL,
    sha256        TEXT,
    -- set when the attachment holds a reference on blobs(sha256)
    stores_blob   INTEGER NOT NULL DEFAULT 0,
    state         TEXT NOT NULL,
    media_context TEXT,
    has_thumbnail INTEGER NOT NULL DEFAULT 0,
    public        INTEGER NOT NULL DEFAULT 0,
    link_version  INTEGER NOT NULL DEFAULT 0,
    created_utc   INTEGER NOT NULL,
    modified_utc  INTEGER NOT NULL,
    message_id    INTEGER,
    room_id       INTEGER,
    detached_utc  INTEGER,
    -- the number of the blob the attachment holds (blobs.seq), when it holds one
    blob_seq      INTEGER
);
INSERT INTO attachments_in_insert_order (id, uploader_id, file_name, content_type, size, sha256,
    stores_blob, state, media_context, has_thumbnail, public, link_version, created_utc,
    modified_utc, message_id, room_id, detached_utc, blob_seq)
SELECT id, uploader_id, file_name, content_type, size, sha256, stores_blob, state, media_context,
    has_thumbnail, public, link_version, created_utc, modified_utc, message_id, room_id,
    detached_utc, blob_seq
FROM attachments ORDER BY created_utc, id;
DROP TABLE attachments;
ALTER TABLE attachments_in_insert_order RENAME TO attachments;
CREATE INDEX attachments_uploader ON attachments(uploader_id, created_utc);
CREATE INDEX attachments_blob ON attachments(blob_seq) WHERE blob_seq IS NOT NULL;
