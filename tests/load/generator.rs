//! The load: connections that stay open and busy until a deadline.
//!
//! Two kinds of connection, as a real deployment has many idle-ish clients and a few
//! busy ones:
//! - a *pinger* sends ApiVersions, or Metadata for one topic, every one to three seconds
//!   (what an idle client's keep-alive and metadata refresh amount to);
//! - a *worker* produces a batch (acks=all) to a random partition, fetches it straight
//!   back and checks it, and now and then parks a long-poll Fetch at the partition's end.
//!
//! Every answer is checked (error codes, offsets, record contents); a failure is counted
//! with its text and ends that connection, which the test then sees as one connection
//! fewer at the end. Every acknowledged batch is returned so that the test can read the
//! whole log back afterwards.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, BrokerId, FetchRequest, FetchResponse,
    MetadataRequest, MetadataResponse, ProduceRequest, ProduceResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use crate::support::records::plain_record;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
};
use tokio::time::Instant;

use super::conn::AsyncConn;

pub const API_VERSIONS_VERSION: i16 = 3;
pub const METADATA_VERSION: i16 = 12;
pub const PRODUCE_VERSION: i16 = 9;
/// The last Fetch version that names topics (v13+ uses topic ids).
pub const FETCH_VERSION: i16 = 12;

/// A pinger's pause between requests, milliseconds (uniform in the range).
const PING_PAUSE_MS: (u64, u64) = (1_000, 3_000);
/// A worker's pause between produce-and-fetch rounds, milliseconds.
const WORK_PAUSE_MS: (u64, u64) = (150, 450);
/// Records per produced batch, and bytes per record value.
const RECORDS_PER_BATCH: (u64, u64) = (1, 8);
const VALUE_BYTES: (u64, u64) = (50, 500);
/// Every this many rounds a worker parks a long-poll Fetch at the partition end.
const LONG_POLL_EVERY: u64 = 4;
const LONG_POLL_WAIT_MS: i32 = 250;
/// Error texts kept for the report (all are counted).
const KEPT_ERRORS: usize = 20;

/// What every connection of one run shares.
pub struct Plan {
    pub topics: Vec<String>,
    pub partitions: i32,
    pub until: Instant,
}

/// Counters of one run.
#[derive(Default)]
pub struct Stats {
    pub requests: Arc<AtomicU64>,
    pub produced_batches: AtomicU64,
    pub produced_records: AtomicU64,
    pub read_back_checks: AtomicU64,
    pub long_polls: AtomicU64,
    pub errors: AtomicU64,
    pub first_errors: Mutex<Vec<String>>,
}

impl Stats {
    pub fn error(&self, who: usize, what: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let mut kept = self.first_errors.lock().expect("error list");
        if kept.len() < KEPT_ERRORS {
            kept.push(format!("connection {who}: {what}"));
        }
    }

    fn request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }
}

/// One acknowledged batch: where it went and how to rebuild its records.
#[derive(Debug, Clone, Copy)]
pub struct ProducedBatch {
    pub topic: usize,
    pub partition: i32,
    pub base_offset: i64,
    pub conn: usize,
    pub seq: u64,
    pub records: u64,
    pub value_len: usize,
}

impl ProducedBatch {
    pub fn end_offset(&self) -> i64 {
        self.base_offset + self.records as i64
    }
}

/// The value of record `i` of batch `seq` of connection `conn`: its identity, padded to
/// `len` bytes with a letter that depends on it, so that a record served from the wrong
/// place cannot pass for the right one.
pub fn record_value(conn: usize, seq: u64, i: u64, len: usize) -> Bytes {
    let mut v = format!("c{conn}-s{seq}-r{i}-").into_bytes();
    let fill = b'a' + ((conn as u64 + seq + i) % 26) as u8;
    v.resize(len.max(v.len()), fill);
    Bytes::from(v)
}

pub fn record_key(conn: usize) -> Bytes {
    Bytes::from(format!("c{conn}"))
}

/// xorshift64*: enough randomness for picking partitions and pauses, seeded per
/// connection so runs differ only by timing.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, (lo, hi): (u64, u64)) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

pub fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

pub fn api_versions_request() -> ApiVersionsRequest {
    ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str("strom-load"))
        .with_client_software_version(StrBytes::from_static_str("1.0"))
}

/// ApiVersions, checked.
pub async fn api_versions(conn: &mut AsyncConn, stats: &Stats) -> Result<(), String> {
    stats.request();
    let r: ApiVersionsResponse = conn
        .call(
            ApiKey::ApiVersions,
            API_VERSIONS_VERSION,
            &api_versions_request(),
        )
        .await?;
    if r.error_code != 0 || r.api_keys.is_empty() {
        return Err(format!(
            "ApiVersions: error {} with {} APIs",
            r.error_code,
            r.api_keys.len()
        ));
    }
    Ok(())
}

