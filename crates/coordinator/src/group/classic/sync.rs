//! SyncGroup, Heartbeat and LeaveGroup (Kafka's `classicGroupSync`,
//! `classicGroupHeartbeat`, `classicGroupLeave`).

use std::collections::HashMap;

use bytes::Bytes;

use super::error::GroupError;
use super::group::ClassicGroup;
use super::shard::{Ctx, GroupCoordinatorShard, WriteAction};
use super::timer::TimerKey;
use super::types::{
    Effect, GroupRecord, GroupState, HeartbeatRequest, LeaveGroupRequest, LeftMember, Outcome,
    RequestToken, SyncGroupRequest, SyncGroupResponse,
};

/// Both present and different (SyncGroup v5+ names the protocol it expects).
fn inconsistent(requested: Option<&str>, actual: Option<&str>) -> bool {
    matches!((requested, actual), (Some(r), Some(a)) if r != a)
}

impl GroupCoordinatorShard {
    /// Handles a SyncGroup. A member's SyncGroup waits in CompletingRebalance until the
    /// leader's assignment is durable; the leader's own is answered then too.
    pub fn sync_group(
        &mut self,
        token: RequestToken,
        req: SyncGroupRequest,
        now_ms: i64,
    ) -> Vec<Effect> {
        let (groups, mut cx) = self.split(now_ms);
        match groups.get_mut(&req.group_id) {
            _ if req.group_id.is_empty() => {
                cx.respond_sync(token, SyncGroupResponse::error(GroupError::InvalidGroupId))
            }
            None => cx.respond_sync(token, SyncGroupResponse::error(GroupError::UnknownMemberId)),
            Some(g) => {
                if let Err(e) = cx.sync(g, token, req) {
                    cx.respond_sync(token, SyncGroupResponse::error(e));
                }
            }
        }
        cx.fx
    }

    /// Handles a Heartbeat: Ok keeps the member's session alive; REBALANCE_IN_PROGRESS
    /// (which also keeps it alive) tells the member to rejoin.
    pub fn heartbeat(&mut self, req: HeartbeatRequest, now_ms: i64) -> Result<(), GroupError> {
        if req.group_id.is_empty() {
            return Err(GroupError::InvalidGroupId);
        }
        let (groups, mut cx) = self.split(now_ms);
        let g = groups
            .get_mut(&req.group_id)
            .ok_or(GroupError::UnknownMemberId)?;
        if g.state == GroupState::Dead {
            return Err(GroupError::CoordinatorNotAvailable);
        }
        g.validate_existing_member(&req.member_id, req.group_instance_id.as_deref())?;
        if req.generation_id != g.generation {
            return Err(GroupError::IllegalGeneration);
        }
        match g.state {
            GroupState::Empty | GroupState::Dead => Err(GroupError::UnknownMemberId),
            GroupState::PreparingRebalance => {
                cx.reschedule_heartbeat(g, &req.member_id);
                Err(GroupError::RebalanceInProgress)
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                cx.reschedule_heartbeat(g, &req.member_id);
                Ok(())
            }
        }
    }

    /// Handles a LeaveGroup. `Err` is a group-level error; otherwise one entry per
    /// member named, in request order.
    pub fn leave_group(
        &mut self,
        req: LeaveGroupRequest,
        now_ms: i64,
    ) -> Outcome<Result<Vec<LeftMember>, GroupError>> {
        let (groups, mut cx) = self.split(now_ms);
        let g = match groups.get_mut(&req.group_id) {
            _ if req.group_id.is_empty() => Err(GroupError::InvalidGroupId),
            None => Err(GroupError::UnknownMemberId),
            Some(g) if g.state == GroupState::Dead => Err(GroupError::CoordinatorNotAvailable),
            Some(g) => Ok(g),
        };
        let response = g.map(|g| cx.leave(g, req));
        Outcome {
            response,
            effects: cx.fx,
        }
    }
}

