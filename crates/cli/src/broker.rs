//! The broker of the distributed shape, chosen by configuration alone
//! (`--transport nats|kafka`): NATS JetStream or Kafka. Both are one more
//! event sink and consumer behind the same interfaces the relays and
//! handlers use; no service knows which one runs.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use platform::consumer::EventHandler;
use platform::kafka::{KafkaBus, KafkaConfig};
use platform::metrics::{Gauge, Metrics};
use platform::nats::NatsBus;
use platform::shutdown::Shutdown;
use platform::transport::EventSink;
use platform::Db;
use tokio::task::JoinHandle;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Transport {
    Nats,
    Kafka,
}

/// Where the events go, as `serve` and `fleet` take it.
#[derive(Debug, Clone, clap::Args)]
pub struct BrokerArgs {
    /// The broker that carries the events.
    #[arg(long, env = "HANWHA_TRANSPORT", value_enum, default_value = "nats")]
    pub transport: Transport,
    /// NATS server with JetStream.
    #[arg(long, env = "HANWHA_NATS_URL", default_value = "nats://127.0.0.1:4222")]
    pub nats_url: String,
    /// JetStream stream that holds every event (each fleet on a shared
    /// NATS server its own).
    #[arg(long, env = "HANWHA_STREAM", default_value = "HANWHA")]
    pub stream: String,
    /// Subject prefix of the events (`<prefix>.<EventType>`).
    #[arg(long, env = "HANWHA_SUBJECT_PREFIX", default_value = "hanwha.events")]
    pub subject_prefix: String,
    /// Kafka brokers, HOST:PORT[,HOST:PORT...].
    #[arg(long, env = "HANWHA_KAFKA_BROKERS", default_value = "127.0.0.1:9092")]
    pub kafka_brokers: String,
    /// Kafka topic that holds every event (the original system's by default).
    #[arg(long, env = "HANWHA_KAFKA_TOPIC", default_value = platform::kafka::DEFAULT_TOPIC)]
    pub kafka_topic: String,
    /// Partitions of the Kafka topic when it is created.
    #[arg(long, env = "HANWHA_KAFKA_PARTITIONS", default_value_t = 6,
          value_parser = clap::value_parser!(i32).range(1..=1000))]
    pub kafka_partitions: i32,
    /// Replication factor of the Kafka topic when it is created.
    #[arg(long, env = "HANWHA_KAFKA_REPLICATION", default_value_t = 1,
          value_parser = clap::value_parser!(i32).range(1..=100))]
    pub kafka_replication: i32,
}

impl BrokerArgs {
    /// The flags that give a fleet's member the same broker.
    pub fn member_flags(&self) -> Vec<String> {
        let mut flags = vec![format!(
            "--transport={}",
            match self.transport {
                Transport::Nats => "nats",
                Transport::Kafka => "kafka",
            }
        )];
        match self.transport {
            Transport::Nats => flags.extend([
                format!("--stream={}", self.stream),
                format!("--subject-prefix={}", self.subject_prefix),
            ]),
            Transport::Kafka => flags.extend([
                format!("--kafka-brokers={}", self.kafka_brokers),
                format!("--kafka-topic={}", self.kafka_topic),
                format!("--kafka-partitions={}", self.kafka_partitions),
                format!("--kafka-replication={}", self.kafka_replication),
            ]),
        }
        flags
    }

    /// Where the events are, for a banner.
    pub fn describe(&self) -> String {
        match self.transport {
            Transport::Nats => format!(
                "events on {}, stream {}, subjects {}.*",
                self.nats_url, self.stream, self.subject_prefix
            ),
            Transport::Kafka => format!(
                "events on Kafka {}, topic {}",
                self.kafka_brokers, self.kafka_topic
            ),
        }
    }

    /// Connects to the broker; a Kafka topic that is missing is created.
    pub async fn connect(&self) -> anyhow::Result<Broker> {
        Ok(match self.transport {
            Transport::Nats => Broker::Nats(Box::new(
                NatsBus::connect(&self.nats_url, &self.stream, &self.subject_prefix)
                    .await
                    .with_context(|| format!("connecting to NATS at {}", self.nats_url))?,
            )),
            Transport::Kafka => Broker::Kafka(
                KafkaBus::connect(KafkaConfig {
                    brokers: self.kafka_brokers.clone(),
                    topic: self.kafka_topic.clone(),
                    partitions: self.kafka_partitions,
                    replication: self.kafka_replication,
                })
                .await
                .with_context(|| format!("connecting to Kafka at {}", self.kafka_brokers))?,
            ),
        })
    }
}