/// Pings until the deadline; returns the connection if it is still good.
pub async fn pinger(
    mut conn: AsyncConn,
    id: usize,
    plan: Arc<Plan>,
    stats: Arc<Stats>,
) -> Option<AsyncConn> {
    let mut rng = Rng::new(id as u64 + 1);
    loop {
        let pause = Duration::from_millis(rng.range(PING_PAUSE_MS));
        if Instant::now() + pause >= plan.until {
            tokio::time::sleep_until(plan.until).await;
            return Some(conn);
        }
        tokio::time::sleep(pause).await;
        let result = if rng.next() % 4 == 0 {
            let topic = rng.next() as usize % plan.topics.len();
            metadata(&mut conn, &plan, topic, &stats).await
        } else {
            api_versions(&mut conn, &stats).await
        };
        if let Err(e) = result {
            stats.error(id, e);
            return None;
        }
    }
}

/// Metadata for one topic: every partition must have a leader.
async fn metadata(
    conn: &mut AsyncConn,
    plan: &Plan,
    topic: usize,
    stats: &Stats,
) -> Result<(), String> {
    let name = topic_name(&plan.topics[topic]);
    let request = MetadataRequest::default()
        .with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(name.clone())),
        ]))
        .with_allow_auto_topic_creation(false);
    stats.request();
    let r: MetadataResponse = conn
        .call(ApiKey::Metadata, METADATA_VERSION, &request)
        .await?;
    let ok = r.topics.len() == 1
        && r.topics[0].error_code == 0
        && r.topics[0].name.as_ref() == Some(&name)
        && r.topics[0].partitions.len() == plan.partitions as usize
        && r.topics[0]
            .partitions
            .iter()
            .all(|p| p.error_code == 0 && p.leader_id.0 >= 0);
    if ok {
        Ok(())
    } else {
        Err(format!("Metadata for {}: {r:?}", plan.topics[topic]))
    }
}

/// Produces and reads back until the deadline; returns the connection if it is still
/// good, and every batch the broker acknowledged.
pub async fn worker(
    mut conn: AsyncConn,
    id: usize,
    plan: Arc<Plan>,
    stats: Arc<Stats>,
) -> (Option<AsyncConn>, Vec<ProducedBatch>) {
    let mut rng = Rng::new(id as u64 + 1);
    let mut produced = Vec::new();
    let mut round = 0u64;
    while Instant::now() < plan.until {
        round += 1;
        let batch = ProducedBatch {
            topic: rng.next() as usize % plan.topics.len(),
            partition: (rng.next() % plan.partitions as u64) as i32,
            base_offset: -1,
            conn: id,
            seq: round,
            records: rng.range(RECORDS_PER_BATCH),
            value_len: rng.range(VALUE_BYTES) as usize,
        };
        let result = async {
            let batch = produce(&mut conn, &plan, batch, &stats).await?;
            produced.push(batch);
            let end = read_back(&mut conn, &plan, &batch, &stats).await?;
            if round % LONG_POLL_EVERY == 0 {
                long_poll(&mut conn, &plan, &batch, end, &stats).await?;
            }
            Ok::<(), String>(())
        }
        .await;
        if let Err(e) = result {
            stats.error(id, e);
            return (None, produced);
        }
        let pause = Duration::from_millis(rng.range(WORK_PAUSE_MS));
        tokio::time::sleep_until((Instant::now() + pause).min(plan.until)).await;
    }
    (Some(conn), produced)
}

fn encode_batch(batch: &ProducedBatch) -> Result<Bytes, String> {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let records: Vec<Record> = (0..batch.records)
        .map(|i| {
            plain_record(
                i as i64,
                -1,
                now_ms,
                record_key(batch.conn),
                record_value(batch.conn, batch.seq, i, batch.value_len),
            )
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut buf, records.iter(), &options)
        .map_err(|e| format!("encode batch: {e}"))?;
    Ok(buf.freeze())
}

/// Produces `batch` with acks=all; returns it with the base offset the broker gave it.
async fn produce(
    conn: &mut AsyncConn,
    plan: &Plan,
    mut batch: ProducedBatch,
    stats: &Stats,
) -> Result<ProducedBatch, String> {
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(topic_name(&plan.topics[batch.topic]))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(batch.partition)
                        .with_records(Some(encode_batch(&batch)?)),
                ]),
        ]);
    stats.request();
    let r: ProduceResponse = conn
        .call(ApiKey::Produce, PRODUCE_VERSION, &request)
        .await?;
    let p = r
        .responses
        .first()
        .and_then(|t| t.partition_responses.first())
        .filter(|p| p.index == batch.partition && p.error_code == 0 && p.base_offset >= 0)
        .ok_or_else(|| {
            format!(
                "Produce to {}/{}: {r:?}",
                plan.topics[batch.topic], batch.partition
            )
        })?;
    batch.base_offset = p.base_offset;
    stats.produced_batches.fetch_add(1, Ordering::Relaxed);
    stats
        .produced_records
        .fetch_add(batch.records, Ordering::Relaxed);
    Ok(batch)
}

