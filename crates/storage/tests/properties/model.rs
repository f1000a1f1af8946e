//! The model the properties check the log against: the batches a test appended, with
//! the base offsets and leader epochs it expects the log to assign, and the checks of a
//! log's reads, segments, indexes and timestamp lookups against it. Also the small
//! harness around `Log` (directories, open, append) that keeps the model in step.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use bytes::Bytes;
use proptest::prelude::*;
use strom_storage::batch::{self, BatchHeader, BatchIter};
use strom_storage::{Log, LogConfig, ManualClock, TimestampOffset};

pub const NOW_MS: i64 = 1_700_000_000_000;

/// A fresh directory for one case, on tmpfs (`/dev/shm`) when there is one: every roll
/// and close fsyncs several files, which on a busy disk makes this file take 10x longer,
/// and nothing here depends on durability (a crash is a drop, not a power loss).
pub fn temp_dir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    shm.is_dir()
        .then(|| tempfile::tempdir_in(shm).ok())
        .flatten()
        .unwrap_or_else(|| tempfile::tempdir().expect("tempdir"))
}

/// A batch as the model expects the log to hold it.
#[derive(Debug, Clone)]
pub struct Stored {
    pub base: u64,
    pub last: u64,
    pub max_ts: i64,
    /// The producer's bytes with the assigned base offset and leader epoch written in.
    pub bytes: Vec<u8>,
}

pub fn ok<T>(r: strom_storage::Result<T>, what: &str) -> Result<T, TestCaseError> {
    r.map_err(|e| TestCaseError::fail(format!("{what}: {e}")))
}

pub fn open(dir: &Path, config: &LogConfig) -> Result<Log, TestCaseError> {
    ok(
        Log::open(dir, config.clone(), ManualClock::new(NOW_MS)),
        "open",
    )
}

/// Appends the batches as one append and records what the model expects stored.
pub fn append(
    log: &mut Log,
    batches: &[Vec<u8>],
    leader_epoch: i32,
    model: &mut Vec<Stored>,
) -> Result<(), TestCaseError> {
    let first = log.log_end_offset();
    let info = ok(
        log.append(Bytes::from(batches.concat()), leader_epoch),
        "append",
    )?;
    prop_assert_eq!(info.first_offset, first);
    prop_assert_eq!(info.batches, batches.len());
    prop_assert_eq!(info.log_append_time_ms, NOW_MS);
    let mut next = first;
    for b in batches {
        let h = BatchHeader::parse_and_validate(b).expect("test batches are valid");
        let mut bytes = b.clone();
        batch::set_base_offset(&mut bytes, next as i64);
        batch::set_partition_leader_epoch(&mut bytes, leader_epoch);
        let last = next + h.offset_count() - 1;
        model.push(Stored {
            base: next,
            last,
            max_ts: h.max_timestamp,
            bytes,
        });
        next = last + 1;
    }
    prop_assert_eq!(info.last_offset, next - 1);
    prop_assert_eq!(log.log_end_offset(), next);
    Ok(())
}

pub fn append_all(
    log: &mut Log,
    encoded: &[(Vec<Vec<u8>>, i32)],
    model: &mut Vec<Stored>,
) -> Result<(), TestCaseError> {
    for (batches, epoch) in encoded {
        append(log, batches, *epoch, model)?;
    }
    Ok(())
}

/// Every batch of the log, by walking `Log::read` from the log start to the log end.
pub fn read_all(log: &Log, max_bytes: usize) -> Result<Vec<Vec<u8>>, TestCaseError> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        let bytes = ok(log.read(offset, max_bytes), "read")?;
        prop_assert!(
            !bytes.is_empty(),
            "empty read at {} below the log end",
            offset
        );
        let mut iter = BatchIter::new(&bytes);
        for (pos, h) in iter.by_ref() {
            prop_assert_eq!(
                h.base_offset,
                offset as i64,
                "batch at byte {} of a read",
                pos
            );
            out.push(bytes[pos..pos + h.total_size()].to_vec());
            offset = h.last_offset() as u64 + 1;
        }
        prop_assert_eq!(
            iter.position(),
            bytes.len(),
            "a read returned a partial batch"
        );
    }
    prop_assert!(ok(log.read(offset, max_bytes), "read at the log end")?.is_empty());
    Ok(out)
}

/// Compares batches with a readable message: which batch, which byte.
pub fn assert_batches(actual: &[Vec<u8>], model: &[Stored]) -> Result<(), TestCaseError> {
    for (i, (a, m)) in actual.iter().zip(model).enumerate() {
        if *a != m.bytes {
            let at = a.iter().zip(&m.bytes).position(|(x, y)| x != y);
            return Err(TestCaseError::fail(format!(
                "batch {i} (base offset {}) differs: lengths {} vs {} expected, first \
                 difference at byte {at:?}",
                m.base,
                a.len(),
                m.bytes.len()
            )));
        }
    }
    prop_assert_eq!(actual.len(), model.len(), "number of batches");
    Ok(())
}

/// Timestamps worth asking about: every batch's max timestamp, its neighbours, and
/// values outside the log's range.
pub fn timestamp_queries(model: &[Stored]) -> Vec<i64> {
    let mut ts: Vec<i64> = model
        .iter()
        .flat_map(|b| [b.max_ts - 1, b.max_ts, b.max_ts + 1])
        .chain([i64::MIN, -1, 0, i64::MAX])
        .collect();
    ts.sort_unstable();
    ts.dedup();
    ts
}

