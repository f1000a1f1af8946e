//! Offset expiry (Kafka's `cleanupGroupMetadata`, rules of KIP-211) and the topics a
//! classic group subscribes to.
//!
//! Every `offsets.retention.check.interval.ms` the caller runs
//! [`GroupCoordinatorPartition::expire`]. For each group, an offset expires when:
//! - it carries an explicit expire timestamp (OffsetCommit v1-v4 with a retention
//!   time) and `now >= expire_timestamp`; otherwise, with `retention` =
//!   `offsets.retention.minutes`:
//! - Empty group with a protocol type: `now - state_timestamp >= retention`, the time
//!   since the group became Empty (Kafka's condition, `>=`);
//! - a simple group (no protocol type): `now - commit_timestamp >= retention`;
//! - a Stable "consumer" group whose subscriptions are known: offsets of topics no
//!   member subscribes to, by commit timestamp;
//! - any other group (rebalancing, non-consumer with members, unknown subscriptions):
//!   nothing expires.
//!
//! Offsets of subscribed topics never expire. A group that ends up with no offsets
//! (all expired, or none ever committed) and is Empty is deleted: its tombstone
//! follows the offset tombstones in the same batch. Offsets with a write in flight,
//! and groups with any, are left for the next run.
//!
//! Subscriptions: a "consumer" group's members carry a `ConsumerProtocolSubscription`
//! as protocol metadata; Kafka reads its v0 prefix, which every version starts with:
//! ```text
//! version i16 | topics: count i32, per topic: length i16 | UTF-8 | user_data: length i32 (-1 null) | bytes
//! ```
//! An Empty consumer group subscribes to nothing; a consumer group whose metadata does
//! not parse, or that has no protocol yet, counts as subscribed to every topic; a
//! group of another protocol type subscribes to none.

use std::collections::BTreeSet;

use super::classic::{GroupOffsetsView, GroupState};
use super::offsets::OffsetKey;
use super::partition::{GroupCoordinatorPartition, PendingWrite, Write};
use super::records::OffsetCommitValue;

const CONSUMER_PROTOCOL_TYPE: &str = "consumer";

/// The topics in a `ConsumerProtocolSubscription`, `None` if it does not parse.
pub(super) fn subscription_topics(metadata: &[u8]) -> Option<Vec<String>> {
    fn take<'a>(buf: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        if n > buf.len() {
            return None;
        }
        let (head, rest) = buf.split_at(n);
        *buf = rest;
        Some(head)
    }
    fn int<const N: usize>(buf: &mut &[u8]) -> Option<[u8; N]> {
        take(buf, N)?.try_into().ok()
    }
    let mut buf = metadata;
    let _version = i16::from_be_bytes(int(&mut buf)?);
    let count = i32::from_be_bytes(int(&mut buf)?);
    // Each topic takes at least its 2-byte length: no allocation beyond the input.
    let count = usize::try_from(count).ok()?;
    let mut topics = Vec::with_capacity(count.min(buf.len() / 2));
    for _ in 0..count {
        let len = usize::try_from(i16::from_be_bytes(int(&mut buf)?)).ok()?;
        topics.push(std::str::from_utf8(take(&mut buf, len)?).ok()?.to_owned());
    }
    match i32::from_be_bytes(int(&mut buf)?) {
        -1 => {}
        len => {
            take(&mut buf, usize::try_from(len).ok()?)?;
        }
    }
    Some(topics)
}

/// Kafka's `ClassicGroup.computeSubscribedTopics`: `None` when unknown.
fn subscribed_topics(view: &GroupOffsetsView) -> Option<BTreeSet<String>> {
    if view.protocol_type.as_deref() != Some(CONSUMER_PROTOCOL_TYPE) {
        return None;
    }
    if view.member_metadata.is_empty() {
        return Some(BTreeSet::new());
    }
    view.protocol_name.as_ref()?;
    let mut topics = BTreeSet::new();
    for metadata in &view.member_metadata {
        topics.extend(subscription_topics(metadata)?);
    }
    Some(topics)
}

/// Kafka's `ClassicGroup.isSubscribedToTopic`.
pub(super) fn is_subscribed(view: &GroupOffsetsView, topic: &str) -> bool {
    match subscribed_topics(view) {
        Some(topics) => topics.contains(topic),
        None => view.protocol_type.as_deref() == Some(CONSUMER_PROTOCOL_TYPE),
    }
}

/// What an offset's retention counts from (Kafka's `offsetExpirationCondition`).
#[derive(Debug, Clone, Copy)]
enum ExpiryBase {
    CommitTimestamp,
    /// The time the group became Empty.
    StateTimestamp(i64),
}

fn expiry_base(view: &GroupOffsetsView) -> Option<ExpiryBase> {
    match &view.protocol_type {
        None => Some(ExpiryBase::CommitTimestamp),
        Some(_) if view.state == GroupState::Empty => {
            Some(ExpiryBase::StateTimestamp(view.state_timestamp_ms))
        }
        Some(t)
            if t == CONSUMER_PROTOCOL_TYPE
                && view.state == GroupState::Stable
                && subscribed_topics(view).is_some() =>
        {
            Some(ExpiryBase::CommitTimestamp)
        }
        Some(_) => None,
    }
}

fn is_expired(v: &OffsetCommitValue, base: ExpiryBase, now_ms: i64, retention_ms: i64) -> bool {
    if let Some(at) = v.expire_timestamp {
        return now_ms >= at;
    }
    let from = match base {
        ExpiryBase::CommitTimestamp => v.commit_timestamp,
        ExpiryBase::StateTimestamp(ts) => ts,
    };
    now_ms.saturating_sub(from) >= retention_ms
}

impl GroupCoordinatorPartition {
    /// Expires offsets and deletes Empty groups left without any, in one batch; `None`
    /// when nothing is due.
    pub fn expire(&mut self, now_ms: i64) -> Option<Write> {
        let retention_ms = self.config.retention_ms;
        let mut records = Vec::new();
        let mut pending = PendingWrite::default();
        let mut deletable = Vec::new();
        let group_ids: Vec<String> = self
            .shard
            .list_groups(&[])
            .into_iter()
            .map(|g| g.group_id)
            .collect();
        for group_id in group_ids {
            let Some(view) = self.shard.offsets_view(&group_id) else {
                continue;
            };
            if view.state == GroupState::Dead {
                continue;
            }
            let mut all_expired = true;
            if self.offsets.has_offsets(&group_id) {
                let Some(base) = expiry_base(&view) else {
                    continue;
                };
                for (topic, partition, v) in self.offsets.group_offsets(&group_id) {
                    let key = OffsetKey::new(&group_id, topic, partition);
                    let expired = !is_subscribed(&view, topic)
                        && !self.in_flight(&key)
                        && is_expired(v, base, now_ms, retention_ms);
                    if expired {
                        records.push(key.record(None));
                        pending.offsets.push((key, None));
                    } else {
                        all_expired = false;
                    }
                }
            }
            if all_expired && view.state == GroupState::Empty && !self.group_in_flight(&group_id) {
                deletable.push(group_id);
            }
        }
        let fx = if deletable.is_empty() {
            Vec::new()
        } else {
            self.shard.delete_groups(&deletable, now_ms).effects
        };
        self.merge_group_deletions(records, pending, fx)
    }
}
