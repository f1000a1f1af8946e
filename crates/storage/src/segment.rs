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

use std::fs::{self, File, OpenOptions};
use std::io::{IoSlice, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};

use crate::batch::{self, BatchHeader, HEADER_SIZE};
use crate::config::LogConfig;
use crate::error::{IoContext, Result};
use crate::index::{OffsetIndex, TimeIndex, TimestampOffset};

/// Bytes read by the first `pread` while walking batch headers: a lookup starts at an
/// index entry and usually ends within `index.interval.bytes` (4 KiB by default); longer
/// walks double the chunk up to [`HEADER_SCAN_MAX_CHUNK`].
const HEADER_SCAN_CHUNK: usize = 8 * 1024;
const HEADER_SCAN_MAX_CHUNK: usize = 1024 * 1024;

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

#[derive(Debug)]
pub struct LogSegment {
    base_offset: u64,
    log_path: PathBuf,
    file: File,
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

    /// Creates an empty segment, replacing any leftover files of the same name.
    pub fn create(dir: &Path, base_offset: u64, config: &LogConfig) -> Result<Self> {
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
            file,
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

    /// Finishes opening a segment that was closed cleanly: checks its indexes and
    /// validates the batches after the last offset index entry, which also finds the end
    /// of the segment and its newest timestamp. `next_segment_base` is the base offset of
    /// the segment after this one, if any. Any error means "recover this segment".
    pub fn load(&mut self, next_segment_base: Option<u64>) -> Result<()> {
        let corrupt = |what, detail: String| crate::StorageError::Corrupt {
            what,
            path: self.log_path.clone(),
            detail,
        };
        self.offset_index.sanity_check(self.size.max(1))?;
        let last_entry = self.offset_index.last();
        let start = last_entry.map_or(0, |e| e.position);
        let (end, next) = self.validate_range(start)?;
        if end != self.size {
            return Err(corrupt(
                "segment",
                format!("invalid batch at byte {end} of {}", self.size),
            ));
        }
        self.next_offset = next.unwrap_or(self.base_offset);
        if next_segment_base.is_some_and(|n| n != self.next_offset) {
            return Err(corrupt(
                "segment",
                format!(
                    "ends at offset {} but the next segment starts at {next_segment_base:?}",
                    self.next_offset
                ),
            ));
        }
        // An entry is added as soon as `index.interval.bytes` accumulate, so a longer
        // unindexed tail means entries are missing.
        let unindexed = self.size - self.indexed_end()?;
        if unindexed >= self.index_interval_bytes && !self.at_capacity(self.offset_index.len(), 8) {
            return Err(corrupt(
                "offset index",
                format!("{unindexed} bytes after its last entry"),
            ));
        }
        self.bytes_since_last_index_entry = unindexed;
        self.time_index.sanity_check(self.next_offset)?;
        if let Some(last) = self.time_index.last() {
            self.max_timestamp = last.timestamp;
            self.offset_of_max_timestamp = last.offset;
        }
        if self.at_capacity(self.time_index.len(), 12) {
            // A full time index had no room for the entry sealing adds, so the newest
            // timestamp may lie anywhere after its last entry: scan for it.
            let from = self
                .time_index
                .last()
                .map_or(self.base_offset, |e| e.offset + 1);
            if let Some((position, _)) = self.find_batch(from)? {
                let (max_ts, at) = self.scan_max_timestamp(position)?;
                if max_ts > self.max_timestamp {
                    self.max_timestamp = max_ts;
                    self.offset_of_max_timestamp = at;
                }
            }
        } else {
            // Sealing writes a final time index entry, so the tail holds nothing newer.
            let (tail_max, at) = self.scan_max_timestamp(start)?;
            if tail_max > self.max_timestamp {
                return Err(corrupt(
                    "time index",
                    format!(
                        "batch at offset {at} has timestamp {tail_max}, newer than the index's last"
                    ),
                ));
            }
        }
        if next_segment_base.is_none() {
            self.unseal()?;
        }
        if self.size > 0 {
            self.rolling_base_ms = Some(self.first_batch_timestamp()?);
        }
        Ok(())
    }

    /// Whether an index of `len` entries of `entry_size` bytes had no room for another
    /// within `segment.index.bytes` (a trimmed index file cannot tell by itself).
    fn at_capacity(&self, len: usize, entry_size: u64) -> bool {
        (len as u64 + 1) * entry_size > self.segment_index_bytes
    }

    /// Where the last batch with an offset index entry ends (0 if there is no entry).
    fn indexed_end(&self) -> Result<u64> {
        Ok(match self.offset_index.last() {
            Some(e) => {
                e.position
                    + self
                        .read_header(e.position)?
                        .map_or(0, |h| h.total_size() as u64)
            }
            None => 0,
        })
    }

    /// Validates batches from byte `start` to the end of the file (CRC, offsets); returns
    /// where the valid data ends and the next offset after it, if any batch was read.
    fn validate_range(&self, start: u64) -> Result<(u64, Option<u64>)> {
        let mut pos = start;
        // From the start of the file the first batch must begin at the base offset.
        let mut next = (start == 0).then_some(self.base_offset);
        let mut buf = Vec::new();
        while pos < self.size {
            let Some(header) = self.read_header(pos)? else {
                break;
            };
            let size = header.total_size() as u64;
            if pos + size > self.size {
                break;
            }
            buf.resize(size as usize, 0);
            self.file
                .read_exact_at(&mut buf, pos)
                .ctx("reading", &self.log_path)?;
            if BatchHeader::parse_and_validate(&buf).is_err()
                || next.is_some_and(|n| header.base_offset as u64 != n)
                || header.base_offset < self.base_offset as i64
            {
                break;
            }
            next = Some(header.last_offset() as u64 + 1);
            pos += size;
        }
        Ok((pos, next))
    }

    fn first_batch_timestamp(&self) -> Result<i64> {
        Ok(self.read_header(0)?.map_or(-1, |h| h.max_timestamp).max(0))
    }

    /// Reads and parses the batch header at `position`, or `None` if there is no whole,
    /// well-formed header there.
    pub(crate) fn read_header(&self, position: u64) -> Result<Option<BatchHeader>> {
        if position + HEADER_SIZE as u64 > self.size {
            return Ok(None);
        }
        let mut buf = [0u8; HEADER_SIZE];
        self.file
            .read_exact_at(&mut buf, position)
            .ctx("reading", &self.log_path)?;
        Ok(BatchHeader::parse(&buf).ok())
    }

    /// Walks batch headers from `start`, calling `visit(position, header)` until it
    /// returns `false` or the data ends. Reads in chunks rather than one header a call.
    pub(crate) fn scan_headers(
        &self,
        start: u64,
        mut visit: impl FnMut(u64, &BatchHeader) -> bool,
    ) -> Result<()> {
        let mut chunk = vec![0u8; HEADER_SCAN_CHUNK.min(self.size.saturating_sub(start) as usize)];
        let mut pos = start;
        while pos + HEADER_SIZE as u64 <= self.size {
            let len = chunk.len().min((self.size - pos) as usize);
            self.file
                .read_exact_at(&mut chunk[..len], pos)
                .ctx("reading", &self.log_path)?;
            let mut at = 0usize;
            while at + HEADER_SIZE <= len {
                let Ok(header) = BatchHeader::parse(&chunk[at..len]) else {
                    return Ok(());
                };
                if !visit(pos + at as u64, &header) {
                    return Ok(());
                }
                at += header.total_size();
            }
            pos += at as u64;
            if pos < self.size {
                let want = (chunk.len() * 2)
                    .min(HEADER_SCAN_MAX_CHUNK)
                    .min((self.size - pos) as usize)
                    .max(HEADER_SIZE);
                chunk.resize(want, 0);
            }
        }
        Ok(())
    }

    fn scan_max_timestamp(&self, start: u64) -> Result<(i64, u64)> {
        let mut best = (-1i64, self.base_offset);
        self.scan_headers(start, |_, h| {
            if h.max_timestamp > best.0 {
                best = (h.max_timestamp, h.last_offset() as u64);
            }
            true
        })?;
        Ok(best)
    }

    /// Position and header of the first batch whose last offset is `>= offset`.
    pub fn find_batch(&self, offset: u64) -> Result<Option<(u64, BatchHeader)>> {
        if offset >= self.next_offset {
            return Ok(None);
        }
        let start = self.offset_index.lookup(offset).map_or(0, |e| e.position);
        let mut found = None;
        self.scan_headers(start, |pos, h| {
            if h.last_offset() as u64 >= offset {
                found = Some((pos, *h));
                false
            } else {
                true
            }
        })?;
        Ok(found)
    }

    /// Whole batches starting with the one that holds `offset` (or the first after it),
    /// up to `max_bytes` but always at least one batch, and only batches whose last offset
    /// is below `max_offset`. One `pread` into one buffer; no further copy.
    pub fn read(&self, offset: u64, max_bytes: usize, max_offset: u64) -> Result<Option<Bytes>> {
        let Some((start, first)) = self.find_batch(offset)? else {
            return Ok(None);
        };
        if first.last_offset() as u64 >= max_offset {
            return Ok(None);
        }
        let want = max_bytes.max(first.total_size());
        let len = want.min((self.size - start) as usize);
        let mut buf = BytesMut::zeroed(len);
        self.file
            .read_exact_at(&mut buf, start)
            .ctx("reading", &self.log_path)?;
        // Keep only whole batches below `max_offset`.
        let mut end = 0usize;
        for (pos, h) in batch::BatchIter::new(&buf) {
            if h.last_offset() as u64 >= max_offset {
                break;
            }
            end = pos + h.total_size();
        }
        buf.truncate(end);
        Ok(Some(buf.freeze()))
    }

    /// The first batch (at or after `min_offset`) whose max timestamp is `>= timestamp`:
    /// its max timestamp and base offset. Batch granularity: records are not decoded.
    pub fn offset_for_timestamp(
        &self,
        timestamp: i64,
        min_offset: u64,
    ) -> Result<Option<TimestampOffset>> {
        if self.max_timestamp < timestamp || min_offset >= self.next_offset {
            return Ok(None);
        }
        let from_time = self.time_index.last_before(timestamp).map(|e| e.offset + 1);
        let from = from_time.unwrap_or(self.base_offset).max(min_offset);
        let Some((start, _)) = self.find_batch(from)? else {
            return Ok(None);
        };
        let mut found = None;
        self.scan_headers(start, |_, h| {
            if h.max_timestamp >= timestamp && h.last_offset() as u64 >= min_offset {
                found = Some(TimestampOffset {
                    timestamp: h.max_timestamp,
                    offset: h.base_offset as u64,
                });
                false
            } else {
                true
            }
        })?;
        Ok(found)
    }

    /// Writes batches at the end of the `.log` with one vectored write per 512 batches,
    /// each as its 16-byte stored prefix followed by the producer's bytes after it.
    /// On error the file may hold part of the batches; the caller truncates or fails.
    pub(crate) fn append(&mut self, batches: &[PreparedBatch], now_ms: i64) -> Result<()> {
        let prefixes: Vec<[u8; 16]> = batches.iter().map(PreparedBatch::stored_prefix).collect();
        for (group, prefix_group) in batches.chunks(512).zip(prefixes.chunks(512)) {
            let mut slices: Vec<IoSlice<'_>> = Vec::with_capacity(group.len() * 2);
            for (b, p) in group.iter().zip(prefix_group) {
                slices.push(IoSlice::new(p));
                slices.push(IoSlice::new(&b.bytes[16..]));
            }
            let mut slices = &mut slices[..];
            while !slices.is_empty() {
                let n = self
                    .file
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
        self.file
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
        if self.max_timestamp >= 0 && !self.time_index.is_full() {
            self.time_index
                .maybe_append(self.max_timestamp, self.offset_of_max_timestamp)?;
        }
        self.offset_index.trim()?;
        self.time_index.trim()?;
        self.flush()
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
