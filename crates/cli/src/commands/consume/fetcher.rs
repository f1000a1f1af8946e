//! Fetching one topic's partitions: a position per partition, long-poll Fetch requests
//! to each partition's leader (sent to every leader before any answer is awaited, so
//! several leaders cost one poll interval, not one each), and decoding of the record
//! batches that come back.
//!
//! Batches are returned whole, so the first one can start before the position; records
//! below the position are dropped. A response may end with a partial batch (cut at the
//! byte limit); it is ignored and fetched again from its start next time. Control
//! batches (transaction markers) are skipped, and the position moves past them.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::{Buf, Bytes};
use kafka_protocol::messages::{
    FetchRequest, FetchResponse, TopicName,
    fetch_request::{FetchPartition, FetchTopic},
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{Record, RecordBatchDecoder};
use uuid::Uuid;

use crate::client::{Cluster, KafkaError, OffsetSpec, TopicInfo};

use super::start::list_offsets_by_partition;

/// How long a fetch waits for data before answering empty (Kafka's fetch.max.wait.ms).
pub const MAX_WAIT: Duration = Duration::from_millis(500);
/// Per-partition byte limit (Kafka's max.partition.fetch.bytes).
const PARTITION_MAX_BYTES: i32 = 1024 * 1024;
/// Whole-response byte limit (Kafka's fetch.max.bytes).
const MAX_BYTES: i32 = 50 * 1024 * 1024;
/// Pause after errors that a metadata refresh should fix, so a broken partition is not
/// polled in a tight loop.
const RETRY_BACKOFF: Duration = Duration::from_millis(200);

const OFFSET_OUT_OF_RANGE: i16 = 1;
const REPLICA_NOT_AVAILABLE: i16 = 9;
const KAFKA_STORAGE_ERROR: i16 = 56;
const FENCED_LEADER_EPOCH: i16 = 74;
const UNKNOWN_LEADER_EPOCH: i16 = 75;
const OFFSET_NOT_AVAILABLE: i16 = 78;
const UNKNOWN_TOPIC_ID: i16 = 100;

/// Size of a v2 record batch header: base offset through record count.
const BATCH_HEADER_LEN: usize = 61;
/// Bytes before the batch length field's payload: base offset and the length itself.
const LOG_OVERHEAD: usize = 12;

/// Records fetched from one partition.
pub struct Fetched {
    pub partition: i32,
    /// Data records at or after the position, in offset order.
    pub records: Vec<Record>,
    /// The offset after the last complete batch, control batches included: where the
    /// position goes once every record here is consumed.
    pub next_offset: Option<i64>,
}

struct PartitionState {
    position: i64,
    /// From the last fetch response; `None` until the partition was fetched once.
    high_watermark: Option<i64>,
}

/// Positions and leaders of the partitions being read.
pub struct Fetcher {
    topic: String,
    topic_id: Uuid,
    /// partition → leader node id (-1 when leaderless).
    leaders: BTreeMap<i32, i32>,
    partitions: BTreeMap<i32, PartitionState>,
    reset: OffsetSpec,
    /// Rotates the partition order of each request, so that a byte limit reached
    /// early never starves the partitions listed last.
    rotation: usize,
    /// Nodes with a request sent but its response not read; their connections are
    /// dropped if the fetch is abandoned half-way.
    in_flight: Vec<i32>,
    /// When fetching started failing at the connection level, for giving up after the
    /// request timeout.
    failing_since: Option<Instant>,
    request_timeout: Duration,
}

impl Fetcher {
    /// A fetcher of `topic` with nothing assigned; out-of-range positions go to `reset`;
    /// brokers may be unreachable for up to `request_timeout` before fetching fails.
    pub fn new(topic: &TopicInfo, reset: OffsetSpec, request_timeout: Duration) -> Fetcher {
        let mut fetcher = Fetcher {
            topic: topic.name.clone(),
            topic_id: Uuid::nil(),
            leaders: BTreeMap::new(),
            partitions: BTreeMap::new(),
            reset,
            rotation: 0,
            in_flight: Vec::new(),
            failing_since: None,
            request_timeout,
        };
        fetcher.update_metadata(topic);
        fetcher
    }

    /// Takes partition leaders and the topic id from fresh metadata.
    pub fn update_metadata(&mut self, topic: &TopicInfo) {
        // A broker without topic ids reports none; Fetch then stays below v13.
        self.topic_id = topic.topic_id;
        self.leaders = topic
            .partitions
            .iter()
            .map(|p| (p.partition, p.leader))
            .collect();
    }

    /// Replaces the partitions being read and their positions.
    pub fn assign(&mut self, positions: BTreeMap<i32, i64>) {
        self.partitions = positions
            .into_iter()
            .map(|(p, position)| {
                let state = PartitionState {
                    position,
                    high_watermark: None,
                };
                (p, state)
            })
            .collect();
    }

    /// The next offset to read of every partition.
    pub fn positions(&self) -> BTreeMap<i32, i64> {
        self.partitions
            .iter()
            .map(|(&p, s)| (p, s.position))
            .collect()
    }

    /// Moves `partition`'s position forward to `next` (never back).
    pub fn advance(&mut self, partition: i32, next: i64) {
        if let Some(state) = self.partitions.get_mut(&partition) {
            state.position = state.position.max(next);
        }
    }

    /// Whether every partition has been read up to its high watermark.
    pub fn at_end(&self) -> bool {
        self.partitions
            .values()
            .all(|s| s.high_watermark.is_some_and(|hw| s.position >= hw))
    }

    /// After a fetch was cancelled half-way: drops the connections with a response
    /// still to come, which can no longer be matched to a request.
    pub fn abandon(&mut self, cluster: &mut Cluster) {
        for node in self.in_flight.drain(..) {
            cluster.forget(node);
        }
    }

    /// One long-poll round: a Fetch to every leader, then every response.
    pub async fn fetch(&mut self, cluster: &mut Cluster) -> anyhow::Result<Vec<Fetched>> {
        if self.partitions.is_empty() {
            // Nothing assigned (a group member without partitions): idle a poll interval.
            tokio::time::sleep(MAX_WAIT).await;
            return Ok(Vec::new());
        }
        let mut order: Vec<i32> = self.partitions.keys().copied().collect();
        let len = order.len();
        order.rotate_left(self.rotation % len);
        self.rotation = self.rotation.wrapping_add(1);

        let mut refresh = false;
        let mut by_leader: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
        for p in order {
            match self.leaders.get(&p) {
                Some(&leader) if leader >= 0 => by_leader.entry(leader).or_default().push(p),
                _ => refresh = true,
            }
        }
        let mut sent = Vec::new();
        for (node, partitions) in &by_leader {
            match self.send(cluster, *node, partitions).await {
                Ok((version, id)) => {
                    self.in_flight.push(*node);
                    sent.push((*node, version, id));
                }
                Err(e) => {
                    self.connection_failed(cluster, *node, e)?;
                    refresh = true;
                }
            }
        }
        let mut out = Vec::new();
        let mut resets = Vec::new();
        for (node, version, id) in sent {
            let response = match cluster.broker(node).await {
                Ok(conn) => conn.receive::<FetchRequest>(version, id).await,
                Err(e) => Err(e),
            };
            self.in_flight.retain(|&n| n != node);
            match response {
                Ok(response) => {
                    self.failing_since = None;
                    refresh |= self.absorb(response, version, &mut out, &mut resets)?;
                }
                Err(e) => {
                    self.connection_failed(cluster, node, e)?;
                    refresh = true;
                }
            }
        }
        if !resets.is_empty() {
            self.reset_positions(cluster, &resets).await?;
        }
        if refresh {
            tokio::time::sleep(RETRY_BACKOFF).await;
            match cluster.topic(&self.topic).await {
                Ok(topic) => self.update_metadata(&topic),
                // While brokers are unreachable, within the same time limit.
                Err(e) => self.tolerate(e)?,
            }
        }
        Ok(out)
    }

    /// Sends one Fetch for `partitions` to `node`; returns (version, correlation id).
    async fn send(
        &self,
        cluster: &mut Cluster,
        node: i32,
        partitions: &[i32],
    ) -> anyhow::Result<(i16, i32)> {
        let conn = cluster.broker(node).await?;
        let mut version = conn.version::<FetchRequest>()?;
        if self.topic_id.is_nil() {
            // v13 names topics by id only.
            version = version.min(12);
        }
        let topic = if version >= 13 {
            FetchTopic::default().with_topic_id(self.topic_id)
        } else {
            FetchTopic::default().with_topic(TopicName(StrBytes::from_string(self.topic.clone())))
        };
        let topic = topic.with_partitions(
            partitions
                .iter()
                .filter_map(|p| {
                    let state = self.partitions.get(p)?;
                    Some(
                        FetchPartition::default()
                            .with_partition(*p)
                            .with_fetch_offset(state.position)
                            .with_partition_max_bytes(PARTITION_MAX_BYTES),
                    )
                })
                .collect(),
        );
        // Sessionless full fetches (session id 0, epoch -1, the defaults); read
        // uncommitted like Kafka's console consumer.
        let request = FetchRequest::default()
            .with_max_wait_ms(MAX_WAIT.as_millis() as i32)
            .with_min_bytes(1)
            .with_max_bytes(MAX_BYTES)
            .with_isolation_level(0)
            .with_topics(vec![topic]);
        let id = conn.send(&request, version).await?;
        Ok((version, id))
    }

    /// Gives up once connections have failed for longer than the request timeout;
    /// until then drops the connection so the next round reconnects.
    fn connection_failed(
        &mut self,
        cluster: &mut Cluster,
        node: i32,
        error: anyhow::Error,
    ) -> anyhow::Result<()> {
        cluster.forget(node);
        self.in_flight.retain(|&n| n != node);
        self.tolerate(error)
    }

    /// `Ok` while failures have lasted less than the request timeout.
    fn tolerate(&mut self, error: anyhow::Error) -> anyhow::Result<()> {
        let since = *self.failing_since.get_or_insert_with(Instant::now);
        if since.elapsed() >= self.request_timeout {
            return Err(error).context(format!("cannot fetch from {}", self.topic));
        }
        Ok(())
    }

    /// Takes one Fetch response's records and errors. Returns whether metadata must be
    /// refreshed; partitions out of range go to `resets`.
    fn absorb(
        &mut self,
        response: FetchResponse,
        version: i16,
        out: &mut Vec<Fetched>,
        resets: &mut Vec<i32>,
    ) -> anyhow::Result<bool> {
        KafkaError::check(response.error_code, None)
            .with_context(|| format!("cannot fetch from {}", self.topic))?;
        let mut refresh = false;
        for topic in response.responses {
            let ours = if version >= 13 {
                topic.topic_id == self.topic_id
            } else {
                topic.topic.0.as_str() == self.topic
            };
            if !ours {
                continue;
            }
            for p in topic.partitions {
                let partition = p.partition_index;
                let Some(state) = self.partitions.get_mut(&partition) else {
                    continue;
                };
                match p.error_code {
                    0 => {}
                    OFFSET_OUT_OF_RANGE => {
                        resets.push(partition);
                        continue;
                    }
                    KafkaError::UNKNOWN_TOPIC_OR_PARTITION
                    | KafkaError::LEADER_NOT_AVAILABLE
                    | KafkaError::NOT_LEADER_OR_FOLLOWER
                    | REPLICA_NOT_AVAILABLE
                    | KAFKA_STORAGE_ERROR
                    | FENCED_LEADER_EPOCH
                    | UNKNOWN_LEADER_EPOCH
                    | OFFSET_NOT_AVAILABLE
                    | UNKNOWN_TOPIC_ID => {
                        refresh = true;
                        continue;
                    }
                    code => {
                        return Err(KafkaError::new(code))
                            .with_context(|| format!("cannot fetch {}-{partition}", self.topic));
                    }
                }
                state.high_watermark = Some(p.high_watermark);
                let Some(data) = p.records else { continue };
                let (records, next_offset) =
                    decode_batches(data, state.position).with_context(|| {
                        format!("{}-{partition} at offset {}", self.topic, state.position)
                    })?;
                out.push(Fetched {
                    partition,
                    records,
                    next_offset,
                });
            }
        }
        Ok(refresh)
    }

    /// Moves out-of-range positions to the reset offset.
    async fn reset_positions(
        &mut self,
        cluster: &mut Cluster,
        partitions: &[i32],
    ) -> anyhow::Result<()> {
        let keys: Vec<(String, i32)> = partitions
            .iter()
            .map(|&p| (self.topic.clone(), p))
            .collect();
        let leaders = keys
            .iter()
            .map(|k| (k.clone(), self.leaders.get(&k.1).copied().unwrap_or(-1)))
            .collect();
        let offsets = list_offsets_by_partition(cluster, &keys, &leaders, self.reset).await?;
        for (p, offset) in offsets {
            if let Some(state) = self.partitions.get_mut(&p) {
                state.position = offset;
            }
        }
        Ok(())
    }
}

/// Decodes the complete v2 batches in `data`: the data records at or after `position`
/// and the offset after the last complete batch. A trailing partial batch is ignored.
pub fn decode_batches(
    mut data: Bytes,
    position: i64,
) -> anyhow::Result<(Vec<Record>, Option<i64>)> {
    let mut records = Vec::new();
    let mut next_offset = None;
    while data.len() >= LOG_OVERHEAD {
        let base_offset = be_i64(&data[0..8]);
        let batch_len = be_i32(&data[8..12]);
        let total = usize::try_from(batch_len)
            .ok()
            .filter(|&n| n >= BATCH_HEADER_LEN - LOG_OVERHEAD)
            .map(|n| n + LOG_OVERHEAD)
            .with_context(|| {
                format!("corrupt record batch at offset {base_offset}: length {batch_len}")
            })?;
        if data.len() < total {
            break;
        }
        let magic = data[16];
        if magic != 2 {
            bail!(
                "record batch at offset {base_offset} has magic {magic}; only v2 batches are supported"
            );
        }
        let attributes = be_i16(&data[21..23]);
        let last_offset_delta = be_i32(&data[23..27]);
        let max_timestamp = be_i64(&data[35..43]);
        let mut batch = data.split_to(total);
        let end = base_offset + i64::from(last_offset_delta) + 1;
        next_offset = Some(end);
        let control = attributes & 0x20 != 0;
        if control || end <= position {
            // Transaction markers are not data, and a batch wholly before the position
            // was already read: neither needs decompressing.
            continue;
        }
        let set = RecordBatchDecoder::decode(&mut batch)
            .with_context(|| format!("cannot decode the record batch at offset {base_offset}"))?;
        let log_append_time = attributes & 0x08 != 0;
        for mut record in set.records {
            if record.offset < position || record.control {
                continue;
            }
            if log_append_time {
                // The broker's append time is the batch's max timestamp, for every record.
                record.timestamp = max_timestamp;
            }
            records.push(record);
        }
    }
    Ok((records, next_offset))
}

fn be_i64(bytes: &[u8]) -> i64 {
    (&bytes[..8]).get_i64()
}

fn be_i32(bytes: &[u8]) -> i32 {
    (&bytes[..4]).get_i32()
}

fn be_i16(bytes: &[u8]) -> i16 {
    (&bytes[..2]).get_i16()
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;
    use kafka_protocol::records::{
        Compression, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };

    use super::*;

    fn record(offset: i64) -> Record {
        Record {
            transactional: false,
            control: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset,
            // The encoder starts a new batch where offset - sequence changes.
            sequence: offset as i32,
            timestamp: 1000 + offset,
            key: None,
            value: Some(Bytes::from(format!("v{offset}"))),
            headers: Default::default(),
            delete_horizon: false,
        }
    }

    fn batch(offsets: std::ops::Range<i64>, compression: Compression) -> BytesMut {
        let records: Vec<Record> = offsets.map(record).collect();
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            records.iter(),
            &RecordEncodeOptions {
                version: 2,
                compression,
            },
        )
        .unwrap();
        buf
    }

    fn values(records: &[Record]) -> Vec<String> {
        records
            .iter()
            .map(|r| String::from_utf8(r.value.clone().unwrap().to_vec()).unwrap())
            .collect()
    }

    #[test]
    fn records_before_the_position_and_partial_batches_are_dropped() {
        let mut data = batch(0..3, Compression::None);
        data.extend_from_slice(&batch(3..5, Compression::Gzip));
        let third = batch(5..8, Compression::Lz4);
        data.extend_from_slice(&third[..third.len() - 4]);
        let (records, next) = decode_batches(data.clone().freeze(), 2).unwrap();
        assert_eq!(values(&records), ["v2", "v3", "v4"]);
        assert_eq!(next, Some(5));
        // A position past a whole batch skips it without decoding.
        let (records, next) = decode_batches(data.freeze(), 3).unwrap();
        assert_eq!(values(&records), ["v3", "v4"]);
        assert_eq!(next, Some(5));
        // Only a partial batch: nothing, and no progress.
        let (records, next) = decode_batches(third.freeze().slice(..20), 5).unwrap();
        assert!(records.is_empty() && next.is_none());
    }

    #[test]
    fn control_batches_are_skipped_but_advance() {
        let mut data = batch(0..2, Compression::Zstd);
        // Set the control bit in the attributes (the CRC covers attributes, so the batch
        // is never decoded: control batches must not be).
        data[22] |= 0x20;
        let (records, next) = decode_batches(data.freeze(), 0).unwrap();
        assert!(records.is_empty());
        assert_eq!(next, Some(2));
    }

    #[test]
    fn corrupt_lengths_and_old_magic_are_errors() {
        let mut data = batch(0..1, Compression::None);
        data[8..12].copy_from_slice(&(-1i32).to_be_bytes());
        assert!(decode_batches(data.freeze(), 0).is_err());
        let mut data = batch(0..1, Compression::Snappy);
        data[16] = 1;
        let e = decode_batches(data.freeze(), 0).unwrap_err().to_string();
        assert!(e.contains("magic 1"), "{e}");
    }
}
