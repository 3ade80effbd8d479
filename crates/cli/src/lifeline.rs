//! A process started by `fleet` ends with the fleet, however the fleet
//! ends — `kill -9` included — so that no orphan keeps its ports.
//!
//! The fleet holds the write end of each child's stdin and never writes to
//! it; when the fleet exits the kernel closes it, and the child reads
//! end-of-file and drains as on SIGTERM. This was chosen over
//! `prctl(PR_SET_PDEATHSIG)`: that needs `unsafe` in `pre_exec` (the
//! workspace forbids it), fires when the *thread* that spawned the child
//! ends (a restart spawns from whichever runtime thread is polling), misses
//! a fleet that died between fork and prctl, and exists on Linux only. A
//! closed pipe has none of those gaps: if the fleet is already gone, the
//! first read ends at once.

use std::io::Read;
use std::time::Duration;

/// Set by the fleet on its children: their stdin is the lifeline.
pub const ENV: &str = "HANWHA_EXIT_WITH_FLEET";

/// How long a child may drain once the fleet is gone before it exits anyway.
const DRAIN_LIMIT: Duration = Duration::from_secs(20);

/// Resolves on `signal`, or, in a child of the fleet, when the fleet is
/// gone.
pub async fn signal_or_fleet_gone(signal: impl std::future::Future<Output = ()>) {
    if std::env::var_os(ENV).is_none() {
        return signal.await;
    }
    let (gone, fleet_gone) = tokio::sync::oneshot::channel::<()>();
    // A thread of its own, not tokio's stdin: a blocking read cannot be
    // cancelled, and tokio's would hold up the runtime's shutdown.
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut buf = [0u8; 64];
        loop {
            match stdin.read(&mut buf) {
                Ok(0) => break,
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        tracing::warn!("the fleet stopped or is gone: stopping");
        let _ = gone.send(());
        std::thread::sleep(DRAIN_LIMIT);
        std::process::exit(1);
    });
    tokio::select! {
        _ = signal => {}
        _ = fleet_gone => {}
    }
}
