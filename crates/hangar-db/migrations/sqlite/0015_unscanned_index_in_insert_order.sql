-- The backlog of unscanned blobs was indexed by hash: every new blob (unscanned while scanning is
-- off) landed on a random page of that index, one more page for each upload's commit to write.
-- Keyed on the state itself (always NULL here), entries sort by row id, in insertion order, so new
-- blobs share the index's last page. The backlog query only filters on the state. (PostgreSQL 0010.)
DROP INDEX blobs_unscanned;
CREATE INDEX blobs_unscanned ON blobs(scan_state) WHERE scan_state IS NULL;
