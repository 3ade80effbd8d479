CREATE TABLE payments (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    order_id       INTEGER NOT NULL UNIQUE,
    customer_id    INTEGER NOT NULL,
    store_id       INTEGER NOT NULL,
    amount         INTEGER NOT NULL,
    menu_name      TEXT NOT NULL,
    qty            INTEGER NOT NULL,
    address        TEXT NOT NULL,
    status         TEXT NOT NULL,
    card_last4     TEXT,
    reason         TEXT,
    correlation_id TEXT NOT NULL,
    version        INTEGER NOT NULL,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
);
CREATE INDEX payments_customer ON payments (customer_id, id);
