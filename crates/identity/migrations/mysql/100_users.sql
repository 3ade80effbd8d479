CREATE TABLE users (
    id            BIGINT AUTO_INCREMENT PRIMARY KEY,
    username      VARCHAR(191) NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL,
    store_id      BIGINT
) DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
