-- Application items are changed by compare-and-set on a version (read, change, write if the version
-- is still the one read), which holds with any number of processes on the database, instead of an
-- in-process lock.
ALTER TABLE app_items ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
