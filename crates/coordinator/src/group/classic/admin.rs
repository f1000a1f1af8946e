//! The shard's read and administrative side: DescribeGroups, ListGroups,
//! DeleteGroups, the group checks of OffsetCommit, and loading groups from
//! `__consumer_offsets` on startup.

use bytes::Bytes;

use super::error::GroupError;
use super::group::{ClassicGroup, Member};
use super::shard::{Ctx, GroupCoordinatorShard, WriteAction};
use super::types::{
    Effect, GroupDescription, GroupRecord, GroupState, JoinGroupResponse, ListedGroup, Outcome,
    Protocol, SyncGroupResponse,
};

/// What the offsets store needs to know of a group: expiry and OffsetDelete depend on
/// its state, protocol and the topics its members subscribe to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupOffsetsView {
    pub state: GroupState,
    /// `None` for a group no member ever joined (a simple consumer's).
    pub protocol_type: Option<String>,
    /// The protocol of the current generation; `None` while Empty.
    pub protocol_name: Option<String>,
    /// When the group entered its current state.
    pub state_timestamp_ms: i64,
    /// Each member's metadata for `protocol_name` (empty bytes without one).
    pub member_metadata: Vec<Bytes>,
}

impl GroupCoordinatorShard {
    /// The group as the offsets store sees it, if it exists.
    pub fn offsets_view(&self, group_id: &str) -> Option<GroupOffsetsView> {
        let g = self.groups.get(group_id)?;
        let protocol = g.protocol_name.as_deref().unwrap_or("");
        Some(GroupOffsetsView {
            state: g.state,
            protocol_type: g.protocol_type.clone(),
            protocol_name: g.protocol_name.clone(),
            state_timestamp_ms: g.state_timestamp_ms,
            member_metadata: g.members.values().map(|m| m.metadata(protocol)).collect(),
        })
    }

    /// An accepted offset commit keeps its member's session alive while the group is
    /// Stable or PreparingRebalance (Kafka's `commitOffset` for classic groups).
    pub fn touch_member(&mut self, group_id: &str, member_id: &str, now_ms: i64) {
        let (groups, mut cx) = self.split(now_ms);
        let Some(g) = groups.get(group_id) else {
            return;
        };
        if matches!(g.state, GroupState::Stable | GroupState::PreparingRebalance) {
            cx.reschedule_heartbeat(g, member_id);
        }
    }

    /// DescribeGroups, one entry per id asked. An unknown group is
    /// [`GroupError::GroupIdNotFound`]; Kafka answers it as a Dead group with no error
    /// before DescribeGroups v6, which is the server's choice.
    pub fn describe_groups(
        &self,
        group_ids: &[String],
    ) -> Vec<Result<GroupDescription, GroupError>> {
        group_ids
            .iter()
            .map(|id| {
                if id.is_empty() {
                    return Err(GroupError::InvalidGroupId);
                }
                self.groups
                    .get(id)
                    .map(ClassicGroup::describe)
                    .ok_or(GroupError::GroupIdNotFound)
            })
            .collect()
    }

    /// ListGroups; an empty `states` filter lists every group.
    pub fn list_groups(&self, states: &[GroupState]) -> Vec<ListedGroup> {
        self.groups
            .values()
            .filter(|g| states.is_empty() || states.contains(&g.state))
            .map(|g| ListedGroup {
                group_id: g.id.clone(),
                protocol_type: g.protocol_type.clone().unwrap_or_default(),
                state: g.state,
            })
            .collect()
    }

    /// DeleteGroups: only Empty groups can go. A deleted group is Dead until its
    /// tombstone is durable, then forgotten. The caller also deletes the group's
    /// committed offsets.
    pub fn delete_groups(
        &mut self,
        group_ids: &[String],
        now_ms: i64,
    ) -> Outcome<Vec<(String, Result<(), GroupError>)>> {
        let (groups, mut cx) = self.split(now_ms);
        let mut results = Vec::with_capacity(group_ids.len());
        for id in group_ids {
            let result = match groups.get_mut(id) {
                None => Err(GroupError::GroupIdNotFound),
                Some(g) => match g.state {
                    GroupState::Dead => Err(GroupError::GroupIdNotFound),
                    GroupState::Empty => {
                        // Member ids handed out with MEMBER_ID_REQUIRED die with it.
                        g.pending_join.clear();
                        cx.timers.cancel_group(id);
                        g.transition(GroupState::Dead, cx.now);
                        let record = GroupRecord::GroupTombstone {
                            group_id: id.clone(),
                        };
                        let action = WriteAction::Delete {
                            group_id: id.clone(),
                        };
                        cx.persist(record, Some(action));
                        Ok(())
                    }
                    _ => Err(GroupError::NonEmptyGroup),
                },
            };
            results.push((id.clone(), result));
        }
        Outcome {
            response: results,
            effects: cx.fx,
        }
    }

