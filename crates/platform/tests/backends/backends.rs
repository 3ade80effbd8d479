//! The storage layer on every backend: SQLite always; PostgreSQL and
//! MySQL/MariaDB when HANWHA_TEST_POSTGRES_URL / HANWHA_TEST_MYSQL_URL name
//! a server (CI always sets both; a named server that cannot be reached
//! fails the test). Each run makes its own database and drops it after.

use std::time::Duration;

use platform::sql::{self, Backend};
use platform::Db;

const SCHEMA: &str = "CREATE TABLE counters (name VARCHAR(64) PRIMARY KEY, n BIGINT NOT NULL);
CREATE TABLE items (id VARCHAR(64) PRIMARY KEY, owner BIGINT, note TEXT);";

struct TestDb(crate::common::TestDb);

impl TestDb {
    fn new(backend: Backend) -> Option<TestDb> {
        crate::common::TestDb::new(backend).map(TestDb)
    }

    async fn open(&self) -> Db {
        self.0.open_with(Some(SCHEMA)).await
    }

    async fn drop_database(self) {
        self.0.drop_database().await
    }
}

async fn count(db: &Db, sql: &str) -> i64 {
    sql::query_scalar(sql).fetch_one(db).await.expect("count")
}

/// Adds one to a counter by reading it and writing it back: only safe when
/// writes are serialized, which is what this checks.
async fn bump(db: &Db, name: &'static str) -> Result<i64, sqlx::Error> {
    db.write(move |conn| {
        Box::pin(async move {
            let n: Option<i64> = sql::query_scalar("SELECT n FROM counters WHERE name = ?")
                .bind(name)
                .fetch_optional(&mut *conn)
                .await?;
            let next = n.unwrap_or(0) + 1;
            let upsert = sql::upsert(
                conn.backend(),
                "INSERT INTO counters (name, n) VALUES (?1, ?2)",
                "(name)",
                "n = ?2",
            );
            sql::query(upsert)
                .bind(name)
                .bind(next)
                .execute(&mut *conn)
                .await?;
            Ok(next)
        })
    })
    .await
}

