//! Users and login: customers, store owners, riders and admins log in here
//! and get a signed token that every other service checks by itself.
//!
//! Its rooms, in the order a login travels:
//! - [`domain`]: the rules, pure: names, passwords, stores, what a login
//!   answers, who may disable whom; [`throttle`] slows down guessing.
//! - [`accounts`]: each step of logging in, signing up and managing
//!   accounts, applying the rules; [`sessions`] keeps refresh tokens.
//! - [`storage`]: every SQL statement, rows read by column name.
//! - `http`: `/auth/...`, thin; [`error`] is the one error type, mapped to
//!   problem+json there. `client_address` is the address a login comes
//!   from.
//! - `passwords` and `hashing`: argon2, on a bounded pool of threads.
//!
//! [`SERVICE`] describes it to the shapes that run it (`platform::service`):
//! name, port, gateway paths, migrations, OpenAPI, events, and `start`.

pub mod accounts;
mod client_address;
pub mod domain;
pub mod error;
mod hashing;
mod http;
mod passwords;
pub mod sessions;
pub mod storage;
pub mod throttle;

use platform::service::{Seeding, ServiceDescription, StartError, Started, Starting, Supplies};
use std::sync::{Arc, OnceLock};
use utoipa::OpenApi as _;

pub use client_address::{ClientAddress, TrustedProxies};
pub use error::IdentityError;
pub use hashing::Hashing;
pub use http::{router, IdentityApi};

use axum::extract::FromRef;
use contracts::Role;
use platform::auth::ACCESS_TOKEN_TTL_SECS;
use platform::{Db, TokenKeys};
use throttle::LoginThrottle;

platform::service_migrations!();

/// Identity as the shapes run it (see `platform::service`).
pub const SERVICE: ServiceDescription =
    ServiceDescription::new("identity", 8087, migrations, IdentityApi::openapi, start)
        .owning(&["/auth"])
        .taking_writes()
        .holding_accounts()
        .with_demo(seed_demo_users);

fn seed_demo_users(db: Db) -> Seeding {
    Box::pin(async move {
        seed_demo(&db)
            .await
            .map_err(|e| StartError::from(format!("seeding users: {e}")))
    })
}

fn start(supplies: Supplies) -> Starting {
    Box::pin(async move {
        let proxies = supplies.input::<TrustedProxies>()?;
        let identity = Identity::start(supplies.db, supplies.keys, proxies)
            .await
            .map_err(|e| StartError::from(format!("starting identity: {e}")))?;
        let watch = identity.watch_disables(supplies.shutdown);
        Ok(Started::serving(router(identity)).running(watch))
    })
}

#[derive(Clone)]
pub struct Identity {
    pub db: Db,
    pub keys: TokenKeys,
    pub hashing: Hashing,
    pub throttle: LoginThrottle,
    pub trusted_proxies: TrustedProxies,
    /// A hash of no one's password: an unknown username is checked against
    /// it, so that it costs what a known one costs.
    dummy_hash: Arc<OnceLock<String>>,
}

impl Identity {
    pub fn new(db: Db, keys: TokenKeys) -> Identity {
        Identity {
            db,
            keys,
            hashing: Hashing::for_this_machine(),
            throttle: LoginThrottle::default(),
            trusted_proxies: TrustedProxies::default(),
            dummy_hash: Arc::new(OnceLock::new()),
        }
    }

    /// Identity as a service starts: the accounts disabled within the life
    /// of a token go back on the deny-list, which lives in memory.
    pub async fn start(
        db: Db,
        keys: TokenKeys,
        trusted_proxies: TrustedProxies,
    ) -> Result<Identity, IdentityError> {
        let since = accounts::token_lifetime_ago();
        for (user, at_ms) in storage::disabled_since(&db, since).await? {
            keys.revocations()
                .revoke(user, at_ms / 1000, ACCESS_TOKEN_TTL_SECS + 60);
        }
        Ok(Identity {
            trusted_proxies,
            ..Identity::new(db, keys)
        })
    }

    /// Every few seconds, puts the accounts disabled in the database by
    /// someone else (the `users disable` command) on this process's
    /// deny-list too.
    pub fn watch_disables(
        &self,
        mut shutdown: platform::shutdown::Shutdown,
    ) -> tokio::task::JoinHandle<()> {
        let (db, revocations) = (self.db.clone(), self.keys.revocations().clone());
        tokio::spawn(async move {
            let every = platform::revocation_sync::EVERY;
            let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            loop {
                tokio::select! {
                    _ = shutdown.wait() => return,
                    _ = ticks.tick() => {}
                }
                match storage::disabled_since(&db, accounts::token_lifetime_ago()).await {
                    Ok(users) => {
                        for (user, at_ms) in users {
                            revocations.revoke(user, at_ms / 1000, ACCESS_TOKEN_TTL_SECS + 60);
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot read disabled accounts"),
                }
            }
        })
    }
}

platform::token_keys_in!(Identity);

impl FromRef<Identity> for TrustedProxies {
    fn from_ref(s: &Identity) -> TrustedProxies {
        s.trusted_proxies.clone()
    }
}

/// A demo account created on first start.
pub struct DemoUser {
    pub id: i64,
    pub username: &'static str,
    pub role: Role,
    pub store_id: Option<i64>,
}

/// The demo accounts; each one's password is its name (demo only).
pub const DEMO_USERS: [DemoUser; 5] = [
    DemoUser {
        id: 1,
        username: "customer",
        role: Role::Customer,
        store_id: None,
    },
    DemoUser {
        id: 2,
        username: "owner",
        role: Role::Owner,
        store_id: Some(1),
    },
    DemoUser {
        id: 3,
        username: "owner2",
        role: Role::Owner,
        store_id: Some(2),
    },
    DemoUser {
        id: 4,
        username: "rider",
        role: Role::Rider,
        store_id: None,
    },
    DemoUser {
        id: 5,
        username: "admin",
        role: Role::Admin,
        store_id: None,
    },
];

pub fn hash_password(password: &str) -> Result<String, IdentityError> {
    passwords::hash(password)
        .map_err(|e| IdentityError::Internal(format!("cannot hash password: {e}")))
}

/// Creates the demo accounts unless users exist already; true if it did.
pub async fn seed_demo(db: &Db) -> Result<bool, IdentityError> {
    if storage::count(db).await? > 0 {
        return Ok(false);
    }
    // One after another on one thread: each hash's memory is reused, not
    // kept by five threads.
    let hashes = tokio::task::spawn_blocking(|| {
        DEMO_USERS
            .iter()
            .map(|u| hash_password(u.username))
            .collect::<Result<Vec<String>, IdentityError>>()
    })
    .await
    .map_err(|e| IdentityError::Internal(e.to_string()))??;
    let accounts = DEMO_USERS
        .iter()
        .zip(hashes)
        .map(|(u, hash)| (u.id, u.username, hash, u.role, u.store_id))
        .collect();
    storage::insert_with_ids(db, accounts).await?;
    Ok(true)
}
