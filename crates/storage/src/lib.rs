//! Strom's storage engine: a partition log of Kafka record batches in segment files.
//!
//! A partition's log is a directory of segments named by base offset as Kafka names them
//! (`00000000000000000000.log`, `.index`, `.timeindex`). Each `.log` holds magic v2
//! record batches exactly as producers sent them, except the base offset (and partition
//! leader epoch) the log assigns; neither is covered by the batch CRC. The crate parses
//! only batch headers ([`batch`]) and never decompresses records.
//!
//! Durability is explicit: [`FlushPolicy`] decides when appends are fsynced; a failed
//! fsync takes the [`Log`] offline ([`StorageError::LogOffline`]). Opening a log after a
//! crash validates every batch written since the recovery point and truncates at the
//! first torn or corrupt one ([`Log::open_with_report`]).
//!
//! Synchronous by design: no async runtime, no protocol types. Callers serialize
//! mutation (`&mut Log`); reads take `&Log`.

pub mod batch;
mod checkpoint;
pub mod config;
pub mod error;
mod file_records;
pub mod index;
mod log;
mod mmap;
mod recovery;
mod segment;
pub mod testing;

pub use batch::BatchHeader;
pub use checkpoint::{CHECKPOINT_FILE, CLEAN_SHUTDOWN_FILE, PartitionCheckpoint};
pub use config::{Clock, FlushPolicy, LogConfig, ManualClock, SystemClock};
pub use error::{BatchError, Result, StorageError};
pub use file_records::FileRecords;
pub use index::TimestampOffset;
pub use log::{AppendInfo, LoadReport, Log, RetentionReport};
pub use recovery::SegmentRecovery;
pub use segment::LogSegment;
