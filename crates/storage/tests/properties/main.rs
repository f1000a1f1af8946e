//! Property tests of the partition log through its public API only:
//!
//! 1. crash recovery after damage to the last segment (truncation or a bit flip) keeps
//!    exactly the batches before the damage, byte for byte;
//! 2. a clean close and reopen keeps everything and recovers nothing;
//! 3. reads, the sparse offset and time indexes, timestamp lookups and the max timestamp
//!    agree with a linear model of the appended batches (on a fresh log, after a clean
//!    reopen and after a crash, with appends after the reopen).
//!
//! Every property checks the log against an independent model: the list of batches the
//! test appended, with the base offsets and leader epochs it expects the log to assign.

mod model;
mod strategy;

use std::fs;

use proptest::prelude::*;
use strom_storage::batch::PARTITION_LEADER_EPOCH_OFFSET;
use strom_storage::{Log, ManualClock};

use model::{
    NOW_MS, append_all, assert_batches, check_against_model, ok, open, read_all, temp_dir,
};
use strategy::{AppendSpec, Damage, batch_spec, config, damage, encode_plan, plan};

/// Cases per property: 64 by default (the target runs in seconds in debug builds);
/// `PROPTEST_CASES=5000` for a deeper run.
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(64)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    /// Property 1. Crash (drop without close), damage the last segment's `.log`, reopen:
    /// exactly the batches wholly before the damage survive, byte for byte, the log ends
    /// after them, and appends continue there.
    ///
    /// The one undetectable damage: the partition leader epoch (batch bytes 12..16) is
    /// outside the CRC and nothing else constrains it, so a flip there is kept, and the
    /// test expects every batch kept with that one bit flipped. Flips in the base offset
    /// (offset continuity), length (bounds and CRC range), magic and CRC itself must be
    /// detected, as must every flip in the CRC-covered rest.
    #[test]
    fn recovery_after_damage_keeps_exactly_the_batches_before_it(
        config in config(),
        plan in plan(1..30),
        damage in damage(),
        max_bytes in 1usize..40_000,
        extra in batch_spec(),
    ) {
        let dir = temp_dir();
        let mut ts = 1000;
        let encoded = encode_plan(&plan, &mut ts);
        let mut model = Vec::new();
        let mut log = open(dir.path(), &config)?;
        append_all(&mut log, &encoded, &mut model)?;
        assert_batches(&read_all(&log, max_bytes)?, &model)?;
        let bases: Vec<u64> = log.segments().map(|s| s.base_offset()).collect();
        let last_base = *bases.last().expect("a log has a segment");
        let last_path = log.segments().last().expect("segment").log_path().to_path_buf();
        drop(log); // crash: no close

        // The model's batches in the last segment, with their positions in its file.
        let first_in_last = model.iter().position(|b| b.base >= last_base).expect("last segment holds a batch");
        let mut positions = Vec::new();
        let mut size = 0usize;
        for b in &model[first_in_last..] {
            positions.push(size);
            size += b.bytes.len();
        }
        let mut file = fs::read(&last_path).expect("read last segment");
        prop_assert_eq!(file.len(), size, "last segment size before damage");

        // Damage the file and work out what recovery must keep.
        let batch_at = |pos: usize| positions.iter().rposition(|&p| p <= pos).expect("pos in file");
        let mut expected = model.clone();
        let kept_in_last = match damage {
            Damage::Truncate(at) => {
                let cut = at.index(size);
                file.truncate(cut);
                positions.iter().zip(&model[first_in_last..])
                    .take_while(|(p, b)| *p + b.bytes.len() <= cut)
                    .count()
            }
            Damage::Flip(..) | Damage::FlipField(..) => {
                let (pos, bit) = match damage {
                    Damage::Flip(at, bit) => (at.index(size), bit),
                    Damage::FlipField(batch, field, at, bit) => {
                        let k = batch.index(positions.len());
                        let range = field.range();
                        (positions[k] + range.start + at.index(range.len()), bit)
                    }
                    Damage::Truncate(_) => unreachable!(),
                };
                file[pos] ^= 1 << bit;
                let k = batch_at(pos);
                let in_batch = pos - positions[k];
                if (PARTITION_LEADER_EPOCH_OFFSET..PARTITION_LEADER_EPOCH_OFFSET + 4).contains(&in_batch) {
                    // Undetectable by design: kept, flipped.
                    expected[first_in_last + k].bytes[in_batch] ^= 1 << bit;
                    positions.len()
                } else {
                    k
                }
            }
        };
        fs::write(&last_path, &file).expect("write damaged segment");
        expected.truncate(first_in_last + kept_in_last);
        let kept_bytes: usize = expected[first_in_last..].iter().map(|b| b.bytes.len()).sum();

        let (mut log, report) = ok(
            Log::open_with_report(dir.path(), config.clone(), ManualClock::new(NOW_MS)),
            "reopen",
        )?;
        prop_assert!(!report.clean_shutdown);
        prop_assert!(report.deleted_segments.is_empty(), "deleted {:?}", report.deleted_segments);
        let last = report.recovered.iter().find(|r| r.base_offset == last_base);
        prop_assert!(last.is_some(), "the last segment was not recovered: {:?}", report);
        let last = last.expect("checked");
        prop_assert_eq!(last.batches, kept_in_last as u64);
        prop_assert_eq!(last.valid_bytes, kept_bytes as u64);
        prop_assert_eq!(last.truncated_bytes, (file.len() - kept_bytes) as u64);
        prop_assert_eq!(last.reason.is_some(), file.len() > kept_bytes);
        for r in &report.recovered {
            prop_assert!(r.base_offset == last_base || r.truncated_bytes == 0, "{:?}", r);
        }
        prop_assert_eq!(log.segments().map(|s| s.base_offset()).collect::<Vec<_>>(), bases);
        let leo = expected.last().map_or(last_base, |b| b.last + 1);
        prop_assert_eq!(log.log_end_offset(), leo);
        prop_assert_eq!(fs::metadata(&last_path).expect("meta").len(), kept_bytes as u64);
        assert_batches(&read_all(&log, max_bytes)?, &expected)?;
        check_against_model(&log, &expected, max_bytes)?;

        // Appends continue at the new end.
        let more = encode_plan(&[AppendSpec { batches: vec![extra], leader_epoch: 7 }], &mut ts);
        append_all(&mut log, &more, &mut expected)?;
        prop_assert_eq!(expected.last().expect("appended").base, leo);
        assert_batches(&read_all(&log, max_bytes)?, &expected)?;
    }

    /// Property 2. A clean close and reopen keeps every batch, segment and offset index
    /// entry, reports a clean shutdown and recovers, rebuilds and deletes nothing.
    #[test]
    fn clean_close_and_reopen_keeps_everything(
        config in config(),
        plan in plan(1..30),
        max_bytes in 1usize..40_000,
        extra in batch_spec(),
    ) {
        let dir = temp_dir();
        let mut ts = 1000;
        let mut model = Vec::new();
        let mut log = open(dir.path(), &config)?;
        append_all(&mut log, &encode_plan(&plan, &mut ts), &mut model)?;
        let bases: Vec<u64> = log.segments().map(|s| s.base_offset()).collect();
        let indexes: Vec<Vec<_>> = log
            .segments()
            .map(|s| (0..s.offset_index().len()).map(|i| s.offset_index().entry(i)).collect())
            .collect();
        let max_ts = log.max_timestamp();
        let leo = log.log_end_offset();
        ok(log.close(), "close")?;

        let (mut log, report) = ok(
            Log::open_with_report(dir.path(), config.clone(), ManualClock::new(NOW_MS)),
            "reopen",
        )?;
        prop_assert!(report.clean_shutdown);
        prop_assert!(report.deleted_segments.is_empty());
        prop_assert!(report.recovered.is_empty(), "recovered after a clean shutdown: {:?}", report);
        prop_assert!(report.rebuilt_indexes.is_empty(), "rebuilt indexes after a clean shutdown: {:?}", report);
        prop_assert_eq!(log.log_end_offset(), leo);
        prop_assert_eq!(log.segments().map(|s| s.base_offset()).collect::<Vec<_>>(), bases);
        let reopened: Vec<Vec<_>> = log
            .segments()
            .map(|s| (0..s.offset_index().len()).map(|i| s.offset_index().entry(i)).collect())
            .collect();
        prop_assert_eq!(reopened, indexes);
        prop_assert_eq!(log.max_timestamp(), max_ts);
        assert_batches(&read_all(&log, max_bytes)?, &model)?;
        check_against_model(&log, &model, max_bytes)?;

        let more = encode_plan(&[AppendSpec { batches: vec![extra], leader_epoch: 3 }], &mut ts);
        append_all(&mut log, &more, &mut model)?;
        prop_assert_eq!(model.last().expect("appended").base, leo);
        assert_batches(&read_all(&log, max_bytes)?, &model)?;
    }

    /// Property 3. Reads, offset index entries and lookups, the time index, timestamp
    /// lookups and the max timestamp agree with linear scans of the model: on a fresh
    /// log, or after a clean reopen or a crash, with more appends after the reopen.
    #[test]
    fn lookups_agree_with_linear_scans(
        config in config(),
        plan in plan(1..25),
        reopen in 0u8..3,
        after in plan(0..8),
        max_bytes in 1usize..40_000,
    ) {
        let dir = temp_dir();
        let mut ts = 1000;
        let mut model = Vec::new();
        let mut log = open(dir.path(), &config)?;
        append_all(&mut log, &encode_plan(&plan, &mut ts), &mut model)?;
        match reopen {
            0 => {}
            1 => {
                ok(log.close(), "close")?;
                log = open(dir.path(), &config)?;
            }
            _ => {
                drop(log);
                log = open(dir.path(), &config)?;
            }
        }
        append_all(&mut log, &encode_plan(&after, &mut ts), &mut model)?;
        check_against_model(&log, &model, max_bytes)?;
    }
}
