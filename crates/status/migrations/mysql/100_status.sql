CREATE TABLE status_checks (
    order_id       BIGINT PRIMARY KEY,
    status         TEXT NOT NULL,
    payment_status TEXT,
    menu_name      TEXT NOT NULL,
    qty            BIGINT NOT NULL,
    price          BIGINT NOT NULL,
    address        TEXT NOT NULL,
    store_id       BIGINT NOT NULL,
    customer_id    BIGINT NOT NULL,
    rider_id       BIGINT,
    updated_at     BIGINT NOT NULL
) DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
CREATE INDEX status_checks_customer ON status_checks (customer_id);
CREATE INDEX status_checks_store ON status_checks (store_id);
CREATE TABLE status_history (
    id         BIGINT AUTO_INCREMENT PRIMARY KEY,
    order_id   BIGINT NOT NULL,
    event_id   VARCHAR(191) NOT NULL UNIQUE,
    event_type TEXT NOT NULL,
    status     TEXT,
    actor      TEXT NOT NULL,
    reason     TEXT,
    at         BIGINT NOT NULL
) DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
CREATE INDEX status_history_order ON status_history (order_id, id);
