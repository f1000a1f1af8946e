//! Crash recovery of one segment: validate every batch, rebuild the indexes, and cut
//! the `.log` at the first torn or corrupt batch.
//!
//! A batch is kept only if its length is sane and fits in the file, its magic is 2, its
//! CRC-32C matches, its base offset continues the offsets before it, and its offsets
//! fit the segment's 32-bit relative index entries. The fields the CRC does not cover
//! (base offset, length, magic) are thereby checked too; the partition leader epoch is
//! the one header field no check here can verify.

use std::os::unix::fs::FileExt;

use crate::batch::{BatchHeader, LOG_OVERHEAD};
use crate::error::{IoContext, Result};
use crate::segment::LogSegment;

/// Bytes read per `pread` while validating; a larger batch grows the buffer to fit.
const RECOVERY_CHUNK: usize = 8 * 1024 * 1024;

/// What recovering one segment found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentRecovery {
    pub base_offset: u64,
    /// Whole valid batches kept.
    pub batches: u64,
    pub valid_bytes: u64,
    /// Bytes cut from the end of the `.log`.
    pub truncated_bytes: u64,
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
            let last = header.last_offset() as u64;
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
        if truncated_bytes > 0 {
            self.set_size(pos)?;
        }
        self.set_rolling_base(first_timestamp);
        Ok(SegmentRecovery {
            base_offset: base,
            batches,
            valid_bytes: pos,
            truncated_bytes,
            reason: reason.filter(|_| truncated_bytes > 0),
        })
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
