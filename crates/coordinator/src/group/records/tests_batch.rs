//! Record batches: golden bytes, a cross-check against `kafka-protocol`'s independent
//! batch codec, malformed batches, and a round trip through a real `strom_storage::Log`.

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use proptest::prelude::*;
use strom_storage::batch::{CRC_OFFSET, HEADER_SIZE};
use strom_storage::{BatchHeader, Log, LogConfig, ManualClock};

use super::*;

fn offset(o: i64) -> OffsetCommitValue {
    OffsetCommitValue {
        offset: o,
        leader_epoch: 3,
        metadata: String::new(),
        commit_timestamp: 1_000,
        expire_timestamp: None,
    }
}

fn group(generation: i32) -> GroupMetadataValue {
    GroupMetadataValue {
        protocol_type: "consumer".into(),
        generation,
        protocol: Some("range".into()),
        leader: Some("m".into()),
        current_state_timestamp: 1_000,
        members: vec![MemberMetadata {
            member_id: "m".into(),
            group_instance_id: None,
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            rebalance_timeout: 60_000,
            session_timeout: 45_000,
            subscription: Bytes::from_static(b"sub"),
            assignment: Bytes::from_static(b"asg"),
        }],
    }
}

fn sample() -> Vec<CoordinatorRecord> {
    vec![
        CoordinatorRecord::group_metadata("g", Some(group(1))),
        CoordinatorRecord::offset_commit("g", "t", 0, Some(offset(10))),
        CoordinatorRecord::offset_commit("g", "t", 1, None),
        CoordinatorRecord::group_metadata("old", None),
    ]
}

fn kp_record(offset: i64, key: Option<&[u8]>, value: Option<&[u8]>, control: bool) -> Record {
    Record {
        transactional: control,
        control,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id: if control { 7 } else { -1 },
        producer_epoch: if control { 0 } else { -1 },
        timestamp_type: TimestampType::Creation,
        offset,
        sequence: -1,
        timestamp: 5,
        key: key.map(Bytes::copy_from_slice),
        value: value.map(Bytes::copy_from_slice),
        headers: Default::default(),
    }
}

fn kp_encode(records: &[Record], compression: Compression) -> Bytes {
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        records,
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .expect("kafka-protocol encodes");
    buf.freeze()
}

#[test]
fn batch_golden_bytes() {
    let batch = build_raw_batch(&[(Bytes::from_static(b"k"), None)], 0).unwrap();
    let records: &[u8] = &[
        0x0e, // record length 7 (zig-zag)
        0,    // attributes
        0,    // timestamp delta
        0,    // offset delta
        2, b'k', // key length 1, key
        1,    // value length -1: tombstone
        0,    // no headers
    ];
    let crc = crc32c::crc32c(&batch[21..]).to_be_bytes();
    let golden = [
        &[0u8; 8][..],              // base offset
        &(49i32 + 8).to_be_bytes(), // batch length
        &[0xff; 4],                 // partition leader epoch -1
        &[2],                       // magic
        &crc,                       // crc
        &[0, 0],                    // attributes
        &[0, 0, 0, 0],              // last offset delta
        &[0; 8],                    // base timestamp
        &[0; 8],                    // max timestamp
        &[0xff; 8],                 // producer id -1
        &[0xff; 2],                 // producer epoch -1
        &[0xff; 4],                 // base sequence -1
        &[0, 0, 0, 1],              // records count
        records,
    ]
    .concat();
    assert_eq!(batch, &golden[..]);
    let raw = read_raw_records(&batch).unwrap();
    assert_eq!(
        raw,
        vec![RawRecord {
            offset: 0,
            timestamp: 0,
            key: Some(b"k".as_slice()),
            value: None
        }]
    );
}

