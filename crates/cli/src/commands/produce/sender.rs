//! Sending closed batches to partition leaders, as the Java producer's Sender: batches
//! queue per leader; a Produce request takes queued batches up to
//! `--max-request-size` (one batch per partition, as brokers require for v2 batches);
//! up to `--max-in-flight` requests are pipelined on each broker connection.
//!
//! Every partition of every response is checked. A retriable error (a leader moved, a
//! timeout) puts the batch back after a metadata refresh, until `--timeout` has passed
//! since its first failure; anything else ends the command. Without idempotence a
//! retry may duplicate or reorder records, as with any Kafka producer that has
//! `enable.idempotence=false` (kcat's default). A lost connection is fatal: what its
//! in-flight requests did is unknown.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use kafka_protocol::messages::{
    ProduceRequest, ProduceResponse, TopicName,
    produce_request::{PartitionProduceData, TopicProduceData},
};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use super::encoder::Batch;
use crate::client::{Cluster, KafkaError};

/// First wait before a retry; doubles per attempt up to [`MAX_BACKOFF`].
const BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// Produce v13 names topics by id only.
const FIRST_VERSION_BY_ID: i16 = 13;

/// How to send.
pub struct SenderConfig {
    pub topic: String,
    pub topic_id: Uuid,
    /// Leader node id per partition (-1: none).
    pub leaders: Vec<i32>,
    pub acks: i16,
    pub timeout: Duration,
    pub max_request_size: usize,
    pub max_in_flight: usize,
}

/// What was acknowledged for one partition.
#[derive(Debug, Clone, Copy, Default)]
pub struct PartitionAcks {
    pub records: u64,
    /// Lowest and highest offset written (unknown with acks=0).
    pub offsets: Option<(i64, i64)>,
}

/// Totals over the whole run.
#[derive(Debug, Clone, Default)]
pub struct SendStats {
    pub records: u64,
    pub batches: u64,
    pub requests: u64,
    /// Record batch bytes sent (after compression), retries included.
    pub batch_bytes: u64,
    pub partitions: Vec<PartitionAcks>,
}

#[derive(Default)]
struct Queue {
    batches: VecDeque<Batch>,
    bytes: usize,
}

struct InFlight {
    correlation_id: i32,
    version: i16,
    batches: Vec<Batch>,
}

/// Batches waiting for, or sent to, their leaders.
pub struct Sender {
    config: SenderConfig,
    name: TopicName,
    queues: BTreeMap<i32, Queue>,
    in_flight: BTreeMap<i32, VecDeque<InFlight>>,
    /// Batches waiting for a metadata refresh (retriable error, or no leader).
    retries: Vec<Batch>,
    attempt: u32,
    retry_at: Option<Instant>,
    pub stats: SendStats,
}

impl Sender {
    pub fn new(config: SenderConfig) -> Sender {
        let partitions = config.leaders.len();
        Sender {
            name: TopicName(StrBytes::from_string(config.topic.clone())),
            config,
            queues: BTreeMap::new(),
            in_flight: BTreeMap::new(),
            retries: Vec::new(),
            attempt: 0,
            retry_at: None,
            stats: SendStats {
                partitions: vec![PartitionAcks::default(); partitions],
                ..SendStats::default()
            },
        }
    }

    /// Queues a closed batch for its partition's leader.
    pub fn enqueue(&mut self, batch: Batch) {
        match self.config.leaders.get(batch.partition).copied() {
            Some(leader) if leader >= 0 => {
                let queue = self.queues.entry(leader).or_default();
                queue.bytes += batch.records.len();
                queue.batches.push_back(batch);
            }
            _ => self.retry_later(batch),
        }
    }

    /// Queues batches in the order given.
    pub fn enqueue_all(&mut self, batches: Vec<Batch>) {
        for batch in batches {
            self.enqueue(batch);
        }
    }

    /// When batches waiting for a retry are due to be sent again.
    pub fn retry_deadline(&self) -> Option<Instant> {
        self.retry_at
    }

    pub fn has_in_flight(&self) -> bool {
        self.in_flight.values().any(|q| !q.is_empty())
    }

    fn is_idle(&self) -> bool {
        self.queues.values().all(|q| q.batches.is_empty())
            && !self.has_in_flight()
            && self.retries.is_empty()
    }

    /// Sends what the in-flight limits allow. Waits for a response only when a leader
    /// has a full request queued and no room to send it, which is what holds reading
    /// back when the broker is the slower side. With `flush`, also waits for room for
    /// everything queued.
    pub async fn dispatch(&mut self, cluster: &mut Cluster, flush: bool) -> anyhow::Result<()> {
        self.retry_due(cluster, flush).await?;
        let leaders: Vec<i32> = self.queues.keys().copied().collect();
        for leader in leaders {
            while let Some(queue) = self.queues.get(&leader).filter(|q| !q.batches.is_empty()) {
                let full = queue.bytes >= self.config.max_request_size;
                let in_flight = self.in_flight.get(&leader).map_or(0, VecDeque::len);
                if in_flight < self.config.max_in_flight {
                    self.send_one(cluster, leader).await?;
                } else if full || flush {
                    self.receive_from(cluster, leader).await?;
                } else {
                    break;
                }
            }
        }
        Ok(())
    }

