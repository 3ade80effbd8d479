//! How long a session on a database server may wait or sit idle. A peer
//! that freezes (a replica stopped mid-transaction, a client that went
//! away) must not hold the write lock of every replica sharing the
//! database: the server ends its session instead, and a writer waiting for
//! a lock gives up with an error rather than waiting forever.

use std::time::Duration;

/// Read from the environment once; defaults hold for a service whose
/// transactions are a few short statements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLimits {
    /// Longest wait for a row lock (the write lock included).
    pub lock_wait: Duration,
    /// Longest single statement.
    pub statement: Duration,
    /// Longest pause inside an open transaction before the server ends the
    /// session and releases its locks.
    pub idle_in_transaction: Duration,
}

impl Default for SessionLimits {
    fn default() -> Self {
        SessionLimits {
            lock_wait: Duration::from_secs(5),
            statement: Duration::from_secs(30),
            idle_in_transaction: Duration::from_secs(3),
        }
    }
}

impl SessionLimits {
    /// `HANWHA_DB_LOCK_TIMEOUT_MS`, `HANWHA_DB_STATEMENT_TIMEOUT_MS`,
    /// `HANWHA_DB_IDLE_IN_TRANSACTION_MS`; unset or unparsable keeps the
    /// default, and nothing can be switched off (0 is raised to 1 ms).
    pub fn from_env() -> SessionLimits {
        let read = |name: &str, default: Duration| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(|ms| Duration::from_millis(ms.max(1)))
                .unwrap_or(default)
        };
        let d = SessionLimits::default();
        SessionLimits {
            lock_wait: read("HANWHA_DB_LOCK_TIMEOUT_MS", d.lock_wait),
            statement: read("HANWHA_DB_STATEMENT_TIMEOUT_MS", d.statement),
            idle_in_transaction: read("HANWHA_DB_IDLE_IN_TRANSACTION_MS", d.idle_in_transaction),
        }
    }

    /// PostgreSQL startup options (`-c name=value`), in milliseconds.
    pub fn postgres(&self) -> [(&'static str, String); 3] {
        [
            ("lock_timeout", format!("{}ms", self.lock_wait.as_millis())),
            (
                "statement_timeout",
                format!("{}ms", self.statement.as_millis()),
            ),
            (
                "idle_in_transaction_session_timeout",
                format!("{}ms", self.idle_in_transaction.as_millis()),
            ),
        ]
    }

    /// MariaDB session settings, run on every new connection. InnoDB counts
    /// lock waits and idle transactions in whole seconds, so both round up.
    pub fn mariadb(&self) -> String {
        format!(
            "SET SESSION innodb_lock_wait_timeout = {}, max_statement_time = {}, idle_transaction_timeout = {}",
            whole_seconds(self.lock_wait),
            self.statement.as_secs_f64(),
            whole_seconds(self.idle_in_transaction),
        )
    }
}

fn whole_seconds(d: Duration) -> u64 {
    d.as_millis().div_ceil(1000).max(1) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_options_are_milliseconds() {
        let o = SessionLimits::default().postgres();
        assert_eq!(o[0], ("lock_timeout", "5000ms".to_string()));
        assert_eq!(
            o[2],
            ("idle_in_transaction_session_timeout", "3000ms".to_string())
        );
    }

    #[test]
    fn mariadb_seconds_round_up_and_never_reach_zero() {
        let limits = SessionLimits {
            lock_wait: Duration::from_millis(1500),
            statement: Duration::from_millis(2500),
            idle_in_transaction: Duration::from_millis(1),
        };
        assert_eq!(
            limits.mariadb(),
            "SET SESSION innodb_lock_wait_timeout = 2, max_statement_time = 2.5, idle_transaction_timeout = 1"
        );
    }
}
