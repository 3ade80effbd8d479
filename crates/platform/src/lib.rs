//! What every service shares, so that a service crate holds only its own
//! rules. Each service describes itself to the shapes that run it with a
//! [`service::ServiceDescription`]; the rest, by what a service leans on:
//!
//! - storage: [`db`] (one pool per backend: SQLite, PostgreSQL, MariaDB;
//!   reads, and writes through the group-commit [`writer`]), [`sql`] and
//!   [`columns`] (statements written once for every backend, rows read by
//!   column name), [`order_copy`](mod@order_copy) (a service's own copy of an order's facts),
//!   [`read_model`] and [`rebuild`] (views built from events, rebuilt beside
//!   the served copy), [`retention`], [`files`] (owner-only data);
//! - events: [`outbox`] (written in the business transaction, relayed after
//!   commit), [`event_log`] (the all-in-one's log), [`nats`] (the
//!   distributed transport), [`transport`] (what a relay publishes to),
//!   [`consumer`] (inbox, retries, dead letters), [`admin`] (dead letters'
//!   API);
//! - HTTP: [`server`] (timeouts and a connection cap), [`problem`] (one
//!   mapping to problem+json; a 500 names an incident, never a cause),
//!   [`idempotency`] (`Idempotency-Key`), [`admission`] (bounded writers),
//!   [`list_query`], [`deadline`] (a caller's deadline, passed on),
//!   [`peer`] (calls to another service with a circuit breaker),
//!   [`openapi`], [`actuator`], [`management`], [`metrics`],
//!   [`live_streams`], [`session_limits`], [`stream_tickets`];
//! - who is calling: [`auth`] (Ed25519 user tokens), [`signing_keys`],
//!   [`service_auth`] (order's tokens to payment and store),
//!   [`revocations`] and [`revocation_sync`] (disabled accounts),
//!   [`service_state`];
//! - the process: [`shutdown`], [`clock`].

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
