//! What Identity does with accounts, step by step: log in, sign up, change
//! one's own password, and an admin's creating, disabling and resetting.
//! Each step asks [`crate::domain`] and the [`crate::throttle`] for the
//! rules and [`crate::storage`] for the rows; the HTTP layer only extracts
//! the request and turns the account into a token.

use std::net::IpAddr;
use std::time::Instant;

use contracts::Role;
use platform::auth::ACCESS_TOKEN_TTL_SECS;

use crate::domain;
use crate::error::IdentityError;
use crate::storage::{self, Account};
use crate::throttle::Attempt;
use crate::{hash_password, passwords, Identity};

/// An account to create, its name and password not yet checked.
pub struct NewAccount {
    pub username: String,
    pub password: String,
    pub role: Role,
    pub store_id: Option<i64>,
}

impl Identity {
    /// Hashes a new password on the bounded pool.
    pub async fn hash(&self, password: String) -> Result<String, IdentityError> {
        self.hashing.run(move || hash_password(&password)).await?
    }

    /// Checks a password against a stored hash, or against the dummy hash
    /// when there is no account, on the bounded pool.
    pub async fn check_password(
        &self,
        stored: Option<String>,
        password: String,
    ) -> Result<bool, IdentityError> {
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

    /// The account a username and password log in to. Throttled before any
    /// password is hashed; a failure counts against the account and the
    /// address, a success clears the account's failures.
    pub async fn log_in(
        &self,
        username: &str,
        password: String,
        address: Option<IpAddr>,
    ) -> Result<Account, IdentityError> {
        let mut attempt = vec![Attempt::Account(username.to_lowercase())];
        attempt.extend(address.map(Attempt::Address));
        self.throttle.check(&attempt, Instant::now())?;
        let account = storage::by_name(&self.db, username).await?;
        let matches = self
            .check_password(account.as_ref().map(|a| a.password_hash.clone()), password)
            .await?;
        let disabled = account.as_ref().is_some_and(|a| a.disabled);
        match (domain::login(account.is_some(), matches, disabled), account) {
            (Ok(()), Some(account)) => {
                self.throttle.succeeded(&attempt[0]);
                Ok(account)
            }
            (Err(IdentityError::WrongCredentials), _) | (Ok(()), None) => {
                self.throttle.failed(&attempt, Instant::now());
                Err(IdentityError::WrongCredentials)
            }
            (Err(e), _) => Err(e),
        }
    }

    /// A customer signs up.
    pub async fn register(
        &self,
        username: &str,
        password: String,
    ) -> Result<Account, IdentityError> {
        let username = domain::normalize_username(username)?;
        domain::check_password(&password)?;
        let hash = self.hash(password).await?;
        let id = storage::create(
            &self.db,
            username.clone(),
            hash.clone(),
            Role::Customer,
            None,
        )
        .await?;
        Ok(Account {
            id,
            username,
            password_hash: hash,
            role: Role::Customer,
            store_id: None,
            disabled: false,
        })
    }

    /// The enabled account a refresh token's session belongs to, with the
    /// session's next refresh token.
    pub async fn refresh(&self, refresh_token: &str) -> Result<(Account, String), IdentityError> {
        let (user_id, next) = crate::sessions::rotate(&self.db, refresh_token)
            .await?
            .ok_or(IdentityError::SessionExpired)?;
        let account = storage::by_id(&self.db, user_id)
            .await?
            .filter(|a| !a.disabled)
            .ok_or(IdentityError::SessionExpired)?;
        Ok((account, next))
    }

    /// A user changes their own password, proving the old one (throttled
    /// like a login); every session of theirs ends.
    pub async fn change_own_password(
        &self,
        user_id: i64,
        username: &str,
        old_password: String,
        new_password: String,
    ) -> Result<Account, IdentityError> {
        domain::check_password(&new_password)?;
        let attempt = [Attempt::Account(username.to_lowercase())];
        self.throttle.check(&attempt, Instant::now())?;
        let account = storage::by_id(&self.db, user_id)
            .await?
            .filter(|a| !a.disabled)
            .ok_or(IdentityError::DisabledSince)?;
        let matches = self
            .check_password(Some(account.password_hash.clone()), old_password)
            .await?;
        if let Err(e) = domain::own_password_change(matches) {
            self.throttle.failed(&attempt, Instant::now());
            return Err(e);
        }
        let hash = self.hash(new_password).await?;
        storage::set_password(&self.db, account.id, hash).await?;
        Ok(account)
    }

    /// An admin creates an account of any role; its id.
    pub async fn create(&self, new: NewAccount) -> Result<(String, i64), IdentityError> {
        let username = domain::normalize_username(&new.username)?;
        domain::check_password(&new.password)?;
        domain::check_store(new.role, new.store_id)?;
        let hash = self.hash(new.password).await?;
        let id = storage::create(&self.db, username.clone(), hash, new.role, new.store_id).await?;
        Ok((username, id))
    }

    /// Disables an account now: its sessions end and, in this process,
    /// its access tokens are refused at once; false if there is none.
    pub async fn disable(&self, user_id: i64) -> Result<bool, IdentityError> {
        let now = platform::clock::now_ms();
        let found = storage::disable(&self.db, user_id, now).await?;
        if found {
            self.keys
                .revocations()
                .revoke(user_id, now / 1000, ACCESS_TOKEN_TTL_SECS + 60);
        }
        Ok(found)
    }

    /// An admin disables another account; the account as it is now.
    pub async fn disable_by(&self, admin_id: i64, user_id: i64) -> Result<Account, IdentityError> {
        domain::may_disable(admin_id, user_id)?;
        if !self.disable(user_id).await? {
            return Err(IdentityError::NoUser(user_id));
        }
        storage::by_id(&self.db, user_id)
            .await?
            .ok_or(IdentityError::NoUser(user_id))
    }

    /// An admin sets an account's password; its sessions end.
    pub async fn reset_password(
        &self,
        user_id: i64,
        password: String,
    ) -> Result<(), IdentityError> {
        domain::check_password(&password)?;
        let hash = self.hash(password).await?;
        if !storage::set_password(&self.db, user_id, hash).await? {
            return Err(IdentityError::NoUser(user_id));
        }
        Ok(())
    }

    /// Accounts disabled within the life of a token, with when (ms).
    pub async fn recently_disabled(&self) -> Result<Vec<(i64, i64)>, IdentityError> {
        storage::disabled_since(&self.db, token_lifetime_ago()).await
    }
}

/// Since when a disabled account's token may still be alive.
pub fn token_lifetime_ago() -> i64 {
    platform::clock::now_ms() - (ACCESS_TOKEN_TTL_SECS + 60) * 1000
}
