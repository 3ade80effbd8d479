CREATE TABLE orders (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    customer_id    INTEGER NOT NULL,
    store_id       INTEGER NOT NULL,
    menu_id        INTEGER NOT NULL,
    menu_name      TEXT NOT NULL,
    qty            INTEGER NOT NULL,
    unit_price     INTEGER NOT NULL,
    price          INTEGER NOT NULL,
    address        TEXT NOT NULL,
    status         TEXT NOT NULL,
    reason         TEXT,
    payment_id     INTEGER,
    correlation_id TEXT NOT NULL,
    version        INTEGER NOT NULL,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
);
CREATE INDEX orders_customer ON orders (customer_id, id);
CREATE INDEX orders_store ON orders (store_id, id);
CREATE INDEX orders_status ON orders (status, created_at);
