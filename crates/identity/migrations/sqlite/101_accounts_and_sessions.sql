ALTER TABLE users ADD COLUMN disabled_at INTEGER;
CREATE TABLE refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    user_id    INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX refresh_tokens_by_user ON refresh_tokens (user_id);
