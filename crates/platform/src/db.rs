//! A service's own database: SQLite (a file, the all-in-one default),
//! PostgreSQL or MySQL/MariaDB, picked by its URL.
//!
//! Every write goes through one group-commit task per process (see
//! [`crate::writer`]) and, inside the database, through one write lock: on
//! SQLite that is `BEGIN IMMEDIATE`, on the servers a row lock on
//! `write_lock` taken first in each transaction. So a service's writes are
//! serialized the same way on every backend and across replicas sharing a
//! database, and the read-check-write steps of the state machines need no
//! per-statement locking. Reads go to a pool and never wait for the writer.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use sqlx::migrate::{Migrate, MigrateDatabase, Migrator};
use sqlx::mysql::{MySql, MySqlConnectOptions, MySqlConnection, MySqlPool, MySqlPoolOptions};
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions, Postgres};
use sqlx::sqlite::{
    Sqlite, SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool,
    SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Database, Pool};

use crate::outbox::OutboxSignal;
use crate::session_limits::SessionLimits;
use crate::sql::Backend;
use crate::writer::Writer;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database: {0}")]
    Sqlx(#[from] sqlx::Error),
    #[error("migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database URL {0:?}: expected a file path, sqlite://PATH, postgres://... or mysql://... (mariadb://...)")]
    Url(String),
    /// The `mysql://` backend speaks MariaDB's SQL (`INSERT ... RETURNING`,
    /// `max_statement_time`), which MySQL does not understand.
    #[error("the server at {0} is MySQL {1}: only MariaDB (10.5 or later) is supported through mysql:// or mariadb://")]
    NotMariaDb(String, String),
}

/// Refuses a server that is not MariaDB, by its `VERSION()`.
fn require_mariadb(location: &Location, version: &str) -> Result<(), DbError> {
    if version.to_ascii_lowercase().contains("mariadb") {
        Ok(())
    } else {
        Err(DbError::NotMariaDb(
            location.to_string(),
            version.to_string(),
        ))
    }
}

/// What a database error means for the caller, whatever the backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The disk (or the server's storage) is full: nothing more can be
    /// written until space is freed.
    Full,
    /// The database cannot be reached or is busy for now: a broken or
    /// refused connection, a server shutting down, an exhausted pool, a
    /// lock or statement timeout.
    Unavailable,
}

impl Fault {
    /// Classifies an error; `None` for a bug (bad SQL, a decode error, a
    /// constraint), which retrying does not cure.
    pub fn of(err: &sqlx::Error) -> Option<Fault> {
        match err {
            sqlx::Error::Database(db) => {
                if let Some(failed) = db.try_downcast_ref::<crate::writer::WriteFailed>() {
                    return failed.fault();
                }
                if let Some(my) = db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>() {
                    return mysql_fault(my.number());
                }
                if let Some(pg) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
                    return postgres_fault(pg.code());
                }
                if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                    return sqlite_fault(db.code()?.parse().ok()?);
                }
                None
            }
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => Some(Fault::Unavailable),
            _ => None,
        }
    }
}

/// SQLite result codes; the extended code's low byte is the primary one.
fn sqlite_fault(code: i32) -> Option<Fault> {
    match code & 0xff {
        // SQLITE_FULL
        13 => Some(Fault::Full),
        // BUSY, LOCKED, IOERR (a failed write or fsync), CANTOPEN
        5 | 6 | 10 | 14 => Some(Fault::Unavailable),
        _ => None,
    }
}

/// PostgreSQL SQLSTATEs.
fn postgres_fault(state: &str) -> Option<Fault> {
    match state {
        // disk_full, out_of_memory... (class 53: insufficient resources)
        "53100" => Some(Fault::Full),
        s if s.starts_with("53") => Some(Fault::Unavailable),
        // connection exceptions; admin/crash shutdown, cannot connect now;
        // statement or lock timeout; serialization failure, deadlock
        s if s.starts_with("08") => Some(Fault::Unavailable),
        "57P01" | "57P02" | "57P03" | "57014" | "55P03" | "40001" | "40P01" | "25P03" => {
            Some(Fault::Unavailable)
        }
        _ => None,
    }
}

