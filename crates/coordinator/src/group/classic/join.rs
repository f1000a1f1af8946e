//! JoinGroup (Kafka's `classicGroupJoin`): new members get a coordinator-made member
//! id, existing members rejoin or trigger a rebalance, and a static member coming back
//! with its instance id replaces its old member id, without a rebalance when the group
//! is Stable and its protocols are unchanged.

use std::collections::BTreeMap;

use bytes::Bytes;
use uuid::Uuid;

use super::error::GroupError;
use super::group::{ClassicGroup, Member};
use super::shard::{Ctx, GroupCoordinatorShard, WriteAction, join_success};
use super::timer::TimerKey;
use super::types::{
    Effect, GroupRecord, GroupState, JoinGroupRequest, JoinGroupResponse, RequestToken,
    SyncGroupResponse,
};
use crate::group::records::GroupMetadataValue;

impl GroupCoordinatorShard {
    /// Handles a JoinGroup. Its response is in the returned effects, or in those of a
    /// later call (another member's JoinGroup, a timer, a write completion).
    pub fn join_group(
        &mut self,
        token: RequestToken,
        req: JoinGroupRequest,
        now_ms: i64,
    ) -> Vec<Effect> {
        let (groups, mut cx) = self.split(now_ms);
        cx.join(groups, token, req);
        cx.fx
    }
}

