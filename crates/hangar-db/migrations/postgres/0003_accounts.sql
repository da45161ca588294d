-- Accounts an operator can trust (issue 11): deleted members, idle sessions, token lineage and the
-- failed-attempt counters that throttle logins and client authentication. (SQLite 0008.)

ALTER TABLE members ADD COLUMN deleted_utc BIGINT;

ALTER TABLE sessions ADD COLUMN last_used_utc BIGINT NOT NULL DEFAULT 0;
UPDATE sessions SET last_used_utc = (EXTRACT(EPOCH FROM now()) * 1000)::BIGINT;

ALTER TABLE personal_tokens ADD COLUMN parent_id BIGINT REFERENCES personal_tokens(id) ON DELETE CASCADE;
CREATE INDEX personal_tokens_parent ON personal_tokens(parent_id);
ALTER TABLE app_tokens ADD COLUMN parent_id BIGINT REFERENCES app_tokens(id) ON DELETE CASCADE;
CREATE INDEX app_tokens_parent ON app_tokens(parent_id);
ALTER TABLE app_tokens ADD COLUMN minted_by BIGINT;
CREATE INDEX app_tokens_minted_by ON app_tokens(minted_by);

CREATE TABLE auth_attempts (
    key          TEXT PRIMARY KEY,
    window_start BIGINT NOT NULL,
    window_end   BIGINT NOT NULL,
    failures     BIGINT NOT NULL
);
CREATE INDEX auth_attempts_end ON auth_attempts(window_end);
