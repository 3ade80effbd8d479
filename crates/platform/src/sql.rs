//! Statements that run unchanged on SQLite, PostgreSQL and MySQL/MariaDB.
//!
//! Services write one SQL text with `?` or `?N` placeholders and bind plain
//! values; each statement runs through the backend's own sqlx driver, so
//! values are encoded and decoded by that driver's types (not by a lowest
//! common denominator like `sqlx::Any`). What differs between the backends
//! is handled here: placeholders are renumbered for PostgreSQL and expanded
//! in order for MySQL, which has no numbered placeholders. Dialect
//! differences a statement cannot hide (upserts) are chosen by the caller
//! from [`Conn::backend`].

use std::fmt;

use futures::future::BoxFuture;

use sqlx::mysql::{MySql, MySqlRow};
use sqlx::postgres::{PgRow, Postgres};
use sqlx::sqlite::{Sqlite, SqliteRow};
use sqlx::{ColumnIndex, Database, Decode, Encode, Type};

use crate::db::{Conn, Db};

/// The database family a service's URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
    MySql,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
            Backend::MySql => "mysql",
        })
    }
}

/// A bound value, owned so a statement can be renumbered or repeated.
#[derive(Debug, Clone)]
pub enum Param {
    Int(Option<i64>),
    Text(Option<String>),
    Bool(Option<bool>),
    Bytes(Option<Vec<u8>>),
}

pub trait IntoParam {
    fn into_param(self) -> Param;
}

macro_rules! into_param {
    ($variant:ident: $($t:ty => |$v:ident| $e:expr),+ $(,)?) => {$(
        impl IntoParam for $t {
            fn into_param(self) -> Param {
                let $v = self;
                Param::$variant(Some($e))
            }
        }
        impl IntoParam for Option<$t> {
            fn into_param(self) -> Param {
                Param::$variant(self.map(|$v| $e))
            }
        }
    )+};
}

into_param!(Int: i64 => |v| v, &i64 => |v| *v, i32 => |v| i64::from(v), u32 => |v| i64::from(v));
into_param!(Text: String => |v| v, &str => |v| v.to_string(), &String => |v| v.clone());
into_param!(Bool: bool => |v| v);

impl IntoParam for &Option<String> {
    fn into_param(self) -> Param {
        Param::Text(self.clone())
    }
}
into_param!(Bytes: Vec<u8> => |v| v, &[u8] => |v| v.to_vec());

/// A type every backend can decode a column into.
pub trait Value:
    Sized
    + for<'r> Decode<'r, Sqlite>
    + Type<Sqlite>
    + for<'r> Decode<'r, Postgres>
    + Type<Postgres>
    + for<'r> Decode<'r, MySql>
    + Type<MySql>
{
}

impl<T> Value for T where
    T: Sized
        + for<'r> Decode<'r, Sqlite>
        + Type<Sqlite>
        + for<'r> Decode<'r, Postgres>
        + Type<Postgres>
        + for<'r> Decode<'r, MySql>
        + Type<MySql>
{
}

/// A column position or name on every backend.
pub trait Index:
    ColumnIndex<SqliteRow> + ColumnIndex<PgRow> + ColumnIndex<MySqlRow> + fmt::Debug
{
}

impl<I> Index for I where
    I: ColumnIndex<SqliteRow> + ColumnIndex<PgRow> + ColumnIndex<MySqlRow> + fmt::Debug
{
}

/// One result row from whichever backend ran the statement.
pub enum Row {
    Sqlite(SqliteRow),
    Postgres(PgRow),
    MySql(MySqlRow),
}

impl Row {
    pub fn try_get<T: Value, I: Index>(&self, index: I) -> Result<T, sqlx::Error> {
        use sqlx::Row as _;
        match self {
            Row::Sqlite(r) => r.try_get(index),
            Row::Postgres(r) => r.try_get(index),
            Row::MySql(r) => r.try_get(index),
        }
    }

    /// Like [`Row::try_get`], for columns whose type the schema fixes.
    ///
    /// # Panics
    /// When the column is missing or of another type: a bug in the
    /// statement or the schema, not in the input.
    pub fn get<T: Value, I: Index>(&self, index: I) -> T {
        match self.try_get(index) {
            Ok(v) => v,
            Err(e) => panic!("column does not match the schema: {e}"),
        }
    }
}