#[derive(Clone)]
pub enum Broker {
    Nats(Box<NatsBus>),
    Kafka(KafkaBus),
}

impl Broker {
    /// The broker's name in `hanwha_broker_connected`.
    pub fn name(&self) -> &'static str {
        match self {
            Broker::Nats(_) => "nats",
            Broker::Kafka(_) => "kafka",
        }
    }

    pub fn sink(&self) -> Arc<dyn EventSink> {
        match self {
            Broker::Nats(bus) => Arc::new(bus.as_ref().clone()),
            Broker::Kafka(bus) => Arc::new(bus.clone()),
        }
    }

    pub fn consume(
        &self,
        handler: Arc<dyn EventHandler>,
        db: Db,
        shutdown: Shutdown,
    ) -> JoinHandle<()> {
        match self {
            Broker::Nats(bus) => {
                platform::nats::spawn_consumer(handler, db, bus.as_ref().clone(), shutdown)
            }
            Broker::Kafka(bus) => {
                platform::kafka::spawn_consumer(handler, db, bus.clone(), shutdown)
            }
        }
    }

    /// True while the broker answers; at once, without waiting for it.
    pub fn connected(&self) -> bool {
        match self {
            Broker::Nats(bus) => bus.connected(),
            Broker::Kafka(bus) => bus.connected(),
        }
    }

    /// How long after an event was handled a copy of it can still arrive.
    pub fn redelivery_window(&self) -> Duration {
        match self {
            Broker::Nats(_) => platform::nats::redelivery_window(),
            Broker::Kafka(_) => platform::kafka::redelivery_window(),
        }
    }

    /// Puts how far `consumer` is behind into the metrics: in all, and on
    /// Kafka per partition too.
    pub fn watch_lag(&self, consumer: &'static str, metrics: &Metrics) {
        match self.clone() {
            Broker::Nats(bus) => metrics.probe(
                Gauge::ConsumerLag,
                consumer,
                Arc::new(move || {
                    let bus = bus.clone();
                    Box::pin(
                        async move { bus.pending(consumer).await.map(|n| n as i64).unwrap_or(-1) },
                    )
                }),
            ),
            Broker::Kafka(bus) => {
                let total = bus.clone();
                metrics.probe(
                    Gauge::ConsumerLag,
                    consumer,
                    Arc::new(move || {
                        let bus = total.clone();
                        Box::pin(
                            async move { bus.lag(consumer).await.map_or(-1, |l| l.iter().sum()) },
                        )
                    }),
                );
                for partition in 0..bus.partitions() {
                    let bus = bus.clone();
                    metrics.probe_labelled(
                        Gauge::ConsumerPartitionLag,
                        &[consumer, &partition.to_string()],
                        Arc::new(move || {
                            let bus = bus.clone();
                            Box::pin(async move {
                                bus.lag(consumer).await.map_or(-1, |l| {
                                    l.get(partition as usize).copied().unwrap_or(-1)
                                })
                            })
                        }),
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        broker: BrokerArgs,
    }

    #[test]
    fn a_member_gets_the_fleets_broker() {
        let nats = Cli::parse_from(["x", "--stream=S"]).broker;
        assert_eq!(nats.transport, Transport::Nats);
        assert_eq!(
            nats.member_flags(),
            vec![
                "--transport=nats",
                "--stream=S",
                "--subject-prefix=hanwha.events"
            ]
        );
        let kafka = Cli::parse_from(["x", "--transport=kafka", "--kafka-brokers=h:1"]).broker;
        assert_eq!(kafka.kafka_topic, "hanwhadeliverysystemteam");
        assert_eq!(
            kafka.member_flags(),
            vec![
                "--transport=kafka",
                "--kafka-brokers=h:1",
                "--kafka-topic=hanwhadeliverysystemteam",
                "--kafka-partitions=6",
                "--kafka-replication=1"
            ]
        );
        assert!(Cli::try_parse_from(["x", "--transport=kinesis"]).is_err());
    }
}
