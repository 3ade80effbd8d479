-- The copy a rebuild fills from the log beside the served view; it replaces the
-- served rows in one transaction once it has caught up (platform::rebuild).
-- Nothing reads it by customer or store, so it has no indexes for those.
CREATE TABLE status_checks_rebuild (
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
CREATE TABLE status_history_rebuild (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    order_id   INTEGER NOT NULL,
    event_id   TEXT NOT NULL UNIQUE,
    event_type TEXT NOT NULL,
    status     TEXT,
    actor      TEXT NOT NULL,
    reason     TEXT,
    at         INTEGER NOT NULL
);
