-- Image previews and video posters, SPEC §9.3 (SQLite 0012). Keyed by the source's bytes, not by
-- attachment: identical files share their previews. A source has one row once it was looked at:
-- `ready` (its previews exist; width and height of the original as displayed) or `none` (not a
-- decodable image, or past the limits). Each preview is a blob of its own, referenced like any other
-- (its `blobs.refcount` counts the row) unless it is the source's own bytes. Both go, and drop their
-- blob references, in the transaction where the source's last reference goes.
CREATE TABLE preview_sources (
    sha256      TEXT PRIMARY KEY,
    state       TEXT NOT NULL CHECK (state IN ('ready', 'none')),
    width       BIGINT,
    height      BIGINT,
    created_utc BIGINT NOT NULL
);

CREATE TABLE previews (
    source_sha256 TEXT NOT NULL REFERENCES preview_sources(sha256) ON DELETE CASCADE,
    size          BIGINT NOT NULL,
    sha256        TEXT NOT NULL,
    bytes         BIGINT NOT NULL,
    content_type  TEXT NOT NULL,
    width         BIGINT NOT NULL,
    height        BIGINT NOT NULL,
    -- whether this row holds a reference on blobs(sha256)
    counted       BOOLEAN NOT NULL,
    PRIMARY KEY (source_sha256, size)
);
CREATE INDEX previews_by_blob ON previews (sha256);