async fn every_rule(backend: Backend) {
    let Some(test) = TestDb::new(backend) else {
        return;
    };
    let db = test.open().await;
    assert_eq!(db.backend(), backend);
    assert!(db.ping().await);

    // Two handles on one database stand for two replicas of a service:
    // 2 x 150 concurrent read-modify-write bumps lose none.
    let replica = test.open().await;
    let mut tasks = Vec::new();
    for i in 0..300 {
        let db = if i % 2 == 0 {
            db.clone()
        } else {
            replica.clone()
        };
        tasks.push(tokio::spawn(async move { bump(&db, "orders").await }));
    }
    for t in tasks {
        t.await.expect("task").expect("bump");
    }
    assert_eq!(
        count(&db, "SELECT n FROM counters WHERE name = 'orders'").await,
        300
    );

    // A write that fails undoes only its own changes, even when it shares
    // a commit with others.
    let mut tasks = Vec::new();
    for i in 0..20i64 {
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            db.write(move |conn| {
                Box::pin(async move {
                    sql::query("INSERT INTO items (id, owner, note) VALUES (?, ?, ?)")
                        .bind(format!("item-{i}"))
                        .bind(i)
                        .bind(None::<String>)
                        .execute(&mut *conn)
                        .await?;
                    if i % 5 == 0 {
                        return Err(sqlx::Error::Protocol("refused".into()));
                    }
                    Ok(())
                })
            })
            .await
        }));
    }
    let mut refused = 0;
    for t in tasks {
        if t.await.expect("task").is_err() {
            refused += 1;
        }
    }
    assert_eq!(refused, 4);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM items").await, 16);

    // A savepoint dropped without an outcome is rolled back; the rest of
    // the write lands.
    db.write(|conn| {
        Box::pin(async move {
            {
                let mut inner = conn.savepoint().await?;
                sql::query("INSERT INTO items (id) VALUES ('dropped')")
                    .execute(&mut *inner)
                    .await?;
            }
            sql::query("INSERT INTO items (id) VALUES ('kept')")
                .execute(&mut *conn)
                .await?;
            Ok::<_, sqlx::Error>(())
        })
    })
    .await
    .expect("write");
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM items WHERE id = 'dropped'").await,
        0
    );
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM items WHERE id = 'kept'").await,
        1
    );

    // A duplicate is skipped, not an error, and says so.
    let inserted = |id: &'static str| {
        let db = db.clone();
        async move {
            db.write(move |conn| {
                Box::pin(async move {
                    let insert = sql::insert_ignoring_duplicates(
                        conn.backend(),
                        "INSERT INTO items (id, owner) VALUES (?, 7)",
                        "(id)",
                    );
                    Ok::<_, sqlx::Error>(
                        sql::query(insert)
                            .bind(id)
                            .execute(&mut *conn)
                            .await?
                            .rows_affected(),
                    )
                })
            })
            .await
            .expect("insert")
        }
    };
    assert_eq!(inserted("twice").await, 1);
    assert_eq!(inserted("twice").await, 0);

    // Numbered placeholders, repeated, with NULL: the same answers everywhere.
    let filtered = |owner: Option<i64>| {
        let db = db.clone();
        async move {
            sql::query_scalar::<i64>(
                "SELECT COUNT(*) FROM items WHERE (?1 IS NULL OR owner = ?1) AND id <> ?2",
            )
            .bind(owner)
            .bind("nothing")
            .fetch_one(&db)
            .await
            .expect("filter")
        }
    };
    assert_eq!(filtered(None).await, 18);
    // item-7 and "twice".
    assert_eq!(filtered(Some(7)).await, 2);

    // Several reads on one snapshot.
    let (items, orders) = db
        .read(|conn| {
            Box::pin(async move {
                let items: i64 = sql::query_scalar("SELECT COUNT(*) FROM items")
                    .fetch_one(&mut *conn)
                    .await?;
                let orders: i64 = sql::query_scalar("SELECT n FROM counters WHERE name = 'orders'")
                    .fetch_one(&mut *conn)
                    .await?;
                Ok::<_, sqlx::Error>((items, orders))
            })
        })
        .await
        .expect("snapshot");
    assert_eq!((items, orders), (18, 300));

    // The platform's own tables came with the migrations, and text comes
    // back as text (a binary collation on MariaDB would not decode).
    assert_eq!(platform::outbox::backlog(&db).await.expect("backlog"), 0);
    let facts = contracts::event::OrderFacts {
        order_id: 42,
        menu_name: "짜장면".into(),
        qty: 1,
        price: 7000,
        address: "suwon".into(),
        store_id: 1,
        customer_id: 1,
        correlation_id: uuid::Uuid::nil(),
    };
    let event = contracts::Event::new(
        contracts::EventType::MenuOrdered,
        &facts,
        42,
        "customer:1",
        1,
        0,
    );
    let queued = event.clone();
    db.write(move |conn| Box::pin(async move { platform::outbox::enqueue(conn, &queued).await }))
        .await
        .expect("enqueue");
    assert_eq!(platform::outbox::backlog(&db).await.expect("backlog"), 1);
    let row = sql::query("SELECT event_id, payload FROM outbox")
        .fetch_one(&db)
        .await
        .expect("outbox row");
    assert_eq!(row.get::<String, _>(0), event.event_id.to_string());
    assert!(row.get::<String, _>(1).contains("짜장면"));

    // Migrations run again on restart and change nothing.
    replica.close().await;
    db.close().await;
    let again = test.open().await;
    assert_eq!(count(&again, "SELECT COUNT(*) FROM items").await, 18);
    again.close().await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    test.drop_database().await;
}

#[tokio::test]
async fn sqlite_keeps_every_rule() {
    every_rule(Backend::Sqlite).await;
}

#[tokio::test]
async fn postgres_keeps_every_rule() {
    every_rule(Backend::Postgres).await;
}

