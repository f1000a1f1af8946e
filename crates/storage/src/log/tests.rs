//! Unit tests of the partition log through its public operations, with a manual clock.

use std::fs;
use std::sync::Arc;

use bytes::Bytes;

use super::Log;
use crate::batch::{BatchHeader, BatchIter};
use crate::config::{FlushPolicy, LogConfig, ManualClock};
use crate::error::{BatchError, StorageError};
use crate::segment::LogSegment;
use crate::testing::{batch_of, encode_batch};

pub(super) const T0: i64 = 1_700_000_000_000;

pub(super) fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes: 4096,
        index_interval_bytes: 256,
        segment_ms: None,
        retention_ms: None,
        ..LogConfig::default()
    }
}

fn open(dir: &std::path::Path, config: LogConfig, clock: &Arc<ManualClock>) -> Log {
    Log::open(dir, config, clock.clone()).expect("open log")
}

/// Headers of every batch in the log, read from the start.
fn all_batches(log: &Log) -> Vec<(BatchHeader, Bytes)> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        let bytes = log.read(offset, 1 << 20).expect("read");
        assert!(!bytes.is_empty(), "no data at {offset} below the log end");
        for (pos, h) in BatchIter::new(&bytes) {
            out.push((h, bytes.slice(pos..pos + h.total_size())));
            offset = h.last_offset() as u64 + 1;
        }
    }
    out
}

#[test]
fn append_assigns_dense_offsets_and_reads_back_verbatim() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(T0);
    let mut log = open(dir.path(), small_config(), &clock);
    let a = batch_of(3, 10, T0);
    let b = batch_of(5, 10, T0 + 1);
    let mut both = a.clone();
    both.extend_from_slice(&b);
    let first = log
        .append(Bytes::from(batch_of(1, 10, T0)), 4)
        .expect("append 1");
    assert_eq!(
        (first.first_offset, first.last_offset, first.batches),
        (0, 0, 1)
    );
    assert_eq!(first.log_append_time_ms, T0);
    let info = log.append(Bytes::from(both), 4).expect("append 2");
    assert_eq!(
        (info.first_offset, info.last_offset, info.batches),
        (1, 8, 2)
    );
    assert_eq!(log.log_end_offset(), 9);

    let batches = all_batches(&log);
    assert_eq!(batches.len(), 3);
    let (h, bytes) = &batches[1];
    assert_eq!(
        (h.base_offset, h.last_offset(), h.partition_leader_epoch),
        (1, 3, 4)
    );
    // Stored bytes equal the producer's except for base offset and leader epoch.
    assert_eq!(&bytes[16..], &a[16..]);
    assert_eq!(&bytes[8..12], &a[8..12]);
    BatchHeader::parse_and_validate(bytes).expect("stored batch keeps a valid CRC");
    assert_eq!(batches[2].0.base_offset, 4);
}

#[test]
fn an_invalid_batch_rejects_the_whole_append() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(T0);
    let mut log = open(dir.path(), small_config(), &clock);
    let good = batch_of(2, 10, T0);
    let mut bad = batch_of(2, 10, T0);
    let last = bad.len() - 1;
    bad[last] ^= 0xff;
    let mut records = good.clone();
    records.extend_from_slice(&bad);
    let err = log
        .append(Bytes::from(records), 0)
        .expect_err("corrupt batch");
    assert!(
        matches!(
            err,
            StorageError::InvalidBatch { position, source: BatchError::CrcMismatch { .. } }
                if position == good.len()
        ),
        "{err:?}"
    );
    let mut torn = good.clone();
    torn.extend_from_slice(&good[..30]);
    assert!(matches!(
        log.append(Bytes::from(torn), 0),
        Err(StorageError::InvalidBatch {
            source: BatchError::Truncated { .. },
            ..
        })
    ));
    assert!(matches!(
        log.append(Bytes::new(), 0),
        Err(StorageError::EmptyAppend)
    ));
    let huge = batch_of(1, 5000, T0);
    assert!(matches!(
        log.append(Bytes::from(huge), 0),
        Err(StorageError::InvalidBatch {
            source: BatchError::TooLarge { .. },
            ..
        })
    ));
    assert_eq!(log.log_end_offset(), 0);
    assert_eq!(
        log.size_bytes(),
        0,
        "nothing of a rejected append is written"
    );
    log.append(Bytes::from(good), 0)
        .expect("valid append still works");
    assert_eq!(log.log_end_offset(), 2);
}

