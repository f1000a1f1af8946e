//! Fetch handler tests: limits, errors and long poll, on a real coordinator.

use std::time::{Duration, Instant};

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::protocol::{Encodable, StrBytes};
use strom_storage::BatchHeader;
use strom_storage::batch::BatchIter;
use strom_storage::testing::encode_batch;

use super::*;
use crate::test_support::{self, T0, create_topic};

fn setup() -> (test_support::TestBroker, Arc<Partition>, Arc<Partition>) {
    let t = test_support::broker();
    create_topic(&t.broker, "t", 2, &[]);
    let topic = t.broker.coordinator().topic("t").expect("topic");
    let (p0, p1) = (
        topic.partition(0).expect("p0"),
        topic.partition(1).expect("p1"),
    );
    (t, p0, p1)
}

fn batch(records: i32, payload: usize) -> Bytes {
    Bytes::from(encode_batch(records, T0, T0, -1, &vec![7u8; payload]))
}

fn request(
    parts: &[(i32, i64, i32)],
    max_wait_ms: i32,
    min_bytes: i32,
    max_bytes: i32,
) -> FetchRequest {
    FetchRequest::default()
        .with_replica_id((-1).into())
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(min_bytes)
        .with_max_bytes(max_bytes)
        .with_session_epoch(-1)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_static_str("t")))
                .with_partitions(
                    parts
                        .iter()
                        .map(|(p, offset, max)| {
                            FetchPartition::default()
                                .with_partition(*p)
                                .with_fetch_offset(*offset)
                                .with_partition_max_bytes(*max)
                                .with_current_leader_epoch(-1)
                        })
                        .collect(),
                ),
        ])
}

/// Fetches as the handler does, with every record set read in (as a client sees it).
async fn fetch(broker: &Arc<Broker>, request: FetchRequest) -> FetchResponse {
    let r = respond(broker.clone(), 12, request)
        .await
        .expect("handled")
        .materialize()
        .expect("record sets readable");
    for v in 4..=12 {
        r.encode(&mut bytes::BytesMut::new(), v).expect("encodes");
    }
    r
}

fn batches(data: &PartitionData) -> Vec<i64> {
    let records = data.records.clone().expect("never null");
    BatchIter::new(&records)
        .map(|(_, h)| h.base_offset)
        .collect()
}

#[tokio::test]
async fn reads_with_partition_and_response_limits() {
    let (t, p0, p1) = setup();
    for _ in 0..4 {
        p0.append(batch(2, 1000), 1 << 20).expect("append");
        p1.append(batch(2, 1000), 1 << 20).expect("append");
    }
    let one = batch(2, 1000).len() as i32;
    // Partition limit: two batches of p0; response limit leaves room for one of p1.
    let r = fetch(
        &t.broker,
        request(&[(0, 0, 2 * one), (1, 2, 10 * one)], 0, 1, 3 * one),
    )
    .await;
    let parts = &r.responses[0].partitions;
    assert_eq!(batches(&parts[0]), vec![0, 2]);
    assert_eq!(batches(&parts[1]), vec![2]);
    assert_eq!((parts[0].high_watermark, parts[0].log_start_offset), (8, 0));
    // The first partition returns a whole batch even over both limits; the next, none.
    let r = fetch(&t.broker, request(&[(0, 3, 1), (1, 0, 1)], 0, 1, 1)).await;
    let parts = &r.responses[0].partitions;
    assert_eq!(batches(&parts[0]), vec![2]);
    assert!(batches(&parts[1]).is_empty());
    assert_eq!(parts[1].high_watermark, 8);
    // At the end: empty (not null) records.
    let r = fetch(&t.broker, request(&[(0, 8, one)], 0, 1, one)).await;
    assert_eq!(r.responses[0].partitions[0].records, Some(Bytes::new()));
    let header = BatchHeader::parse(&p0.fetch(0, 1).expect("read").records).expect("h");
    assert_eq!(header.records_count, 2);
}

