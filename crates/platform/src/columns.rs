//! Rows read by column name, written once: each service's storage names
//! the fields of a struct that are read from the columns of the same name,
//! and gives the rest (a parsed status, a flag) as expressions. A column
//! renamed or moved in a statement then fails loudly instead of feeding
//! the next field.

/// `from_columns!(row => Type { a, b }, c: expr)`: a `Type` whose fields
/// `a` and `b` are `row.try_get("a")?` and `row.try_get("b")?` (a
/// [`crate::sql::Row`]), and whose `c` is `expr`. Used where `?` can turn
/// a `sqlx::Error` into the function's error.
#[macro_export]
macro_rules! from_columns {
    ($row:expr => $ty:ident { $($field:ident),* $(,)? } $(, $name:ident: $value:expr)* $(,)?) => {
        $ty {
            $($field: $row.try_get(stringify!($field))?,)*
            $($name: $value,)*
        }
    };
}

#[cfg(test)]
mod tests {
    use crate::sql;
    use crate::{Db, Location};

    #[derive(Debug, PartialEq)]
    struct Rider {
        id: i64,
        name: String,
        active: bool,
    }

    #[tokio::test]
    async fn fields_come_from_the_columns_of_their_name_whatever_the_order() {
        let dir = tempfile::tempdir().expect("dir");
        let db = Db::open(
            &Location::Sqlite(dir.path().join("t.db")),
            &crate::db::Migrations::platform(),
        )
        .await
        .expect("db");
        let row = sql::query("SELECT 'kim' AS name, 7 AS id")
            .fetch_one(&db)
            .await
            .expect("row");
        let read = |r: &sql::Row| -> Result<Rider, sqlx::Error> {
            Ok(crate::from_columns!(r => Rider { id, name }, active: true))
        };
        assert_eq!(
            read(&row).expect("read"),
            Rider {
                id: 7,
                name: "kim".into(),
                active: true
            }
        );
        let missing = sql::query("SELECT 7 AS id")
            .fetch_one(&db)
            .await
            .expect("row");
        assert!(read(&missing).is_err(), "a missing column is an error");
    }
}
