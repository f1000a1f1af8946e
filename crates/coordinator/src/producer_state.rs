//! Per-partition producer state for the idempotent producer (Kafka's
//! ProducerStateManager): for each producer id, its epoch and the metadata of its last
//! five batches, so a retried batch is recognised and answered with its original offset,
//! and a gap in sequence numbers is refused.
//!
//! The rules are Kafka's (`ProducerAppendInfo.checkSequence`):
//! - an epoch older than the producer's current one is fenced (INVALID_PRODUCER_EPOCH);
//! - a batch equal (same epoch, first and last sequence) to one of the last five is a
//!   duplicate: nothing is written and the original offsets are returned;
//! - a new epoch must start at sequence 0, unless the producer is unknown;
//! - otherwise the first sequence must follow the last one (wrapping at `i32::MAX`);
//! - an unknown producer may start at any sequence, because retention or DeleteRecords
//!   may have removed the batches that recorded it.
//!
//! Snapshot file `producer.snapshot` (big-endian, replaced atomically, CRC-32 by
//! crc32fast over everything before it):
//! ```text
//! magic "SPST" | version u16 (1) | snapshot offset u64 | producer count u32 |
//!   per producer: producer id i64 | epoch i16 | batch count u8 |
//!     per batch: first seq i32 | last seq i32 | first offset u64 | last offset u64 |
//!                max timestamp i64
//! | crc u32
//! ```
//! The snapshot offset is the log end offset the state describes; on open, batches
//! from there to the log end are replayed from the log's batch headers.

use std::collections::{HashMap, VecDeque};
use std::fs;
use std::io::Write;
use std::path::Path;

use strom_storage::BatchHeader;

use crate::error::{CoordinatorError, IoContext, Result};

/// Batches remembered per producer for duplicate detection (Kafka's constant).
pub const BATCHES_TO_RETAIN: usize = 5;
pub const SNAPSHOT_FILE: &str = "producer.snapshot";
const MAGIC: &[u8; 4] = b"SPST";
const VERSION: u16 = 1;

/// Where one batch of a producer landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMetadata {
    pub first_seq: i32,
    pub last_seq: i32,
    pub first_offset: u64,
    pub last_offset: u64,
    pub max_timestamp: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerEntry {
    pub epoch: i16,
    /// Oldest first; at most [`BATCHES_TO_RETAIN`].
    pub batches: VecDeque<BatchMetadata>,
}

/// The sequence fields of a batch about to be appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerBatch {
    pub producer_id: i64,
    pub epoch: i16,
    pub first_seq: i32,
    pub last_seq: i32,
}

impl ProducerBatch {
    /// The producer fields of a batch header, or `None` for a non-idempotent batch.
    pub fn from_header(h: &BatchHeader) -> Option<Self> {
        if !h.has_producer_id() || h.base_sequence < 0 {
            return None;
        }
        Some(ProducerBatch {
            producer_id: h.producer_id,
            epoch: h.producer_epoch,
            first_seq: h.base_sequence,
            last_seq: add_sequence(h.base_sequence, h.last_offset_delta),
        })
    }
}

/// `seq + delta` with Kafka's wrap from `i32::MAX` to 0.
pub fn add_sequence(seq: i32, delta: i32) -> i32 {
    ((i64::from(seq) + i64::from(delta)) % (i64::from(i32::MAX) + 1)) as i32
}

fn next_sequence(last: i32) -> i32 {
    add_sequence(last, 1)
}

/// What to do with a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceCheck {
    Append,
    /// Already in the log: answer with these offsets, write nothing.
    Duplicate(BatchMetadata),
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ProducerStateManager {
    producers: HashMap<i64, ProducerEntry>,
}

impl ProducerStateManager {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn entry(&self, producer_id: i64) -> Option<&ProducerEntry> {
        self.producers.get(&producer_id)
    }