/// MySQL/MariaDB error numbers.
fn mysql_fault(number: u16) -> Option<Fault> {
    match number {
        // ER_DISK_FULL, ER_RECORD_FILE_FULL, ER_ERROR_ON_WRITE
        1021 | 1114 | 3 => Some(Fault::Full),
        // server shutdown, connection killed, lost or gone; lock wait
        // timeout, deadlock, statement timeout; too many connections
        1053 | 1077 | 1927 | 2006 | 2013 | 1205 | 1213 | 1969 | 3024 | 1040 | 1152 | 1158
        | 1159 | 1160 | 1161 => Some(Fault::Unavailable),
        _ => None,
    }
}

/// Where a service keeps its data.
#[derive(Clone, PartialEq, Eq)]
pub enum Location {
    Sqlite(PathBuf),
    Postgres(String),
    MySql(String),
}

impl FromStr for Location {
    type Err = DbError;

    fn from_str(s: &str) -> Result<Self, DbError> {
        let s = s.trim();
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            Ok(Location::Postgres(s.to_string()))
        } else if s.starts_with("mysql://") {
            Ok(Location::MySql(s.to_string()))
        } else if let Some(rest) = s.strip_prefix("mariadb://") {
            Ok(Location::MySql(format!("mysql://{rest}")))
        } else if let Some(path) = s
            .strip_prefix("sqlite://")
            .or_else(|| s.strip_prefix("sqlite:"))
        {
            Ok(Location::Sqlite(PathBuf::from(path)))
        } else if s.is_empty() || s.contains("://") {
            Err(DbError::Url(s.to_string()))
        } else {
            Ok(Location::Sqlite(PathBuf::from(s)))
        }
    }
}

impl fmt::Display for Location {
    /// Shows where the data is without the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Sqlite(p) => write!(f, "sqlite://{}", p.display()),
            Location::Postgres(u) | Location::MySql(u) => match url::Url::parse(u) {
                Ok(mut parsed) => {
                    if parsed.password().is_some() {
                        let _ = parsed.set_password(Some("***"));
                    }
                    write!(f, "{parsed}")
                }
                Err(_) => f.write_str("(unparsable URL)"),
            },
        }
    }
}

impl fmt::Debug for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Location {
    pub fn backend(&self) -> Backend {
        match self {
            Location::Sqlite(_) => Backend::Sqlite,
            Location::Postgres(_) => Backend::Postgres,
            Location::MySql(_) => Backend::MySql,
        }
    }
}

/// A service's migrations, from its crate's `migrations/sqlite`,
/// `migrations/postgres` and `migrations/mysql` folders (the crate needs
/// sqlx for `sqlx::migrate!`).
#[macro_export]
macro_rules! migrations {
    () => {
        $crate::Migrations {
            sqlite: sqlx::migrate!("./migrations/sqlite"),
            postgres: sqlx::migrate!("./migrations/postgres"),
            mysql: sqlx::migrate!("./migrations/mysql"),
        }
    };
}

/// A schema's migrations, one folder per backend.
pub struct Migrations {
    pub sqlite: Migrator,
    pub postgres: Migrator,
    pub mysql: Migrator,
}

impl Migrations {
    pub(crate) fn platform() -> Migrations {
        crate::migrations!()
    }
}

pub(crate) enum Pools {
    Sqlite {
        writer: SqlitePool,
        reader: SqlitePool,
    },
    Postgres(PgPool),
    MySql(MySqlPool),
}

struct Inner {
    pools: Pools,
    writer: Writer,
    location: Location,
    /// Rung by the writer after a commit that wrote to the outbox.
    outbox: OutboxSignal,
}

#[derive(Clone)]
pub struct Db {
    inner: Arc<Inner>,
}

impl fmt::Debug for Db {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Db({})", self.inner.location)
    }
}

const SERVER_POOL: u32 = 10;

