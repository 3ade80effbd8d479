//! What one iteration does, per scenario, as the seed's actors would: the
//! customer orders, the owner accepts and finishes, the rider picks up and
//! completes, the customer confirms.
//!
//! A step that depends on an event (the store list learns of an order from
//! `MenuOrdered`, ...) is simply sent and, while it answers 404 or 409
//! because the event has not arrived yet, sent again after a short pause.
//! Those retries are counted, and the time until the step first succeeded
//! is recorded as that step's event wait; neither is an error.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::ValueEnum;
use reqwest::Method;
use serde_json::{json, Value};

use super::client::{Answer, Client};
use super::lag::{probe_status, Lag};
use super::stats::Stats;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// Place, accept, finish, pick up, complete, confirm.
    Saga,
    /// `POST /orders` only.
    Place,
    /// `GET /menus` then `GET /orders`.
    Browse,
    /// `GET /orders` only: the seed's siege case.
    Orders,
    /// `GET /orders/{id}` of a few orders placed before the run.
    Order,
    /// Of every 10 iterations: 1 saga, 2 places, 7 browses.
    Mix,
    /// `GET /` of anything (the ceilings' bare axum hello-world).
    Hello,
}

impl Scenario {
    pub fn needs_users(self) -> bool {
        self != Scenario::Hello
    }

    pub fn places_orders(self) -> bool {
        matches!(self, Scenario::Saga | Scenario::Place | Scenario::Mix)
    }
}

/// The step already recorded why it failed.
#[derive(Debug)]
pub struct Failed;

/// Everything an iteration needs; shared by all workers.
pub struct Ctx {
    pub client: Client,
    pub stats: Arc<Stats>,
    pub lag: Option<Arc<Lag>>,
    pub customer: Arc<str>,
    pub owner: Arc<str>,
    pub rider: Arc<str>,
    pub menu: String,
    /// Makes Idempotency-Keys unique per run.
    pub run_id: String,
    /// Orders the `order` scenario reads.
    pub order_ids: Vec<i64>,
    /// Probe the status view on every Nth saga or place (0: never).
    pub status_every: u64,
    /// How long a step waits for the event it depends on.
    pub event_timeout: Duration,
    /// Status probes still running.
    pub probes: Arc<AtomicU64>,
}

impl Ctx {
    /// One request that must answer `expect` (or any 2xx when `None`).
    /// Latency runs from `from` (the scheduled start) when given.
    #[allow(clippy::too_many_arguments)]
    async fn step(
        &self,
        name: &'static str,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
        key: Option<&str>,
        from: Option<Instant>,
        expect: Option<u16>,
    ) -> Result<Answer, Failed> {
        match self.client.call(method, path, token, body, key).await {
            Ok(a) if expect.map_or(a.ok(), |s| s == a.status) => {
                let start = from.unwrap_or(a.sent);
                self.stats
                    .request(name, a.done, a.done.saturating_duration_since(start));
                Ok(a)
            }
            Ok(a) => {
                self.stats
                    .error(format!("{name}: HTTP {}", a.status), a.done, true);
                Err(Failed)
            }
            Err(e) => {
                self.stats
                    .error(format!("{name}: {}", e.kind()), Instant::now(), false);
                Err(Failed)
            }
        }
    }

