-- Webhook dispatch and delivery move to the job queue: each outbox event gets a `dispatch-event`
-- job in the transaction that records it (no cursor, so events committed out of order are never
-- skipped), and each delivery a `deliver` job.

ALTER TABLE events ADD COLUMN dispatched INTEGER NOT NULL DEFAULT 0;
UPDATE events SET dispatched = 1 WHERE seq <= (SELECT seq FROM dispatch_cursor WHERE id = 1);

-- Work the old dispatcher and sender had not done yet.
INSERT INTO jobs (kind, payload, run_after, created_utc)
    SELECT 'dispatch-event', '{"event_id":"' || id || '"}', 0, created_utc FROM events WHERE dispatched = 0;
INSERT INTO jobs (kind, payload, run_after, created_utc)
    SELECT 'deliver', '{"delivery_id":"' || id || '"}', next_attempt_utc, created_utc
    FROM deliveries WHERE status = 'pending';

DROP TABLE dispatch_cursor;
