CREATE TABLE deliveries (
    order_id       BIGINT PRIMARY KEY,
    store_id       BIGINT NOT NULL,
    customer_id    BIGINT NOT NULL,
    menu_name      TEXT NOT NULL,
    qty            BIGINT NOT NULL,
    price          BIGINT NOT NULL,
    address        TEXT NOT NULL,
    status         VARCHAR(191) NOT NULL,
    rider_id       BIGINT,
    correlation_id TEXT NOT NULL,
    version        BIGINT NOT NULL,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
) DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
CREATE INDEX deliveries_status ON deliveries (status, order_id);
CREATE INDEX deliveries_rider ON deliveries (rider_id, order_id);
