//! Reading a segment back: batch headers walked in chunks from an index position, the
//! batch holding an offset, whole batches for Fetch (read, or named as a [`FileRecords`]
//! slice), and the first batch at or after a timestamp. Everything here takes `&self`;
//! nothing writes.

use std::os::unix::fs::FileExt;

use bytes::Bytes;

use super::LogSegment;
use crate::batch::{BatchHeader, HEADER_SIZE};
use crate::error::{IoContext, Result};
use crate::file_records::FileRecords;
use crate::index::TimestampOffset;

/// Bytes read by the first `pread` while walking batch headers: a lookup starts at an
/// index entry and usually ends within `index.interval.bytes` (4 KiB by default); longer
/// walks double the chunk up to [`HEADER_SCAN_MAX_CHUNK`].
const HEADER_SCAN_CHUNK: usize = 8 * 1024;
const HEADER_SCAN_MAX_CHUNK: usize = 1024 * 1024;
/// Bytes read for the next header after a batch that ran past the chunk: enough for a
/// few headers of small batches, little waste before another large one.
const HEADER_SCAN_AFTER_JUMP: usize = 512;

impl LogSegment {
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
    /// returns `false` or the data ends. Reads in chunks rather than one header a call:
    /// while batches are small the chunk doubles (fewer reads), and after a batch larger
    /// than the rest of the chunk the next read is a small one, so walking large batches
    /// reads little more than their headers.
    pub(crate) fn scan_headers(
        &self,
        start: u64,
        mut visit: impl FnMut(u64, &BatchHeader) -> bool,
    ) -> Result<()> {
        let mut chunk = vec![0u8; HEADER_SCAN_CHUNK.min(self.size.saturating_sub(start) as usize)];
        let mut want = chunk.len();
        let mut pos = start;
        while pos + HEADER_SIZE as u64 <= self.size {
            let len = want.min((self.size - pos) as usize);
            if chunk.len() < len {
                chunk.resize(len, 0);
            }
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
            want = if at > len {
                HEADER_SCAN_AFTER_JUMP
            } else {
                (want * 2).min(HEADER_SCAN_MAX_CHUNK)
            }
            .max(HEADER_SIZE);
        }
        Ok(())
    }

    pub(super) fn scan_max_timestamp(&self, start: u64) -> Result<(i64, u64)> {
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
    /// is below `max_offset`: read into memory with one `pread`.
    pub fn read(&self, offset: u64, max_bytes: usize, max_offset: u64) -> Result<Option<Bytes>> {
        let Some(slice) = self.slice(offset, max_bytes, max_offset)? else {
            return Ok(None);
        };
        slice.read().ctx("reading", &self.log_path).map(Some)
    }

    /// The same batches as [`LogSegment::read`], named by position instead of read: only
    /// their headers are read, to find where the last whole batch ends.
    pub fn slice(
        &self,
        offset: u64,
        max_bytes: usize,
        max_offset: u64,
    ) -> Result<Option<FileRecords>> {
        let Some((start, first)) = self.find_batch(offset)? else {
            return Ok(None);
        };
        if first.last_offset() as u64 >= max_offset {
            return Ok(None);
        }
        let budget = max_bytes.max(first.total_size()) as u64;
        let mut end = start;
        self.scan_headers(start, |pos, h| {
            let batch_end = pos + h.total_size() as u64;
            if h.last_offset() as u64 >= max_offset
                || batch_end - start > budget
                || batch_end > self.size
            {
                return false;
            }
            end = batch_end;
            true
        })?;
        Ok(Some(FileRecords::new(
            self.file.clone(),
            start,
            (end - start) as usize,
        )))
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
}
