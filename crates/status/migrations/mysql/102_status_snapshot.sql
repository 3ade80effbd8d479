-- The snapshot the event log's compaction folds old events into: the view as
-- it stands after every event up to the snapshot's position (view_snapshots).
-- A rebuild starts from a copy of it and replays only the log's tail.
CREATE TABLE status_checks_snapshot (
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
CREATE TABLE status_history_snapshot (
    id         BIGINT AUTO_INCREMENT PRIMARY KEY,
    order_id   BIGINT NOT NULL,
    event_id   VARCHAR(191) NOT NULL UNIQUE,
    event_type TEXT NOT NULL,
    status     TEXT,
    actor      TEXT NOT NULL,
    reason     TEXT,
    at         BIGINT NOT NULL
) DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
