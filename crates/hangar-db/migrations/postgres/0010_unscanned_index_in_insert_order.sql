-- The backlog of unscanned blobs was indexed by hash, so every new blob landed on a random page of
-- that index. Keyed on the state itself (always NULL here), entries go in insertion order. The
-- backlog query only filters on the state. (SQLite 0015.)
DROP INDEX blobs_unscanned;
CREATE INDEX blobs_unscanned ON blobs(scan_state) WHERE scan_state IS NULL;
