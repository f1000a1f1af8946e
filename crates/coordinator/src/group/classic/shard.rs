//! [`GroupCoordinatorShard`]: the classic groups of one `__consumer_offsets` partition,
//! and the transitions shared by every request (Kafka's `GroupMetadataManager` for
//! classic groups). The shard does no I/O and reads no clock: each call takes `now_ms`
//! and returns [`Effect`]s; timers are deadlines the caller polls with
//! [`GroupCoordinatorShard::next_deadline`] and fires with
//! [`GroupCoordinatorShard::on_timer`].
//!
//! Every deferred request is answered exactly once: whatever removes a member or ends
//! a phase answers the requests it was holding. Kafka drops a superseded callback
//! (a member retrying JoinGroup while its first one waits); a caller that answers
//! requests in order per connection cannot, so the superseded one is answered with
//! REBALANCE_IN_PROGRESS.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;

use super::error::GroupError;
use super::group::ClassicGroup;
use super::timer::{TimerKey, Timers};
use super::types::{
    Effect, GroupConfig, GroupRecord, GroupState, JoinGroupResponse, Protocol, RequestToken,
    Response, SyncGroupResponse, WriteId,
};

/// What to do when a write completes.
#[derive(Debug)]
pub(super) enum WriteAction {
    /// The leader's assignment: applied, and every SyncGroup answered, once durable.
    LeaderSync {
        group_id: String,
        generation: i32,
        assignment: HashMap<String, Bytes>,
    },
    /// A static member took over its instance id while Stable: its JoinGroup is
    /// answered once durable; on failure the replacement is undone.
    StaticReplace {
        group_id: String,
        instance_id: String,
        old_member_id: String,
        new_member_id: String,
        old_protocols: Vec<Protocol>,
        old_rebalance_timeout_ms: i32,
        old_session_timeout_ms: i32,
        /// The leader before the replacement, reported to a client without KIP-814 so
        /// that a replaced leader does not assign while the group stays Stable.
        previous_leader: String,
        supports_skip_assignment: bool,
    },
    /// The group's tombstone: the Dead group is dropped once durable.
    Delete { group_id: String },
}

#[derive(Debug, Default)]
pub(super) struct Writes {
    next: u64,
    pub pending: HashMap<WriteId, WriteAction>,
}

/// The classic groups of one `__consumer_offsets` partition. Single writer: the caller
/// serializes calls.
#[derive(Debug, Default)]
pub struct GroupCoordinatorShard {
    pub(super) config: GroupConfig,
    pub(super) groups: BTreeMap<String, ClassicGroup>,
    pub(super) timers: Timers,
    pub(super) writes: Writes,
}

/// The parts of the shard a transition needs besides the group it changes, so a group
/// borrowed from `groups` and the rest can be changed together.
pub(super) struct Ctx<'a> {
    pub config: &'a GroupConfig,
    pub timers: &'a mut Timers,
    pub writes: &'a mut Writes,
    pub now: i64,
    pub fx: Vec<Effect>,
}

impl GroupCoordinatorShard {
    pub fn new(config: GroupConfig) -> Self {
        GroupCoordinatorShard {
            config,
            ..Default::default()
        }
    }

    pub fn config(&self) -> &GroupConfig {
        &self.config
    }

    pub fn group_state(&self, group_id: &str) -> Option<GroupState> {
        self.groups.get(group_id).map(|g| g.state)
    }

    /// When `on_timer` must next be called, if any timer is running.
    pub fn next_deadline(&self) -> Option<i64> {
        self.timers.next_deadline()
    }

    pub(super) fn split(&mut self, now_ms: i64) -> (&mut BTreeMap<String, ClassicGroup>, Ctx<'_>) {
        (
            &mut self.groups,
            Ctx {
                config: &self.config,
                timers: &mut self.timers,
                writes: &mut self.writes,
                now: now_ms,
                fx: Vec::new(),
            },
        )
    }

