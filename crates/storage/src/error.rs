//! The storage crate's one error type. Kafka error codes are chosen at the protocol edge.

use std::io;
use std::path::PathBuf;

/// Why a record batch was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("batch truncated: needs {needed} bytes, {available} present")]
    Truncated { needed: usize, available: usize },
    #[error("invalid batch length {0}")]
    InvalidLength(i32),
    #[error("unsupported record batch magic {0}; only v2 batches are stored")]
    UnsupportedMagic(i8),
    #[error("CRC-32C mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    CrcMismatch { stored: u32, computed: u32 },
    #[error("invalid last offset delta {0}")]
    InvalidLastOffsetDelta(i32),
    #[error("invalid records count {0}")]
    InvalidRecordsCount(i32),
    #[error("batch of {size} bytes is larger than the segment size limit {max}")]
    TooLarge { size: usize, max: u64 },
}

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A batch of an append is invalid; nothing of that append was written.
    #[error("invalid record batch at byte {position} of the append: {source}")]
    InvalidBatch {
        position: usize,
        #[source]
        source: BatchError,
    },
    #[error("append holds no record batch")]
    EmptyAppend,
    #[error("offset {offset} is out of range: log holds [{log_start}, {log_end})")]
    OffsetOutOfRange {
        offset: u64,
        log_start: u64,
        log_end: u64,
    },
    #[error("{context} {}: {source}", path.display())]
    Io {
        context: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A write or fsync failed earlier. The log no longer knows what is durable, so it
    /// refuses all further work until it is reopened (and recovered).
    #[error("log {} is offline after a failed {operation}: {cause}", dir.display())]
    LogOffline {
        dir: PathBuf,
        operation: &'static str,
        cause: String,
    },
    #[error("corrupt {what} {}: {detail}", path.display())]
    Corrupt {
        what: &'static str,
        path: PathBuf,
        detail: String,
    },
    #[error("invalid log configuration: {0}")]
    InvalidConfig(String),
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// Attaches what was being done, and to which file, to an `io::Error`.
pub(crate) trait IoContext<T> {
    fn ctx(self, context: &'static str, path: &std::path::Path) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx(self, context: &'static str, path: &std::path::Path) -> Result<T> {
        self.map_err(|source| StorageError::Io {
            context,
            path: path.to_path_buf(),
            source,
        })
    }
}
