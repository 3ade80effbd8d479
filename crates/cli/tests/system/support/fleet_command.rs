//! `hanwha-delivery fleet` as a user runs it: its own block of ports, its
//! own stream and subjects on the test NATS server (or its own topic on the
//! test Kafka broker), its output kept.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

/// One line of the fleet's banner.
#[derive(Debug, Clone)]
pub struct Member {
    pub name: String,
    pub url: String,
    pub pid: u32,
    pub database: String,
}

pub struct LocalFleet {
    child: Child,
    pub base: u16,
    pub stream: String,
    pub prefix: String,
    pub members: Vec<Member>,
    broker: Broker,
    output: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
}

/// A fleet's block of 200 ports lies below the ephemeral range.
const BASES: std::ops::Range<u32> =
    super::ports::BELOW_EPHEMERAL.start as u32..super::ports::BELOW_EPHEMERAL.end as u32;

/// The broker a fleet's events go through.
#[derive(Clone, Debug)]
pub enum Broker {
    /// NATS JetStream at this URL.
    Nats(String),
    /// Kafka at these brokers.
    Kafka(String),
}

impl Broker {
    fn from_env(var: &str, broker: fn(String) -> Broker) -> Option<Broker> {
        match std::env::var(var) {
            Ok(url) if !url.is_empty() => Some(broker(url)),
            _ => {
                eprintln!("{var} unset: skipping the fleet command test");
                None
            }
        }
    }
}

impl LocalFleet {
    /// A fleet on SQLite, or `None` when HANWHA_TEST_NATS_URL is unset. A
    /// block of ports someone else holds makes the fleet exit at start: it
    /// is then tried on another block.
    pub fn start() -> Option<LocalFleet> {
        LocalFleet::start_on(Broker::from_env("HANWHA_TEST_NATS_URL", Broker::Nats)?)
    }

    /// The same on Kafka (`--transport kafka`, a topic of its own), or
    /// `None` when HANWHA_TEST_KAFKA_BROKERS is unset.
    pub fn start_on_kafka() -> Option<LocalFleet> {
        LocalFleet::start_on(Broker::from_env(
            "HANWHA_TEST_KAFKA_BROKERS",
            Broker::Kafka,
        )?)
    }

    fn start_on(broker: Broker) -> Option<LocalFleet> {
        for _ in 0..5 {
            let random = uuid::Uuid::new_v4();
            let blocks = (BASES.end - BASES.start) / 200;
            let base = (BASES.start + (random.as_u128() % u128::from(blocks)) as u32 * 200) as u16;
            if let Some(fleet) =
                LocalFleet::try_on(&broker, base, &random.simple().to_string()[..12])
            {
                return Some(fleet);
            }
        }
        panic!("no block of free ports for a fleet after five tries");
    }

    fn try_on(broker: &Broker, base: u16, tag: &str) -> Option<LocalFleet> {
        let dir = tempfile::tempdir().expect("temp dir");
        let stream = format!("FLEETCMD_{tag}");
        let prefix = format!("fleetcmd_{tag}.events");
        let events = match broker {
            Broker::Nats(nats) => vec![
                format!("--nats-url={nats}"),
                format!("--stream={stream}"),
                format!("--subject-prefix={prefix}"),
            ],
            Broker::Kafka(brokers) => vec![
                "--transport=kafka".to_string(),
                format!("--kafka-brokers={brokers}"),
                format!("--kafka-topic={}", kafka_topic(&stream)),
                "--kafka-partitions=3".to_string(),
            ],
        };
        let mut child = Command::new(env!("CARGO_BIN_EXE_hanwha-delivery"))
            .arg("--data-dir")
            .arg(dir.path())
            .arg("fleet")
            .arg(format!("--port-base={base}"))
            .args(events)
            .env("HANWHA_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the fleet");
        let output = Arc::new(Mutex::new(Vec::new()));
        let kept = output.clone();
        let stderr = child.stderr.take().expect("stderr");
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                kept.lock().expect("output").push(line);
            }
        });
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let mut members = Vec::new();
        for line in lines.by_ref().map_while(Result::ok) {
            if line.starts_with("A member that exits") {
                break;
            }
            let words: Vec<&str> = line.split_whitespace().collect();
            if let [name, url, "management", _, "pid", pid, database @ ..] = &words[..] {
                members.push(Member {
                    name: name.to_string(),
                    url: url.to_string(),
                    pid: pid.parse().expect("pid"),
                    database: database.join(" "),
                });
            }
        }
        std::thread::spawn(move || for _ in lines {});
        if members.is_empty() {
            let _ = child.wait();
            eprintln!(
                "the fleet on base {base} did not start:\n{}",
                output.lock().expect("output").join("\n")
            );
            return None;
        }
        Some(LocalFleet {
            child,
            base,
            stream,
            prefix,
            members,
            broker: broker.clone(),
            output,
            _dir: dir,
        })
    }

    pub fn member(&self, name: &str) -> &Member {
        self.members
            .iter()
            .find(|m| m.name == name)
            .unwrap_or_else(|| panic!("no member {name} in {:?}", self.members))
    }

    /// What the fleet wrote on stderr: its own lines and its members'.
    pub fn output(&self) -> Vec<String> {
        self.output.lock().expect("output").clone()
    }

    /// Waits (as `eventually` does) for a line of output `matches` accepts.
    pub async fn wait_for_line(&self, what: &str, matches: impl Fn(&str) -> bool) -> String {
        super::eventually(what, || {
            let found = self.output().into_iter().find(|l| matches(l));
            async move { found }
        })
        .await
    }

    /// SIGKILL: the fleet gets no chance to stop anything.
    pub fn kill9(&mut self) {
        self.child.kill().expect("kill -9 the fleet");
        self.child.wait().expect("reap the fleet");
    }

    /// Stops the fleet and deletes its stream (its topic) from the shared
    /// broker.
    pub async fn finish(mut self) {
        self.kill9();
        match &self.broker {
            Broker::Nats(nats) => {
                let bus = platform::nats::NatsBus::connect(nats, &self.stream, &self.prefix)
                    .await
                    .expect("reach NATS");
                bus.delete_stream()
                    .await
                    .expect("delete the fleet's stream");
            }
            Broker::Kafka(brokers) => {
                let bus = platform::kafka::KafkaBus::connect(platform::kafka::KafkaConfig {
                    brokers: brokers.clone(),
                    topic: kafka_topic(&self.stream),
                    partitions: 3,
                    replication: 1,
                })
                .await
                .expect("reach Kafka");
                bus.delete_topic().await.expect("delete the fleet's topic");
            }
        }
    }
}

/// A fleet's own topic on the shared Kafka broker.
fn kafka_topic(stream: &str) -> String {
    stream.to_lowercase()
}

impl Drop for LocalFleet {
    /// Its members follow it (their lifeline is its end of their stdin).
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether a process runs: a zombie no one reaped yet has ended.
pub fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let state = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .next()?
                .to_string();
            Some(state != "Z" && state != "X")
        })
        .unwrap_or(false)
}

/// Sends a signal (`-KILL`, `-STOP`, ...) to a process.
pub fn signal_pid(pid: u32, sig: &str) {
    let status = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success(), "kill {sig} {pid}");
}
