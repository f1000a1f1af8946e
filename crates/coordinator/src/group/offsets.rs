//! Committed offsets (Kafka's `OffsetMetadataManager`, classic groups): the
//! [`OffsetStore`] of one `__consumer_offsets` partition, and OffsetCommit,
//! OffsetFetch and OffsetDelete on [`GroupCoordinatorPartition`]. Expiry is in
//! `expiry`.
//!
//! - OffsetCommit is checked by the classic shard (`validate_offset_commit`): a member
//!   of the current generation, or a "simple" commit (generation -1, no member) while
//!   the group is Empty or unknown, which creates an Empty group without protocol
//!   type. Metadata longer than `offset.metadata.max.bytes` (in UTF-16 units, Java's
//!   `String.length`) fails that partition alone with OFFSET_METADATA_TOO_LARGE. The
//!   response is sent once the records are durable.
//! - OffsetFetch reads durable offsets only; an unknown offset (or group) is -1 with
//!   leader epoch -1 and empty metadata. Without transactions no offset is ever
//!   pending, so `require_stable` (KIP-447) never yields UNSTABLE_OFFSET_COMMIT.
//! - OffsetDelete refuses a group that is not Empty unless its protocol type is
//!   "consumer" (NON_EMPTY_GROUP); a partition of a topic the group's members
//!   subscribe to fails with GROUP_SUBSCRIBED_TO_TOPIC; the others are tombstoned if
//!   they have an offset and succeed either way.

use std::collections::BTreeMap;

use super::classic::{GroupError, GroupState};
use super::expiry::is_subscribed;
use super::partition::{GroupCoordinatorPartition, PendingWrite, WriteOutcome};
use super::records::{CoordinatorRecord, NO_LEADER_EPOCH, OffsetCommitValue};

/// The broker settings of committed offsets, with Kafka's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetsConfig {
    /// `offset.metadata.max.bytes`: the longest metadata a commit may carry.
    pub metadata_max_bytes: usize,
    /// `offsets.retention.minutes`, in ms: how long offsets outlive their group's
    /// last member (or a simple consumer's last commit).
    pub retention_ms: i64,
    /// `offsets.retention.check.interval.ms`: how often the caller runs `expire`.
    pub retention_check_interval_ms: i64,
}

impl Default for OffsetsConfig {
    fn default() -> Self {
        OffsetsConfig {
            metadata_max_bytes: 4096,
            retention_ms: 7 * 24 * 60 * 60 * 1000,
            retention_check_interval_ms: 600_000,
        }
    }
}

/// Which offset: a group's committed position in one topic partition.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OffsetKey {
    pub group: String,
    pub topic: String,
    pub partition: i32,
}

impl OffsetKey {
    pub fn new(group: impl Into<String>, topic: impl Into<String>, partition: i32) -> Self {
        OffsetKey {
            group: group.into(),
            topic: topic.into(),
            partition,
        }
    }

    /// The record writing `value` (`None`: a tombstone) for this key.
    pub fn record(&self, value: Option<OffsetCommitValue>) -> CoordinatorRecord {
        CoordinatorRecord::offset_commit(&self.group, &self.topic, self.partition, value)
    }
}

/// group → topic → partition → offset.
type ByGroup = BTreeMap<String, BTreeMap<String, BTreeMap<i32, OffsetCommitValue>>>;

/// The committed offsets of one `__consumer_offsets` partition.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct OffsetStore {
    /// Invariant: no inner map is empty (a group is here only while it has offsets).
    by_group: ByGroup,
}

impl OffsetStore {
    pub fn get(&self, key: &OffsetKey) -> Option<&OffsetCommitValue> {
        self.by_group
            .get(&key.group)?
            .get(&key.topic)?
            .get(&key.partition)
    }

    /// Sets (`Some`) or deletes (`None`) an offset.
    pub fn apply(&mut self, key: OffsetKey, value: Option<OffsetCommitValue>) {
        let OffsetKey {
            group,
            topic,
            partition,
        } = key;
        match value {
            Some(v) => {
                let topics = self.by_group.entry(group).or_default();
                topics.entry(topic).or_default().insert(partition, v);
            }
            None => {
                let Some(topics) = self.by_group.get_mut(&group) else {
                    return;
                };
                if let Some(partitions) = topics.get_mut(&topic) {
                    partitions.remove(&partition);
                    if partitions.is_empty() {
                        topics.remove(&topic);
                    }
                }
                if topics.is_empty() {
                    self.by_group.remove(&group);
                }
            }
        }
    }

