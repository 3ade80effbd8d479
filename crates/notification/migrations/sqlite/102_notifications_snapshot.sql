-- The snapshot the event log's compaction folds old events into: the view as
-- it stands after every event up to the snapshot's position (view_snapshots).
-- A rebuild starts from a copy of it and replays only the log's tail.
CREATE TABLE notifications_snapshot (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    recipient  TEXT NOT NULL,
    order_id   INTEGER NOT NULL,
    event_id   TEXT NOT NULL,
    event_type TEXT NOT NULL,
    message    TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    UNIQUE (event_id, recipient)
);
