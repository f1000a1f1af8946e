//! Opening a log: find its segments, recover what a crash or damage left invalid,
//! rebuild missing or corrupt indexes, and log (at warn level, naming each file) exactly
//! what was cut, rebuilt or deleted.
//!
//! Which segments are checked, and what damage costs, follows Kafka's `LogLoader`:
//!
//! - After a crash, the segments from the one holding the recovery point onward were
//!   not all flushed: each is fully validated ([`LogSegment::recover`]) and its indexes
//!   rebuilt. The first one with invalid bytes is cut there and every later segment is
//!   deleted, as Kafka's `recoverLog` does ("Corruption found in segment"): they were
//!   written after the damage, never flushed, and offsets continue from the cut.
//! - The other segments are trusted: all of them after a clean shutdown (marker
//!   present), those below the recovery point after a crash (flushed when they rolled).
//!   Each gets the cheap check of [`LogSegment::load`]. One that fails it, or whose
//!   `.index` or `.timeindex` is missing, is recovered alone, as Kafka's
//!   `loadSegmentFiles` recovers a segment with a missing or corrupt index: indexes
//!   rebuilt, an invalid tail cut. Later segments, flushed before, are kept; if batches
//!   were cut, the log keeps a gap in its offsets, as Kafka's does. A fetch in the gap
//!   gets the first batch after it (as on a compacted topic), and the records after the
//!   gap keep their offsets, so committed consumer offsets still point at them.
//! - A segment whose offsets run past the next segment's base ends the log there, like
//!   damage in an unflushed segment.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::Log;
use crate::checkpoint::{self, PartitionCheckpoint};
use crate::config::{Clock, LogConfig};
use crate::error::{IoContext, Result};
use crate::recovery::SegmentRecovery;
use crate::segment::LogSegment;

/// What opening the log did, for logging and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    pub clean_shutdown: bool,
    /// Segments fully validated, with what each cut.
    pub recovered: Vec<SegmentRecovery>,
    /// Trusted segments whose index was missing or failed its check and was rebuilt.
    pub rebuilt_indexes: Vec<u64>,
    /// Segments deleted because they followed damage.
    pub deleted_segments: Vec<u64>,
    /// Offsets absent between two kept segments, `(first missing, next segment's
    /// base)`: cut by this recovery, or by an earlier one.
    pub offset_gaps: Vec<(u64, u64)>,
}

impl LoadReport {
    pub fn truncated_bytes(&self) -> u64 {
        self.recovered.iter().map(|r| r.truncated_bytes).sum()
    }

    /// Batches named in the bytes cut from segments (deleted segments not counted).
    pub fn dropped_batches(&self) -> u64 {
        self.recovered.iter().map(|r| r.dropped_batches).sum()
    }

    /// Whether opening cut, rebuilt or deleted anything on disk (a gap left by an
    /// earlier recovery is no repair).
    pub fn repaired(&self) -> bool {
        self.truncated_bytes() > 0
            || !self.rebuilt_indexes.is_empty()
            || !self.deleted_segments.is_empty()
    }
}

