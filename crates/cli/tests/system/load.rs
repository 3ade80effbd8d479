//! `hanwha-delivery load` against the real binary: it completes what it
//! was asked to, counts no errors on a healthy system, and writes a report
//! a script can read. Speed is measured by the tool, never asserted here.

use std::path::Path;
use std::process::Command;

use crate::support::*;
use serde_json::Value;

fn load(server: &Server, dir: &Path, args: &[&str]) -> Value {
    let json = dir.join("out.json");
    let chart = dir.join("out.svg");
    let out = Command::new(env!("CARGO_BIN_EXE_hanwha-delivery"))
        .arg("load")
        .arg("--target")
        .arg(&server.base)
        .arg("--json")
        .arg(&json)
        .arg("--chart")
        .arg(&chart)
        .arg("--server-pid")
        .arg(server.pid().to_string())
        .args(args)
        .env("HANWHA_LOG", "warn")
        .output()
        .expect("run hanwha-delivery load");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "load failed: {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    assert!(stdout.contains("p99 ms"), "no table in:\n{stdout}");
    let svg = std::fs::read_to_string(&chart).expect("chart written");
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    let text = std::fs::read_to_string(&json).expect("json written");
    serde_json::from_str(&text).expect("report is JSON")
}

fn step<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no step {name} in {report}"))
}

fn assert_no_errors(report: &Value) {
    assert_eq!(report["error_total"], 0, "errors: {}", report["errors"]);
    assert_eq!(report["errors"], serde_json::json!({}));
    assert_eq!(report["iterations_failed"], 0);
}

#[tokio::test]
async fn twenty_full_sagas_complete_without_errors() {
    let _machine = exclusive().await;
    let server = Server::start(&[]);
    let dir = tempfile::tempdir().expect("temp dir");
    let report = load(
        &server,
        dir.path(),
        &[
            "--scenario",
            "saga",
            "--count",
            "20",
            "--concurrency",
            "4",
            "--status-every",
            "5",
        ],
    );

    assert_no_errors(&report);
    assert_eq!(report["scenario"], "saga");
    assert_eq!(report["sagas"], 20);
    assert_eq!(report["iterations_ok"], 20);
    for name in ["place", "accept", "finish", "pickup", "complete", "confirm"] {
        let s = step(&report, name);
        assert_eq!(s["count"], 20, "{name}: {s}");
        let (p50, p99, max) = (
            s["p50_ms"].as_f64().expect("p50"),
            s["p99_ms"].as_f64().expect("p99"),
            s["max_ms"].as_f64().expect("max"),
        );
        assert!(p50 > 0.0 && p50 <= p99 && p99 <= max, "{name}: {s}");
    }
    // Six actions per saga, and a request for each (plus retries).
    let requests = report["requests"].as_u64().expect("requests");
    let retries = report["retries"].as_u64().expect("retries");
    assert_eq!(requests, 6 * 20 + retries);

    // Every action's notification reached the customer's live stream.
    assert_eq!(report["notifications_unseen"], serde_json::json!({}));
    let lag = report["lag"].as_array().expect("lag");
    let all = lag
        .iter()
        .find(|l| l["name"] == "notification (all)")
        .expect("notification lag");
    assert_eq!(all["count"], 6 * 20);
    // Every 5th saga probes the status view after each action.
    let status = lag
        .iter()
        .find(|l| l["name"] == "status view (all)")
        .expect("status view lag");
    assert_eq!(status["count"], 6 * 4);

    let memory = &report["server_memory"];
    assert_eq!(memory["pid"], server.pid());
    assert!(memory["hwm_after_kb"].as_u64().expect("hwm") > 0);
    let seconds = report["timeline"].as_array().expect("timeline");
    let per_second: u64 = seconds
        .iter()
        .map(|s| s["requests"].as_u64().expect("requests"))
        .sum();
    assert_eq!(per_second, requests);

    // The orders really went all the way through.
    let customer = Api::login(&server, "customer").await;
    let orders = customer.get("/orders?status=Confirmed").await;
    assert_eq!(orders.body.as_array().expect("orders").len(), 20);
}

#[tokio::test]
async fn an_open_loop_place_run_starts_every_scheduled_order() {
    let _machine = exclusive().await;
    let server = Server::start(&[]);
    let dir = tempfile::tempdir().expect("temp dir");
    let report = load(
        &server,
        dir.path(),
        &[
            "--scenario",
            "place",
            "--count",
            "30",
            "--rate",
            "60",
            "--ramp-up",
            "200ms",
        ],
    );

    assert_no_errors(&report);
    assert_eq!(report["rate"], 60.0);
    assert_eq!(report["iterations_ok"], 30);
    assert_eq!(report["sagas"], 0);
    assert_eq!(step(&report, "place")["count"], 30);
    assert_eq!(report["requests"], 30);

    let customer = Api::login(&server, "customer").await;
    let orders = customer.get("/orders?status=Ordered").await;
    assert_eq!(orders.body.as_array().expect("orders").len(), 30);
}