    pub fn has_offsets(&self, group_id: &str) -> bool {
        self.by_group.contains_key(group_id)
    }

    /// Groups with offsets, in order.
    pub fn group_ids(&self) -> impl Iterator<Item = &str> {
        self.by_group.keys().map(String::as_str)
    }

    /// A group's offsets by topic then partition.
    pub fn group_offsets(
        &self,
        group_id: &str,
    ) -> impl Iterator<Item = (&str, i32, &OffsetCommitValue)> {
        self.by_group.get(group_id).into_iter().flat_map(|topics| {
            topics.iter().flat_map(|(topic, partitions)| {
                partitions.iter().map(move |(p, v)| (topic.as_str(), *p, v))
            })
        })
    }

    pub fn keys_of<'a>(&'a self, group_id: &'a str) -> impl Iterator<Item = OffsetKey> + 'a {
        self.group_offsets(group_id)
            .map(move |(t, p, _)| OffsetKey::new(group_id, t, p))
    }

    /// How many offsets are stored, over all groups.
    pub fn len(&self) -> usize {
        self.by_group
            .values()
            .flat_map(BTreeMap::values)
            .map(BTreeMap::len)
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.by_group.is_empty()
    }
}

/// A topic partition named by a request.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: i32,
}

impl TopicPartition {
    pub fn new(topic: impl Into<String>, partition: i32) -> Self {
        TopicPartition {
            topic: topic.into(),
            partition,
        }
    }
}

/// One partition of an OffsetCommit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitOffset {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// -1 when the client sent none.
    pub leader_epoch: i32,
    /// `None` (null) is stored as empty.
    pub metadata: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetCommitRequest {
    pub group_id: String,
    /// Empty for a simple commit.
    pub member_id: String,
    /// -1 for a simple commit.
    pub generation_id: i32,
    pub group_instance_id: Option<String>,
    /// OffsetCommit v2-v4 `retention_time_ms`; `None` (-1 on the wire) uses the broker's
    /// retention. Per-partition commit timestamps of v1 are not honoured: offsets are
    /// stamped with the time of the commit.
    pub retention_time_ms: Option<i64>,
    pub offsets: Vec<CommitOffset>,
}

/// A per-partition result of OffsetCommit or OffsetDelete, in request order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionResult {
    pub topic: String,
    pub partition: i32,
    pub error: Option<GroupError>,
}

/// One partition of an OffsetFetch response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedOffset {
    pub topic: String,
    pub partition: i32,
    /// -1 when nothing is committed.
    pub offset: i64,
    /// -1 when unknown.
    pub leader_epoch: i32,
    pub metadata: String,
}

impl FetchedOffset {
    fn none(topic: &str, partition: i32) -> Self {
        FetchedOffset {
            topic: topic.to_owned(),
            partition,
            offset: -1,
            leader_epoch: NO_LEADER_EPOCH,
            metadata: String::new(),
        }
    }

    fn of(topic: &str, partition: i32, v: &OffsetCommitValue) -> Self {
        FetchedOffset {
            topic: topic.to_owned(),
            partition,
            offset: v.offset,
            leader_epoch: v.leader_epoch,
            metadata: v.metadata.clone(),
        }
    }
}

