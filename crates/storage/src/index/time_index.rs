//! `NNNNNNNNNNNNNNNNNNNN.timeindex`: maps timestamps to offsets, for ListOffsets by time
//! and time-based retention.
//!
//! Entry layout (12 bytes, big-endian, as in Kafka):
//! ```text
//! 0  8  timestamp: the largest batch max_timestamp seen in the segment so far, i64
//! 8  4  relative offset of the last offset of the batch where it was seen, u32
//! ```
//! Invariant: every batch whose last offset is `<=` an entry's offset has a max
//! timestamp `<=` the entry's timestamp. So for a target time `t`, the answer lies after
//! the last entry with timestamp `< t`.

use std::path::Path;

use super::sparse::{Entry, SparseIndex};
use crate::error::Result;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimestampOffset {
    pub timestamp: i64,
    pub offset: u64,
}

#[derive(Debug, Clone, Copy)]
struct RawEntry {
    timestamp: i64,
    relative_offset: u32,
}

impl Entry for RawEntry {
    const SIZE: usize = 12;

    fn decode(b: &[u8]) -> Self {
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&b[0..8]);
        RawEntry {
            timestamp: i64::from_be_bytes(ts),
            relative_offset: u32::from_be_bytes([b[8], b[9], b[10], b[11]]),
        }
    }

    fn encode(&self, out: &mut [u8]) {
        out[0..8].copy_from_slice(&self.timestamp.to_be_bytes());
        out[8..12].copy_from_slice(&self.relative_offset.to_be_bytes());
    }

    fn key(&self) -> i64 {
        self.timestamp
    }
}

#[derive(Debug)]
pub struct TimeIndex {
    base_offset: u64,
    index: SparseIndex<RawEntry>,
}

impl TimeIndex {
    /// Opens the index as it is on disk; call `preallocate` before appending to it.
    pub fn open(path: &Path, base_offset: u64) -> Result<Self> {
        Ok(TimeIndex {
            base_offset,
            index: SparseIndex::open(path)?,
        })
    }

    fn absolute(&self, e: RawEntry) -> TimestampOffset {
        TimestampOffset {
            timestamp: e.timestamp,
            offset: self.base_offset + u64::from(e.relative_offset),
        }
    }

    /// Appends `(timestamp, offset)` if `timestamp` is larger than the last entry's (the
    /// index only records growth) and there is room. Returns whether it was appended.
    pub fn maybe_append(&mut self, timestamp: i64, offset: u64) -> Result<bool> {
        if self.index.is_full() || self.last().is_some_and(|l| timestamp <= l.timestamp) {
            return Ok(false);
        }
        // Offsets must grow too; a smaller offset with a larger timestamp cannot happen
        // because callers pass the offset where the running maximum was reached.
        if self.last().is_some_and(|l| offset < l.offset) {
            return Ok(false);
        }
        self.index.push(RawEntry {
            timestamp,
            relative_offset: (offset - self.base_offset) as u32,
        })?;
        Ok(true)
    }

    /// The last entry whose timestamp is strictly less than `timestamp`.
    pub fn last_before(&self, timestamp: i64) -> Option<TimestampOffset> {
        let n = self.index.floor(timestamp.checked_sub(1)?)?;
        Some(self.absolute(self.index.entry(n)))
    }

    pub fn last(&self) -> Option<TimestampOffset> {
        self.index.last().map(|e| self.absolute(e))
    }

    pub fn entry(&self, n: usize) -> TimestampOffset {
        self.absolute(self.index.entry(n))
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.len() == 0
    }

    pub fn is_full(&self) -> bool {
        self.index.is_full()
    }

    /// Drops the entries whose offset is `>= offset`. Offsets grow with timestamps, so
    /// these are a suffix.
    pub fn truncate_to(&mut self, offset: u64) {
        let keep = (0..self.len())
            .rev()
            .find(|&n| self.entry(n).offset < offset)
            .map_or(0, |n| n + 1);
        if keep < self.len() {
            // Timestamps strictly increase, so cutting at the first dropped entry's
            // timestamp drops exactly the suffix.
            let cut = self.index.entry(keep).timestamp;
            self.index.truncate_from_key(cut);
        }
    }

    pub fn clear(&mut self) {
        self.index.clear();
    }

    pub fn trim(&mut self) -> Result<()> {
        self.index.trim()
    }

    pub fn preallocate(&mut self, max_bytes: u64) -> Result<()> {
        self.index.preallocate(max_bytes)
    }

    /// Allocates disk space for `more` entries, so appending them cannot fail (or
    /// fault) on a full disk.
    pub fn reserve(&mut self, more: usize) -> Result<()> {
        self.index.reserve(more)
    }

    /// Checks order and that offsets do not decrease and lie below `next_offset`.
    pub fn sanity_check(&self, next_offset: u64) -> Result<()> {
        let base = self.base_offset;
        self.index.check(|prev, e| {
            let offset = base + u64::from(e.relative_offset);
            if offset >= next_offset.max(base + 1) {
                Err(format!(
                    "offset {offset} at or past the segment end {next_offset}"
                ))
            } else if prev.is_some_and(|p| e.relative_offset < p.relative_offset) {
                Err(format!("offset {offset} decreasing"))
            } else {
                Ok(())
            }
        })
    }

    pub fn sync(&self) -> Result<()> {
        self.index.sync()
    }

    /// The index file.
    pub fn path(&self) -> &Path {
        self.index.path()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_growth_only_and_finds_the_entry_before_a_time() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("00000000000000000010.timeindex");
        let mut idx = TimeIndex::open(&path, 10).expect("open");
        idx.preallocate(1200).expect("preallocate");
        assert!(idx.maybe_append(100, 12).expect("a"));
        assert!(!idx.maybe_append(100, 15).expect("same time"));
        assert!(!idx.maybe_append(90, 16).expect("older"));
        assert!(idx.maybe_append(200, 20).expect("b"));
        assert!(idx.maybe_append(300, 30).expect("c"));
        assert_eq!(idx.last_before(100), None);
        assert_eq!(idx.last_before(101).map(|e| e.offset), Some(12));
        assert_eq!(idx.last_before(300).map(|e| e.offset), Some(20));
        assert_eq!(idx.last_before(i64::MAX).map(|e| e.offset), Some(30));
        assert_eq!(idx.last_before(i64::MIN), None);
        idx.truncate_to(20);
        assert_eq!(idx.len(), 1);
        assert!(idx.sanity_check(13).is_ok());
        assert!(idx.sanity_check(12).is_err());
        idx.trim().expect("trim");
        assert_eq!(std::fs::metadata(&path).expect("meta").len(), 12);
    }
}
