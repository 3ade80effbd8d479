//! Notification's storage: every SQL statement of the service, for each of
//! the copies (served, rebuilding, snapshot). Rows are read by column name,
//! and a stored event type this code does not know is an error, never a
//! silent default.

use contracts::{Event, EventType};
use platform::read_model::{CopiedTable, Copy};
use platform::sql;
use platform::{Conn, Db};
use serde::Serialize;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    pub id: i64,
    pub recipient: String,
    pub order_id: i64,
    pub event_id: String,
    pub event_type: String,
    pub message: String,
    pub created_at: i64,
}

/// Every notification, in each copy; copied in the order they were made.
/// The id is left to the table that receives a row: the served table's
/// ids are what live streams resume from (see [`swap`]).
pub const NOTIFICATIONS: CopiedTable = CopiedTable {
    served: "notifications",
    rebuilding: "notifications_rebuild",
    snapshot: "notifications_snapshot",
    columns: "recipient, order_id, event_id, event_type, message, created_at",
    order: "ORDER BY id",
};

const COLUMNS: &str = "id, recipient, order_id, event_id, event_type, message, created_at";

fn from_row(r: &sql::Row) -> Result<Notification, sqlx::Error> {
    let event_type: String = r.try_get("event_type")?;
    EventType::parse(&event_type).ok_or_else(|| sql::unknown_value("event_type", &event_type))?;
    Ok(platform::from_columns!(r => Notification {
            id, recipient, order_id, event_id, message, created_at
        },
        event_type: event_type,
    ))
}

/// Keeps one notification of `ev` for `recipient` in `copy`, once per event
/// and recipient.
pub async fn add(
    conn: &mut Conn,
    copy: Copy,
    ev: &Event,
    recipient: &str,
    message: &str,
) -> Result<(), sqlx::Error> {
    sql::query(sql::insert_ignoring_duplicates(
        conn.backend(),
        &format!(
            "INSERT INTO {} (recipient, order_id, event_id, event_type, message, created_at)
             VALUES (?, ?, ?, ?, ?, ?)",
            NOTIFICATIONS.of(copy)
        ),
        "(event_id, recipient)",
    ))
    .bind(recipient)
    .bind(ev.order_id)
    .bind(ev.event_id.to_string())
    .bind(ev.event_type.as_str())
    .bind(message)
    .bind(ev.timestamp)
    .execute(conn)
    .await?;
    Ok(())
}

/// The served notifications with an id above `after` for the recipients
/// `inboxes` names (every recipient for None), oldest first.
pub async fn after(
    db: &Db,
    inboxes: Option<&[String]>,
    after: i64,
    limit: i64,
) -> Result<Vec<Notification>, sqlx::Error> {
    // At most two inboxes (a rider's): the first stands for the second
    // when there is one only.
    let (a, b) = match inboxes {
        None => (None, None),
        Some(v) => (
            v.first().cloned(),
            v.get(1).cloned().or_else(|| v.first().cloned()),
        ),
    };
    sql::query(format!(
        "SELECT {COLUMNS} FROM notifications
         WHERE id > ?1 AND (?2 IS NULL OR recipient = ?2 OR recipient = ?3) ORDER BY id LIMIT ?4"
    ))
    .bind(after)
    .bind(a)
    .bind(b)
    .bind(limit)
    .fetch_all(db)
    .await?
    .iter()
    .map(from_row)
    .collect()
}

/// Matches a row of the served table with the new copy's row for the same
/// event and recipient.
const SAME_NOTIFICATION: &str =
    "r.event_id = notifications.event_id AND r.recipient = notifications.recipient";

/// Replaces the served notifications with the rebuilt ones. Ids are the
/// SSE stream's `Last-Event-ID`: a notification in both copies keeps its
/// served id (with the new copy's words), so no page is told it again; only
/// notifications new to the served copy get new ids, above every id a page
/// has seen.
pub async fn swap(conn: &mut Conn) -> Result<(), sqlx::Error> {
    let (served, rebuilding) = (NOTIFICATIONS.served, NOTIFICATIONS.rebuilding);
    for statement in [
        format!("DELETE FROM {served} WHERE NOT EXISTS (SELECT 1 FROM {rebuilding} r WHERE {SAME_NOTIFICATION})"),
        format!(
            "UPDATE {served} SET message = (SELECT r.message FROM {rebuilding} r WHERE {SAME_NOTIFICATION})
             WHERE EXISTS (SELECT 1 FROM {rebuilding} r WHERE {SAME_NOTIFICATION} AND r.message <> notifications.message)"
        ),
        format!(
            "INSERT INTO {served} (recipient, order_id, event_id, event_type, message, created_at)
             SELECT r.recipient, r.order_id, r.event_id, r.event_type, r.message, r.created_at FROM {rebuilding} r
             WHERE NOT EXISTS (SELECT 1 FROM {served} n WHERE n.event_id = r.event_id AND n.recipient = r.recipient)
             ORDER BY r.id"
        ),
    ] {
        sql::query(statement).execute(&mut *conn).await?;
    }
    Ok(())
}