impl GroupCoordinatorPartition {
    /// OffsetCommit. `Err` is a group-level error for every partition; otherwise one
    /// result per partition, to send once the write (if any) is durable.
    pub fn commit_offsets(
        &mut self,
        req: OffsetCommitRequest,
        now_ms: i64,
    ) -> Result<WriteOutcome<Vec<PartitionResult>>, GroupError> {
        self.shard.validate_offset_commit(
            &req.group_id,
            &req.member_id,
            req.generation_id,
            req.group_instance_id.as_deref(),
            now_ms,
        )?;
        if req.generation_id >= 0 {
            self.shard
                .touch_member(&req.group_id, &req.member_id, now_ms);
        }
        let expire_timestamp = req
            .retention_time_ms
            .filter(|r| *r != -1)
            .map(|r| now_ms.saturating_add(r));
        let mut results = Vec::with_capacity(req.offsets.len());
        let mut records = Vec::new();
        let mut pending = PendingWrite::default();
        for o in req.offsets {
            let metadata = o.metadata.unwrap_or_default();
            let error = if metadata.encode_utf16().count() > self.config.metadata_max_bytes {
                Some(GroupError::OffsetMetadataTooLarge)
            } else {
                let key = OffsetKey::new(&req.group_id, &o.topic, o.partition);
                let value = OffsetCommitValue {
                    offset: o.offset,
                    leader_epoch: o.leader_epoch,
                    metadata,
                    commit_timestamp: now_ms,
                    expire_timestamp,
                };
                records.push(key.record(Some(value.clone())));
                pending.offsets.push((key, Some(value)));
                None
            };
            results.push(PartitionResult {
                topic: o.topic,
                partition: o.partition,
                error,
            });
        }
        Ok(WriteOutcome {
            response: results,
            write: self.new_write(records, pending),
        })
    }

    /// OffsetFetch of one group: the partitions asked for, in order, or, with `None`,
    /// every partition the group has an offset for. Reads durable offsets only.
    pub fn fetch_offsets(
        &self,
        group_id: &str,
        partitions: Option<&[TopicPartition]>,
        require_stable: bool,
    ) -> Vec<FetchedOffset> {
        // Nothing is ever pending without transactions: stable and latest agree.
        let _ = require_stable;
        let dead = self.shard.group_state(group_id) == Some(GroupState::Dead);
        match partitions {
            None if dead => Vec::new(),
            None => self
                .offsets
                .group_offsets(group_id)
                .map(|(t, p, v)| FetchedOffset::of(t, p, v))
                .collect(),
            Some(asked) => asked
                .iter()
                .map(|tp| {
                    let key = OffsetKey::new(group_id, &tp.topic, tp.partition);
                    match self.offsets.get(&key).filter(|_| !dead) {
                        Some(v) => FetchedOffset::of(&tp.topic, tp.partition, v),
                        None => FetchedOffset::none(&tp.topic, tp.partition),
                    }
                })
                .collect(),
        }
    }

    /// OffsetDelete. `Err` is a group-level error: INVALID_GROUP_ID, GROUP_ID_NOT_FOUND
    /// (unknown or being deleted), NON_EMPTY_GROUP (members, and not a consumer group).
    pub fn delete_offsets(
        &mut self,
        group_id: &str,
        partitions: &[TopicPartition],
    ) -> Result<WriteOutcome<Vec<PartitionResult>>, GroupError> {
        if group_id.is_empty() {
            return Err(GroupError::InvalidGroupId);
        }
        let view = self
            .shard
            .offsets_view(group_id)
            .ok_or(GroupError::GroupIdNotFound)?;
        match view.state {
            GroupState::Dead => return Err(GroupError::GroupIdNotFound),
            GroupState::Empty => {}
            _ if view.protocol_type.as_deref() != Some("consumer") => {
                return Err(GroupError::NonEmptyGroup);
            }
            _ => {}
        }
        let mut results = Vec::with_capacity(partitions.len());
        let mut records = Vec::new();
        let mut pending = PendingWrite::default();
        for tp in partitions {
            let error = if is_subscribed(&view, &tp.topic) {
                Some(GroupError::GroupSubscribedToTopic)
            } else {
                let key = OffsetKey::new(group_id, &tp.topic, tp.partition);
                let tombstoned = pending.offsets.iter().any(|(k, _)| *k == key);
                if !tombstoned && self.latest(&key).is_some() {
                    records.push(key.record(None));
                    pending.offsets.push((key, None));
                }
                None
            };
            results.push(PartitionResult {
                topic: tp.topic.clone(),
                partition: tp.partition,
                error,
            });
        }
        Ok(WriteOutcome {
            response: results,
            write: self.new_write(records, pending),
        })
    }
}
