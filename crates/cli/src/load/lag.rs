//! Event-to-view lag: from the answer to an action (place, accept, ...)
//! until the read models built from its event show it.
//!
//! - Notifications: one live stream (SSE) as the customer; each arriving
//!   notification is matched to the action that caused it. Cheap: no
//!   polling, and it sees every action of the run.
//! - Status view: for a sample of sagas, a probe polls
//!   `GET /statusChecks/{id}` every `POLL` until the status has reached the
//!   action's; its resolution is the poll interval plus one GET.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use reqwest::Method;

use super::client::{Client, SetupError};
use super::stats::Stats;

/// How often a status probe asks.
const POLL: Duration = Duration::from_millis(2);
/// A view that has not shown an action after this long counts as missed.
const GIVE_UP: Duration = Duration::from_secs(10);

/// The saga's actions: the step name, the status the view then shows, and
/// the event the customer is notified of.
pub const ACTIONS: [(&str, &str, &str); 6] = [
    ("place", "Ordered", "MenuOrdered"),
    ("accept", "Accepted", "CookStarted"),
    ("finish", "Cooked", "CookFinished"),
    ("pickup", "PickedUp", "DeliveryStarted"),
    ("complete", "Delivered", "DeliveryCompleted"),
    ("confirm", "Confirmed", "OrderConfirmed"),
];

fn rank(status: &str) -> Option<usize> {
    ACTIONS.iter().position(|(_, s, _)| *s == status)
}

#[derive(Debug)]
enum Slot {
    /// The action answered; its notification has not arrived yet.
    Waiting {
        answered: Instant,
        action: &'static str,
    },
    /// The notification arrived before the action's answer was read.
    Arrived(Instant),
}

/// Matches actions to the notifications they cause.
#[derive(Debug)]
pub struct Lag {
    stats: Arc<Stats>,
    slots: Mutex<HashMap<(i64, &'static str), Slot>>,
}

impl Lag {
    pub fn new(stats: Arc<Stats>) -> Lag {
        Lag {
            stats,
            slots: Mutex::new(HashMap::new()),
        }
    }

    fn record(&self, action: &'static str, lag: Duration) {
        self.stats.lag("notification (all)".into(), lag);
        self.stats.lag(format!("notification: {action}"), lag);
    }

    /// The action `action` on `order` answered at `answered`.
    pub fn expect(&self, order: i64, action: &'static str, answered: Instant) {
        let Some(&(_, _, event)) = ACTIONS.iter().find(|(a, _, _)| *a == action) else {
            return;
        };
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        match slots.remove(&(order, event)) {
            Some(Slot::Arrived(at)) => {
                drop(slots);
                self.record(action, at.saturating_duration_since(answered));
            }
            _ => {
                slots.insert((order, event), Slot::Waiting { answered, action });
            }
        }
    }

    /// A notification of `event` for `order` arrived at `at`.
    fn arrived(&self, order: i64, event: &str, at: Instant) {
        let Some(&(_, _, event)) = ACTIONS.iter().find(|(_, _, e)| *e == event) else {
            return;
        };
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        match slots.remove(&(order, event)) {
            Some(Slot::Waiting { answered, action }) => {
                drop(slots);
                self.record(action, at.saturating_duration_since(answered));
            }
            _ => {
                slots.insert((order, event), Slot::Arrived(at));
            }
        }
    }

    /// Actions whose notification never arrived, by action.
    pub fn unseen(&self) -> HashMap<&'static str, u64> {
        let slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = HashMap::new();
        for slot in slots.values() {
            if let Slot::Waiting { action, .. } = slot {
                *out.entry(*action).or_insert(0) += 1;
            }
        }
        out
    }
}

/// The newest notification id the user can see, so the stream starts after
/// it instead of replaying history: a galloping search with `limit=1`.
pub async fn latest_notification(client: &Client, token: &str) -> Result<i64, SetupError> {
    let first_after = |after: i64| async move {
        let path = format!("/notifications?after={after}&limit=1");
        let v = client
            .setup_json(
                "reading notifications",
                Method::GET,
                &path,
                Some(token),
                None,
            )
            .await?;
        Ok::<_, SetupError>(v.get(0).and_then(|n| n["id"].as_i64()))
    };
    let mut known = 0i64;
    let mut step = 1024i64;
    loop {
        match first_after(known.saturating_add(step)).await? {
            Some(id) => {
                known = id;
                step = step.saturating_mul(2);
            }
            None => match first_after(known).await? {
                None => return Ok(known),
                Some(id) => {
                    known = id;
                    step = (step / 2).max(1);
                }
            },
        }
    }
}

