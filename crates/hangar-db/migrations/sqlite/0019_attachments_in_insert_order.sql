-- The attachments are kept in insertion order under a key of their own (`seq`), with the public id
-- a unique index (docs/performance.md, "Attachments in insertion order"). The table is rebuilt
-- before this migration runs, by `src/sqlite/migrate.rs`: a migration file runs inside a
-- transaction, where foreign keys cannot be turned off, and with them on, dropping the old table
-- would delete every link, share link and tus upload that refers to it. This migration only
-- checks that the rebuild happened: it fails on a table without `seq`.
SELECT seq, id FROM attachments LIMIT 0;
