//! One segment of a partition log: `NNNNNNNNNNNNNNNNNNNN.log` holding record batches
//! back to back, with its `.index` and `.timeindex`. The file name is the segment's base
//! offset, zero-padded to 20 digits as Kafka names it.
//!
//! Invariants:
//! - the `.log` holds `size` bytes of whole, valid v2 batches and nothing after them;
//! - the first batch's base offset is `base_offset` and each next batch starts at the
//!   previous batch's last offset + 1 (no compaction yet, so offsets are dense);
//! - `next_offset` is one past the last batch's last offset (`base_offset` when empty);
//! - every index entry points at a batch of this segment.
//!
//! This file holds the type and what changes it (create, open, append, truncate,
//! flush/seal, delete, rolling); the rest of its `impl` is split by concern: [`load`]
//! finishes opening a segment after a clean shutdown, [`scan`] reads batches back.

mod load;
mod scan;
#[cfg(test)]
mod tests;

use std::fs::{self, File, OpenOptions};
use std::io::{IoSlice, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

use crate::batch::{self, BatchHeader};
use crate::config::LogConfig;
use crate::error::{IoContext, Result};
use crate::index::{OffsetIndex, TimeIndex, TimestampOffset};

pub(crate) fn file_name(base_offset: u64, suffix: &str) -> String {
    format!("{base_offset:020}.{suffix}")
}

/// A batch validated by the log, about to be written with its assigned base offset.
#[derive(Debug)]
pub(crate) struct PreparedBatch {
    pub bytes: Bytes,
    pub header: BatchHeader,
    pub base_offset: u64,
    pub leader_epoch: i32,
}

impl PreparedBatch {
    pub fn last_offset(&self) -> u64 {
        self.base_offset + self.header.last_offset_delta as u64
    }

    /// The first 16 bytes as stored: assigned base offset, length, leader epoch.
    fn stored_prefix(&self) -> [u8; 16] {
        batch::stored_prefix(
            self.base_offset as i64,
            self.header.batch_length,
            self.leader_epoch,
        )
    }
}

/// A segment's end and running state, taken before an append so that a failed append
/// can be undone exactly.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SegmentMark {
    size: u64,
    next_offset: u64,
    bytes_since_last_index_entry: u64,
    max_timestamp: i64,
    offset_of_max_timestamp: u64,
    rolling_base_ms: Option<i64>,
}

#[derive(Debug)]
pub struct LogSegment {
    base_offset: u64,
    log_path: PathBuf,
    /// Shared with the [`FileRecords`](crate::FileRecords) a fetch hands out, which
    /// keep reading the file after the log's lock is released (even after the segment
    /// is deleted: the open file outlives its name).
    file: Arc<File>,
    /// Bytes of whole batches in the `.log`; the write cursor.
    size: u64,
    next_offset: u64,
    offset_index: OffsetIndex,
    time_index: TimeIndex,
    index_interval_bytes: u64,
    segment_index_bytes: u64,
    bytes_since_last_index_entry: u64,
    /// Largest batch max_timestamp in the segment; -1 when there is none.
    max_timestamp: i64,
    /// Last offset of the batch that holds `max_timestamp`.
    offset_of_max_timestamp: u64,
    /// When the segment started filling, for `segment.ms`; `None` while empty.
    rolling_base_ms: Option<i64>,
}

impl LogSegment {
    pub fn log_path_for(dir: &Path, base_offset: u64) -> PathBuf {
        dir.join(file_name(base_offset, "log"))
    }

    pub fn index_path_for(dir: &Path, base_offset: u64) -> PathBuf {
        dir.join(file_name(base_offset, "index"))
    }

    pub fn time_index_path_for(dir: &Path, base_offset: u64) -> PathBuf {
        dir.join(file_name(base_offset, "timeindex"))
    }

