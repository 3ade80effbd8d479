//! Issue 10, the edge: one test per finding about what a stranger reaches
//! over HTTP (the actuator, timeouts, the gateway's paths, headers, data
//! files, control characters, live streams, logs). Each starts the real
//! binary; none needs a database server or a broker.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{exclusive, Api, Server};
use reqwest::{Method, StatusCode};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A process of the binary with both of its addresses and, if asked, its
/// log in a file.
struct Process {
    child: Child,
    base: String,
    management: String,
    log: Option<PathBuf>,
    _tmp: tempfile::TempDir,
}

impl Process {
    fn start(args: &[&str], env: &[(&str, &str)], capture_log: bool) -> Process {
        let tmp = tempfile::tempdir().expect("temp dir");
        let data = tmp.path().join("data");
        let log = capture_log.then(|| tmp.path().join("stderr.log"));
        let stderr = match &log {
            Some(path) => Stdio::from(std::fs::File::create(path).expect("log file")),
            None => Stdio::inherit(),
        };
        let mut child = Command::new(env!("CARGO_BIN_EXE_hanwha-delivery"))
            .arg("--data-dir")
            .arg(&data)
            .args(args)
            .env("HANWHA_LOG", "warn")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("start hanwha-delivery");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let (mut base, mut management) = (None, None);
        for line in lines.by_ref().take(20) {
            let line = line.expect("read stdout");
            let url = line
                .split_whitespace()
                .find(|w| w.starts_with("http://"))
                .map(str::to_string);
            if line.contains("management on") {
                management = url;
            } else if base.is_none() {
                base = url;
            }
            if base.is_some() && management.is_some() {
                break;
            }
        }
        std::thread::spawn(move || for _ in lines {});
        Process {
            child,
            base: base.expect("no public address printed"),
            management: management.expect("no management address printed"),
            log,
            _tmp: tmp,
        }
    }

    /// The all-in-one on a free port.
    fn all_in_one(env: &[(&str, &str)]) -> Process {
        Process::start(&["--listen", "127.0.0.1:0"], env, false)
    }

    fn addr(&self) -> SocketAddr {
        self.base
            .trim_start_matches("http://")
            .parse()
            .expect("socket address")
    }

    fn api(&self) -> Api {
        anonymous_at(&self.base)
    }

    /// An operator on the management listener: no token.
    fn operator(&self) -> Api {
        anonymous_at(&self.management)
    }

    async fn login(&self, user: &str) -> Api {
        let mut api = self.api();
        let r = api
            .post("/auth/login", json!({"username": user, "password": user}))
            .await;
        assert_eq!(r.status, StatusCode::OK, "login {user}: {}", r.body);
        api.token = r.body["token"].as_str().map(str::to_string);
        api
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.log.as_ref().expect("captured log")).unwrap_or_default()
    }
}

