-- The attachments holding a blob were found through an index on their hash: a random key, so every
-- small upload's record wrote a page of that index of its own, a third of the pages each commit
-- wrote (docs/performance.md). Each blob now has a number given in creation order (`seq`; a new
-- blob's is one more than the highest row id, so it sorts after every blob before it), and each
-- attachment holding a blob keeps its blob's number: the new bytes' attachments of a commit share
-- that index's last page. The number only narrows the search: the look-ups also compare the hash,
-- so that two blobs with the same number (after a VACUUM renumbered the row ids) cannot be mixed.
ALTER TABLE blobs ADD COLUMN seq INTEGER;
UPDATE blobs SET seq = rowid;
ALTER TABLE attachments ADD COLUMN blob_seq INTEGER;
UPDATE attachments SET blob_seq = (SELECT b.seq FROM blobs b WHERE b.sha256 = attachments.sha256)
    WHERE stores_blob = 1;
CREATE INDEX attachments_blob ON attachments(blob_seq) WHERE blob_seq IS NOT NULL;
DROP INDEX attachments_sha256;