/// Where a statement runs: inside a write (or read) of [`Db`], or on the
/// database's read pool.
pub enum Target<'a> {
    Conn(&'a mut Conn),
    Db(&'a Db),
}

impl<'a> From<&'a mut Conn> for Target<'a> {
    fn from(c: &'a mut Conn) -> Self {
        Target::Conn(c)
    }
}

impl<'a> From<&'a Db> for Target<'a> {
    fn from(db: &'a Db) -> Self {
        Target::Db(db)
    }
}

impl Target<'_> {
    fn backend(&self) -> Backend {
        match self {
            Target::Conn(c) => c.backend(),
            Target::Db(db) => db.backend(),
        }
    }
}

/// The outcome of a statement that returns no rows.
#[derive(Debug, Clone, Copy)]
pub struct Done {
    rows: u64,
}

impl Done {
    pub fn rows_affected(&self) -> u64 {
        self.rows
    }
}

/// A stored value this code cannot read (a status it does not know): an
/// error, never a silent default.
pub fn unknown_value(column: &str, value: &str) -> sqlx::Error {
    sqlx::Error::ColumnDecode {
        index: column.to_string(),
        source: format!("unknown stored value {value:?}").into(),
    }
}

pub fn query(sql: impl Into<String>) -> Query {
    Query {
        sql: sql.into(),
        params: Vec::new(),
    }
}

/// A statement whose first column is the result.
pub fn query_scalar<T: Value>(sql: impl Into<String>) -> Scalar<T> {
    Scalar {
        query: query(sql),
        _t: std::marker::PhantomData,
    }
}

#[must_use = "a statement does nothing until it is executed"]
pub struct Query {
    sql: String,
    params: Vec<Param>,
}

fn bind_all<'q, DB: Database>(
    sql: &'q str,
    params: Vec<Param>,
) -> sqlx::query::Query<'q, DB, <DB as Database>::Arguments<'q>>
where
    Option<i64>: Encode<'q, DB> + Type<DB>,
    Option<String>: Encode<'q, DB> + Type<DB>,
    Option<bool>: Encode<'q, DB> + Type<DB>,
    Option<Vec<u8>>: Encode<'q, DB> + Type<DB>,
{
    let mut q = sqlx::query::<DB>(sql);
    for p in params {
        q = match p {
            Param::Int(v) => q.bind(v),
            Param::Text(v) => q.bind(v),
            Param::Bool(v) => q.bind(v),
            Param::Bytes(v) => q.bind(v),
        };
    }
    q
}

/// Runs `$method` with the statement bound for the target's backend and
/// wraps each row with `$wrap`.
macro_rules! run {
    ($target:expr, $sql:expr, $params:expr, |$q:ident, $ex:ident, $wrap:ident| $body:expr) => {{
        match $target {
            Target::Conn(conn) => {
                conn.settle().await?;
                match conn.handle() {
                    crate::db::Handle::Sqlite($ex) => {
                        let $q = bind_all::<Sqlite>($sql, $params);
                        let $wrap = Row::Sqlite;
                        $body
                    }
                    crate::db::Handle::Postgres($ex) => {
                        let $q = bind_all::<Postgres>($sql, $params);
                        let $wrap = Row::Postgres;
                        $body
                    }
                    crate::db::Handle::MySql($ex) => {
                        let $q = bind_all::<MySql>($sql, $params);
                        let $wrap = Row::MySql;
                        $body
                    }
                }
            }
            Target::Db(db) => match db.pools() {
                crate::db::Pools::Sqlite { reader: $ex, .. } => {
                    let $q = bind_all::<Sqlite>($sql, $params);
                    let $wrap = Row::Sqlite;
                    $body
                }
                crate::db::Pools::Postgres($ex) => {
                    let $q = bind_all::<Postgres>($sql, $params);
                    let $wrap = Row::Postgres;
                    $body
                }
                crate::db::Pools::MySql($ex) => {
                    let $q = bind_all::<MySql>($sql, $params);
                    let $wrap = Row::MySql;
                    $body
                }
            },
        }
    }};
}

