//! One partition this broker leads: its log, the producer state that guards it, and
//! the high watermark that consumers read up to.
//!
//! Invariants:
//! - appends and producer-state checks happen under one lock, so a sequence check and
//!   the write it allows cannot interleave with another producer's;
//! - on a single broker the high watermark is the log end offset after each append
//!   (every replica — the only one — has it); with replication it will trail;
//! - the lock is a `std::sync::Mutex` held only for synchronous storage calls, never
//!   across an await; fetches wait on the `watch` channel, not on the lock.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use strom_storage::batch::BatchIter;
use strom_storage::{Clock, FileRecords, Log, LogConfig, TimestampOffset};
use tokio::sync::watch;

use crate::error::{CoordinatorError, Result};
use crate::producer_state::{
    BatchMetadata, ProducerBatch, ProducerStateManager, SequenceCheck, add_sequence,
};

/// The offsets a produce to this partition got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendOutcome {
    pub base_offset: u64,
    pub last_offset: u64,
    pub log_append_time_ms: i64,
    pub log_start_offset: u64,
    /// The batch was a retry of one already in the log: these are its original offsets.
    pub duplicate: bool,
}

/// Records returned by a fetch and the partition's offsets at that moment. `R` is the
/// batches in memory (`Bytes`) or named in their segment file ([`FileRecords`], `None`
/// when there are none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedRecords<R = Bytes> {
    pub records: R,
    pub high_watermark: u64,
    pub log_start_offset: u64,
    pub log_end_offset: u64,
}

#[derive(Debug)]
struct State {
    log: Log,
    producers: ProducerStateManager,
    /// Base offset of the active segment when the producer snapshot was last written;
    /// a change means the log rolled and a new snapshot is due.
    snapshot_segment: u64,
}

#[derive(Debug)]
pub struct Partition {
    topic: Arc<str>,
    index: i32,
    dir: PathBuf,
    leader_epoch: i32,
    /// `None` once the partition is closed or deleted.
    state: Mutex<Option<State>>,
    /// The high watermark; fetches wait for it to move.
    high_watermark: watch::Sender<u64>,
}

impl Partition {
    /// The directory of a partition, named as Kafka names it: `<topic>-<index>`.
    pub fn dir_for(data_dir: &Path, topic: &str, index: i32) -> PathBuf {
        data_dir.join(format!("{topic}-{index}"))
    }

    /// Opens (recovering if needed) the partition's log and rebuilds its producer state
    /// from the last snapshot plus the batches after it.
    pub fn open(
        data_dir: &Path,
        topic: Arc<str>,
        index: i32,
        config: LogConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Partition> {
        let dir = Self::dir_for(data_dir, &topic, index);
        let (log, report) = Log::open_with_report(&dir, config, clock)?;
        if report.repaired() {
            // Storage has logged each file; this sums the partition up.
            tracing::warn!(
                topic = %topic,
                partition = index,
                truncated_bytes = report.truncated_bytes(),
                dropped_batches = report.dropped_batches(),
                rebuilt_indexes = ?report.rebuilt_indexes,
                deleted_segments = ?report.deleted_segments,
                offset_gaps = ?report.offset_gaps,
                log_end_offset = log.log_end_offset(),
                "recovered partition log",
            );
        }
        let (mut producers, from) = match ProducerStateManager::read_snapshot(&dir)? {
            Some((p, at)) if at <= log.log_end_offset() && at >= log.log_start_offset() => (p, at),
            _ => (ProducerStateManager::new(), log.log_start_offset()),
        };
        producers.truncate_to(log.log_end_offset());
        if from < log.log_end_offset() {
            log.for_each_batch_header(from, |h| {
                if h.base_offset as u64 >= from {
                    producers.replay(h);
                }
                true
            })?;
        }
        let snapshot_segment = log.segment_base_offsets().last().copied().unwrap_or(0);
        let (high_watermark, _) = watch::channel(log.log_end_offset());
        Ok(Partition {
            topic,
            index,
            dir,
            leader_epoch: 0,
            state: Mutex::new(Some(State {
                log,
                producers,
                snapshot_segment,
            })),
            high_watermark,
        })
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    pub fn index(&self) -> i32 {
        self.index
    }

    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch
    }

    fn lock(&self) -> MutexGuard<'_, Option<State>> {
        // A panic while holding the lock cannot leave the log half-written (storage
        // calls return errors instead), so the data is still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn with_state<T>(&self, f: impl FnOnce(&mut State) -> Result<T>) -> Result<T> {
        let mut guard = self.lock();
        match guard.as_mut() {
            Some(state) => f(state),
            None => Err(CoordinatorError::UnknownTopicOrPartition {
                topic: self.topic.to_string(),
                partition: self.index,
            }),
        }
    }

