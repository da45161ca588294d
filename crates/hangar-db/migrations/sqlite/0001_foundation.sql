-- Identity, spaces, chat, projects and attachments: the foundation schema.

CREATE TABLE members (
    id            INTEGER PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    display_name  TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('admin', 'member')),
    created_utc   INTEGER NOT NULL
);

CREATE TABLE sessions (
    token_hash  TEXT PRIMARY KEY,
    member_id   INTEGER NOT NULL REFERENCES members(id) ON DELETE CASCADE,
    expires_utc INTEGER NOT NULL
);

CREATE TABLE personal_tokens (
    id             INTEGER PRIMARY KEY,
    member_id      INTEGER NOT NULL REFERENCES members(id) ON DELETE CASCADE,
    name           TEXT NOT NULL,
    token_hash     TEXT NOT NULL UNIQUE,
    scope          TEXT NOT NULL,
    expires_utc    INTEGER,
    created_utc    INTEGER NOT NULL,
    last_used_utc  INTEGER
);
CREATE INDEX personal_tokens_member ON personal_tokens(member_id);

CREATE TABLE spaces (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    quota_bytes INTEGER,
    used_bytes  INTEGER NOT NULL DEFAULT 0,
    created_utc INTEGER NOT NULL
);

CREATE TABLE space_members (
    space_id  TEXT NOT NULL REFERENCES spaces(id) ON DELETE CASCADE,
    member_id INTEGER NOT NULL REFERENCES members(id) ON DELETE CASCADE,
    PRIMARY KEY (space_id, member_id)
);

CREATE TABLE channels (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL,
    created_utc INTEGER NOT NULL
);

CREATE TABLE channel_members (
    channel_id INTEGER NOT NULL REFERENCES channels(id) ON DELETE CASCADE,
    member_id  INTEGER NOT NULL REFERENCES members(id) ON DELETE CASCADE,
    PRIMARY KEY (channel_id, member_id)
);

-- seq orders messages within the installation (ids are random, so they cannot).
CREATE TABLE messages (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    id          INTEGER NOT NULL UNIQUE,
    channel_id  INTEGER NOT NULL REFERENCES channels(id) ON DELETE CASCADE,
    author_id   INTEGER NOT NULL REFERENCES members(id),
    text        TEXT NOT NULL,
    created_utc INTEGER NOT NULL
);
CREATE INDEX messages_channel ON messages(channel_id, seq);

CREATE TABLE projects (
    id          INTEGER PRIMARY KEY,
    key         TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    next_number INTEGER NOT NULL DEFAULT 1,
    created_utc INTEGER NOT NULL
);

CREATE TABLE project_members (
    project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    member_id  INTEGER NOT NULL REFERENCES members(id) ON DELETE CASCADE,
    PRIMARY KEY (project_id, member_id)
);

CREATE TABLE issues (
    id          INTEGER PRIMARY KEY,
    project_id  INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    number      INTEGER NOT NULL,
    title       TEXT NOT NULL,
    status      TEXT NOT NULL,
    created_utc INTEGER NOT NULL,
    updated_utc INTEGER NOT NULL,
    UNIQUE (project_id, number)
);

-- One row per stored blob; refcount counts every attachment (and, later, storage entry) using it.
CREATE TABLE blobs (
    sha256   TEXT PRIMARY KEY,
    size     INTEGER NOT NULL,
    refcount INTEGER NOT NULL CHECK (refcount >= 0)
);

CREATE TABLE attachments (
    id            INTEGER PRIMARY KEY,
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
    room_id       INTEGER
);
CREATE INDEX attachments_uploader ON attachments(uploader_id);

CREATE TABLE message_attachments (
    message_id    INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    attachment_id INTEGER NOT NULL REFERENCES attachments(id) ON DELETE CASCADE,
    position      INTEGER NOT NULL,
    class_name    TEXT NOT NULL,
    details       TEXT NOT NULL,
    PRIMARY KEY (message_id, attachment_id)
);
CREATE INDEX message_attachments_attachment ON message_attachments(attachment_id);

CREATE TABLE issue_attachments (
    issue_id      INTEGER NOT NULL REFERENCES issues(id) ON DELETE CASCADE,
    attachment_id INTEGER NOT NULL REFERENCES attachments(id) ON DELETE CASCADE,
    position      INTEGER NOT NULL,
    class_name    TEXT NOT NULL,
    details       TEXT NOT NULL,
    PRIMARY KEY (issue_id, attachment_id)
);
CREATE INDEX issue_attachments_attachment ON issue_attachments(attachment_id);
