-- The Applications platform: applications, their tokens, their keyed items (parameters, keys, rights,
-- webhooks, subscriptions, unfurls…), and webhook deliveries.

-- Members that are applications acting in the installation; not listed as people, cannot log in.
ALTER TABLE members ADD COLUMN is_app INTEGER NOT NULL DEFAULT 0;

CREATE TABLE applications (
    id            INTEGER PRIMARY KEY,
    client_id     TEXT NOT NULL UNIQUE,
    name          TEXT NOT NULL,
    bot_member_id INTEGER NOT NULL UNIQUE REFERENCES members(id),
    archived      INTEGER NOT NULL DEFAULT 0,
    doc           TEXT NOT NULL,
    version       INTEGER NOT NULL DEFAULT 1,
    created_utc   INTEGER NOT NULL
);
CREATE INDEX applications_name ON applications(name);

CREATE TABLE app_tokens (
    id            INTEGER PRIMARY KEY,
    app_id        INTEGER NOT NULL REFERENCES applications(id) ON DELETE CASCADE,
    kind          TEXT NOT NULL,
    name          TEXT NOT NULL,
    token_hash    TEXT NOT NULL UNIQUE,
    scope         TEXT NOT NULL,
    member_id     INTEGER REFERENCES members(id) ON DELETE CASCADE,
    expires_utc   INTEGER,
    created_utc   INTEGER NOT NULL,
    last_used_utc INTEGER,
    data          TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX app_tokens_app ON app_tokens(app_id, kind);

CREATE TABLE app_items (
    app_id      INTEGER NOT NULL REFERENCES applications(id) ON DELETE CASCADE,
    kind        TEXT NOT NULL,
    scope       TEXT NOT NULL,
    key         TEXT NOT NULL,
    value       TEXT NOT NULL,
    created_utc INTEGER NOT NULL,
    PRIMARY KEY (app_id, kind, scope, key)
);
CREATE INDEX app_items_kind ON app_items(kind, scope, key);

-- One row: the last outbox event the webhook dispatcher has handled.
CREATE TABLE dispatch_cursor (
    id  INTEGER PRIMARY KEY CHECK (id = 1),
    seq INTEGER NOT NULL
);
INSERT INTO dispatch_cursor (id, seq) VALUES (1, 0);

CREATE TABLE deliveries (
    id               TEXT PRIMARY KEY,
    app_id           INTEGER NOT NULL REFERENCES applications(id) ON DELETE CASCADE,
    webhook_id       TEXT,
    kind             TEXT NOT NULL,
    body             TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_utc INTEGER NOT NULL,
    last_status      INTEGER,
    last_error       TEXT,
    created_utc      INTEGER NOT NULL
);
CREATE INDEX deliveries_due ON deliveries(status, next_attempt_utc);
CREATE INDEX deliveries_app ON deliveries(app_id, created_utc);
