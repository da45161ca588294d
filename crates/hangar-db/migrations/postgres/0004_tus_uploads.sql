-- Resumable (tus) uploads, SPEC §9.1: the offset, owner, target and expiry of each upload; its bytes
-- are the blob store's partial upload of the same id. (SQLite 0008.)
CREATE TABLE tus_uploads (
    id              TEXT PRIMARY KEY,
    owner_id        BIGINT NOT NULL,
    length          BIGINT NOT NULL CHECK (length >= 0),
    "offset"        BIGINT NOT NULL DEFAULT 0 CHECK ("offset" >= 0 AND "offset" <= length),
    metadata        TEXT NOT NULL,
    file_name       TEXT NOT NULL,
    content_type    TEXT NOT NULL,
    -- the target: an attachment (which goes with the upload when deleted), or a space's path
    attachment_id   BIGINT REFERENCES attachments(id) ON DELETE CASCADE,
    space_id        TEXT COLLATE "C" REFERENCES spaces(id) ON DELETE CASCADE,
    path            TEXT,
    declared_sha256 TEXT,
    state           TEXT NOT NULL CHECK (state IN ('receiving', 'completing', 'done')),
    -- a request writing bytes holds the upload until then
    lease_until     BIGINT,
    expires_utc     BIGINT NOT NULL,
    created_utc     BIGINT NOT NULL,
    CHECK ((attachment_id IS NULL) <> (space_id IS NULL))
);
