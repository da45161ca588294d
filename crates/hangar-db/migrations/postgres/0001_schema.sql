-- Hangar's schema on PostgreSQL: the SQLite migrations 0001..0006 as one, since no PostgreSQL
-- installation predates it. Later changes are new files here, beside their SQLite twins.
--
-- Types follow SQLite's: every integer is BIGINT (Rust i64), flags are BOOLEAN, JSON is kept as TEXT
-- exactly as the SQLite store writes it. Every column that listings order or range-scan by is
-- COLLATE "C": byte order, as SQLite's BINARY collation, whatever the cluster's locale (subtrees are
-- the key range [dir || '/', dir || '0'), which only byte order makes right).

CREATE TABLE members (
    id            BIGINT PRIMARY KEY,
    username      TEXT COLLATE "C" NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    display_name  TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('admin', 'member')),
    created_utc   BIGINT NOT NULL,
    -- applications acting in the installation; not listed as people, cannot log in
    is_app        BOOLEAN NOT NULL DEFAULT FALSE
);

CREATE TABLE sessions (
    token_hash  TEXT PRIMARY KEY,
    member_id   BIGINT NOT NULL REFERENCES members(id) ON DELETE CASCADE,
    expires_utc BIGINT NOT NULL
);
CREATE INDEX sessions_member ON sessions(member_id);
CREATE INDEX sessions_expiry ON sessions(expires_utc);

CREATE TABLE personal_tokens (
    id             BIGINT PRIMARY KEY,
    member_id      BIGINT NOT NULL REFERENCES members(id) ON DELETE CASCADE,
    name           TEXT NOT NULL,
    token_hash     TEXT NOT NULL UNIQUE,
    scope          TEXT NOT NULL,
    expires_utc    BIGINT,
    created_utc    BIGINT NOT NULL,
    last_used_utc  BIGINT
);
CREATE INDEX personal_tokens_member ON personal_tokens(member_id);

CREATE TABLE spaces (
    id          TEXT COLLATE "C" PRIMARY KEY,
    name        TEXT NOT NULL,
    quota_bytes BIGINT,
    used_bytes  BIGINT NOT NULL DEFAULT 0,
    created_utc BIGINT NOT NULL
);

CREATE TABLE space_members (
    space_id  TEXT COLLATE "C" NOT NULL REFERENCES spaces(id) ON DELETE CASCADE,
    member_id BIGINT NOT NULL REFERENCES members(id) ON DELETE CASCADE,
    PRIMARY KEY (space_id, member_id)
);
CREATE INDEX space_members_member ON space_members(member_id);

CREATE TABLE channels (
    id          BIGINT PRIMARY KEY,
    name        TEXT NOT NULL,
    created_utc BIGINT NOT NULL
);

CREATE TABLE channel_members (
    channel_id BIGINT NOT NULL REFERENCES channels(id) ON DELETE CASCADE,
    member_id  BIGINT NOT NULL REFERENCES members(id) ON DELETE CASCADE,
    PRIMARY KEY (channel_id, member_id)
);
CREATE INDEX channel_members_member ON channel_members(member_id);

-- seq orders messages (ids are random, so they cannot). A message takes its seq while it holds its
-- channel's row lock, so within a channel seqs are handed out in commit order and paging by
-- "after seq" never skips a message committed late.
CREATE TABLE messages (
    seq         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id          BIGINT NOT NULL UNIQUE,
    channel_id  BIGINT NOT NULL REFERENCES channels(id) ON DELETE CASCADE,
    author_id   BIGINT NOT NULL REFERENCES members(id),
    text        TEXT NOT NULL,
    created_utc BIGINT NOT NULL
);
CREATE INDEX messages_channel ON messages(channel_id, seq);

CREATE TABLE projects (
    id          BIGINT PRIMARY KEY,
    key         TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    next_number BIGINT NOT NULL DEFAULT 1,
    created_utc BIGINT NOT NULL
);

CREATE TABLE project_members (
    project_id BIGINT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    member_id  BIGINT NOT NULL REFERENCES members(id) ON DELETE CASCADE,
    PRIMARY KEY (project_id, member_id)
);

CREATE TABLE issues (
    id          BIGINT PRIMARY KEY,
    project_id  BIGINT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    number      BIGINT NOT NULL,
    title       TEXT NOT NULL,
    status      TEXT NOT NULL,
    created_utc BIGINT NOT NULL,
    updated_utc BIGINT NOT NULL,
    UNIQUE (project_id, number)
);