    /// Waits for the oldest response of any broker.
    pub async fn receive_one(&mut self, cluster: &mut Cluster) -> anyhow::Result<()> {
        let leader = self
            .in_flight
            .iter()
            .find(|(_, q)| !q.is_empty())
            .map(|(&leader, _)| leader);
        match leader {
            Some(leader) => self.receive_from(cluster, leader).await,
            None => Ok(()),
        }
    }

    /// Sends everything and waits until all of it is acknowledged.
    pub async fn drain(&mut self, cluster: &mut Cluster) -> anyhow::Result<()> {
        while !self.is_idle() {
            self.dispatch(cluster, true).await?;
            self.receive_one(cluster).await?;
        }
        Ok(())
    }

    /// One request to `leader` from the front of its queue.
    async fn send_one(&mut self, cluster: &mut Cluster, leader: i32) -> anyhow::Result<()> {
        let Some(queue) = self.queues.get_mut(&leader) else {
            return Ok(());
        };
        let mut batches: Vec<Batch> = Vec::new();
        let mut size = 0;
        while let Some(next) = queue.batches.front() {
            let fits =
                batches.is_empty() || size + next.records.len() <= self.config.max_request_size;
            // A partition may have only one batch per request.
            if !fits || batches.iter().any(|b| b.partition == next.partition) {
                break;
            }
            let Some(batch) = queue.batches.pop_front() else {
                break;
            };
            size += batch.records.len();
            queue.bytes -= batch.records.len();
            batches.push(batch);
        }
        if batches.is_empty() {
            return Ok(());
        }
        let conn = cluster.broker(leader).await?;
        let mut version = conn.version::<ProduceRequest>()?;
        if self.config.topic_id.is_nil() {
            version = version.min(FIRST_VERSION_BY_ID - 1);
        }
        let request = ProduceRequest::default()
            .with_acks(self.config.acks)
            .with_timeout_ms(i32::try_from(self.config.timeout.as_millis()).unwrap_or(i32::MAX))
            .with_topic_data(vec![
                TopicProduceData::default()
                    .with_name(self.name.clone())
                    .with_topic_id(self.config.topic_id)
                    .with_partition_data(
                        batches
                            .iter()
                            .map(|b| {
                                PartitionProduceData::default()
                                    .with_index(b.partition as i32)
                                    .with_records(Some(b.records.clone()))
                            })
                            .collect(),
                    ),
            ]);
        let correlation_id = conn.send(&request, version).await?;
        self.stats.requests += 1;
        self.stats.batch_bytes += size as u64;
        if self.config.acks == 0 {
            // No response will come: the records count as sent once written.
            for batch in &batches {
                self.acknowledged(batch, None);
            }
            return Ok(());
        }
        self.in_flight
            .entry(leader)
            .or_default()
            .push_back(InFlight {
                correlation_id,
                version,
                batches,
            });
        Ok(())
    }

    /// Reads the oldest response from `leader` and settles its batches.
    async fn receive_from(&mut self, cluster: &mut Cluster, leader: i32) -> anyhow::Result<()> {
        let Some(request) = self
            .in_flight
            .get_mut(&leader)
            .and_then(VecDeque::pop_front)
        else {
            return Ok(());
        };
        let conn = cluster.broker(leader).await?;
        let response: ProduceResponse = conn
            .receive::<ProduceRequest>(request.version, request.correlation_id)
            .await?;
        self.settle(request, response)
    }