/// How long a request waits for a connection to a database server:
/// `HANWHA_DB_ACQUIRE_TIMEOUT_MS`, default 2 s. While the server is down,
/// sqlx keeps retrying a refused connection until this runs out, so it is
/// also how long a request waits before it is answered 503; a healthy pool
/// of [`SERVER_POOL`] connections hands one out in well under that.
fn server_acquire_timeout() -> Duration {
    std::env::var("HANWHA_DB_ACQUIRE_TIMEOUT_MS")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|ms| Duration::from_millis(ms.max(1)))
        .unwrap_or(Duration::from_secs(2))
}

impl Db {
    /// Opens (creating if needed) a service's database and runs the
    /// platform's tables (outbox, inbox, ...) then the service's own
    /// migrations, whose versions start at 100.
    pub async fn open(location: &Location, migrations: &Migrations) -> Result<Db, DbError> {
        Db::open_with(location, &[&Migrations::platform(), migrations]).await
    }

    /// Opens a SQLite file with only the given migrations (the embedded
    /// event log keeps no outbox of its own).
    pub async fn open_sqlite(path: &Path, migrator: &Migrator) -> Result<Db, DbError> {
        let location = Location::Sqlite(path.to_path_buf());
        let pools = open_sqlite(path, &[migrator]).await?;
        Ok(Db::start(location, pools))
    }

    /// Opens the database and runs each migration set in turn; the sets
    /// share one history table, so each ignores the others' versions.
    pub async fn open_with(location: &Location, sets: &[&Migrations]) -> Result<Db, DbError> {
        let pools = match location {
            Location::Sqlite(path) => {
                let sets: Vec<&Migrator> = sets.iter().map(|m| &m.sqlite).collect();
                open_sqlite(path, &sets).await?
            }
            Location::Postgres(url) => {
                create_if_missing::<Postgres>(url).await?;
                let options =
                    PgConnectOptions::from_str(url)?.options(SessionLimits::from_env().postgres());
                let pool = PgPoolOptions::new()
                    .max_connections(SERVER_POOL)
                    .acquire_timeout(server_acquire_timeout())
                    .connect_with(options)
                    .await?;
                let sets: Vec<&Migrator> = sets.iter().map(|m| &m.postgres).collect();
                migrate(&pool, &sets).await?;
                Pools::Postgres(pool)
            }
            Location::MySql(url) => {
                create_if_missing::<MySql>(url).await?;
                let options = MySqlConnectOptions::from_str(url)?;
                let version: String = {
                    use sqlx::Connection;
                    let mut conn = MySqlConnection::connect_with(&options).await?;
                    let version = sqlx::query_scalar("SELECT VERSION()")
                        .fetch_one(&mut conn)
                        .await?;
                    conn.close().await?;
                    version
                };
                require_mariadb(location, &version)?;
                let limits = SessionLimits::from_env().mariadb();
                let pool = MySqlPoolOptions::new()
                    .max_connections(SERVER_POOL)
                    .after_connect(move |conn, _| {
                        let limits = limits.clone();
                        Box::pin(async move {
                            use sqlx::Executor;
                            conn.execute(limits.as_str()).await.map(drop)
                        })
                    })
                    .acquire_timeout(server_acquire_timeout())
                    .connect_with(options)
                    .await?;
                let sets: Vec<&Migrator> = sets.iter().map(|m| &m.mysql).collect();
                migrate(&pool, &sets).await?;
                Pools::MySql(pool)
            }
        };
        Ok(Db::start(location.clone(), pools))
    }

    fn start(location: Location, pools: Pools) -> Db {
        let outbox = OutboxSignal::default();
        let writer = Writer::start(WritePool::of(&pools), outbox.clone());
        Db {
            inner: Arc::new(Inner {
                pools,
                writer,
                location,
                outbox,
            }),
        }
    }

    /// What the relay of this database's outbox waits on.
    pub(crate) fn outbox_signal(&self) -> &OutboxSignal {
        &self.inner.outbox
    }

    pub fn backend(&self) -> Backend {
        self.inner.location.backend()
    }

    /// True when both handles are the same open database.
    pub fn same(&self, other: &Db) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    pub fn location(&self) -> &Location {
        &self.inner.location
    }