    /// Appends the batches of a produce request (stored verbatim but for base offset and
    /// leader epoch), after checking sizes and idempotent-producer sequences.
    pub fn append(&self, records: Bytes, max_message_bytes: u64) -> Result<AppendOutcome> {
        self.with_state(|state| {
            // Everything is checked before anything is written.
            let mut idempotent = false;
            // (producer id, epoch, last sequence) of earlier batches of this same append.
            let mut earlier: Vec<(i64, i16, i32)> = Vec::new();
            for (_, h) in BatchIter::new(&records) {
                if h.total_size() as u64 > max_message_bytes {
                    return Err(CoordinatorError::RecordTooLarge {
                        size: h.total_size(),
                        max: max_message_bytes as usize,
                    });
                }
                let Some(pb) = ProducerBatch::from_header(&h) else {
                    continue;
                };
                idempotent = true;
                if let Some(&(_, epoch, last)) = earlier
                    .iter()
                    .rev()
                    .find(|(pid, _, _)| *pid == pb.producer_id)
                {
                    let expected = add_sequence(last, 1);
                    if pb.epoch != epoch || pb.first_seq != expected {
                        return Err(CoordinatorError::OutOfOrderSequence {
                            producer_id: pb.producer_id,
                            first_sequence: pb.first_seq,
                            expected,
                        });
                    }
                } else if let SequenceCheck::Duplicate(meta) = state.producers.check(&pb)? {
                    // Kafka answers the whole append with the duplicate's offsets.
                    return Ok(AppendOutcome {
                        base_offset: meta.first_offset,
                        last_offset: meta.last_offset,
                        log_append_time_ms: -1,
                        log_start_offset: state.log.log_start_offset(),
                        duplicate: true,
                    });
                }
                earlier.push((pb.producer_id, pb.epoch, pb.last_seq));
            }
            let info = state.log.append(records.clone(), self.leader_epoch)?;
            if idempotent {
                // Batch offsets follow from the first offset and each batch's offset count.
                let mut offset = info.first_offset;
                for (_, h) in BatchIter::new(&records) {
                    if let Some(pb) = ProducerBatch::from_header(&h) {
                        let meta = BatchMetadata {
                            first_seq: pb.first_seq,
                            last_seq: pb.last_seq,
                            first_offset: offset,
                            last_offset: offset + h.last_offset_delta as u64,
                            max_timestamp: h.max_timestamp,
                        };
                        state.producers.record(&pb, meta);
                    }
                    offset += h.offset_count();
                }
            }
            // The records are in the log now: a snapshot that cannot be written (a full
            // disk) must not turn their append into an error, or the producer would
            // retry records that are already stored.
            self.maybe_snapshot(state);
            // Inside the lock, so concurrent appends publish their ends in order.
            self.high_watermark.send_replace(info.last_offset + 1);
            Ok(AppendOutcome {
                base_offset: info.first_offset,
                last_offset: info.last_offset,
                log_append_time_ms: info.log_append_time_ms,
                log_start_offset: info.log_start_offset,
                duplicate: false,
            })
        })
    }

    /// Writes a producer-state snapshot when the log has rolled, so recovery after a
    /// crash replays at most about one segment of batch headers. A failed write is
    /// logged and retried on the next append: the previous snapshot stays valid, it only
    /// makes the next open replay more of the log.
    fn maybe_snapshot(&self, state: &mut State) {
        let active = state
            .log
            .segment_base_offsets()
            .last()
            .copied()
            .unwrap_or(0);
        if active == state.snapshot_segment {
            return;
        }
        match state
            .producers
            .write_snapshot(&self.dir, state.log.log_end_offset())
        {
            Ok(()) => state.snapshot_segment = active,
            Err(e) => tracing::warn!(
                topic = %self.topic,
                partition = self.index,
                error = %e,
                "cannot write the producer state snapshot; keeping the previous one"
            ),
        }
    }

    /// Whole batches from the one holding `offset`, at most about `max_bytes` (at least
    /// one batch, unless `max_bytes` is 0: then only the offsets are checked and
    /// returned), only below the high watermark.
    pub fn fetch(&self, offset: u64, max_bytes: usize) -> Result<FetchedRecords> {
        let fetched = self.fetch_slice(offset, max_bytes)?;
        let records = match &fetched.records {
            Some(slice) => slice.read().map_err(|source| {
                CoordinatorError::Storage(strom_storage::StorageError::Io {
                    context: "reading fetched records of",
                    path: self.dir.clone(),
                    source,
                })
            })?,
            None => Bytes::new(),
        };
        Ok(FetchedRecords {
            records,
            high_watermark: fetched.high_watermark,
            log_start_offset: fetched.log_start_offset,
            log_end_offset: fetched.log_end_offset,
        })
    }

