CREATE TABLE stores (
    id       BIGINT AUTO_INCREMENT PRIMARY KEY,
    name     VARCHAR(191) NOT NULL,
    owner_id BIGINT NOT NULL,
    address  TEXT NOT NULL
) DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
CREATE TABLE menus (
    id         BIGINT AUTO_INCREMENT PRIMARY KEY,
    store_id   BIGINT NOT NULL REFERENCES stores (id),
    name       VARCHAR(191) NOT NULL,
    price      BIGINT NOT NULL CHECK (price >= 0),
    available  BOOLEAN NOT NULL DEFAULT TRUE,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
) DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
CREATE INDEX menus_name ON menus (name);
CREATE TABLE store_orders (
    order_id       BIGINT PRIMARY KEY,
    store_id       BIGINT NOT NULL,
    customer_id    BIGINT NOT NULL,
    menu_name      TEXT NOT NULL,
    qty            BIGINT NOT NULL,
    price          BIGINT NOT NULL,
    address        TEXT NOT NULL,
    status         VARCHAR(191) NOT NULL,
    reason         TEXT,
    correlation_id TEXT NOT NULL,
    version        BIGINT NOT NULL,
    received_at    BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
) DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
CREATE INDEX store_orders_store ON store_orders (store_id, status);