    pub fn len(&self) -> usize {
        self.producers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    /// Checks a batch against the state without changing it.
    pub fn check(&self, batch: &ProducerBatch) -> Result<SequenceCheck> {
        let Some(entry) = self.producers.get(&batch.producer_id) else {
            return Ok(SequenceCheck::Append);
        };
        if batch.epoch < entry.epoch {
            return Err(CoordinatorError::InvalidProducerEpoch {
                producer_id: batch.producer_id,
                epoch: batch.epoch,
                current: entry.epoch,
            });
        }
        if batch.epoch == entry.epoch {
            if let Some(dup) = entry
                .batches
                .iter()
                .find(|b| b.first_seq == batch.first_seq && b.last_seq == batch.last_seq)
            {
                return Ok(SequenceCheck::Duplicate(*dup));
            }
            if let Some(last) = entry.batches.back() {
                let expected = next_sequence(last.last_seq);
                if batch.first_seq != expected {
                    return Err(CoordinatorError::OutOfOrderSequence {
                        producer_id: batch.producer_id,
                        first_sequence: batch.first_seq,
                        expected,
                    });
                }
            }
        } else if batch.first_seq != 0 {
            return Err(CoordinatorError::OutOfOrderSequence {
                producer_id: batch.producer_id,
                first_sequence: batch.first_seq,
                expected: 0,
            });
        }
        Ok(SequenceCheck::Append)
    }

    /// Records a batch that is now in the log.
    pub fn record(&mut self, batch: &ProducerBatch, meta: BatchMetadata) {
        let entry = self
            .producers
            .entry(batch.producer_id)
            .or_insert_with(|| ProducerEntry {
                epoch: batch.epoch,
                batches: VecDeque::with_capacity(BATCHES_TO_RETAIN),
            });
        if batch.epoch != entry.epoch {
            entry.epoch = batch.epoch;
            entry.batches.clear();
        }
        if entry.batches.len() == BATCHES_TO_RETAIN {
            entry.batches.pop_front();
        }
        entry.batches.push_back(meta);
    }

    /// Replays a batch header read back from the log (recovery).
    pub fn replay(&mut self, header: &BatchHeader) {
        if let Some(batch) = ProducerBatch::from_header(header) {
            self.record(
                &batch,
                BatchMetadata {
                    first_seq: batch.first_seq,
                    last_seq: batch.last_seq,
                    first_offset: header.base_offset as u64,
                    last_offset: header.last_offset() as u64,
                    max_timestamp: header.max_timestamp,
                },
            );
        }
    }

    /// Forgets batches at or past `offset` (the log was truncated there); producers left
    /// with no batch are dropped.
    pub fn truncate_to(&mut self, offset: u64) {
        self.producers.retain(|_, e| {
            e.batches.retain(|b| b.last_offset < offset);
            !e.batches.is_empty()
        });
    }

    pub fn encode_snapshot(&self, offset: u64) -> Vec<u8> {
        let mut b = Vec::with_capacity(22 + self.producers.len() * 64);
        b.extend_from_slice(MAGIC);
        b.extend_from_slice(&VERSION.to_be_bytes());
        b.extend_from_slice(&offset.to_be_bytes());
        b.extend_from_slice(&(self.producers.len() as u32).to_be_bytes());
        let mut ids: Vec<_> = self.producers.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            let e = &self.producers[&id];
            b.extend_from_slice(&id.to_be_bytes());
            b.extend_from_slice(&e.epoch.to_be_bytes());
            b.push(e.batches.len() as u8);
            for m in &e.batches {
                b.extend_from_slice(&m.first_seq.to_be_bytes());
                b.extend_from_slice(&m.last_seq.to_be_bytes());
                b.extend_from_slice(&m.first_offset.to_be_bytes());
                b.extend_from_slice(&m.last_offset.to_be_bytes());
                b.extend_from_slice(&m.max_timestamp.to_be_bytes());
            }
        }
        let crc = crc32fast::hash(&b);
        b.extend_from_slice(&crc.to_be_bytes());
        b
    }

