-- Events that failed once and wait for a retry beside the main path, so the
-- events behind them are not held up; after the last attempt they become dead
-- letters.
CREATE TABLE IF NOT EXISTS parked_events (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    log_seq    INTEGER NOT NULL,
    event_id   TEXT NOT NULL UNIQUE,
    event_type TEXT NOT NULL,
    order_id   INTEGER NOT NULL,
    payload    TEXT NOT NULL,
    error      TEXT NOT NULL,
    attempts   INTEGER NOT NULL,
    retry_at   INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS parked_events_due ON parked_events (retry_at);