pub fn fetch_request(
    topic: TopicName,
    partitions: Vec<(i32, i64)>,
    max_wait_ms: i32,
) -> FetchRequest {
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(8 << 20)
        .with_session_id(0)
        // -1: a full fetch that asks for no session.
        .with_session_epoch(-1)
        .with_topics(vec![
            FetchTopic::default().with_topic(topic).with_partitions(
                partitions
                    .into_iter()
                    .map(|(partition, offset)| {
                        FetchPartition::default()
                            .with_partition(partition)
                            .with_current_leader_epoch(-1)
                            .with_fetch_offset(offset)
                            .with_last_fetched_epoch(-1)
                            .with_log_start_offset(-1)
                            .with_partition_max_bytes(1 << 20)
                    })
                    .collect(),
            ),
        ])
}

/// One partition's records from a single-partition fetch, with its high watermark.
fn fetched_records(r: &FetchResponse, partition: i32) -> Result<(Vec<Record>, i64), String> {
    let p = r
        .responses
        .first()
        .and_then(|t| t.partitions.first())
        .filter(|p| r.error_code == 0 && p.partition_index == partition && p.error_code == 0)
        .ok_or_else(|| format!("Fetch of partition {partition}: {r:?}"))?;
    let mut bytes = p.records.clone().unwrap_or_default();
    let records = RecordBatchDecoder::decode_all(&mut bytes)
        .map_err(|e| format!("Fetch of partition {partition}: undecodable records: {e}"))?
        .into_iter()
        .flat_map(|set| set.records)
        .collect();
    Ok((records, p.high_watermark))
}

/// Fetches from the batch's base offset and checks its records are there; returns the
/// high watermark.
async fn read_back(
    conn: &mut AsyncConn,
    plan: &Plan,
    batch: &ProducedBatch,
    stats: &Stats,
) -> Result<i64, String> {
    let request = fetch_request(
        topic_name(&plan.topics[batch.topic]),
        vec![(batch.partition, batch.base_offset)],
        0,
    );
    stats.request();
    let r: FetchResponse = conn.call(ApiKey::Fetch, FETCH_VERSION, &request).await?;
    let (records, high_watermark) = fetched_records(&r, batch.partition)?;
    check_batch(&records, batch)?;
    if high_watermark < batch.end_offset() {
        return Err(format!("high watermark {high_watermark} below {batch:?}"));
    }
    stats.read_back_checks.fetch_add(1, Ordering::Relaxed);
    Ok(high_watermark)
}

/// The first records of `records` are exactly `batch`'s.
pub fn check_batch(records: &[Record], batch: &ProducedBatch) -> Result<(), String> {
    for i in 0..batch.records {
        let expected_offset = batch.base_offset + i as i64;
        let Some(r) = records.get(i as usize) else {
            return Err(format!("record {expected_offset} of {batch:?} missing"));
        };
        let value = record_value(batch.conn, batch.seq, i, batch.value_len);
        if r.offset != expected_offset
            || r.value.as_ref() != Some(&value)
            || r.key.as_ref() != Some(&record_key(batch.conn))
        {
            return Err(format!(
                "record at {} is not record {i} of {batch:?}: key {:?}, value {:?}",
                r.offset, r.key, r.value
            ));
        }
    }
    Ok(())
}

/// A Fetch parked at `offset` (the partition end as last seen): answered after the wait
/// or by another worker's produce; whatever comes back must start at `offset` or later.
async fn long_poll(
    conn: &mut AsyncConn,
    plan: &Plan,
    batch: &ProducedBatch,
    offset: i64,
    stats: &Stats,
) -> Result<(), String> {
    let request = fetch_request(
        topic_name(&plan.topics[batch.topic]),
        vec![(batch.partition, offset)],
        LONG_POLL_WAIT_MS,
    );
    stats.request();
    let r: FetchResponse = conn.call(ApiKey::Fetch, FETCH_VERSION, &request).await?;
    let (records, _) = fetched_records(&r, batch.partition)?;
    if let Some(first) = records.first().filter(|r| r.offset < offset) {
        return Err(format!(
            "long poll at {offset} returned offset {}",
            first.offset
        ));
    }
    stats.long_polls.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

/// Connects and checks the connection is served.
pub async fn open(addr: SocketAddr, stats: &Stats) -> Result<AsyncConn, String> {
    let mut conn = AsyncConn::open(addr).await?;
    api_versions(&mut conn, stats).await?;
    Ok(conn)
}
