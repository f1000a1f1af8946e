//! The Kafka record batch (magic v2) header: the one place its byte layout lives.
//!
//! Storage never looks past the header: records stay compressed and opaque. The
//! server reuses these accessors rather than re-deriving offsets.
//!
//! ```text
//! offset  size  field                  covered by CRC-32C
//!      0     8  base_offset            no  (assigned by the log)
//!      8     4  batch_length           no  (bytes after this field)
//!     12     4  partition_leader_epoch no  (assigned by the leader)
//!     16     1  magic (= 2)            no
//!     17     4  crc (CRC-32C, u32)     -
//!     21     2  attributes             yes
//!     23     4  last_offset_delta      yes
//!     27     8  base_timestamp         yes
//!     35     8  max_timestamp          yes
//!     43     8  producer_id            yes
//!     51     2  producer_epoch         yes
//!     53     4  base_sequence          yes
//!     57     4  records_count          yes
//!     61     -  records                yes
//! ```
//! All integers are big-endian.

use crate::error::BatchError;

/// Bytes before `batch_length` counts: base offset and the length field itself.
pub const LOG_OVERHEAD: usize = 12;
/// Size of the fixed v2 header; a batch is never shorter.
pub const HEADER_SIZE: usize = 61;
/// The only magic value this log stores.
pub const MAGIC_V2: i8 = 2;

pub const BASE_OFFSET_OFFSET: usize = 0;
pub const LENGTH_OFFSET: usize = 8;
pub const PARTITION_LEADER_EPOCH_OFFSET: usize = 12;
pub const MAGIC_OFFSET: usize = 16;
pub const CRC_OFFSET: usize = 17;
pub const ATTRIBUTES_OFFSET: usize = 21;
pub const LAST_OFFSET_DELTA_OFFSET: usize = 23;
pub const BASE_TIMESTAMP_OFFSET: usize = 27;
pub const MAX_TIMESTAMP_OFFSET: usize = 35;
pub const PRODUCER_ID_OFFSET: usize = 43;
pub const PRODUCER_EPOCH_OFFSET: usize = 51;
pub const BASE_SEQUENCE_OFFSET: usize = 53;
pub const RECORDS_COUNT_OFFSET: usize = 57;

/// Attribute bits (low byte of `attributes`).
pub const COMPRESSION_CODEC_MASK: i16 = 0x07;
pub const TIMESTAMP_TYPE_MASK: i16 = 0x08;
pub const TRANSACTIONAL_FLAG_MASK: i16 = 0x10;
pub const CONTROL_FLAG_MASK: i16 = 0x20;

/// Producer id of a batch written by a non-idempotent producer.
pub const NO_PRODUCER_ID: i64 = -1;

/// The parsed fixed header of one v2 record batch.
///
/// Invariant (checked by [`BatchHeader::parse`]): `batch_length >= HEADER_SIZE - LOG_OVERHEAD`,
/// `magic == 2`, `last_offset_delta >= 0`, `records_count >= 0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub records_count: i32,
}

#[inline]
fn be_i64(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}

#[inline]
fn be_i32(b: &[u8], at: usize) -> i32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    i32::from_be_bytes(a)
}

#[inline]
fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}

impl BatchHeader {
    /// Reads only `batch_length` from the first [`LOG_OVERHEAD`] bytes and returns the
    /// whole batch size (`LOG_OVERHEAD + batch_length`), or an error if it is impossible.
    pub fn total_size_from_prefix(prefix: &[u8]) -> Result<usize, BatchError> {
        if prefix.len() < LOG_OVERHEAD {
            return Err(BatchError::Truncated {
                needed: LOG_OVERHEAD,
                available: prefix.len(),
            });
        }
        let length = be_i32(prefix, LENGTH_OFFSET);
        if length < (HEADER_SIZE - LOG_OVERHEAD) as i32 {
            return Err(BatchError::InvalidLength(length));
        }
        Ok(LOG_OVERHEAD + length as usize)
    }

