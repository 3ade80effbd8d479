//! A soak: full sagas at half the peak rate this machine reached a moment
//! before, for two minutes (`HANWHA_SOAK_SECS` sets another length; the
//! documented run is 30 minutes, see docs/RELIABILITY.md). Nothing may fail,
//! and the server's memory must level off rather than climb. Latency per
//! window is printed for the record, not asserted.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::*;
use serde_json::Value;

fn load(server: &Server, args: &[&str]) -> Value {
    let dir = tempfile::tempdir().expect("temp dir");
    let json = dir.path().join("out.json");
    let out = Command::new(env!("CARGO_BIN_EXE_hanwha-delivery"))
        .arg("load")
        .arg("--target")
        .arg(&server.base)
        .arg("--json")
        .arg(&json)
        .arg("--quiet")
        .args(args)
        .env("HANWHA_LOG", "warn")
        .output()
        .expect("run hanwha-delivery load");
    assert!(
        out.status.success(),
        "load failed: {}\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&std::fs::read_to_string(&json).expect("report")).expect("JSON")
}

fn rss_kb(pid: u32) -> u64 {
    proc_status_kib(pid, "VmRSS")
}

#[test]
fn sagas_at_half_the_peak_rate_run_without_errors_and_memory_levels_off() {
    let _machine = exclusive_blocking();
    let seconds: u64 = std::env::var("HANWHA_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(120);
    let server = Server::start(&[]);
    let peak = load(
        &server,
        &[
            "--scenario",
            "saga",
            "--concurrency",
            "20",
            "--duration",
            "10s",
        ],
    );
    assert_eq!(peak["error_total"], 0, "errors at peak: {}", peak["errors"]);
    let peak_rate = peak["sagas_per_s"].as_f64().expect("sagas/s");
    let rate = (peak_rate / 2.0).max(1.0);
    eprintln!("peak {peak_rate:.1} sagas/s; soaking at {rate:.1} for {seconds} s");

    let pid = server.pid();
    let sampler = std::thread::spawn(move || {
        let started = Instant::now();
        let mut samples = Vec::new();
        while started.elapsed() < Duration::from_secs(seconds) {
            std::thread::sleep(Duration::from_secs(5));
            samples.push((started.elapsed().as_secs(), rss_kb(pid)));
        }
        samples
    });
    let duration = format!("{seconds}s");
    let rate_arg = format!("{rate:.2}");
    let soak = load(
        &server,
        &[
            "--scenario",
            "saga",
            "--rate",
            &rate_arg,
            "--concurrency",
            "200",
            "--duration",
            &duration,
            "--status-every",
            "10",
        ],
    );
    let samples = sampler.join().expect("sampler");

    // Latency per 30 s window, for the record.
    let timeline = soak["timeline"].as_array().expect("timeline");
    for window in timeline.chunks(30) {
        let worst = window
            .iter()
            .map(|p| p["p99_ms"].as_f64().unwrap_or(0.0))
            .fold(0.0, f64::max);
        let requests: u64 = window
            .iter()
            .map(|p| p["requests"].as_u64().unwrap_or(0))
            .sum();
        eprintln!(
            "t={:>4}s requests {requests:>6}, worst per-second p99 {worst:.1} ms",
            window[0]["t_s"]
        );
    }
    eprintln!("RSS samples (s, KiB): {samples:?}");
    assert_eq!(soak["error_total"], 0, "errors: {}", soak["errors"]);
    assert_eq!(soak["iterations_failed"], 0);
    assert_eq!(soak["notifications_unseen"], serde_json::json!({}));
    assert!(soak["sagas"].as_u64().expect("sagas") > 0);

    // Levels off: after the first half (warm-up: caches, pools, page
    // cache of the files), the resident set grows by less than a tenth.
    let half = samples.len() / 2;
    assert!(half >= 2, "too few samples: {samples:?}");
    let at_half = samples[half].1 as f64;
    let last = samples.last().expect("samples").1 as f64;
    assert!(
        last <= at_half * 1.10,
        "memory still climbing: {at_half} KiB at {} s, {last} KiB at the end",
        samples[half].0
    );
}
