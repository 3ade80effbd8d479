//! What every service shares: storage, the outbox and the consumers that
//! read the event log, the embedded event log itself, auth, HTTP errors and
//! the actuator endpoints. Services add only their domain on top, and each
//! describes itself to the shapes that run it with a
//! [`service::ServiceDescription`].

pub mod actuator;
pub mod admin;
pub mod admission;
pub mod auth;
pub mod clock;
pub mod columns;
pub mod consumer;
pub mod db;
pub mod deadline;
pub mod event_log;
pub mod files;
pub mod idempotency;
pub mod list_query;
pub mod live_streams;
pub mod management;
pub mod metrics;
pub mod nats;
pub mod openapi;
pub mod order_copy;
pub mod outbox;
pub mod peer;
pub mod problem;
pub mod read_model;
pub mod rebuild;
pub mod retention;
pub mod revocation_sync;
pub mod revocations;
pub mod server;
pub mod service;
pub mod service_auth;
pub mod service_state;
pub mod session_limits;
pub mod shutdown;
pub mod signing_keys;
pub mod sql;
pub mod stream_tickets;
pub mod transport;
pub mod writer;

pub use auth::{Principal, TokenKeys};
pub use db::{Conn, Db, Location, Migrations};
pub use event_log::EventLog;
pub use problem::{ApiError, ApiJson, ApiPath, ApiQuery, JsonBody};
pub use service_auth::{ServiceCaller, ServiceSigner};