    /// The batches [`Partition::fetch`] returns, named in their segment file rather than
    /// read: the lock is held only while batch headers are walked, and the Fetch handler
    /// sends the bytes with `sendfile`.
    pub fn fetch_slice(
        &self,
        offset: u64,
        max_bytes: usize,
    ) -> Result<FetchedRecords<Option<FileRecords>>> {
        let high_watermark = *self.high_watermark.borrow();
        self.with_state(|state| {
            let records = if max_bytes == 0 {
                let (start, end) = (state.log.log_start_offset(), state.log.log_end_offset());
                if offset < start || offset > end {
                    return Err(CoordinatorError::Storage(
                        strom_storage::StorageError::OffsetOutOfRange {
                            offset,
                            log_start: start,
                            log_end: end,
                        },
                    ));
                }
                None
            } else {
                state.log.slice_up_to(offset, max_bytes, high_watermark)?
            };
            Ok(FetchedRecords {
                records,
                high_watermark,
                log_start_offset: state.log.log_start_offset(),
                log_end_offset: state.log.log_end_offset(),
            })
        })
    }

    /// A receiver that sees every change of the high watermark (long-poll fetch).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.high_watermark.subscribe()
    }

    pub fn high_watermark(&self) -> u64 {
        *self.high_watermark.borrow()
    }

    pub fn log_start_offset(&self) -> Result<u64> {
        self.with_state(|s| Ok(s.log.log_start_offset()))
    }

    pub fn log_end_offset(&self) -> Result<u64> {
        self.with_state(|s| Ok(s.log.log_end_offset()))
    }

    pub fn size_bytes(&self) -> Result<u64> {
        self.with_state(|s| Ok(s.log.size_bytes()))
    }

    /// Segments in the log: each holds its files open (start-up checks the open-file
    /// limit against this).
    pub fn segment_count(&self) -> Result<usize> {
        self.with_state(|s| Ok(s.log.segment_count()))
    }

    /// ListOffsets by timestamp: the first batch at or after the log start whose max
    /// timestamp is `>= timestamp`, at batch granularity (the server refines it to the
    /// record by decoding that one batch).
    pub fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<TimestampOffset>> {
        let hw = self.high_watermark();
        self.with_state(|s| {
            Ok(s.log
                .offset_for_timestamp(timestamp)?
                .filter(|t| t.offset < hw))
        })
    }

    /// ListOffsets MAX_TIMESTAMP: the largest timestamp and the last offset of its batch.
    pub fn max_timestamp(&self) -> Result<Option<TimestampOffset>> {
        self.with_state(|s| Ok(s.log.max_timestamp()))
    }

    /// Reads the one batch holding `offset` (for refining a timestamp lookup).
    pub fn batch_at(&self, offset: u64) -> Result<Bytes> {
        self.with_state(|s| Ok(s.log.read(offset, 1)?))
    }

    /// DeleteRecords: returns the new log start offset (the low watermark).
    pub fn delete_records_before(&self, offset: u64) -> Result<u64> {
        let hw = self.high_watermark();
        if offset > hw {
            return Err(CoordinatorError::Storage(
                strom_storage::StorageError::OffsetOutOfRange {
                    offset,
                    log_start: self.log_start_offset()?,
                    log_end: hw,
                },
            ));
        }
        self.with_state(|s| Ok(s.log.delete_records_before(offset)?))
    }

    /// Applies a new topic configuration to the log.
    pub fn set_log_config(&self, config: LogConfig) -> Result<()> {
        self.with_state(|s| Ok(s.log.set_config(config)?))
    }

    /// Runs retention (called periodically, off the request path).
    pub fn apply_retention(&self) -> Result<()> {
        self.with_state(|s| {
            s.log.apply_retention()?;
            Ok(())
        })
    }

    /// fsyncs if the flush policy's time limit is due (called periodically).
    pub fn maybe_flush(&self) -> Result<()> {
        self.with_state(|s| Ok(s.log.maybe_flush()?))
    }

    /// Snapshots producer state and closes the log cleanly. Later calls fail with
    /// UnknownTopicOrPartition.
    pub fn close(&self) -> Result<()> {
        let Some(state) = self.lock().take() else {
            return Ok(());
        };
        // Without a new snapshot the next open replays from the previous one, so the
        // log is closed (and marked clean) either way; the first error is reported.
        let snapshot = state
            .producers
            .write_snapshot(&self.dir, state.log.log_end_offset());
        state.log.close()?;
        snapshot
    }

    /// Closes the partition and removes its directory.
    pub fn delete(&self) -> Result<()> {
        drop(self.lock().take());
        match std::fs::remove_dir_all(&self.dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(CoordinatorError::Io {
                context: "deleting partition directory",
                path: self.dir.clone(),
                source: e,
            }),
            _ => Ok(()),
        }
    }
}
