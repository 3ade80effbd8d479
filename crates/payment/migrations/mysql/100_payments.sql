CREATE TABLE payments (
    id             BIGINT AUTO_INCREMENT PRIMARY KEY,
    order_id       BIGINT NOT NULL UNIQUE,
    customer_id    BIGINT NOT NULL,
    store_id       BIGINT NOT NULL,
    amount         BIGINT NOT NULL,
    menu_name      TEXT NOT NULL,
    qty            BIGINT NOT NULL,
    address        TEXT NOT NULL,
    status         TEXT NOT NULL,
    card_last4     TEXT,
    reason         TEXT,
    correlation_id TEXT NOT NULL,
    version        BIGINT NOT NULL,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
) DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
CREATE INDEX payments_customer ON payments (customer_id, id);
