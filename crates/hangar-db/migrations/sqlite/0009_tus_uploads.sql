-- Resumable (tus) uploads, SPEC §9.1: the offset, owner, target and expiry of each upload; its bytes
-- are the blob store's partial upload of the same id. (PostgreSQL 0003.)
CREATE TABLE tus_uploads (
    id              TEXT PRIMARY KEY,
    owner_id        INTEGER NOT NULL,
    length          INTEGER NOT NULL CHECK (length >= 0),
    "offset"        INTEGER NOT NULL DEFAULT 0 CHECK ("offset" >= 0 AND "offset" <= length),
    metadata        TEXT NOT NULL,
    file_name       TEXT NOT NULL,
    content_type    TEXT NOT NULL,
    -- the target: an attachment (which goes with the upload when deleted), or a space's path
    attachment_id   INTEGER REFERENCES attachments(id) ON DELETE CASCADE,
    space_id        TEXT REFERENCES spaces(id) ON DELETE CASCADE,
    path            TEXT,
    declared_sha256 TEXT,
    state           TEXT NOT NULL CHECK (state IN ('receiving', 'completing', 'done')),
    -- a request writing bytes holds the upload until then
    lease_until     INTEGER,
    expires_utc     INTEGER NOT NULL,
    created_utc     INTEGER NOT NULL,
    CHECK ((attachment_id IS NULL) <> (space_id IS NULL))
);