    fn settle(&mut self, request: InFlight, response: ProduceResponse) -> anyhow::Result<()> {
        let mut batches: Vec<Option<Batch>> = request.batches.into_iter().map(Some).collect();
        // Only one topic is sent, so partitions are matched by index (v13 answers
        // with the topic id and an empty name).
        for topic in &response.responses {
            for p in &topic.partition_responses {
                let slot = batches
                    .iter_mut()
                    .find(|b| b.as_ref().is_some_and(|b| b.partition as i32 == p.index));
                let Some(mut batch) = slot.and_then(Option::take) else {
                    bail!(
                        "broker answered for partition {}-{}, which was not in the request",
                        self.config.topic,
                        p.index
                    );
                };
                let message = p.error_message.as_ref().map(|m| m.to_string()).or_else(|| {
                    p.record_errors.first().and_then(|r| {
                        r.batch_index_error_message
                            .as_ref()
                            .map(|m| format!("record {} of the batch: {m}", r.batch_index))
                    })
                });
                match KafkaError::check(p.error_code, message.as_deref()) {
                    Ok(()) => self.acknowledged(&batch, Some(p.base_offset)),
                    Err(e) if retriable(&e) => {
                        let now = Instant::now();
                        let first = *batch.first_failure.get_or_insert(now);
                        if now.saturating_duration_since(first) >= self.config.timeout {
                            return Err(e).with_context(|| {
                                format!(
                                    "cannot produce to {}-{} (still failing after {:?})",
                                    self.config.topic, batch.partition, self.config.timeout
                                )
                            });
                        }
                        self.retry_later(batch);
                    }
                    Err(e) => {
                        return Err(e).with_context(|| {
                            format!(
                                "cannot produce to {}-{} (a batch of {} records, {} bytes)",
                                self.config.topic,
                                batch.partition,
                                batch.count,
                                batch.records.len()
                            )
                        });
                    }
                }
            }
        }
        if let Some(batch) = batches.into_iter().flatten().next() {
            bail!(
                "broker did not answer for partition {}-{}",
                self.config.topic,
                batch.partition
            );
        }
        Ok(())
    }

    fn acknowledged(&mut self, batch: &Batch, base_offset: Option<i64>) {
        self.stats.records += u64::from(batch.count);
        self.stats.batches += 1;
        let Some(acks) = self.stats.partitions.get_mut(batch.partition) else {
            return;
        };
        acks.records += u64::from(batch.count);
        if let Some(base) = base_offset.filter(|&o| o >= 0) {
            let last = base + i64::from(batch.count) - 1;
            acks.offsets = Some(match acks.offsets {
                Some((lo, hi)) => (lo.min(base), hi.max(last)),
                None => (base, last),
            });
        }
    }

    fn retry_later(&mut self, batch: Batch) {
        self.retries.push(batch);
        if self.retry_at.is_none() {
            let backoff = BACKOFF
                .saturating_mul(1 << self.attempt.min(10))
                .min(MAX_BACKOFF);
            self.attempt += 1;
            self.retry_at = Some(Instant::now() + backoff);
        }
    }

    /// When batches wait for a retry and their backoff is over (or `flush`, when there
    /// is nothing else to do but wait for it): refreshes metadata and queues them again,
    /// ahead of newer batches of their partitions.
    async fn retry_due(&mut self, cluster: &mut Cluster, flush: bool) -> anyhow::Result<()> {
        let Some(at) = self.retry_at else {
            return Ok(());
        };
        if Instant::now() < at {
            if !flush {
                return Ok(());
            }
            tokio::time::sleep_until(at.into()).await;
        }
        let topic = cluster.topic(&self.config.topic).await?;
        for p in &topic.partitions {
            if let Some(leader) = usize::try_from(p.partition)
                .ok()
                .and_then(|i| self.config.leaders.get_mut(i))
            {
                *leader = p.leader;
            }
        }
        self.retry_at = None;
        let mut retries = std::mem::take(&mut self.retries);
        // Newest first, so that push_front leaves them oldest first.
        retries.reverse();
        let mut stuck = Vec::new();
        for batch in retries {
            match self.config.leaders.get(batch.partition).copied() {
                Some(leader) if leader >= 0 => {
                    let queue = self.queues.entry(leader).or_default();
                    queue.bytes += batch.records.len();
                    queue.batches.push_front(batch);
                }
                _ => stuck.push(batch),
            }
        }
        for mut batch in stuck {
            let now = Instant::now();
            let first = *batch.first_failure.get_or_insert(now);
            if now.saturating_duration_since(first) >= self.config.timeout {
                return Err(anyhow!(
                    "partition {}-{} has no leader (waited {:?})",
                    self.config.topic,
                    batch.partition,
                    self.config.timeout
                ));
            }
            self.retry_later(batch);
        }
        if self.retries.is_empty() {
            self.attempt = 0;
        }
        Ok(())
    }
}

/// Errors a later attempt can get past. UNKNOWN_TOPIC_OR_PARTITION is one too: the
/// metadata refresh before the retry reports a deleted topic as `unknown topic`.
fn retriable(e: &KafkaError) -> bool {
    const NETWORK_EXCEPTION: i16 = 13;
    const NOT_ENOUGH_REPLICAS: i16 = 19;
    const NOT_ENOUGH_REPLICAS_AFTER_APPEND: i16 = 20;
    const KAFKA_STORAGE_ERROR: i16 = 56;
    e.is_retriable()
        || matches!(
            e.code,
            KafkaError::UNKNOWN_TOPIC_OR_PARTITION
                | NETWORK_EXCEPTION
                | NOT_ENOUGH_REPLICAS
                | NOT_ENOUGH_REPLICAS_AFTER_APPEND
                | KAFKA_STORAGE_ERROR
        )
}
