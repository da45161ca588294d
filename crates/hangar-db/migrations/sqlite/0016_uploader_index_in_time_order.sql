-- Attachments by uploader (the owner quota's sum, the members' foreign key) were indexed on the
-- uploader alone, so entries sorted by row id within it: attachment ids are random, and every
-- upload landed on a random page of that index, one more page for each upload's commit to write.
-- With the creation time after the uploader, an uploader's new attachments share the index's last
-- page of that uploader. Both uses filter on the uploader only. (PostgreSQL orders equal keys by
-- their place in the table, in insertion order already: no change there.)
DROP INDEX attachments_uploader;
CREATE INDEX attachments_uploader ON attachments(uploader_id, created_utc);