-- One row per stored blob; refcount counts every attachment and storage entry using it. At 0 the row
-- stays (released_utc set) until the collector deletes the bytes; `deleting` marks the moment between
-- deciding and finishing, when no upload may pin it.
CREATE TABLE blobs (
    sha256       TEXT PRIMARY KEY,
    size         BIGINT NOT NULL,
    refcount     BIGINT NOT NULL CHECK (refcount >= 0),
    released_utc BIGINT,
    deleting     BOOLEAN NOT NULL DEFAULT FALSE
);

-- An upload pins the blob it is about to commit, so that the collector keeps those bytes.
CREATE TABLE blob_pins (
    id          TEXT PRIMARY KEY,
    sha256      TEXT NOT NULL,
    expires_utc BIGINT NOT NULL
);
CREATE INDEX blob_pins_sha256 ON blob_pins(sha256);
CREATE INDEX blob_pins_expiry ON blob_pins(expires_utc);

CREATE TABLE attachments (
    id            BIGINT PRIMARY KEY,
    uploader_id   BIGINT NOT NULL REFERENCES members(id),
    file_name     TEXT NOT NULL,
    content_type  TEXT NOT NULL,
    size          BIGINT NOT NULL,
    sha256        TEXT,
    -- set when the attachment holds a reference on blobs(sha256)
    stores_blob   BOOLEAN NOT NULL DEFAULT FALSE,
    state         TEXT NOT NULL,
    media_context TEXT,
    has_thumbnail BOOLEAN NOT NULL DEFAULT FALSE,
    public        BOOLEAN NOT NULL DEFAULT FALSE,
    link_version  BIGINT NOT NULL DEFAULT 0,
    created_utc   BIGINT NOT NULL,
    modified_utc  BIGINT NOT NULL,
    message_id    BIGINT,
    room_id       BIGINT
);
CREATE INDEX attachments_uploader ON attachments(uploader_id);

CREATE TABLE message_attachments (
    message_id    BIGINT NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    attachment_id BIGINT NOT NULL REFERENCES attachments(id) ON DELETE CASCADE,
    position      BIGINT NOT NULL,
    class_name    TEXT NOT NULL,
    details       TEXT NOT NULL,
    PRIMARY KEY (message_id, attachment_id)
);
CREATE INDEX message_attachments_attachment ON message_attachments(attachment_id);

CREATE TABLE issue_attachments (
    issue_id      BIGINT NOT NULL REFERENCES issues(id) ON DELETE CASCADE,
    attachment_id BIGINT NOT NULL REFERENCES attachments(id) ON DELETE CASCADE,
    position      BIGINT NOT NULL,
    class_name    TEXT NOT NULL,
    details       TEXT NOT NULL,
    PRIMARY KEY (issue_id, attachment_id)
);
CREATE INDEX issue_attachments_attachment ON issue_attachments(attachment_id);

-- Workspace storage. Directories are rows too, so that listing, conflicts (file vs directory) and
-- moves are plain SQL. parent is '' at the top level.
CREATE TABLE storage_entries (
    space_id     TEXT COLLATE "C" NOT NULL REFERENCES spaces(id) ON DELETE CASCADE,
    path         TEXT COLLATE "C" NOT NULL,
    parent       TEXT COLLATE "C" NOT NULL,
    name         TEXT COLLATE "C" NOT NULL,
    kind         TEXT NOT NULL CHECK (kind IN ('file', 'dir')),
    size         BIGINT NOT NULL DEFAULT 0,
    content_type TEXT,
    sha256       TEXT,
    meta         TEXT,
    created_utc  BIGINT NOT NULL,
    modified_utc BIGINT NOT NULL,
    PRIMARY KEY (space_id, path)
);
CREATE INDEX storage_entries_listing ON storage_entries(space_id, parent, name);

-- Bytes promised to uploads in progress; quota checks count them with the space's usage.
CREATE TABLE storage_reservations (
    id          BIGINT PRIMARY KEY,
    space_id    TEXT COLLATE "C" NOT NULL REFERENCES spaces(id) ON DELETE CASCADE,
    bytes       BIGINT NOT NULL CHECK (bytes >= 0),
    -- set for reservations of two-stage uploads, which outlive the request that made them
    upload_id   TEXT,
    expires_utc BIGINT NOT NULL
);
CREATE INDEX storage_reservations_space ON storage_reservations(space_id);
CREATE INDEX storage_reservations_upload ON storage_reservations(upload_id);

