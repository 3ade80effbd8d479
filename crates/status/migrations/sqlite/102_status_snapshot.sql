-- The snapshot the event log's compaction folds old events into: the view as
-- it stands after every event up to the snapshot's position (view_snapshots).
-- A rebuild starts from a copy of it and replays only the log's tail.
CREATE TABLE status_checks_snapshot (
    order_id       INTEGER PRIMARY KEY,
    status         TEXT NOT NULL,
    payment_status TEXT,
    menu_name      TEXT NOT NULL,
    qty            INTEGER NOT NULL,
    price          INTEGER NOT NULL,
    address        TEXT NOT NULL,
    store_id       INTEGER NOT NULL,
    customer_id    INTEGER NOT NULL,
    rider_id       INTEGER,
    updated_at     INTEGER NOT NULL
);
CREATE TABLE status_history_snapshot (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    order_id   INTEGER NOT NULL,
    event_id   TEXT NOT NULL UNIQUE,
    event_type TEXT NOT NULL,
    status     TEXT,
    actor      TEXT NOT NULL,
    reason     TEXT,
    at         INTEGER NOT NULL
);
