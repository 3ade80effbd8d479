//! Security of accounts and tokens, one test per finding of issue 10: no
//! default accounts where strangers can reach them, no shared or weak
//! signing secret, forged tokens refused, disabled accounts and logged-out
//! sessions ended, service tokens scoped, logins throttled and costing the
//! same for unknown users, memory bounded under a login storm, and the
//! token in the query accepted on event streams only.
//!
//! The serve-shape tests need NATS (HANWHA_TEST_NATS_URL); without it they
//! say so and skip.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;
use contracts::Role;
use platform::signing_keys::PrivateKey;
use platform::{Principal, ServiceSigner, TokenKeys};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_hanwha-delivery");

/// A process of the binary and the lines it printed first.
struct Started {
    child: Child,
    base: String,
    lines: Vec<String>,
}

impl Drop for Started {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The binary with `args` and `env`, stdout piped.
fn command(args: &[&str], env: &[(&str, String)]) -> Command {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .env("HANWHA_LOG", "warn")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::piped());
    command
}

/// Starts the binary with `args` and `env`; reads stdout until the address
/// line and the `extra` lines after it.
fn start(args: &[&str], env: &[(&str, String)], extra: usize) -> Started {
    let mut child = command(args, env)
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start hanwha-delivery");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let first = lines.next().expect("printed nothing").expect("read");
    let base = first
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no address in {first:?}"))
        .replace("0.0.0.0", "127.0.0.1");
    let mut printed = vec![first];
    for _ in 0..extra {
        printed.push(lines.next().expect("a line").expect("read"));
    }
    std::thread::spawn(move || for _ in lines {});
    Started {
        child,
        base,
        lines: printed,
    }
}

/// Runs the binary to its end; its exit status and standard error.
fn run(args: &[&str], env: &[(&str, String)], stdin: &str) -> (bool, String, String) {
    let mut child = command(args, env)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run hanwha-delivery");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    let out = child.wait_with_output().expect("wait");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn api(base: &str, token: Option<String>) -> Api {
    Api {
        base: base.to_string(),
        http: reqwest::Client::new(),
        token,
    }
}

async fn login_as(base: &str, user: &str, password: &str) -> Reply {
    api(base, None)
        .post(
            "/auth/login",
            json!({"username": user, "password": password}),
        )
        .await
}

async fn session(base: &str, user: &str, password: &str) -> Value {
    let r = login_as(base, user, password).await;
    assert_eq!(r.status, StatusCode::OK, "login {user}: {}", r.body);
    r.body
}

fn token(body: &Value) -> Option<String> {
    body["token"].as_str().map(str::to_string)
}

/// `POST path` with a refresh token, as a client without an access token.
async fn with_refresh_token(base: &str, path: &str, refresh: &Value) -> Reply {
    api(base, None)
        .post(path, json!({ "refreshToken": refresh }))
        .await
}

