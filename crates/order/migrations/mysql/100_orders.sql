CREATE TABLE orders (
    id             BIGINT AUTO_INCREMENT PRIMARY KEY,
    customer_id    BIGINT NOT NULL,
    store_id       BIGINT NOT NULL,
    menu_id        BIGINT NOT NULL,
    menu_name      TEXT NOT NULL,
    qty            BIGINT NOT NULL,
    unit_price     BIGINT NOT NULL,
    price          BIGINT NOT NULL,
    address        TEXT NOT NULL,
    status         VARCHAR(191) NOT NULL,
    reason         TEXT,
    payment_id     BIGINT,
    correlation_id TEXT NOT NULL,
    version        BIGINT NOT NULL,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
) DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
CREATE INDEX orders_customer ON orders (customer_id, id);
CREATE INDEX orders_store ON orders (store_id, id);
CREATE INDEX orders_status ON orders (status, created_at);
