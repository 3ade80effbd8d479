//! The one error type of Payment: every refusal and failure of charging and
//! showing payments. The HTTP layer maps it to problem+json in one place
//! (`http::problem`); nothing here knows about HTTP.

#[derive(Debug, thiserror::Error)]
pub enum PaymentError {
    /// The charge request asks for something that cannot be charged.
    #[error("{0}")]
    Invalid(&'static str),
    #[error("no payment for order {0}")]
    NotFound(i64),
    #[error("{0}")]
    Forbidden(&'static str),
    /// The caller stopped waiting before the charge: nothing was charged.
    #[error("the caller stopped waiting; nothing was charged")]
    DeadlinePassed,
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}
