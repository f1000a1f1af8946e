//! The coordinator's one error type. The server maps each variant to a Kafka error code.

use std::path::PathBuf;

use strom_storage::StorageError;

#[derive(Debug, thiserror::Error)]
pub enum CoordinatorError {
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    #[error("unknown topic or partition {topic}-{partition}")]
    UnknownTopicOrPartition { topic: String, partition: i32 },
    #[error("unknown topic {0}")]
    UnknownTopic(String),
    #[error("unknown topic id {0}")]
    UnknownTopicId(uuid::Uuid),
    #[error("topic {0} already exists")]
    TopicAlreadyExists(String),
    #[error("invalid topic name {name:?}: {reason}")]
    InvalidTopic { name: String, reason: String },
    #[error("invalid partitions: {0}")]
    InvalidPartitions(String),
    #[error("invalid replication factor: {0}")]
    InvalidReplicationFactor(String),
    #[error("invalid config {name}: {reason}")]
    InvalidConfig { name: String, reason: String },
    #[error("batch of {size} bytes exceeds max.message.bytes {max}")]
    RecordTooLarge { size: usize, max: usize },
    #[error(
        "out of order sequence for producer {producer_id}: got {first_sequence}, expected {expected}"
    )]
    OutOfOrderSequence {
        producer_id: i64,
        first_sequence: i32,
        expected: i32,
    },
    #[error("producer {producer_id} epoch {epoch} is older than the current {current}")]
    InvalidProducerEpoch {
        producer_id: i64,
        epoch: i16,
        current: i16,
    },
    #[error("{context} {}: {source}", path.display())]
    Io {
        context: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("corrupt {what} {}: {detail}", path.display())]
    Corrupt {
        what: &'static str,
        path: PathBuf,
        detail: String,
    },
}

pub type Result<T, E = CoordinatorError> = std::result::Result<T, E>;

pub(crate) trait IoContext<T> {
    fn ctx(self, context: &'static str, path: &std::path::Path) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn ctx(self, context: &'static str, path: &std::path::Path) -> Result<T> {
        self.map_err(|source| CoordinatorError::Io {
            context,
            path: path.to_path_buf(),
            source,
        })
    }
}
