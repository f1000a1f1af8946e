//! A partition's log: a directory of segments, the active one last.
//!
//! Invariants (checked where they can break):
//! - `segments` is never empty; keys are base offsets; the last segment is the active
//!   one, the only one written to; each segment's `next_offset` is at most the next
//!   one's base (equal, unless recovery cut batches from a flushed segment and left a
//!   gap, as Kafka does: see `load`);
//! - `log_start_offset` lies in `[first segment base, log end offset]`;
//! - every offset below `recovery_point` is fsynced;
//! - once `offline` is set, nothing more is written or read until the log is reopened.

mod load;
mod retention;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

use crate::batch::BatchHeader;
use crate::checkpoint::{self, PartitionCheckpoint};
use crate::config::{Clock, LogConfig};
use crate::error::{BatchError, Result, StorageError};
use crate::file_records::FileRecords;
use crate::index::TimestampOffset;
use crate::segment::{LogSegment, PreparedBatch};

pub use load::LoadReport;
pub use retention::RetentionReport;

/// What an append stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    /// Base offset assigned to the first batch.
    pub first_offset: u64,
    /// Last offset of the last batch.
    pub last_offset: u64,
    /// Number of batches written.
    pub batches: usize,
    /// Wall-clock time of the append (Kafka's log append time), ms since the epoch.
    pub log_append_time_ms: i64,
    pub log_start_offset: u64,
}

#[derive(Debug)]
pub struct Log {
    dir: PathBuf,
    config: LogConfig,
    clock: Arc<dyn Clock>,
    segments: BTreeMap<u64, LogSegment>,
    log_start_offset: u64,
    /// Log end offset: the offset the next appended record gets.
    next_offset: u64,
    recovery_point: u64,
    /// Records appended since the last fsync, and when the oldest of them was appended.
    unflushed_records: u64,
    oldest_unflushed_ms: Option<i64>,
    /// Set when a write or fsync failed: `(operation, cause)`.
    offline: Option<(&'static str, String)>,
}

impl Log {
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    /// Replaces the log's configuration (AlterConfigs); applies from the next append,
    /// roll or retention pass.
    pub fn set_config(&mut self, config: LogConfig) -> Result<()> {
        config.validate()?;
        self.config = config;
        Ok(())
    }

    pub fn log_start_offset(&self) -> u64 {
        self.log_start_offset
    }

    /// The log end offset (LEO): one past the last stored offset.
    pub fn log_end_offset(&self) -> u64 {
        self.next_offset
    }

    pub fn recovery_point(&self) -> u64 {
        self.recovery_point
    }

    /// Total bytes of all segments' `.log` files.
    pub fn size_bytes(&self) -> u64 {
        self.segments.values().map(LogSegment::size).sum()
    }

    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// The segments, oldest first; the last is the active one.
    pub fn segments(&self) -> impl Iterator<Item = &LogSegment> {
        self.segments.values()
    }

    /// Base offsets of the segments, oldest first.
    pub fn segment_base_offsets(&self) -> Vec<u64> {
        self.segments.keys().copied().collect()
    }

    /// Records appended since the last fsync (0 right after a flush).
    pub fn unflushed_records(&self) -> u64 {
        self.unflushed_records
    }

    pub fn is_offline(&self) -> bool {
        self.offline.is_some()
    }

    fn check_online(&self) -> Result<()> {
        match &self.offline {
            None => Ok(()),
            Some((operation, cause)) => Err(StorageError::LogOffline {
                dir: self.dir.clone(),
                operation,
                cause: cause.clone(),
            }),
        }
    }

    /// Takes the log offline after a failure whose effect on disk is unknown.
    fn fail(&mut self, operation: &'static str, error: StorageError) -> StorageError {
        tracing::error!(dir = %self.dir.display(), operation, %error, "log taken offline");
        self.offline = Some((operation, error.to_string()));
        error
    }

    fn active(&self) -> &LogSegment {
        // The map is never empty (invariant); `open` creates a segment if none exists.
        self.segments
            .values()
            .next_back()
            .expect("a log always has an active segment")
    }

    fn active_mut(&mut self) -> &mut LogSegment {
        self.segments
            .values_mut()
            .next_back()
            .expect("a log always has an active segment")
    }

