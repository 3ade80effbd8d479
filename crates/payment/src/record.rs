use contracts::event::OrderFacts;
use contracts::{Event, EventType};
use platform::sql;
use platform::Conn;

pub use contracts::wire::{Payment, PaymentStatus};

pub const COLUMNS: &str = "id, order_id, customer_id, store_id, amount, menu_name, qty, address, status, card_last4, reason, version, created_at, updated_at";

pub fn from_row(r: &sql::Row) -> Payment {
    Payment {
        id: r.get(0),
        order_id: r.get(1),
        customer_id: r.get(2),
        store_id: r.get(3),
        price: r.get(4),
        menu_name: r.get(5),
        qty: r.get(6),
        address: r.get(7),
        payment_status: PaymentStatus::parse(&r.get::<String, _>(8))
            .unwrap_or(PaymentStatus::Declined),
        card_last4: r.get(9),
        reason: r.get(10),
        version: r.get(11),
        created_at: r.get(12),
        updated_at: r.get(13),
    }
}

pub async fn by_order(conn: &mut Conn, order_id: i64) -> Result<Option<Payment>, sqlx::Error> {
    let row = sql::query(format!("SELECT {COLUMNS} FROM payments WHERE order_id = ?"))
        .bind(order_id)
        .fetch_optional(conn)
        .await?;
    Ok(row.as_ref().map(from_row))
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

/// Pays once per order (see [`crate::PaymentService::pay`]).
pub async fn pay(
    conn: &mut Conn,
    facts: &OrderFacts,
    card: Option<&str>,
    actor: &str,
) -> Result<Payment, sqlx::Error> {
    if let Some(existing) = by_order(conn, facts.order_id).await? {
        return Ok(existing);
    }
    let last4 = card.map(|c| c[c.len().saturating_sub(4)..].to_string());
    if card == Some(crate::DECLINED_TEST_CARD) {
        return insert(
            conn,
            facts,
            PaymentStatus::Declined,
            last4.as_deref(),
            Some("card declined by issuer (test card)"),
        )
        .await;
    }
    let payment = insert(conn, facts, PaymentStatus::Approved, last4.as_deref(), None).await?;
    platform::outbox::enqueue(
        conn,
        &event(EventType::PaymentAgreed, &payment, facts, actor),
    )
    .await?;
    Ok(payment)
}

/// What a refund found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refund {
    /// An approved payment was refunded.
    Refunded,
    /// Nothing was paid yet; a late payment will be refused.
    Voided,
    /// Declined, refunded or voided before: nothing to give back.
    NothingKept,
}

/// Refunds the order's payment if one was taken; remembers an order that
/// gave up before paying so that a late payment is refused.
pub async fn refund(
    conn: &mut Conn,
    facts: &OrderFacts,
    actor: &str,
    reason: &str,
) -> Result<Refund, sqlx::Error> {
    match by_order(conn, facts.order_id).await? {
        None => {
            insert(conn, facts, PaymentStatus::Voided, None, Some(reason)).await?;
            Ok(Refund::Voided)
        }
        Some(p) if p.payment_status == PaymentStatus::Approved => {
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
            platform::outbox::enqueue(
                conn,
                &event(EventType::PaymentCancelled, &refunded, facts, actor),
            )
            .await?;
            Ok(Refund::Refunded)
        }
        // Declined, already refunded or voided: nothing was kept.
        Some(_) => Ok(Refund::NothingKept),
    }
}