/// Parses `NNNNNNNNNNNNNNNNNNNN.log` into its base offset.
fn segment_base(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".log")?;
    (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

/// `first..=last` or `none`, for log lines.
fn offsets_display(span: Option<(u64, u64)>) -> String {
    span.map_or_else(|| "none".to_owned(), |(f, l)| format!("{f}..={l}"))
}

/// How a segment is opened.
enum Check {
    /// At or after the recovery point of a crashed log: validate everything.
    Unflushed,
    /// Trusted: the cheap check of [`LogSegment::load`], unless index files are missing.
    Trusted { missing_indexes: Vec<PathBuf> },
}

impl Log {
    /// Opens (or creates) the log in `dir`.
    pub fn open(dir: &Path, config: LogConfig, clock: Arc<dyn Clock>) -> Result<Log> {
        Self::open_with_report(dir, config, clock).map(|(log, _)| log)
    }

    /// Opens the log and says what recovery did.
    pub fn open_with_report(
        dir: &Path,
        config: LogConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<(Log, LoadReport)> {
        config.validate()?;
        fs::create_dir_all(dir).ctx("creating log directory", dir)?;
        let clean = checkpoint::take_clean_shutdown_marker(dir)?;
        let saved = PartitionCheckpoint::read(dir)?;
        let mut report = LoadReport {
            clean_shutdown: clean,
            ..LoadReport::default()
        };

        let mut bases = Vec::new();
        for entry in fs::read_dir(dir).ctx("listing", dir)? {
            let entry = entry.ctx("listing", dir)?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(base) = segment_base(name) {
                bases.push(base);
            } else if name.ends_with(".tmp") {
                // A checkpoint write that never reached its rename.
                let _ = fs::remove_file(entry.path());
            }
        }
        bases.sort_unstable();

        // With no trustworthy recovery point, everything is scanned.
        let recovery_point = if clean {
            u64::MAX
        } else {
            saved.map_or(0, |c| c.recovery_point)
        };
        let first_to_recover = bases
            .iter()
            .rev()
            .find(|&&b| b <= recovery_point)
            .copied()
            .unwrap_or(0);

        let mut segments = BTreeMap::new();
        // Once set, the log ends at this offset and the remaining segments are deleted.
        let mut log_end = None;
        for (i, &base) in bases.iter().enumerate() {
            if let Some(end) = log_end {
                delete_after_damage(dir, base, &config, end)?;
                report.deleted_segments.push(base);
                continue;
            }
            let next_base = bases.get(i + 1).copied();
            let check = if !clean && base >= first_to_recover {
                Check::Unflushed
            } else {
                let missing_indexes = [
                    LogSegment::index_path_for(dir, base),
                    LogSegment::time_index_path_for(dir, base),
                ]
                .into_iter()
                .filter(|p| !p.exists())
                .collect();
                Check::Trusted { missing_indexes }
            };
            // Opening creates a missing index file (empty), so look before.
            let mut segment = LogSegment::open(dir, base, &config)?;
            let opened = open_segment(&mut segment, check, next_base)?;
            if opened.rebuilt_indexes {
                report.rebuilt_indexes.push(base);
            }
            report.recovered.extend(opened.recovered);
            if opened.ends_log {
                log_end = Some(segment.next_offset());
            } else if let Some(n) = next_base.filter(|&n| n > segment.next_offset()) {
                report.offset_gaps.push((segment.next_offset(), n));
            }
            segments.insert(base, segment);
        }

        let saved_start = saved.map_or(0, |c| c.log_start_offset);
        if segments.is_empty() {
            let segment = LogSegment::create(dir, saved_start, &config)?;
            segments.insert(saved_start, segment);
        }
        let mut log = Log {
            dir: dir.to_path_buf(),
            config,
            clock,
            log_start_offset: 0,
            next_offset: 0,
            recovery_point: 0,
            unflushed_records: 0,
            oldest_unflushed_ms: None,
            offline: None,
            segments,
        };
        // The last segment is the active one; make sure its indexes have room.
        log.active_mut().unseal()?;
        log.next_offset = log.active().next_offset();
        let first_base = log.segments.keys().next().copied().unwrap_or(0);
        log.log_start_offset = saved_start.clamp(first_base, log.next_offset);
        if !report.recovered.is_empty() || !report.deleted_segments.is_empty() {
            // What recovery kept (and cut) must be durable before it counts as recovered.
            log.active().flush()?;
            for segment in log.segments.values() {
                segment.flush_log()?;
            }
            checkpoint::sync_dir(dir)?;
        }
        log.recovery_point = log.next_offset;
        if let Err(e) = log.write_checkpoint() {
            if log.is_offline() {
                return Err(e);
            }
            // Not even written (a full disk): the previous checkpoint stands. Its older
            // recovery point only makes the next recovery scan more, so the log opens.
            tracing::warn!(dir = %dir.display(), error = %e,
                "cannot write the partition checkpoint; keeping the previous one");
        }
        Ok((log, report))
    }
}

/// What [`open_segment`] did to one segment.
struct Opened {
    /// What recovery found, if it ran.
    recovered: Option<SegmentRecovery>,
    /// A trusted segment's indexes were rebuilt.
    rebuilt_indexes: bool,
    /// The log ends with this segment: later ones are deleted.
    ends_log: bool,
}

/// Checks or recovers one segment, logging what was done.
fn open_segment(segment: &mut LogSegment, check: Check, next_base: Option<u64>) -> Result<Opened> {
    let base = segment.base_offset();
    let log_path = segment.log_path().display().to_string();
    let unflushed = matches!(check, Check::Unflushed);
    match check {
        Check::Unflushed => {
            tracing::debug!(path = %log_path, base_offset = base, "recovering unflushed segment");
        }
        Check::Trusted { missing_indexes } if !missing_indexes.is_empty() => {
            for missing in missing_indexes {
                tracing::warn!(
                    path = %missing.display(),
                    base_offset = base,
                    "index file missing; rebuilding the segment's indexes from its log",
                );
            }
        }
        Check::Trusted { .. } => match segment.load(next_base) {
            Ok(()) => {
                if let Some(n) = next_base.filter(|&n| n > segment.next_offset()) {
                    tracing::info!(
                        path = %log_path,
                        missing_offsets = %format!("{}..{n}", segment.next_offset()),
                        "offsets missing before the next segment (a gap left by an earlier recovery)",
                    );
                }
                return Ok(Opened {
                    recovered: None,
                    rebuilt_indexes: false,
                    ends_log: false,
                });
            }
            Err(why) => {
                tracing::warn!(
                    path = %log_path,
                    base_offset = base,
                    reason = %why,
                    "segment failed its check; validating every batch and rebuilding its indexes",
                );
            }
        },
    }
    let r = segment.recover()?;
    if r.truncated_bytes > 0 {
        tracing::warn!(
            path = %log_path,
            base_offset = base,
            position = r.valid_bytes,
            truncated_bytes = r.truncated_bytes,
            dropped_batches = r.dropped_batches,
            dropped_offsets = %offsets_display(r.dropped_offsets),
            kept_batches = r.batches,
            next_offset = r.next_offset,
            reason = r.reason.as_deref().unwrap_or(""),
            "truncated damaged segment",
        );
    }
    let overlap = next_base.filter(|&n| n < r.next_offset);
    if let Some(n) = overlap {
        tracing::warn!(
            path = %log_path,
            next_offset = r.next_offset,
            next_segment_base = n,
            "segment's offsets run past the next segment's base; the log ends here",
        );
    }
    // Kafka's rule: damage in an unflushed segment ends the log.
    let ends_log = overlap.is_some() || (unflushed && r.truncated_bytes > 0);
    if next_base.is_some() && !ends_log {
        segment.seal()?;
    }
    if !unflushed {
        tracing::warn!(
            path = %segment.offset_index().path().display(),
            time_index = %segment.time_index().path().display(),
            base_offset = base,
            entries = segment.offset_index().len(),
            time_index_entries = segment.time_index().len(),
            batches = r.batches,
            "rebuilt the segment's indexes from its log",
        );
    }
    if let Some(n) = next_base.filter(|&n| !ends_log && n > r.next_offset) {
        tracing::warn!(
            path = %log_path,
            missing_offsets = %format!("{}..{n}", r.next_offset),
            next_segment_base = n,
            "offsets missing before the next segment, which is kept; fetches in the gap continue at its base",
        );
    }
    Ok(Opened {
        recovered: Some(r),
        rebuilt_indexes: !unflushed,
        ends_log,
    })
}

/// Deletes a segment that follows damage which ended the log at `log_end`, logging
/// what it held (read from its batch headers, which are not validated).
fn delete_after_damage(dir: &Path, base: u64, config: &LogConfig, log_end: u64) -> Result<()> {
    let segment = LogSegment::open(dir, base, config)?;
    let (mut batches, mut span) = (0u64, None);
    segment.scan_headers(0, |_, h| {
        let first = u64::try_from(h.base_offset).ok();
        let last = h
            .base_offset
            .checked_add(i64::from(h.last_offset_delta))
            .and_then(|l| u64::try_from(l).ok());
        let (Some(first), Some(last)) = (first, last) else {
            return false;
        };
        batches += 1;
        span = Some((span.map_or(first, |(f, _)| f), last));
        true
    })?;
    tracing::warn!(
        path = %segment.log_path().display(),
        base_offset = base,
        bytes = segment.size(),
        batches,
        offsets = %offsets_display(span),
        log_end_offset = log_end,
        "deleted segment after damage: the log now ends before it",
    );
    segment.delete(dir)
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::path::Path;

    use bytes::Bytes;

    use super::{LoadReport, Log, segment_base};
    use crate::batch::BatchIter;
    use crate::config::ManualClock;
    use crate::log::tests::{T0, small_config};
    use crate::segment::LogSegment;
    use crate::testing::batch_of;

    fn open(dir: &Path) -> (Log, LoadReport) {
        Log::open_with_report(dir, small_config(), ManualClock::new(T0)).expect("open")
    }

    /// A log of 18 two-record batches (661 bytes each), 6 per segment: segments 0, 12
    /// and 24; closed cleanly unless `crash`.
    fn filled(dir: &Path, crash: bool) {
        let (mut log, _) = open(dir);
        for _ in 0..18 {
            log.append(Bytes::from(batch_of(2, 300, T0)), 0)
                .expect("append");
        }
        assert_eq!(log.segment_base_offsets(), [0, 12, 24]);
        if !crash {
            log.close().expect("close");
        }
    }

    /// (base, last) offset of every batch, read from the log start across any gap.
    fn offsets(log: &Log) -> Vec<(u64, u64)> {
        let (mut out, mut offset) = (Vec::new(), log.log_start_offset());
        while offset < log.log_end_offset() {
            let bytes = log.read(offset, 1 << 20).expect("read");
            assert!(!bytes.is_empty(), "nothing served at {offset}");
            for (_, h) in BatchIter::new(&bytes) {
                out.push((h.base_offset as u64, h.last_offset() as u64));
                offset = h.last_offset() as u64 + 1;
            }
        }
        out
    }

    /// The two-record batches of offsets `from..to`.
    fn batches(from: u64, to: u64) -> Vec<(u64, u64)> {
        (from..to).step_by(2).map(|b| (b, b + 1)).collect()
    }

    #[test]
    fn parses_kafka_segment_names() {
        assert_eq!(segment_base("00000000000000000000.log"), Some(0));
        assert_eq!(segment_base("00000000000000001234.log"), Some(1234));
        assert_eq!(segment_base("00000000000000001234.index"), None);
        assert_eq!(segment_base("1234.log"), None);
        assert_eq!(segment_base("0000000000000000123x.log"), None);
    }

    #[test]
    fn a_damaged_flushed_segment_is_cut_alone_and_leaves_a_gap() {
        let dir = tempfile::tempdir().expect("tempdir");
        filled(dir.path(), false);
        // Corrupt the third batch of segment 12 (offsets 16..17). A clean start checks
        // a trusted segment only after its last index entry, so lose its index too:
        // that makes it validate every batch.
        let path = LogSegment::log_path_for(dir.path(), 12);
        let mut data = fs::read(&path).expect("read");
        data[2 * 661 + 100] ^= 1;
        fs::write(&path, &data).expect("write");
        fs::remove_file(LogSegment::index_path_for(dir.path(), 12)).expect("rm index");

        let (mut log, report) = open(dir.path());
        let r = &report.recovered[0];
        assert_eq!((r.base_offset, r.batches, r.valid_bytes), (12, 2, 2 * 661));
        assert_eq!((r.truncated_bytes, r.dropped_batches), (4 * 661, 4));
        assert_eq!((r.dropped_offsets, r.next_offset), (Some((16, 23)), 16));
        assert_eq!(report.rebuilt_indexes, [12]);
        assert!(report.deleted_segments.is_empty());
        assert_eq!(report.offset_gaps, [(16, 24)]);
        let expected = [batches(0, 16), batches(24, 36)].concat();
        assert_eq!(offsets(&log), expected);
        assert_eq!(log.log_end_offset(), 36);
        let appended = log.append(Bytes::from(batch_of(1, 1, T0)), 0);
        assert_eq!(appended.expect("append").first_offset, 36);
        log.close().expect("close");

        // The gap is no damage to later opens, clean or not, even when every segment
        // must be recovered.
        let (log, report) = open(dir.path());
        assert!(!report.repaired() && report.recovered.is_empty());
        assert_eq!(report.offset_gaps, [(16, 24)]);
        let mut expected = expected;
        expected.push((36, 36));
        assert_eq!(offsets(&log), expected);
        drop(log);
        fs::remove_file(dir.path().join(crate::CHECKPOINT_FILE)).expect("rm checkpoint");
        let (log, report) = open(dir.path());
        assert_eq!(report.recovered.len(), 3);
        assert!(!report.repaired(), "{report:?}");
        assert_eq!(offsets(&log), expected);
    }

    #[test]
    fn garbage_after_a_flushed_segment_costs_no_offsets() {
        let dir = tempfile::tempdir().expect("tempdir");
        filled(dir.path(), true);
        let path = LogSegment::log_path_for(dir.path(), 12);
        let mut data = fs::read(&path).expect("read");
        data.extend_from_slice(&[0xab; 100]);
        fs::write(&path, &data).expect("write");

        let (log, report) = open(dir.path());
        let r = &report.recovered[0];
        assert_eq!((r.base_offset, r.truncated_bytes), (12, 100));
        assert_eq!((r.dropped_batches, r.dropped_offsets), (0, None));
        assert!(report.deleted_segments.is_empty() && report.offset_gaps.is_empty());
        assert_eq!(offsets(&log), batches(0, 36));
    }

    #[test]
    fn an_index_with_a_partial_entry_or_a_wrong_last_entry_is_rebuilt() {
        let dir = tempfile::tempdir().expect("tempdir");
        filled(dir.path(), false);
        let index = |base| LogSegment::index_path_for(dir.path(), base);
        let saved = [
            fs::read(index(0)).expect("0"),
            fs::read(index(12)).expect("12"),
        ];
        let mut partial = saved[0].clone();
        partial.extend_from_slice(&[0, 0, 1]);
        fs::write(index(0), partial).expect("write");
        // The last entry of segment 12 moved one offset on: still increasing, but not
        // the last offset of the batch it points at.
        let mut wrong = saved[1].clone();
        let at = wrong.len() - 8 + 3;
        wrong[at] += 1;
        fs::write(index(12), wrong).expect("write");

        let (log, report) = open(dir.path());
        assert_eq!(report.rebuilt_indexes, [0, 12]);
        assert_eq!(report.truncated_bytes(), 0);
        assert_eq!(offsets(&log), batches(0, 36));
        log.close().expect("close");
        assert_eq!(fs::read(index(0)).expect("0"), saved[0]);
        assert_eq!(fs::read(index(12)).expect("12"), saved[1]);
    }
}