CREATE TABLE storage_uploads (
    id             TEXT PRIMARY KEY,
    space_id       TEXT COLLATE "C" NOT NULL REFERENCES spaces(id) ON DELETE CASCADE,
    path           TEXT NOT NULL,
    size           BIGINT NOT NULL,
    content_type   TEXT NOT NULL,
    meta           TEXT NOT NULL,
    uploader_id    BIGINT NOT NULL,
    reservation_id BIGINT NOT NULL,
    state          TEXT NOT NULL CHECK (state IN ('pending', 'receiving', 'done')),
    expires_utc    BIGINT NOT NULL,
    created_utc    BIGINT NOT NULL,
    -- a receiving upload holds a lease: another node may take it over after it ends
    lease_until    BIGINT
);

-- Domain events, written in the same transaction as the change they describe, each with the
-- `dispatch-event` job that delivers it.
CREATE TABLE events (
    seq         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id          TEXT NOT NULL UNIQUE,
    event_type  TEXT NOT NULL,
    space_id    TEXT,
    actor_id    BIGINT,
    payload     TEXT NOT NULL,
    created_utc BIGINT NOT NULL,
    dispatched  BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX events_created ON events(created_utc);

-- The Applications platform.
CREATE TABLE applications (
    id            BIGINT PRIMARY KEY,
    client_id     TEXT NOT NULL UNIQUE,
    name          TEXT NOT NULL,
    bot_member_id BIGINT NOT NULL UNIQUE REFERENCES members(id),
    archived      BOOLEAN NOT NULL DEFAULT FALSE,
    doc           TEXT NOT NULL,
    version       BIGINT NOT NULL DEFAULT 1,
    created_utc   BIGINT NOT NULL
);
CREATE INDEX applications_name ON applications(name);

CREATE TABLE app_tokens (
    id            BIGINT PRIMARY KEY,
    app_id        BIGINT NOT NULL REFERENCES applications(id) ON DELETE CASCADE,
    kind          TEXT NOT NULL,
    name          TEXT NOT NULL,
    token_hash    TEXT NOT NULL UNIQUE,
    scope         TEXT NOT NULL,
    member_id     BIGINT REFERENCES members(id) ON DELETE CASCADE,
    expires_utc   BIGINT,
    created_utc   BIGINT NOT NULL,
    last_used_utc BIGINT,
    data          TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX app_tokens_app ON app_tokens(app_id, kind);

-- Keyed things an application owns; `version` is bumped by every write, for compare-and-set changes.
CREATE TABLE app_items (
    app_id      BIGINT NOT NULL REFERENCES applications(id) ON DELETE CASCADE,
    kind        TEXT COLLATE "C" NOT NULL,
    scope       TEXT COLLATE "C" NOT NULL,
    key         TEXT COLLATE "C" NOT NULL,
    value       TEXT NOT NULL,
    created_utc BIGINT NOT NULL,
    version     BIGINT NOT NULL DEFAULT 1,
    PRIMARY KEY (app_id, kind, scope, key)
);
CREATE INDEX app_items_kind ON app_items(kind, scope, key);

CREATE TABLE deliveries (
    id               TEXT PRIMARY KEY,
    app_id           BIGINT NOT NULL REFERENCES applications(id) ON DELETE CASCADE,
    webhook_id       TEXT,
    kind             TEXT NOT NULL,
    body             TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts         BIGINT NOT NULL DEFAULT 0,
    next_attempt_utc BIGINT NOT NULL,
    last_status      BIGINT,
    last_error       TEXT,
    created_utc      BIGINT NOT NULL
);
CREATE INDEX deliveries_due ON deliveries(status, next_attempt_utc);
CREATE INDEX deliveries_app ON deliveries(app_id, created_utc);

-- The durable job queue: one row per queued, running or failed job; a job that succeeds is deleted.
-- Claims take rows with FOR UPDATE SKIP LOCKED.
CREATE TABLE jobs (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind        TEXT NOT NULL,
    payload     TEXT NOT NULL,
    -- at most one queued job per key (periodic chores, one collection per blob); NULLs are distinct
    unique_key  TEXT UNIQUE,
    state       TEXT NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'running', 'failed')),
    attempts    BIGINT NOT NULL DEFAULT 0,
    run_after   BIGINT NOT NULL,
    lease_owner TEXT,
    lease_until BIGINT,
    last_error  TEXT,
    created_utc BIGINT NOT NULL
);
CREATE INDEX jobs_due ON jobs(state, run_after);
