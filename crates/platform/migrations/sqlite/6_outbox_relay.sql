-- Which relay publishes the outbox: one at a time among the replicas that
-- share this database, so each event goes out once and in order (see
-- platform::outbox). A claim past until_ms is free to take.
CREATE TABLE IF NOT EXISTS outbox_relay (
    id       INTEGER PRIMARY KEY,
    holder   TEXT,
    until_ms BIGINT NOT NULL
);
INSERT OR IGNORE INTO outbox_relay (id, holder, until_ms) VALUES (1, NULL, 0);
