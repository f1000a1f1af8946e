//! `record_batch`: the `records` bytes of a Produce partition, as hostile as a client
//! can make them, through the batch header code and what the broker does with them.
//!
//! Input: one control byte, then the records. Control bits:
//! - 0: before anything else, give every whole batch magic 2 and a correct CRC-32C
//!   (`strom_fuzz::fix_batches`): mutation cannot solve a CRC, and without this the
//!   checks past it would never run;
//! - 1: append the records to a fresh `Partition` (a real log in a temporary
//!   directory, `/dev/shm` when there is one), as the Produce handler does;
//! - 2: with bit 1, a 1 KiB `segment.bytes` instead of 1 GiB (the batch size check and
//!   segment rolling);
//! - 3: with bit 1, a 100-byte `max.message.bytes` instead of Kafka's default;
//! - 4: with bit 1, append the same records a second time (idempotent producers'
//!   duplicate and sequence checks against the state the first append left).
//!
//! Always run: `BatchHeader::total_size_from_prefix`, `parse`, `parse_and_validate` and
//! `BatchIter` (crates/storage/src/batch.rs), with the invariants their docs promise;
//! and, for every batch `parse_and_validate` accepts (what the log stores), the record
//! walk ListOffsets does in a stored batch to find a timestamp's record
//! (`handlers::list_offsets::find_record`: varints and decompression of bytes a client
//! wrote).
//!
//! On a partition: an append either fails and writes nothing, or writes offsets that
//! follow the log end, and every batch read back passes `parse_and_validate`.

#![no_main]

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use strom_coordinator::Partition;
use strom_fuzz::fix_batches;
use strom_server::MmapAlloc;
use strom_server::handlers::list_offsets::find_record;
use strom_storage::batch::{BatchIter, HEADER_SIZE, MAGIC_V2};
use strom_storage::{BatchHeader, LogConfig, ManualClock};

#[global_allocator]
static ALLOC: MmapAlloc = MmapAlloc::new();

/// Kafka's default `max.message.bytes` (the broker's default for topics).
const DEFAULT_MAX_MESSAGE_BYTES: u64 = 1_048_588;

fuzz_target!(|data: &[u8]| {
    let Some((&control, records)) = data.split_first() else {
        return;
    };
    let mut records = records.to_vec();
    if control & 0x01 != 0 {
        fix_batches(&mut records);
    }
    let stored = check_headers(&records);
    for batch in stored {
        decode_records(&batch);
    }
    if control & 0x02 != 0 {
        append(Bytes::from(records), control);
    }
});

/// The header functions and their invariants. Returns the batches the log would store
/// (those `parse_and_validate` accepts, each on its own).
fn check_headers(buf: &[u8]) -> Vec<Bytes> {
    let prefix = BatchHeader::total_size_from_prefix(buf);
    if let Ok(size) = prefix {
        assert!(size >= HEADER_SIZE, "{size}");
    }
    match BatchHeader::parse(buf) {
        Ok(h) => {
            assert_eq!(prefix.as_ref().ok(), Some(&h.total_size()));
            assert_eq!(h.magic, MAGIC_V2);
            assert!(h.last_offset_delta >= 0 && h.offset_count() >= 1, "{h:?}");
            let _ = (h.compression_codec(), h.is_control(), h.is_transactional());
            let _ = (h.is_log_append_time(), h.has_producer_id());
            if let Ok(v) = BatchHeader::parse_and_validate(buf) {
                assert_eq!(v, h);
                assert!(h.total_size() <= buf.len());
            }
        }
        Err(e) => {
            let _ = e.to_string();
            assert!(BatchHeader::parse_and_validate(buf).is_err());
        }
    }

    let mut stored = Vec::new();
    let mut iter = BatchIter::new(buf);
    let mut end = 0;
    for (at, h) in iter.by_ref() {
        assert_eq!(at, end, "batches are back to back");
        end = at + h.total_size();
        assert!(end <= buf.len() && h.total_size() >= HEADER_SIZE);
        let batch = &buf[at..end];
        if BatchHeader::parse_and_validate(batch).is_ok() {
            stored.push(Bytes::copy_from_slice(batch));
        }
    }
    assert_eq!(iter.position(), end);
    stored
}

/// What ListOffsets does with the stored batch that holds a timestamp: find the first
/// record at or after it (`handlers::list_offsets::find_record`, public for this).
fn decode_records(batch: &Bytes) {
    for target in [i64::MIN, 0, i64::MAX] {
        if let Some((timestamp, _)) = find_record(batch, |ts| ts >= target) {
            assert!(timestamp >= target);
        }
    }
}

/// A scratch directory in memory when the machine has one.
fn scratch() -> tempfile::TempDir {
    let shm = PathBuf::from("/dev/shm");
    if shm.is_dir()
        && let Ok(dir) = tempfile::Builder::new()
            .prefix("strom-fuzz")
            .tempdir_in(&shm)
    {
        return dir;
    }
    tempfile::tempdir().expect("temp dir")
}

/// Appends `records` to a new partition as the Produce handler does, and checks what
/// the log then holds.
fn append(records: Bytes, control: u8) {
    let dir = scratch();
    let config = LogConfig {
        segment_bytes: if control & 0x04 != 0 { 1024 } else { 1 << 30 },
        // One page: the fuzzer creates a log per input, and the default 10 MiB index
        // files would make that the whole cost.
        segment_index_bytes: 4096,
        ..LogConfig::default()
    };
    let max_message_bytes = if control & 0x08 != 0 {
        100
    } else {
        DEFAULT_MAX_MESSAGE_BYTES
    };
    let partition = Partition::open(dir.path(), Arc::from("t"), 0, config, ManualClock::new(0))
        .expect("a fresh partition opens");
    let times = if control & 0x10 != 0 { 2 } else { 1 };
    for _ in 0..times {
        let before = partition.log_end_offset().expect("open");
        match partition.append(records.clone(), max_message_bytes) {
            Ok(outcome) => {
                assert!(outcome.base_offset <= outcome.last_offset, "{outcome:?}");
                let end = partition.log_end_offset().expect("open");
                if outcome.duplicate {
                    assert_eq!(end, before, "a duplicate writes nothing");
                    assert!(outcome.last_offset < before, "{outcome:?}");
                } else {
                    assert_eq!(outcome.base_offset, before, "{outcome:?}");
                    assert_eq!(end, outcome.last_offset + 1, "{outcome:?}");
                }
            }
            Err(e) => {
                let _ = e.to_string();
                assert_eq!(partition.log_end_offset().expect("open"), before);
            }
        }
    }
    let end = partition.log_end_offset().expect("open");
    let mut offset = 0;
    while offset < end {
        let read = partition
            .fetch(offset, 1 << 20)
            .expect("offsets below the end read");
        let mut batches = 0;
        for (at, h) in BatchIter::new(&read.records) {
            BatchHeader::parse_and_validate(&read.records[at..])
                .expect("stored batches stay valid");
            let base = u64::try_from(h.base_offset).expect("assigned offsets are positive");
            // The first batch holds `offset`; the rest follow it without a gap.
            assert!(
                base <= offset && offset < base + h.offset_count(),
                "{h:?} at {offset}"
            );
            offset = base + h.offset_count();
            batches += 1;
        }
        assert!(batches > 0, "offset {offset} of {end} reads nothing");
    }
}
