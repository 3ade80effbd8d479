-- The snapshot the event log's compaction folds old events into: the view as
-- it stands after every event up to the snapshot's position (view_snapshots).
-- A rebuild starts from a copy of it and replays only the log's tail.
CREATE TABLE notifications_snapshot (
    id         BIGINT AUTO_INCREMENT PRIMARY KEY,
    recipient  VARCHAR(191) NOT NULL,
    order_id   BIGINT NOT NULL,
    event_id   VARCHAR(191) NOT NULL,
    event_type TEXT NOT NULL,
    message    TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (event_id, recipient)
) DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
