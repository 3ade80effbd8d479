ALTER TABLE users ADD COLUMN disabled_at BIGINT;
CREATE TABLE refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    user_id    BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX refresh_tokens_by_user ON refresh_tokens (user_id);