impl Query {
    pub fn bind(mut self, value: impl IntoParam) -> Query {
        self.params.push(value.into_param());
        self
    }

    // The futures are boxed here, where the connection's lifetime is
    // concrete; left unboxed, callers inside `Db::write` closures hit
    // "Send is not general enough" from the drivers' executors.
    pub fn execute<'a>(
        self,
        on: impl Into<Target<'a>>,
    ) -> BoxFuture<'a, Result<Done, sqlx::Error>> {
        let target = on.into();
        Box::pin(async move {
            let (sql, params) = prepare(target.backend(), self.sql, self.params)?;
            let rows = run!(target, &sql, params, |q, ex, _wrap| q
                .execute(ex)
                .await?
                .rows_affected());
            Ok(Done { rows })
        })
    }

    pub fn fetch_all<'a>(
        self,
        on: impl Into<Target<'a>>,
    ) -> BoxFuture<'a, Result<Vec<Row>, sqlx::Error>> {
        let target = on.into();
        Box::pin(async move {
            let (sql, params) = prepare(target.backend(), self.sql, self.params)?;
            Ok(run!(target, &sql, params, |q, ex, wrap| q
                .fetch_all(ex)
                .await?
                .into_iter()
                .map(wrap)
                .collect()))
        })
    }

    pub fn fetch_optional<'a>(
        self,
        on: impl Into<Target<'a>>,
    ) -> BoxFuture<'a, Result<Option<Row>, sqlx::Error>> {
        let target = on.into();
        Box::pin(async move {
            let (sql, params) = prepare(target.backend(), self.sql, self.params)?;
            Ok(run!(target, &sql, params, |q, ex, wrap| q
                .fetch_optional(ex)
                .await?
                .map(wrap)))
        })
    }

    pub async fn fetch_one<'a>(self, on: impl Into<Target<'a>>) -> Result<Row, sqlx::Error> {
        self.fetch_optional(on)
            .await?
            .ok_or(sqlx::Error::RowNotFound)
    }
}

#[must_use = "a statement does nothing until it is executed"]
pub struct Scalar<T> {
    query: Query,
    _t: std::marker::PhantomData<fn() -> T>,
}

impl<T: Value> Scalar<T> {
    pub fn bind(mut self, value: impl IntoParam) -> Self {
        self.query = self.query.bind(value);
        self
    }

    pub async fn fetch_one<'a>(self, on: impl Into<Target<'a>>) -> Result<T, sqlx::Error> {
        self.query.fetch_one(on).await?.try_get(0)
    }

    pub async fn fetch_optional<'a>(
        self,
        on: impl Into<Target<'a>>,
    ) -> Result<Option<T>, sqlx::Error> {
        match self.query.fetch_optional(on).await? {
            Some(row) => Ok(Some(row.try_get(0)?)),
            None => Ok(None),
        }
    }

    pub async fn fetch_all<'a>(self, on: impl Into<Target<'a>>) -> Result<Vec<T>, sqlx::Error> {
        self.query
            .fetch_all(on)
            .await?
            .iter()
            .map(|row| row.try_get(0))
            .collect()
    }
}

/// `insert` (an `INSERT INTO ... VALUES ...`) that skips a row whose key
/// `target` (e.g. `"(order_id)"`) is already taken, changing nothing.
pub fn insert_ignoring_duplicates(backend: Backend, insert: &str, target: &str) -> String {
    match backend {
        // IGNORE also skips duplicates only here: the statements are
        // strict-mode inserts of validated values.
        Backend::MySql => insert.replacen("INSERT INTO", "INSERT IGNORE INTO", 1),
        Backend::Sqlite | Backend::Postgres => format!("{insert} ON CONFLICT {target} DO NOTHING"),
    }
}

/// `insert` that, when key `target` is taken, updates that row with `set`.
/// In `set`, name a stored value with its table (`t.col`): a bare name is
/// ambiguous on PostgreSQL.
pub fn upsert(backend: Backend, insert: &str, target: &str, set: &str) -> String {
    match backend {
        Backend::MySql => format!("{insert} ON DUPLICATE KEY UPDATE {set}"),
        Backend::Sqlite | Backend::Postgres => {
            format!("{insert} ON CONFLICT {target} DO UPDATE SET {set}")
        }
    }
}

