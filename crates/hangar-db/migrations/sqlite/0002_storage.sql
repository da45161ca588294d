-- Workspace storage: path-addressed files and directories per space, quota reservations, two-stage
-- uploads awaiting their bytes, and the outbox of domain events.

-- Directories are rows too, so that listing, conflicts (file vs directory) and moves are plain SQL.
-- parent is '' at the top level. TEXT compares byte for byte (BINARY collation), which is the order
-- listings promise.
CREATE TABLE storage_entries (
    space_id     TEXT NOT NULL REFERENCES spaces(id) ON DELETE CASCADE,
    path         TEXT NOT NULL,
    parent       TEXT NOT NULL,
    name         TEXT NOT NULL,
    kind         TEXT NOT NULL CHECK (kind IN ('file', 'dir')),
    size         INTEGER NOT NULL DEFAULT 0,
    content_type TEXT,
    sha256       TEXT,
    meta         TEXT,
    created_utc  INTEGER NOT NULL,
    modified_utc INTEGER NOT NULL,
    PRIMARY KEY (space_id, path)
);
CREATE INDEX storage_entries_listing ON storage_entries(space_id, parent, name);

-- Bytes promised to uploads in progress; quota checks count them with the space's usage.
CREATE TABLE storage_reservations (
    id          INTEGER PRIMARY KEY,
    space_id    TEXT NOT NULL REFERENCES spaces(id) ON DELETE CASCADE,
    bytes       INTEGER NOT NULL CHECK (bytes >= 0),
    -- set for reservations of two-stage uploads, which outlive the request that made them
    upload_id   TEXT,
    expires_utc INTEGER NOT NULL
);
CREATE INDEX storage_reservations_space ON storage_reservations(space_id);

CREATE TABLE storage_uploads (
    id             TEXT PRIMARY KEY,
    space_id       TEXT NOT NULL REFERENCES spaces(id) ON DELETE CASCADE,
    path           TEXT NOT NULL,
    size           INTEGER NOT NULL,
    content_type   TEXT NOT NULL,
    meta           TEXT NOT NULL,
    uploader_id    INTEGER NOT NULL,
    reservation_id INTEGER NOT NULL,
    state          TEXT NOT NULL CHECK (state IN ('pending', 'receiving', 'done')),
    expires_utc    INTEGER NOT NULL,
    created_utc    INTEGER NOT NULL
);

-- Domain events, written in the same transaction as the change they describe; delivered later.
CREATE TABLE events (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    id          TEXT NOT NULL UNIQUE,
    event_type  TEXT NOT NULL,
    space_id    TEXT,
    actor_id    INTEGER,
    payload     TEXT NOT NULL,
    created_utc INTEGER NOT NULL
);
