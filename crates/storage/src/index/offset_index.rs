//! `NNNNNNNNNNNNNNNNNNNN.index`: maps offsets to byte positions in the segment's `.log`.
//!
//! Entry layout (8 bytes, big-endian, as in Kafka):
//! ```text
//! 0  4  relative offset (last offset of the batch - segment base offset), u32
//! 4  4  position of the batch in the .log file, u32
//! ```
//! The key is a batch's *last* offset, so the floor entry of any offset names a batch
//! at or before the one holding it; a short forward scan of batch headers finishes
//! the lookup.

use std::path::Path;

use super::sparse::{Entry, SparseIndex};
use crate::error::Result;

/// An offset and the position in the `.log` of the batch whose last offset it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetPosition {
    pub offset: u64,
    pub position: u64,
}

#[derive(Debug, Clone, Copy)]
struct RawEntry {
    relative_offset: u32,
    position: u32,
}

impl Entry for RawEntry {
    const SIZE: usize = 8;

    fn decode(b: &[u8]) -> Self {
        RawEntry {
            relative_offset: u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
            position: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
        }
    }

    fn encode(&self, out: &mut [u8]) {
        out[0..4].copy_from_slice(&self.relative_offset.to_be_bytes());
        out[4..8].copy_from_slice(&self.position.to_be_bytes());
    }

    fn key(&self) -> i64 {
        i64::from(self.relative_offset)
    }
}

#[derive(Debug)]
pub struct OffsetIndex {
    base_offset: u64,
    index: SparseIndex<RawEntry>,
}

impl OffsetIndex {
    /// Opens the index as it is on disk; call `preallocate` before appending to it.
    pub fn open(path: &Path, base_offset: u64) -> Result<Self> {
        Ok(OffsetIndex {
            base_offset,
            index: SparseIndex::open(path)?,
        })
    }

    fn absolute(&self, e: RawEntry) -> OffsetPosition {
        OffsetPosition {
            offset: self.base_offset + u64::from(e.relative_offset),
            position: u64::from(e.position),
        }
    }

    /// Whether `offset` can be stored relative to this segment's base offset.
    pub fn can_hold(&self, offset: u64) -> bool {
        offset
            .checked_sub(self.base_offset)
            .is_some_and(|r| r <= u64::from(u32::MAX))
    }

    /// Records that the batch at `position` ends at `last_offset`. Offsets and positions
    /// must fit in 32 bits relative to the segment (the segment enforces it).
    pub fn append(&mut self, last_offset: u64, position: u64) -> Result<()> {
        self.index.push(RawEntry {
            relative_offset: (last_offset - self.base_offset) as u32,
            position: position as u32,
        })
    }

    /// The last entry whose offset is `<= offset`; `None` means "start of the segment".
    pub fn lookup(&self, offset: u64) -> Option<OffsetPosition> {
        let relative = offset.checked_sub(self.base_offset)?;
        let key = i64::try_from(relative).unwrap_or(i64::MAX);
        self.index
            .floor(key)
            .map(|n| self.absolute(self.index.entry(n)))
    }

    pub fn last(&self) -> Option<OffsetPosition> {
        self.index.last().map(|e| self.absolute(e))
    }

    pub fn entry(&self, n: usize) -> OffsetPosition {
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

    /// Drops the entries of offsets `>= offset`.
    pub fn truncate_to(&mut self, offset: u64) {
        match offset.checked_sub(self.base_offset) {
            Some(r) => self
                .index
                .truncate_from_key(i64::try_from(r).unwrap_or(i64::MAX)),
            None => self.index.clear(),
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

    /// Checks order, that positions increase, and that each lies inside a `.log` of
    /// `log_size` bytes.
    pub fn sanity_check(&self, log_size: u64) -> Result<()> {
        self.index.check(|prev, e| {
            if u64::from(e.position) >= log_size {
                Err(format!(
                    "position {} beyond log size {log_size}",
                    e.position
                ))
            } else if prev.is_some_and(|p| e.position <= p.position) {
                Err(format!("position {} not increasing", e.position))
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
    fn lookup_is_a_floor_search() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("00000000000000000100.index");
        let mut idx = OffsetIndex::open(&path, 100).expect("open");
        idx.preallocate(80).expect("preallocate");
        assert_eq!(idx.lookup(150), None);
        for (i, off) in [104u64, 110, 130].iter().enumerate() {
            idx.append(*off, (i as u64 + 1) * 1000).expect("append");
        }
        assert_eq!(idx.lookup(99), None);
        assert_eq!(idx.lookup(103), None);
        assert_eq!(idx.lookup(104).map(|e| e.position), Some(1000));
        assert_eq!(idx.lookup(129).map(|e| e.position), Some(2000));
        assert_eq!(idx.lookup(u64::MAX).map(|e| e.offset), Some(130));
        assert!(idx.append(130, 5000).is_err(), "keys must increase");
        idx.truncate_to(110);
        assert_eq!(idx.len(), 1);
        idx.trim().expect("trim");
        assert_eq!(std::fs::metadata(&path).expect("meta").len(), 8);
        drop(idx);
        let idx = OffsetIndex::open(&path, 100).expect("reopen");
        assert_eq!(idx.len(), 1);
        assert_eq!(
            idx.last(),
            Some(OffsetPosition {
                offset: 104,
                position: 1000
            })
        );
    }

    #[test]
    fn full_index_refuses_appends() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut idx = OffsetIndex::open(&dir.path().join("0.index"), 0).expect("open");
        assert!(idx.is_full(), "an index opened as it is takes no appends");
        idx.preallocate(16).expect("preallocate");
        idx.append(1, 10).expect("1");
        idx.append(2, 20).expect("2");
        assert!(idx.is_full());
        assert!(idx.append(3, 30).is_err());
    }

    #[test]
    fn sanity_check_finds_unordered_or_out_of_bounds_entries() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("0.index");
        // Two entries written by hand: offsets decrease.
        let mut raw = Vec::new();
        raw.extend_from_slice(&5u32.to_be_bytes());
        raw.extend_from_slice(&0u32.to_be_bytes());
        raw.extend_from_slice(&3u32.to_be_bytes());
        raw.extend_from_slice(&100u32.to_be_bytes());
        std::fs::write(&path, &raw).expect("write");
        let idx = OffsetIndex::open(&path, 0).expect("open");
        assert_eq!(idx.len(), 2);
        assert!(idx.sanity_check(1000).is_err());
        let mut ok = Vec::new();
        ok.extend_from_slice(&5u32.to_be_bytes());
        ok.extend_from_slice(&2000u32.to_be_bytes());
        let path2 = dir.path().join("1.index");
        std::fs::write(&path2, &ok).expect("write");
        let idx = OffsetIndex::open(&path2, 0).expect("open");
        assert!(idx.sanity_check(1000).is_err(), "position past the log");
        assert!(idx.sanity_check(3000).is_ok());
    }
}
