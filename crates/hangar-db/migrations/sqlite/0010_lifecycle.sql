-- Lifecycle, SPEC §9.5: who opened an issue (its author may delete it; NULL for issues opened before
-- this migration, which only an admin may delete), and when an attachment lost its last message or
-- issue (the unattached TTL counts from then, or from its upload when it was never attached).
-- (PostgreSQL 0005.)
ALTER TABLE issues ADD COLUMN author_id INTEGER REFERENCES members(id) ON DELETE SET NULL;
ALTER TABLE attachments ADD COLUMN detached_utc INTEGER;
