//! In the distributed shape each service checks tokens by itself, so a
//! disable at identity reaches the others by this: every few seconds each
//! service asks identity which accounts were disabled within the life of a
//! token and refuses their earlier tokens. While identity cannot be
//! reached, tokens still end at their expiry (15 minutes).

use std::time::Duration;

use serde::Deserialize;
use tokio::task::JoinHandle;

use crate::auth::ACCESS_TOKEN_TTL_SECS;
use crate::revocations::Revocations;
use crate::shutdown::Shutdown;

/// How often each service asks; the longest a disabled account's token is
/// still accepted elsewhere while identity answers.
pub const EVERY: Duration = Duration::from_secs(3);
const CALL_DEADLINE: Duration = Duration::from_secs(2);
/// Identity's list of recent disables.
pub const PATH: &str = "/.well-known/revoked-users";

#[derive(Debug, Deserialize, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Revoked {
    pub user_id: i64,
    /// Unix seconds.
    pub disabled_at: i64,
}

#[derive(Debug, Deserialize, serde::Serialize, utoipa::ToSchema)]
pub struct RevokedUsers {
    pub users: Vec<Revoked>,
}

/// Applies identity's list to `revocations`.
pub fn apply(list: &RevokedUsers, revocations: &Revocations) {
    for user in &list.users {
        revocations.revoke(user.user_id, user.disabled_at, ACCESS_TOKEN_TTL_SECS + 60);
    }
}

/// Asks identity at `identity_url` every [`EVERY`] until shutdown.
pub fn spawn(
    identity_url: String,
    revocations: Revocations,
    mut shutdown: Shutdown,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let http = reqwest::Client::new();
        let url = format!("{}{PATH}", identity_url.trim_end_matches('/'));
        // The first ask after one period: services may start before
        // identity does.
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + EVERY, EVERY);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing = false;
        loop {
            tokio::select! {
                _ = shutdown.wait() => return,
                _ = ticks.tick() => {}
            }
            let answer = async {
                http.get(&url)
                    .timeout(CALL_DEADLINE)
                    .send()
                    .await?
                    .error_for_status()?
                    .json::<RevokedUsers>()
                    .await
            }
            .await;
            match answer {
                Ok(list) => {
                    apply(&list, &revocations);
                    if failing {
                        tracing::info!("identity's disabled accounts are known again");
                    }
                    failing = false;
                }
                Err(e) if !failing => {
                    failing = true;
                    tracing::warn!(error = %e, "cannot ask identity for disabled accounts; their tokens end at expiry");
                }
                Err(_) => {}
            }
        }
    })
}