    /// A step that can only succeed once an event has arrived: retried on
    /// 404/409 until it does, or until `event_timeout` after `since`.
    async fn after_event(
        &self,
        name: &'static str,
        wait: &'static str,
        path: &str,
        token: &str,
        since: Instant,
    ) -> Result<Answer, Failed> {
        let mut pause = Duration::from_millis(1);
        loop {
            match self
                .client
                .call(Method::PUT, path, Some(token), None, None)
                .await
            {
                Ok(a) if a.ok() => {
                    self.stats
                        .request(name, a.done, a.done.saturating_duration_since(a.sent));
                    self.stats
                        .wait(wait, a.sent.saturating_duration_since(since));
                    return Ok(a);
                }
                Ok(a) if a.status == 404 || a.status == 409 => {
                    if since.elapsed() > self.event_timeout {
                        self.stats.error(
                            format!(
                                "{name}: HTTP {} after waiting {:?}",
                                a.status, self.event_timeout
                            ),
                            a.done,
                            true,
                        );
                        return Err(Failed);
                    }
                    self.stats.retry(a.done);
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(8));
                }
                Ok(a) => {
                    self.stats
                        .error(format!("{name}: HTTP {}", a.status), a.done, true);
                    return Err(Failed);
                }
                Err(e) => {
                    self.stats
                        .error(format!("{name}: {}", e.kind()), Instant::now(), false);
                    return Err(Failed);
                }
            }
        }
    }

    /// Starts measuring how long the views take to show `action`.
    fn observe(&self, order: i64, action: &'static str, answered: Instant, probe: bool) {
        if let Some(lag) = &self.lag {
            lag.expect(order, action, answered);
        }
        if probe {
            let running = self.probes.clone();
            running.fetch_add(1, Ordering::Relaxed);
            let probe = probe_status(
                self.client.clone(),
                self.customer.clone(),
                self.stats.clone(),
                order,
                action,
                answered,
            );
            tokio::spawn(async move {
                probe.await;
                running.fetch_sub(1, Ordering::Relaxed);
            });
        }
    }

    fn probes(&self, k: u64) -> bool {
        self.status_every > 0 && k.is_multiple_of(self.status_every)
    }

    async fn place(&self, k: u64, due: Instant) -> Result<(i64, Answer), Failed> {
        let key = format!("{}-{k}", self.run_id);
        let body = json!({"menuName": self.menu, "qty": 1, "address": "load test"});
        let a = self
            .step(
                "place",
                Method::POST,
                "/orders",
                Some(&self.customer),
                Some(&body),
                Some(&key),
                Some(due),
                Some(201),
            )
            .await?;
        match a.json().and_then(|v| v["id"].as_i64()) {
            Some(id) => Ok((id, a)),
            None => {
                self.stats
                    .error("place: no order id in answer".into(), a.done, false);
                Err(Failed)
            }
        }
    }

    /// One saga; `probe` also probes the status view after each action.
    async fn saga(&self, k: u64, due: Instant, probe: bool) -> Result<Instant, Failed> {
        let (id, placed) = self.place(k, due).await?;
        self.observe(id, "place", placed.done, probe);
        let owner = &*self.owner;
        let rider = &*self.rider;

        let path = format!("/storeOrders/{id}/accept");
        let a = self
            .after_event(
                "accept",
                "store list gets the order",
                &path,
                owner,
                placed.done,
            )
            .await?;
        self.observe(id, "accept", a.done, probe);

        let path = format!("/storeOrders/{id}/finish");
        let a = self
            .step(
                "finish",
                Method::PUT,
                &path,
                Some(owner),
                None,
                None,
                None,
                None,
            )
            .await?;
        self.observe(id, "finish", a.done, probe);

        let path = format!("/deliveries/{id}/pickup");
        let a = self
            .after_event(
                "pickup",
                "delivery list gets the order",
                &path,
                rider,
                a.done,
            )
            .await?;
        self.observe(id, "pickup", a.done, probe);

        let path = format!("/deliveries/{id}/complete");
        let a = self
            .step(
                "complete",
                Method::PUT,
                &path,
                Some(rider),
                None,
                None,
                None,
                None,
            )
            .await?;
        self.observe(id, "complete", a.done, probe);

        let path = format!("/orders/{id}/confirm");
        let a = self
            .after_event(
                "confirm",
                "order turns Delivered",
                &path,
                &self.customer,
                a.done,
            )
            .await?;
        self.observe(id, "confirm", a.done, probe);
        Ok(a.done)
    }

    async fn browse(&self, due: Instant) -> Result<Instant, Failed> {
        self.step(
            "GET /menus",
            Method::GET,
            "/menus",
            None,
            None,
            None,
            Some(due),
            None,
        )
        .await?;
        let a = self
            .step(
                "GET /orders",
                Method::GET,
                "/orders",
                Some(&self.customer),
                None,
                None,
                None,
                None,
            )
            .await?;
        Ok(a.done)
    }

    async fn run(&self, scenario: Scenario, k: u64, due: Instant) -> Result<Instant, Failed> {
        match scenario {
            Scenario::Saga => self.saga(k, due, self.probes(k)).await,
            Scenario::Place => {
                let (id, a) = self.place(k, due).await?;
                self.observe(id, "place", a.done, self.probes(k));
                Ok(a.done)
            }
            Scenario::Browse => self.browse(due).await,
            Scenario::Orders => self
                .step(
                    "GET /orders",
                    Method::GET,
                    "/orders",
                    Some(&self.customer),
                    None,
                    None,
                    Some(due),
                    None,
                )
                .await
                .map(|a| a.done),
            Scenario::Order => {
                let Some(id) = self
                    .order_ids
                    .get((k % self.order_ids.len().max(1) as u64) as usize)
                else {
                    self.stats
                        .error("order: no order to read".into(), Instant::now(), false);
                    return Err(Failed);
                };
                let path = format!("/orders/{id}");
                self.step(
                    "GET /orders/{id}",
                    Method::GET,
                    &path,
                    Some(&self.customer),
                    None,
                    None,
                    Some(due),
                    None,
                )
                .await
                .map(|a| a.done)
            }
            Scenario::Mix => match k % 10 {
                // Every 10th iteration is a saga: sample by saga number.
                0 => self.saga(k, due, self.probes(k / 10)).await,
                1 | 2 => Box::pin(self.run(Scenario::Place, k, due)).await,
                _ => self.browse(due).await,
            },
            Scenario::Hello => self
                .step("GET /", Method::GET, "/", None, None, None, Some(due), None)
                .await
                .map(|a| a.done),
        }
    }

    /// Runs one iteration and records it whole.
    pub async fn iterate(&self, scenario: Scenario, k: u64, due: Instant) {
        let saga =
            scenario == Scenario::Saga || (scenario == Scenario::Mix && k.is_multiple_of(10));
        match self.run(scenario, k, due).await {
            Ok(done) => self
                .stats
                .iteration(done, done.saturating_duration_since(due), true, saga),
            Err(Failed) => self
                .stats
                .iteration(Instant::now(), Duration::ZERO, false, saga),
        }
    }
}
