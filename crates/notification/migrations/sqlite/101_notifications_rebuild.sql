-- The copy a rebuild fills from the log beside the served notifications. At the
-- swap, notifications in both keep their served id (a page that saw one is not
-- told again) and only the ones new to the served copy get new ids.
CREATE TABLE notifications_rebuild (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    recipient  TEXT NOT NULL,
    order_id   INTEGER NOT NULL,
    event_id   TEXT NOT NULL,
    event_type TEXT NOT NULL,
    message    TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    UNIQUE (event_id, recipient)
);
