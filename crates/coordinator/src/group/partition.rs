//! [`GroupCoordinatorPartition`]: everything one `__consumer_offsets` partition holds,
//! the classic groups ([`GroupCoordinatorShard`]) and their committed offsets
//! ([`OffsetStore`]), behind one single writer, as Kafka's `GroupCoordinatorShard`
//! holds its `GroupMetadataManager` and `OffsetMetadataManager` together.
//!
//! Like the classic shard it is pure: no I/O, no clock. Whatever must be written comes
//! out as a [`Write`], one record batch to append to the partition's log; the caller
//! appends it and reports the outcome with [`GroupCoordinatorPartition::on_persisted`].
//! The caller appends writes in the order they are returned and reports outcomes in
//! that order (the log's order), which is the order their changes are applied in.
//!
//! Offsets follow Kafka's read-committed rule: a commit changes what OffsetFetch sees
//! only once its write is durable. Until then its changes wait in the write's pending
//! entry; deciding what to delete (OffsetDelete, DeleteGroups) looks at the latest
//! state, durable or not, so a tombstone written after an in-flight commit deletes it;
//! expiry leaves alone whatever has a write in flight.

use std::collections::BTreeMap;

use super::classic::{
    Effect, GroupCoordinatorShard, GroupError, GroupRecord, GroupState, HeartbeatRequest,
    JoinGroupRequest, LeaveGroupRequest, LeftMember, RequestToken, Response, SyncGroupRequest,
    WriteId,
};
use super::offsets::{OffsetKey, OffsetStore, OffsetsConfig};
use super::records::{
    CoordinatorKey, CoordinatorRecord, CoordinatorValue, OffsetCommitValue, RecordError,
};

/// Identifies a [`Write`]; reported back with `on_persisted`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BatchId(pub u64);

/// Records to append to the partition's log as one batch (atomically), then report
/// with [`GroupCoordinatorPartition::on_persisted`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    pub id: BatchId,
    /// Never empty.
    pub records: Vec<CoordinatorRecord>,
}

/// What the caller must do after a call, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartitionEffect {
    /// Answer a JoinGroup or SyncGroup, possibly one received in an earlier call.
    Respond {
        token: RequestToken,
        response: Response,
    },
    Persist(Write),
}

/// A response that may only be sent once `write` is durable: the caller appends the
/// write, calls `on_persisted`, then answers with `response`, or, if the append failed,
/// with the append's error wherever `response` has none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteOutcome<T> {
    pub response: T,
    /// `None`: nothing to write, answer at once.
    pub write: Option<Write>,
}

/// What a write changes once durable.
#[derive(Debug, Default)]
pub(super) struct PendingWrite {
    /// Offset changes in record order; `None` deletes.
    pub offsets: Vec<(OffsetKey, Option<OffsetCommitValue>)>,
    /// The classic shard's writes carried in the batch, reported to it.
    pub group_writes: Vec<WriteId>,
}

/// The classic groups and committed offsets of one `__consumer_offsets` partition.
/// Single writer: the caller serializes calls.
#[derive(Debug)]
pub struct GroupCoordinatorPartition {
    pub(super) config: OffsetsConfig,
    pub(super) shard: GroupCoordinatorShard,
    /// Durable offsets only.
    pub(super) offsets: OffsetStore,
    /// Writes returned and not yet reported, by id (ids grow in return order).
    pub(super) pending: BTreeMap<BatchId, PendingWrite>,
    next_batch: u64,
}

impl GroupCoordinatorPartition {
    pub fn new(shard: GroupCoordinatorShard, config: OffsetsConfig) -> Self {
        GroupCoordinatorPartition {
            config,
            shard,
            offsets: OffsetStore::default(),
            pending: BTreeMap::new(),
            next_batch: 0,
        }
    }

    pub fn config(&self) -> &OffsetsConfig {
        &self.config
    }

    /// The classic groups, for reads (DescribeGroups, ListGroups, group state).
    pub fn shard(&self) -> &GroupCoordinatorShard {
        &self.shard
    }

    /// The durable committed offsets.
    pub fn offsets(&self) -> &OffsetStore {
        &self.offsets
    }