    /// Validates every batch in `records` (one or more v2 batches back to back, as a
    /// Produce request carries them), assigns offsets from the log end, stamps
    /// `leader_epoch`, and writes them. Either every batch is written or none is.
    pub fn append(&mut self, records: Bytes, leader_epoch: i32) -> Result<AppendInfo> {
        self.check_online()?;
        let now = self.clock.now_ms();
        let mut batches = Vec::new();
        let mut pos = 0usize;
        let mut offset = self.next_offset;
        let mut records_count = 0u64;
        while pos < records.len() {
            let invalid = |source| StorageError::InvalidBatch {
                position: pos,
                source,
            };
            let header = BatchHeader::parse_and_validate(&records[pos..]).map_err(invalid)?;
            let size = header.total_size();
            if size as u64 > self.config.segment_bytes {
                return Err(invalid(BatchError::TooLarge {
                    size,
                    max: self.config.segment_bytes,
                }));
            }
            let prepared = PreparedBatch {
                bytes: records.slice(pos..pos + size),
                header,
                base_offset: offset,
                leader_epoch,
            };
            offset = prepared.last_offset() + 1;
            records_count += header.records_count.max(0) as u64;
            batches.push(prepared);
            pos += size;
        }
        let Some(last) = batches.last() else {
            return Err(StorageError::EmptyAppend);
        };
        let last_offset = last.last_offset();
        let total = pos as u64;
        if self
            .active()
            .must_roll(&self.config, total, last_offset, now)
        {
            self.roll()?;
        }
        let first_offset = self.next_offset;
        let mark = self.active().mark();
        if let Err(error) = self.active_mut().append(&batches, now) {
            // A failed write (disk full, say) may leave part of the batches in the file:
            // cut them off so the log stays as it was and appends resume once there is
            // space again. The log stays online: unlike a failed fsync, a failed write
            // loses nothing that was acknowledged. If even the cut fails, what is on
            // disk is unknown.
            return Err(match self.active_mut().rollback(&mark) {
                Ok(()) => error,
                Err(cut) => self.fail("write", cut),
            });
        }
        self.next_offset = last_offset + 1;
        self.unflushed_records += records_count;
        self.oldest_unflushed_ms.get_or_insert(now);
        self.maybe_flush_at(now)?;
        Ok(AppendInfo {
            first_offset,
            last_offset,
            batches: batches.len(),
            log_append_time_ms: now,
            log_start_offset: self.log_start_offset,
        })
    }

    /// fsyncs the active segment if the flush policy says it is due (call periodically
    /// for `flush.ms`).
    pub fn maybe_flush(&mut self) -> Result<()> {
        self.check_online()?;
        let now = self.clock.now_ms();
        self.maybe_flush_at(now)
    }

    fn maybe_flush_at(&mut self, now: i64) -> Result<()> {
        if self
            .config
            .flush
            .is_due(self.unflushed_records, self.oldest_unflushed_ms, now)
        {
            self.flush_active_log()?;
        }
        Ok(())
    }

    /// fsyncs the active `.log`: everything appended so far is durable afterwards. A
    /// failed fsync takes the log offline.
    fn flush_active_log(&mut self) -> Result<()> {
        if let Err(e) = self.active().flush_log() {
            return Err(self.fail("fsync", e));
        }
        self.unflushed_records = 0;
        self.oldest_unflushed_ms = None;
        Ok(())
    }

    /// fsyncs all appended data and the indexes, and records the recovery point.
    pub fn flush(&mut self) -> Result<()> {
        self.check_online()?;
        if let Err(e) = self.active().flush() {
            return Err(self.fail("fsync", e));
        }
        self.unflushed_records = 0;
        self.oldest_unflushed_ms = None;
        self.recovery_point = self.next_offset;
        self.write_checkpoint()
    }

    /// Starts a new active segment at the log end. The old one is sealed (final time
    /// index entry, trimmed indexes) and fsynced first, which moves the recovery point.
    pub fn roll(&mut self) -> Result<()> {
        self.check_online()?;
        if self.active().size() == 0 {
            return Ok(());
        }
        // Neither sealing the indexes nor creating the new segment loses anything when it
        // fails (a full disk): the roll is retried by the next append. Only a failed
        // fsync takes the log offline.
        self.active_mut().seal_indexes()?;
        if let Err(e) = self.active().flush() {
            return Err(self.fail("fsync", e));
        }
        let base = self.next_offset;
        let segment = LogSegment::create(&self.dir, base, &self.config)?;
        self.segments.insert(base, segment);
        if let Err(e) = checkpoint::sync_dir(&self.dir) {
            return Err(self.fail("fsync", e));
        }
        tracing::debug!(dir = %self.dir.display(), base_offset = base, "rolled segment");
        self.unflushed_records = 0;
        self.oldest_unflushed_ms = None;
        self.recovery_point = base;
        self.write_checkpoint()
    }

    /// Replaces `partition.checkpoint`. If the new one cannot even be written (a full
    /// disk), the old one stands and the error is returned with the log still online:
    /// an older checkpoint only makes the next recovery scan more. A failure from the
    /// fsync on takes the log offline, like every failed fsync.
    fn write_checkpoint(&mut self) -> Result<()> {
        let c = PartitionCheckpoint {
            log_start_offset: self.log_start_offset,
            recovery_point: self.recovery_point,
        };
        let staged = c.stage(&self.dir)?;
        staged.commit().map_err(|e| self.fail("checkpoint", e))
    }

