//! Retention on every backend: SQLite always; PostgreSQL and MySQL/MariaDB
//! when HANWHA_TEST_POSTGRES_URL / HANWHA_TEST_MYSQL_URL name a server. The
//! tables get rows on both sides of each period; one run at a chosen "now"
//! removes exactly the expired ones, in batches, and leaves the rest.

use std::time::Duration;

use platform::retention::{Periods, Purged, Retention};
use platform::sql::{self, Backend};
use platform::Db;

struct TestDb(crate::common::TestDb);

impl TestDb {
    fn new(backend: Backend) -> Option<TestDb> {
        crate::common::TestDb::new(backend).map(TestDb)
    }

    /// The platform's own tables only.
    async fn open(&self) -> Db {
        self.0.open_with(None).await
    }

    async fn drop_database(self) {
        self.0.drop_database().await
    }
}

const H: i64 = 3_600_000;
const DAY: i64 = 24 * H;
const NOW: i64 = 20_000 * DAY;

async fn names(db: &Db, sql: &str) -> Vec<String> {
    sql::query_scalar(sql).fetch_all(db).await.expect("names")
}

/// Fills every platform table; names say which side of its period a row is.
async fn fill(db: &Db) {
    db.write(|conn| {
        Box::pin(async move {
            let keys: [(&str, i64); 8] = [
                ("old-1", NOW - 25 * H),
                ("old-2", NOW - 30 * H),
                ("old-3", NOW - 48 * H),
                ("old-4", NOW - 100 * DAY),
                ("old-5", NOW - 24 * H - 1),
                ("new-at-ttl", NOW - 24 * H),
                ("new-1", NOW - 23 * H),
                ("new-2", NOW),
            ];
            for (i, (key, at)) in keys.iter().enumerate() {
                // Answered and in-flight keys alike.
                let status = (i % 2 == 0).then_some(201_i64);
                sql::query("INSERT INTO idempotency_keys (principal, idem_key, fingerprint, status, body, content_type, created_at) VALUES (?, ?, 'f', ?, ?, 'application/json', ?)")
                    .bind(format!("user:{}", i % 3))
                    .bind(*key)
                    .bind(status)
                    .bind(b"{}".to_vec())
                    .bind(*at)
                    .execute(&mut *conn)
                    .await?;
            }
            for i in 0..7 {
                sql::query("INSERT INTO inbox (event_id, handled_at) VALUES (?, ?)")
                    .bind(format!("old-{i}"))
                    .bind(NOW - 8 * DAY - i)
                    .execute(&mut *conn)
                    .await?;
            }
            for (id, at) in [("new-1", NOW - 6 * DAY), ("new-2", NOW - 1), ("new-3", NOW - 7 * DAY)] {
                sql::query("INSERT INTO inbox (event_id, handled_at) VALUES (?, ?)")
                    .bind(id)
                    .bind(at)
                    .execute(&mut *conn)
                    .await?;
            }
            for (id, at) in [
                ("old-1", NOW - 31 * DAY),
                ("new-1", NOW - 29 * DAY),
                ("old-2", NOW - 365 * DAY),
                ("old-3", NOW - 30 * DAY - 1),
                ("old-4", NOW - 40 * DAY),
                ("new-2", NOW),
            ] {
                sql::query("INSERT INTO dead_letters (log_seq, event_id, event_type, order_id, payload, error, attempts, created_at) VALUES (1, ?, 'MenuOrdered', 1, '{}', 'boom', 4, ?)")
                    .bind(id)
                    .bind(at)
                    .execute(&mut *conn)
                    .await?;
            }
            // Tables retention leaves alone.
            sql::query("INSERT INTO outbox (event_id, event_type, order_id, payload, created_at) VALUES ('unpublished', 'MenuOrdered', 1, '{}', ?)")
                .bind(NOW - 400 * DAY)
                .execute(&mut *conn)
                .await?;
            sql::query("INSERT INTO consumer_cursor (consumer, position) VALUES ('status', 42)")
                .execute(&mut *conn)
                .await?;
            Ok::<_, sqlx::Error>(())
        })
    })
    .await
    .expect("fill");
}

async fn expired_rows_go_and_the_rest_stay(backend: Backend) {
    let Some(test) = TestDb::new(backend) else {
        return;
    };
    let db = test.open().await;
    fill(&db).await;
    let retention = Retention {
        dbs: vec![("svc", db.clone())],
        log: None,
        periods: Periods {
            idempotency: Duration::from_secs(24 * 3600),
            inbox: Duration::from_secs(7 * 24 * 3600),
            dead_letters: Duration::from_secs(30 * 24 * 3600),
            // Smaller than what expires, so several transactions run.
            batch: 2,
            ..Periods::default()
        },
    };
    let report = retention.run_once(NOW).await.expect("run");
    assert_eq!(
        report.purged,
        vec![(
            "svc",
            Purged {
                idempotency_keys: 5,
                inbox: 7,
                dead_letters: 4
            }
        )],
        "{backend}"
    );
    assert_eq!(
        names(
            &db,
            "SELECT idem_key FROM idempotency_keys ORDER BY idem_key"
        )
        .await,
        ["new-1", "new-2", "new-at-ttl"],
        "{backend}"
    );
    assert_eq!(
        names(&db, "SELECT event_id FROM inbox ORDER BY event_id").await,
        ["new-1", "new-2", "new-3"],
        "{backend}"
    );
    assert_eq!(
        names(&db, "SELECT event_id FROM dead_letters ORDER BY event_id").await,
        ["new-1", "new-2"],
        "{backend}"
    );
    assert_eq!(
        names(&db, "SELECT event_id FROM outbox").await,
        ["unpublished"]
    );
    let cursor: i64 = sql::query_scalar("SELECT position FROM consumer_cursor")
        .fetch_one(&db)
        .await
        .expect("cursor");
    assert_eq!(cursor, 42);

    // Nothing more is due at the same instant. A day later two more keys
    // are; the one made at NOW is exactly a day old, which is not older.
    let again = retention.run_once(NOW).await.expect("run again");
    assert_eq!(again.purged[0].1, Purged::default(), "{backend}");
    let later = retention.run_once(NOW + DAY).await.expect("a day later");
    assert_eq!(
        later.purged[0].1,
        Purged {
            idempotency_keys: 2,
            inbox: 1,
            dead_letters: 0
        },
        "{backend}"
    );
    db.close().await;
    test.drop_database().await;
}

#[tokio::test]
async fn sqlite_retention_removes_exactly_the_expired_rows() {
    expired_rows_go_and_the_rest_stay(Backend::Sqlite).await;
}

#[tokio::test]
async fn postgres_retention_removes_exactly_the_expired_rows() {
    expired_rows_go_and_the_rest_stay(Backend::Postgres).await;
}

#[tokio::test]
async fn mariadb_retention_removes_exactly_the_expired_rows() {
    expired_rows_go_and_the_rest_stay(Backend::MySql).await;
}