/// Rewrites the placeholders of `sql` for `backend` and orders the values
/// to match. SQLite takes `?` and `?N` as written. PostgreSQL gets `$N`.
/// MySQL gets a plain `?` per use, with the value repeated for each.
/// Text in quotes is left alone.
fn prepare(
    backend: Backend,
    sql: impl Into<String>,
    params: Vec<Param>,
) -> Result<(String, Vec<Param>), sqlx::Error> {
    let sql = sql.into();
    if backend == Backend::Sqlite {
        return Ok((sql, params));
    }
    let mut out = String::with_capacity(sql.len() + 16);
    let mut order = Vec::new();
    let mut next = 0usize;
    let mut quote: Option<char> = None;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if let Some(q) = quote {
            out.push(c);
            if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '\'' | '"' | '`' => {
                quote = Some(c);
                out.push(c);
            }
            '?' => {
                let mut digits = String::new();
                while let Some(d) = chars.peek().copied().filter(char::is_ascii_digit) {
                    digits.push(d);
                    chars.next();
                }
                let n = if digits.is_empty() {
                    next += 1;
                    next
                } else {
                    let n: usize = digits.parse().map_err(|_| bad(&sql))?;
                    next = next.max(n);
                    n
                };
                if n == 0 || n > params.len() {
                    return Err(bad(&sql));
                }
                match backend {
                    Backend::Postgres => {
                        out.push('$');
                        out.push_str(&n.to_string());
                    }
                    _ => {
                        out.push('?');
                        order.push(n - 1);
                    }
                }
            }
            _ => out.push(c),
        }
    }
    let params = match backend {
        Backend::MySql => order.into_iter().map(|i| params[i].clone()).collect(),
        _ => params,
    };
    Ok((out, params))
}

fn bad(sql: &str) -> sqlx::Error {
    sqlx::Error::Protocol(format!("placeholders do not match the values bound: {sql}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ints(p: &[Param]) -> Vec<i64> {
        p.iter()
            .map(|p| match p {
                Param::Int(Some(v)) => *v,
                _ => -1,
            })
            .collect()
    }

    #[test]
    fn postgres_numbers_plain_and_numbered_placeholders() {
        let params = vec![Param::Int(Some(1)), Param::Int(Some(2))];
        let (sql, p) =
            prepare(Backend::Postgres, "a = ? AND b = ?", params.clone()).expect("valid");
        assert_eq!(sql, "a = $1 AND b = $2");
        assert_eq!(ints(&p), vec![1, 2]);
        let (sql, _) =
            prepare(Backend::Postgres, "?1 IS NULL OR a = ?1 OR b = ?2", params).expect("valid");
        assert_eq!(sql, "$1 IS NULL OR a = $1 OR b = $2");
    }

    #[test]
    fn mysql_repeats_values_for_repeated_placeholders() {
        let params = vec![
            Param::Int(Some(10)),
            Param::Int(Some(20)),
            Param::Int(Some(30)),
        ];
        let (sql, p) = prepare(
            Backend::MySql,
            "?2 IS NULL OR a = ?2 OR b = ?1 LIMIT ?3",
            params,
        )
        .expect("valid");
        assert_eq!(sql, "? IS NULL OR a = ? OR b = ? LIMIT ?");
        assert_eq!(ints(&p), vec![20, 20, 10, 30]);
    }

    #[test]
    fn quoted_question_marks_are_text() {
        let params = vec![Param::Int(Some(1))];
        let (sql, p) = prepare(Backend::MySql, "a = '?' AND b = ?", params).expect("valid");
        assert_eq!(sql, "a = '?' AND b = ?");
        assert_eq!(ints(&p), vec![1]);
    }

    #[test]
    fn a_placeholder_without_a_value_is_an_error() {
        let params = vec![Param::Int(Some(1))];
        assert!(prepare(Backend::Postgres, "a = ? AND b = ?", params.clone()).is_err());
        assert!(prepare(Backend::MySql, "a = ?2", params).is_err());
    }
}
