//! The platform against real backends (SQLite, PostgreSQL, MySQL/MariaDB,
//! NATS JetStream), one module per concern, in one test binary.

mod common;

mod backends;
mod nats;
mod outbox_relay;
mod retention;
