-- Share links (SPEC §9.4): a token (kept only as its SHA-256) that serves one attachment or one
-- storage file, with an optional password (Argon2id hash), expiry and download cap. A link goes with
-- its file (ON DELETE CASCADE) and follows a moved storage file (ON UPDATE CASCADE); the download
-- count is updated in place, so every node counts against the same cap. (SQLite 0011.)
CREATE TABLE share_links (
    id            BIGINT PRIMARY KEY,
    token_hash    TEXT NOT NULL UNIQUE,
    creator_id    BIGINT NOT NULL REFERENCES members(id) ON DELETE CASCADE,
    attachment_id BIGINT REFERENCES attachments(id) ON DELETE CASCADE,
    space_id      TEXT COLLATE "C",
    path          TEXT COLLATE "C",
    password_hash TEXT,
    expires_utc   BIGINT,
    max_downloads BIGINT CHECK (max_downloads IS NULL OR max_downloads >= 1),
    downloads     BIGINT NOT NULL DEFAULT 0 CHECK (downloads >= 0),
    created_utc   BIGINT NOT NULL,
    FOREIGN KEY (space_id, path) REFERENCES storage_entries(space_id, path)
        ON DELETE CASCADE ON UPDATE CASCADE,
    CHECK ((attachment_id IS NOT NULL AND space_id IS NULL AND path IS NULL)
        OR (attachment_id IS NULL AND space_id IS NOT NULL AND path IS NOT NULL))
);
CREATE INDEX share_links_creator ON share_links(creator_id);
CREATE INDEX share_links_attachment ON share_links(attachment_id);
CREATE INDEX share_links_file ON share_links(space_id, path);
