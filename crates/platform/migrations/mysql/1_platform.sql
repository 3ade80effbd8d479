-- Tables every service keeps beside its own, committed in the same database as its state.
CREATE TABLE IF NOT EXISTS outbox (
    seq        BIGINT AUTO_INCREMENT PRIMARY KEY,
    event_id   VARCHAR(191) NOT NULL UNIQUE,
    event_type TEXT NOT NULL,
    order_id   BIGINT NOT NULL,
    payload    TEXT NOT NULL,
    created_at BIGINT NOT NULL
) DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
CREATE TABLE IF NOT EXISTS inbox (
    event_id   VARCHAR(191) PRIMARY KEY,
    handled_at BIGINT NOT NULL
) DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
CREATE TABLE IF NOT EXISTS consumer_cursor (
    consumer VARCHAR(191) PRIMARY KEY,
    position BIGINT NOT NULL
) DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
CREATE TABLE IF NOT EXISTS dead_letters (
    id         BIGINT AUTO_INCREMENT PRIMARY KEY,
    log_seq    BIGINT NOT NULL,
    event_id   TEXT NOT NULL,
    event_type TEXT NOT NULL,
    order_id   BIGINT NOT NULL,
    payload    TEXT NOT NULL,
    error      TEXT NOT NULL,
    attempts   BIGINT NOT NULL,
    created_at BIGINT NOT NULL
) DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
CREATE TABLE IF NOT EXISTS idempotency_keys (
    principal   VARCHAR(191) NOT NULL,
    idem_key    VARCHAR(191) NOT NULL,
    fingerprint TEXT NOT NULL,
    status      BIGINT,
    body        LONGBLOB,
    content_type TEXT,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (principal, idem_key)
) DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
-- One row every write transaction locks first: writes to a service's database
-- are serialized as on SQLite, across every replica sharing it.
CREATE TABLE IF NOT EXISTS write_lock (
    id BIGINT PRIMARY KEY
) DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
INSERT IGNORE INTO write_lock (id) VALUES (1);
