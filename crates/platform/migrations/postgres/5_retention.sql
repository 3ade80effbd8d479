-- Retention deletes the oldest rows in small batches; these indexes find them
-- without scanning the tables.
CREATE INDEX IF NOT EXISTS inbox_handled_at ON inbox (handled_at);
CREATE INDEX IF NOT EXISTS idempotency_keys_created_at ON idempotency_keys (created_at);
CREATE INDEX IF NOT EXISTS dead_letters_created_at ON dead_letters (created_at);
-- The log position up to which a view's snapshot holds every event (see
-- platform::rebuild::fold); the log may drop entries a snapshot holds.
CREATE TABLE IF NOT EXISTS view_snapshots (
    view     TEXT PRIMARY KEY,
    position BIGINT NOT NULL,
    taken_at BIGINT NOT NULL
);
-- Which events the fold in progress applied; emptied in the transaction that
-- moves the snapshot's position, which is what keeps an event from being
-- folded twice.
CREATE TABLE IF NOT EXISTS inbox_snapshot (
    event_id   TEXT PRIMARY KEY,
    handled_at BIGINT NOT NULL
);
