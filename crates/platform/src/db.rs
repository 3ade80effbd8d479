//! A service's own SQLite database: one write connection owned by a
//! group-commit task (SQLite allows one writer at a time; see
//! [`crate::writer`]) and a pool of readers, in WAL mode so readers never
//! wait for the writer.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use futures::future::BoxFuture;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::SqliteConnection;

use crate::writer::Writer;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database: {0}")]
    Sqlx(#[from] sqlx::Error),
    #[error("migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

#[derive(Clone, Debug)]
pub struct Db {
    pool: SqlitePool,
    writer: Writer,
    reader: SqlitePool,
}

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
        let pool = SqlitePoolOptions::new()
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
            set.run(&pool).await?;
        }
        let writer = Writer::start(pool.acquire().await?);
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.read_only(true))
            .await?;
        Ok(Db {
            pool,
            writer,
            reader,
        })
    }

    /// Runs a write in the next group commit and returns its result once
    /// it is durable. The closure gets the transaction's connection:
    /// `db.write(move |conn| Box::pin(async move { ...; Ok(x) })).await`.
    pub async fn write<T, E, F>(&self, work: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<sqlx::Error> + Send + 'static,
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, Result<T, E>> + Send + 'static,
    {
        self.writer.write(work).await
    }

    pub fn reader(&self) -> &SqlitePool {
        &self.reader
    }

    /// True when a trivial query answers; used by readiness.
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.reader).await.is_ok()
    }

    pub async fn close(&self) {
        self.writer.stop().await;
        self.pool.close().await;
        self.reader.close().await;
    }
}
