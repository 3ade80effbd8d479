CREATE TABLE notifications (
    id         BIGINT AUTO_INCREMENT PRIMARY KEY,
    recipient  VARCHAR(191) NOT NULL,
    order_id   BIGINT NOT NULL,
    event_id   VARCHAR(191) NOT NULL,
    event_type TEXT NOT NULL,
    message    TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (event_id, recipient)
) DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
CREATE INDEX notifications_recipient ON notifications (recipient, id);
