//! One member of the fleet: how to start it, the child while it runs, and
//! its restarts with back-off when it exits.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;

use super::relay::Relay;

/// Everything needed to start (and restart) one member.
#[derive(Debug, Clone)]
pub struct Spec {
    /// `order`, `order-2`, …: names its log lines.
    pub name: String,
    pub url: String,
    pub management: String,
    /// Where its data is (no password), for the banner.
    pub database: Option<String>,
    pub args: Vec<String>,
    pub env: Vec<(&'static str, PathBuf)>,
    pub plain_env: Vec<(&'static str, String)>,
}

impl Spec {
    fn spawn(&self, exe: &std::path::Path) -> anyhow::Result<Child> {
        let mut command = Command::new(exe);
        command
            .args(&self.args)
            .envs(self.env.iter().cloned())
            .envs(self.plain_env.iter().cloned())
            .env(crate::lifeline::ENV, "1")
            // The lifeline: the fleet never writes, and its end closes
            // when the fleet exits.
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // A terminal's Ctrl-C reaches the fleet alone: it stops the
        // members itself, and none races it by exiting to be restarted.
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        command
            .spawn()
            .with_context(|| format!("starting {}", self.name))
    }
}

/// Restart delays: 0.5 s doubling to 30 s, back to 0.5 s after a member
/// ran a stable minute.
#[derive(Debug)]
pub struct Backoff {
    next: Duration,
}

const FIRST_DELAY: Duration = Duration::from_millis(500);
const MAX_DELAY: Duration = Duration::from_secs(30);
const STABLE: Duration = Duration::from_secs(60);

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff { next: FIRST_DELAY }
    }
}

impl Backoff {
    /// The delay before restarting a member that ran `ran_for`.
    pub fn after_exit(&mut self, ran_for: Duration) -> Duration {
        if ran_for >= STABLE {
            self.next = FIRST_DELAY;
        }
        let delay = self.next;
        self.next = (self.next * 2).min(MAX_DELAY);
        delay
    }
}

pub struct Member {
    pub spec: Spec,
    child: Option<Child>,
    started: Instant,
    backoff: Backoff,
    restart_at: Option<Instant>,
}

impl Member {
    /// Starts the member and waits until it listens.
    pub fn start(spec: Spec, exe: &std::path::Path, relay: &Relay) -> anyhow::Result<Member> {
        let mut child = spec.spawn(exe)?;
        let mut member = Member {
            child: None,
            started: Instant::now(),
            backoff: Backoff::default(),
            restart_at: None,
            spec,
        };
        relay.follow(&member.spec.name, BufReader::new(stderr(&mut child)?));
        let mut stdout = BufReader::new(stdout(&mut child)?);
        member.child = Some(child);
        let mut line = String::new();
        // The first line of `serve` says it listens (see listeners.rs).
        while !line.contains("listening on http://") {
            line.clear();
            if stdout.read_line(&mut line)? == 0 {
                member.stop();
                anyhow::bail!(
                    "{} exited before it listened on {} (is the port free?)",
                    member.spec.name,
                    member.spec.url
                );
            }
        }
        relay.follow(&member.spec.name, stdout);
        Ok(member)
    }

    /// Notices an exit and restarts when the back-off has passed; says
    /// both on the relay.
    pub fn supervise(&mut self, exe: &std::path::Path, relay: &Relay) {
        let name = &self.spec.name;
        if let Some(at) = self.restart_at {
            if Instant::now() < at {
                return;
            }
            self.restart_at = None;
            match self.spec.spawn(exe) {
                Ok(mut child) => {
                    relay.say(format!("{name} restarted (pid {})", child.id()));
                    if let (Ok(err), Ok(out)) = (stderr(&mut child), stdout(&mut child)) {
                        relay.follow(name, BufReader::new(err));
                        relay.follow(name, BufReader::new(out));
                    }
                    self.child = Some(child);
                    self.started = Instant::now();
                }
                Err(e) => {
                    let delay = self.backoff.after_exit(Duration::ZERO);
                    relay.say(format!(
                        "{name} could not be restarted ({e:#}); trying again in {delay:?}"
                    ));
                    self.restart_at = Some(Instant::now() + delay);
                }
            }
            return;
        }
        let Some(child) = self.child.as_mut() else {
            return;
        };
        if let Ok(Some(status)) = child.try_wait() {
            let ran_for = self.started.elapsed();
            let delay = self.backoff.after_exit(ran_for);
            relay.say(format!(
                "{name} exited ({status}) after {:.1} s; restarting in {delay:?}",
                ran_for.as_secs_f64()
            ));
            self.child = None;
            self.restart_at = Some(Instant::now() + delay);
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Cuts the lifeline, so the member drains as on SIGTERM.
    pub fn ask_to_stop(&mut self) {
        self.restart_at = None;
        if let Some(child) = self.child.as_mut() {
            drop(child.stdin.take());
        }
    }

    /// Waits up to the deadline for the member to end, then kills it.
    pub fn stop_by(&mut self, deadline: Instant) {
        self.ask_to_stop();
        let Some(mut child) = self.child.take() else {
            return;
        };
        loop {
            match child.try_wait() {
                Ok(Some(_)) => return,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return;
                }
            }
        }
    }

    fn stop(&mut self) {
        self.stop_by(Instant::now() + Duration::from_secs(15));
    }
}

fn stdout(child: &mut Child) -> anyhow::Result<std::process::ChildStdout> {
    child.stdout.take().context("child stdout")
}

fn stderr(child: &mut Child) -> anyhow::Result<std::process::ChildStderr> {
    child.stderr.take().context("child stderr")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restarts_back_off_to_thirty_seconds_and_reset_after_a_stable_minute() {
        let mut backoff = Backoff::default();
        let quick = Duration::from_secs(1);
        let delays: Vec<f64> = (0..9)
            .map(|_| backoff.after_exit(quick).as_secs_f64())
            .collect();
        assert_eq!(delays, [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]);
        assert_eq!(
            backoff.after_exit(Duration::from_secs(61)),
            Duration::from_millis(500)
        );
        assert_eq!(backoff.after_exit(quick), Duration::from_secs(1));
    }
}
