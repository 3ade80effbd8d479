//! Users and login: customers, store owners, riders and admins log in here
//! and get a signed token that every other service checks by itself.
//!
//! [`SERVICE`] describes it to the shapes that run it (`platform::service`):
//! name, port, gateway paths, migrations, OpenAPI, events, and `start`.

pub mod accounts;
mod hashing;
mod http;
mod passwords;
pub mod sessions;
pub mod throttle;

use platform::service::{Seeding, ServiceDescription, StartError, Started, Starting, Supplies};
use std::sync::{Arc, OnceLock};
use utoipa::OpenApi as _;

pub use hashing::Hashing;
pub use http::{router, IdentityApi};
pub use throttle::TrustedProxies;

use axum::extract::FromRef;
use contracts::Role;
use platform::auth::ACCESS_TOKEN_TTL_SECS;
use platform::sql;
use platform::{ApiError, Db, TokenKeys};
use throttle::LoginThrottle;

pub fn migrations() -> platform::Migrations {
    platform::migrations!()
}

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
    ) -> Result<Identity, ApiError> {
        let since = platform::clock::now_ms() - (ACCESS_TOKEN_TTL_SECS + 60) * 1000;
        for (user, at_ms) in accounts::disabled_since(&db, since).await? {
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
                let since = platform::clock::now_ms() - (ACCESS_TOKEN_TTL_SECS + 60) * 1000;
                match accounts::disabled_since(&db, since).await {
                    Ok(users) => {
                        for (user, at_ms) in users {
                            revocations.revoke(user, at_ms / 1000, ACCESS_TOKEN_TTL_SECS + 60);
                        }
                    }
                    Err(e) => tracing::warn!(error = %e.detail, "cannot read disabled accounts"),
                }
            }
        })
    }

    /// Hashes a new password on the bounded pool.
    pub async fn hash(&self, password: String) -> Result<String, ApiError> {
        self.hashing.run(move || hash_password(&password)).await?
    }

    /// Checks a password against a stored hash, or against the dummy hash
    /// when there is no account, on the bounded pool.
    pub async fn check_password(
        &self,
        stored: Option<String>,
        password: String,
    ) -> Result<bool, ApiError> {
        let dummy = self.dummy_hash.clone();
        self.hashing
            .run(move || {
                let known = stored.is_some();
                let hash = stored.unwrap_or_else(|| {
                    dummy
                        .get_or_init(|| {
                            hash_password(&uuid::Uuid::new_v4().to_string()).unwrap_or_default()
                        })
                        .clone()
                });
                known & passwords::verify(&password, &hash)
            })
            .await
    }

    /// Disables an account now: its sessions end and, in this process,
    /// its access tokens are refused at once.
    pub async fn disable(&self, user_id: i64) -> Result<bool, ApiError> {
        let now = platform::clock::now_ms();
        let found = accounts::disable(&self.db, user_id, now).await?;
        if found {
            self.keys
                .revocations()
                .revoke(user_id, now / 1000, ACCESS_TOKEN_TTL_SECS + 60);
        }
        Ok(found)
    }
}

impl FromRef<Identity> for TokenKeys {
    fn from_ref(s: &Identity) -> TokenKeys {
        s.keys.clone()
    }
}

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

pub fn hash_password(password: &str) -> Result<String, ApiError> {
    passwords::hash(password).map_err(|e| ApiError::internal(format!("cannot hash password: {e}")))
}

/// Creates the demo accounts unless users exist already; true if it did.
pub async fn seed_demo(db: &Db) -> Result<bool, ApiError> {
    if accounts::count(db).await? > 0 {
        return Ok(false);
    }
    // One after another on one thread: each hash's memory is reused, not
    // kept by five threads.
    let hashes = tokio::task::spawn_blocking(|| {
        DEMO_USERS
            .iter()
            .map(|u| hash_password(u.username))
            .collect::<Result<Vec<String>, ApiError>>()
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))??;
    db.write(move |tx| {
        Box::pin(async move {
            for (user, hash) in DEMO_USERS.iter().zip(hashes) {
                sql::query("INSERT INTO users (id, username, password_hash, role, store_id) VALUES (?, ?, ?, ?, ?)")
                    .bind(user.id)
                    .bind(user.username)
                    .bind(hash)
                    .bind(user.role.as_str())
                    .bind(user.store_id)
                    .execute(&mut *tx)
                    .await?;
            }
            Ok::<_, ApiError>(())
        })
    })
    .await?;
    Ok(true)
}
