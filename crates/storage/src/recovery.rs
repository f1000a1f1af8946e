//! Crash recovery of one segment: validate every batch, rebuild the indexes, and cut
//! the `.log` at the first torn or corrupt batch.
//!
//! A batch is kept only if its length is sane and fits in the file, its magic is 2, its
//! CRC-32C matches, its base offset continues the offsets before it, and its offsets
//! fit the segment's 32-bit relative index entries. The fields the CRC does not cover
//! (base offset, length, magic) are thereby checked too; the partition leader epoch is
//! the one header field no check here can verify.
//!
//! What a cut drops is described for the log: the bytes, and the batches among them
//! whose headers can still be read and continue the segment's offsets (the first is
//! the torn or corrupt one), with the offsets they held. Bytes after those (garbage,
//! or batches that do not continue the offsets) count only as bytes.

use std::os::unix::fs::FileExt;

use crate::batch::{BatchHeader, LAST_OFFSET_DELTA_OFFSET, LOG_OVERHEAD, MAGIC_OFFSET, MAGIC_V2};
use crate::error::{IoContext, Result};
use crate::segment::LogSegment;

/// Bytes read per `pread` while validating; a larger batch grows the buffer to fit.
const RECOVERY_CHUNK: usize = 8 * 1024 * 1024;

/// Header bytes needed to read a batch's offsets: up to the end of `last_offset_delta`.
const OFFSETS_PREFIX: usize = LAST_OFFSET_DELTA_OFFSET + 4;

/// What recovering one segment found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentRecovery {
    pub base_offset: u64,
    /// Whole valid batches kept.
    pub batches: u64,
    /// Bytes kept; also the byte position the `.log` was cut at, when it was.
    pub valid_bytes: u64,
    /// Bytes cut from the end of the `.log`.
    pub truncated_bytes: u64,
    /// Batches in the bytes cut whose headers still name offsets continuing the
    /// segment's (the first is the torn or corrupt batch); 0 for a cut of garbage.
    pub dropped_batches: u64,
    /// First and last offset of those batches, inclusive.
    pub dropped_offsets: Option<(u64, u64)>,
    /// The segment's next offset after recovery: its last kept offset + 1.
    pub next_offset: u64,
    /// Why the cut was made, when one was.
    pub reason: Option<String>,
}

impl LogSegment {
    /// Re-validates the whole segment, rebuilds its indexes and truncates what is invalid.
    pub fn recover(&mut self) -> Result<SegmentRecovery> {
        self.reset_for_recovery()?;
        let file_size = self.size();
        let base = self.base_offset();
        let mut buf = vec![0u8; RECOVERY_CHUNK.min(file_size as usize)];
        // File position of buf[0], and how many bytes of buf are filled.
        let (mut buf_pos, mut filled) = (0u64, 0usize);
        let mut pos = 0u64;
        let mut batches = 0u64;
        let mut expected = base;
        let mut first_timestamp = None;
        let reason = loop {
            if pos == file_size {
                break None;
            }
            let remaining = file_size - pos;
            if remaining < LOG_OVERHEAD as u64 {
                break Some(format!("torn batch: {remaining} trailing bytes"));
            }
            // Make sure buf holds the length field at `pos`.
            if pos + LOG_OVERHEAD as u64 > buf_pos + filled as u64 {
                (buf_pos, filled) = self.fill(&mut buf, pos)?;
            }
            let at = (pos - buf_pos) as usize;
            let size = match BatchHeader::total_size_from_prefix(&buf[at..filled]) {
                Ok(size) => size as u64,
                Err(e) => break Some(format!("{e}")),
            };
            if size > remaining {
                break Some(format!(
                    "torn batch: length {size} but only {remaining} bytes left"
                ));
            }
            if pos + size > buf_pos + filled as u64 {
                if size as usize > buf.len() {
                    buf.resize(size as usize, 0);
                }
                (buf_pos, filled) = self.fill(&mut buf, pos)?;
            }
            let at = (pos - buf_pos) as usize;
            let header = match BatchHeader::parse_and_validate(&buf[at..at + size as usize]) {
                Ok(h) => h,
                Err(e) => break Some(format!("{e}")),
            };
            if header.base_offset != expected as i64 {
                break Some(format!(
                    "base offset {} where {expected} was expected",
                    header.base_offset
                ));
            }
            // `parse` guarantees a non-negative delta, so `last >= expected >= base`.
            let last = expected.saturating_add(header.offset_count() - 1);
            if last - base > u64::from(u32::MAX) || pos > u64::from(u32::MAX) {
                break Some(format!(
                    "offset {last} or position {pos} overflows the index"
                ));
            }
            self.note_recovered_batch(pos, &header)?;
            first_timestamp.get_or_insert(header.max_timestamp.max(0));
            expected = last + 1;
            batches += 1;
            pos += size;
        };
        let truncated_bytes = file_size - pos;
        let (dropped_batches, dropped_offsets) = if truncated_bytes > 0 {
            let dropped = self.describe_dropped(pos, expected)?;
            self.set_size(pos)?;
            dropped
        } else {
            (0, None)
        };
        self.set_rolling_base(first_timestamp);
        Ok(SegmentRecovery {
            base_offset: base,
            batches,
            valid_bytes: pos,
            truncated_bytes,
            dropped_batches,
            dropped_offsets,
            next_offset: self.next_offset(),
            reason: reason.filter(|_| truncated_bytes > 0),
        })
    }

