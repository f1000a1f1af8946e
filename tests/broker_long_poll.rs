//! Fetch long poll against a real `strom serve`, over raw Kafka protocol.
//!
//! The requests are encoded with the `kafka-protocol` crate and sent over plain
//! `std::net::TcpStream`s (every read and write has a timeout), so what is measured is
//! the broker, not a client library's own batching or polling:
//!
//! - an idle Fetch (`max_wait_ms` 500, `min_bytes` 1) on an empty partition is held for
//!   the whole wait and then answered with an empty (not null) record set;
//! - a Fetch parked with `max_wait_ms` 10,000 is answered as soon as a Produce (acks=1)
//!   on another connection appends to its partition: the time from the produce response
//!   to the fetch response is printed (min / median / max over several rounds) and must
//!   stay under 200 ms;
//! - a Fetch for data that is already there is not held at all;
//! - SIGTERM with a parked Fetch exits promptly instead of waiting out the fetch's
//!   `max_wait_ms`.
//!
//! The topic is auto-created by a Metadata request (`-o num.partitions=1`).
//!
//! Declared as a `[[test]]` of `strom-cli` (crates/cli/Cargo.toml) for
//! `CARGO_BIN_EXE_strom`.

#[path = "support/mod.rs"]
mod support;

use std::io::Read;
use std::thread;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::produce_response::PartitionProduceResponse;
use kafka_protocol::messages::{
    ApiKey, FetchRequest, FetchResponse, MetadataRequest, MetadataResponse, ProduceRequest,
    ProduceResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
};
use support::Broker;
use support::records::plain_record;
use support::wire::Conn;

const TOPIC: &str = "long-poll";

const METADATA_VERSION: i16 = 12;
const PRODUCE_VERSION: i16 = 9;
/// The last version that names topics (v13+ uses topic ids).
const FETCH_VERSION: i16 = 12;

/// Idle fetch: its wait, and the window its answer must arrive in.
const IDLE_WAIT_MS: i32 = 500;
const IDLE_MIN: Duration = Duration::from_millis(490);
const IDLE_MAX: Duration = Duration::from_secs(2);

/// Parked fetch: its wait, and how soon after the produce response it must be answered.
const PARKED_WAIT_MS: i32 = 10_000;
const WAKE_LIMIT: Duration = Duration::from_millis(200);
/// How long the fetch is left parked before the produce is sent.
const PARK_FOR: Duration = Duration::from_millis(300);
const ROUNDS: usize = 5;

fn topic_name() -> TopicName {
    TopicName(StrBytes::from_static_str(TOPIC))
}

/// Auto-creates the topic through Metadata and waits until partition 0 has a leader.
fn create_topic(conn: &mut Conn) {
    let request = MetadataRequest::default()
        .with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(topic_name())),
        ]))
        .with_allow_auto_topic_creation(true);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let response: MetadataResponse = conn.call(ApiKey::Metadata, METADATA_VERSION, &request);
        let topic = response
            .topics
            .iter()
            .find(|t| t.name.as_ref() == Some(&topic_name()))
            .expect("topic in metadata response");
        if topic.error_code == 0
            && topic.partitions.len() == 1
            && topic.partitions[0].error_code == 0
            && topic.partitions[0].leader_id.0 >= 0
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "topic {TOPIC} not ready after 10 s: {topic:?}"
        );
        thread::sleep(Duration::from_millis(100));
    }
}

fn fetch_request(offset: i64, max_wait_ms: i32) -> FetchRequest {
    FetchRequest::default()
        .with_replica_id(kafka_protocol::messages::BrokerId(-1))
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(50 << 20)
        .with_session_id(0)
        // -1: a full fetch that asks for no session.
        .with_session_epoch(-1)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(topic_name())
                .with_partitions(vec![
                    FetchPartition::default()
                        .with_partition(0)
                        .with_current_leader_epoch(-1)
                        .with_fetch_offset(offset)
                        .with_last_fetched_epoch(-1)
                        .with_log_start_offset(-1)
                        .with_partition_max_bytes(1 << 20),
                ]),
        ])
}

/// The one partition of a fetch response, checked for errors.
fn only_partition(response: &FetchResponse) -> &PartitionData {
    assert_eq!(response.error_code, 0, "fetch error: {response:?}");
    assert_eq!(response.responses.len(), 1, "{response:?}");
    let topic = &response.responses[0];
    assert_eq!(topic.topic, topic_name());
    assert_eq!(topic.partitions.len(), 1, "{response:?}");
    let p = &topic.partitions[0];
    assert_eq!(p.partition_index, 0);
    assert_eq!(p.error_code, 0, "partition error: {p:?}");
    p
}