    /// Fires every timer due at `now_ms`: join phase ends, sync deadlines, session
    /// expiries. Timers scheduled while firing wait for the next call, so a zero
    /// timeout cannot spin.
    pub fn on_timer(&mut self, now_ms: i64) -> Vec<Effect> {
        let mut due = Vec::new();
        while let Some(key) = self.timers.pop_due(now_ms) {
            due.push(key);
        }
        let (groups, mut cx) = self.split(now_ms);
        for key in due {
            // Rescheduled by an earlier timer of this batch (a completed join phase
            // restarts every session): no longer due.
            if cx.timers.deadline(&key).is_some() {
                continue;
            }
            let group_id = match &key {
                TimerKey::Join(g) | TimerKey::Sync(g) => g,
                TimerKey::Heartbeat { group, .. } | TimerKey::Pending { group, .. } => group,
            };
            let Some(g) = groups.get_mut(group_id) else {
                continue;
            };
            match &key {
                TimerKey::Join(_) => cx.on_join_timer(g),
                TimerKey::Sync(_) => cx.on_sync_timer(g),
                TimerKey::Heartbeat { member, .. } => cx.on_session_expired(g, member),
                TimerKey::Pending { member, .. } => {
                    if g.pending_join.remove(member) {
                        cx.maybe_complete_join_after_removal(g);
                    }
                }
            }
        }
        cx.fx
    }

    /// Reports the outcome of a [`Effect::Persist`]. `Err` is the error to answer the
    /// requests that waited on the write with (COORDINATOR_NOT_AVAILABLE,
    /// NOT_COORDINATOR, ...).
    pub fn on_persisted(
        &mut self,
        write_id: WriteId,
        result: Result<(), GroupError>,
        now_ms: i64,
    ) -> Vec<Effect> {
        let Some(action) = self.writes.pending.remove(&write_id) else {
            return Vec::new();
        };
        let (groups, mut cx) = self.split(now_ms);
        match action {
            WriteAction::LeaderSync {
                group_id,
                generation,
                assignment,
            } => {
                if let Some(g) = groups.get_mut(&group_id) {
                    cx.complete_leader_sync(g, generation, assignment, result);
                }
            }
            WriteAction::StaticReplace { .. } => {
                cx.complete_static_replace(groups, action, result);
            }
            WriteAction::Delete { group_id } => {
                let dead = groups
                    .get(&group_id)
                    .is_some_and(|g| g.state == GroupState::Dead);
                if dead {
                    if result.is_ok() {
                        groups.remove(&group_id);
                    } else if let Some(g) = groups.get_mut(&group_id) {
                        // Not deleted after all: the group is as it was, Empty.
                        g.state = GroupState::Empty;
                        g.state_timestamp_ms = now_ms;
                    }
                }
            }
        }
        cx.fx
    }
}

pub(super) fn join_success(
    g: &ClassicGroup,
    member_id: &str,
    with_members: bool,
) -> JoinGroupResponse {
    JoinGroupResponse {
        error: None,
        generation_id: g.generation,
        protocol_type: g.protocol_type.clone(),
        protocol_name: g.protocol_name.clone(),
        leader: g.leader.clone().unwrap_or_default(),
        skip_assignment: false,
        member_id: member_id.to_owned(),
        members: if with_members {
            g.leader_member_list()
        } else {
            Vec::new()
        },
    }
}

