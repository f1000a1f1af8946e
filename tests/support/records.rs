//! Topics, record batches, Produce and Fetch over a raw [`Conn`], for tests that must
//! control every byte a client sends (limits, hostile bodies, load beside attackers).

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::produce_response::PartitionProduceResponse;
use kafka_protocol::messages::{
    ApiKey, BrokerId, CreateTopicsRequest, CreateTopicsResponse, FetchRequest, FetchResponse,
    ProduceRequest, ProduceResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use super::wire::Conn;

pub const PRODUCE_VERSION: i16 = 9;
/// The last Fetch version that names topics (v13+ uses ids).
pub const FETCH_VERSION: i16 = 12;

pub fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

/// Creates `name` with `partitions` partitions; panics on any error.
pub fn create_topic(conn: &mut Conn, name: &str, partitions: i32) {
    let created: CreateTopicsResponse = conn.call(
        ApiKey::CreateTopics,
        5,
        &CreateTopicsRequest::default()
            .with_timeout_ms(10_000)
            .with_topics(vec![
                CreatableTopic::default()
                    .with_name(topic_name(name))
                    .with_num_partitions(partitions)
                    .with_replication_factor(-1),
            ]),
    );
    assert_eq!(
        created.topics[0].error_code, 0,
        "create {name}: {created:?}"
    );
}

/// A record with no producer id and no headers, `offset` into its batch.
pub fn plain_record(
    offset: i64,
    sequence: i32,
    timestamp: i64,
    key: Bytes,
    value: Bytes,
) -> Record {
    Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset,
        sequence,
        timestamp,
        key: Some(key),
        value: Some(value),
        headers: Default::default(),
    }
}

/// One uncompressed v2 batch of `count` records; record `i` has key `{tag}-{i}` and a
/// value of `value_size` bytes.
pub fn batch(tag: &str, count: usize, value_size: usize) -> Bytes {
    let records: Vec<Record> = (0..count)
        .map(|i| {
            // kafka-protocol starts a new batch wherever `offset - sequence` changes;
            // this keeps it constant (and the batch's base sequence -1: no producer id).
            plain_record(
                i as i64,
                i as i32 - 1,
                1_700_000_000_000,
                Bytes::from(format!("{tag}-{i}")),
                Bytes::from(vec![b'v'; value_size]),
            )
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        records.iter(),
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .expect("encode record batch");
    buf.freeze()
}

/// A Produce request (acks 1) of `records` to one partition.
pub fn produce_request(topic: &str, partition: i32, records: Bytes) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(topic_name(topic))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(partition)
                        .with_records(Some(records)),
                ]),
        ])
}

/// Produces and returns the one partition's answer (errors included).
pub fn produce(
    conn: &mut Conn,
    topic: &str,
    partition: i32,
    records: Bytes,
) -> PartitionProduceResponse {
    let r: ProduceResponse = conn.call(
        ApiKey::Produce,
        PRODUCE_VERSION,
        &produce_request(topic, partition, records),
    );
    r.responses[0].partition_responses[0].clone()
}

/// A Fetch (no wait) of one partition from `offset`.
pub fn fetch_request(
    topic: &str,
    partition: i32,
    offset: i64,
    max_bytes: i32,
    partition_max_bytes: i32,
) -> FetchRequest {
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(0)
        .with_max_bytes(max_bytes)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(topic_name(topic))
                .with_partitions(vec![
                    FetchPartition::default()
                        .with_partition(partition)
                        .with_current_leader_epoch(-1)
                        .with_fetch_offset(offset)
                        .with_last_fetched_epoch(-1)
                        .with_log_start_offset(-1)
                        .with_partition_max_bytes(partition_max_bytes),
                ]),
        ])
}

/// Fetches and returns the one partition's answer.
pub fn fetch(conn: &mut Conn, request: &FetchRequest) -> PartitionData {
    let r: FetchResponse = conn.call(ApiKey::Fetch, FETCH_VERSION, request);
    assert_eq!(r.error_code, 0, "fetch error: {r:?}");
    r.responses[0].partitions[0].clone()
}

/// The records of a fetched partition, decoded.
pub fn decode(p: &PartitionData) -> Vec<Record> {
    let mut bytes = p.records.clone().expect("non-null records");
    RecordBatchDecoder::decode_all(&mut bytes)
        .expect("decode fetched batches")
        .into_iter()
        .flat_map(|set| set.records)
        .collect()
}

/// CRC-32C (Castagnoli), as record batches use it: for tests that alter a batch
/// header and must keep the batch otherwise valid.
pub fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// Sets a 4-byte big-endian field of a v2 batch at `offset` and fixes its CRC
/// (over the bytes from the attributes, offset 21, to the end).
pub fn patch_batch_i32(batch: &Bytes, offset: usize, value: i32) -> Bytes {
    let mut b = batch.to_vec();
    b[offset..offset + 4].copy_from_slice(&value.to_be_bytes());
    let crc = crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    Bytes::from(b)
}

/// Offsets of the v2 batch header fields the tests alter.
pub const BATCH_LENGTH_OFFSET: usize = 8;
pub const RECORDS_COUNT_OFFSET: usize = 57;
