//! The one error type of Identity: every refusal and failure of logging in,
//! signing up, sessions, passwords and accounts. The HTTP layer maps it to
//! problem+json in one place (`http`'s `From<IdentityError> for ApiError`);
//! nothing here knows about HTTP.

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The request breaks a rule for names, passwords, stores or accounts.
    #[error("{0}")]
    Invalid(&'static str),
    /// Unknown account or wrong password: the same answer for both, so that
    /// a login does not tell which names exist.
    #[error("wrong username or password")]
    WrongCredentials,
    /// The right password of a disabled account.
    #[error("this account is disabled")]
    Disabled,
    /// A session's own account was disabled after the token was issued.
    #[error("this account is disabled")]
    DisabledSince,
    #[error("session expired; log in again")]
    SessionExpired,
    #[error("no user {0}")]
    NoUser(i64),
    #[error("the username {0} is taken")]
    Taken(String),
    /// Too many failed logins for the account or from the address.
    #[error("too many failed logins; wait before trying again")]
    Throttled { wait_secs: u64 },
    /// Every hashing turn is taken and the queue behind them is full.
    #[error("too many sign-ins at once; retry in a moment")]
    HashingBusy,
    #[error("{0}")]
    Internal(String),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}
