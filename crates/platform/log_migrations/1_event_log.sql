-- The embedded event log: append-only, totally ordered by seq. event_id is
-- unique so that a relay that publishes the same outbox row twice (crash
-- between publish and delete) leaves one copy.
CREATE TABLE IF NOT EXISTS events (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id   TEXT NOT NULL UNIQUE,
    event_type TEXT NOT NULL,
    order_id   INTEGER NOT NULL,
    payload    TEXT NOT NULL,
    source     TEXT NOT NULL,
    logged_at  INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS events_order ON events (order_id, seq);
