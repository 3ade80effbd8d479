//! The composition list: every service of Hanwha Delivery, once, as the
//! description its crate exports (`platform::service`). The all-in-one runs
//! them all in one process, `serve NAME` one of them, the gateway routes
//! to them by the paths they own and the OpenAPI description merges their
//! operations, all from this list. A new service is its crate plus one
//! entry here.

use platform::service::ServiceDescription;

/// Every service, in the order the shapes start them and list them.
pub const ALL: [&ServiceDescription; 7] = [
    &identity::SERVICE,
    &order::SERVICE,
    &payment::SERVICE,
    &store::SERVICE,
    &delivery::SERVICE,
    &status::SERVICE,
    &notification::SERVICE,
];

/// The service of that name.
pub fn named(name: &str) -> Option<&'static ServiceDescription> {
    ALL.into_iter().find(|s| s.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn names_ports_and_gateway_paths_are_each_one_services() {
        let names: HashSet<_> = ALL.iter().map(|s| s.name).collect();
        let ports: HashSet<_> = ALL.iter().map(|s| s.default_port).collect();
        let prefixes: Vec<String> = ALL.iter().flat_map(|s| s.gateway_prefixes()).collect();
        assert_eq!(names.len(), ALL.len());
        assert_eq!(ports.len(), ALL.len());
        assert_eq!(
            prefixes.iter().collect::<HashSet<_>>().len(),
            prefixes.len()
        );
        // No prefix hides another: `/order` would also own `/orders/...`
        // only if followed by `/`, but keep them apart anyway.
        for a in &prefixes {
            for b in &prefixes {
                assert!(
                    a == b || !b.starts_with(&format!("{a}/")),
                    "{a} shadows {b}"
                );
            }
        }
        for service in ALL {
            assert_eq!(named(service.name), Some(service));
            assert!(!service.gateway_paths.is_empty(), "{}", service.name);
            for peer in service.calls {
                assert!(
                    named(peer).is_some(),
                    "{} calls unknown {peer}",
                    service.name
                );
            }
        }
    }

    #[test]
    fn the_gateway_routes_the_seed_paths_from_the_list() {
        let routes = gateway::proxy::Routes::of(&ALL);
        for (path, owner) in [
            ("/orders/1/cancel", "order"),
            ("/menus", "store"),
            ("/stores/1", "store"),
            ("/storeOrders/3/accept", "store"),
            ("/payments", "payment"),
            ("/deliveries", "delivery"),
            ("/statusChecks/1", "status"),
            ("/notifications/stream", "notification"),
            ("/auth/login", "identity"),
            ("/admin/deadLetters/payment", "payment"),
            ("/admin/deadLetters/notification/3/replay", "notification"),
        ] {
            assert_eq!(routes.owner(path), Some(owner), "{path}");
        }
        for path in [
            "/app.js",
            "/metrics",
            "/admin/deadLetters/identity",
            "/events",
        ] {
            assert_eq!(routes.owner(path), None, "{path}");
        }
    }

    #[test]
    fn relays_run_exactly_for_the_services_that_write_events() {
        let with_outbox: Vec<&str> = ALL.iter().filter(|s| s.outbox).map(|s| s.name).collect();
        assert_eq!(with_outbox, ["order", "payment", "store", "delivery"]);
        // The read models and identity take no writes that need replaying
        // safely, or emit no events: no idempotency layer, no relay.
        let keyed: Vec<&str> = ALL
            .iter()
            .filter(|s| s.takes_writes)
            .map(|s| s.name)
            .collect();
        assert_eq!(keyed, ["identity", "order", "payment", "store", "delivery"]);
        let views: Vec<&str> = ALL
            .iter()
            .filter(|s| s.view.is_some())
            .map(|s| s.name)
            .collect();
        assert_eq!(views, ["status", "notification"]);
        let accounts: Vec<&str> = ALL
            .iter()
            .filter(|s| s.holds_accounts)
            .map(|s| s.name)
            .collect();
        assert_eq!(accounts, ["identity"]);
    }
}
