-- Events that failed once and wait for a retry beside the main path, so the
-- events behind them are not held up; after the last attempt they become dead
-- letters.
CREATE TABLE IF NOT EXISTS parked_events (
    id         BIGINT AUTO_INCREMENT PRIMARY KEY,
    log_seq    BIGINT NOT NULL,
    event_id   VARCHAR(191) NOT NULL UNIQUE,
    event_type TEXT NOT NULL,
    order_id   BIGINT NOT NULL,
    payload    TEXT NOT NULL,
    error      TEXT NOT NULL,
    attempts   BIGINT NOT NULL,
    retry_at   BIGINT NOT NULL
) DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
CREATE INDEX parked_events_due ON parked_events (retry_at);