/// Checks reads, indexes and timestamp lookups of `log` against the model, which must
/// hold exactly the log's batches.
pub fn check_against_model(
    log: &Log,
    model: &[Stored],
    max_bytes: usize,
) -> Result<(), TestCaseError> {
    let start = log.log_start_offset();
    let end = log.log_end_offset();
    prop_assert_eq!(start, model.first().map_or(start, |b| b.base));
    prop_assert_eq!(end, model.last().map_or(end, |b| b.last + 1));

    // Reads: for every offset, the first batch returned holds it; with max_bytes 1 it is
    // the only one; with more, the following batches follow in order.
    let mut k = 0usize;
    for offset in start..end {
        while model[k].last < offset {
            k += 1;
        }
        let one = ok(log.read(offset, 1), "read")?;
        prop_assert!(
            one.as_ref() == model[k].bytes.as_slice(),
            "read({}, 1) is not batch {} (base {}, last {}); got {} bytes",
            offset,
            k,
            model[k].base,
            model[k].last,
            one.len()
        );
        let many = ok(log.read(offset, max_bytes), "read")?;
        prop_assert!(many.len() <= max_bytes.max(model[k].bytes.len()));
        let mut at = 0usize;
        let mut j = k;
        while at < many.len() {
            prop_assert!(
                j < model.len(),
                "read({}) returned bytes past the log",
                offset
            );
            let b = &model[j].bytes;
            prop_assert!(
                many.len() >= at + b.len() && many[at..at + b.len()] == b[..],
                "read({}, {}): batch {} differs",
                offset,
                max_bytes,
                j
            );
            at += b.len();
            j += 1;
        }
        prop_assert!(j > k, "read({}, {}) returned nothing", offset, max_bytes);
    }
    prop_assert!(ok(log.read(end, 1), "read at the log end")?.is_empty());
    prop_assert!(log.read(end + 1, 1).is_err(), "read past the log end");

    // Segments: their .log files hold the model's batches, and every index entry is
    // right about them.
    let mut on_disk = Vec::new();
    let mut expected_base = start;
    for segment in log.segments() {
        let file = fs::read(segment.log_path()).expect("read segment file");
        prop_assert_eq!(file.len() as u64, segment.size());
        prop_assert_eq!(
            segment.base_offset(),
            expected_base,
            "segment bases are dense"
        );
        let mut by_position = BTreeMap::new();
        let mut iter = BatchIter::new(&file);
        for (pos, h) in iter.by_ref() {
            by_position.insert(pos as u64, h);
            on_disk.push(file[pos..pos + h.total_size()].to_vec());
            expected_base = h.last_offset() as u64 + 1;
        }
        prop_assert_eq!(iter.position(), file.len(), "trailing bytes in a segment");
        let seg_end = expected_base;
        let seg_batches: Vec<&BatchHeader> = by_position.values().collect();

        let index = segment.offset_index();
        let entries: Vec<_> = (0..index.len()).map(|i| index.entry(i)).collect();
        for (i, e) in entries.iter().enumerate() {
            let h = by_position.get(&e.position);
            prop_assert!(
                h.is_some_and(|h| h.last_offset() as u64 == e.offset),
                "segment {}: offset index entry {} {:?} does not point at the batch ending \
                 at its offset (found {:?})",
                segment.base_offset(),
                i,
                e,
                h.map(|h| (h.base_offset, h.last_offset()))
            );
        }
        let from = segment.base_offset().saturating_sub(2);
        for offset in from..=seg_end + 1 {
            let floor = entries.iter().rev().find(|e| e.offset <= offset).copied();
            prop_assert_eq!(
                index.lookup(offset),
                floor,
                "segment {}: offset index lookup({})",
                segment.base_offset(),
                offset
            );
        }
        prop_assert_eq!(index.lookup(u64::MAX), entries.last().copied());

        // Time index invariant: each entry is a running maximum, reached at the batch
        // ending at its offset, and no batch up to that offset has a larger timestamp.
        let time = segment.time_index();
        let mut prev: Option<TimestampOffset> = None;
        for i in 0..time.len() {
            let e = time.entry(i);
            if let Some(p) = prev {
                prop_assert!(e.timestamp > p.timestamp && e.offset >= p.offset);
            }
            prop_assert!(
                seg_batches
                    .iter()
                    .any(|h| h.last_offset() as u64 == e.offset && h.max_timestamp == e.timestamp),
                "segment {}: time index entry {} {:?} names no batch",
                segment.base_offset(),
                i,
                e
            );
            prop_assert!(
                seg_batches
                    .iter()
                    .filter(|h| h.last_offset() as u64 <= e.offset)
                    .all(|h| h.max_timestamp <= e.timestamp),
                "segment {}: time index entry {} {:?} below an earlier batch's timestamp",
                segment.base_offset(),
                i,
                e
            );
            prev = Some(e);
        }
    }
    prop_assert_eq!(expected_base, end, "the last segment ends at the log end");
    assert_batches(&on_disk, model)?;

    // Timestamp lookups: the first batch whose max timestamp reaches the target.
    for t in timestamp_queries(model) {
        let linear = model
            .iter()
            .find(|b| b.max_ts >= t)
            .map(|b| TimestampOffset {
                timestamp: b.max_ts,
                offset: b.base,
            });
        prop_assert_eq!(
            ok(log.offset_for_timestamp(t), "offset_for_timestamp")?,
            linear,
            "offset_for_timestamp({})",
            t
        );
    }
    // The max timestamp: the first batch holding the largest one, by its last offset.
    let linear_max = model.iter().map(|b| b.max_ts).max().map(|max| {
        let b = model.iter().find(|b| b.max_ts == max).expect("present");
        TimestampOffset {
            timestamp: max,
            offset: b.last,
        }
    });
    prop_assert_eq!(log.max_timestamp(), linear_max, "max_timestamp");
    Ok(())
}