#[test]
fn read_returns_whole_batches_and_at_least_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(T0);
    let mut log = open(dir.path(), LogConfig::default(), &clock);
    for _ in 0..10 {
        log.append(Bytes::from(batch_of(4, 100, T0)), 0)
            .expect("append");
    }
    let one = batch_of(4, 100, T0).len();
    // Offset 6 is inside the second batch (4..=7): the read starts at that batch.
    let bytes = log.read(6, 1).expect("read");
    assert_eq!(
        bytes.len(),
        one,
        "one whole batch even though max_bytes is 1"
    );
    assert_eq!(BatchHeader::parse(&bytes).expect("header").base_offset, 4);
    let bytes = log.read(6, 3 * one + 10).expect("read");
    assert_eq!(bytes.len(), 3 * one, "only whole batches within max_bytes");
    assert_eq!(log.read(40, 100).expect("at log end").len(), 0);
    assert!(matches!(
        log.read(41, 100),
        Err(StorageError::OffsetOutOfRange {
            offset: 41,
            log_start: 0,
            log_end: 40
        })
    ));
    // read_up_to stops before batches at or past the bound.
    let bytes = log.read_up_to(0, 1 << 20, 8).expect("read_up_to");
    assert_eq!(bytes.len(), 2 * one);
    assert_eq!(log.read_up_to(8, 1 << 20, 8).expect("at bound").len(), 0);
}

#[test]
fn segments_roll_by_size_and_time_and_reads_cross_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(T0);
    let config = LogConfig {
        segment_ms: Some(60_000),
        ..small_config()
    };
    let mut log = open(dir.path(), config, &clock);
    let batch = batch_of(2, 300, T0); // ~660 bytes: 6 fit in 4096
    for _ in 0..13 {
        log.append(Bytes::from(batch.clone()), 0).expect("append");
    }
    assert_eq!(log.segment_base_offsets(), vec![0, 12, 24]);
    for base in [0u64, 12, 24] {
        for ext in ["log", "index", "timeindex"] {
            let name = format!("{base:020}.{ext}");
            assert!(dir.path().join(&name).exists(), "{name} missing");
        }
    }
    // Rolled segments' indexes are trimmed to their entries.
    let first_index = fs::metadata(LogSegment::index_path_for(dir.path(), 0)).expect("meta");
    assert_eq!(
        first_index.len(),
        8 * log.segments().next().expect("seg").offset_index().len() as u64
    );
    assert_eq!(all_batches(&log).len(), 13);
    // Reading the last offset of a segment then the next segment's first.
    assert_eq!(
        BatchHeader::parse(&log.read(11, 1).expect("r"))
            .expect("h")
            .base_offset,
        10
    );
    assert_eq!(
        BatchHeader::parse(&log.read(12, 1).expect("r"))
            .expect("h")
            .base_offset,
        12
    );

    // segment.ms: the active segment (one batch) rolls once it is a minute old.
    clock.advance(59_999);
    log.append(Bytes::from(batch.clone()), 0).expect("append");
    assert_eq!(log.segment_count(), 3);
    clock.advance(1);
    log.append(Bytes::from(batch.clone()), 0).expect("append");
    assert_eq!(log.segment_base_offsets(), vec![0, 12, 24, 28]);
}

#[test]
fn retention_by_time_and_size_deletes_whole_old_segments() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(T0);
    let mut log = open(dir.path(), small_config(), &clock);
    for i in 0..18 {
        // Batch timestamps grow one second per batch.
        log.append(Bytes::from(batch_of(2, 300, T0 + i * 1000)), 0)
            .expect("append");
    }
    assert_eq!(log.segment_base_offsets(), vec![0, 12, 24]);
    let seg_size = log.segments().next().expect("seg").size();

    // Size: keep at most two segments' worth.
    log.set_config(LogConfig {
        retention_bytes: Some(2 * seg_size),
        ..small_config()
    })
    .expect("config");
    let r = log.apply_retention().expect("retention");
    assert_eq!(r.deleted_segments, vec![0]);
    assert_eq!(log.log_start_offset(), 12);
    assert!(!LogSegment::log_path_for(dir.path(), 0).exists());
    assert!(matches!(
        log.read(0, 10),
        Err(StorageError::OffsetOutOfRange { .. })
    ));

    // Time: segment 12 holds batches up to T0+11s; at T0+20s, 8.999 s retention drops it.
    clock.set(T0 + 20_000);
    log.set_config(LogConfig {
        retention_ms: Some(8_999),
        ..small_config()
    })
    .expect("config");
    let r = log.apply_retention().expect("retention");
    assert_eq!(r.deleted_segments, vec![12]);
    assert_eq!(log.log_start_offset(), 24);

    // Everything expired: the active segment rolls and goes too; the log stays at its end.
    clock.set(T0 + 100_000);
    let r = log.apply_retention().expect("retention");
    assert_eq!(r.deleted_segments, vec![24]);
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (36, 36));
    assert_eq!(
        log.append(Bytes::from(batch_of(1, 1, T0)), 0)
            .expect("append")
            .first_offset,
        36
    );
    drop(log);
    let log = open(dir.path(), small_config(), &clock);
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (36, 37));
}