impl Ctx<'_> {
    fn join(
        &mut self,
        groups: &mut BTreeMap<String, ClassicGroup>,
        token: RequestToken,
        req: JoinGroupRequest,
    ) {
        let fail = |cx: &mut Self, e: GroupError, member_id: &str| {
            cx.respond_join(token, JoinGroupResponse::error(e, member_id));
        };
        if req.group_id.is_empty() {
            return fail(self, GroupError::InvalidGroupId, &req.member_id);
        }
        let (min, max) = (
            self.config.min_session_timeout_ms,
            self.config.max_session_timeout_ms,
        );
        if !(min..=max).contains(&req.session_timeout_ms) {
            let e = GroupError::InvalidSessionTimeout {
                timeout_ms: req.session_timeout_ms,
                min_ms: min,
                max_ms: max,
            };
            return fail(self, e, &req.member_id);
        }
        let unknown_member = req.member_id.is_empty();
        let new_group = !groups.contains_key(&req.group_id);
        if new_group && !unknown_member {
            // A member id from a group this coordinator does not have (deleted, or
            // moved here): the client must start over.
            return fail(self, GroupError::UnknownMemberId, &req.member_id);
        }
        let g = groups
            .entry(req.group_id.clone())
            .or_insert_with(|| ClassicGroup::new(req.group_id.clone(), self.now));
        let writes_before = self.fx.len();
        if !self.accept_joining_member(g, &req.member_id) {
            self.remove_member(g, &req.member_id);
            fail(self, GroupError::GroupMaxSizeReached, "");
        } else if unknown_member {
            self.join_new_member(g, token, req);
        } else {
            self.join_existing_member(g, token, req);
        }
        let wrote = self.fx[writes_before..]
            .iter()
            .any(|e| matches!(e, Effect::Persist { .. }));
        if new_group && !wrote {
            // Kafka records a new group at once, as it was created (empty), so it
            // survives a restart.
            let value = GroupMetadataValue {
                protocol_type: String::new(),
                generation: 0,
                protocol: None,
                leader: None,
                current_state_timestamp: self.now,
                members: Vec::new(),
            };
            let group_id = g.id.clone();
            self.persist(GroupRecord::GroupMetadata { group_id, value }, None);
        }
    }

    /// Kafka's `acceptJoiningMember`: `group.max.size` counts the members that will be
    /// in the next generation.
    fn accept_joining_member(&self, g: &ClassicGroup, member_id: &str) -> bool {
        let max = self.config.max_size;
        match g.state {
            GroupState::Empty | GroupState::Dead => true,
            GroupState::PreparingRebalance => {
                g.members
                    .get(member_id)
                    .is_some_and(|m| m.awaiting_join.is_some())
                    || g.awaiting_join_count() < max
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                g.members.contains_key(member_id) || g.members.len() < max
            }
        }
    }

    fn join_new_member(
        &mut self,
        g: &mut ClassicGroup,
        token: RequestToken,
        req: JoinGroupRequest,
    ) {
        if g.state == GroupState::Dead {
            let r = JoinGroupResponse::error(GroupError::CoordinatorNotAvailable, "");
            return self.respond_join(token, r);
        }
        if !g.supports_protocols(&req.protocol_type, &req.protocols) {
            let r = JoinGroupResponse::error(GroupError::InconsistentGroupProtocol, "");
            return self.respond_join(token, r);
        }
        let prefix = req.group_instance_id.as_deref().unwrap_or(&req.client_id);
        let member_id = format!("{prefix}-{}", Uuid::new_v4());
        if let Some(instance) = req.group_instance_id.clone() {
            match g.static_members.get(&instance).cloned() {
                Some(old_id) => {
                    self.replace_static_member(g, token, req, instance, old_id, member_id)
                }
                None => self.add_member_and_rebalance(g, token, req, member_id),
            }
        } else if req.require_known_member_id {
            // The client rejoins with this id; until then it is pending, and it is
            // forgotten if it does not come back within its session timeout.
            g.pending_join.insert(member_id.clone());
            let key = TimerKey::Pending {
                group: g.id.clone(),
                member: member_id.clone(),
            };
            self.timers
                .schedule(key, self.now + i64::from(req.session_timeout_ms));
            let r = JoinGroupResponse::error(GroupError::MemberIdRequired, member_id);
            self.respond_join(token, r);
        } else {
            self.add_member_and_rebalance(g, token, req, member_id);
        }
    }

    fn join_existing_member(
        &mut self,
        g: &mut ClassicGroup,
        token: RequestToken,
        req: JoinGroupRequest,
    ) {
        let member_id = req.member_id.clone();
        let fail = |cx: &mut Self, e: GroupError| {
            cx.respond_join(token, JoinGroupResponse::error(e, member_id.clone()));
        };
        if g.state == GroupState::Dead {
            return fail(self, GroupError::CoordinatorNotAvailable);
        }
        if !g.supports_protocols(&req.protocol_type, &req.protocols) {
            return fail(self, GroupError::InconsistentGroupProtocol);
        }
        if g.pending_join.contains(&member_id) {
            // Back with the id MEMBER_ID_REQUIRED gave it.
            self.timers.cancel(&TimerKey::Pending {
                group: g.id.clone(),
                member: member_id.clone(),
            });
            return self.add_member_and_rebalance(g, token, req, member_id.clone());
        }
        if let Err(e) = g.validate_member(&member_id, req.group_instance_id.as_deref()) {
            return fail(self, e);
        }
        let Some(member) = g.members.get(&member_id) else {
            return fail(self, GroupError::UnknownMemberId);
        };
        let unchanged = member.matches(&req.protocols);
        match g.state {
            GroupState::PreparingRebalance => self.update_member_and_rebalance(g, token, req),
            // Same metadata: the member probably missed its JoinGroup response; give
            // it the current generation again.
            GroupState::CompletingRebalance if unchanged => {
                let r = join_success(g, &member_id, g.is_leader(&member_id));
                self.respond_join(token, r);
            }
            // The leader rejoining forces a rebalance: that is how a consumer leader
            // reacts to topic metadata changes that change no member's metadata.
            GroupState::Stable if unchanged && !g.is_leader(&member_id) => {
                self.respond_join(token, join_success(g, &member_id, false));
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                self.update_member_and_rebalance(g, token, req)
            }
            GroupState::Empty | GroupState::Dead => fail(self, GroupError::UnknownMemberId),
        }
    }

    fn add_member_and_rebalance(
        &mut self,
        g: &mut ClassicGroup,
        token: RequestToken,
        req: JoinGroupRequest,
        member_id: String,
    ) {
        let member = Member {
            id: member_id.clone(),
            instance_id: req.group_instance_id,
            client_id: req.client_id,
            client_host: req.client_host,
            rebalance_timeout_ms: req.rebalance_timeout_ms,
            session_timeout_ms: req.session_timeout_ms,
            protocols: req.protocols,
            assignment: Bytes::new(),
            join_seq: 0,
            awaiting_join: Some(token),
            awaiting_sync: None,
            is_new: true,
        };
        if g.state == GroupState::PreparingRebalance && g.previous_state == GroupState::Empty {
            g.new_member_added = true;
        }
        g.add(member, &req.protocol_type);
        // A new member cannot heartbeat and its connection is muted while it waits, so
        // a dead client's JoinGroup would hold the rebalance forever; the join timeout
        // drops it.
        let timeout = self.config.new_member_join_timeout_ms;
        self.schedule_session(g, &member_id, timeout);
        self.rebalance_or_complete_join(g);
    }

    fn update_member_and_rebalance(
        &mut self,
        g: &mut ClassicGroup,
        token: RequestToken,
        req: JoinGroupRequest,
    ) {
        let Some(m) = g.members.get_mut(&req.member_id) else {
            return;
        };
        m.protocols = req.protocols;
        m.rebalance_timeout_ms = req.rebalance_timeout_ms;
        m.session_timeout_ms = req.session_timeout_ms;
        let superseded = m.awaiting_join.replace(token);
        if let Some(old) = superseded {
            let r =
                JoinGroupResponse::error(GroupError::RebalanceInProgress, req.member_id.clone());
            self.respond_join(old, r);
        }
        self.rebalance_or_complete_join(g);
    }

    /// Kafka's `replaceStaticMember` and `updateStaticMemberThenRebalanceOrCompleteJoin`:
    /// the instance id moves to the new member id, which keeps the old member's place
    /// and assignment; whoever still uses the old id is fenced.
    fn replace_static_member(
        &mut self,
        g: &mut ClassicGroup,
        token: RequestToken,
        req: JoinGroupRequest,
        instance_id: String,
        old_id: String,
        new_id: String,
    ) {
        let previous_leader = g.leader.clone().unwrap_or_default();
        let Some(old) = move_member(g, &old_id, &new_id) else {
            let r = JoinGroupResponse::error(GroupError::UnknownMemberId, "");
            return self.respond_join(token, r);
        };
        self.timers.cancel(&TimerKey::Heartbeat {
            group: g.id.clone(),
            member: old_id.clone(),
        });
        let fenced = JoinGroupResponse::error(GroupError::FencedInstanceId, old_id.clone());
        if let Some(t) = old.awaiting_join {
            self.respond_join(t, fenced);
        }
        if let Some(t) = old.awaiting_sync {
            self.respond_sync(t, SyncGroupResponse::error(GroupError::FencedInstanceId));
        }
        self.schedule_session(g, &new_id, old.session_timeout_ms);
        if let Some(m) = g.members.get_mut(&new_id) {
            m.protocols = req.protocols;
            m.rebalance_timeout_ms = req.rebalance_timeout_ms;
            m.session_timeout_ms = req.session_timeout_ms;
            m.awaiting_join = Some(token);
        }
        match g.state {
            GroupState::Stable if g.select_protocol() == g.protocol_name => {
                // Nothing for the group to rebalance over: record the new member id and
                // answer once that is durable.
                let action = WriteAction::StaticReplace {
                    group_id: g.id.clone(),
                    instance_id,
                    old_member_id: old_id,
                    new_member_id: new_id,
                    old_protocols: old.protocols,
                    old_rebalance_timeout_ms: old.rebalance_timeout_ms,
                    old_session_timeout_ms: old.session_timeout_ms,
                    previous_leader,
                    supports_skip_assignment: req.supports_skip_assignment,
                };
                self.persist_group(g, Some(action));
            }
            // The new member id must reach the group (or the protocol changes): a new
            // generation.
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.rebalance_or_complete_join(g)
            }
            // Answered when the running join phase ends.
            GroupState::PreparingRebalance => {}
            GroupState::Empty | GroupState::Dead => {
                debug_assert!(false, "static member in a {} group", g.state);
            }
        }
    }

    pub(super) fn complete_static_replace(
        &mut self,
        groups: &mut BTreeMap<String, ClassicGroup>,
        action: WriteAction,
        result: Result<(), GroupError>,
    ) {
        let WriteAction::StaticReplace {
            group_id,
            instance_id,
            old_member_id,
            new_member_id,
            old_protocols,
            old_rebalance_timeout_ms,
            old_session_timeout_ms,
            previous_leader,
            supports_skip_assignment,
        } = action
        else {
            return;
        };
        let Some(g) = groups.get_mut(&group_id) else {
            return;
        };
        // A rebalance or another replacement since then has answered the JoinGroup.
        let Some(token) = g
            .members
            .get_mut(&new_member_id)
            .and_then(|m| m.awaiting_join.take())
        else {
            return;
        };
        if let Err(e) = result {
            self.respond_join(token, JoinGroupResponse::error(e, ""));
            if g.static_members.get(&instance_id) == Some(&new_member_id) {
                self.timers.cancel(&TimerKey::Heartbeat {
                    group: g.id.clone(),
                    member: new_member_id.clone(),
                });
                move_member(g, &new_member_id, &old_member_id);
                if let Some(m) = g.members.get_mut(&old_member_id) {
                    m.protocols = old_protocols;
                    m.rebalance_timeout_ms = old_rebalance_timeout_ms;
                    m.session_timeout_ms = old_session_timeout_ms;
                }
                self.reschedule_heartbeat(g, &old_member_id);
            }
            return;
        }
        let response = if supports_skip_assignment {
            // KIP-814: the leader learns it leads, but must not assign.
            let leader = g.is_leader(&new_member_id);
            JoinGroupResponse {
                skip_assignment: leader,
                ..join_success(g, &new_member_id, leader)
            }
        } else {
            JoinGroupResponse {
                leader: previous_leader,
                ..join_success(g, &new_member_id, false)
            }
        };
        self.respond_join(token, response);
    }
}

/// Renames a member in place (same join order, assignment and instance id); returns
/// the member as it was, with whatever requests it had waiting, for the caller to
/// answer.
fn move_member(g: &mut ClassicGroup, from: &str, to: &str) -> Option<Member> {
    let mut member = g.members.remove(from)?;
    let old = member.clone();
    member.id = to.to_owned();
    member.awaiting_join = None;
    member.awaiting_sync = None;
    if let Some(instance) = &member.instance_id {
        g.static_members.insert(instance.clone(), to.to_owned());
    }
    if g.pending_sync.remove(from) {
        g.pending_sync.insert(to.to_owned());
    }
    if g.is_leader(from) {
        g.leader = Some(to.to_owned());
    }
    g.members.insert(to.to_owned(), member);
    Some(old)
}