#[test]
fn built_batch_is_valid_and_kafka_protocol_reads_it() {
    let records = sample();
    let batch = build_batch(&records, 1_234).unwrap();
    let header = BatchHeader::parse_and_validate(&batch).unwrap();
    assert_eq!(header.total_size(), batch.len());
    assert_eq!(header.records_count, 4);
    assert_eq!(header.last_offset_delta, 3);
    assert_eq!(header.max_timestamp, 1_234);
    assert_eq!(header.compression_codec(), 0);
    assert!(!header.is_transactional() && !header.is_control());

    let mut buf = batch.clone();
    let set = RecordBatchDecoder::decode(&mut buf).unwrap();
    assert_eq!(set.records.len(), 4);
    for (i, (kp, ours)) in set.records.iter().zip(&records).enumerate() {
        let (key, value) = ours.encode().unwrap();
        assert_eq!(kp.offset, i as i64);
        assert_eq!(kp.timestamp, 1_234);
        assert_eq!(kp.key.as_ref(), Some(&key));
        assert_eq!(kp.value, value);
        assert!(kp.headers.is_empty());
    }

    let read = read_records(&batch).unwrap();
    assert_eq!(read.next_offset, Some(4));
    assert_eq!(read.skipped, 0);
    let back: Vec<_> = read.records.into_iter().map(|l| l.record).collect();
    assert_eq!(back, records);
}

#[test]
fn reads_what_kafka_protocol_writes_and_skips_control_batches() {
    let (key, value) = sample()[1].encode().unwrap();
    let mut data = kp_encode(
        &[
            kp_record(0, Some(&key), value.as_deref(), false),
            kp_record(1, Some(&key), None, false),
        ],
        Compression::None,
    )
    .to_vec();
    // A transaction marker: control key (version 0, type 1 = commit) and value.
    let marker = kp_encode(
        &[kp_record(
            2,
            Some(&[0, 0, 0, 1]),
            Some(&[0, 0, 0, 0, 0, 0]),
            true,
        )],
        Compression::None,
    );
    assert!(BatchHeader::parse(&marker).unwrap().is_control());
    data.extend_from_slice(&marker);
    let read = read_records(&data).unwrap();
    assert_eq!(read.next_offset, Some(3));
    let offsets: Vec<_> = read.records.iter().map(|r| r.offset).collect();
    assert_eq!(offsets, [0, 1]);
    assert_eq!(read.records[0].record, sample()[1]);
    assert_eq!(read.records[0].timestamp, 5);
    assert!(read.records[1].record.is_tombstone());
}

#[test]
fn records_with_headers_are_read() {
    let (key, value) = sample()[1].encode().unwrap();
    let mut rec = kp_record(0, Some(&key), value.as_deref(), false);
    rec.headers
        .insert("h".into(), Some(Bytes::from_static(b"v")));
    rec.headers.insert("n".into(), None);
    let read = read_records(&kp_encode(&[rec], Compression::None)).unwrap();
    assert_eq!(read.records[0].record, sample()[1]);
}

#[test]
fn compressed_batches_are_refused() {
    let (key, value) = sample()[1].encode().unwrap();
    let gz = kp_encode(
        &[kp_record(0, Some(&key), value.as_deref(), false)],
        Compression::Gzip,
    );
    let err = read_records(&gz).unwrap_err();
    assert!(err.to_string().contains("compressed"), "{err}");
}

#[test]
fn unknown_record_types_are_skipped_null_keys_refused() {
    let batch = build_raw_batch(
        &[
            (Bytes::from_static(&[0, 3, 0, 1, b'g']), Some(Bytes::new())),
            sample()[0].encode().unwrap(),
        ],
        0,
    )
    .unwrap();
    let read = read_records(&batch).unwrap();
    assert_eq!(read.skipped, 1);
    assert_eq!(read.records.len(), 1);
    assert_eq!(read.records[0].offset, 1);

    let (_, value) = sample()[1].encode().unwrap();
    let nullkey = kp_encode(
        &[kp_record(0, None, value.as_deref(), false)],
        Compression::None,
    );
    assert!(matches!(
        read_records(&nullkey),
        Err(RecordError::Invalid { .. })
    ));
}

#[test]
fn bad_batches_are_errors() {
    assert!(build_batch(&[], 0).is_err());
    let empty = read_records(&[]).unwrap();
    assert_eq!(empty, ReadRecords::default());

    let batch = build_batch(&sample(), 0).unwrap();
    for cut in 1..batch.len() {
        assert!(read_records(&batch[..cut]).is_err(), "cut at {cut}");
    }
    let mut bad_crc = batch.to_vec();
    bad_crc[CRC_OFFSET] ^= 1;
    assert!(read_records(&bad_crc).is_err());
    // A value that does not decode fails the read (it is not skipped).
    let broken = build_raw_batch(
        &[(
            sample()[1].encode().unwrap().0,
            Some(Bytes::from_static(&[0, 3, 1])),
        )],
        0,
    )
    .unwrap();
    assert!(read_records(&broken).is_err());
}

