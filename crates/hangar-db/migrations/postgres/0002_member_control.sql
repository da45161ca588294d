-- Members an administrator disabled (`hangar admin user disable`): they cannot log in, and every
-- session and token they held or approved was ended when they were disabled. (SQLite 0007.)
ALTER TABLE members ADD COLUMN disabled BOOLEAN NOT NULL DEFAULT FALSE;
