//! The consumer-group coordinator (issue 4): classic groups (JoinGroup, SyncGroup,
//! Heartbeat, LeaveGroup) and committed offsets, persisted in the internal topic
//! `__consumer_offsets` in Kafka's own record formats ([`records`]).
//!
//! [`GroupCoordinatorPartition`] is the single writer of one `__consumer_offsets`
//! partition: its groups ([`classic`]) and their committed offsets ([`offsets`],
//! expiry in `expiry`). [`group_partition`] says which partition holds a group.

pub mod classic;
mod expiry;
pub mod offsets;
mod partition;
mod partitioning;
pub mod records;

#[cfg(test)]
mod tests;

pub use classic::{GroupCoordinatorShard, GroupError};
pub use offsets::{
    CommitOffset, FetchedOffset, OffsetCommitRequest, OffsetKey, OffsetStore, OffsetsConfig,
    PartitionResult, TopicPartition,
};
pub use partition::{BatchId, GroupCoordinatorPartition, PartitionEffect, Write, WriteOutcome};
pub use partitioning::{group_partition, java_string_hash};
