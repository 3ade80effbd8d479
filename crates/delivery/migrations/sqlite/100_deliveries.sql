CREATE TABLE deliveries (
    order_id       INTEGER PRIMARY KEY,
    store_id       INTEGER NOT NULL,
    customer_id    INTEGER NOT NULL,
    menu_name      TEXT NOT NULL,
    qty            INTEGER NOT NULL,
    price          INTEGER NOT NULL,
    address        TEXT NOT NULL,
    status         TEXT NOT NULL,
    rider_id       INTEGER,
    correlation_id TEXT NOT NULL,
    version        INTEGER NOT NULL,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
);
CREATE INDEX deliveries_status ON deliveries (status, order_id);
CREATE INDEX deliveries_rider ON deliveries (rider_id, order_id);