    /// Creates an empty segment, replacing any leftover files of the same name. If that
    /// fails (a full disk, say), the files it created are removed again: a stray empty
    /// segment at the log end would overlap the active segment once that grows on.
    pub fn create(dir: &Path, base_offset: u64, config: &LogConfig) -> Result<Self> {
        let created = Self::create_files(dir, base_offset, config);
        if created.is_err() {
            for path in [
                Self::log_path_for(dir, base_offset),
                Self::index_path_for(dir, base_offset),
                Self::time_index_path_for(dir, base_offset),
            ] {
                match fs::remove_file(&path) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        tracing::warn!(path = %path.display(), error = %e,
                            "cannot remove the file of a segment that failed to be created");
                    }
                    _ => {}
                }
            }
        }
        created
    }

    fn create_files(dir: &Path, base_offset: u64, config: &LogConfig) -> Result<Self> {
        for path in [
            Self::index_path_for(dir, base_offset),
            Self::time_index_path_for(dir, base_offset),
        ] {
            match fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(e).ctx("removing stale index", &path);
                }
                _ => {}
            }
        }
        let log_path = Self::log_path_for(dir, base_offset);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&log_path)
            .ctx("creating segment", &log_path)?;
        let mut segment = Self::with_file(dir, base_offset, config, log_path, file, 0)?;
        segment.unseal()?;
        Ok(segment)
    }

    /// Opens an existing segment's files as they are. `next_offset` and the timestamps are
    /// not known yet: the caller follows with [`LogSegment::load`] or `recover`.
    pub fn open(dir: &Path, base_offset: u64, config: &LogConfig) -> Result<Self> {
        let log_path = Self::log_path_for(dir, base_offset);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&log_path)
            .ctx("opening segment", &log_path)?;
        let size = file.seek(SeekFrom::End(0)).ctx("seeking in", &log_path)?;
        Self::with_file(dir, base_offset, config, log_path, file, size)
    }

    fn with_file(
        dir: &Path,
        base_offset: u64,
        config: &LogConfig,
        log_path: PathBuf,
        file: File,
        size: u64,
    ) -> Result<Self> {
        Ok(LogSegment {
            base_offset,
            log_path,
            file: Arc::new(file),
            size,
            next_offset: base_offset,
            offset_index: OffsetIndex::open(&Self::index_path_for(dir, base_offset), base_offset)?,
            time_index: TimeIndex::open(&Self::time_index_path_for(dir, base_offset), base_offset)?,
            index_interval_bytes: config.index_interval_bytes,
            segment_index_bytes: config.segment_index_bytes,
            bytes_since_last_index_entry: 0,
            max_timestamp: -1,
            offset_of_max_timestamp: base_offset,
            rolling_base_ms: None,
        })
    }

    /// Writes batches at the end of the `.log` with one vectored write per 512 batches,
    /// each as its 16-byte stored prefix followed by the producer's bytes after it.
    /// Index space for the batches is allocated first, so a full disk fails before
    /// anything is written or, if the `.log` write itself runs out of space, with part
    /// of the batches in the file: the caller then undoes the append with
    /// [`LogSegment::rollback`] to the [`LogSegment::mark`] it took before.
    pub(crate) fn append(&mut self, batches: &[PreparedBatch], now_ms: i64) -> Result<()> {
        // Each batch adds at most one entry to each index; sealing may add one more
        // time index entry.
        self.offset_index.reserve(batches.len())?;
        self.time_index.reserve(batches.len().saturating_add(1))?;
        let prefixes: Vec<[u8; 16]> = batches.iter().map(PreparedBatch::stored_prefix).collect();
        for (group, prefix_group) in batches.chunks(512).zip(prefixes.chunks(512)) {
            let mut slices: Vec<IoSlice<'_>> = Vec::with_capacity(group.len() * 2);
            for (b, p) in group.iter().zip(prefix_group) {
                slices.push(IoSlice::new(p));
                slices.push(IoSlice::new(&b.bytes[16..]));
            }
            let mut slices = &mut slices[..];
            while !slices.is_empty() {
                let n = (&*self.file)
                    .write_vectored(slices)
                    .ctx("appending to", &self.log_path)?;
                if n == 0 {
                    return Err(std::io::Error::from(std::io::ErrorKind::WriteZero))
                        .ctx("appending to", &self.log_path);
                }
                IoSlice::advance_slices(&mut slices, n);
            }
        }
        for b in batches {
            let position = self.size;
            self.size += b.bytes.len() as u64;
            self.after_batch_written(
                position,
                b.bytes.len() as u64,
                b.last_offset(),
                b.header.max_timestamp,
            )?;
        }
        if self.rolling_base_ms.is_none() {
            self.rolling_base_ms = Some(now_ms);
        }
        Ok(())
    }

    /// Where the segment ends now, to undo a failed append with [`LogSegment::rollback`].
    pub(crate) fn mark(&self) -> SegmentMark {
        SegmentMark {
            size: self.size,
            next_offset: self.next_offset,
            bytes_since_last_index_entry: self.bytes_since_last_index_entry,
            max_timestamp: self.max_timestamp,
            offset_of_max_timestamp: self.offset_of_max_timestamp,
            rolling_base_ms: self.rolling_base_ms,
        }
    }

    /// Undoes everything appended since `mark`: cuts the `.log` back to its size then
    /// (dropping a partly written batch) and drops the index entries added since. Only
    /// an error from the cut itself is returned; then what the file holds is unknown.
    pub(crate) fn rollback(&mut self, mark: &SegmentMark) -> Result<()> {
        self.set_size(mark.size)?;
        // Entries added since the mark name offsets at or past the mark's end.
        self.offset_index.truncate_to(mark.next_offset);
        self.time_index.truncate_to(mark.next_offset);
        self.next_offset = mark.next_offset;
        self.bytes_since_last_index_entry = mark.bytes_since_last_index_entry;
        self.max_timestamp = mark.max_timestamp;
        self.offset_of_max_timestamp = mark.offset_of_max_timestamp;
        self.rolling_base_ms = mark.rolling_base_ms;
        Ok(())
    }

    /// Updates offsets, timestamps and the sparse indexes for a batch now in the file.
    fn after_batch_written(
        &mut self,
        position: u64,
        size: u64,
        last_offset: u64,
        max_timestamp: i64,
    ) -> Result<()> {
        self.next_offset = last_offset + 1;
        if max_timestamp > self.max_timestamp {
            self.max_timestamp = max_timestamp;
            self.offset_of_max_timestamp = last_offset;
        }
        self.bytes_since_last_index_entry += size;
        if self.bytes_since_last_index_entry >= self.index_interval_bytes
            && !self.offset_index.is_full()
        {
            self.offset_index.append(last_offset, position)?;
            self.time_index
                .maybe_append(self.max_timestamp, self.offset_of_max_timestamp)?;
            self.bytes_since_last_index_entry = 0;
        }
        Ok(())
    }

    /// Drops every batch whose last offset is `>= offset`: a batch holding `offset` goes
    /// whole, so the segment then ends at or before `offset`. Returns bytes removed.
    pub fn truncate_to(&mut self, offset: u64) -> Result<u64> {
        let Some((position, header)) = self.find_batch(offset)? else {
            return Ok(0);
        };
        let removed = self.size - position;
        self.set_size(position)?;
        self.next_offset = header.base_offset as u64;
        self.offset_index.truncate_to(self.next_offset);
        self.time_index.truncate_to(self.next_offset);
        self.bytes_since_last_index_entry = self.size - self.indexed_end()?;
        self.max_timestamp = -1;
        self.offset_of_max_timestamp = self.base_offset;
        if let Some(last) = self.time_index.last() {
            self.max_timestamp = last.timestamp;
            self.offset_of_max_timestamp = last.offset;
        }
        let from = self.time_index.last().map_or(0, |e| e.offset + 1);
        if let Some((start, _)) = self.find_batch(from)? {
            let (max_ts, at) = self.scan_max_timestamp(start)?;
            if max_ts > self.max_timestamp {
                self.max_timestamp = max_ts;
                self.offset_of_max_timestamp = at;
            }
        }
        if self.size == 0 {
            self.rolling_base_ms = None;
        }
        Ok(removed)
    }

    /// Cuts the `.log` at `size` bytes and moves the write cursor there.
    pub(crate) fn set_size(&mut self, size: u64) -> Result<()> {
        self.file.set_len(size).ctx("truncating", &self.log_path)?;
        (&*self.file)
            .seek(SeekFrom::Start(size))
            .ctx("seeking in", &self.log_path)?;
        self.size = size;
        Ok(())
    }

    /// fsyncs the `.log` only: what an append needs to be durable (indexes are rebuilt
    /// by recovery for every segment past the recovery point).
    pub fn flush_log(&self) -> Result<()> {
        self.file.sync_data().ctx("fsync of", &self.log_path)
    }

    /// fsyncs the `.log` and both indexes.
    pub fn flush(&self) -> Result<()> {
        self.flush_log()?;
        self.offset_index.sync()?;
        self.time_index.sync()
    }

    /// Prepares the segment to stop being active (roll or close): a final time index
    /// entry for its max timestamp, indexes trimmed to their entries, all fsynced.
    pub fn seal(&mut self) -> Result<()> {
        self.seal_indexes()?;
        self.flush()
    }

    /// The part of [`LogSegment::seal`] before the fsync. It can fail for lack of disk
    /// space (the final time index entry needs a block), which loses nothing: the
    /// segment can still be appended to or sealed again.
    pub(crate) fn seal_indexes(&mut self) -> Result<()> {
        if self.max_timestamp >= 0 && !self.time_index.is_full() {
            self.time_index
                .maybe_append(self.max_timestamp, self.offset_of_max_timestamp)?;
        }
        self.offset_index.trim()?;
        self.time_index.trim()
    }

    /// Makes a sealed segment writable again (after a truncation removed later segments).
    pub fn unseal(&mut self) -> Result<()> {
        self.offset_index.preallocate(self.segment_index_bytes)?;
        self.time_index.preallocate(self.segment_index_bytes)
    }

    /// Deletes the segment's three files.
    pub fn delete(self, dir: &Path) -> Result<()> {
        let base = self.base_offset;
        drop(self);
        for path in [
            Self::log_path_for(dir, base),
            Self::index_path_for(dir, base),
            Self::time_index_path_for(dir, base),
        ] {
            match fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(e).ctx("deleting", &path);
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Whether appending `bytes` more, ending at `last_offset`, needs a new segment.
    pub fn must_roll(&self, config: &LogConfig, bytes: u64, last_offset: u64, now_ms: i64) -> bool {
        if self.size == 0 {
            return false;
        }
        self.size + bytes > config.segment_bytes
            || self.offset_index.is_full()
            || self.time_index.is_full()
            || !self.offset_index.can_hold(last_offset)
            || config.segment_ms.is_some_and(|ms| {
                self.rolling_base_ms
                    .is_some_and(|t| now_ms.saturating_sub(t) >= ms as i64)
            })
    }

    /// The newest time in the segment for retention: its max timestamp, or the file's
    /// modification time when no batch carries one (Kafka's rule).
    pub fn largest_timestamp(&self) -> i64 {
        if self.max_timestamp >= 0 {
            return self.max_timestamp;
        }
        fs::metadata(&self.log_path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_millis() as i64)
    }

    pub fn base_offset(&self) -> u64 {
        self.base_offset
    }

    pub fn next_offset(&self) -> u64 {
        self.next_offset
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn max_timestamp(&self) -> TimestampOffset {
        TimestampOffset {
            timestamp: self.max_timestamp,
            offset: self.offset_of_max_timestamp,
        }
    }

    pub fn offset_index(&self) -> &OffsetIndex {
        &self.offset_index
    }

    pub fn time_index(&self) -> &TimeIndex {
        &self.time_index
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    pub(crate) fn file(&self) -> &File {
        &self.file
    }

    pub(crate) fn reset_for_recovery(&mut self) -> Result<()> {
        self.offset_index.clear();
        self.time_index.clear();
        self.offset_index.preallocate(self.segment_index_bytes)?;
        self.time_index.preallocate(self.segment_index_bytes)?;
        self.bytes_since_last_index_entry = 0;
        self.next_offset = self.base_offset;
        self.max_timestamp = -1;
        self.offset_of_max_timestamp = self.base_offset;
        self.rolling_base_ms = None;
        Ok(())
    }

    pub(crate) fn note_recovered_batch(
        &mut self,
        position: u64,
        header: &BatchHeader,
    ) -> Result<()> {
        self.after_batch_written(
            position,
            header.total_size() as u64,
            header.last_offset() as u64,
            header.max_timestamp,
        )
    }

    pub(crate) fn set_rolling_base(&mut self, ms: Option<i64>) {
        self.rolling_base_ms = ms;
    }
}