#[tokio::test]
async fn errors_are_per_partition() {
    let (t, p0, _) = setup();
    p0.append(batch(2, 10), 1 << 20).expect("append");
    let r = fetch(
        &t.broker,
        request(&[(0, 3, 1000), (5, 0, 1000)], 500, 1, 10_000),
    )
    .await;
    let parts = &r.responses[0].partitions;
    assert_eq!(parts[0].error_code, ResponseError::OffsetOutOfRange.code());
    assert_eq!((parts[0].high_watermark, parts[0].log_start_offset), (2, 0));
    assert_eq!(
        parts[1].error_code,
        ResponseError::UnknownTopicOrPartition.code()
    );
    assert_eq!(parts[1].records, Some(Bytes::new()));
    let r = fetch(
        &t.broker,
        request(&[(0, 0, 1000)], 0, 1, 1000).with_session_id(5),
    )
    .await;
    assert_eq!(r.error_code, ResponseError::FetchSessionIdNotFound.code());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_poll_waits_for_data_or_the_deadline() {
    let (t, p0, _) = setup();
    // Idle: returns after max_wait_ms, empty.
    let start = Instant::now();
    let r = fetch(&t.broker, request(&[(0, 0, 1000)], 300, 1, 1000)).await;
    let waited = start.elapsed();
    assert!(waited >= Duration::from_millis(290), "{waited:?}");
    assert!(waited < Duration::from_secs(3), "{waited:?}");
    assert!(batches(&r.responses[0].partitions[0]).is_empty());

    // A produce during the wait wakes it at once.
    let broker = t.broker.clone();
    let waiter = tokio::spawn(async move {
        let start = Instant::now();
        let r = fetch(&broker, request(&[(0, 0, 1000)], 10_000, 1, 1000)).await;
        (start.elapsed(), r)
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let appended = Instant::now();
    p0.append(batch(1, 10), 1 << 20).expect("append");
    let (waited, r) = waiter.await.expect("join");
    assert_eq!(batches(&r.responses[0].partitions[0]), vec![0]);
    assert!(
        waited < Duration::from_secs(5),
        "woken by the append, not the deadline"
    );
    assert!(appended.elapsed() < Duration::from_secs(1));
}

/// Record sets of at least `SENDFILE_MIN_BYTES` stay in their files; the spliced frame
/// is byte for byte the frame the codec makes with the records read in.
#[tokio::test]
async fn large_record_sets_are_spliced_from_their_files() {
    let (t, p0, p1) = setup();
    for _ in 0..3 {
        p0.append(batch(4, 20_000), 1 << 20).expect("append");
        p1.append(batch(1, 100), 1 << 20).expect("append");
    }
    for version in [4, 11, 12] {
        let req = request(&[(0, 0, 1 << 20), (1, 0, 1 << 20)], 0, 1, 4 << 20);
        let reply = respond(t.broker.clone(), version, req.clone())
            .await
            .expect("handled");
        assert_eq!(
            reply.files.len(),
            1,
            "v{version}: p0 from its file, p1 inline"
        );
        assert!(reply.files[0].records.len() >= SENDFILE_MIN_BYTES);
        let frame = reply.encode(version, 7).expect("encodes");
        assert!(matches!(frame, ResponseFrame::Parts(_)));
        let spliced = frame.to_bytes().expect("readable");
        let plain = respond(t.broker.clone(), version, req)
            .await
            .expect("handled")
            .materialize()
            .expect("readable");
        assert_eq!(batches(&plain.responses[0].partitions[0]), vec![0, 4, 8]);
        let expected =
            dispatch::encode_response(ApiKey::Fetch, version, 7, &ResponseKind::Fetch(plain))
                .expect("encodes");
        assert_eq!(spliced, expected, "v{version}");
    }
}

/// `fetch.max.bytes` caps what a request's `max_bytes` asks for, as in Kafka; the first
/// batch is still returned whole.
#[tokio::test]
async fn fetch_max_bytes_caps_the_request() {
    let t = test_support::broker_with(crate::config::BrokerConfig {
        fetch_max_bytes: 1024,
        ..Default::default()
    });
    create_topic(&t.broker, "t", 1, &[]);
    let p0 = t
        .broker
        .coordinator()
        .topic("t")
        .expect("t")
        .partition(0)
        .expect("p0");
    for _ in 0..8 {
        p0.append(batch(1, 300), 1 << 20).expect("append");
    }
    let one = batch(1, 300).len();
    let fit = (1024 / one) as i64;
    assert!((1..8).contains(&fit), "{one}-byte batches");
    // The client asks for 50 MiB in all and per partition: it gets 1024 bytes' worth.
    let r = fetch(&t.broker, request(&[(0, 0, 50 << 20)], 0, 1, 50 << 20)).await;
    assert_eq!(
        batches(&r.responses[0].partitions[0]),
        (0..fit).collect::<Vec<_>>()
    );
    // Below the cap the request's own limit applies.
    let r = fetch(&t.broker, request(&[(0, 0, 50 << 20)], 0, 1, one as i32)).await;
    assert_eq!(batches(&r.responses[0].partitions[0]), vec![0]);
    // A negative max_bytes is 0: still the one batch a consumer needs to progress.
    let r = fetch(&t.broker, request(&[(0, 5, -7)], 0, 1, -5)).await;
    assert_eq!(batches(&r.responses[0].partitions[0]), vec![5]);
}
