//! What every service shares: storage, the outbox and the consumers that
//! read the event log, the embedded event log itself, auth, HTTP errors and
//! the actuator endpoints. Services add only their domain on top.

pub mod actuator;
pub mod admin;
pub mod auth;
pub mod clock;
pub mod consumer;
pub mod db;
pub mod event_log;
pub mod idempotency;
pub mod outbox;
pub mod problem;
pub mod shutdown;

pub use auth::{Principal, TokenKeys};
pub use db::Db;
pub use event_log::EventLog;
pub use problem::{ApiError, ApiJson, JsonBody};

/// Runs a write in its own task so that a client that hangs up cannot cancel
/// it half-way: a dropped SQLite transaction on the single writer connection
/// would otherwise leave the writer stuck.
pub async fn detached<T, F>(work: F) -> Result<T, ApiError>
where
    F: std::future::Future<Output = Result<T, ApiError>> + Send + 'static,
    T: Send + 'static,
{
    match tokio::spawn(work).await {
        Ok(result) => result,
        Err(join) => Err(ApiError::internal(format!("write task failed: {join}"))),
    }
}
