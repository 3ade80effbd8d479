//! A service's own SQLite database: one writer connection (SQLite allows one
//! writer at a time; queueing in the pool is cheaper than lock retries) and a
//! pool of readers, in WAL mode so readers never wait for the writer.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Sqlite, Transaction};

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database: {0}")]
    Sqlx(#[from] sqlx::Error),
    #[error("migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

#[derive(Clone, Debug)]
pub struct Db {
    writer: SqlitePool,
    reader: SqlitePool,
}

pub type Tx = Transaction<'static, Sqlite>;

impl Db {
    /// Opens (creating if needed) a service's database file and runs the
    /// platform's tables (outbox, inbox, ...) then the service's own
    /// migrations, whose versions start at 100.
    pub async fn open(path: &Path, migrator: &Migrator) -> Result<Db, DbError> {
        let platform = sqlx::migrate!("./migrations");
        Db::open_with(path, &[&platform, migrator]).await
    }

    /// Opens the database file and runs each migration set in turn; the sets
    /// share one history table, so each ignores the others' versions.
    pub async fn open_with(path: &Path, migrators: &[&Migrator]) -> Result<Db, DbError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| DbError::Sqlx(sqlx::Error::Io(e)))?;
        }
        let url = format!("sqlite://{}", path.display());
        let options = SqliteConnectOptions::from_str(&url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: an acknowledged write survives power loss, not only a
            // crash of the process.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.clone())
            .await?;
        for migrator in migrators {
            let mut set = Migrator {
                migrations: migrator.migrations.clone(),
                ..Migrator::DEFAULT
            };
            set.set_ignore_missing(true);
            set.run(&writer).await?;
        }
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.read_only(true))
            .await?;
        Ok(Db { writer, reader })
    }

    /// Starts a write transaction on the single writer connection. Call it
    /// from inside [`crate::detached`] or a background task, never directly
    /// from a request future.
    pub async fn begin(&self) -> Result<Tx, sqlx::Error> {
        self.writer.begin().await
    }

    pub fn writer(&self) -> &SqlitePool {
        &self.writer
    }

    pub fn reader(&self) -> &SqlitePool {
        &self.reader
    }

    /// True when a trivial query answers; used by readiness.
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.reader).await.is_ok()
    }

    pub async fn close(&self) {
        self.writer.close().await;
        self.reader.close().await;
    }
}
