//! Menus: each store owns its items and their prices; orders take the price
//! from here, never from the client.

use platform::sql;
use platform::Db;
use serde::Serialize;

pub use contracts::wire::Menu;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Store {
    pub id: i64,
    pub name: String,
    pub owner_id: i64,
    pub address: String,
}

const SELECT: &str = "SELECT m.id, m.store_id, s.name, m.name, m.price, m.available FROM menus m JOIN stores s ON s.id = m.store_id";

fn from_row(r: &sql::Row) -> Menu {
    Menu {
        id: r.get(0),
        store_id: r.get(1),
        store_name: r.get(2),
        name: r.get(3),
        price: r.get(4),
        available: r.get(5),
    }
}

pub async fn list(pool: &Db, store_id: Option<i64>) -> Result<Vec<Menu>, sqlx::Error> {
    let rows = sql::query(format!(
        "{SELECT} WHERE (?1 IS NULL OR m.store_id = ?1) ORDER BY m.store_id, m.id"
    ))
    .bind(store_id)
    .fetch_all(pool)
    .await?;
    Ok(rows.iter().map(from_row).collect())
}

pub async fn by_id(pool: &Db, id: i64) -> Result<Option<Menu>, sqlx::Error> {
    let row = sql::query(format!("{SELECT} WHERE m.id = ?"))
        .bind(id)
        .fetch_optional(pool)
        .await?;
    Ok(row.as_ref().map(from_row))
}

/// The first available item with this name (the seed ordered by name).
pub async fn by_name(pool: &Db, name: &str) -> Result<Option<Menu>, sqlx::Error> {
    let row = sql::query(format!(
        "{SELECT} WHERE m.name = ? ORDER BY m.available DESC, m.id LIMIT 1"
    ))
    .bind(name)
    .fetch_optional(pool)
    .await?;
    Ok(row.as_ref().map(from_row))
}

pub async fn stores(pool: &Db) -> Result<Vec<Store>, sqlx::Error> {
    let rows = sql::query("SELECT id, name, owner_id, address FROM stores ORDER BY id")
        .fetch_all(pool)
        .await?;
    Ok(rows
        .iter()
        .map(|r| Store {
            id: r.get(0),
            name: r.get(1),
            owner_id: r.get(2),
            address: r.get(3),
        })
        .collect())
}