fn anonymous_at(base: &str) -> Api {
    Api {
        base: base.to_string(),
        http: reqwest::Client::new(),
        token: None,
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends `request` as written (no client library to tidy its path) and
/// returns the status code and the answer.
async fn raw(addr: SocketAddr, request: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(request.as_bytes()).await.expect("send");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(15), s.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, text)
}

fn get(path: &str, token: Option<&str>) -> String {
    let auth = token
        .map(|t| format!("authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    format!("GET {path} HTTP/1.1\r\nhost: x\r\n{auth}connection: close\r\n\r\n")
}

/// Finding: anyone could `PUT /actuator/down` (and read `/metrics`). Now
/// the public listener wants an admin's token; the management listener,
/// on loopback, needs none; the probes stay open.
#[tokio::test]
async fn actuator_down_up_and_metrics_need_an_admin_or_the_management_listener() {
    let p = Process::all_in_one(&[]);
    let management: SocketAddr = p
        .management
        .trim_start_matches("http://")
        .parse()
        .expect("management address");
    assert!(management.ip().is_loopback(), "{management}");
    assert_ne!(management.port(), p.addr().port());
    let anonymous = p.api();
    let customer = p.login("customer").await;
    let admin = p.login("admin").await;
    for probe in ["/actuator/health", "/actuator/ready", "/actuator/echo"] {
        assert_eq!(anonymous.get(probe).await.status, StatusCode::OK, "{probe}");
    }
    let echo = anonymous.get("/actuator/echo").await.body;
    assert!(echo.get("host").is_none(), "echo names the host: {echo}");
    for path in ["/actuator/down", "/actuator/up"] {
        let r = anonymous.put(path).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{path}: {}", r.body);
        let r = customer.put(path).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{path}: {}", r.body);
    }
    assert_eq!(
        anonymous.get("/metrics").await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(customer.get("/metrics").await.status, StatusCode::FORBIDDEN);
    assert_eq!(
        anonymous.get("/actuator/health").await.status,
        StatusCode::OK
    );
    // An admin's token: metrics, and the drill on the public listener.
    let metrics = admin.get("/metrics").await;
    assert_eq!(metrics.status, StatusCode::OK);
    assert!(metrics
        .body
        .as_str()
        .unwrap_or("")
        .contains("hanwha_http_requests_total"));
    down_and_up(&admin, &anonymous).await;
    // The management listener: no token.
    let operator = p.operator();
    down_and_up(&operator, &anonymous).await;
    let scraped = operator.get("/metrics").await;
    assert_eq!(scraped.status, StatusCode::OK);
}

/// The failover drill: `operator` marks the process down, `prober` sees
/// it unhealthy and not ready, then back up.
async fn down_and_up(operator: &Api, prober: &Api) {
    assert_eq!(operator.put("/actuator/down").await.status, StatusCode::OK);
    for probe in ["/actuator/health", "/actuator/ready"] {
        let status = prober.get(probe).await.status;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{probe}");
    }
    assert_eq!(operator.put("/actuator/up").await.status, StatusCode::OK);
    assert_eq!(prober.get("/actuator/health").await.status, StatusCode::OK);
}

/// Finding: 200 trickling connections stayed open as long as the client
/// liked. Now each is cut at the header timeout, and a normal client is
/// served all along.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slowloris_connections_are_cut_at_the_header_timeout_and_others_are_served() {
    let _machine = exclusive().await;
    let p = Process::all_in_one(&[("HANWHA_HEADER_TIMEOUT_SECS", "2")]);
    let header_timeout = Duration::from_secs(2);
    let addr = p.addr();
    let started = Instant::now();
    let mut slow = Vec::new();
    for _ in 0..200 {
        slow.push(tokio::spawn(async move {
            let mut s = TcpStream::connect(addr).await.expect("connect");
            let opened = Instant::now();
            // One byte a second, never the end of the headers.
            for b in b"GET /menus HTTP/1.1\r\nx-slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaa".iter() {
                if s.write_all(&[*b]).await.is_err() {
                    break;
                }
                let mut buf = [0u8; 64];
                match tokio::time::timeout(Duration::from_secs(1), s.read(&mut buf)).await {
                    Ok(Ok(0)) | Ok(Err(_)) => break,
                    _ => {}
                }
            }
            opened.elapsed()
        }));
    }
    let normal = p.api();
    let mut served = 0;
    while started.elapsed() < Duration::from_secs(4) {
        let t = Instant::now();
        let r = normal.get("/menus").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        // Not made to wait for the trickling connections to be cut.
        assert!(t.elapsed() < header_timeout, "{:?}", t.elapsed());
        served += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(served >= 10, "{served}");
    for task in slow {
        let held = task.await.expect("slow client");
        // Cut near the header timeout; uncut, its bytes would take ~50 s.
        assert!(
            held < header_timeout * 5,
            "a trickling connection stayed open {held:?}"
        );
    }
}

/// Finding: no connection cap. Past the cap connections wait to be
/// accepted; the process does not fall over and serves them once places
/// free.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_cap_wait_and_the_process_stays_up() {
    let _machine = exclusive().await;
    let p = Process::all_in_one(&[
        ("HANWHA_MAX_CONNECTIONS", "20"),
        ("HANWHA_HEADER_TIMEOUT_SECS", "2"),
    ]);
    let addr = p.addr();
    let mut idle = Vec::new();
    for _ in 0..60 {
        idle.push(
            TcpStream::connect(addr)
                .await
                .expect("the kernel queues it"),
        );
    }
    // A request behind them is answered once the silent ones are cut.
    let t = Instant::now();
    let (status, _) = raw(addr, &get("/actuator/health", None)).await;
    assert_eq!(status, 200);
    assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
    drop(idle);
    let mut p = p;
    assert!(matches!(p.child.try_wait(), Ok(None)), "the process exited");
}

/// Finding: a body trickled a byte at a time held the connection. Now it
/// must arrive within the body timeout.
#[tokio::test]
async fn a_trickled_body_is_refused_at_the_body_timeout() {
    let _machine = exclusive().await;
    let p = Process::all_in_one(&[("HANWHA_BODY_TIMEOUT_SECS", "2")]);
    let token = p.login("customer").await.token.expect("token");
    // Read by a handler's JSON extractor, and by the Idempotency-Key
    // middleware before any handler.
    for head in [
        "POST /auth/login HTTP/1.1\r\n".to_string(),
        format!(
            "POST /orders HTTP/1.1\r\nauthorization: Bearer {token}\r\nidempotency-key: k1\r\n"
        ),
    ] {
        let answer = trickle_body(p.addr(), &head).await;
        assert!(answer.starts_with("HTTP/1.1 408"), "{head}: {answer}");
    }
}

/// Sends `head` with a 200-byte body that arrives a byte every half
/// second; the answer's head, which must come within 10 s.
async fn trickle_body(addr: SocketAddr, head: &str) -> String {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let request =
        format!("{head}host: x\r\ncontent-type: application/json\r\ncontent-length: 200\r\n\r\n{{");
    s.write_all(request.as_bytes()).await.expect("send");
    let t = Instant::now();
    let mut answer = Vec::new();
    loop {
        let mut buf = [0u8; 512];
        match tokio::time::timeout(Duration::from_millis(500), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => {
                answer.extend_from_slice(&buf[..n]);
                if answer.windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
            Err(_) => {
                // The body timeout is 2 s; a body never cut would be fed
                // a byte per half second for 100 s.
                assert!(
                    t.elapsed() < Duration::from_secs(10),
                    "still reading after {:?}",
                    t.elapsed()
                );
                let _ = s.write_all(b" ").await;
            }
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}

/// Finding: API answers lacked `nosniff` and `no-store` (the login answer
/// carries the token). The web UI's files stay cacheable.
#[tokio::test]
async fn api_answers_are_nosniff_and_no_store_and_web_files_stay_cacheable() {
    let server = Server::start(&[]);
    let http = reqwest::Client::new();
    let login = http
        .post(server.url("/auth/login"))
        .json(&json!({"username": "customer", "password": "customer"}))
        .send()
        .await
        .expect("login");
    let refused = http
        .get(server.url("/orders"))
        .send()
        .await
        .expect("orders");
    let menus = http.get(server.url("/menus")).send().await.expect("menus");
    for (what, resp) in [("login", &login), ("401", &refused), ("menus", &menus)] {
        let h = resp.headers();
        assert_eq!(h["x-content-type-options"], "nosniff", "{what}");
        assert_eq!(h["cache-control"], "no-store", "{what}");
    }
    let css = http.get(server.url("/app.css")).send().await.expect("css");
    assert_eq!(css.headers()["cache-control"], "no-cache");
    assert_eq!(css.headers()["x-content-type-options"], "nosniff");
}

/// Finding: NUL, BEL and the right-to-left override were stored in
/// addresses. Now any text of a JSON body holding one is refused, 422.
#[tokio::test]
async fn control_and_bidi_characters_in_text_fields_are_refused() {
    let server = Server::start(&[]);
    let customer = Api::login(&server, "customer").await;
    let order_to = |address: &str| {
        let body = json!({"menuName": "pizza", "qty": 1, "address": address});
        customer.post("/orders", body)
    };
    for address in [
        "suwon\u{0}",
        "ring\u{7}",
        "\u{202e}nowus",
        "a\u{1b}[31mred",
        "x\u{85}",
    ] {
        let r = order_to(address).await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{address:?}: {}",
            r.body
        );
        assert!(r.problem());
        assert_eq!(r.body["pointer"], "/address");
    }
    let orders = customer.get("/orders").await.body;
    assert_eq!(orders.as_array().map(Vec::len), Some(0), "{orders}");
    let r = order_to("수원시 영통구 123").await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
}

/// Finding: a user could open live streams without bound. Five at once
/// per user; the sixth answers 429 until one closes.
#[tokio::test]
async fn a_user_holds_at_most_five_live_streams() {
    let server = Server::start(&[]);
    let customer = Api::login(&server, "customer").await;
    let open = || async {
        customer
            .request(Method::GET, "/notifications/stream")
            .send()
            .await
            .expect("stream")
    };
    let mut streams = Vec::new();
    for _ in 0..5 {
        let s = open().await;
        assert_eq!(s.status(), StatusCode::OK);
        streams.push(s);
    }
    let sixth = open().await;
    assert_eq!(sixth.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(sixth.headers().contains_key("retry-after"));
    let body: serde_json::Value = sixth.json().await.expect("problem");
    assert!(
        body["detail"]
            .as_str()
            .unwrap_or("")
            .contains("live streams"),
        "{body}"
    );
    // Another user is not held back by this one.
    let owner = Api::login(&server, "owner").await;
    let theirs = owner
        .request(Method::GET, "/notifications/stream")
        .send()
        .await
        .expect("stream");
    assert_eq!(theirs.status(), StatusCode::OK);
    // A closed stream frees its place.
    drop(streams.pop());
    crate::support::eventually("a place freed", || async {
        let s = open().await;
        (s.status() == StatusCode::OK).then_some(())
    })
    .await;
}

fn mode(path: &Path) -> u32 {
    platform::files::mode(path).expect("metadata")
}

/// Finding: the data directory was world-readable (`identity.db` holds
/// password hashes). Now 0700, every database file 0600, an older
/// directory put right at start.
#[tokio::test]
async fn the_data_directory_and_its_files_are_owner_only() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("data");
    {
        let server = Server::start_in(&dir, &[]);
        let customer = Api::login(&server, "customer").await;
        crate::support::place(&customer, "pizza", 1).await;
        assert_eq!(mode(&dir), 0o700);
        let mut files = 0;
        for entry in std::fs::read_dir(&dir).expect("list") {
            let path = entry.expect("entry").path();
            assert_eq!(mode(&path), 0o600, "{}", path.display());
            files += 1;
        }
        assert!(files >= 16, "{files} files");
    }
    use std::os::unix::fs::PermissionsExt;
    let loose = std::fs::Permissions::from_mode(0o644);
    std::fs::set_permissions(dir.join("identity.db"), loose.clone()).expect("chmod");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let _server = Server::start_in(&dir, &[]);
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("identity.db")), 0o600);
}

/// Finding: tokens in query strings reached the logs. Request spans and
/// every log line name the path only.
#[tokio::test]
async fn query_strings_never_reach_the_log() {
    let p = Process::start(
        &["--listen", "127.0.0.1:0"],
        &[("HANWHA_LOG", "debug,sqlx=warn")],
        true,
    );
    let admin = p.login("admin").await;
    let token = admin.token.clone().expect("token");
    let secret = "QUERYSECRET-1f2e3d";
    for path in [
        format!("/orders?access_token={token}&x={secret}"),
        format!("/no/such/path?x={secret}"),
        format!("/menus?x={secret}"),
    ] {
        let _ = p.api().get(&path).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let log = p.log();
    assert!(
        log.contains("/menus"),
        "the log shows no request at all:\n{log}"
    );
    assert!(!log.contains(secret), "a query string reached the log");
    assert!(!log.contains(&token), "a token reached the log");
}

/// A fleet's gateway in front of an all-in-one (which serves every path),
/// and a payment upstream that is not there.
fn gateway_before(upstream: &Process) -> Process {
    let mut args = vec![
        "serve".to_string(),
        "gateway".to_string(),
        "--addr".to_string(),
        "127.0.0.1:0".to_string(),
    ];
    for service in [
        "identity",
        "order",
        "store",
        "delivery",
        "status",
        "notification",
    ] {
        args.push(format!("--upstream={service}={}", upstream.base));
    }
    // Nothing listens on port 1 of loopback.
    args.push("--upstream=payment=http://127.0.0.1:1".to_string());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Process::start(&args, &[], true)
}

/// An all-in-one, a gateway before it, an admin logged in through the
/// gateway and the admin's token.
async fn gateway_with_admin() -> (Process, Process, Api, String) {
    let upstream = Process::all_in_one(&[]);
    let gw = gateway_before(&upstream);
    let admin = gw.login("admin").await;
    let token = admin.token.clone().expect("token");
    (upstream, gw, admin, token)
}

/// Findings: the gateway resolved `..` after routing
/// (`/identity/actuator/../metrics` reached identity's metrics), routed
/// `/{service}/actuator/down`, served its own down/up and metrics to
/// anyone, and routed the internal endpoints. Now a path with a dot
/// segment, `//` or a backslash is refused with 400 before routing; only a
/// replica's probes are routed; the gateway's own operations are on its
/// management listener; `POST /payments` and `PUT /storeOrders/{id}/cancel`
/// answer 404.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_routes_no_dot_segments_no_operations_and_no_internal_endpoints() {
    let (upstream, gw, admin, token) = gateway_with_admin().await;
    for path in [
        "/identity/actuator/../metrics",
        "/identity/actuator/%2e%2e/metrics",
        "/identity/actuator/%2E%2E/%2E%2E/metrics",
        "/order/actuator/./down",
        "//orders",
        "/orders/..",
        "/identity\\actuator\\..\\metrics",
        "/orders%2f..%2fmetrics",
    ] {
        let (status, answer) = raw(gw.addr(), &get(path, Some(&token))).await;
        assert_eq!(status, 400, "{path}: {answer}");
        assert!(!answer.contains("hanwha_http"), "{path} reached metrics");
    }
    // Only the probes of a replica, even for an admin.
    assert_eq!(
        admin.get("/identity/actuator/echo").await.status,
        StatusCode::OK
    );
    for path in ["/order/actuator/down", "/order/actuator/up"] {
        assert_eq!(
            admin.put(path).await.status,
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
    assert_eq!(
        admin.get("/order/actuator/metrics").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        upstream.api().get("/actuator/health").await.status,
        StatusCode::OK
    );
    // The gateway's own operations: not on its public listener.
    assert_eq!(admin.get("/metrics").await.status, StatusCode::NOT_FOUND);
    assert_ne!(admin.put("/actuator/down").await.status, StatusCode::OK);
    assert_eq!(admin.get("/actuator/health").await.status, StatusCode::OK);
    let operator = gw.operator();
    assert_eq!(operator.get("/metrics").await.status, StatusCode::OK);
    down_and_up(&operator, &admin).await;
    // The internal endpoints.
    let r = admin
        .post("/payments", json!({"orderId": 1, "amount": 1000}))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    let r = admin.put("/storeOrders/1/cancel").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    let r = admin.put("/storeOrders/1/c%61ncel").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    // Answers through the gateway carry the same headers.
    let menus = reqwest::get(format!("{}/menus", gw.base))
        .await
        .expect("menus");
    assert_eq!(menus.headers()["x-content-type-options"], "nosniff");
    assert_eq!(menus.headers()["cache-control"], "no-store");
}

/// Finding: a gateway 502 named the upstream's address and echoed the URL
/// with its token, in the body and in the log at ERROR. Now the body names
/// the service only and the log has no query string.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_errors_name_the_service_only() {
    let (_upstream, gw, admin, token) = gateway_with_admin().await;
    let secret = "GATEWAYSECRET-77aa";
    let r = admin
        .get(&format!("/payments?access_token={token}&x={secret}"))
        .await;
    assert!(r.status.is_server_error(), "{}: {}", r.status, r.body);
    let body = r.body.to_string();
    assert!(body.contains("payment"), "{body}");
    for leak in ["127.0.0.1", secret, token.as_str(), "http://"] {
        assert!(!body.contains(leak), "the problem shows {leak}: {body}");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let log = gw.log();
    assert!(
        !log.contains(secret),
        "a query string reached the log:\n{log}"
    );
    assert!(!log.contains(&token), "a token reached the log");
}