    /// Whole batches from the one holding `offset`, up to about `max_bytes` (at least one
    /// batch). Empty when `offset` is the log end.
    pub fn read(&self, offset: u64, max_bytes: usize) -> Result<Bytes> {
        self.read_up_to(offset, max_bytes, u64::MAX)
    }

    /// Like [`Log::read`], but only batches whose last offset is below `max_offset`
    /// (the high watermark, for consumers).
    pub fn read_up_to(&self, offset: u64, max_bytes: usize, max_offset: u64) -> Result<Bytes> {
        let read = self.in_segments(offset, |s| s.read(offset, max_bytes, max_offset))?;
        Ok(read.unwrap_or_default())
    }

    /// The batches [`Log::read_up_to`] returns, as a slice of one segment file (`None`
    /// when there are none): Fetch sends it with `sendfile` instead of reading it.
    pub fn slice_up_to(
        &self,
        offset: u64,
        max_bytes: usize,
        max_offset: u64,
    ) -> Result<Option<FileRecords>> {
        self.in_segments(offset, |s| s.slice(offset, max_bytes, max_offset))
    }

    /// Runs `find` on the segment holding `offset` and, while it finds nothing because
    /// the offset is past that segment's end, on the segments after it.
    fn in_segments<T>(
        &self,
        offset: u64,
        find: impl Fn(&LogSegment) -> Result<Option<T>>,
    ) -> Result<Option<T>> {
        self.check_online()?;
        if offset < self.log_start_offset || offset > self.next_offset {
            return Err(StorageError::OffsetOutOfRange {
                offset,
                log_start: self.log_start_offset,
                log_end: self.next_offset,
            });
        }
        let first = self
            .segments
            .range(..=offset)
            .next_back()
            .map_or(0, |(base, _)| *base);
        for segment in self.segments.range(first..).map(|(_, s)| s) {
            if let Some(found) = find(segment)? {
                return Ok(Some(found));
            }
            if segment.next_offset() > offset {
                // The segment holds the offset but its batch is at or past max_offset.
                break;
            }
        }
        Ok(None)
    }

    /// The first batch at or after the log start whose max timestamp is `>= timestamp`
    /// (ListOffsets by time): its max timestamp and the offset to fetch from, which is
    /// the batch's base offset (or the log start, if that lies inside the batch).
    pub fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<TimestampOffset>> {
        self.check_online()?;
        for segment in self.segments.values() {
            if segment.next_offset() <= self.log_start_offset {
                continue;
            }
            if let Some(mut found) =
                segment.offset_for_timestamp(timestamp, self.log_start_offset)?
            {
                found.offset = found.offset.max(self.log_start_offset);
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// Calls `visit` with the header of every batch from the one holding `from` to the log
    /// end, in offset order, until it returns `false`. Reads headers only, in chunks; used
    /// to rebuild state kept beside the log (producer state).
    pub fn for_each_batch_header(
        &self,
        from: u64,
        mut visit: impl FnMut(&BatchHeader) -> bool,
    ) -> Result<()> {
        self.check_online()?;
        let first = self
            .segments
            .range(..=from)
            .next_back()
            .map_or(0, |(base, _)| *base);
        let mut more = true;
        for segment in self.segments.range(first..).map(|(_, s)| s) {
            let Some((start, _)) = segment.find_batch(from)? else {
                continue;
            };
            segment.scan_headers(start, |_, h| {
                more = visit(h);
                more
            })?;
            if !more {
                break;
            }
        }
        Ok(())
    }

    /// The largest timestamp in the log and the last offset of the batch holding it
    /// (ListOffsets MAX_TIMESTAMP), or `None` for an empty log.
    pub fn max_timestamp(&self) -> Option<TimestampOffset> {
        self.segments
            .values()
            .map(LogSegment::max_timestamp)
            .filter(|t| t.timestamp >= 0 && t.offset >= self.log_start_offset)
            .max_by_key(|t| (t.timestamp, std::cmp::Reverse(t.offset)))
    }

    /// Flushes everything, seals the active segment and leaves the clean-shutdown marker
    /// so the next open skips recovery.
    pub fn close(mut self) -> Result<()> {
        self.check_online()?;
        self.active_mut().seal_indexes()?;
        if let Err(e) = self.active().flush() {
            return Err(self.fail("fsync", e));
        }
        self.recovery_point = self.next_offset;
        self.write_checkpoint()?;
        checkpoint::write_clean_shutdown_marker(&self.dir)
    }
}