    /// Decodes a snapshot into the state and the offset it describes.
    pub fn decode_snapshot(bytes: &[u8]) -> Result<(Self, u64), String> {
        let body_len = bytes.len().checked_sub(4).ok_or("too short")?;
        let (body, crc) = bytes.split_at(body_len);
        if crc32fast::hash(body).to_be_bytes() != crc {
            return Err("CRC mismatch".into());
        }
        let mut r = Reader(body);
        if r.take(4)? != MAGIC {
            return Err("bad magic".into());
        }
        let version = u16::from_be_bytes(r.array()?);
        if version != VERSION {
            return Err(format!("unknown version {version}"));
        }
        let offset = u64::from_be_bytes(r.array()?);
        let count = u32::from_be_bytes(r.array()?);
        let mut state = ProducerStateManager::new();
        for _ in 0..count {
            let id = i64::from_be_bytes(r.array()?);
            let epoch = i16::from_be_bytes(r.array()?);
            let n = r.take(1)?[0] as usize;
            if n > BATCHES_TO_RETAIN {
                return Err(format!("{n} batches for producer {id}"));
            }
            let mut batches = VecDeque::with_capacity(n);
            for _ in 0..n {
                batches.push_back(BatchMetadata {
                    first_seq: i32::from_be_bytes(r.array()?),
                    last_seq: i32::from_be_bytes(r.array()?),
                    first_offset: u64::from_be_bytes(r.array()?),
                    last_offset: u64::from_be_bytes(r.array()?),
                    max_timestamp: i64::from_be_bytes(r.array()?),
                });
            }
            state.producers.insert(id, ProducerEntry { epoch, batches });
        }
        if !r.0.is_empty() {
            return Err(format!("{} trailing bytes", r.0.len()));
        }
        Ok((state, offset))
    }

    /// Writes the snapshot for `offset` durably (temporary file, fsync, rename). If the
    /// temporary file cannot be written (a full disk), it is removed and the previous
    /// snapshot stays.
    pub fn write_snapshot(&self, dir: &Path, offset: u64) -> Result<()> {
        let tmp = dir.join(format!("{SNAPSHOT_FILE}.tmp"));
        let written = fs::File::create(&tmp)
            .ctx("creating", &tmp)
            .and_then(|mut f| {
                f.write_all(&self.encode_snapshot(offset))
                    .and_then(|()| f.sync_all())
                    .ctx("writing", &tmp)
            });
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        let path = dir.join(SNAPSHOT_FILE);
        fs::rename(&tmp, &path).ctx("renaming to", &path)?;
        fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .ctx("fsync of", dir)
    }

