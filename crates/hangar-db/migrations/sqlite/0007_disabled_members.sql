-- Members an administrator disabled (`hangar admin user disable`): they cannot log in, and every
-- session and token they held or approved was ended when they were disabled.
ALTER TABLE members ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0;
