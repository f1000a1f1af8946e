//! The consumer side: one librdkafka consumer reading a topic from given
//! offsets (assignment) or as a group member, counting records and bytes
//! and, for `e2e`, reading the send time out of each payload.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use crate::clock::now_ns;
use crate::latency::Latencies;

/// Where the consumer starts.
pub enum Start {
    /// Join this group and subscribe (committed offsets, else earliest).
    Group(String),
    /// Assign every partition at its beginning.
    Beginning,
    /// Assign every partition at its current high watermark, resolved
    /// before `open` returns, so every record produced after that is seen
    /// (`Offset::End` would be resolved later, racing the producers).
    Latest,
}

/// When the consumer stops (whichever comes first).
pub struct Stop {
    /// After this many records.
    pub count: Option<u64>,
    /// When every assigned partition has reported end-of-partition.
    pub at_end: bool,
    /// When nothing arrived for this long after the first record.
    pub idle: Duration,
    /// When the first record has not come after this long.
    pub start_timeout: Duration,
    /// A count known only later (e2e: the producers' acked total, u64::MAX
    /// until they finish).
    pub expected: Option<Arc<AtomicU64>>,
}

#[derive(Default)]
pub struct ConsumeOutcome {
    pub records: u64,
    pub bytes: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    /// When the consumer was started, and the first and last record
    /// arrived, in ns (`clock::now_ns`).
    pub begin_ns: u64,
    pub first_ns: u64,
    pub last_ns: u64,
    /// Send-to-receive latency, when the payloads carry a send time.
    pub latency: Latencies,
}

impl ConsumeOutcome {
    /// First record to last record: the steady-state rate, without the
    /// connection and group-join time before the first fetch.
    pub fn elapsed_s(&self) -> f64 {
        self.last_ns.saturating_sub(self.first_ns) as f64 / 1e9
    }
}

/// The consumer config: no auto-commit unless in a group.
pub fn consumer_config(mut cfg: ClientConfig, start: &Start, at_end: bool) -> ClientConfig {
    match start {
        Start::Group(g) => {
            cfg.set("group.id", g).set("enable.auto.commit", "true");
        }
        Start::Beginning | Start::Latest => {
            // librdkafka wants a group.id for a consumer even when it
            // never joins; nothing is committed.
            cfg.set("group.id", "strom-perf-assign")
                .set("enable.auto.commit", "false");
        }
    }
    cfg.set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", at_end.to_string());
    cfg
}

/// The partitions of `topic`, per the broker's metadata.
pub fn partitions(consumer: &BaseConsumer, topic: &str) -> Result<Vec<i32>> {
    let md = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .context("fetching metadata")?;
    let Some(t) = md.topics().iter().find(|t| t.name() == topic) else {
        bail!("topic {topic} not in metadata");
    };
    if let Some(e) = t.error() {
        bail!("topic {topic}: {e:?}");
    }
    Ok(t.partitions().iter().map(|p| p.id()).collect())
}

/// Creates a consumer and positions it per `start`.
pub fn open(cfg: &ClientConfig, topic: &str, start: &Start) -> Result<BaseConsumer> {
    let consumer: BaseConsumer = cfg.create().context("creating a consumer")?;
    match start {
        Start::Group(_) => consumer.subscribe(&[topic]).context("subscribing")?,
        Start::Beginning | Start::Latest => {
            let parts = partitions(&consumer, topic)?;
            let mut tpl = TopicPartitionList::with_capacity(parts.len());
            for p in parts {
                let offset = match start {
                    Start::Latest => {
                        let (_, high) = consumer
                            .fetch_watermarks(topic, p, Duration::from_secs(10))
                            .with_context(|| format!("high watermark of {topic}/{p}"))?;
                        Offset::Offset(high)
                    }
                    _ => Offset::Beginning,
                };
                tpl.add_partition_offset(topic, p, offset)
                    .context("building the assignment")?;
            }
            consumer.assign(&tpl).context("assigning partitions")?;
        }
    }
    Ok(consumer)
}

/// Polls `consumer` until `stop` says so.
pub fn run(consumer: &BaseConsumer, stop: &Stop, stamped: bool) -> Result<ConsumeOutcome> {
    let mut out = ConsumeOutcome {
        begin_ns: now_ns(),
        ..Default::default()
    };
    let mut at_end: HashSet<i32> = HashSet::new();
    let idle_ns = stop.idle.as_nanos() as u64;
    let start_timeout_ns = stop.start_timeout.as_nanos() as u64;
    loop {
        let target = stop.count.unwrap_or(u64::MAX).min(
            stop.expected
                .as_ref()
                .map_or(u64::MAX, |e| e.load(Ordering::Acquire)),
        );
        if out.records >= target {
            break;
        }
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                let now = now_ns();
                let payload = m.payload().unwrap_or_default();
                out.records += 1;
                out.bytes += payload.len() as u64;
                if out.first_ns == 0 {
                    out.first_ns = now;
                }
                out.last_ns = now;
                if stamped && let Some(sent) = payload.first_chunk::<8>() {
                    out.latency
                        .record_ns(now.saturating_sub(u64::from_le_bytes(*sent)));
                }
                if stop.at_end {
                    at_end.remove(&m.partition());
                }
            }
            // Only reported with enable.partition.eof, i.e. when `at_end`.
            Some(Err(KafkaError::PartitionEOF(p))) if stop.at_end => {
                at_end.insert(p);
                let assigned = consumer.assignment().map(|a| a.count()).unwrap_or(0);
                if assigned > 0 && at_end.len() >= assigned {
                    break;
                }
            }
            Some(Err(e)) => {
                out.errors += 1;
                if out.first_error.is_none() {
                    eprintln!("strom-perf: consumer: {e}");
                    out.first_error = Some(e.to_string());
                }
            }
            None => {}
        }
        let now = now_ns();
        if out.first_ns == 0 {
            if now - out.begin_ns > start_timeout_ns {
                eprintln!(
                    "strom-perf: no record within {:?}; giving up",
                    stop.start_timeout
                );
                break;
            }
        } else if now - out.last_ns > idle_ns {
            break;
        }
    }
    Ok(out)
}
