-- The copy a rebuild fills from the log beside the served view; it replaces the
-- served rows in one transaction once it has caught up (platform::rebuild).
-- Nothing reads it by customer or store, so it has no indexes for those.
CREATE TABLE status_checks_rebuild (
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
CREATE TABLE status_history_rebuild (
    id         BIGINT AUTO_INCREMENT PRIMARY KEY,
    order_id   BIGINT NOT NULL,
    event_id   VARCHAR(191) NOT NULL UNIQUE,
    event_type TEXT NOT NULL,
    status     TEXT,
    actor      TEXT NOT NULL,
    reason     TEXT,
    at         BIGINT NOT NULL
) DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
