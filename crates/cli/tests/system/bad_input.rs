//! Bad input gets a clear problem+json with the right status and changes
//! nothing.

use crate::support::*;
use reqwest::{Method, StatusCode};
use serde_json::json;

async fn nothing_changed(admin: &Api) {
    assert_eq!(
        admin
            .get("/orders")
            .await
            .body
            .as_array()
            .expect("orders")
            .len(),
        0
    );
    assert_eq!(
        admin
            .get("/payments")
            .await
            .body
            .as_array()
            .expect("payments")
            .len(),
        0
    );
    assert_eq!(
        admin
            .get("/events")
            .await
            .body
            .as_array()
            .expect("events")
            .len(),
        0
    );
}

#[tokio::test]
async fn bad_orders_are_refused_with_problem_json() {
    let server = Server::start(&[]);
    let customer = Api::login(&server, "customer").await;
    let admin = Api::login(&server, "admin").await;

    let malformed = reply(
        customer
            .request(Method::POST, "/orders")
            .header("content-type", "application/json")
            .body("{\"menuName\": \"pizza\", \"qty\": "),
    )
    .await;
    assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
    assert!(malformed.problem(), "{}", malformed.content_type);
    assert_eq!(malformed.body["status"], 400);

    let cases = [
        (
            json!({"menuName": "no such dish", "qty": 1, "address": "suwon"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"menuId": 999_999, "qty": 1, "address": "suwon"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"menuName": "pizza", "qty": 0, "address": "suwon"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"menuName": "pizza", "qty": -3, "address": "suwon"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"menuName": "pizza", "qty": 1_000_000, "address": "suwon"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"menuName": "pizza", "qty": 1.5, "address": "suwon"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"menuName": "pizza", "qty": "two", "address": "suwon"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"menuName": "pizza", "qty": 1}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"menuName": "pizza", "qty": 1, "address": "   "}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"menuName": "pizza", "qty": 1, "address": "x".repeat(500)}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"qty": 1, "address": "suwon"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"menuName": "pizza", "qty": 1, "address": "suwon", "card": "not a card"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (json!([1, 2, 3]), StatusCode::UNPROCESSABLE_ENTITY),
    ];
    for (body, want) in cases {
        let r = customer.post("/orders", body.clone()).await;
        assert_eq!(r.status, want, "{body} -> {}", r.body);
        assert!(r.problem(), "{body}: {}", r.content_type);
        assert!(
            r.body["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{body}: {}",
            r.body
        );
    }

    // The server answers before it has read the whole body and then closes
    // the connection; the kernel may reset it before the client read the
    // answer (no lingering close), so a transport error is retried.
    // Its own client, so that the connection the server closes is not
    // reused by the requests after it.
    let big = json!({"menuName": "pizza", "qty": 1, "address": "x".repeat(200_000)});
    let apart = Api {
        http: reqwest::Client::new(),
        ..customer.clone()
    };
    let mut oversized = None;
    for _ in 0..5 {
        if let Ok(resp) = apart
            .request(Method::POST, "/orders")
            .json(&big)
            .send()
            .await
        {
            let status = resp.status();
            let ct = resp
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            let body: serde_json::Value = resp.json().await.unwrap_or_default();
            oversized = Some(Reply {
                status,
                content_type: ct,
                body,
                retry_after: None,
            });
            break;
        }
    }
    let oversized = oversized.expect("an answer to the oversized body");
    assert_eq!(oversized.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(oversized.problem());

    let no_type = reply(customer.request(Method::POST, "/orders").body("{}")).await;
    assert_eq!(no_type.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(no_type.problem());

    nothing_changed(&admin).await;
}

#[tokio::test]
async fn missing_or_forged_tokens_and_wrong_roles_are_refused() {
    let server = Server::start(&[]);
    let anonymous = Api::anonymous(&server);
    let customer = Api::login(&server, "customer").await;
    let owner = Api::login(&server, "owner").await;
    let rider = Api::login(&server, "rider").await;
    let admin = Api::login(&server, "admin").await;
    let order = json!({"menuName": "pizza", "qty": 1, "address": "suwon"});

    let r = anonymous.post("/orders", order.clone()).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.problem());
    let forged = Api {
        token: Some("abc.def.ghi".into()),
        ..anonymous.clone()
    };
    assert_eq!(forged.get("/orders").await.status, StatusCode::UNAUTHORIZED);
    let wrong_password = anonymous
        .post(
            "/auth/login",
            json!({"username": "admin", "password": "nope"}),
        )
        .await;
    assert_eq!(wrong_password.status, StatusCode::UNAUTHORIZED);

    for (who, method, path) in [
        (&owner, Method::POST, "/orders"),
        (&rider, Method::POST, "/orders"),
        (&admin, Method::POST, "/orders"),
        (&rider, Method::GET, "/orders"),
        (&customer, Method::GET, "/storeOrders"),
        (&customer, Method::PUT, "/storeOrders/1/accept"),
        (&rider, Method::PUT, "/storeOrders/1/accept"),
        (&customer, Method::PUT, "/deliveries/1/pickup"),
        (&owner, Method::PUT, "/deliveries/1/pickup"),
        (&customer, Method::GET, "/deliveries"),
        (&owner, Method::PUT, "/orders/1/confirm"),
        (&customer, Method::GET, "/events"),
        (&owner, Method::GET, "/admin/deadLetters/order"),
        (&customer, Method::POST, "/menus"),
        (&customer, Method::POST, "/payments"),
    ] {
        let body = if method == Method::POST {
            Some(order.clone())
        } else {
            None
        };
        let r = who.send(method.clone(), path, body).await;
        assert_eq!(
            r.status,
            StatusCode::FORBIDDEN,
            "{method} {path}: {}",
            r.body
        );
        assert!(r.problem());
    }
    nothing_changed(&admin).await;
    let unknown = anonymous.get("/no/such/path").await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert!(unknown.problem());
}

#[tokio::test]
async fn nobody_sees_or_changes_someone_elses_order() {
    let server = Server::start(&[]);
    let customer = Api::login(&server, "customer").await;
    let owner = Api::login(&server, "owner").await;
    let owner2 = Api::login(&server, "owner2").await;
    let rider = Api::login(&server, "rider").await;
    let registered = Api::anonymous(&server)
        .post(
            "/auth/register",
            json!({"username": "minji", "password": "correct horse"}),
        )
        .await;
    assert_eq!(
        registered.status,
        StatusCode::CREATED,
        "{}",
        registered.body
    );
    let other = Api {
        token: registered.body["token"].as_str().map(str::to_string),
        ..Api::anonymous(&server)
    };

    let order = id(&place(&customer, "pizza", 1).await);
    wait_in_store(&owner, order).await;
    for (who, path) in [
        (&other, format!("/orders/{order}")),
        (&other, format!("/statusChecks/{order}")),
        (&other, format!("/payments/{order}")),
        (&owner2, format!("/orders/{order}")),
        (&owner2, format!("/storeOrders/{order}")),
    ] {
        let r = who.get(&path).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}: {}", r.body);
        assert!(r.problem());
    }
    assert_eq!(
        other.put(&format!("/orders/{order}/cancel")).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        owner2
            .put(&format!("/storeOrders/{order}/accept"))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert!(other
        .get("/orders")
        .await
        .body
        .as_array()
        .expect("list")
        .is_empty());
    assert!(other
        .get("/notifications")
        .await
        .body
        .as_array()
        .expect("list")
        .is_empty());
    // Owner 2 cannot change owner 1's menu.
    let r = owner2
        .send(Method::PUT, "/menus/1", Some(json!({"price": 1})))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(
        Api::anonymous(&server).get("/menus/1").await.body["price"],
        1000
    );

    // The rightful people still can: the order was not changed.
    assert_eq!(
        customer.get(&format!("/orders/{order}")).await.body["status"],
        "Ordered"
    );
    assert_eq!(
        owner
            .put(&format!("/storeOrders/{order}/accept"))
            .await
            .status,
        StatusCode::OK
    );
    // A rider sees only open deliveries or their own.
    assert_eq!(
        rider.get(&format!("/deliveries/{order}")).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn owners_manage_their_own_menus_with_validated_prices() {
    let server = Server::start(&[]);
    let owner = Api::login(&server, "owner").await;
    let customer = Api::login(&server, "customer").await;
    let created = owner
        .post("/menus", json!({"name": "calzone", "price": 9000}))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.body["storeId"], 1);
    for bad in [
        json!({"name": "", "price": 100}),
        json!({"name": "x", "price": -1}),
        json!({"name": "x", "price": 1e12}),
    ] {
        let r = owner.post("/menus", bad.clone()).await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{bad}: {}",
            r.body
        );
    }
    let menu = id(&created.body);
    let sold_out = owner
        .send(
            Method::PUT,
            &format!("/menus/{menu}"),
            Some(json!({"available": false})),
        )
        .await;
    assert_eq!(sold_out.status, StatusCode::OK);
    let r = customer
        .post(
            "/orders",
            json!({"menuId": menu, "qty": 1, "address": "suwon"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.body["detail"]
        .as_str()
        .expect("detail")
        .contains("sold out"));
}

/// One kind of rejection: asked of the service that owns `path` (or of
/// every process when `owner` is `None`), by `user`.
struct Probe {
    owner: Option<&'static str>,
    user: &'static str,
    method: Method,
    path: &'static str,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    want: StatusCode,
}

fn probes() -> Vec<Probe> {
    let probe = |owner, user, method, path, want| Probe {
        owner,
        user,
        method,
        path,
        content_type: None,
        body: Vec::new(),
        want,
    };
    let sent = |content_type, body: &[u8], want| Probe {
        content_type: Some(content_type),
        body: body.to_vec(),
        ..probe(Some("order"), "customer", Method::POST, "/orders", want)
    };
    vec![
        probe(
            None,
            "admin",
            Method::DELETE,
            "/actuator/health",
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        probe(
            None,
            "admin",
            Method::GET,
            "/no/such/route",
            StatusCode::NOT_FOUND,
        ),
        probe(
            Some("order"),
            "admin",
            Method::GET,
            "/orders/abc",
            StatusCode::BAD_REQUEST,
        ),
        probe(
            Some("order"),
            "admin",
            Method::GET,
            "/orders?limit=abc",
            StatusCode::BAD_REQUEST,
        ),
        probe(
            Some("order"),
            "admin",
            Method::PATCH,
            "/orders",
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        sent(
            "application/json",
            b"{\"menuName\": ",
            StatusCode::BAD_REQUEST,
        ),
        sent(
            "text/plain",
            b"pizza please",
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        sent(
            "application/json",
            &vec![b' '; 3 * 1024 * 1024],
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        probe(
            Some("identity"),
            "admin",
            Method::PUT,
            "/auth/users/abc/disable",
            StatusCode::BAD_REQUEST,
        ),
        probe(
            Some("payment"),
            "admin",
            Method::GET,
            "/payments/abc",
            StatusCode::BAD_REQUEST,
        ),
        probe(
            Some("store"),
            "admin",
            Method::GET,
            "/menus/abc",
            StatusCode::BAD_REQUEST,
        ),
        probe(
            Some("store"),
            "admin",
            Method::GET,
            "/menus?storeId=abc",
            StatusCode::BAD_REQUEST,
        ),
        probe(
            Some("delivery"),
            "admin",
            Method::GET,
            "/deliveries/abc",
            StatusCode::BAD_REQUEST,
        ),
        probe(
            Some("status"),
            "admin",
            Method::GET,
            "/statusChecks?limit=abc",
            StatusCode::BAD_REQUEST,
        ),
        probe(
            Some("notification"),
            "admin",
            Method::GET,
            "/notifications?limit=abc",
            StatusCode::BAD_REQUEST,
        ),
    ]
}

/// Asks every probe `service` should answer (all of them for the
/// all-in-one and the gateway) of `base`, with the users' tokens.
async fn every_rejection_is_a_problem_at(
    base: &str,
    service: Option<&str>,
    tokens: &std::collections::HashMap<&str, String>,
) {
    // No connection reused: one refused before its body was read (413)
    // may be closed under the next request.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("client");
    for p in probes() {
        if service.is_some_and(|s| p.owner.is_some_and(|owner| owner != s)) {
            continue;
        }
        let mut req = http
            .request(p.method.clone(), format!("{base}{}", p.path))
            .bearer_auth(&tokens[p.user])
            .body(p.body.clone());
        if let Some(content_type) = p.content_type {
            req = req.header("content-type", content_type);
        }
        let what = format!("{} {} at {base}", p.method, p.path);
        let r = try_reply(req)
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(r.status, p.want, "{what}: {}", r.body);
        assert!(r.problem(), "{what}: {}", r.content_type);
        assert_eq!(r.body["status"], p.want.as_u16(), "{what}: {}", r.body);
        assert!(
            r.body["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{what}: {}",
            r.body
        );
    }
}

/// Every kind of rejection — a method a route does not take, an unknown
/// route, a path or query parameter that does not parse, a JSON syntax
/// error, a body of another type or too large — answers problem+json, on
/// the all-in-one, and (with HANWHA_TEST_NATS_URL) on the gateway and on
/// each service's own process of a fleet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_rejection_is_problem_json_in_both_shapes() {
    let _machine = exclusive().await;
    let server = Server::start(&[]);
    let mut tokens = std::collections::HashMap::new();
    for user in ["admin", "customer"] {
        let api = Api::login(&server, user).await;
        tokens.insert(user, api.token.expect("token"));
    }
    every_rejection_is_a_problem_at(&server.base, None, &tokens).await;

    let Some(fleet) = crate::support::fleet_command::LocalFleet::start() else {
        return;
    };
    let gateway = fleet.member("gateway").url.clone();
    for user in ["admin", "customer"] {
        let r = reply(
            reqwest::Client::new()
                .post(format!("{gateway}/auth/login"))
                .json(&json!({"username": user, "password": user})),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        tokens.insert(user, r.body["token"].as_str().expect("token").to_string());
    }
    every_rejection_is_a_problem_at(&gateway, None, &tokens).await;
    for member in fleet.members.iter().filter(|m| m.name != "gateway") {
        let service = member.name.split('-').next().expect("service");
        every_rejection_is_a_problem_at(&member.url, Some(service), &tokens).await;
    }
    fleet.finish().await;
}
