//! Broker-level tests: topics, partitions and idempotence across restarts, on real
//! logs in temporary directories.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use strom_storage::batch::{BASE_SEQUENCE_OFFSET, PRODUCER_EPOCH_OFFSET};
use strom_storage::testing::encode_batch;
use strom_storage::{BatchHeader, ManualClock};

use crate::{AlterOp, BrokerSettings, Coordinator, CoordinatorError, NewTopic};

const T0: i64 = 1_700_000_000_000;

fn broker(dir: &std::path::Path) -> Coordinator {
    Coordinator::open(BrokerSettings::new(dir), ManualClock::new(T0)).expect("open broker")
}

fn new_topic(name: &str, partitions: i32) -> NewTopic {
    NewTopic {
        name: name.into(),
        partitions,
        replication_factor: -1,
        configs: BTreeMap::new(),
    }
}

/// An idempotent batch of `count` records from `pid`/`epoch` starting at `seq`.
fn idempotent_batch(pid: i64, epoch: i16, seq: i32, count: i32) -> Bytes {
    let mut b = encode_batch(count, T0, T0, pid, b"payload");
    b[PRODUCER_EPOCH_OFFSET..PRODUCER_EPOCH_OFFSET + 2].copy_from_slice(&epoch.to_be_bytes());
    b[BASE_SEQUENCE_OFFSET..BASE_SEQUENCE_OFFSET + 4].copy_from_slice(&seq.to_be_bytes());
    // Fix the CRC after editing covered fields.
    let crc = crc32c_of(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    Bytes::from(b)
}

fn crc32c_of(data: &[u8]) -> u32 {
    crc32c::crc32c(data)
}

#[test]
fn topics_are_created_persisted_and_deleted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let b = broker(dir.path());
    let created = b
        .create_topic(&new_topic("orders", 3), false)
        .expect("create");
    assert_eq!(created.partitions, 3);
    assert!(matches!(
        b.create_topic(&new_topic("orders", 3), false),
        Err(CoordinatorError::TopicAlreadyExists(_))
    ));
    assert!(matches!(
        b.create_topic(&new_topic("bad name", 1), false),
        Err(CoordinatorError::InvalidTopic { .. })
    ));
    let rf2 = NewTopic {
        replication_factor: 2,
        ..new_topic("x", 1)
    };
    assert!(matches!(
        b.create_topic(&rf2, false),
        Err(CoordinatorError::InvalidReplicationFactor(_))
    ));
    b.create_topic(&new_topic("dry", 2), true)
        .expect("validate only");
    assert!(b.topic("dry").is_none());
    let p = b
        .topic("orders")
        .and_then(|t| t.partition(2))
        .expect("partition 2");
    p.append(Bytes::from(encode_batch(3, T0, T0, -1, b"abc")), 1 << 20)
        .expect("append");
    let id = b.topic("orders").expect("topic").id();
    b.shutdown().expect("shutdown");
    drop(b);

    let b = broker(dir.path());
    let t = b.topic("orders").expect("reloaded");
    assert_eq!((t.id(), t.partition_count()), (id, 3));
    assert_eq!(
        b.topic_by_id(id).map(|t| t.name().to_string()),
        Some("orders".into())
    );
    assert_eq!(
        t.partition(2).expect("p2").log_end_offset().expect("leo"),
        3
    );
    assert_eq!(b.delete_topic("orders").expect("delete"), id);
    assert!(b.topic("orders").is_none());
    assert!(!dir.path().join("orders-0").exists());
    assert!(matches!(
        b.delete_topic("orders"),
        Err(CoordinatorError::UnknownTopic(_))
    ));
    // Re-creating the name starts empty.
    b.create_topic(&new_topic("orders", 1), false)
        .expect("recreate");
    let p = b.topic("orders").and_then(|t| t.partition(0)).expect("p0");
    assert_eq!(p.log_end_offset().expect("leo"), 0);
}

#[test]
fn auto_create_partitions_and_configs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut settings = BrokerSettings::new(dir.path());
    settings.num_partitions = 2;
    let b = Coordinator::open(settings, ManualClock::new(T0)).expect("open");
    let t = b
        .topic_or_auto_create("auto")
        .expect("auto")
        .expect("created");
    assert_eq!(t.partition_count(), 2);
    b.create_partitions("auto", 5, false).expect("grow");
    assert_eq!(t.partition_count(), 5);
    assert!(matches!(
        b.create_partitions("auto", 4, false),
        Err(CoordinatorError::InvalidPartitions(_))
    ));
    b.alter_topic_config(
        "auto",
        [("retention.ms".to_string(), "1000".to_string())].into(),
        false,
    )
    .expect("alter");
    assert_eq!(t.effective().log.retention_ms, Some(1000));
    b.incremental_alter_topic_config(
        "auto",
        &[("max.message.bytes".to_string(), AlterOp::Set("100".into()))],
        false,
    )
    .expect("incremental");
    assert_eq!(t.max_message_bytes(), 100);
    assert_eq!(
        t.effective().log.retention_ms,
        Some(1000),
        "incremental keeps others"
    );
    let p = t.partition(0).expect("p0");
    assert!(matches!(
        p.append(
            Bytes::from(encode_batch(1, T0, T0, -1, &[0; 200])),
            t.max_message_bytes()
        ),
        Err(CoordinatorError::RecordTooLarge { .. })
    ));
    b.shutdown().expect("shutdown");
    drop(b);
    let b = broker(dir.path());
    let t = b.topic("auto").expect("reloaded");
    assert_eq!(t.partition_count(), 5);
    assert_eq!(t.max_message_bytes(), 100);
    let mut off = BrokerSettings::new(dir.path());
    off.auto_create_topics = false;
    drop(b);
    let b = Coordinator::open(off, ManualClock::new(T0)).expect("open");
    assert!(b.topic_or_auto_create("nope").expect("no error").is_none());
}

