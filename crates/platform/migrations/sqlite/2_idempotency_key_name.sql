-- `key` is reserved in MySQL; every backend now uses one name for the column.
ALTER TABLE idempotency_keys RENAME COLUMN key TO idem_key;
