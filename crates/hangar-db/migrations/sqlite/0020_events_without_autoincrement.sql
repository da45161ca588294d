-- Every upload records an event, and AUTOINCREMENT made each of those inserts read and rewrite the
-- table's row in sqlite_sequence as well. Without it a new event's number is one more than the
-- highest: numbers are not reused while any later event remains, and nothing refers to an event by
-- its number (jobs and deliveries name its id), which only orders the list of recent events.
CREATE TABLE events_new (
    seq         INTEGER PRIMARY KEY,
    id          TEXT NOT NULL UNIQUE,
    event_type  TEXT NOT NULL,
    space_id    TEXT,
    actor_id    INTEGER,
    payload     TEXT NOT NULL,
    created_utc INTEGER NOT NULL,
    dispatched  INTEGER NOT NULL DEFAULT 0
);
INSERT INTO events_new (seq, id, event_type, space_id, actor_id, payload, created_utc, dispatched)
    SELECT seq, id, event_type, space_id, actor_id, payload, created_utc, dispatched FROM events;
DROP TABLE events;
ALTER TABLE events_new RENAME TO events;
