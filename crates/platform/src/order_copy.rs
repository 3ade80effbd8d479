//! A service's copy of an order: the store's order list and the deliveries
//! each keep the order facts they were told (in columns named like the
//! fields of [`OrderFacts`]) next to what the service itself decides.
//! [`order_copy!`](crate::order_copy!) declares such a copy once: the facts
//! fields, the reading of every column by name (an unknown stored value is
//! an error) and the facts again for the copy's events; so Store and
//! Delivery do not each write the same row mapping.
//!
//! [`OrderFacts`]: contracts::event::OrderFacts

use contracts::event::OrderFacts;
use uuid::Uuid;

use crate::sql::{self, Query, Row};

/// The columns that hold the order facts, in the order [`bind_facts`]
/// binds them: an INSERT of a copy starts with these.
pub const FACT_COLUMNS: &str =
    "order_id, store_id, customer_id, menu_name, qty, price, address, correlation_id";

/// Binds the facts to the next eight parameters, in [`FACT_COLUMNS`] order.
pub fn bind_facts(query: Query, facts: &OrderFacts) -> Query {
    query
        .bind(facts.order_id)
        .bind(facts.store_id)
        .bind(facts.customer_id)
        .bind(facts.menu_name.as_str())
        .bind(facts.qty)
        .bind(facts.price)
        .bind(facts.address.as_str())
        .bind(facts.correlation_id.to_string())
}

/// A value read from the column of that name. Statuses implement it with
/// [`named`], so a status this code does not know is an error.
pub trait Column: Sized {
    fn read(row: &Row, column: &str) -> Result<Self, sqlx::Error>;
}

macro_rules! as_stored {
    ($($t:ty),*) => {$(
        impl Column for $t {
            fn read(row: &Row, column: &str) -> Result<Self, sqlx::Error> {
                row.try_get(column)
            }
        }
    )*};
}

as_stored!(i64, Option<i64>, String, Option<String>);

/// Ids are stored as text; one that is not a UUID is an error, not a new id.
impl Column for Uuid {
    fn read(row: &Row, column: &str) -> Result<Self, sqlx::Error> {
        let text: String = row.try_get(column)?;
        Uuid::parse_str(&text).map_err(|_| sql::unknown_value(column, &text))
    }
}

/// A stored name (a status) that `parse` must know.
pub fn named<T>(row: &Row, column: &str, parse: fn(&str) -> Option<T>) -> Result<T, sqlx::Error> {
    let text: String = row.try_get(column)?;
    parse(&text).ok_or_else(|| sql::unknown_value(column, &text))
}

/// Declares a service's copy of an order: the order facts fields first (as
/// the API has always shown them), then the service's own fields, each
/// with the column it is read from, and a hidden correlation id.
/// The struct gets `COLUMNS` (for its SELECTs), `from_row` and `facts`.
#[macro_export]
macro_rules! order_copy {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $( $(#[$field_meta:meta])* pub $field:ident: $ty:ty = $column:literal, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
        #[serde(rename_all = "camelCase")]
        pub struct $name {
            pub order_id: i64,
            pub store_id: i64,
            pub customer_id: i64,
            pub menu_name: String,
            pub qty: i64,
            pub price: i64,
            pub address: String,
            $( $(#[$field_meta])* pub $field: $ty, )*
            #[serde(skip)]
            pub correlation_id: uuid::Uuid,
        }

        impl $name {
            /// Every column of the copy, for its SELECTs.
            pub const COLUMNS: &'static str = concat!(
                "order_id, store_id, customer_id, menu_name, qty, price, address, correlation_id"
                $(, ", ", $column)*
            );

            /// The copy as stored, read by column name.
            pub fn from_row(r: &$crate::sql::Row) -> Result<Self, sqlx::Error> {
                use $crate::order_copy::Column;
                Ok($name {
                    order_id: Column::read(r, "order_id")?,
                    store_id: Column::read(r, "store_id")?,
                    customer_id: Column::read(r, "customer_id")?,
                    menu_name: Column::read(r, "menu_name")?,
                    qty: Column::read(r, "qty")?,
                    price: Column::read(r, "price")?,
                    address: Column::read(r, "address")?,
                    $( $field: Column::read(r, $column)?, )*
                    correlation_id: Column::read(r, "correlation_id")?,
                })
            }

            /// The order facts the copy was told, for its events.
            pub fn facts(&self) -> contracts::event::OrderFacts {
                contracts::event::OrderFacts {
                    order_id: self.order_id,
                    menu_name: self.menu_name.clone(),
                    qty: self.qty,
                    price: self.price,
                    address: self.address.clone(),
                    store_id: self.store_id,
                    customer_id: self.customer_id,
                    correlation_id: self.correlation_id,
                }
            }
        }
    };
}