    pub(crate) fn pools(&self) -> &Pools {
        &self.inner.pools
    }

    /// Runs a write in the next group commit and returns its result once
    /// it is durable. The closure gets the transaction's connection:
    /// `db.write(move |conn| Box::pin(async move { ...; Ok(x) })).await`.
    pub async fn write<T, E, F>(&self, work: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<sqlx::Error> + Send + 'static,
        F: for<'c> FnOnce(&'c mut Conn) -> BoxFuture<'c, Result<T, E>> + Send + 'static,
    {
        self.inner.writer.write(work).await
    }

    /// Runs several reads on one consistent snapshot of the database.
    pub async fn read<T, E, F>(&self, work: F) -> Result<T, E>
    where
        E: From<sqlx::Error>,
        F: for<'c> FnOnce(&'c mut Conn) -> BoxFuture<'c, Result<T, E>>,
    {
        let mut conn = self.read_conn().await?;
        let begin = match self.backend() {
            Backend::Sqlite => "BEGIN",
            Backend::Postgres => "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY",
            Backend::MySql => "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY",
        };
        if self.backend() == Backend::MySql {
            conn.raw("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                .await?;
        }
        conn.begin(begin).await?;
        let result = work(&mut conn).await;
        conn.finish("ROLLBACK").await?;
        result
    }

    async fn read_conn(&self) -> Result<Conn, sqlx::Error> {
        Ok(Conn::new(match &self.inner.pools {
            Pools::Sqlite { reader, .. } => Owned::Sqlite(reader.acquire().await?),
            Pools::Postgres(p) => Owned::Postgres(p.acquire().await?),
            Pools::MySql(p) => Owned::MySql(p.acquire().await?),
        }))
    }

    /// True when a trivial query answers; used by readiness.
    pub async fn ping(&self) -> bool {
        crate::sql::query("SELECT 1").execute(self).await.is_ok()
    }

    pub async fn close(&self) {
        self.inner.writer.stop().await;
        match &self.inner.pools {
            Pools::Sqlite { writer, reader } => {
                writer.close().await;
                reader.close().await;
            }
            Pools::Postgres(p) => p.close().await,
            Pools::MySql(p) => p.close().await,
        }
    }
}

async fn open_sqlite(path: &Path, sets: &[&Migrator]) -> Result<Pools, DbError> {
    crate::files::private_database(path).map_err(|e| DbError::Sqlx(sqlx::Error::Io(e)))?;
    let options = SqliteConnectOptions::new()
        .filename(path)
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
    migrate(&writer, sets).await?;
    let reader = SqlitePoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(30))
        .connect_with(options.read_only(true))
        .await?;
    Ok(Pools::Sqlite { writer, reader })
}

async fn migrate<DB>(pool: &Pool<DB>, sets: &[&Migrator]) -> Result<(), DbError>
where
    DB: Database,
    DB::Connection: Migrate,
{
    for migrator in sets {
        let mut set = Migrator {
            migrations: migrator.migrations.clone(),
            ..Migrator::DEFAULT
        };
        set.set_ignore_missing(true);
        set.run(pool).await?;
    }
    Ok(())
}

/// Creates a server database on first start, so a fresh fleet needs no
/// setup beyond a server and a user allowed to create databases.
async fn create_if_missing<DB: MigrateDatabase>(url: &str) -> Result<(), DbError> {
    if DB::database_exists(url).await? {
        return Ok(());
    }
    if let Err(e) = DB::create_database(url).await {
        // Another replica may have created it a moment ago.
        if !DB::database_exists(url).await? {
            return Err(e.into());
        }
    }
    Ok(())
}

/// Where the writer gets its connection for each batch.
#[derive(Clone)]
pub(crate) enum WritePool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
    MySql(MySqlPool),
}

impl WritePool {
    fn of(pools: &Pools) -> WritePool {
        match pools {
            Pools::Sqlite { writer, .. } => WritePool::Sqlite(writer.clone()),
            Pools::Postgres(p) => WritePool::Postgres(p.clone()),
            Pools::MySql(p) => WritePool::MySql(p.clone()),
        }
    }

