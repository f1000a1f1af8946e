//! Unit tests of the classic group state machine: a harness drives the shard with a
//! controllable clock and checks every deferred request is answered exactly once.

mod admin;
mod membership;
mod rebalance;

use std::collections::HashMap;

use bytes::Bytes;

use super::*;

pub(super) const GROUP: &str = "g";
pub(super) const SESSION_MS: i32 = 10_000;
pub(super) const REBALANCE_MS: i32 = 30_000;

pub(super) struct Harness {
    pub shard: GroupCoordinatorShard,
    pub now: i64,
    next_token: u64,
    responses: HashMap<RequestToken, Response>,
    /// Every record persisted, in order.
    pub records: Vec<GroupRecord>,
    /// When false, writes wait in `held` for `complete_writes`.
    pub auto_persist: bool,
    pub held: Vec<WriteId>,
}

pub(super) fn protocols(names: &[&str]) -> Vec<Protocol> {
    names
        .iter()
        .map(|n| Protocol {
            name: (*n).to_owned(),
            metadata: Bytes::from(format!("{n}-meta")),
        })
        .collect()
}

impl Harness {
    pub fn new() -> Self {
        Self::with_config(GroupConfig::default())
    }

    pub fn with_config(config: GroupConfig) -> Self {
        Harness {
            shard: GroupCoordinatorShard::new(config),
            now: 1_000_000,
            next_token: 0,
            responses: HashMap::new(),
            records: Vec::new(),
            auto_persist: true,
            held: Vec::new(),
        }
    }

