//! Ports for the servers a test starts itself and restarts on the same port
//! (a private PostgreSQL, MariaDB or NATS server, a `fleet` command's
//! block): below the kernel's ephemeral range (32768 up on Linux), so that
//! no `127.0.0.1:0` listener or outgoing connection of another test takes
//! one between a stop and a start, and drawn at random. A server that finds
//! its port taken all the same exits; its caller starts it on another.

use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

pub const BELOW_EPHEMERAL: std::ops::Range<u16> = 10_000..32_000;

/// How many ports a server is tried on before the test gives up.
pub const TRIES: usize = 5;

/// A port drawn from `BELOW_EPHEMERAL`.
pub fn random() -> u16 {
    let span = u128::from(BELOW_EPHEMERAL.end - BELOW_EPHEMERAL.start);
    BELOW_EPHEMERAL.start + (uuid::Uuid::new_v4().as_u128() % span) as u16
}

/// Waits until the server `child` writes `ready` to its `log` (then it owns
/// its port), or exits (`Err` with the log: its port was taken, or it could
/// not start for another reason the log tells).
pub fn wait_ready(child: &mut Child, log: &Path, ready: &str, what: &str) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.contains(ready) {
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("{what} exited ({status}):\n{text}"));
        }
        assert!(
            Instant::now() < deadline,
            "{what} was not ready after 60 s:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