    /// Walks the batch headers from `from` (where the cut will be) to the end of the file,
    /// as long as they are readable and continue the offsets from `expected`; returns how
    /// many there are and the offsets they span. Nothing is validated beyond that: these
    /// batches are being dropped, only named.
    fn describe_dropped(&self, from: u64, mut expected: u64) -> Result<(u64, Option<(u64, u64)>)> {
        let end = self.size();
        let (mut pos, mut count, mut span) = (from, 0u64, None);
        let mut prefix = [0u8; OFFSETS_PREFIX];
        while pos + OFFSETS_PREFIX as u64 <= end {
            self.file()
                .read_exact_at(&mut prefix, pos)
                .ctx("reading", self.log_path())?;
            let Some((base, count_of_offsets, size)) = peek_offsets(&prefix) else {
                break;
            };
            if base != expected {
                break;
            }
            let last = base.saturating_add(count_of_offsets - 1);
            span = Some((span.map_or(base, |(first, _)| first), last));
            count += 1;
            expected = last.saturating_add(1);
            pos = pos.saturating_add(size);
        }
        Ok((count, span))
    }

    /// Reads as much of the file as fits in `buf`, starting at `pos`.
    fn fill(&self, buf: &mut [u8], pos: u64) -> Result<(u64, usize)> {
        let len = buf.len().min((self.size() - pos) as usize);
        self.file()
            .read_exact_at(&mut buf[..len], pos)
            .ctx("reading", self.log_path())?;
        Ok((pos, len))
    }
}

/// Base offset, number of offsets and total size of the batch whose first
/// [`OFFSETS_PREFIX`] bytes are `prefix`, if they look like a v2 batch header (sane
/// length, magic 2, non-negative base offset and last offset delta).
fn peek_offsets(prefix: &[u8; OFFSETS_PREFIX]) -> Option<(u64, u64, u64)> {
    let size = BatchHeader::total_size_from_prefix(prefix).ok()? as u64;
    if prefix[MAGIC_OFFSET] as i8 != MAGIC_V2 {
        return None;
    }
    let mut base = [0u8; 8];
    base.copy_from_slice(&prefix[..8]);
    let base = u64::try_from(i64::from_be_bytes(base)).ok()?;
    let mut delta = [0u8; 4];
    delta.copy_from_slice(&prefix[LAST_OFFSET_DELTA_OFFSET..OFFSETS_PREFIX]);
    let delta = u64::try_from(i32::from_be_bytes(delta)).ok()?;
    Some((base, delta + 1, size))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::set_base_offset;
    use crate::testing::batch_of;

    #[test]
    fn peeks_offsets_of_a_header_and_refuses_garbage() {
        let mut b = batch_of(4, 10, 0);
        set_base_offset(&mut b, 40);
        let mut prefix = [0u8; OFFSETS_PREFIX];
        prefix.copy_from_slice(&b[..OFFSETS_PREFIX]);
        assert_eq!(peek_offsets(&prefix), Some((40, 4, b.len() as u64)));
        prefix[MAGIC_OFFSET] = 1;
        assert_eq!(peek_offsets(&prefix), None);
        assert_eq!(peek_offsets(&[0xff; OFFSETS_PREFIX]), None);
    }
}
