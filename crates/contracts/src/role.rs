use serde::{Deserialize, Serialize};

/// Who a logged-in user is to the platform; every endpoint checks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Customer,
    Owner,
    Rider,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Customer => "customer",
            Role::Owner => "owner",
            Role::Rider => "rider",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "customer" => Some(Role::Customer),
            "owner" => Some(Role::Owner),
            "rider" => Some(Role::Rider),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}
