//! Removing data from a log: retention by time and size, DeleteRecords, and truncation
//! for replication. Retention and DeleteRecords delete whole segments from the old end
//! and advance the log start offset; truncation cuts the new end.

use super::Log;
use crate::error::{Result, StorageError};
use crate::segment::LogSegment;

/// What a retention pass removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionReport {
    pub deleted_segments: Vec<u64>,
    pub deleted_bytes: u64,
}

impl Log {
    /// Deletes whole segments that `retention.ms`, `retention.bytes` or the log start
    /// offset put out of the log, oldest first. The active segment is rolled first when it
    /// has expired too, so a log that is all expired ends empty at its old end offset.
    pub fn apply_retention(&mut self) -> Result<RetentionReport> {
        self.check_online()?;
        let now = self.clock.now_ms();
        if let Some(ms) = self.config.retention_ms {
            let active = self.active();
            if active.size() > 0 && now.saturating_sub(active.largest_timestamp()) > ms as i64 {
                self.roll()?;
            }
        }
        let mut report = RetentionReport::default();
        let mut size = self.size_bytes();
        while self.segments.len() > 1 {
            let Some((&base, oldest)) = self.segments.iter().next() else {
                break;
            };
            let by_start = oldest.next_offset() <= self.log_start_offset;
            let by_time = self
                .config
                .retention_ms
                .is_some_and(|ms| now.saturating_sub(oldest.largest_timestamp()) > ms as i64);
            let by_size = self
                .config
                .retention_bytes
                .is_some_and(|max| size.saturating_sub(oldest.size()) >= max);
            if !(by_start || by_time || by_size) {
                break;
            }
            size -= oldest.size();
            report.deleted_bytes += oldest.size();
            report.deleted_segments.push(base);
            self.delete_oldest_segment()?;
        }
        if !report.deleted_segments.is_empty() {
            tracing::info!(
                dir = %self.dir.display(),
                segments = ?report.deleted_segments,
                bytes = report.deleted_bytes,
                log_start_offset = self.log_start_offset,
                "retention deleted segments",
            );
            self.write_checkpoint()?;
        }
        Ok(report)
    }

    fn delete_oldest_segment(&mut self) -> Result<()> {
        let Some((_, segment)) = self.segments.pop_first() else {
            return Ok(());
        };
        let next_base = self
            .segments
            .keys()
            .next()
            .copied()
            .unwrap_or(self.next_offset);
        self.log_start_offset = self.log_start_offset.max(next_base);
        segment
            .delete(&self.dir)
            .map_err(|e| self.fail("delete", e))
    }

    /// DeleteRecords: makes `offset` the log start, deleting the segments wholly before it.
    /// Returns the new log start offset.
    pub fn delete_records_before(&mut self, offset: u64) -> Result<u64> {
        self.check_online()?;
        if offset > self.next_offset {
            return Err(StorageError::OffsetOutOfRange {
                offset,
                log_start: self.log_start_offset,
                log_end: self.next_offset,
            });
        }
        if offset <= self.log_start_offset {
            return Ok(self.log_start_offset);
        }
        self.log_start_offset = offset;
        while self.segments.len() > 1
            && self
                .segments
                .values()
                .next()
                .is_some_and(|s| s.next_offset() <= offset)
        {
            self.delete_oldest_segment()?;
        }
        self.write_checkpoint()?;
        Ok(self.log_start_offset)
    }

    /// Removes every batch whose last offset is `>= offset` (a batch holding `offset` goes
    /// whole), for a follower that must match its leader. Returns the new log end offset.
    /// Truncating to or below the first segment empties the log and restarts it at
    /// `offset`.
    pub fn truncate_to(&mut self, offset: u64) -> Result<u64> {
        self.check_online()?;
        if offset >= self.next_offset {
            return Ok(self.next_offset);
        }
        let first_base = self.segments.keys().next().copied().unwrap_or(0);
        if offset <= first_base {
            return self.truncate_fully_and_start_at(offset);
        }
        // Segments that start at or after the cut go entirely.
        let doomed: Vec<u64> = self.segments.range(offset..).map(|(b, _)| *b).collect();
        for base in doomed.into_iter().rev() {
            if let Some(segment) = self.segments.remove(&base) {
                segment
                    .delete(&self.dir)
                    .map_err(|e| self.fail("truncate", e))?;
            }
        }
        let active = self.active_mut();
        let cut = active.truncate_to(offset).and_then(|removed| {
            active.unseal()?;
            active.flush()?;
            Ok(removed)
        });
        if let Err(e) = cut {
            return Err(self.fail("truncate", e));
        }
        self.next_offset = self.active().next_offset();
        self.log_start_offset = self.log_start_offset.min(self.next_offset);
        self.recovery_point = self.recovery_point.min(self.next_offset);
        self.unflushed_records = 0;
        self.oldest_unflushed_ms = None;
        self.write_checkpoint()?;
        Ok(self.next_offset)
    }

    /// Deletes every segment and starts an empty log whose next offset is `offset`.
    pub fn truncate_fully_and_start_at(&mut self, offset: u64) -> Result<u64> {
        self.check_online()?;
        // Until the new segment exists the log has none, so any failure takes it offline.
        while let Some((_, segment)) = self.segments.pop_first() {
            segment
                .delete(&self.dir)
                .map_err(|e| self.fail("truncate", e))?;
        }
        let segment = LogSegment::create(&self.dir, offset, &self.config)
            .map_err(|e| self.fail("truncate", e))?;
        self.segments.insert(offset, segment);
        self.next_offset = offset;
        self.log_start_offset = offset;
        self.recovery_point = offset;
        self.unflushed_records = 0;
        self.oldest_unflushed_ms = None;
        self.write_checkpoint()?;
        Ok(offset)
    }
}
