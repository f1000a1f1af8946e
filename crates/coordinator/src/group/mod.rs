//! The consumer-group coordinator (issue 4): classic groups (JoinGroup, SyncGroup,
//! Heartbeat, LeaveGroup) and committed offsets, persisted in the internal topic
//! `__consumer_offsets` in Kafka's own record formats ([`records`]).

pub mod classic;
pub mod records;

pub use classic::{GroupCoordinatorShard, GroupError};