#[test]
fn idempotent_retries_are_deduplicated_across_restarts() {
    for clean in [true, false] {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = broker(dir.path());
        b.create_topic(&new_topic("t", 1), false).expect("create");
        let (pid, epoch) = b.init_producer_id().expect("pid");
        let p = b.topic("t").and_then(|t| t.partition(0)).expect("p");
        let first = p
            .append(idempotent_batch(pid, epoch, 0, 3), 1 << 20)
            .expect("a");
        let second = p
            .append(idempotent_batch(pid, epoch, 3, 2), 1 << 20)
            .expect("b");
        assert_eq!((first.base_offset, second.base_offset), (0, 3));
        let retry = p
            .append(idempotent_batch(pid, epoch, 0, 3), 1 << 20)
            .expect("retry");
        assert!(retry.duplicate);
        assert_eq!(retry.base_offset, 0);
        assert_eq!(
            p.log_end_offset().expect("leo"),
            5,
            "a duplicate writes nothing"
        );
        if clean {
            b.shutdown().expect("shutdown");
        }
        drop((p, b));
        let b = broker(dir.path());
        let p = b.topic("t").and_then(|t| t.partition(0)).expect("p");
        let retry = p
            .append(idempotent_batch(pid, epoch, 3, 2), 1 << 20)
            .expect("retry");
        assert!(retry.duplicate, "clean={clean}: producer state survived");
        assert_eq!(retry.base_offset, 3);
        assert!(matches!(
            p.append(idempotent_batch(pid, epoch, 9, 1), 1 << 20),
            Err(CoordinatorError::OutOfOrderSequence { expected: 5, .. })
        ));
        let next = p
            .append(idempotent_batch(pid, epoch, 5, 1), 1 << 20)
            .expect("next");
        assert_eq!(next.base_offset, 5);
        let (pid2, _) = b.init_producer_id().expect("pid2");
        assert_ne!(pid2, pid, "producer ids are never reused");
    }
}

#[test]
fn fetch_reads_up_to_the_high_watermark_and_notifies() {
    let dir = tempfile::tempdir().expect("tempdir");
    let b = broker(dir.path());
    b.create_topic(&new_topic("t", 1), false).expect("create");
    let p = b.topic("t").and_then(|t| t.partition(0)).expect("p");
    let mut rx = p.subscribe();
    assert!(!rx.has_changed().expect("open channel"));
    p.append(Bytes::from(encode_batch(2, T0, T0, -1, b"x")), 1 << 20)
        .expect("append");
    assert!(rx.has_changed().expect("open channel"));
    assert_eq!(*rx.borrow_and_update(), 2);
    let f = p.fetch(0, 1 << 20).expect("fetch");
    assert_eq!(
        (f.high_watermark, f.log_start_offset, f.log_end_offset),
        (2, 0, 2)
    );
    assert_eq!(
        BatchHeader::parse(&f.records).expect("batch").records_count,
        2
    );
    assert!(p.fetch(2, 100).expect("at end").records.is_empty());
    assert!(p.fetch(3, 100).is_err());
    assert_eq!(p.delete_records_before(1).expect("delete"), 1);
    assert!(p.delete_records_before(3).is_err());
}

#[test]
fn arc_partitions_survive_topic_lookups() {
    let dir = tempfile::tempdir().expect("tempdir");
    let b = Arc::new(broker(dir.path()));
    b.create_topic(&new_topic("t", 1), false).expect("create");
    let p = b.topic("t").and_then(|t| t.partition(0)).expect("p");
    b.delete_topic("t").expect("delete");
    assert!(matches!(
        p.append(Bytes::from(encode_batch(1, T0, T0, -1, b"x")), 1 << 20),
        Err(CoordinatorError::UnknownTopicOrPartition { .. })
    ));
}

#[test]
fn altered_topic_configs_take_effect_on_the_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(T0);
    let b = Coordinator::open(BrokerSettings::new(dir.path()), clock.clone()).expect("open");
    b.create_topic(&new_topic("t", 1), false).expect("create");
    let p = b.topic("t").and_then(|t| t.partition(0)).expect("p");
    // Small segments: every ~2 batches roll.
    b.incremental_alter_topic_config(
        "t",
        &[
            ("segment.bytes".to_string(), AlterOp::Set("300".into())),
            ("retention.ms".to_string(), AlterOp::Set("1000".into())),
        ],
        false,
    )
    .expect("alter");
    for _ in 0..6 {
        p.append(Bytes::from(encode_batch(1, T0, T0, -1, &[0; 100])), 1 << 20)
            .expect("append");
    }
    let size = p.size_bytes().expect("size");
    assert_eq!(p.log_start_offset().expect("start"), 0);
    // Nothing has expired yet.
    b.apply_retention();
    assert_eq!(p.log_start_offset().expect("start"), 0);
    // Past retention.ms every rolled segment goes; the log keeps its end offset.
    clock.advance(1001);
    b.apply_retention();
    assert_eq!(p.log_start_offset().expect("start"), 6);
    assert_eq!(p.log_end_offset().expect("end"), 6);
    assert!(p.size_bytes().expect("size") < size);
}
