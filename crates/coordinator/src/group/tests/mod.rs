//! Unit tests of [`GroupCoordinatorPartition`]: committed offsets, expiry, loading and
//! the partition function. A harness drives the partition with a controllable clock,
//! appends every write to an in-memory log (or holds it) and keeps the responses.

mod expiry;
mod loading;
mod offsets;

use std::collections::HashMap;

use bytes::{BufMut, Bytes, BytesMut};

use super::classic::{
    GroupConfig, GroupState, JoinGroupRequest, JoinGroupResponse, Protocol, RequestToken, Response,
    SyncGroupRequest,
};
use super::records::CoordinatorRecord;
use super::*;

pub(super) const GROUP: &str = "g";
pub(super) const START: i64 = 1_000_000;
pub(super) const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// A `ConsumerProtocolSubscription` v1: topics, null user data, no owned partitions.
pub(super) fn subscription(topics: &[&str]) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(1);
    b.put_i32(topics.len() as i32);
    for t in topics {
        b.put_i16(t.len() as i16);
        b.put_slice(t.as_bytes());
    }
    b.put_i32(-1); // user data
    b.put_i32(0); // owned partitions (v1)
    b.freeze()
}

pub(super) struct Harness {
    pub part: GroupCoordinatorPartition,
    pub now: i64,
    next_token: u64,
    responses: HashMap<RequestToken, Response>,
    /// Every record appended, in log order.
    pub log: Vec<CoordinatorRecord>,
    /// When false, writes wait in `held` for `complete`.
    pub auto_persist: bool,
    pub held: Vec<Write>,
}

impl Harness {
    pub fn new() -> Self {
        Self::with_config(OffsetsConfig::default())
    }

    pub fn with_config(config: OffsetsConfig) -> Self {
        Harness {
            part: GroupCoordinatorPartition::new(
                GroupCoordinatorShard::new(GroupConfig::default()),
                config,
            ),
            now: START,
            next_token: 0,
            responses: HashMap::new(),
            log: Vec::new(),
            auto_persist: true,
            held: Vec::new(),
        }
    }

    /// Appends a write to the log and reports it, or holds it.
    pub fn write(&mut self, write: Option<Write>) {
        let Some(write) = write else { return };
        if !self.auto_persist {
            self.held.push(write);
            return;
        }
        self.log.extend(write.records.iter().cloned());
        let fx = self.part.on_persisted(write.id, Ok(()), self.now);
        self.apply(fx);
    }

    /// Completes the held writes in order: appended on success, dropped on failure.
    pub fn complete(&mut self, result: Result<(), GroupError>) {
        for write in std::mem::take(&mut self.held) {
            if result.is_ok() {
                self.log.extend(write.records.iter().cloned());
            }
            let fx = self.part.on_persisted(write.id, result.clone(), self.now);
            self.apply(fx);
        }
    }

    pub fn apply(&mut self, effects: Vec<PartitionEffect>) {
        for effect in effects {
            match effect {
                PartitionEffect::Respond { token, response } => {
                    let dup = self.responses.insert(token, response);
                    assert!(dup.is_none(), "{token:?} answered twice");
                }
                PartitionEffect::Persist(write) => self.write(Some(write)),
            }
        }
    }

    /// Moves the clock forward, firing each group timer at its deadline.
    pub fn advance(&mut self, ms: i64) {
        let target = self.now + ms;
        while let Some(at) = self.part.next_deadline().filter(|at| *at <= target) {
            self.now = self.now.max(at);
            let fx = self.part.on_timer(self.now);
            self.apply(fx);
        }
        self.now = target;
    }

    fn token(&mut self) -> RequestToken {
        self.next_token += 1;
        RequestToken(self.next_token)
    }

    fn join(&mut self, group: &str, member_id: &str, topics: &[&str]) -> RequestToken {
        let req = JoinGroupRequest {
            group_id: group.to_owned(),
            session_timeout_ms: 10_000,
            rebalance_timeout_ms: 30_000,
            member_id: member_id.to_owned(),
            group_instance_id: None,
            protocol_type: "consumer".to_owned(),
            protocols: vec![Protocol {
                name: "range".to_owned(),
                metadata: subscription(topics),
            }],
            client_id: "client".to_owned(),
            client_host: "/127.0.0.1".to_owned(),
            require_known_member_id: false,
            supports_skip_assignment: false,
            reason: None,
        };
        let token = self.token();
        let fx = self.part.join_group(token, req, self.now);
        self.apply(fx);
        token
    }

    fn take_join(&mut self, token: RequestToken) -> JoinGroupResponse {
        match self.responses.remove(&token) {
            Some(Response::Join(r)) => r,
            other => panic!("expected a JoinGroup response, got {other:?}"),
        }
    }

