//! Opening a log: find its segments, recover what a crash may have damaged, rebuild
//! missing or corrupt indexes.
//!
//! After a clean shutdown (marker present) segments are trusted: indexes are
//! sanity-checked and only the active segment's tail after its last index entry is
//! validated. Otherwise every segment from the one holding the recovery point onward is
//! fully validated ([`LogSegment::recover`]), and the log is cut at the first damage:
//! the damaged segment is truncated and every later segment deleted, since offsets must
//! stay dense.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
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
    /// Segments whose index was missing or corrupt and was rebuilt.
    pub rebuilt_indexes: Vec<u64>,
    /// Segments deleted because they followed damage.
    pub deleted_segments: Vec<u64>,
}

impl LoadReport {
    pub fn truncated_bytes(&self) -> u64 {
        self.recovered.iter().map(|r| r.truncated_bytes).sum()
    }
}

/// Parses `NNNNNNNNNNNNNNNNNNNN.log` into its base offset.
fn segment_base(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".log")?;
    (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
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
        let mut damaged_at = None;
        for (i, &base) in bases.iter().enumerate() {
            if damaged_at.is_some() {
                LogSegment::open(dir, base, &config)?.delete(dir)?;
                report.deleted_segments.push(base);
                continue;
            }
            let next_base = bases.get(i + 1).copied();
            let indexes_present = LogSegment::index_path_for(dir, base).exists()
                && LogSegment::time_index_path_for(dir, base).exists();
            let mut segment = LogSegment::open(dir, base, &config)?;
            let must_recover = !clean && base >= first_to_recover;
            let loaded = if must_recover || !indexes_present {
                Err(None)
            } else {
                segment.load(next_base).map_err(Some)
            };
            if let Err(why) = loaded {
                if let Some(why) = &why {
                    tracing::warn!(dir = %dir.display(), base_offset = base, %why, "segment failed its check; recovering it");
                }
                if !must_recover {
                    report.rebuilt_indexes.push(base);
                }
                let r = segment.recover()?;
                if r.truncated_bytes > 0 {
                    tracing::warn!(
                        dir = %dir.display(),
                        base_offset = base,
                        kept_batches = r.batches,
                        kept_bytes = r.valid_bytes,
                        truncated_bytes = r.truncated_bytes,
                        reason = r.reason.as_deref().unwrap_or(""),
                        "truncated damaged segment",
                    );
                }
                // A cut, or a gap before the next segment, ends the log here.
                if r.truncated_bytes > 0 || next_base.is_some_and(|n| n != segment.next_offset()) {
                    damaged_at = Some(base);
                }
                if next_base.is_some() && damaged_at.is_none() {
                    segment.seal()?;
                }
                report.recovered.push(r);
            }
            segments.insert(base, segment);
        }
        if !report.deleted_segments.is_empty() {
            tracing::warn!(dir = %dir.display(), deleted = ?report.deleted_segments, "deleted segments after damage");
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
        if !report.recovered.is_empty() {
            // What recovery kept (and cut) must be durable before it counts as recovered.
            log.active().flush()?;
            for segment in log.segments.values() {
                segment.flush_log()?;
            }
            checkpoint::sync_dir(dir)?;
        }
        log.recovery_point = log.next_offset;
        log.write_checkpoint()?;
        Ok((log, report))
    }
}

#[cfg(test)]
mod tests {
    use super::segment_base;

    #[test]
    fn parses_kafka_segment_names() {
        assert_eq!(segment_base("00000000000000000000.log"), Some(0));
        assert_eq!(segment_base("00000000000000001234.log"), Some(1234));
        assert_eq!(segment_base("00000000000000001234.index"), None);
        assert_eq!(segment_base("1234.log"), None);
        assert_eq!(segment_base("0000000000000000123x.log"), None);
    }
}
