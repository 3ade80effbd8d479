//! What every service crate would otherwise write again around its state:
//! its migrations function and the `FromRef` that lets the `Principal`
//! extractor find the keys that check tokens. Macros, because each must
//! expand in the service's own crate (its migration folders, its type).

/// `pub fn migrations()`: the crate's migrations, from its
/// `migrations/{sqlite,postgres,mysql}` folders (see [`crate::migrations!`]).
#[macro_export]
macro_rules! service_migrations {
    () => {
        /// This service's schema, one folder of migrations per backend.
        pub fn migrations() -> $crate::Migrations {
            $crate::migrations!()
        }
    };
}

/// Lets handlers of a state with a `keys: TokenKeys` field take a
/// `Principal`, which checks the caller's token with those keys.
#[macro_export]
macro_rules! token_keys_in {
    ($state:ty) => {
        impl ::axum::extract::FromRef<$state> for $crate::TokenKeys {
            fn from_ref(s: &$state) -> $crate::TokenKeys {
                s.keys.clone()
            }
        }
    };
}

/// The state of a service whose handlers need only its database and the
/// keys that check callers' tokens (a read model's, like the status view).
#[derive(Clone)]
pub struct DbAndKeys {
    pub db: crate::Db,
    pub keys: crate::TokenKeys,
}

crate::token_keys_in!(DbAndKeys);