    /// A connection in a transaction that holds the database's write lock.
    pub(crate) async fn begin(&self) -> Result<Conn, sqlx::Error> {
        let mut conn = Conn::new(match self {
            WritePool::Sqlite(p) => Owned::Sqlite(p.acquire().await?),
            WritePool::Postgres(p) => Owned::Postgres(p.acquire().await?),
            WritePool::MySql(p) => Owned::MySql(p.acquire().await?),
        });
        match conn.backend() {
            // IMMEDIATE: take the write lock up front. A deferred
            // transaction that must later upgrade fails at once instead of
            // waiting its turn.
            Backend::Sqlite => conn.begin("BEGIN IMMEDIATE").await?,
            Backend::Postgres | Backend::MySql => {
                conn.begin("BEGIN").await?;
                conn.raw("SELECT id FROM write_lock WHERE id = 1 FOR UPDATE")
                    .await?;
            }
        }
        Ok(conn)
    }
}

pub(crate) enum Owned {
    Sqlite(PoolConnection<Sqlite>),
    Postgres(PoolConnection<Postgres>),
    MySql(PoolConnection<MySql>),
}

pub(crate) enum Handle<'a> {
    Sqlite(&'a mut SqliteConnection),
    Postgres(&'a mut PgConnection),
    MySql(&'a mut MySqlConnection),
}

/// A connection inside a transaction of [`Db::write`] or [`Db::read`].
pub struct Conn {
    owned: Owned,
    in_transaction: bool,
    savepoints: u32,
    /// Savepoints dropped without commit; rolled back before the next
    /// statement, since a destructor cannot wait for the database.
    abandoned: Vec<String>,
    /// An event went into the outbox: the relay is woken once the
    /// transaction commits.
    pub(crate) wrote_outbox: bool,
}

impl Conn {
    fn new(owned: Owned) -> Conn {
        Conn {
            owned,
            in_transaction: false,
            savepoints: 0,
            abandoned: Vec::new(),
            wrote_outbox: false,
        }
    }

    pub fn backend(&self) -> Backend {
        match self.owned {
            Owned::Sqlite(_) => Backend::Sqlite,
            Owned::Postgres(_) => Backend::Postgres,
            Owned::MySql(_) => Backend::MySql,
        }
    }

    pub(crate) fn handle(&mut self) -> Handle<'_> {
        match &mut self.owned {
            Owned::Sqlite(c) => Handle::Sqlite(c),
            Owned::Postgres(c) => Handle::Postgres(c),
            Owned::MySql(c) => Handle::MySql(c),
        }
    }

    /// Runs a statement without parameters (transaction control).
    /// Boxed where the lifetimes are concrete (see `sql::Query::execute`).
    pub(crate) fn raw<'a>(&'a mut self, sql: &'a str) -> BoxFuture<'a, Result<(), sqlx::Error>> {
        use sqlx::Executor;
        // The way sqlx's own transaction managers send these statements.
        match self.handle() {
            Handle::Sqlite(c) => Box::pin(async move { c.execute(sql).await.map(drop) }),
            Handle::Postgres(c) => Box::pin(async move { c.execute(sql).await.map(drop) }),
            Handle::MySql(c) => Box::pin(async move { c.execute(sql).await.map(drop) }),
        }
    }

    /// Opens a transaction. The connection counts as inside one from the
    /// moment the statement is sent: a caller dropped while `BEGIN` is on
    /// its way (a client hanging up) must not hand a connection that the
    /// database put in a transaction back to the pool. A failed `BEGIN`
    /// leaves it marked too, so a connection in an unknown state is closed.
    pub(crate) async fn begin(&mut self, sql: &str) -> Result<(), sqlx::Error> {
        self.in_transaction = true;
        self.raw(sql).await
    }

    /// Ends the transaction with `COMMIT` or `ROLLBACK`.
    pub(crate) async fn finish(&mut self, sql: &str) -> Result<(), sqlx::Error> {
        let result = self.raw(sql).await;
        if result.is_ok() {
            self.in_transaction = false;
        }
        result
    }

    /// Rolls back savepoints that were dropped without an outcome.
    pub(crate) async fn settle(&mut self) -> Result<(), sqlx::Error> {
        while let Some(name) = self.abandoned.pop() {
            self.raw(&format!("ROLLBACK TO SAVEPOINT {name}")).await?;
            self.raw(&format!("RELEASE SAVEPOINT {name}")).await?;
        }
        Ok(())
    }

    /// Starts a nested unit of work: its changes land with the enclosing
    /// transaction on [`Savepoint::commit`], and are undone alone on
    /// [`Savepoint::rollback`] or when it is dropped.
    pub async fn savepoint(&mut self) -> Result<Savepoint<'_>, sqlx::Error> {
        self.settle().await?;
        self.savepoints += 1;
        let name = format!("sp{}", self.savepoints);
        if let Err(e) = self.raw(&format!("SAVEPOINT {name}")).await {
            self.savepoints -= 1;
            return Err(e);
        }
        Ok(Savepoint {
            conn: self,
            name,
            open: true,
        })
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        if self.in_transaction {
            // Never hand a connection with a half-done transaction back to
            // the pool.
            match &mut self.owned {
                Owned::Sqlite(c) => c.close_on_drop(),
                Owned::Postgres(c) => c.close_on_drop(),
                Owned::MySql(c) => c.close_on_drop(),
            }
        }
    }
}

