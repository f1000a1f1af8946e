//! Finishing a clean start: [`LogSegment::load`] trusts a segment that was sealed at
//! shutdown, checking its indexes and validating only the tail after the last offset
//! index entry, instead of the full re-validation recovery does after a crash. Kept
//! apart from the write path because it is run once per segment at open.
//!
//! Like Kafka's, the check is cheap rather than complete: damage before the last index
//! entry of a trusted segment is not looked for (Kafka checks only the indexes of the
//! segments below its recovery point). What it does find (a torn, corrupt or extra tail,
//! an index entry past the data or not at a batch, a missing final time index entry)
//! makes the caller recover the segment.

use std::os::unix::fs::FileExt;

use super::LogSegment;
use crate::batch::BatchHeader;
use crate::error::{IoContext, Result};

impl LogSegment {
    /// Finishes opening a segment that was closed cleanly: checks its indexes and
    /// validates the batches after the last offset index entry, which also finds the end
    /// of the segment and its newest timestamp. `next_segment_base` is the base offset of
    /// the segment after this one, if any. Any error means "recover this segment".
    pub fn load(&mut self, next_segment_base: Option<u64>) -> Result<()> {
        // Names the file at fault: the `.log`, or the index that disagrees with it.
        let corrupt = |what, detail: String| crate::StorageError::Corrupt {
            what,
            path: match what {
                "offset index" => self.offset_index.path().to_path_buf(),
                "time index" => self.time_index.path().to_path_buf(),
                _ => self.log_path.clone(),
            },
            detail,
        };
        self.offset_index.sanity_check(self.size.max(1))?;
        let last_entry = self.offset_index.last();
        let start = last_entry.map_or(0, |e| e.position);
        if let Some(entry) = last_entry {
            // The entry names the last offset of the batch at its position.
            let at = self.read_header(entry.position)?;
            let names = |h: BatchHeader| {
                h.base_offset.checked_add(i64::from(h.last_offset_delta))
                    == i64::try_from(entry.offset).ok()
            };
            if !at.is_some_and(names) {
                return Err(corrupt(
                    "offset index",
                    format!(
                        "last entry (offset {}, position {}) does not name the batch there",
                        entry.offset, entry.position
                    ),
                ));
            }
        }
        let (end, next) = self.validate_range(start)?;
        if end != self.size {
            return Err(corrupt(
                "segment",
                format!("invalid batch at byte {end} of {}", self.size),
            ));
        }
        self.next_offset = next.unwrap_or(self.base_offset);
        // A gap before the next segment is allowed (recovery leaves one where it cut a
        // flushed segment, as Kafka does); overlapping offsets are not.
        if let Some(n) = next_segment_base.filter(|&n| n < self.next_offset) {
            return Err(corrupt(
                "segment",
                format!(
                    "ends at offset {} but the next segment starts at {n}",
                    self.next_offset
                ),
            ));
        }
        // An entry is added as soon as `index.interval.bytes` accumulate, so a longer
        // unindexed tail means entries are missing.
        let unindexed = self.size.saturating_sub(self.indexed_end()?);
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
    pub(super) fn indexed_end(&self) -> Result<u64> {
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
            // Offsets must continue the segment's and fit its 32-bit index entries.
            let last = header
                .base_offset
                .checked_add(i64::from(header.last_offset_delta));
            let last = last.and_then(|l| u64::try_from(l).ok());
            let fits = last.is_some_and(|l| {
                l.checked_sub(self.base_offset)
                    .is_some_and(|r| r <= u64::from(u32::MAX))
            });
            if BatchHeader::parse_and_validate(&buf).is_err()
                || next.is_some_and(|n| header.base_offset as u64 != n)
                || header.base_offset < self.base_offset as i64
                || !fits
                || pos > u64::from(u32::MAX)
            {
                break;
            }
            next = last.map(|l| l + 1);
            pos += size;
        }
        Ok((pos, next))
    }

    fn first_batch_timestamp(&self) -> Result<i64> {
        Ok(self.read_header(0)?.map_or(-1, |h| h.max_timestamp).max(0))
    }
}
