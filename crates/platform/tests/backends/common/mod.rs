//! A fresh database per test on each backend: SQLite always; PostgreSQL
//! and MySQL/MariaDB when HANWHA_TEST_POSTGRES_URL / HANWHA_TEST_MYSQL_URL
//! name a server (a named server that cannot be reached fails the test).

use platform::sql::Backend;
use platform::{Db, Location, Migrations};
use sqlx::migrate::MigrateDatabase;
use sqlx::Connection;

pub struct TestDb {
    pub location: Location,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    /// A fresh database on `backend`, or `None` when its variable is unset.
    pub fn new(backend: Backend) -> Option<TestDb> {
        let tag = uuid::Uuid::new_v4().simple().to_string();
        let server = |var: &str| match std::env::var(var) {
            Ok(url) if !url.is_empty() => {
                Some(format!("{}/hanwha_t_{tag}", url.trim_end_matches('/')))
            }
            _ => {
                eprintln!("{var} unset: skipping the {backend} run");
                None
            }
        };
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                Some(TestDb {
                    location: Location::Sqlite(dir.path().join("t.db")),
                    _dir: Some(dir),
                })
            }
            Backend::Postgres => server("HANWHA_TEST_POSTGRES_URL").map(|url| TestDb {
                location: Location::Postgres(url),
                _dir: None,
            }),
            Backend::MySql => server("HANWHA_TEST_MYSQL_URL").map(|url| TestDb {
                location: Location::MySql(url.replacen("mariadb://", "mysql://", 1)),
                _dir: None,
            }),
        }
    }

    /// Opens it with the platform's tables and, if given, one more
    /// migration of the test's own.
    pub async fn open_with(&self, schema: Option<&str>) -> Db {
        let dir = tempfile::tempdir().expect("temp dir");
        if let Some(schema) = schema {
            std::fs::write(dir.path().join("100_test.sql"), schema).expect("migration");
        }
        let migrator = || sqlx::migrate::Migrator::new(dir.path().to_path_buf());
        let migrations = Migrations {
            sqlite: migrator().await.expect("migrator"),
            postgres: migrator().await.expect("migrator"),
            mysql: migrator().await.expect("migrator"),
        };
        Db::open(&self.location, &migrations)
            .await
            .unwrap_or_else(|e| panic!("open {}: {e}", self.location))
    }

    pub async fn drop_database(self) {
        let result = match &self.location {
            Location::Postgres(url) => {
                // FORCE: the server may not have reaped closed sessions yet.
                let (server, name) = url.rsplit_once('/').expect("database name");
                let mut admin = sqlx::PgConnection::connect(&format!("{server}/postgres"))
                    .await
                    .expect("connect");
                sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut admin)
                    .await
                    .map(drop)
            }
            Location::MySql(url) => sqlx::MySql::drop_database(url).await,
            Location::Sqlite(_) => Ok(()),
        };
        result.expect("drop the test database");
    }
}