    /// Reads the snapshot in `dir`: `None` if missing or unusable (logged).
    pub fn read_snapshot(dir: &Path) -> Result<Option<(Self, u64)>> {
        let path = dir.join(SNAPSHOT_FILE);
        match fs::read(&path) {
            Ok(bytes) => match Self::decode_snapshot(&bytes) {
                Ok(s) => Ok(Some(s)),
                Err(why) => {
                    tracing::warn!(path = %path.display(), %why, "ignoring corrupt producer snapshot; rebuilding from the log");
                    Ok(None)
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).ctx("reading", &path),
        }
    }
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        if self.0.len() < n {
            return Err("truncated".into());
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(pid: i64, epoch: i16, first: i32, last: i32) -> ProducerBatch {
        ProducerBatch {
            producer_id: pid,
            epoch,
            first_seq: first,
            last_seq: last,
        }
    }

    fn meta(first: i32, last: i32, offset: u64) -> BatchMetadata {
        BatchMetadata {
            first_seq: first,
            last_seq: last,
            first_offset: offset,
            last_offset: offset + (last - first) as u64,
            max_timestamp: 0,
        }
    }

    #[test]
    fn sequences_duplicates_gaps_and_fencing() {
        let mut s = ProducerStateManager::new();
        let b0 = batch(7, 0, 0, 4);
        assert_eq!(s.check(&b0).expect("first"), SequenceCheck::Append);
        s.record(&b0, meta(0, 4, 100));
        // A retry of the batch is a duplicate with its original offsets.
        assert_eq!(
            s.check(&b0).expect("dup"),
            SequenceCheck::Duplicate(meta(0, 4, 100))
        );
        // A gap is refused.
        assert!(matches!(
            s.check(&batch(7, 0, 6, 6)),
            Err(CoordinatorError::OutOfOrderSequence { expected: 5, .. })
        ));
        let b1 = batch(7, 0, 5, 5);
        assert_eq!(s.check(&b1).expect("next"), SequenceCheck::Append);
        s.record(&b1, meta(5, 5, 105));
        // A new epoch must start at 0 and fences the old one.
        assert!(matches!(
            s.check(&batch(7, 1, 6, 6)),
            Err(CoordinatorError::OutOfOrderSequence { expected: 0, .. })
        ));
        let b2 = batch(7, 1, 0, 0);
        assert_eq!(s.check(&b2).expect("new epoch"), SequenceCheck::Append);
        s.record(&b2, meta(0, 0, 106));
        assert!(matches!(
            s.check(&batch(7, 0, 6, 6)),
            Err(CoordinatorError::InvalidProducerEpoch { current: 1, .. })
        ));
        // An unknown producer may start anywhere.
        assert_eq!(
            s.check(&batch(8, 3, 42, 50)).expect("unknown"),
            SequenceCheck::Append
        );
    }

    #[test]
    fn only_the_last_five_batches_are_duplicates() {
        let mut s = ProducerStateManager::new();
        for i in 0..7 {
            let b = batch(1, 0, i, i);
            s.record(&b, meta(i, i, i as u64));
        }
        assert!(
            matches!(
                s.check(&batch(1, 0, 1, 1)),
                Err(CoordinatorError::OutOfOrderSequence { expected: 7, .. })
            ),
            "too old to recognise"
        );
        assert_eq!(
            s.check(&batch(1, 0, 2, 2)).expect("dup"),
            SequenceCheck::Duplicate(meta(2, 2, 2))
        );
    }

    #[test]
    fn sequence_wraps_at_i32_max() {
        assert_eq!(add_sequence(i32::MAX, 1), 0);
        assert_eq!(add_sequence(i32::MAX - 1, 3), 1);
        let mut s = ProducerStateManager::new();
        let b = batch(1, 0, i32::MAX - 1, i32::MAX);
        s.record(&b, meta(i32::MAX - 1, i32::MAX, 0));
        assert_eq!(
            s.check(&batch(1, 0, 0, 3)).expect("wrapped"),
            SequenceCheck::Append
        );
    }

    #[test]
    fn snapshot_round_trip_and_corruption() {
        let mut s = ProducerStateManager::new();
        for (pid, n) in [(1i64, 3), (99, 7)] {
            for i in 0..n {
                s.record(&batch(pid, 2, i, i), meta(i, i, 10 * i as u64));
            }
        }
        let bytes = s.encode_snapshot(1234);
        let (back, offset) = ProducerStateManager::decode_snapshot(&bytes).expect("decode");
        assert_eq!((back, offset), (s.clone(), 1234));
        for i in 0..bytes.len() {
            let mut d = bytes.clone();
            d[i] ^= 0x10;
            assert!(
                ProducerStateManager::decode_snapshot(&d).is_err(),
                "flip at {i}"
            );
        }
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(
            ProducerStateManager::read_snapshot(dir.path())
                .expect("read")
                .is_none()
        );
        s.write_snapshot(dir.path(), 77).expect("write");
        let (read, at) = ProducerStateManager::read_snapshot(dir.path())
            .expect("read")
            .expect("present");
        assert_eq!((read, at), (s, 77));
    }

    #[test]
    fn truncation_forgets_later_batches() {
        let mut s = ProducerStateManager::new();
        for i in 0..4 {
            s.record(&batch(1, 0, i, i), meta(i, i, i as u64));
        }
        s.record(&batch(2, 0, 0, 0), meta(0, 0, 10));
        s.truncate_to(2);
        assert_eq!(s.entry(1).map(|e| e.batches.len()), Some(2));
        assert!(s.entry(2).is_none());
        assert_eq!(
            s.check(&batch(1, 0, 2, 2)).expect("resume"),
            SequenceCheck::Append
        );
    }
}
