//! The classic group protocol (JoinGroup, SyncGroup, Heartbeat, LeaveGroup) as a pure
//! state machine, in the manner of raft-rs: [`GroupCoordinatorShard`] holds the groups
//! of one `__consumer_offsets` partition, takes requests with the time they arrived,
//! and returns [`Effect`]s: responses to send (possibly to requests taken earlier) and
//! records to persist. It opens no socket, spawns no task and reads no clock; the
//! caller fires timers at [`GroupCoordinatorShard::next_deadline`]. The rules are
//! Kafka's `GroupMetadataManager` and `ClassicGroup` (group coordinator, 3.7+).
//!
//! States: Empty → PreparingRebalance (a member joins; a new group waits
//! `group.initial.rebalance.delay.ms` for more) → CompletingRebalance (every known
//! member rejoined, or the rebalance timeout dropped those that did not; the generation
//! is incremented, a protocol chosen, the JoinGroups answered) → Stable (the leader's
//! assignment is durable and every SyncGroup answered). A join, a leave or an expired
//! session sends a Stable or CompletingRebalance group back to PreparingRebalance; a
//! join phase that ends with nobody left makes it Empty. Dead is a deleted group whose
//! tombstone is being written.

mod admin;
mod error;
mod group;
mod join;
mod shard;
mod sync;
mod timer;
mod types;

#[cfg(test)]
mod tests;

pub use admin::GroupOffsetsView;
pub use error::GroupError;
pub use shard::GroupCoordinatorShard;
pub use types::{
    DescribedMember, Effect, GroupConfig, GroupDescription, GroupRecord, GroupState,
    HeartbeatRequest, JoinGroupRequest, JoinGroupResponse, JoinedMember, LeaveGroupRequest,
    LeavingMember, LeftMember, ListedGroup, Outcome, Protocol, RequestToken, Response,
    SyncGroupRequest, SyncGroupResponse, WriteId,
};