/// Rewrites the CRC after a test changed the records.
fn fix_crc(batch: &mut [u8]) {
    let crc = crc32c::crc32c(&batch[21..]);
    batch[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
}

#[test]
fn record_count_that_lies_is_an_error_not_an_allocation() {
    let mut batch = build_batch(&sample(), 0).unwrap().to_vec();
    batch[57..61].copy_from_slice(&i32::MAX.to_be_bytes());
    fix_crc(&mut batch);
    assert!(read_records(&batch).is_err());
    batch[57..61].copy_from_slice(&3i32.to_be_bytes()); // fewer than present: trailing
    fix_crc(&mut batch);
    assert!(read_records(&batch).is_err());
    batch[57..61].copy_from_slice(&(-1i32).to_be_bytes());
    fix_crc(&mut batch);
    assert!(read_records(&batch).is_err());
}

#[test]
fn batches_survive_a_real_log() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(0);
    let first = sample();
    let second = vec![
        CoordinatorRecord::offset_commit("g", "t", 0, Some(offset(11))),
        CoordinatorRecord::group_metadata("g", Some(group(2))),
    ];
    {
        let mut log = Log::open(dir.path(), LogConfig::default(), clock.clone()).unwrap();
        log.append(build_batch(&first, 100).unwrap(), 0).unwrap();
        log.append(build_batch(&second, 200).unwrap(), 0).unwrap();
        log.flush().unwrap();
        log.close().unwrap();
    }
    let log = Log::open(dir.path(), LogConfig::default(), clock).unwrap();
    // Load as the coordinator will: read, replay, continue from next_offset.
    let mut loaded = Vec::new();
    let mut from = log.log_start_offset();
    loop {
        let bytes = log.read(from, 1).unwrap();
        if bytes.is_empty() {
            break;
        }
        let read = read_records(&bytes).unwrap();
        loaded.extend(read.records);
        from = read.next_offset.unwrap() as u64;
    }
    assert_eq!(from, 6);
    let offsets: Vec<_> = loaded.iter().map(|l| l.offset).collect();
    assert_eq!(offsets, [0, 1, 2, 3, 4, 5]);
    let timestamps: Vec<_> = loaded.iter().map(|l| l.timestamp).collect();
    assert_eq!(timestamps, [100, 100, 100, 100, 200, 200]);
    let records: Vec<_> = loaded.into_iter().map(|l| l.record).collect();
    assert_eq!(records, [first, second].concat());
    // One read of everything gives the same.
    let all = read_records(&log.read(0, usize::MAX).unwrap()).unwrap();
    assert_eq!(all.records.len(), 6);
    assert_eq!(all.next_offset, Some(6));
}

proptest! {
    #[test]
    fn raw_batches_round_trip(
        records in proptest::collection::vec(
            (
                proptest::collection::vec(any::<u8>(), 0..30),
                proptest::option::of(proptest::collection::vec(any::<u8>(), 0..300)),
            ),
            1..20,
        ),
        timestamp in any::<i64>(),
    ) {
        let records: Vec<(Bytes, Option<Bytes>)> = records
            .into_iter()
            .map(|(k, v)| (Bytes::from(k), v.map(Bytes::from)))
            .collect();
        let batch = build_raw_batch(&records, timestamp).unwrap();
        prop_assert!(BatchHeader::parse_and_validate(&batch).is_ok());
        let back = read_raw_records(&batch).unwrap();
        prop_assert_eq!(back.len(), records.len());
        for (i, (r, (k, v))) in back.iter().zip(&records).enumerate() {
            prop_assert_eq!(r.offset, i as i64);
            prop_assert_eq!(r.timestamp, timestamp);
            prop_assert_eq!(r.key, Some(&k[..]));
            prop_assert_eq!(r.value, v.as_deref());
        }
    }

    #[test]
    fn corrupted_records_never_panic(
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let mut batch = build_batch(&sample(), 0).unwrap().to_vec();
        let i = HEADER_SIZE - 4 + at.index(batch.len() - HEADER_SIZE + 4);
        batch[i] = byte;
        fix_crc(&mut batch);
        let _ = read_records(&batch);
    }

    #[test]
    fn garbage_batches_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = read_records(&bytes);
    }
}
