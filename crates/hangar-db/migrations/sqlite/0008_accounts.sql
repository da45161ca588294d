-- Accounts an operator can trust (issue 11): deleted members, idle sessions, token lineage and the
-- failed-attempt counters that throttle logins and client authentication.

-- A deleted member stays as a row (its files stay, owned by the installation): its username is
-- freed, it can never log in again, and it is no longer listed.
ALTER TABLE members ADD COLUMN deleted_utc INTEGER;

-- When a session was last used, for the idle time-out.
ALTER TABLE sessions ADD COLUMN last_used_utc INTEGER NOT NULL DEFAULT 0;
UPDATE sessions SET last_used_utc = CAST(strftime('%s', 'now') AS INTEGER) * 1000;

-- A token made with a token goes with its maker.
ALTER TABLE personal_tokens ADD COLUMN parent_id INTEGER REFERENCES personal_tokens(id) ON DELETE CASCADE;
CREATE INDEX personal_tokens_parent ON personal_tokens(parent_id);
ALTER TABLE app_tokens ADD COLUMN parent_id INTEGER REFERENCES app_tokens(id) ON DELETE CASCADE;
CREATE INDEX app_tokens_parent ON app_tokens(parent_id);
-- The member who minted a permanent token: it is revoked when that member is disabled or deleted,
-- or changes or is given a new password.
ALTER TABLE app_tokens ADD COLUMN minted_by INTEGER;
CREATE INDEX app_tokens_minted_by ON app_tokens(minted_by);

-- Failed attempts per key (`login-user:NAME`, `login-addr:IP`, …) in a fixed window that starts at
-- the first failure; shared by every node on this database.
CREATE TABLE auth_attempts (
    key          TEXT PRIMARY KEY,
    window_start INTEGER NOT NULL,
    window_end   INTEGER NOT NULL,
    failures     INTEGER NOT NULL
);
CREATE INDEX auth_attempts_end ON auth_attempts(window_end);