    /// Whether any write is waiting for `on_persisted`.
    pub fn has_pending_writes(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Registers a batch; `None` if it has no records (nothing to write).
    pub(super) fn new_write(
        &mut self,
        records: Vec<CoordinatorRecord>,
        pending: PendingWrite,
    ) -> Option<Write> {
        if records.is_empty() {
            debug_assert!(pending.offsets.is_empty() && pending.group_writes.is_empty());
            return None;
        }
        let id = BatchId(self.next_batch);
        self.next_batch += 1;
        self.pending.insert(id, pending);
        Some(Write { id, records })
    }

    /// Turns the classic shard's effects into the partition's: each persist becomes a
    /// batch of its own.
    pub(super) fn translate(&mut self, fx: Vec<Effect>) -> Vec<PartitionEffect> {
        let mut out = Vec::with_capacity(fx.len());
        for effect in fx {
            match effect {
                Effect::Respond { token, response } => {
                    out.push(PartitionEffect::Respond { token, response })
                }
                Effect::Persist { write_id, record } => {
                    let pending = PendingWrite {
                        offsets: Vec::new(),
                        group_writes: vec![write_id],
                    };
                    if let Some(w) = self.new_write(vec![group_record(record)], pending) {
                        out.push(PartitionEffect::Persist(w));
                    }
                }
            }
        }
        out
    }

    /// Reports the outcome of a [`Write`]. On success its offset changes become visible
    /// and the classic shard completes its part; `Err` is the error to answer the
    /// requests that waited on the write with (COORDINATOR_NOT_AVAILABLE,
    /// NOT_COORDINATOR, ...), and the write's changes are dropped.
    pub fn on_persisted(
        &mut self,
        id: BatchId,
        result: Result<(), GroupError>,
        now_ms: i64,
    ) -> Vec<PartitionEffect> {
        let Some(pending) = self.pending.remove(&id) else {
            return Vec::new();
        };
        if result.is_ok() {
            for (key, value) in pending.offsets {
                self.offsets.apply(key, value);
            }
        }
        let mut out = Vec::new();
        for write_id in pending.group_writes {
            let fx = self.shard.on_persisted(write_id, result.clone(), now_ms);
            out.extend(self.translate(fx));
        }
        out
    }

    /// The latest value of an offset: the last in-flight change of it, else the durable
    /// one.
    pub(super) fn latest(&self, key: &OffsetKey) -> Option<&OffsetCommitValue> {
        for write in self.pending.values().rev() {
            if let Some((_, v)) = write.offsets.iter().rev().find(|(k, _)| k == key) {
                return v.as_ref();
            }
        }
        self.offsets.get(key)
    }

    /// The group's offsets in the latest state, durable or not, in key order.
    pub(super) fn latest_keys(&self, group_id: &str) -> Vec<OffsetKey> {
        let mut keys: Vec<OffsetKey> = self.offsets.keys_of(group_id).collect();
        for write in self.pending.values() {
            keys.extend(
                write
                    .offsets
                    .iter()
                    .filter(|(k, _)| k.group == group_id)
                    .map(|(k, _)| k.clone()),
            );
        }
        keys.sort();
        keys.dedup();
        keys.retain(|k| self.latest(k).is_some());
        keys
    }

    /// Whether an in-flight write changes this offset.
    pub(super) fn in_flight(&self, key: &OffsetKey) -> bool {
        self.pending
            .values()
            .any(|w| w.offsets.iter().any(|(k, _)| k == key))
    }

    /// Whether an in-flight write changes any offset of the group.
    pub(super) fn group_in_flight(&self, group_id: &str) -> bool {
        self.pending
            .values()
            .any(|w| w.offsets.iter().any(|(k, _)| k.group == group_id))
    }

    // The classic protocol, its effects translated.

    pub fn join_group(
        &mut self,
        token: RequestToken,
        req: JoinGroupRequest,
        now_ms: i64,
    ) -> Vec<PartitionEffect> {
        let fx = self.shard.join_group(token, req, now_ms);
        self.translate(fx)
    }

    pub fn sync_group(
        &mut self,
        token: RequestToken,
        req: SyncGroupRequest,
        now_ms: i64,
    ) -> Vec<PartitionEffect> {
        let fx = self.shard.sync_group(token, req, now_ms);
        self.translate(fx)
    }

    pub fn heartbeat(&mut self, req: HeartbeatRequest, now_ms: i64) -> Result<(), GroupError> {
        self.shard.heartbeat(req, now_ms)
    }

    /// LeaveGroup: `Err` is a group-level error; the effects may answer other requests
    /// and persist the group.
    pub fn leave_group(
        &mut self,
        req: LeaveGroupRequest,
        now_ms: i64,
    ) -> (Result<Vec<LeftMember>, GroupError>, Vec<PartitionEffect>) {
        let out = self.shard.leave_group(req, now_ms);
        (out.response, self.translate(out.effects))
    }

    /// When `on_timer` must next be called, if any group timer is running. Offset
    /// expiry runs on its own period, `config().retention_check_interval_ms`.
    pub fn next_deadline(&self) -> Option<i64> {
        self.shard.next_deadline()
    }

    pub fn on_timer(&mut self, now_ms: i64) -> Vec<PartitionEffect> {
        let fx = self.shard.on_timer(now_ms);
        self.translate(fx)
    }

    /// DeleteGroups: each Empty group goes, its committed offsets with it, in one batch
    /// (offset tombstones first, then the group's, as Kafka writes them).
    pub fn delete_groups(
        &mut self,
        group_ids: &[String],
        now_ms: i64,
    ) -> WriteOutcome<Vec<(String, Result<(), GroupError>)>> {
        let out = self.shard.delete_groups(group_ids, now_ms);
        let write = self.merge_group_deletions(Vec::new(), PendingWrite::default(), out.effects);
        WriteOutcome {
            response: out.response,
            write,
        }
    }

    /// Adds the classic shard's group tombstones (from `delete_groups`) to a batch,
    /// each preceded by tombstones of the group's remaining offsets.
    pub(super) fn merge_group_deletions(
        &mut self,
        mut records: Vec<CoordinatorRecord>,
        mut pending: PendingWrite,
        fx: Vec<Effect>,
    ) -> Option<Write> {
        for effect in fx {
            // Deleting an Empty group answers no request: only its tombstone comes out.
            let Effect::Persist { write_id, record } = effect else {
                debug_assert!(false, "delete_groups answered a request: {effect:?}");
                continue;
            };
            let group_id = record.group_id().to_owned();
            for key in self.latest_keys(&group_id) {
                if pending
                    .offsets
                    .iter()
                    .any(|(k, v)| *k == key && v.is_none())
                {
                    continue; // already tombstoned in this batch (expiry)
                }
                records.push(key.record(None));
                pending.offsets.push((key, None));
            }
            records.push(group_record(record));
            pending.group_writes.push(write_id);
        }
        self.new_write(records, pending)
    }

    // Loading.

    /// Replays records read back from the partition's log, in log order, on startup or
    /// when this broker takes the partition over: groups through the classic shard
    /// (the latest record of a group wins), offsets into the store (a tombstone
    /// deletes). Then call [`GroupCoordinatorPartition::finish_loading`]. On error (a
    /// key with a value of the other kind) the partition is half loaded and must be
    /// discarded.
    pub fn replay_log_records(
        &mut self,
        records: impl IntoIterator<Item = CoordinatorRecord>,
        now_ms: i64,
    ) -> Result<Vec<PartitionEffect>, RecordError> {
        let mut out = Vec::new();
        for CoordinatorRecord { key, value } in records {
            match (key, value) {
                (CoordinatorKey::OffsetCommit { .. }, Some(CoordinatorValue::GroupMetadata(_)))
                | (CoordinatorKey::GroupMetadata { .. }, Some(CoordinatorValue::OffsetCommit(_))) =>
                {
                    return Err(RecordError::Invalid {
                        what: "record",
                        detail: "a value of the wrong kind for its key".to_owned(),
                    });
                }
                (
                    CoordinatorKey::OffsetCommit {
                        group,
                        topic,
                        partition,
                    },
                    value,
                ) => {
                    let value = match value {
                        Some(CoordinatorValue::OffsetCommit(v)) => Some(v),
                        _ => None,
                    };
                    let key = OffsetKey::new(group, topic, partition);
                    self.offsets.apply(key, value);
                }
                (CoordinatorKey::GroupMetadata { group }, value) => {
                    let record = match value {
                        Some(CoordinatorValue::GroupMetadata(value)) => {
                            GroupRecord::GroupMetadata {
                                group_id: group,
                                value,
                            }
                        }
                        _ => GroupRecord::GroupTombstone { group_id: group },
                    };
                    let fx = self.shard.replay(record, now_ms);
                    out.extend(self.translate(fx));
                }
            }
        }
        Ok(out)
    }

    /// After replaying: a group that has offsets but no metadata (a simple consumer's)
    /// exists as an Empty group without protocol type; then the shard's own checks.
    pub fn finish_loading(&mut self, now_ms: i64) -> Vec<PartitionEffect> {
        let groups: Vec<String> = self.offsets.group_ids().map(str::to_owned).collect();
        for group_id in groups {
            if self.shard.group_state(&group_id) != Some(GroupState::Dead) {
                self.shard.ensure_group(&group_id, now_ms);
            }
        }
        let fx = self.shard.finish_loading(now_ms);
        self.translate(fx)
    }
}

/// A classic group record as a `__consumer_offsets` record.
pub(super) fn group_record(record: GroupRecord) -> CoordinatorRecord {
    match record {
        GroupRecord::GroupMetadata { group_id, value } => {
            CoordinatorRecord::group_metadata(group_id, Some(value))
        }
        GroupRecord::GroupTombstone { group_id } => {
            CoordinatorRecord::group_metadata(group_id, None)
        }
    }
}