fn record(round: usize) -> Record {
    plain_record(
        0,
        -1,
        1_700_000_000_000 + round as i64,
        Bytes::from(format!("key-{round}")),
        Bytes::from(format!("value-{round}")),
    )
}

fn produce_request(round: usize) -> ProduceRequest {
    let mut batch = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut batch,
        [record(round)].iter(),
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .expect("encode record batch");
    ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(topic_name())
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(batch.freeze())),
                ]),
        ])
}

fn produced_partition(response: &ProduceResponse) -> &PartitionProduceResponse {
    assert_eq!(response.responses.len(), 1, "{response:?}");
    let topic = &response.responses[0];
    assert_eq!(topic.partition_responses.len(), 1, "{response:?}");
    let p = &topic.partition_responses[0];
    assert_eq!(p.error_code, 0, "produce error: {p:?}");
    p
}

/// The records of a fetched partition, decoded.
fn decode_records(p: &PartitionData) -> Vec<Record> {
    let mut bytes = p.records.clone().expect("non-null records");
    RecordBatchDecoder::decode_all(&mut bytes)
        .expect("decode fetched batches")
        .into_iter()
        .flat_map(|set| set.records)
        .collect()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// One parked-fetch round at `offset`: what the fetch returned and how long after the
/// produce response it arrived.
struct Round {
    /// Fetch response arrival minus produce response arrival (negative if the fetch
    /// response was read first).
    wake_after_produce_ms: f64,
    /// Fetch response arrival minus produce request sent.
    wake_after_send_ms: f64,
    fetch_total: Duration,
}

fn parked_fetch_round(broker: &Broker, producer: &mut Conn, round: usize) -> Round {
    let offset = round as i64;
    let mut fetcher = Conn::open(broker.addr());
    let fetch_sent = Instant::now();
    let id = fetcher.send(
        ApiKey::Fetch,
        FETCH_VERSION,
        &fetch_request(offset, PARKED_WAIT_MS),
    );
    let waiter = thread::spawn(move || {
        let response: FetchResponse = fetcher.receive(ApiKey::Fetch, FETCH_VERSION, id);
        (response, Instant::now())
    });

    thread::sleep(PARK_FOR);
    assert!(
        !waiter.is_finished(),
        "round {round}: the fetch at offset {offset} was answered before anything was \
         produced (it should wait up to {PARKED_WAIT_MS} ms)"
    );
    let produce_sent = Instant::now();
    let produced: ProduceResponse =
        producer.call(ApiKey::Produce, PRODUCE_VERSION, &produce_request(round));
    let produce_done = Instant::now();
    let p = produced_partition(&produced);
    assert_eq!(p.base_offset, offset, "round {round}: produce base offset");

    let (fetched, fetch_done) = waiter.join().expect("fetch thread");
    let p = only_partition(&fetched);
    assert_eq!(
        p.high_watermark,
        offset + 1,
        "round {round}: high watermark"
    );
    let records = decode_records(p);
    assert_eq!(records.len(), 1, "round {round}: records {records:?}");
    assert_eq!(records[0].offset, offset);
    assert_eq!(records[0].key, record(round).key);
    assert_eq!(records[0].value, record(round).value);

    let signed_ms = |later: Instant, earlier: Instant| {
        if later >= earlier {
            ms(later - earlier)
        } else {
            -ms(earlier - later)
        }
    };
    Round {
        wake_after_produce_ms: signed_ms(fetch_done, produce_done),
        wake_after_send_ms: signed_ms(fetch_done, produce_sent),
        fetch_total: fetch_done - fetch_sent,
    }
}

fn summary(mut values: Vec<f64>) -> String {
    values.sort_by(f64::total_cmp);
    format!(
        "min {:.2} ms, median {:.2} ms, max {:.2} ms",
        values[0],
        values[values.len() / 2],
        values[values.len() - 1]
    )
}

#[test]
fn fetch_long_poll_waits_and_wakes_on_produce() {
    let mut broker = Broker::builder().arg("-o").arg("num.partitions=1").start();
    let mut control = Conn::open(broker.addr());
    create_topic(&mut control);

    // (a) An idle fetch is held for its whole max_wait_ms, then answered empty.
    let mut idle = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        let response: FetchResponse = control.call(
            ApiKey::Fetch,
            FETCH_VERSION,
            &fetch_request(0, IDLE_WAIT_MS),
        );
        let elapsed = started.elapsed();
        let p = only_partition(&response);
        assert_eq!(
            p.records.as_ref().map(Bytes::len),
            Some(0),
            "idle fetch must return an empty, non-null record set: {p:?}"
        );
        assert_eq!(p.high_watermark, 0);
        assert!(
            (IDLE_MIN..IDLE_MAX).contains(&elapsed),
            "idle fetch with max_wait_ms={IDLE_WAIT_MS} answered after {elapsed:?} \
             (expected {IDLE_MIN:?}..{IDLE_MAX:?})"
        );
        idle.push(ms(elapsed));
    }
    println!(
        "idle fetch (max_wait_ms={IDLE_WAIT_MS}, min_bytes=1, empty partition): answered after {}",
        summary(idle)
    );

    // (b) A parked fetch wakes as soon as a produce on another connection lands.
    let mut producer = Conn::open(broker.addr());
    let rounds: Vec<Round> = (0..ROUNDS)
        .map(|round| parked_fetch_round(&broker, &mut producer, round))
        .collect();
    for (i, r) in rounds.iter().enumerate() {
        println!(
            "round {i}: fetch answered {:.2} ms after the produce response ({:.2} ms after \
             the produce request was sent; fetch held {:.1} ms in all)",
            r.wake_after_produce_ms,
            r.wake_after_send_ms,
            ms(r.fetch_total)
        );
        assert!(
            r.wake_after_produce_ms < ms(WAKE_LIMIT),
            "round {i}: parked fetch answered {:.2} ms after the produce response \
             (limit {WAKE_LIMIT:?})",
            r.wake_after_produce_ms
        );
        assert!(
            r.fetch_total < Duration::from_millis(PARKED_WAIT_MS as u64 / 2),
            "round {i}: the fetch was held {:?}, as if it waited out max_wait_ms",
            r.fetch_total
        );
    }
    println!(
        "parked fetch (max_wait_ms={PARKED_WAIT_MS}) woken by produce acks=1, {ROUNDS} rounds: \
         produce response -> fetch response {}; produce request sent -> fetch response {}",
        summary(rounds.iter().map(|r| r.wake_after_produce_ms).collect()),
        summary(rounds.iter().map(|r| r.wake_after_send_ms).collect()),
    );

    // (c) Data already there: a fetch with a long max_wait_ms is not held.
    let started = Instant::now();
    let response: FetchResponse = control.call(
        ApiKey::Fetch,
        FETCH_VERSION,
        &fetch_request(0, PARKED_WAIT_MS),
    );
    let elapsed = started.elapsed();
    let p = only_partition(&response);
    let records = decode_records(p);
    assert_eq!(
        records.iter().map(|r| r.offset).collect::<Vec<_>>(),
        (0..ROUNDS as i64).collect::<Vec<_>>(),
        "everything produced, in order"
    );
    assert!(
        elapsed < WAKE_LIMIT,
        "a fetch with data available was held {elapsed:?}"
    );
    println!(
        "fetch with data available (max_wait_ms={PARKED_WAIT_MS}): answered after {:.2} ms",
        ms(elapsed)
    );

    let status = broker.stop().expect("broker was running");
    assert!(status.success(), "broker exited with {status} on SIGTERM");
}

