//! Undoing an append, as a full disk needs: after [`LogSegment::rollback`] to a
//! [`LogSegment::mark`] the segment is as it was, and what is appended next leaves the
//! same files as if the undone append had never happened. (`tests/disk_full.rs` runs the
//! real thing on a full tmpfs.)

use std::fs;
use std::path::Path;

use bytes::Bytes;

use super::{LogSegment, PreparedBatch};
use crate::batch::BatchHeader;
use crate::config::LogConfig;
use crate::testing::batch_of;

const T0: i64 = 1_700_000_000_000;

fn config() -> LogConfig {
    LogConfig {
        // An index entry after every batch, so the undone append adds some.
        index_interval_bytes: 1,
        ..LogConfig::default()
    }
}

/// Batches of one record each, stamped with `timestamps`, from offset `first`.
fn batches(first: u64, timestamps: &[i64]) -> Vec<PreparedBatch> {
    timestamps
        .iter()
        .enumerate()
        .map(|(i, &ts)| {
            let bytes = Bytes::from(batch_of(1, 40, ts));
            let header = BatchHeader::parse_and_validate(&bytes).expect("valid batch");
            PreparedBatch {
                bytes,
                header,
                base_offset: first + i as u64,
                leader_epoch: 0,
            }
        })
        .collect()
}

fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = fs::read_dir(dir)
        .expect("list")
        .map(|e| e.expect("entry").path())
        .map(|p| {
            let name = p.file_name().expect("name").to_string_lossy().into_owned();
            (name, fs::read(&p).expect("read"))
        })
        .collect();
    out.sort();
    out
}

#[test]
fn rollback_restores_the_segment_exactly() {
    let (a, b) = (
        tempfile::tempdir().expect("tempdir"),
        tempfile::tempdir().expect("tempdir"),
    );
    let config = config();
    let mut undone = LogSegment::create(a.path(), 0, &config).expect("create");
    let mut straight = LogSegment::create(b.path(), 0, &config).expect("create");
    for s in [&mut undone, &mut straight] {
        s.append(&batches(0, &[T0 + 1, T0 + 3, T0 + 2]), T0)
            .expect("append");
    }

    let mark = undone.mark();
    // Larger timestamps, so the undone append moves the max timestamp and adds time
    // index entries too.
    undone
        .append(&batches(3, &[T0 + 10, T0 + 11]), T0)
        .expect("append to undo");
    assert_eq!(undone.next_offset(), 5);
    undone.rollback(&mark).expect("rollback");

    assert_eq!(undone.size(), straight.size());
    assert_eq!(undone.next_offset(), 3);
    assert_eq!(undone.max_timestamp(), straight.max_timestamp());
    assert_eq!(undone.offset_index().len(), straight.offset_index().len());
    assert_eq!(undone.time_index().len(), straight.time_index().len());
    assert_eq!(
        fs::metadata(undone.log_path()).expect("metadata").len(),
        straight.size(),
        "the undone batches are still in the .log"
    );
    assert!(undone.read(3, 1 << 20, u64::MAX).expect("read").is_none());

    for s in [&mut undone, &mut straight] {
        s.append(&batches(3, &[T0 + 4, T0 + 5]), T0)
            .expect("append after");
        s.seal().expect("seal");
    }
    assert_eq!(files(a.path()), files(b.path()));
}
