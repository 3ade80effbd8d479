//! Payment's storage: every SQL statement of the service. Rows are read by
//! column name, and a stored status this code does not know is an error,
//! never a silent default (a declined payment would refund nothing). Each
//! change commits with its event in the outbox of the same transaction.

use contracts::event::OrderFacts;
use contracts::order_access::Owner;
use contracts::{Event, EventType};
use platform::sql;
use platform::{Conn, Db};

use crate::domain::{self, Refund};

pub use contracts::wire::{Payment, PaymentStatus};

pub const COLUMNS: &str = "id, order_id, customer_id, store_id, amount, menu_name, qty, address, status, card_last4, reason, version, created_at, updated_at";

/// A payment as stored, read by column name.
pub fn from_row(r: &sql::Row) -> Result<Payment, sqlx::Error> {
    let status: String = r.try_get("status")?;
    let payment_status =
        PaymentStatus::parse(&status).ok_or_else(|| sql::unknown_value("status", &status))?;
    Ok(Payment {
        id: r.try_get("id")?,
        order_id: r.try_get("order_id")?,
        customer_id: r.try_get("customer_id")?,
        store_id: r.try_get("store_id")?,
        price: r.try_get("amount")?,
        menu_name: r.try_get("menu_name")?,
        qty: r.try_get("qty")?,
        address: r.try_get("address")?,
        payment_status,
        card_last4: r.try_get("card_last4")?,
        reason: r.try_get("reason")?,
        version: r.try_get("version")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

pub async fn by_order(conn: &mut Conn, order_id: i64) -> Result<Option<Payment>, sqlx::Error> {
    let row = sql::query(format!("SELECT {COLUMNS} FROM payments WHERE order_id = ?"))
        .bind(order_id)
        .fetch_optional(conn)
        .await?;
    row.as_ref().map(from_row).transpose()
}

async fn insert(
    conn: &mut Conn,
    facts: &OrderFacts,
    status: PaymentStatus,
    card_last4: Option<&str>,
    reason: Option<&str>,
) -> Result<Payment, sqlx::Error> {
    let now = platform::clock::now_ms();
    sql::query(
        "INSERT INTO payments (order_id, customer_id, store_id, amount, menu_name, qty, address, status, card_last4, reason, correlation_id, version, created_at, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?)",
    )
    .bind(facts.order_id)
    .bind(facts.customer_id)
    .bind(facts.store_id)
    .bind(facts.price)
    .bind(&facts.menu_name)
    .bind(facts.qty)
    .bind(&facts.address)
    .bind(status.as_str())
    .bind(card_last4)
    .bind(reason)
    .bind(facts.correlation_id.to_string())
    .bind(now)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    by_order(conn, facts.order_id)
        .await?
        .ok_or_else(|| sqlx::Error::RowNotFound)
}

fn event(event_type: EventType, p: &Payment, facts: &OrderFacts, actor: &str) -> Event {
    let mut ev = Event::new(event_type, facts, p.id, actor, p.version, p.updated_at);
    ev.payment_status = Some(p.payment_status.as_str().to_string());
    ev.reason = p.reason.clone();
    ev
}

/// Pays once per order (see [`crate::PaymentService::pay`]): a second call
/// answers the first payment.
pub async fn pay(
    conn: &mut Conn,
    facts: &OrderFacts,
    card: Option<&str>,
    actor: &str,
) -> Result<Payment, sqlx::Error> {
    if let Some(existing) = by_order(conn, facts.order_id).await? {
        return Ok(existing);
    }
    let charged = domain::charge(card);
    let last4 = charged.card_last4.as_deref();
    let payment = insert(conn, facts, charged.status, last4, charged.reason).await?;
    if let Some(event_type) = domain::charge_event(payment.payment_status) {
        platform::outbox::enqueue(conn, &event(event_type, &payment, facts, actor)).await?;
    }
    Ok(payment)
}

/// Refunds the order's payment if one was taken; remembers an order that
/// gave up before paying so that a late payment is refused.
pub async fn refund(
    conn: &mut Conn,
    facts: &OrderFacts,
    actor: &str,
    reason: &str,
) -> Result<Refund, sqlx::Error> {
    let current = by_order(conn, facts.order_id).await?;
    let refund = domain::refund(current.as_ref().map(|p| p.payment_status));
    match (refund, current) {
        (Refund::Voided, _) => {
            insert(conn, facts, PaymentStatus::Voided, None, Some(reason)).await?;
        }
        (Refund::Refunded, Some(p)) => {
            let now = platform::clock::now_ms();
            sql::query("UPDATE payments SET status = 'Refunded', reason = ?, version = version + 1, updated_at = ? WHERE id = ?")
                .bind(reason)
                .bind(now)
                .bind(p.id)
                .execute(&mut *conn)
                .await?;
            let refunded = by_order(conn, facts.order_id)
                .await?
                .ok_or(sqlx::Error::RowNotFound)?;
            let refunded = event(domain::REFUND_EVENT, &refunded, facts, actor);
            platform::outbox::enqueue(conn, &refunded).await?;
        }
        _ => {}
    }
    Ok(refund)
}

/// The payments of `owner`'s orders, newest first.
pub async fn list(db: &Db, owner: Owner) -> Result<Vec<Payment>, sqlx::Error> {
    let (filter, id) = match owner {
        Owner::Customer(id) => ("customer_id = ?", id),
        Owner::Store(id) => ("store_id = ?", id),
        Owner::Everyone => ("? = 0", 0),
    };
    sql::query(format!(
        "SELECT {COLUMNS} FROM payments WHERE {filter} ORDER BY id DESC LIMIT 1000"
    ))
    .bind(id)
    .fetch_all(db)
    .await?
    .iter()
    .map(from_row)
    .collect()
}

#[cfg(test)]
mod tests {
    use platform::{Db, Location};

    use super::*;

    /// A status this code does not know (written by a newer version, or by
    /// hand) must not read as a declined payment: the caller would refund
    /// nothing and tell the customer the card was refused.
    #[tokio::test]
    async fn an_unknown_stored_status_is_an_error_not_a_declined_payment() {
        let dir = tempfile::tempdir().expect("dir");
        let location = Location::Sqlite(dir.path().join("payment.db"));
        let db = Db::open(&location, &crate::migrations())
            .await
            .expect("database");
        let read = |db: Db| async move {
            db.read(|conn| Box::pin(async move { by_order(conn, 7).await }))
                .await
        };
        db.write(|conn| {
            Box::pin(async move {
                sql::query(
                    "INSERT INTO payments (order_id, customer_id, store_id, amount, menu_name, qty, address, status, correlation_id, version, created_at, updated_at)
                     VALUES (7, 1, 1, 1000, 'pizza', 1, 'suwon', 'Approved', '01a23279-4609-76fc-80e1-bc0ea8b4dead', 1, 0, 0)",
                )
                .execute(conn)
                .await
            })
        })
        .await
        .expect("insert");
        let approved = read(db.clone()).await.expect("read").expect("a payment");
        assert_eq!(approved.payment_status, PaymentStatus::Approved);
        assert_eq!(approved.price, 1000);

        db.write(|conn| {
            Box::pin(async move {
                sql::query("UPDATE payments SET status = 'Mystery' WHERE order_id = 7")
                    .execute(conn)
                    .await
            })
        })
        .await
        .expect("update");
        let error = read(db).await.expect_err("an unknown status");
        assert!(error.to_string().contains("Mystery"), "{error}");
    }
}
