-- Where the retained log starts: entries up to `compacted_through` may have
-- been folded into the views' snapshots and deleted. A reader asking for
-- entries after an earlier position is told so instead of skipping them.
CREATE TABLE IF NOT EXISTS log_start (
    id                INTEGER PRIMARY KEY CHECK (id = 1),
    compacted_through INTEGER NOT NULL,
    compacted_at      INTEGER
);
INSERT OR IGNORE INTO log_start (id, compacted_through) VALUES (1, 0);