/// An admin disables the account of a login answer.
async fn disable(admin: &Api, login: &Value) -> Reply {
    let id = login["userId"].as_i64().expect("id");
    let r = admin
        .send(Method::PUT, &format!("/auth/users/{id}/disable"), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r
}

fn nats() -> Option<String> {
    let url = std::env::var("HANWHA_TEST_NATS_URL").ok();
    if url.is_none() {
        eprintln!("HANWHA_TEST_NATS_URL unset: skipping a serve-shape test");
    }
    url
}

/// `serve SERVICE` on a free port with its data in `dir`.
fn serve(service: &str, dir: &Path, env: &[(&str, String)], extra: usize) -> Started {
    let data = dir.display().to_string();
    start(
        &[
            "serve",
            service,
            "--addr",
            "127.0.0.1:0",
            "--data-dir",
            &data,
        ],
        env,
        extra,
    )
}

/// The environment of a `serve` process on a private stream.
fn serve_env(dir: &Path, nats: &str) -> Vec<(&'static str, String)> {
    let stream = format!("SEC_{}", uuid::Uuid::new_v4().simple());
    let mut env: Vec<(&'static str, String)> = fleet_env(dir)
        .into_iter()
        .filter(|(k, _)| *k != "HANWHA_DEMO")
        .collect();
    env.push(("HANWHA_NATS_URL", nats.to_string()));
    env.push((
        "HANWHA_SUBJECT_PREFIX",
        format!("{}.events", stream.to_lowercase()),
    ));
    env.push(("HANWHA_STREAM", stream));
    env
}

#[tokio::test]
async fn an_all_in_one_reachable_by_others_has_no_demo_accounts_and_says_how_to_make_an_admin() {
    let tmp = tempfile::tempdir().expect("dir");
    let data = tmp.path().join("data");
    let data_arg = data.display().to_string();
    let server = start(&["--listen", "0.0.0.0:0", "--data-dir", &data_arg], &[], 1);
    assert!(
        server.lines[1].contains("users add --role admin"),
        "no hint to create the first admin: {:?}",
        server.lines
    );
    #[cfg(unix)]
    {
        // The key it made on first start is its owner's alone.
        use std::os::unix::fs::PermissionsExt;
        let key = std::fs::metadata(data.join("token.key")).expect("token.key");
        assert_eq!(key.permissions().mode() & 0o077, 0);
    }
    for demo in ["admin", "customer", "owner", "rider"] {
        let r = login_as(&server.base, demo, demo).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{demo} exists");
    }
    let (ok, _, err) = run(
        &[
            "users",
            "add",
            "--role",
            "admin",
            "boss",
            "--data-dir",
            &data_arg,
        ],
        &[],
        "a long password\n",
    );
    assert!(ok, "users add failed: {err}");
    let boss = session(&server.base, "boss", "a long password").await;
    assert_eq!(boss["role"], "admin");
    // The admin creates an owner of an existing store and a rider.
    let admin = api(&server.base, token(&boss));
    let owner = admin
        .post(
            "/auth/users",
            json!({"username": "kim", "password": "kims password", "role": "owner", "storeId": 7}),
        )
        .await;
    assert_eq!(owner.status, StatusCode::CREATED, "{}", owner.body);
    let kim = session(&server.base, "kim", "kims password").await;
    assert_eq!(kim["storeId"], 7);
    // A password never comes from the command line.
    let (ok, _, _) = run(
        &[
            "users",
            "passwd",
            "kim",
            "new password",
            "--data-dir",
            &data_arg,
        ],
        &[],
        "",
    );
    assert!(!ok, "a password was taken from argv");

    // Loopback, as in the quick start: the demo, named in the first lines.
    let local = start(
        &[
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            &tmp.path().join("demo").display().to_string(),
        ],
        &[],
        1,
    );
    assert!(
        local.lines[1].contains("demo accounts"),
        "{:?}",
        local.lines
    );
    session(&local.base, "admin", "admin").await;
}

#[tokio::test]
async fn serve_never_seeds_demo_accounts_without_demo() {
    let Some(nats) = nats() else { return };
    let tmp = tempfile::tempdir().expect("dir");
    let identity = serve("identity", tmp.path(), &serve_env(tmp.path(), &nats), 1);
    assert!(identity.lines[1].contains("users add --role admin"));
    let r = login_as(&identity.base, "admin", "admin").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[test]
fn a_shared_secret_a_missing_key_or_a_key_others_can_read_is_refused_at_start() {
    let tmp = tempfile::tempdir().expect("dir");
    let data = tmp.path().join("data").display().to_string();
    for secret in [
        "change-me",
        "x",
        "0123456789abcdef0123456789abcdef0123456789abcdef",
    ] {
        let (ok, _, err) = run(
            &["--listen", "127.0.0.1:0", "--data-dir", &data],
            &[("HANWHA_TOKEN_SECRET", secret.to_string())],
            "",
        );
        assert!(!ok, "started with HANWHA_TOKEN_SECRET={secret}");
        assert!(err.contains("keys generate"), "no way forward in: {err}");
    }
    // Identity without a key, and another service without public keys.
    let (ok, _, err) = run(&["serve", "identity", "--data-dir", &data], &[], "");
    assert!(!ok && err.contains("HANWHA_TOKEN_KEY_FILE"), "{err}");
    let (ok, _, err) = run(&["serve", "order", "--data-dir", &data], &[], "");
    assert!(!ok && err.contains("HANWHA_TOKEN_PUBLIC_KEYS"), "{err}");
    // `keys generate` writes a private key only its owner may read; a key
    // others may read is refused.
    let keys = tmp.path().join("keys");
    let (ok, _, err) = run(
        &["keys", "generate", "--out", &keys.display().to_string()],
        &[],
        "",
    );
    assert!(ok, "{err}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let key = keys.join("token.key");
        let mode = std::fs::metadata(&key).expect("key").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let (ok, _, err) = run(
            &["--listen", "127.0.0.1:0", "--data-dir", &data],
            &[("HANWHA_TOKEN_KEY_FILE", key.display().to_string())],
            "",
        );
        assert!(!ok && err.contains("chmod 600"), "{err}");
    }
}

#[tokio::test]
async fn a_forged_token_is_refused() {
    let server = Server::start(&[]);
    let admin = Principal {
        user_id: 5,
        username: "admin".into(),
        role: Role::Admin,
        store_id: None,
    };
    let forged = TokenKeys::ephemeral().issue(&admin).expect("sign");
    let r = api(&server.base, Some(forged)).get("/payments").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // The old way: HS256 with a placeholder secret.
    #[derive(serde::Serialize)]
    struct Old {
        sub: i64,
        name: &'static str,
        role: &'static str,
        iat: i64,
        exp: i64,
        jti: &'static str,
    }
    let old = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &Old {
            sub: 5,
            name: "admin",
            role: "admin",
            iat: 0,
            exp: 4_000_000_000,
            jti: "x",
        },
        &jsonwebtoken::EncodingKey::from_secret(b"change-me"),
    )
    .expect("sign");
    let r = api(&server.base, Some(old)).get("/payments").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // The real key is published, and only its public half.
    let jwks = api(&server.base, None).get("/.well-known/jwks.json").await;
    assert_eq!(jwks.status, StatusCode::OK);
    let key = &jwks.body["keys"][0];
    assert_eq!(key["kty"], "OKP");
    assert!(key.get("d").is_none());
}

#[tokio::test]
async fn a_disabled_users_token_is_refused_at_once_and_their_sessions_end() {
    let server = Server::start(&[]);
    let admin = Api::login(&server, "admin").await;
    let rider = session(&server.base, "rider", "rider").await;
    let rider_api = api(&server.base, token(&rider));
    assert_eq!(rider_api.get("/deliveries").await.status, StatusCode::OK);
    let r = disable(&admin, &rider).await;
    assert_eq!(r.body["disabled"], true);
    assert_eq!(
        rider_api.get("/deliveries").await.status,
        StatusCode::UNAUTHORIZED
    );
    let again = with_refresh_token(&server.base, "/auth/refresh", &rider["refreshToken"]).await;
    assert_eq!(again.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        login_as(&server.base, "rider", "rider").await.status,
        StatusCode::FORBIDDEN
    );
    // Nobody but an admin disables.
    let customer = Api::login(&server, "customer").await;
    let r = customer
        .send(Method::PUT, "/auth/users/5/disable", None)
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

/// A disable made elsewhere reaches a process at its next sync with the
/// accounts (every `revocation_sync::EVERY`, 3 s); a few of those, not the
/// token's lifetime, with room for a busy machine.
const WITHIN_SECONDS: Duration =
    Duration::from_secs(platform::revocation_sync::EVERY.as_secs() * 5);

#[tokio::test]
async fn users_disable_on_a_running_all_in_one_refuses_the_token_within_seconds() {
    let _machine = exclusive().await;
    let server = Server::start(&[]);
    let owner = Api::login(&server, "owner").await;
    assert_eq!(owner.get("/storeOrders").await.status, StatusCode::OK);
    let data = server.data_dir.display().to_string();
    let (ok, _, err) = run(&["users", "disable", "owner", "--data-dir", &data], &[], "");
    assert!(ok, "{err}");
    let disabled = Instant::now();
    eventually("the all-in-one refuses the disabled owner", || {
        let owner = owner.clone();
        async move {
            (owner.get("/storeOrders").await.status == StatusCode::UNAUTHORIZED).then_some(())
        }
    })
    .await;
    assert!(
        disabled.elapsed() < WITHIN_SECONDS,
        "{:?}",
        disabled.elapsed()
    );
    let r = login_as(&server.base, "owner", "owner").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn refresh_tokens_rotate_on_use_and_logout_ends_the_session() {
    let server = Server::start(&[]);
    let first = session(&server.base, "customer", "customer").await;
    assert_eq!(first["expiresIn"], 900);
    let second = with_refresh_token(&server.base, "/auth/refresh", &first["refreshToken"]).await;
    assert_eq!(second.status, StatusCode::OK, "{}", second.body);
    assert_ne!(second.body["refreshToken"], first["refreshToken"]);
    assert_eq!(
        api(&server.base, token(&second.body))
            .get("/auth/me")
            .await
            .body["username"],
        "customer"
    );
    // Spent: the old one no longer works.
    let replay = with_refresh_token(&server.base, "/auth/refresh", &first["refreshToken"]).await;
    assert_eq!(replay.status, StatusCode::UNAUTHORIZED);
    let out = with_refresh_token(&server.base, "/auth/logout", &second.body["refreshToken"]).await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    let after =
        with_refresh_token(&server.base, "/auth/refresh", &second.body["refreshToken"]).await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED);
    // Changing one's own password needs the old one and ends other sessions.
    let other = session(&server.base, "customer", "customer").await;
    let me = api(&server.base, token(&other));
    for (old, answer) in [
        ("nope", StatusCode::UNPROCESSABLE_ENTITY),
        ("customer", StatusCode::OK),
    ] {
        let r = me
            .send(
                Method::PUT,
                "/auth/password",
                Some(json!({"oldPassword": old, "newPassword": "a new password"})),
            )
            .await;
        assert_eq!(r.status, answer, "{}", r.body);
    }
    let stale = with_refresh_token(&server.base, "/auth/refresh", &other["refreshToken"]).await;
    assert_eq!(stale.status, StatusCode::UNAUTHORIZED);
    session(&server.base, "customer", "a new password").await;
}

#[tokio::test]
async fn no_user_token_charges_a_payment_or_cancels_a_store_order_in_the_all_in_one() {
    let server = Server::start(&[]);
    let admin = Api::login(&server, "admin").await;
    let charge = json!({"orderId": 1, "customerId": 1, "storeId": 1, "price": 1,
        "menuName": "x", "qty": 1, "address": "a"});
    let r = admin.post("/payments", charge).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    let r = admin
        .send(
            Method::PUT,
            "/storeOrders/1/cancel",
            Some(
                json!({"storeId": 1, "customerId": 1, "menuName": "x", "qty": 1,
                "price": 1, "address": "a", "correlationId": uuid::Uuid::new_v4(), "actor": "x"}),
            ),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
}

#[tokio::test]
async fn service_tokens_are_scoped_and_user_tokens_cannot_charge_in_the_serve_shape() {
    let Some(nats) = nats() else { return };
    let tmp = tempfile::tempdir().expect("dir");
    let env = serve_env(tmp.path(), &nats);
    let identity = {
        let mut with_demo = env.clone();
        with_demo.push(("HANWHA_DEMO", "1".into()));
        serve("identity", tmp.path(), &with_demo, 1)
    };
    let payment = serve("payment", tmp.path(), &env, 0);
    let store = serve("store", tmp.path(), &env, 0);
    let admin = token(&session(&identity.base, "admin", "admin").await);
    let order_key = PrivateKey::read(&tmp.path().join("keys/service.key")).expect("key");
    let order = ServiceSigner::new("order", order_key);
    let charge = json!({"orderId": 1, "customerId": 1, "storeId": 1, "price": 1000,
        "menuName": "x", "qty": 1, "address": "a"});

    // An admin's token may not charge.
    let r = api(&payment.base, admin.clone())
        .post("/payments", charge.clone())
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    // Order's token with the scope may; with another scope, or addressed
    // to another service, it may not.
    let charging = order.token("payment", "payment:charge").expect("token");
    let r = api(&payment.base, Some(charging.clone()))
        .post("/payments", charge.clone())
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let cancelling = order.token("payment", "store-order:cancel").expect("token");
    let r = api(&payment.base, Some(cancelling))
        .post("/payments", charge.clone())
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    let cancel = json!({"storeId": 1, "customerId": 1, "menuName": "x", "qty": 1,
        "price": 1, "address": "a", "correlationId": uuid::Uuid::new_v4(), "actor": "x"});
    let r = api(&store.base, Some(charging.clone()))
        .send(Method::PUT, "/storeOrders/1/cancel", Some(cancel.clone()))
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
    let r = api(&store.base, admin.clone())
        .send(Method::PUT, "/storeOrders/1/cancel", Some(cancel))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    // A service token is nobody's user token.
    let r = api(&payment.base, Some(charging)).get("/payments").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
    // A stranger's key signs nothing payment accepts.
    let stranger = ServiceSigner::new("order", PrivateKey::generate().0);
    let r = api(
        &payment.base,
        Some(stranger.token("payment", "payment:charge").expect("token")),
    )
    .post("/payments", charge)
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
}

#[tokio::test]
async fn in_the_serve_shape_a_disabled_users_token_is_refused_by_the_other_services_within_seconds()
{
    let _machine = exclusive().await;
    let Some(nats) = nats() else { return };
    let tmp = tempfile::tempdir().expect("dir");
    let mut env = serve_env(tmp.path(), &nats);
    let mut with_demo = env.clone();
    with_demo.push(("HANWHA_DEMO", "1".into()));
    let identity = serve("identity", tmp.path(), &with_demo, 1);
    env.push(("HANWHA_IDENTITY_URL", identity.base.clone()));
    let payment = serve("payment", tmp.path(), &env, 0);
    let admin = api(
        &identity.base,
        token(&session(&identity.base, "admin", "admin").await),
    );
    let customer = session(&identity.base, "customer", "customer").await;
    let at_payment = api(&payment.base, token(&customer));
    assert_eq!(at_payment.get("/payments").await.status, StatusCode::OK);
    disable(&admin, &customer).await;
    let disabled = Instant::now();
    let refused = eventually("payment refuses the disabled customer", || {
        let at_payment = at_payment.clone();
        async move {
            (at_payment.get("/payments").await.status == StatusCode::UNAUTHORIZED).then_some(())
        }
    });
    refused.await;
    let took = disabled.elapsed();
    eprintln!("payment refused the disabled customer's token after {took:?}");
    assert!(took < WITHIN_SECONDS, "took {took:?}");
}

#[tokio::test]
async fn repeated_failed_logins_are_answered_429_with_retry_after() {
    let server = Server::start(&[]);
    for _ in 0..5 {
        let r = login_as(&server.base, "owner", "wrong").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    let r = login_as(&server.base, "owner", "owner").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.body);
    let wait: u64 = r
        .retry_after
        .as_deref()
        .and_then(|s| s.parse().ok())
        .expect("Retry-After");
    assert!(wait >= 1);
    // Another account is not locked out by this one's failures.
    session(&server.base, "rider", "rider").await;
    // Nor an address by fewer than 20 failures (5 above, 15 here); then
    // it is.
    for i in 0..15 {
        let r = login_as(&server.base, &format!("nobody{i}"), "x").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    let r = login_as(&server.base, "customer", "customer").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.body);
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// An all-in-one that trusts the test client as its gateway, so that each
/// attempt can come from an address of its own and no address throttle
/// cuts a measurement short.
fn behind_a_trusted_gateway() -> (tempfile::TempDir, Server) {
    let tmp = tempfile::tempdir().expect("dir");
    let server = Server::start_with_env(
        &tmp.path().join("data"),
        &[],
        &[("HANWHA_TRUSTED_PROXIES", "127.0.0.1")],
    );
    (tmp, server)
}

/// A login with a wrong password from the client address `from`.
async fn wrong_login(http: reqwest::Client, url: String, user: String, from: String) -> StatusCode {
    http.post(url)
        .header("x-forwarded-for", from)
        .json(&json!({"username": user, "password": "wrong password"}))
        .send()
        .await
        .expect("send")
        .status()
}

#[tokio::test]
async fn an_unknown_username_costs_what_a_known_one_costs() {
    let _machine = exclusive().await;
    let (_tmp, server) = behind_a_trusted_gateway();
    let http = reqwest::Client::new();
    let attempt = |user: String, n: usize| {
        let answer = wrong_login(
            http.clone(),
            server.url("/auth/login"),
            user,
            format!("10.0.0.{n}"),
        );
        async move {
            let t = Instant::now();
            assert_eq!(answer.await, StatusCode::UNAUTHORIZED);
            t.elapsed()
        }
    };
    let known = ["customer", "owner", "owner2", "rider", "admin"];
    let (mut k, mut u) = (Vec::new(), Vec::new());
    for round in 0..4 {
        for (i, name) in known.iter().enumerate() {
            let n = round * 10 + i * 2;
            k.push(attempt(name.to_string(), n).await);
            u.push(attempt(format!("ghost{n}"), n + 1).await);
        }
    }
    let (k, u) = (median(k), median(u));
    let ratio = k.as_secs_f64() / u.as_secs_f64();
    eprintln!("median known {k:?}, unknown {u:?}, ratio {ratio:.2}");
    assert!(
        (1.0 / 3.0..=3.0).contains(&ratio),
        "known {k:?} vs unknown {u:?}"
    );
}

fn peak_rss_kib(pid: u32) -> u64 {
    proc_status_kib(pid, "VmHWM")
}

#[tokio::test]
async fn two_hundred_parallel_wrong_logins_keep_the_peak_memory_under_200_mb() {
    let _machine = exclusive().await;
    let (_tmp, server) = behind_a_trusted_gateway();
    // Warm: a first login of each kind.
    session(&server.base, "customer", "customer").await;
    let before = peak_rss_kib(server.pid());
    let http = reqwest::Client::new();
    let storm = (0..200).map(|n| {
        wrong_login(
            http.clone(),
            server.url("/auth/login"),
            ["admin", "owner", "ghost"][n % 3].to_string(),
            format!("10.1.{}.{}", n / 100, n % 100),
        )
    });
    let answers = futures::future::join_all(storm).await;
    assert!(answers.iter().all(|s| [
        StatusCode::UNAUTHORIZED,
        StatusCode::TOO_MANY_REQUESTS,
        StatusCode::SERVICE_UNAVAILABLE
    ]
    .contains(s)));
    let peak = peak_rss_kib(server.pid());
    eprintln!(
        "peak RSS {} MiB before, {} MiB after 200 parallel wrong logins ({} refused as busy)",
        before / 1024,
        peak / 1024,
        answers
            .iter()
            .filter(|s| **s != StatusCode::UNAUTHORIZED)
            .count()
    );
    assert!(peak < 200 * 1024, "peak RSS {} MiB", peak / 1024);
}

#[tokio::test]
async fn the_access_token_in_the_query_counts_on_the_event_stream_only() {
    let server = Server::start(&[]);
    let customer = Api::login(&server, "customer").await;
    let t = customer.token.clone().expect("token");
    let anonymous = api(&server.base, None);
    for path in ["/orders", "/auth/me", "/payments", "/statusChecks"] {
        let r = anonymous.get(&format!("{path}?access_token={t}")).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{path}");
    }
    let open = |query: String| {
        let url = server.url(&format!("/notifications/stream?{query}"));
        async move {
            reqwest::Client::new()
                .get(url)
                .send()
                .await
                .expect("stream")
                .status()
        }
    };
    assert_eq!(open(format!("access_token={t}")).await, StatusCode::OK);
    // Better: a ticket, good for one stream, once, and nothing else.
    let ticket = customer.post("/auth/stream-ticket", json!({})).await;
    assert_eq!(ticket.status, StatusCode::OK, "{}", ticket.body);
    let ticket = ticket.body["ticket"].as_str().expect("ticket").to_string();
    let r = api(&server.base, Some(ticket.clone())).get("/orders").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "a ticket is no token");
    assert_eq!(open(format!("ticket={ticket}")).await, StatusCode::OK);
    assert_eq!(
        open(format!("ticket={ticket}")).await,
        StatusCode::UNAUTHORIZED,
        "a ticket works once"
    );
}
