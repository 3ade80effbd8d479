-- The Idempotency-Key a customer placed the order with: stored with the
-- order itself, so a retry after a crash or a hang-up finds this order
-- instead of placing another.
ALTER TABLE orders ADD COLUMN idempotency_key VARCHAR(191);
CREATE UNIQUE INDEX orders_idempotency_key ON orders (customer_id, idempotency_key);
