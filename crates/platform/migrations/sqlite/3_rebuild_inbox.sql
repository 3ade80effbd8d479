-- The inbox of a read model being rebuilt beside the served one: which events
-- the new copy holds. It replaces `inbox` when the copy is swapped in.
CREATE TABLE IF NOT EXISTS inbox_rebuild (
    event_id   TEXT PRIMARY KEY,
    handled_at INTEGER NOT NULL
);