pub struct Savepoint<'a> {
    conn: &'a mut Conn,
    name: String,
    open: bool,
}

impl Savepoint<'_> {
    pub async fn commit(mut self) -> Result<(), sqlx::Error> {
        self.conn.settle().await?;
        self.open = false;
        self.conn.savepoints -= 1;
        self.conn
            .raw(&format!("RELEASE SAVEPOINT {}", self.name))
            .await
    }

    pub async fn rollback(mut self) -> Result<(), sqlx::Error> {
        self.conn.settle().await?;
        self.open = false;
        self.conn.savepoints -= 1;
        let name = self.name.clone();
        self.conn
            .raw(&format!("ROLLBACK TO SAVEPOINT {name}"))
            .await?;
        self.conn.raw(&format!("RELEASE SAVEPOINT {name}")).await
    }
}

impl std::ops::Deref for Savepoint<'_> {
    type Target = Conn;
    fn deref(&self) -> &Conn {
        self.conn
    }
}

impl std::ops::DerefMut for Savepoint<'_> {
    fn deref_mut(&mut self) -> &mut Conn {
        self.conn
    }
}

impl Drop for Savepoint<'_> {
    fn drop(&mut self) {
        if self.open {
            self.conn.savepoints -= 1;
            self.conn.abandoned.push(std::mem::take(&mut self.name));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_by_url() {
        let l: Location = "postgres://root@127.0.0.1/order".parse().expect("valid");
        assert_eq!(l.backend(), Backend::Postgres);
        let l: Location = "mariadb://root@127.0.0.1/store".parse().expect("valid");
        assert_eq!(l, Location::MySql("mysql://root@127.0.0.1/store".into()));
        let l: Location = "sqlite://data/x.db".parse().expect("valid");
        let maria: Location = "mysql://root@127.0.0.1/store".parse().expect("valid");
        assert!(require_mariadb(&maria, "10.11.6-MariaDB-0+deb12u1").is_ok());
        let refused = require_mariadb(&maria, "8.0.36").expect_err("MySQL is refused");
        assert!(refused.to_string().contains("only MariaDB"), "{refused}");
        assert_eq!(l, Location::Sqlite("data/x.db".into()));
        let l: Location = "data/x.db".parse().expect("valid");
        assert_eq!(l, Location::Sqlite("data/x.db".into()));
        assert!("redis://x".parse::<Location>().is_err());
        assert!("".parse::<Location>().is_err());
    }

    #[test]
    fn passwords_are_not_shown() {
        let l: Location = "postgres://app:secret@db/order".parse().expect("valid");
        assert_eq!(l.to_string(), "postgres://app:***@db/order");
    }
}