impl Ctx<'_> {
    fn sync(
        &mut self,
        g: &mut ClassicGroup,
        token: RequestToken,
        req: SyncGroupRequest,
    ) -> Result<(), GroupError> {
        if g.state == GroupState::Dead {
            return Err(GroupError::CoordinatorNotAvailable);
        }
        g.validate_existing_member(&req.member_id, req.group_instance_id.as_deref())?;
        if req.generation_id != g.generation {
            return Err(GroupError::IllegalGeneration);
        }
        if inconsistent(req.protocol_type.as_deref(), g.protocol_type.as_deref())
            || inconsistent(req.protocol_name.as_deref(), g.protocol_name.as_deref())
        {
            return Err(GroupError::InconsistentGroupProtocol);
        }
        match g.state {
            GroupState::Empty | GroupState::Dead => Err(GroupError::UnknownMemberId),
            GroupState::PreparingRebalance => Err(GroupError::RebalanceInProgress),
            GroupState::CompletingRebalance => {
                g.pending_sync.remove(&req.member_id);
                let Some(m) = g.members.get_mut(&req.member_id) else {
                    return Err(GroupError::UnknownMemberId);
                };
                if let Some(old) = m.awaiting_sync.replace(token) {
                    self.respond_sync(
                        old,
                        SyncGroupResponse::error(GroupError::RebalanceInProgress),
                    );
                }
                if g.is_leader(&req.member_id) {
                    self.store_leader_assignment(g, req.assignments);
                }
                Ok(())
            }
            GroupState::Stable => {
                g.pending_sync.remove(&req.member_id);
                let m = g
                    .members
                    .get(&req.member_id)
                    .ok_or(GroupError::UnknownMemberId)?;
                let response = SyncGroupResponse {
                    error: None,
                    protocol_type: g.protocol_type.clone(),
                    protocol_name: g.protocol_name.clone(),
                    assignment: m.assignment.clone(),
                };
                self.respond_sync(token, response);
                Ok(())
            }
        }
    }

    /// Writes the generation with the leader's assignment; members the leader left out
    /// get an empty one. Applied and sent when the write completes.
    fn store_leader_assignment(&mut self, g: &ClassicGroup, assignments: Vec<(String, Bytes)>) {
        let mut assignment: HashMap<String, Bytes> = assignments
            .into_iter()
            .filter(|(id, _)| g.members.contains_key(id))
            .collect();
        for id in g.members.keys() {
            assignment.entry(id.clone()).or_default();
        }
        let record = GroupRecord::GroupMetadata {
            group_id: g.id.clone(),
            value: g.metadata_value(Some(&assignment)),
        };
        let action = WriteAction::LeaderSync {
            group_id: g.id.clone(),
            generation: g.generation,
            assignment,
        };
        self.persist(record, Some(action));
    }

    fn leave(&mut self, g: &mut ClassicGroup, req: LeaveGroupRequest) -> Vec<LeftMember> {
        let mut results = Vec::with_capacity(req.members.len());
        let mut left = false;
        for leaving in req.members {
            let outcome = if leaving.member_id.is_empty() {
                // An admin removing a static member by instance id.
                match leaving
                    .group_instance_id
                    .as_ref()
                    .and_then(|i| g.static_members.get(i).cloned())
                {
                    Some(id) => {
                        self.remove_member(g, &id);
                        Ok(())
                    }
                    None => Err(GroupError::UnknownMemberId),
                }
            } else if g.pending_join.remove(&leaving.member_id) {
                self.timers.cancel(&TimerKey::Pending {
                    group: g.id.clone(),
                    member: leaving.member_id.clone(),
                });
                Ok(())
            } else {
                g.validate_member(&leaving.member_id, leaving.group_instance_id.as_deref())
                    .map(|()| self.remove_member(g, &leaving.member_id))
            };
            left |= outcome.is_ok();
            results.push(LeftMember {
                member_id: leaving.member_id,
                group_instance_id: leaving.group_instance_id,
                error: outcome.err(),
            });
        }
        if left {
            match g.state {
                GroupState::Stable | GroupState::CompletingRebalance => {
                    self.rebalance_or_complete_join(g)
                }
                GroupState::PreparingRebalance => self.maybe_complete_join_phase(g),
                GroupState::Empty | GroupState::Dead => {}
            }
        }
        results
    }
}