#[test]
fn delete_records_before_moves_the_log_start_durably() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(T0);
    let mut log = open(dir.path(), small_config(), &clock);
    for _ in 0..18 {
        log.append(Bytes::from(batch_of(2, 300, T0)), 0)
            .expect("append");
    }
    assert_eq!(log.delete_records_before(5).expect("delete"), 5);
    assert_eq!(log.segment_count(), 3, "segment 0 still holds offsets >= 5");
    assert!(matches!(
        log.read(4, 1),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
    // Reading the log start returns the batch that holds it (4..=5).
    assert_eq!(
        BatchHeader::parse(&log.read(5, 1).expect("r"))
            .expect("h")
            .base_offset,
        4
    );
    assert_eq!(log.delete_records_before(3).expect("no-op"), 5);
    assert_eq!(log.delete_records_before(13).expect("delete"), 13);
    assert_eq!(log.segment_base_offsets(), vec![12, 24]);
    assert!(matches!(
        log.delete_records_before(37),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
    log.close().expect("close");
    let log = open(dir.path(), small_config(), &clock);
    assert_eq!(log.log_start_offset(), 13);
    assert_eq!(log.log_end_offset(), 36);
}

#[test]
fn truncate_to_cuts_whole_batches_and_appends_continue() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(T0);
    let mut log = open(dir.path(), small_config(), &clock);
    for i in 0..18 {
        log.append(Bytes::from(batch_of(2, 300, T0 + i)), 0)
            .expect("append");
    }
    // Offset 27 is inside batch 26..=27, which goes whole; segment 24 stays active.
    assert_eq!(log.truncate_to(27).expect("truncate"), 26);
    assert_eq!(log.segment_base_offsets(), vec![0, 12, 24]);
    // Across a segment boundary: segment 12 becomes the active one again.
    assert_eq!(log.truncate_to(12).expect("truncate"), 12);
    assert_eq!(log.segment_base_offsets(), vec![0]);
    assert_eq!(log.truncate_to(20).expect("past the end is a no-op"), 12);
    assert_eq!(log.truncate_to(9).expect("truncate"), 8);
    let info = log
        .append(Bytes::from(batch_of(2, 300, T0)), 0)
        .expect("append");
    assert_eq!(info.first_offset, 8);
    assert_eq!(all_batches(&log).len(), 5);
    assert_eq!(log.max_timestamp().map(|t| t.timestamp), Some(T0 + 3));
    // Below the first segment: the log restarts empty at the offset.
    assert_eq!(log.truncate_to(0).expect("truncate"), 0);
    assert_eq!(log.segment_base_offsets(), vec![0]);
    assert_eq!(log.size_bytes(), 0);
    drop(log);
    let log = open(dir.path(), small_config(), &clock);
    assert_eq!(log.log_end_offset(), 0);
}

#[test]
fn offset_for_timestamp_and_max_timestamp() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(T0);
    let mut log = open(dir.path(), small_config(), &clock);
    // Timestamps 0, 10, 20, ... with one out-of-order batch at offset 10.
    for i in 0..18i64 {
        let ts = if i == 5 { 5 } else { i * 10 };
        log.append(Bytes::from(encode_batch(2, ts, ts, -1, &[1; 300])), 0)
            .expect("append");
    }
    let at = |log: &Log, t| {
        log.offset_for_timestamp(t)
            .expect("lookup")
            .map(|r| r.offset)
    };
    assert_eq!(at(&log, -1), Some(0));
    assert_eq!(at(&log, 0), Some(0));
    assert_eq!(at(&log, 1), Some(2));
    assert_eq!(
        at(&log, 5),
        Some(2),
        "first batch with max_timestamp >= 5 is at offset 2 (ts 10)"
    );
    assert_eq!(at(&log, 45), Some(12));
    assert_eq!(at(&log, 170), Some(34));
    assert_eq!(at(&log, 171), None);
    let max = log.max_timestamp().expect("max");
    assert_eq!((max.timestamp, max.offset), (170, 35));
    log.delete_records_before(15).expect("delete");
    assert_eq!(at(&log, 0), Some(15), "never before the log start");
}

#[test]
fn clean_close_skips_recovery_and_a_crash_recovers_only_the_active_segment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(T0);
    let mut log = open(dir.path(), small_config(), &clock);
    for _ in 0..15 {
        log.append(Bytes::from(batch_of(2, 300, T0)), 0)
            .expect("append");
    }
    let before = all_batches(&log);
    log.close().expect("close");
    assert!(dir.path().join(crate::CLEAN_SHUTDOWN_FILE).exists());
    let (log, report) =
        Log::open_with_report(dir.path(), small_config(), clock.clone()).expect("reopen");
    assert!(report.clean_shutdown);
    assert!(report.recovered.is_empty() && report.rebuilt_indexes.is_empty());
    assert!(!dir.path().join(crate::CLEAN_SHUTDOWN_FILE).exists());
    assert_eq!(all_batches(&log), before);
    drop(log); // crash: no marker
    let (mut log, report) =
        Log::open_with_report(dir.path(), small_config(), clock.clone()).expect("reopen");
    assert!(!report.clean_shutdown);
    let recovered: Vec<u64> = report.recovered.iter().map(|r| r.base_offset).collect();
    assert_eq!(
        recovered,
        vec![24],
        "only segments from the recovery point are scanned"
    );
    assert_eq!(report.truncated_bytes(), 0);
    assert_eq!(all_batches(&log), before);
    assert_eq!(
        log.append(Bytes::from(batch_of(1, 1, T0)), 0)
            .expect("a")
            .first_offset,
        30
    );
}