    pub fn apply(&mut self, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::Respond { token, response } => {
                    let dup = self.responses.insert(token, response);
                    assert!(dup.is_none(), "{token:?} answered twice");
                }
                Effect::Persist { write_id, record } => {
                    self.records.push(record);
                    if self.auto_persist {
                        let fx = self.shard.on_persisted(write_id, Ok(()), self.now);
                        self.apply(fx);
                    } else {
                        self.held.push(write_id);
                    }
                }
            }
        }
    }

    pub fn complete_writes(&mut self, result: Result<(), GroupError>) {
        for id in std::mem::take(&mut self.held) {
            let fx = self.shard.on_persisted(id, result.clone(), self.now);
            self.apply(fx);
        }
    }

    fn token(&mut self) -> RequestToken {
        self.next_token += 1;
        RequestToken(self.next_token)
    }

    /// Moves the clock forward, firing each timer at its deadline.
    pub fn advance(&mut self, ms: i64) {
        let target = self.now + ms;
        while let Some(at) = self.shard.next_deadline().filter(|at| *at <= target) {
            self.now = self.now.max(at);
            let fx = self.shard.on_timer(self.now);
            self.apply(fx);
        }
        self.now = target;
    }

    pub fn join_req(&self, member_id: &str) -> JoinGroupRequest {
        JoinGroupRequest {
            group_id: GROUP.to_owned(),
            session_timeout_ms: SESSION_MS,
            rebalance_timeout_ms: REBALANCE_MS,
            member_id: member_id.to_owned(),
            group_instance_id: None,
            protocol_type: "consumer".to_owned(),
            protocols: protocols(&["range", "roundrobin"]),
            client_id: "client".to_owned(),
            client_host: "/127.0.0.1".to_owned(),
            require_known_member_id: false,
            supports_skip_assignment: false,
            reason: None,
        }
    }

    pub fn send_join(&mut self, req: JoinGroupRequest) -> RequestToken {
        let token = self.token();
        let fx = self.shard.join_group(token, req, self.now);
        self.apply(fx);
        token
    }

    pub fn join(&mut self, member_id: &str) -> RequestToken {
        let req = self.join_req(member_id);
        self.send_join(req)
    }

    pub fn take_join(&mut self, token: RequestToken) -> Option<JoinGroupResponse> {
        match self.responses.remove(&token)? {
            Response::Join(r) => Some(r),
            other => panic!("expected a JoinGroup response, got {other:?}"),
        }
    }

    pub fn take_sync(&mut self, token: RequestToken) -> Option<SyncGroupResponse> {
        match self.responses.remove(&token)? {
            Response::Sync(r) => Some(r),
            other => panic!("expected a SyncGroup response, got {other:?}"),
        }
    }

    pub fn sync_req(&self, member_id: &str, generation: i32) -> SyncGroupRequest {
        SyncGroupRequest {
            group_id: GROUP.to_owned(),
            generation_id: generation,
            member_id: member_id.to_owned(),
            group_instance_id: None,
            protocol_type: Some("consumer".to_owned()),
            protocol_name: None,
            assignments: Vec::new(),
        }
    }

    pub fn send_sync(&mut self, req: SyncGroupRequest) -> RequestToken {
        let token = self.token();
        let fx = self.shard.sync_group(token, req, self.now);
        self.apply(fx);
        token
    }

    pub fn sync(&mut self, member_id: &str, generation: i32) -> RequestToken {
        let req = self.sync_req(member_id, generation);
        self.send_sync(req)
    }

    /// The leader's SyncGroup, assigning each member `"<member id>-assignment"`.
    pub fn leader_sync(
        &mut self,
        leader: &str,
        generation: i32,
        members: &[String],
    ) -> RequestToken {
        let mut req = self.sync_req(leader, generation);
        req.assignments = members
            .iter()
            .map(|m| (m.clone(), Bytes::from(format!("{m}-assignment"))))
            .collect();
        self.send_sync(req)
    }

    pub fn heartbeat(&mut self, member_id: &str, generation: i32) -> Result<(), GroupError> {
        let req = HeartbeatRequest {
            group_id: GROUP.to_owned(),
            generation_id: generation,
            member_id: member_id.to_owned(),
            group_instance_id: None,
        };
        self.shard.heartbeat(req, self.now)
    }

    pub fn leave(&mut self, members: Vec<LeavingMember>) -> Result<Vec<LeftMember>, GroupError> {
        let req = LeaveGroupRequest {
            group_id: GROUP.to_owned(),
            members,
        };
        let out = self.shard.leave_group(req, self.now);
        self.apply(out.effects);
        out.response
    }

    pub fn state(&self) -> Option<GroupState> {
        self.shard.group_state(GROUP)
    }

    pub fn describe(&self) -> GroupDescription {
        self.shard
            .describe_groups(&[GROUP.to_owned()])
            .remove(0)
            .expect("group exists")
    }

    /// Dynamic members join (without MEMBER_ID_REQUIRED), the initial delay ends, the
    /// leader assigns and everyone syncs: a Stable generation 1. Member ids in join order.
    pub fn stable_group(&mut self, n: usize) -> Vec<String> {
        let tokens: Vec<RequestToken> = (0..n).map(|_| self.join("")).collect();
        // Joined together: the initial delay runs twice.
        self.advance(2 * i64::from(GroupConfig::default().initial_rebalance_delay_ms));
        let joins: Vec<JoinGroupResponse> = tokens
            .iter()
            .map(|t| self.take_join(*t).expect("join answered"))
            .collect();
        let ids: Vec<String> = joins.iter().map(|r| r.member_id.clone()).collect();
        self.sync_all(&ids, &joins[0].leader, 1);
        ids
    }

    /// Leader first, then the others; asserts every member gets its assignment.
    pub fn sync_all(&mut self, ids: &[String], leader: &str, generation: i32) {
        let t = self.leader_sync(leader, generation, ids);
        assert!(self.take_sync(t).expect("leader answered").error.is_none());
        for id in ids.iter().filter(|id| *id != leader) {
            let t = self.sync(id, generation);
            let r = self.take_sync(t).expect("follower answered");
            assert_eq!(r.assignment, Bytes::from(format!("{id}-assignment")));
        }
        assert_eq!(self.state(), Some(GroupState::Stable));
    }

    /// Asserts no response is pending for anyone.
    pub fn assert_no_responses(&self) {
        assert!(
            self.responses.is_empty(),
            "unexpected responses: {:?}",
            self.responses
        );
    }
}

pub(super) fn leaving(member_id: &str, instance: Option<&str>) -> LeavingMember {
    LeavingMember {
        member_id: member_id.to_owned(),
        group_instance_id: instance.map(str::to_owned),
        reason: None,
    }
}
