-- The copy a rebuild fills from the log beside the served notifications. At the
-- swap, notifications in both keep their served id (a page that saw one is not
-- told again) and only the ones new to the served copy get new ids.
CREATE TABLE notifications_rebuild (
    id         BIGINT AUTO_INCREMENT PRIMARY KEY,
    recipient  VARCHAR(191) NOT NULL,
    order_id   BIGINT NOT NULL,
    event_id   VARCHAR(191) NOT NULL,
    event_type TEXT NOT NULL,
    message    TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (event_id, recipient)
) DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