#[test]
fn a_torn_tail_is_cut_and_logged_in_the_report() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(T0);
    let mut log = open(dir.path(), LogConfig::default(), &clock);
    for _ in 0..5 {
        log.append(Bytes::from(batch_of(3, 50, T0)), 0)
            .expect("append");
    }
    let size = log.size_bytes();
    let one = size / 5;
    drop(log);
    let path = LogSegment::log_path_for(dir.path(), 0);
    let f = fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .expect("open");
    f.set_len(size - 7).expect("tear the last batch");
    drop(f);
    let (log, report) =
        Log::open_with_report(dir.path(), LogConfig::default(), clock.clone()).expect("reopen");
    assert_eq!(report.truncated_bytes(), one - 7);
    assert!(
        report.recovered[0]
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("torn"))
    );
    assert_eq!(log.log_end_offset(), 12);
    assert_eq!(fs::metadata(&path).expect("meta").len(), 4 * one);
}

#[test]
fn a_corrupt_middle_segment_cuts_the_log_there() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(T0);
    let mut log = open(dir.path(), small_config(), &clock);
    for _ in 0..18 {
        log.append(Bytes::from(batch_of(2, 300, T0)), 0)
            .expect("append");
    }
    drop(log);
    // Flip a byte inside the third batch of segment 12, and lose the checkpoint so
    // recovery scans every segment.
    let path = LogSegment::log_path_for(dir.path(), 12);
    let mut data = fs::read(&path).expect("read");
    let one = data.len() / 6;
    data[2 * one + 100] ^= 1;
    fs::write(&path, &data).expect("write");
    fs::remove_file(dir.path().join(crate::CHECKPOINT_FILE)).expect("rm checkpoint");
    let (log, report) =
        Log::open_with_report(dir.path(), small_config(), clock.clone()).expect("reopen");
    assert_eq!(report.deleted_segments, vec![24]);
    assert_eq!(log.log_end_offset(), 16);
    assert_eq!(all_batches(&log).len(), 8);
    assert!(!LogSegment::log_path_for(dir.path(), 24).exists());
}