    /// Parses the fixed header from the start of `buf`. Does not check the CRC and does
    /// not require the whole batch to be present.
    pub fn parse(buf: &[u8]) -> Result<Self, BatchError> {
        Self::total_size_from_prefix(buf)?;
        if buf.len() < HEADER_SIZE {
            return Err(BatchError::Truncated {
                needed: HEADER_SIZE,
                available: buf.len(),
            });
        }
        let magic = buf[MAGIC_OFFSET] as i8;
        if magic != MAGIC_V2 {
            return Err(BatchError::UnsupportedMagic(magic));
        }
        let last_offset_delta = be_i32(buf, LAST_OFFSET_DELTA_OFFSET);
        if last_offset_delta < 0 {
            return Err(BatchError::InvalidLastOffsetDelta(last_offset_delta));
        }
        // Stored verbatim, a negative count would only fail in every consumer later.
        let records_count = be_i32(buf, RECORDS_COUNT_OFFSET);
        if records_count < 0 {
            return Err(BatchError::InvalidRecordsCount(records_count));
        }
        Ok(BatchHeader {
            base_offset: be_i64(buf, BASE_OFFSET_OFFSET),
            batch_length: be_i32(buf, LENGTH_OFFSET),
            partition_leader_epoch: be_i32(buf, PARTITION_LEADER_EPOCH_OFFSET),
            magic,
            crc: be_i32(buf, CRC_OFFSET) as u32,
            attributes: be_i16(buf, ATTRIBUTES_OFFSET),
            last_offset_delta,
            base_timestamp: be_i64(buf, BASE_TIMESTAMP_OFFSET),
            max_timestamp: be_i64(buf, MAX_TIMESTAMP_OFFSET),
            producer_id: be_i64(buf, PRODUCER_ID_OFFSET),
            producer_epoch: be_i16(buf, PRODUCER_EPOCH_OFFSET),
            base_sequence: be_i32(buf, BASE_SEQUENCE_OFFSET),
            records_count,
        })
    }

    /// Parses the header of the batch that starts `buf` and checks that `buf` holds the
    /// whole batch and that its CRC-32C matches. Returns the header; the batch is
    /// `buf[..header.total_size()]`.
    pub fn parse_and_validate(buf: &[u8]) -> Result<Self, BatchError> {
        let header = Self::parse(buf)?;
        let size = header.total_size();
        if buf.len() < size {
            return Err(BatchError::Truncated {
                needed: size,
                available: buf.len(),
            });
        }
        let computed = checksum(&buf[ATTRIBUTES_OFFSET..size]);
        if computed != header.crc {
            return Err(BatchError::CrcMismatch {
                stored: header.crc,
                computed,
            });
        }
        Ok(header)
    }

    /// Size of the whole batch including the offset and length fields.
    #[inline]
    pub fn total_size(&self) -> usize {
        LOG_OVERHEAD + self.batch_length as usize
    }

    #[inline]
    pub fn last_offset(&self) -> i64 {
        self.base_offset + i64::from(self.last_offset_delta)
    }

    /// The number of offsets this batch occupies (`last_offset_delta + 1`). Kafka counts
    /// offsets, not `records_count`, because compaction may leave gaps.
    #[inline]
    pub fn offset_count(&self) -> u64 {
        self.last_offset_delta as u64 + 1
    }

    #[inline]
    pub fn compression_codec(&self) -> u8 {
        (self.attributes & COMPRESSION_CODEC_MASK) as u8
    }

    #[inline]
    pub fn is_log_append_time(&self) -> bool {
        self.attributes & TIMESTAMP_TYPE_MASK != 0
    }

    #[inline]
    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_FLAG_MASK != 0
    }

    #[inline]
    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_FLAG_MASK != 0
    }

    #[inline]
    pub fn has_producer_id(&self) -> bool {
        self.producer_id != NO_PRODUCER_ID
    }
}

/// The CRC-32C (Castagnoli) a batch carries, of `data`: the batch from
/// [`ATTRIBUTES_OFFSET`] to its end.
pub fn checksum(data: &[u8]) -> u32 {
    crc_fast::checksum(crc_fast::CrcAlgorithm::Crc32Iscsi, data) as u32
}

/// The bytes that replace the first [`PARTITION_LEADER_EPOCH_OFFSET`] + 4 bytes of a
/// batch when the log stores it: the assigned base offset, the original length, and the
/// leader epoch. None of them is covered by the CRC, so the batch stays valid.
pub fn stored_prefix(base_offset: i64, batch_length: i32, leader_epoch: i32) -> [u8; 16] {
    let mut p = [0u8; 16];
    p[0..8].copy_from_slice(&base_offset.to_be_bytes());
    p[8..12].copy_from_slice(&batch_length.to_be_bytes());
    p[12..16].copy_from_slice(&leader_epoch.to_be_bytes());
    p
}

/// Rewrites the base offset of the batch at the start of `buf` in place.
pub fn set_base_offset(buf: &mut [u8], base_offset: i64) {
    buf[BASE_OFFSET_OFFSET..BASE_OFFSET_OFFSET + 8].copy_from_slice(&base_offset.to_be_bytes());
}

/// Rewrites the partition leader epoch of the batch at the start of `buf` in place.
pub fn set_partition_leader_epoch(buf: &mut [u8], epoch: i32) {
    buf[PARTITION_LEADER_EPOCH_OFFSET..PARTITION_LEADER_EPOCH_OFFSET + 4]
        .copy_from_slice(&epoch.to_be_bytes());
}

