//! The children's output, each line prefixed with the member that wrote it,
//! on the fleet's stderr. Bounded and never in a child's way: one reader
//! thread per pipe keeps the pipe empty, one writer thread writes, and
//! between them a bounded queue drops (and counts) lines when the fleet's
//! own stderr does not keep up, rather than block a child on a full pipe.

use std::io::{BufRead, Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::Arc;

/// Lines waiting for the writer; beyond them lines are dropped.
const QUEUE: usize = 4096;
/// A longer line is cut into pieces of this many bytes.
const LINE_LIMIT: u64 = 16 * 1024;

#[derive(Clone)]
pub struct Relay {
    lines: SyncSender<String>,
    dropped: Arc<AtomicU64>,
}

impl Relay {
    /// Starts the writer thread.
    pub fn to_stderr() -> Relay {
        let (lines, queue) = sync_channel::<String>(QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        let lost = dropped.clone();
        std::thread::spawn(move || {
            for line in queue {
                let mut out = std::io::stderr().lock();
                let skipped = lost.swap(0, Ordering::Relaxed);
                if skipped > 0 {
                    let _ = writeln!(
                        out,
                        "{:<14}| {skipped} lines dropped: output too slow",
                        "fleet"
                    );
                }
                let _ = writeln!(out, "{line}");
            }
        });
        Relay { lines, dropped }
    }

    /// One line in the fleet's own name.
    pub fn say(&self, line: impl std::fmt::Display) {
        self.push(format!("{:<14}| {line}", "fleet"));
    }

    /// Relays `pipe` line by line as `member`'s until it closes.
    pub fn follow(&self, member: &str, mut pipe: impl BufRead + Send + 'static) {
        let (relay, prefix) = (self.clone(), format!("{member:<14}| "));
        std::thread::spawn(move || {
            let mut line = Vec::new();
            loop {
                line.clear();
                match (&mut pipe).take(LINE_LIMIT).read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let text = String::from_utf8_lossy(&line);
                        relay.push(format!("{prefix}{}", text.trim_end_matches(['\n', '\r'])));
                    }
                }
            }
        });
    }

    fn push(&self, line: String) {
        if let Err(TrySendError::Full(_)) = self.lines.try_send(line) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relay_that_cannot_write_drops_lines_instead_of_blocking() {
        let (lines, _queue) = sync_channel::<String>(2);
        let relay = Relay {
            lines,
            dropped: Arc::new(AtomicU64::new(0)),
        };
        for n in 0..5 {
            relay.say(n);
        }
        assert_eq!(relay.dropped.load(Ordering::Relaxed), 3);
    }
}
