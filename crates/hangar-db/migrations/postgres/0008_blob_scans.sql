-- Malware scanning (SPEC §9.6): the scan state of each blob, shared by every file holding its bytes.
-- NULL: stored while scanning was off. (SQLite 0013.)
ALTER TABLE blobs ADD COLUMN scan_state TEXT
    CHECK (scan_state IN ('pending', 'clean', 'infected', 'failed'));
-- the signature clamd named (infected), or why the scan failed
ALTER TABLE blobs ADD COLUMN scan_detail TEXT;
ALTER TABLE blobs ADD COLUMN scanned_utc BIGINT;
-- the backlog of blobs stored before scanning was turned on
CREATE INDEX blobs_unscanned ON blobs(sha256) WHERE scan_state IS NULL;
-- every file holding an infected blob gets its quarantine event
CREATE INDEX attachments_sha256 ON attachments(sha256);
CREATE INDEX storage_entries_sha256 ON storage_entries(sha256);