    /// The group checks of an OffsetCommit (Kafka's `ClassicGroup.validateOffsetCommit`).
    /// A commit with generation -1 to an unknown group comes from a consumer that does
    /// not use group management (or an admin client): it creates an Empty "simple"
    /// group and is allowed. A commit with a generation to an unknown group is
    /// [`GroupError::GroupIdNotFound`] (OffsetCommit v9+; the server answers
    /// ILLEGAL_GENERATION to older versions).
    pub fn validate_offset_commit(
        &mut self,
        group_id: &str,
        member_id: &str,
        generation_id: i32,
        group_instance_id: Option<&str>,
        now_ms: i64,
    ) -> Result<(), GroupError> {
        if group_id.is_empty() {
            return Err(GroupError::InvalidGroupId);
        }
        let Some(g) = self.groups.get(group_id) else {
            if generation_id < 0 {
                self.ensure_group(group_id, now_ms);
                return Ok(());
            }
            return Err(GroupError::GroupIdNotFound);
        };
        if g.state == GroupState::Dead {
            return Err(GroupError::CoordinatorNotAvailable);
        }
        if generation_id < 0 && g.state == GroupState::Empty {
            return Ok(());
        }
        if generation_id >= 0 || !member_id.is_empty() || group_instance_id.is_some() {
            g.validate_member(member_id, group_instance_id)?;
            if generation_id != g.generation {
                return Err(GroupError::IllegalGeneration);
            }
        } else if g.state != GroupState::Empty {
            // A commit without member id and generation (OffsetCommit v0) is only
            // accepted while nobody is consuming as a group.
            return Err(GroupError::UnknownMemberId);
        }
        if g.state == GroupState::CompletingRebalance {
            // The member has its new generation but not its assignment yet: let it
            // finish the rebalance and retry.
            return Err(GroupError::RebalanceInProgress);
        }
        Ok(())
    }

    /// Creates an Empty group if there is none: for committed offsets found on load
    /// whose group has no metadata record (a simple consumer's).
    pub fn ensure_group(&mut self, group_id: &str, now_ms: i64) {
        if !self.groups.contains_key(group_id) {
            let g = ClassicGroup::new(group_id.to_owned(), now_ms);
            self.groups.insert(group_id.to_owned(), g);
        }
    }

    /// Loads a group record read back from `__consumer_offsets`, on startup or when this
    /// broker becomes the partition's leader; the latest record of a group wins. A group
    /// with members loads as Stable, and its members' sessions start at `now_ms`.
    /// Requests still waiting on a replaced group are answered in the effects.
    pub fn replay(&mut self, record: GroupRecord, now_ms: i64) -> Vec<Effect> {
        let (groups, mut cx) = self.split(now_ms);
        let group_id = record.group_id().to_owned();
        if let Some(mut old) = groups.remove(&group_id) {
            cx.drop_group(&mut old);
        }
        let GroupRecord::GroupMetadata { value, .. } = record else {
            return cx.fx;
        };
        let mut g = ClassicGroup::new(group_id, now_ms);
        g.generation = value.generation;
        g.protocol_type = Some(value.protocol_type).filter(|t| !t.is_empty());
        g.protocol_name = value.protocol;
        g.state_timestamp_ms = if value.current_state_timestamp >= 0 {
            value.current_state_timestamp
        } else {
            now_ms
        };
        let protocol_type = g.protocol_type.clone().unwrap_or_default();
        let protocol_name = g.protocol_name.clone().unwrap_or_default();
        for m in value.members {
            let member = Member {
                id: m.member_id,
                instance_id: m.group_instance_id,
                client_id: m.client_id,
                client_host: m.client_host,
                rebalance_timeout_ms: m.rebalance_timeout,
                session_timeout_ms: m.session_timeout,
                protocols: vec![Protocol {
                    name: protocol_name.clone(),
                    metadata: m.subscription,
                }],
                assignment: m.assignment,
                join_seq: 0,
                awaiting_join: None,
                awaiting_sync: None,
                is_new: false,
            };
            let id = member.id.clone();
            g.add(member, &protocol_type);
            cx.reschedule_heartbeat(&g, &id);
        }
        // `add` made the first member leader; the record says who is.
        if let Some(leader) = value.leader.filter(|l| g.members.contains_key(l)) {
            g.leader = Some(leader);
        }
        if !g.members.is_empty() {
            g.state = GroupState::Stable;
            g.previous_state = GroupState::Stable;
        }
        groups.insert(g.id.clone(), g);
        cx.fx
    }

    /// After loading: a Stable group larger than `group.max.size` (lowered since it was
    /// written) rebalances, so members beyond the limit are refused on rejoin.
    pub fn finish_loading(&mut self, now_ms: i64) -> Vec<Effect> {
        let max = self.config.max_size;
        let (groups, mut cx) = self.split(now_ms);
        for g in groups.values_mut() {
            if g.state == GroupState::Stable && g.members.len() > max {
                cx.prepare_rebalance(g);
            }
        }
        cx.fx
    }
}

impl Ctx<'_> {
    /// Forgets a group that a replayed record replaces: its timers stop and its waiting
    /// requests are told to find the coordinator again.
    fn drop_group(&mut self, g: &mut ClassicGroup) {
        self.timers.cancel_group(&g.id);
        for m in g.members.values_mut() {
            if let Some(t) = m.awaiting_join.take() {
                let r = JoinGroupResponse::error(GroupError::CoordinatorNotAvailable, "");
                self.respond_join(t, r);
            }
            if let Some(t) = m.awaiting_sync.take() {
                let r = SyncGroupResponse::error(GroupError::CoordinatorNotAvailable);
                self.respond_sync(t, r);
            }
        }
    }
}