#[test]
fn missing_empty_or_corrupt_indexes_are_rebuilt_on_a_clean_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(T0);
    let mut log = open(dir.path(), small_config(), &clock);
    for i in 0..18 {
        log.append(Bytes::from(batch_of(2, 300, T0 + i)), 0)
            .expect("append");
    }
    let before = all_batches(&log);
    let index_len = |log: &Log, n: usize| log.segments().nth(n).expect("seg").offset_index().len();
    let entries = (index_len(&log, 0), index_len(&log, 1));
    assert!(entries.0 > 0 && entries.1 > 0);
    log.close().expect("close");
    fs::remove_file(LogSegment::index_path_for(dir.path(), 0)).expect("rm index");
    fs::write(LogSegment::time_index_path_for(dir.path(), 12), b"").expect("empty");
    // Garbage in the active segment's offset index: positions past the log.
    fs::write(LogSegment::index_path_for(dir.path(), 24), [0xffu8; 16]).expect("garbage");
    let (log, report) =
        Log::open_with_report(dir.path(), small_config(), clock.clone()).expect("reopen");
    assert!(report.clean_shutdown);
    assert_eq!(report.rebuilt_indexes, vec![0, 12, 24]);
    assert_eq!(report.truncated_bytes(), 0);
    assert_eq!((index_len(&log, 0), index_len(&log, 1)), entries);
    assert_eq!(all_batches(&log), before);
    assert_eq!(
        log.offset_for_timestamp(T0 + 7)
            .expect("t")
            .map(|t| t.offset),
        Some(14)
    );
}

#[test]
fn flush_policy_every_append_leaves_nothing_unflushed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(T0);
    let config = LogConfig {
        flush: FlushPolicy::every_append(),
        ..small_config()
    };
    let mut log = open(dir.path(), config, &clock);
    log.append(Bytes::from(batch_of(3, 10, T0)), 0)
        .expect("append");
    assert_eq!(log.unflushed_records(), 0);

    let timed = LogConfig {
        flush: FlushPolicy::from_kafka(i64::MAX, 1000),
        ..small_config()
    };
    log.set_config(timed).expect("config");
    log.append(Bytes::from(batch_of(3, 10, T0)), 0)
        .expect("append");
    assert_eq!(log.unflushed_records(), 3);
    clock.advance(999);
    log.maybe_flush().expect("not yet");
    assert_eq!(log.unflushed_records(), 3);
    clock.advance(1);
    log.maybe_flush().expect("due");
    assert_eq!(log.unflushed_records(), 0);

    log.set_config(small_config()).expect("config");
    log.append(Bytes::from(batch_of(3, 10, T0)), 0)
        .expect("append");
    clock.advance(1_000_000);
    log.maybe_flush().expect("default never flushes by time");
    assert_eq!(log.unflushed_records(), 3);
    log.flush().expect("flush");
    assert_eq!((log.unflushed_records(), log.recovery_point()), (0, 9));
}

#[test]
fn repeated_clean_restarts_never_rebuild_an_index() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(T0);
    let mut expected = 0;
    for round in 0..6 {
        let (mut log, report) =
            Log::open_with_report(dir.path(), small_config(), clock.clone()).expect("open");
        assert!(
            report.rebuilt_indexes.is_empty(),
            "round {round}: {report:?}"
        );
        assert!(report.recovered.is_empty(), "round {round}: {report:?}");
        assert_eq!(log.log_end_offset(), expected);
        // 100-byte batches: several per index interval, so tails stay unindexed.
        for _ in 0..7 {
            log.append(Bytes::from(batch_of(1, 40, T0 + round)), 0)
                .expect("append");
            expected += 1;
        }
        if round == 3 {
            log.truncate_to(expected - 2).expect("truncate");
            expected -= 2;
        }
        log.close().expect("close");
    }
}

#[test]
fn for_each_batch_header_walks_from_an_offset_across_segments() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(T0);
    let mut log = open(dir.path(), small_config(), &clock);
    for _ in 0..18 {
        log.append(Bytes::from(batch_of(2, 300, T0)), 0)
            .expect("append");
    }
    let mut seen = Vec::new();
    log.for_each_batch_header(9, |h| {
        seen.push(h.base_offset);
        true
    })
    .expect("walk");
    assert_eq!(seen, (8..36).step_by(2).collect::<Vec<i64>>());
    let mut count = 0;
    log.for_each_batch_header(0, |_| {
        count += 1;
        count < 3
    })
    .expect("walk");
    assert_eq!(count, 3, "stops when told");
}