impl Ctx<'_> {
    pub(super) fn respond_join(&mut self, token: RequestToken, response: JoinGroupResponse) {
        self.fx.push(Effect::Respond {
            token,
            response: Response::Join(response),
        });
    }

    pub(super) fn respond_sync(&mut self, token: RequestToken, response: SyncGroupResponse) {
        self.fx.push(Effect::Respond {
            token,
            response: Response::Sync(response),
        });
    }

    pub(super) fn persist(&mut self, record: GroupRecord, action: Option<WriteAction>) {
        let write_id = WriteId(self.writes.next);
        self.writes.next += 1;
        if let Some(action) = action {
            self.writes.pending.insert(write_id, action);
        }
        self.fx.push(Effect::Persist { write_id, record });
    }

    pub(super) fn persist_group(&mut self, g: &ClassicGroup, action: Option<WriteAction>) {
        let record = GroupRecord::GroupMetadata {
            group_id: g.id.clone(),
            value: g.metadata_value(None),
        };
        self.persist(record, action);
    }

    pub(super) fn schedule_session(&mut self, g: &ClassicGroup, member_id: &str, timeout_ms: i32) {
        let key = TimerKey::Heartbeat {
            group: g.id.clone(),
            member: member_id.to_owned(),
        };
        self.timers.schedule(key, self.now + i64::from(timeout_ms));
    }

    /// Restarts a member's session timer with its session timeout.
    pub(super) fn reschedule_heartbeat(&mut self, g: &ClassicGroup, member_id: &str) {
        if let Some(m) = g.members.get(member_id) {
            self.schedule_session(g, member_id, m.session_timeout_ms);
        }
    }

    /// Removes a member, answering what it was waiting on: a JoinGroup with
    /// UNKNOWN_MEMBER_ID so a still-running client rejoins (Kafka), and a SyncGroup
    /// likewise (Kafka leaves that one unanswered).
    pub(super) fn remove_member(&mut self, g: &mut ClassicGroup, member_id: &str) {
        self.timers.cancel(&TimerKey::Heartbeat {
            group: g.id.clone(),
            member: member_id.to_owned(),
        });
        let Some(member) = g.remove(member_id) else {
            return;
        };
        if let Some(token) = member.awaiting_join {
            let r = JoinGroupResponse::error(GroupError::UnknownMemberId, "");
            self.respond_join(token, r);
        }
        if let Some(token) = member.awaiting_sync {
            self.respond_sync(token, SyncGroupResponse::error(GroupError::UnknownMemberId));
        }
    }

    /// Kafka's `maybePrepareRebalanceOrCompleteJoin`.
    pub(super) fn rebalance_or_complete_join(&mut self, g: &mut ClassicGroup) {
        if g.can_rebalance() {
            self.prepare_rebalance(g);
        } else {
            self.maybe_complete_join_phase(g);
        }
    }

    pub(super) fn prepare_rebalance(&mut self, g: &mut ClassicGroup) {
        if g.state == GroupState::CompletingRebalance {
            self.reset_and_propagate_with_error(g, GroupError::RebalanceInProgress);
        }
        self.timers.cancel(&TimerKey::Sync(g.id.clone()));
        let initial = g.state == GroupState::Empty;
        g.transition(GroupState::PreparingRebalance, self.now);
        if initial {
            // A new group: give more members time to join before the first generation.
            let delay = self.config.initial_rebalance_delay_ms;
            let remaining = (g.rebalance_timeout_ms() - delay).max(0);
            g.initial_delay = Some((delay, remaining));
            g.new_member_added = false;
            self.timers
                .schedule(TimerKey::Join(g.id.clone()), self.now + i64::from(delay));
        } else if g.has_all_members_joined() {
            self.complete_join(g);
        } else {
            self.schedule_join_timeout(g);
        }
    }

    fn schedule_join_timeout(&mut self, g: &mut ClassicGroup) {
        g.initial_delay = None;
        let at = self.now + i64::from(g.rebalance_timeout_ms());
        self.timers.schedule(TimerKey::Join(g.id.clone()), at);
    }

    /// Ends the join phase early once everyone rejoined, except during the initial
    /// delay, which always runs its course.
    pub(super) fn maybe_complete_join_phase(&mut self, g: &mut ClassicGroup) {
        if g.state == GroupState::PreparingRebalance
            && g.has_all_members_joined()
            && g.previous_state != GroupState::Empty
        {
            self.complete_join(g);
        }
    }

    /// After a member or pending member left during the join phase.
    pub(super) fn maybe_complete_join_after_removal(&mut self, g: &mut ClassicGroup) {
        if g.state == GroupState::PreparingRebalance && g.has_all_members_joined() {
            self.complete_join(g);
        }
    }

    fn on_join_timer(&mut self, g: &mut ClassicGroup) {
        if g.state != GroupState::PreparingRebalance {
            return;
        }
        if let Some((delay, remaining)) = g.initial_delay {
            if g.new_member_added && remaining != 0 {
                // Members keep coming: wait again, up to the rebalance timeout in all.
                g.new_member_added = false;
                let next_delay = self.config.initial_rebalance_delay_ms.min(remaining);
                g.initial_delay = Some((next_delay, (remaining - delay).max(0)));
                let at = self.now + i64::from(next_delay);
                self.timers.schedule(TimerKey::Join(g.id.clone()), at);
                return;
            }
        }
        self.complete_join(g);
    }

    /// Kafka's `completeClassicGroupJoin`: drops dynamic members that did not rejoin,
    /// starts the next generation and answers every waiting JoinGroup.
    pub(super) fn complete_join(&mut self, g: &mut ClassicGroup) {
        self.timers.cancel(&TimerKey::Join(g.id.clone()));
        g.initial_delay = None;
        for id in g.not_yet_rejoined() {
            // Static members stay: they may come back with the same instance id.
            if g.members.get(&id).is_some_and(|m| m.instance_id.is_none()) {
                self.remove_member(g, &id);
            }
        }
        if g.state == GroupState::Dead {
            return;
        }
        if !g.maybe_elect_new_joined_leader() && !g.members.is_empty() {
            // Only static members that did not rejoin are left: wait for them to
            // rejoin or for their sessions to expire.
            self.schedule_join_timeout(g);
            return;
        }
        g.init_next_generation(self.now);
        if g.state == GroupState::Empty {
            self.persist_group(g, None);
            return;
        }
        let ids: Vec<String> = g
            .members_in_join_order()
            .iter()
            .map(|m| m.id.clone())
            .collect();
        for id in ids {
            let response = join_success(g, &id, g.is_leader(&id));
            if let Some(m) = g.members.get_mut(&id) {
                m.is_new = false;
                if let Some(token) = m.awaiting_join.take() {
                    self.respond_join(token, response);
                }
            }
            self.reschedule_heartbeat(g, &id);
            g.pending_sync.insert(id);
        }
        let at = self.now + i64::from(g.rebalance_timeout_ms());
        self.timers.schedule(TimerKey::Sync(g.id.clone()), at);
    }

    /// Members that did not send SyncGroup within the rebalance timeout are removed.
    fn on_sync_timer(&mut self, g: &mut ClassicGroup) {
        let syncing = matches!(
            g.state,
            GroupState::CompletingRebalance | GroupState::Stable
        );
        if !syncing || g.pending_sync.is_empty() {
            return;
        }
        let mut late: Vec<String> = g.pending_sync.iter().cloned().collect();
        late.sort();
        for id in late {
            self.remove_member(g, &id);
        }
        self.prepare_rebalance(g);
    }

    fn on_session_expired(&mut self, g: &mut ClassicGroup, member_id: &str) {
        if g.state == GroupState::Dead {
            return;
        }
        let Some(member) = g.members.get(member_id) else {
            return;
        };
        if member.has_satisfied_heartbeat() {
            return;
        }
        self.remove_member(g, member_id);
        match g.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.rebalance_or_complete_join(g)
            }
            _ => self.maybe_complete_join_after_removal(g),
        }
    }

    pub(super) fn reset_and_propagate_with_error(
        &mut self,
        g: &mut ClassicGroup,
        error: GroupError,
    ) {
        for m in g.members.values_mut() {
            m.assignment = Bytes::new();
        }
        self.propagate_assignment(g, Some(error));
    }

    /// Answers every waiting SyncGroup with the member's assignment (or the error).
    fn propagate_assignment(&mut self, g: &mut ClassicGroup, error: Option<GroupError>) {
        let ids: Vec<String> = g.members.keys().cloned().collect();
        for id in ids {
            let Some(m) = g.members.get_mut(&id) else {
                continue;
            };
            let Some(token) = m.awaiting_sync.take() else {
                continue;
            };
            let response = match &error {
                Some(e) => SyncGroupResponse::error(e.clone()),
                None => SyncGroupResponse {
                    error: None,
                    protocol_type: g.protocol_type.clone(),
                    protocol_name: g.protocol_name.clone(),
                    assignment: m.assignment.clone(),
                },
            };
            self.respond_sync(token, response);
            // A session that expired while the member waited was ignored; restart it.
            self.reschedule_heartbeat(g, &id);
        }
    }

    fn complete_leader_sync(
        &mut self,
        g: &mut ClassicGroup,
        generation: i32,
        mut assignment: HashMap<String, Bytes>,
        result: Result<(), GroupError>,
    ) {
        // Another rebalance may have started while the write was in flight; it has
        // answered the waiting SyncGroups already.
        if g.state != GroupState::CompletingRebalance || g.generation != generation {
            return;
        }
        match result {
            Ok(()) => {
                for m in g.members.values_mut() {
                    m.assignment = assignment.remove(&m.id).unwrap_or_default();
                }
                self.propagate_assignment(g, None);
                g.transition(GroupState::Stable, self.now);
            }
            Err(e) => {
                self.reset_and_propagate_with_error(g, e);
                self.rebalance_or_complete_join(g);
            }
        }
    }
}
