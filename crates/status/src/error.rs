//! The one error type of the status view's reads. The HTTP layer maps it to
//! problem+json in one place (`http::problem`); nothing here knows HTTP.

#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// No such order, or one the caller may not see: the same answer, so
    /// that ids reveal nothing.
    #[error("no status for order {0}")]
    NotFound(i64),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}