#[tokio::test]
async fn mysql_keeps_every_rule() {
    every_rule(Backend::MySql).await;
}

/// Reads abandoned at random moments (a client hanging up) must leave no
/// pooled connection inside a transaction: every read after them succeeds.
async fn abandoned_reads_leave_no_open_transaction(backend: Backend) {
    let Some(test) = TestDb::new(backend) else {
        return;
    };
    let db = test.open().await;
    bump(&db, "reads").await.expect("seed a row");
    for i in 0..1500u64 {
        let db = db.clone();
        // From "before BEGIN was answered" to "while the work runs".
        let patience = Duration::from_micros((i * 7919) % 400);
        let _ = tokio::time::timeout(
            patience,
            db.read(|conn| {
                Box::pin(async move {
                    sql::query_scalar::<i64>("SELECT n FROM counters WHERE name = 'reads'")
                        .fetch_one(conn)
                        .await
                })
            }),
        )
        .await;
    }
    let mut failures = Vec::new();
    for _ in 0..200 {
        let read = db
            .read(|conn| {
                Box::pin(async move {
                    sql::query_scalar::<i64>("SELECT n FROM counters WHERE name = 'reads'")
                        .fetch_one(conn)
                        .await
                })
            })
            .await;
        if let Err(e) = read {
            failures.push(e.to_string());
        }
    }
    assert!(
        failures.is_empty(),
        "{} of 200 reads failed after hang-ups, e.g. {:?}",
        failures.len(),
        failures.first()
    );
    db.close().await;
    test.drop_database().await;
}

#[tokio::test]
async fn sqlite_reads_survive_hang_ups() {
    abandoned_reads_leave_no_open_transaction(Backend::Sqlite).await;
}

#[tokio::test]
async fn postgres_reads_survive_hang_ups() {
    abandoned_reads_leave_no_open_transaction(Backend::Postgres).await;
}

#[tokio::test]
async fn mysql_reads_survive_hang_ups() {
    abandoned_reads_leave_no_open_transaction(Backend::MySql).await;
}

/// A replica that freezes inside a write transaction (SIGSTOP, a stalled
/// VM) holds the write lock; the server must end its session so the other
/// replica's writes go on after a bounded wait.
async fn a_frozen_replica_releases_the_write_lock(backend: Backend) {
    let Some(test) = TestDb::new(backend) else {
        return;
    };
    let frozen = test.open().await;
    let healthy = test.open().await;
    bump(&healthy, "frozen").await.expect("first write");
    // The frozen replica takes the write lock, then sends nothing.
    let stuck = frozen.clone();
    tokio::spawn(async move {
        let _ = stuck
            .write(|conn| {
                Box::pin(async move {
                    sql::query("UPDATE counters SET n = n WHERE name = 'frozen'")
                        .execute(&mut *conn)
                        .await?;
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    Ok::<_, sqlx::Error>(())
                })
            })
            .await;
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = std::time::Instant::now();
    let mut last = None;
    // The first try may meet the lock timeout; a retry after the frozen
    // session was ended must succeed.
    while started.elapsed() < Duration::from_secs(40) {
        match bump(&healthy, "frozen").await {
            Ok(n) => {
                last = Some(n);
                break;
            }
            Err(e) => eprintln!("write while frozen: {e}"),
        }
    }
    let waited = started.elapsed();
    assert_eq!(last, Some(2), "the healthy replica never wrote");
    // Released by the lock and session timeouts, well before the frozen
    // session's 60 s end (a busy machine adds some seconds).
    assert!(
        waited < Duration::from_secs(30),
        "the healthy replica waited {waited:?} for a frozen one"
    );
    healthy.close().await;
    test.drop_database().await;
}

#[tokio::test]
async fn postgres_frozen_replica_releases_the_write_lock() {
    a_frozen_replica_releases_the_write_lock(Backend::Postgres).await;
}

#[tokio::test]
async fn mysql_frozen_replica_releases_the_write_lock() {
    a_frozen_replica_releases_the_write_lock(Backend::MySql).await;
}
