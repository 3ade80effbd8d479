CREATE TABLE status_checks (
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
CREATE INDEX status_checks_customer ON status_checks (customer_id);
CREATE INDEX status_checks_store ON status_checks (store_id);
CREATE TABLE status_history (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    order_id   INTEGER NOT NULL,
    event_id   TEXT NOT NULL UNIQUE,
    event_type TEXT NOT NULL,
    status     TEXT,
    actor      TEXT NOT NULL,
    reason     TEXT,
    at         INTEGER NOT NULL
);
CREATE INDEX status_history_order ON status_history (order_id, id);