/// SIGTERM while a consumer's Fetch is parked: the broker should answer (or drop) the
/// parked fetch and exit promptly, as Kafka does, rather than keep waiting out its
/// `max_wait_ms`.
#[test]
fn sigterm_does_not_wait_for_parked_fetches() {
    let mut broker = Broker::builder().arg("-o").arg("num.partitions=1").start();
    let mut control = Conn::open(broker.addr());
    create_topic(&mut control);
    let mut fetcher = Conn::open(broker.addr());
    let id = fetcher.send(
        ApiKey::Fetch,
        FETCH_VERSION,
        &fetch_request(0, PARKED_WAIT_MS),
    );
    let waiter = thread::spawn(move || {
        let mut size = [0u8; 4];
        // A response or the connection closing both end the wait.
        let answered = fetcher.stream.read_exact(&mut size).is_ok();
        (answered, Instant::now(), id)
    });
    thread::sleep(PARK_FOR);
    assert!(!waiter.is_finished(), "the fetch should be parked");

    let sigterm = Instant::now();
    let status = broker.stop().expect("broker was running");
    let stopped = sigterm.elapsed();
    let (answered, fetch_done, _) = waiter.join().expect("fetch thread");
    println!(
        "SIGTERM with a parked fetch (max_wait_ms={PARKED_WAIT_MS}): broker exited after \
         {stopped:.1?} with {status}; the fetch was {} after {:.1?}",
        if answered { "answered" } else { "dropped" },
        fetch_done.saturating_duration_since(sigterm)
    );
    assert!(status.success(), "broker exited with {status} on SIGTERM");
    assert!(
        stopped < Duration::from_secs(2),
        "SIGTERM took {stopped:?} with a fetch parked for {PARKED_WAIT_MS} ms"
    );
}