/// Follows the customer's notification stream from `after` and feeds each
/// notification to `lag`, reconnecting if the stream drops. Runs until
/// aborted; `ready` fires once the stream is open.
pub async fn follow_notifications(
    base: String,
    token: String,
    after: i64,
    lag: Arc<Lag>,
    ready: tokio::sync::oneshot::Sender<()>,
) {
    let mut ready = Some(ready);
    // A separate client: the shared one has a per-request timeout, which
    // would cut a stream that lives as long as the run.
    let http = match reqwest::Client::builder().tcp_nodelay(true).build() {
        Ok(h) => h,
        Err(e) => {
            tracing::error!(error = %e, "notification stream client");
            return;
        }
    };
    let mut last = after;
    loop {
        let url = format!("{base}/notifications/stream?after={last}");
        match http.get(&url).bearer_auth(&token).send().await {
            Ok(resp) if resp.status().is_success() => {
                if let Some(ready) = ready.take() {
                    let _ = ready.send(());
                }
                let mut body = resp.bytes_stream();
                let mut buf = String::new();
                while let Some(chunk) = body.next().await {
                    let Ok(chunk) = chunk else { break };
                    let at = Instant::now();
                    buf.push_str(&String::from_utf8_lossy(&chunk));
                    while let Some(end) = buf.find("\n\n") {
                        let block: String = buf.drain(..end + 2).collect();
                        for line in block.lines() {
                            if let Some(data) = line.strip_prefix("data:") {
                                if let Ok(n) = serde_json::from_str::<serde_json::Value>(data) {
                                    if let (Some(order), Some(event), Some(id)) = (
                                        n["orderId"].as_i64(),
                                        n["eventType"].as_str(),
                                        n["id"].as_i64(),
                                    ) {
                                        last = last.max(id);
                                        lag.arrived(order, event, at);
                                    }
                                }
                            }
                        }
                    }
                }
            }
            Ok(resp) => tracing::warn!(status = %resp.status(), "notification stream refused"),
            Err(e) => tracing::warn!(error = %e, "notification stream failed"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls the status view until it shows `action`'s status (or a later one)
/// for `order`, and records the lag from `answered`.
pub async fn probe_status(
    client: Client,
    token: Arc<str>,
    stats: Arc<Stats>,
    order: i64,
    action: &'static str,
    answered: Instant,
) {
    let Some(&(_, status, _)) = ACTIONS.iter().find(|(a, _, _)| *a == action) else {
        return;
    };
    let Some(want) = rank(status) else { return };
    let path = format!("/statusChecks/{order}");
    loop {
        if let Ok(answer) = client
            .call(Method::GET, &path, Some(&token), None, None)
            .await
        {
            let now = answer.done;
            let shown = answer
                .json()
                .and_then(|v| v["status"].as_str().and_then(rank))
                .is_some_and(|r| r >= want);
            if answer.ok() && shown {
                let lag = now.saturating_duration_since(answered);
                stats.lag("status view (all)".into(), lag);
                stats.lag(format!("status view: {action}"), lag);
                return;
            }
        }
        if answered.elapsed() > GIVE_UP {
            stats.error(
                format!("status view: {action} not shown within {GIVE_UP:?}"),
                Instant::now(),
                false,
            );
            return;
        }
        tokio::time::sleep(POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notification_is_matched_whichever_comes_first() {
        let stats = Arc::new(Stats::new(Instant::now()));
        let lag = Lag::new(stats.clone());
        let t0 = Instant::now();
        lag.expect(1, "place", t0);
        lag.arrived(1, "MenuOrdered", t0 + Duration::from_millis(5));
        lag.arrived(2, "CookStarted", t0);
        lag.expect(2, "accept", t0 + Duration::from_millis(1));
        lag.expect(3, "finish", t0);
        let g = stats.lock();
        assert_eq!(g.lags["notification (all)"].len(), 2);
        assert_eq!(g.lags["notification: place"].len(), 1);
        drop(g);
        assert_eq!(lag.unseen().get("finish"), Some(&1));
    }
}
