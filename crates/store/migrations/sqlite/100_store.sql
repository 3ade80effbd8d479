CREATE TABLE stores (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    name     TEXT NOT NULL,
    owner_id INTEGER NOT NULL,
    address  TEXT NOT NULL
);
CREATE TABLE menus (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    store_id   INTEGER NOT NULL REFERENCES stores (id),
    name       TEXT NOT NULL,
    price      INTEGER NOT NULL CHECK (price >= 0),
    available  INTEGER NOT NULL DEFAULT 1,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX menus_name ON menus (name);
CREATE TABLE store_orders (
    order_id       INTEGER PRIMARY KEY,
    store_id       INTEGER NOT NULL,
    customer_id    INTEGER NOT NULL,
    menu_name      TEXT NOT NULL,
    qty            INTEGER NOT NULL,
    price          INTEGER NOT NULL,
    address        TEXT NOT NULL,
    status         TEXT NOT NULL,
    reason         TEXT,
    correlation_id TEXT NOT NULL,
    version        INTEGER NOT NULL,
    received_at    INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
);
CREATE INDEX store_orders_store ON store_orders (store_id, status);
