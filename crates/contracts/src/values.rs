//! The values an order is made of, parsed once where they enter: a
//! quantity, an amount of won, a delivery address and a card. A handler
//! that holds one of these holds a valid one; the request structs parse
//! them with `#[serde(try_from)]`, so a bad value is a 422 naming its field.

use serde::{Deserialize, Serialize};

/// The largest quantity one order line may carry.
pub const MAX_QTY: i64 = 100;
/// The longest delivery address, in characters.
pub const MAX_ADDRESS_LEN: usize = 200;

/// Why a value was refused; the text names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

/// A whole number that is parsed when read and written as a JSON integer.
macro_rules! whole_number {
    ($t:ident) => {
        impl TryFrom<i64> for $t {
            type Error = Invalid;
            fn try_from(n: i64) -> Result<$t, Invalid> {
                $t::parse(n)
            }
        }

        impl From<$t> for i64 {
            fn from(n: $t) -> i64 {
                n.0
            }
        }
    };
}

/// The id of a stored thing (an order, a menu item): positive, as every
/// database here numbers them from 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "i64")]
pub struct Id(i64);

impl Id {
    pub fn parse(n: i64) -> Result<Id, Invalid> {
        if n >= 1 {
            Ok(Id(n))
        } else {
            Err(Invalid(format!("an id is a positive number, not {n}")))
        }
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

whole_number!(Id);

/// How many of one menu item: 1 to [`MAX_QTY`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "i64")]
pub struct Qty(i64);

impl Qty {
    pub fn parse(n: i64) -> Result<Qty, Invalid> {
        if (1..=MAX_QTY).contains(&n) {
            Ok(Qty(n))
        } else {
            Err(Invalid(format!("qty must be between 1 and {MAX_QTY}")))
        }
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

whole_number!(Qty);

/// An amount in whole Korean won (KRW has no minor unit), never negative.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "i64")]
pub struct Krw(i64);

impl Krw {
    pub fn parse(n: i64) -> Result<Krw, Invalid> {
        if n >= 0 {
            Ok(Krw(n))
        } else {
            Err(Invalid("price must be >= 0".into()))
        }
    }

    pub fn get(self) -> i64 {
        self.0
    }

    /// The total of `qty` items at this price; `None` past `i64`.
    pub fn times(self, qty: Qty) -> Option<Krw> {
        self.0.checked_mul(qty.0).map(Krw)
    }
}

whole_number!(Krw);

/// Where to deliver: trimmed, 1 to [`MAX_ADDRESS_LEN`] characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Address(String);

impl Address {
    pub fn parse(raw: &str) -> Result<Address, Invalid> {
        let address = raw.trim();
        if address.is_empty() {
            return Err(Invalid("address is required".into()));
        }
        if address.chars().count() > MAX_ADDRESS_LEN {
            return Err(Invalid(format!(
                "address is longer than {MAX_ADDRESS_LEN} characters"
            )));
        }
        Ok(Address(address.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Address {
    type Error = Invalid;
    fn try_from(raw: String) -> Result<Address, Invalid> {
        Address::parse(&raw)
    }
}

impl From<Address> for String {
    fn from(a: Address) -> String {
        a.0
    }
}

/// The card to charge: 12 to 19 digits, kept without the spaces and dashes
/// between them; blank means the demo card.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Card(Option<String>);

impl Card {
    pub fn parse(raw: &str) -> Result<Card, Invalid> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Ok(Card(None));
        }
        let digits: String = raw.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
        if !(12..=19).contains(&digits.len()) || !digits.chars().all(|c| c.is_ascii_digit()) {
            return Err(Invalid("card must be 12 to 19 digits".into()));
        }
        Ok(Card(Some(digits)))
    }

    /// The digits, or `None` for the demo card.
    pub fn digits(self) -> Option<String> {
        self.0
    }
}

impl TryFrom<String> for Card {
    type Error = Invalid;
    fn try_from(raw: String) -> Result<Card, Invalid> {
        Card::parse(&raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_positive() {
        assert!(Id::parse(0).is_err());
        assert!(Id::parse(-3).is_err());
        assert_eq!(Id::parse(42).map(Id::get), Ok(42));
    }

    #[test]
    fn a_quantity_is_one_to_a_hundred() {
        assert!(Qty::parse(0).is_err());
        assert_eq!(Qty::parse(1).map(Qty::get), Ok(1));
        assert_eq!(Qty::parse(MAX_QTY).map(Qty::get), Ok(MAX_QTY));
        assert!(Qty::parse(MAX_QTY + 1).is_err());
    }

    #[test]
    fn won_are_never_negative_and_a_total_that_overflows_is_refused() {
        assert!(Krw::parse(-1).is_err());
        let qty = Qty::parse(2).expect("qty");
        assert_eq!(Krw::parse(9000).expect("krw").times(qty), Some(Krw(18000)));
        assert_eq!(Krw(i64::MAX).times(qty), None);
    }

    #[test]
    fn an_address_is_trimmed_and_bounded() {
        assert_eq!(
            Address::parse("  Seoul 1 ").map(|a| a.as_str().to_string()),
            Ok("Seoul 1".into())
        );
        assert!(Address::parse("   ").is_err());
        assert!(Address::parse(&"가".repeat(MAX_ADDRESS_LEN)).is_ok());
        assert!(Address::parse(&"가".repeat(MAX_ADDRESS_LEN + 1)).is_err());
    }

    #[test]
    fn a_card_keeps_its_digits_and_blank_is_the_demo_card() {
        assert_eq!(
            Card::parse(" 4111-1111 1111-1111 ").map(Card::digits),
            Ok(Some("4111111111111111".into()))
        );
        assert_eq!(Card::parse("  ").map(Card::digits), Ok(None));
        assert!(Card::parse("4111-1111").is_err());
        assert!(Card::parse("4111-1111-1111-111x").is_err());
    }

    #[test]
    fn a_bad_value_in_a_body_names_its_field() {
        let e = serde_json::from_str::<Qty>("0").expect_err("refused");
        assert!(e.to_string().contains("qty must be between 1 and 100"));
    }
}