    /// One consumer joins `group` subscribed to `topics` and syncs: a Stable generation
    /// 1. Returns the member id.
    pub fn stable_member(&mut self, group: &str, topics: &[&str]) -> String {
        let t = self.join(group, "", topics);
        self.advance(i64::from(GroupConfig::default().initial_rebalance_delay_ms));
        let joined = self.take_join(t);
        assert!(joined.error.is_none(), "{joined:?}");
        let member = joined.member_id;
        let req = SyncGroupRequest {
            group_id: group.to_owned(),
            generation_id: joined.generation_id,
            member_id: member.clone(),
            group_instance_id: None,
            protocol_type: Some("consumer".to_owned()),
            protocol_name: None,
            assignments: vec![(member.clone(), Bytes::from_static(b"assignment"))],
        };
        let token = self.token();
        let fx = self.part.sync_group(token, req, self.now);
        self.apply(fx);
        match self.responses.remove(&token) {
            Some(Response::Sync(r)) => assert!(r.error.is_none(), "{r:?}"),
            other => panic!("expected a SyncGroup response, got {other:?}"),
        }
        assert_eq!(self.state(group), Some(GroupState::Stable));
        member
    }

    /// Heartbeats every 5 s for `ms`, moving the clock.
    pub fn keep_alive(&mut self, group: &str, member: &str, ms: i64) {
        let end = self.now + ms;
        while self.now < end {
            self.advance(5_000.min(end - self.now));
            let req = classic::HeartbeatRequest {
                group_id: group.to_owned(),
                generation_id: 1,
                member_id: member.to_owned(),
                group_instance_id: None,
            };
            self.part.heartbeat(req, self.now).expect("alive");
        }
    }

    /// The member leaves: the group rebalances to Empty.
    pub fn leave(&mut self, group: &str, member: &str) {
        let req = classic::LeaveGroupRequest {
            group_id: group.to_owned(),
            members: vec![classic::LeavingMember {
                member_id: member.to_owned(),
                group_instance_id: None,
                reason: None,
            }],
        };
        let (result, fx) = self.part.leave_group(req, self.now);
        assert!(result.is_ok(), "{result:?}");
        self.apply(fx);
        assert_eq!(self.state(group), Some(GroupState::Empty));
    }

    pub fn state(&self, group: &str) -> Option<GroupState> {
        self.part.shard().group_state(group)
    }

    pub fn commit_req(
        &self,
        group: &str,
        member: &str,
        generation: i32,
        offsets: &[(&str, i32, i64)],
    ) -> OffsetCommitRequest {
        OffsetCommitRequest {
            group_id: group.to_owned(),
            member_id: member.to_owned(),
            generation_id: generation,
            group_instance_id: None,
            retention_time_ms: None,
            offsets: offsets
                .iter()
                .map(|(topic, partition, offset)| CommitOffset {
                    topic: (*topic).to_owned(),
                    partition: *partition,
                    offset: *offset,
                    leader_epoch: 3,
                    metadata: Some(format!("m{offset}")),
                })
                .collect(),
        }
    }

    /// Commits and persists; the per-partition results.
    pub fn send_commit(
        &mut self,
        req: OffsetCommitRequest,
    ) -> Result<Vec<PartitionResult>, GroupError> {
        let out = self.part.commit_offsets(req, self.now)?;
        self.write(out.write);
        Ok(out.response)
    }

    /// A simple (generation -1) commit that must succeed.
    pub fn simple_commit(&mut self, group: &str, offsets: &[(&str, i32, i64)]) {
        let req = self.commit_req(group, "", -1, offsets);
        let results = self.send_commit(req).expect("simple commit accepted");
        assert!(results.iter().all(|r| r.error.is_none()), "{results:?}");
    }

    /// The committed offset of a partition, -1 if none.
    pub fn committed(&self, group: &str, topic: &str, partition: i32) -> i64 {
        let tp = [TopicPartition::new(topic, partition)];
        self.part.fetch_offsets(group, Some(&tp), false)[0].offset
    }

    pub fn run_expiry(&mut self) {
        let write = self.part.expire(self.now);
        self.write(write);
    }
}

#[test]
fn group_partition_matches_java_hash_code() {
    // Values of Java's String.hashCode, computed by hand (h = 31 * h + c).
    assert_eq!(java_string_hash(""), 0);
    assert_eq!(java_string_hash("a"), 97);
    assert_eq!(java_string_hash("ab"), 97 * 31 + 98);
    // "group": ((((103*31 + 114)*31 + 111)*31 + 117)*31 + 112).
    assert_eq!(java_string_hash("group"), 98_629_247);
    // Well-known Java values: "hello", the "Aa"/"BB" collision, and the string whose
    // hash is Integer.MIN_VALUE.
    assert_eq!(java_string_hash("hello"), 99_162_322);
    assert_eq!(java_string_hash("Aa"), 2112);
    assert_eq!(java_string_hash("BB"), 2112);
    assert_eq!(java_string_hash("polygenelubricants"), i32::MIN);
    // Overflowing hashes wrap; a non-BMP character is two UTF-16 units.
    assert_eq!(java_string_hash("my-group"), -1_906_497_762);
    assert_eq!(java_string_hash("\u{1F600}"), 0xD83D * 31 + 0xDE00);

    assert_eq!(group_partition("", 50), 0);
    assert_eq!(group_partition("a", 50), 47);
    assert_eq!(group_partition("group", 50), 98_629_247 % 50);
    assert_eq!(group_partition("hello", 50), 22);
    // Utils.abs: a negative hash is made positive, MIN_VALUE becomes 0.
    assert_eq!(group_partition("my-group", 50), 1_906_497_762 % 50);
    assert_eq!(group_partition("polygenelubricants", 7), 0);
    assert_eq!(group_partition("anything", 1), 0);
    assert_eq!(group_partition("a", 0), 0, "taken as one partition");
}
