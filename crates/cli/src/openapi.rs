//! The OpenAPI descriptions each shape serves at `/openapi.json`: one
//! service's own in the distributed shape, every service's merged at the
//! gateway and in the all-in-one, and printed by `hanwha-delivery openapi`.

use serde_json::{json, Value};
use utoipa::openapi::OpenApi;
use utoipa::OpenApi as _;

use platform::service::ServiceDescription;

/// What every process serves besides its service's own operations.
fn process_basics() -> Vec<OpenApi> {
    vec![
        platform::actuator::ActuatorApi::openapi(),
        platform::metrics::MetricsApi::openapi(),
    ]
}

/// What `hanwha-delivery serve SERVICE` serves.
pub fn for_service(service: &ServiceDescription) -> Value {
    let title = format!("Hanwha Delivery: {}", service.name);
    let doc = platform::openapi::merge(
        &title,
        service.operations().into_iter().chain(process_basics()),
    );
    serde_json::to_value(doc).unwrap_or(Value::Null)
}

/// Every operation of the platform: the all-in-one's, which also serves
/// the event log.
pub fn all_in_one() -> Value {
    let mut doc = services();
    doc.merge(crate::events_api::EventsApi::openapi());
    with_links(doc)
}

/// Every service's operations behind the gateway of a fleet.
pub fn gateway() -> Value {
    let mut doc = services();
    doc.paths.paths.retain(|path, item| {
        let operations = [
            (axum::http::Method::GET, &mut item.get),
            (axum::http::Method::PUT, &mut item.put),
            (axum::http::Method::POST, &mut item.post),
            (axum::http::Method::DELETE, &mut item.delete),
            (axum::http::Method::PATCH, &mut item.patch),
        ];
        let mut kept = 0;
        for (method, operation) in operations {
            if operation.is_some() && !routed_by_the_gateway(&method, path) {
                *operation = None;
            }
            kept += usize::from(operation.is_some());
        }
        kept > 0
    });
    with_links(doc)
}

/// The gateway forwards neither the operators' operations (marking a
/// process down, metrics: the management listener's) nor the endpoints
/// only Order may call; its description says what it really serves.
fn routed_by_the_gateway(method: &axum::http::Method, path: &str) -> bool {
    let operator = matches!(path, "/actuator/down" | "/actuator/up" | "/metrics");
    !operator && !gateway::front_door::internal_only(method, path)
}

fn services() -> OpenApi {
    let services = services::ALL.into_iter().flat_map(|s| s.operations());
    platform::openapi::merge("Hanwha Delivery", services.chain(process_basics()))
}

/// The description as JSON with links that say what a client can do next
/// with a new order or menu item, across services (so a fuzzer follows an
/// order through its life): the answer's `id` is the next steps' parameter.
/// Added to the JSON because utoipa 5 writes a link's `operationId` as
/// `operation_id`.
fn with_links(doc: OpenApi) -> Value {
    const ORDER_STEPS: [(&str, &str); 12] = [
        ("order.show", "id"),
        ("order.cancel", "id"),
        ("order.confirm", "id"),
        ("payment.show", "orderId"),
        ("store.show_order", "orderId"),
        ("store.accept", "orderId"),
        ("store.reject", "orderId"),
        ("store.finish", "orderId"),
        ("delivery.show", "orderId"),
        ("delivery.pickup", "orderId"),
        ("delivery.complete", "orderId"),
        ("status.show", "orderId"),
    ];
    const MENU_STEPS: [(&str, &str); 2] = [("store.show_menu", "id"), ("store.update_menu", "id")];
    let mut doc = serde_json::to_value(doc).unwrap_or(Value::Null);
    for (path, targets) in [("/orders", &ORDER_STEPS[..]), ("/menus", &MENU_STEPS[..])] {
        let Some(answer) = doc
            .pointer_mut(&format!(
                "/paths/{}/post/responses/201",
                path.replace('/', "~1")
            ))
            .and_then(Value::as_object_mut)
        else {
            continue;
        };
        let links: serde_json::Map<String, Value> = targets
            .iter()
            .map(|(operation_id, parameter)| {
                (
                    operation_id.replace('.', "_"),
                    json!({"operationId": operation_id, "parameters": {*parameter: "$response.body#/id"}}),
                )
            })
            .collect();
        answer.insert("links".into(), Value::Object(links));
    }
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(doc: &Value) -> Vec<String> {
        doc["paths"]
            .as_object()
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default()
    }

    #[test]
    fn a_service_describes_its_own_operations_and_the_gateway_all_of_them() {
        let order = paths(&for_service(&order::SERVICE));
        assert!(order.contains(&"/orders/{id}/cancel".to_string()));
        assert!(order.contains(&"/actuator/health".to_string()));
        assert!(order.contains(&"/admin/deadLetters/{consumer}".to_string()));
        assert!(!order.iter().any(|p| p.starts_with("/menus")));
        let identity = paths(&for_service(&identity::SERVICE));
        assert!(identity.contains(&"/auth/login".to_string()));
        // Identity consumes no events: no dead letters.
        assert!(!identity.iter().any(|p| p.starts_with("/admin/")));

        let door = gateway();
        for service in services::ALL {
            let own = for_service(service);
            for path in paths(&own) {
                for method in ["get", "put", "post", "delete", "patch"] {
                    if own["paths"][&path][method].is_null() {
                        continue;
                    }
                    let parsed: axum::http::Method = method.to_uppercase().parse().expect("method");
                    assert_eq!(
                        door["paths"][&path][method].is_object(),
                        routed_by_the_gateway(&parsed, &path),
                        "{method} {path} of {}",
                        service.name
                    );
                }
            }
        }
        // Order's own calls are not the public's: not described at the door.
        assert!(door["paths"]["/payments"]["post"].is_null());
        assert!(door["paths"]["/payments"]["get"].is_object());
        assert!(door["paths"]["/storeOrders/{orderId}/cancel"].is_null());
        assert!(door["paths"]["/actuator/down"].is_null());
        assert!(door["paths"]["/actuator/health"].is_object());
        // The event log is the all-in-one's own.
        assert!(!paths(&door).contains(&"/events".to_string()));
        assert!(paths(&all_in_one()).contains(&"/events".to_string()));
    }

    #[test]
    fn links_name_operations_that_exist() {
        let doc = all_in_one();
        let ids: Vec<&str> = doc["paths"]
            .as_object()
            .into_iter()
            .flat_map(|p| p.values())
            .flat_map(|item| item.as_object().into_iter().flat_map(|ops| ops.values()))
            .filter_map(|op| op["operationId"].as_str())
            .collect();
        let links = doc["paths"]["/orders"]["post"]["responses"]["201"]["links"]
            .as_object()
            .expect("links from a new order");
        assert_eq!(links.len(), 12);
        for link in links.values() {
            let target = link["operationId"].as_str().expect("operationId");
            assert!(ids.contains(&target), "{target}");
        }
    }
}