/// Iterates over the headers of the whole, valid batches at the start of a buffer,
/// stopping silently at the first incomplete one. Used on data the log itself wrote.
pub struct BatchIter<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> BatchIter<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        BatchIter { buf, pos: 0 }
    }

    /// Byte position just after the last batch yielded.
    pub fn position(&self) -> usize {
        self.pos
    }
}

impl Iterator for BatchIter<'_> {
    /// The batch's position in the buffer and its header.
    type Item = (usize, BatchHeader);

    fn next(&mut self) -> Option<Self::Item> {
        let rest = &self.buf[self.pos..];
        let header = BatchHeader::parse(rest).ok()?;
        if rest.len() < header.total_size() {
            return None;
        }
        let at = self.pos;
        self.pos += header.total_size();
        Some((at, header))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::encode_batch;

    /// crc-fast picks an implementation per CPU at run time; every length class (tails,
    /// folding blocks, large buffers) must agree with an independent CRC-32C.
    #[test]
    fn checksum_is_crc32c() {
        let data: Vec<u8> = (0..300_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        for len in [
            0, 1, 7, 15, 16, 63, 64, 255, 256, 1000, 4096, 65_537, 300_000,
        ] {
            for start in [0, 1, 3] {
                let end = (start + len).min(data.len());
                let slice = &data[start..end];
                assert_eq!(
                    checksum(slice),
                    crc32c::crc32c(slice),
                    "len {len} at {start}"
                );
            }
        }
    }

    #[test]
    fn parses_and_validates_a_batch() {
        let b = encode_batch(3, 1000, 1002, 7, b"abc");
        let h = BatchHeader::parse_and_validate(&b).expect("valid");
        assert_eq!(h.total_size(), b.len());
        assert_eq!(h.records_count, 3);
        assert_eq!(h.last_offset_delta, 2);
        assert_eq!(h.max_timestamp, 1002);
        assert_eq!(h.producer_id, 7);
        assert!(h.has_producer_id());
        assert_eq!(h.offset_count(), 3);
    }

    #[test]
    fn base_offset_and_epoch_are_outside_the_crc() {
        let mut b = encode_batch(1, 0, 0, -1, b"x");
        set_base_offset(&mut b, 42);
        set_partition_leader_epoch(&mut b, 9);
        let h = BatchHeader::parse_and_validate(&b).expect("still valid");
        assert_eq!(h.base_offset, 42);
        assert_eq!(h.partition_leader_epoch, 9);
        assert_eq!(h.last_offset(), 42);
    }

    #[test]
    fn rejects_corruption() {
        let good = encode_batch(2, 5, 5, -1, b"payload");
        let mut flipped = good.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert!(matches!(
            BatchHeader::parse_and_validate(&flipped),
            Err(BatchError::CrcMismatch { .. })
        ));
        assert!(matches!(
            BatchHeader::parse_and_validate(&good[..good.len() - 1]),
            Err(BatchError::Truncated { .. })
        ));
        let mut magic = good.clone();
        magic[MAGIC_OFFSET] = 1;
        assert_eq!(
            BatchHeader::parse_and_validate(&magic),
            Err(BatchError::UnsupportedMagic(1))
        );
        let mut short = good.clone();
        short[LENGTH_OFFSET..LENGTH_OFFSET + 4].copy_from_slice(&10i32.to_be_bytes());
        assert_eq!(
            BatchHeader::parse_and_validate(&short),
            Err(BatchError::InvalidLength(10))
        );
        let mut negative = good.clone();
        negative[LENGTH_OFFSET..LENGTH_OFFSET + 4].copy_from_slice(&(-5i32).to_be_bytes());
        assert_eq!(
            BatchHeader::parse_and_validate(&negative),
            Err(BatchError::InvalidLength(-5))
        );
        let mut count = good;
        count[RECORDS_COUNT_OFFSET..RECORDS_COUNT_OFFSET + 4]
            .copy_from_slice(&(-5i32).to_be_bytes());
        assert_eq!(
            BatchHeader::parse_and_validate(&count),
            Err(BatchError::InvalidRecordsCount(-5))
        );
    }

    #[test]
    fn iterates_whole_batches_only() {
        let mut buf = encode_batch(1, 0, 0, -1, b"a");
        let first = buf.len();
        buf.extend(encode_batch(2, 0, 0, -1, b"bb"));
        let whole = buf.len();
        buf.extend_from_slice(&encode_batch(1, 0, 0, -1, b"ccc")[..20]);
        let mut it = BatchIter::new(&buf);
        assert_eq!(it.next().map(|(p, _)| p), Some(0));
        assert_eq!(
            it.next().map(|(p, h)| (p, h.records_count)),
            Some((first, 2))
        );
        assert!(it.next().is_none());
        assert_eq!(it.position(), whole);
    }
}
