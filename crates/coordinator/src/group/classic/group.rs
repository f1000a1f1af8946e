//! One classic group's membership and generation (Kafka's `ClassicGroup`): pure data
//! and the queries the protocol needs. Transitions that answer requests or touch
//! timers live in the shard.

use std::collections::{BTreeMap, HashMap, HashSet};

use bytes::Bytes;

use super::error::GroupError;
use super::types::{
    DescribedMember, GroupDescription, GroupState, JoinedMember, Protocol, RequestToken,
};
use crate::group::records::{GroupMetadataValue, MemberMetadata};

#[derive(Debug, Clone)]
pub(super) struct Member {
    pub id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    /// In the member's order of preference; never empty for a joined member.
    pub protocols: Vec<Protocol>,
    pub assignment: Bytes,
    /// Order of joining: leader election and the leader's member list follow it, so
    /// the longest-standing member leads (Kafka takes a hash map's first entry).
    pub join_seq: u64,
    /// The member's JoinGroup waiting for the join phase to end.
    pub awaiting_join: Option<RequestToken>,
    /// The member's SyncGroup waiting for the leader's assignment.
    pub awaiting_sync: Option<RequestToken>,
    /// Joined during the current join phase: it has no member id to heartbeat with, so
    /// its join timeout expires it even while it awaits the join (Kafka's `isNew`).
    pub is_new: bool,
}

impl Member {
    pub(super) fn metadata(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|p| p.name == protocol)
            .map(|p| p.metadata.clone())
            .unwrap_or_default()
    }

    /// Same protocols, in the same order, with the same metadata.
    pub(super) fn matches(&self, protocols: &[Protocol]) -> bool {
        self.protocols == protocols
    }

    /// The member's preferred protocol among the candidates.
    fn vote<'a>(&'a self, candidates: &HashSet<&str>) -> Option<&'a str> {
        self.protocols
            .iter()
            .map(|p| p.name.as_str())
            .find(|name| candidates.contains(name))
    }

    /// A member whose session timer fired is kept while it takes part in a rebalance,
    /// unless it is new (Kafka's `hasSatisfiedHeartbeat`).
    pub(super) fn has_satisfied_heartbeat(&self) -> bool {
        !self.is_new && (self.awaiting_join.is_some() || self.awaiting_sync.is_some())
    }
}

#[derive(Debug)]
pub(super) struct ClassicGroup {
    pub id: String,
    pub state: GroupState,
    pub previous_state: GroupState,
    pub state_timestamp_ms: i64,
    /// Set by the first member to join; kept while the group is Empty.
    pub protocol_type: Option<String>,
    /// Chosen at each generation; `None` while Empty.
    pub protocol_name: Option<String>,
    pub generation: i32,
    /// Invariant: `Some` exactly when `members` is non-empty, and names a member.
    pub leader: Option<String>,
    pub members: BTreeMap<String, Member>,
    /// Instance id → member id of every static member in `members`.
    pub static_members: HashMap<String, String>,
    /// Member ids handed out with MEMBER_ID_REQUIRED; not members yet.
    pub pending_join: HashSet<String>,
    /// Members of the current generation that have not sent SyncGroup yet.
    pub pending_sync: HashSet<String>,
    /// A member joined during the initial delay: the delay may be extended.
    pub new_member_added: bool,
    /// While the join timer is the initial delay: (last delay, time left to extend by).
    pub initial_delay: Option<(i32, i32)>,
    next_join_seq: u64,
}

impl ClassicGroup {
    pub(super) fn new(id: String, now_ms: i64) -> Self {
        ClassicGroup {
            id,
            state: GroupState::Empty,
            previous_state: GroupState::Empty,
            state_timestamp_ms: now_ms,
            protocol_type: None,
            protocol_name: None,
            generation: 0,
            leader: None,
            members: BTreeMap::new(),
            static_members: HashMap::new(),
            pending_join: HashSet::new(),
            pending_sync: HashSet::new(),
            new_member_added: false,
            initial_delay: None,
            next_join_seq: 0,
        }
    }

    pub(super) fn transition(&mut self, to: GroupState, now_ms: i64) {
        use GroupState::*;
        debug_assert!(
            match to {
                PreparingRebalance => matches!(self.state, Stable | CompletingRebalance | Empty),
                CompletingRebalance => self.state == PreparingRebalance,
                Stable => self.state == CompletingRebalance,
                Empty => self.state == PreparingRebalance,
                Dead => true,
            },
            "group {}: illegal transition {} -> {to}",
            self.id,
            self.state
        );
        self.previous_state = self.state;
        self.state = to;
        self.state_timestamp_ms = now_ms;
    }

    /// Kafka's `canRebalance`: states from which PreparingRebalance may be entered.
    pub(super) fn can_rebalance(&self) -> bool {
        matches!(
            self.state,
            GroupState::Stable | GroupState::CompletingRebalance | GroupState::Empty
        )
    }

    pub(super) fn is_leader(&self, member_id: &str) -> bool {
        self.leader.as_deref() == Some(member_id)
    }

    pub(super) fn add(&mut self, mut member: Member, protocol_type: &str) {
        if self.members.is_empty() {
            self.protocol_type = Some(protocol_type.to_owned());
        }
        self.pending_join.remove(&member.id);
        if self.leader.is_none() {
            self.leader = Some(member.id.clone());
        }
        if let Some(instance) = &member.instance_id {
            self.static_members
                .insert(instance.clone(), member.id.clone());
        }
        member.join_seq = self.next_join_seq;
        self.next_join_seq += 1;
        self.members.insert(member.id.clone(), member);
    }

    /// Removes a member (or a pending member id); the caller answers its requests.
    pub(super) fn remove(&mut self, member_id: &str) -> Option<Member> {
        self.pending_join.remove(member_id);
        self.pending_sync.remove(member_id);
        let removed = self.members.remove(member_id)?;
        if let Some(instance) = &removed.instance_id {
            if self.static_members.get(instance).map(String::as_str) == Some(member_id) {
                self.static_members.remove(instance);
            }
        }
        if self.is_leader(member_id) {
            self.leader = self.members_in_join_order().first().map(|m| m.id.clone());
        }
        Some(removed)
    }

    pub(super) fn members_in_join_order(&self) -> Vec<&Member> {
        let mut members: Vec<&Member> = self.members.values().collect();
        members.sort_by_key(|m| m.join_seq);
        members
    }

    /// Kafka's `validateMember`: a static member must present the member id its
    /// instance id is mapped to.
    pub(super) fn validate_member(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> Result<(), GroupError> {
        if let Some(instance) = instance_id {
            match self.static_members.get(instance) {
                None => return Err(GroupError::UnknownMemberId),
                Some(current) if current != member_id => return Err(GroupError::FencedInstanceId),
                Some(_) => {}
            }
        }
        if !self.members.contains_key(member_id) {
            return Err(GroupError::UnknownMemberId);
        }
        Ok(())
    }

    /// Kafka's `validateExistingMember` (SyncGroup, Heartbeat): an empty id is unknown.
    pub(super) fn validate_existing_member(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> Result<(), GroupError> {
        if member_id.is_empty() {
            return Err(GroupError::UnknownMemberId);
        }
        self.validate_member(member_id, instance_id)
    }

    pub(super) fn awaiting_join_count(&self) -> usize {
        self.members
            .values()
            .filter(|m| m.awaiting_join.is_some())
            .count()
    }

    pub(super) fn has_all_members_joined(&self) -> bool {
        self.awaiting_join_count() == self.members.len() && self.pending_join.is_empty()
    }

    /// The join phase waits as long as the slowest member's rebalance timeout.
    pub(super) fn rebalance_timeout_ms(&self) -> i32 {
        self.members
            .values()
            .map(|m| m.rebalance_timeout_ms)
            .max()
            .unwrap_or(0)
    }

    /// Protocols every member supports.
    fn candidate_protocols(&self) -> HashSet<&str> {
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for member in self.members.values() {
            for p in &member.protocols {
                *counts.entry(p.name.as_str()).or_default() += 1;
            }
        }
        counts
            .into_iter()
            .filter(|(_, n)| *n == self.members.len())
            .map(|(name, _)| name)
            .collect()
    }

    /// Kafka's `supportsProtocols`: an empty group takes any non-empty protocol type and
    /// list; otherwise the type must match and one protocol must be supported by all.
    pub(super) fn supports_protocols(&self, protocol_type: &str, protocols: &[Protocol]) -> bool {
        if self.members.is_empty() {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        if self.protocol_type.as_deref() != Some(protocol_type) {
            return false;
        }
        let candidates = self.candidate_protocols();
        protocols
            .iter()
            .any(|p| candidates.contains(p.name.as_str()))
    }

    /// Each member votes for its preferred candidate; most votes wins. Kafka breaks ties
    /// arbitrarily; here the tie goes to the protocol the longest-standing member voted
    /// for first, so the choice is deterministic.
    pub(super) fn select_protocol(&self) -> Option<String> {
        let candidates = self.candidate_protocols();
        let mut votes: Vec<(&str, usize)> = Vec::new();
        for member in self.members_in_join_order() {
            let Some(vote) = member.vote(&candidates) else {
                continue;
            };
            match votes.iter_mut().find(|(name, _)| *name == vote) {
                Some((_, n)) => *n += 1,
                None => votes.push((vote, 1)),
            }
        }
        // max_by_key returns the last maximum; reversing keeps the first one.
        votes
            .into_iter()
            .rev()
            .max_by_key(|(_, n)| *n)
            .map(|(name, _)| name.to_owned())
    }

    /// Members that have not rejoined in this join phase.
    pub(super) fn not_yet_rejoined(&self) -> Vec<String> {
        self.members
            .values()
            .filter(|m| m.awaiting_join.is_none())
            .map(|m| m.id.clone())
            .collect()
    }

    /// Kafka's `maybeElectNewJoinedLeader`: if the leader did not rejoin, the first
    /// member that did leads. False when nobody rejoined.
    pub(super) fn maybe_elect_new_joined_leader(&mut self) -> bool {
        let Some(leader) = self.leader.as_deref() else {
            return false;
        };
        if self
            .members
            .get(leader)
            .is_some_and(|m| m.awaiting_join.is_some())
        {
            return true;
        }
        let new_leader = self
            .members_in_join_order()
            .into_iter()
            .find(|m| m.awaiting_join.is_some())
            .map(|m| m.id.clone());
        match new_leader {
            Some(id) => {
                self.leader = Some(id);
                true
            }
            None => false,
        }
    }

    /// Kafka's `initNextGeneration`.
    pub(super) fn init_next_generation(&mut self, now_ms: i64) {
        self.generation += 1;
        if self.members.is_empty() {
            self.protocol_name = None;
            self.transition(GroupState::Empty, now_ms);
        } else {
            self.protocol_name = self.select_protocol();
            self.transition(GroupState::CompletingRebalance, now_ms);
        }
        self.pending_sync.clear();
    }

    /// The member list a leader assigns from.
    pub(super) fn leader_member_list(&self) -> Vec<JoinedMember> {
        let protocol = self.protocol_name.as_deref().unwrap_or("");
        self.members_in_join_order()
            .into_iter()
            .map(|m| JoinedMember {
                member_id: m.id.clone(),
                group_instance_id: m.instance_id.clone(),
                metadata: m.metadata(protocol),
            })
            .collect()
    }

    /// The group as `__consumer_offsets` stores it; `assignment` overrides the members'
    /// current assignments (the leader's, written before it is applied).
    pub(super) fn metadata_value(
        &self,
        assignment: Option<&HashMap<String, Bytes>>,
    ) -> GroupMetadataValue {
        let protocol = self.protocol_name.as_deref().unwrap_or("");
        GroupMetadataValue {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation,
            protocol: self.protocol_name.clone(),
            leader: self.leader.clone(),
            current_state_timestamp: self.state_timestamp_ms,
            members: self
                .members_in_join_order()
                .into_iter()
                .map(|m| MemberMetadata {
                    member_id: m.id.clone(),
                    group_instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout: m.rebalance_timeout_ms,
                    session_timeout: m.session_timeout_ms,
                    subscription: m.metadata(protocol),
                    assignment: match assignment {
                        Some(a) => a.get(&m.id).cloned().unwrap_or_default(),
                        None => m.assignment.clone(),
                    },
                })
                .collect(),
        }
    }

    /// Kafka's group summary: metadata, assignments and protocol only while Stable.
    pub(super) fn describe(&self) -> GroupDescription {
        let stable = self.state == GroupState::Stable;
        let protocol = if stable {
            self.protocol_name.clone().unwrap_or_default()
        } else {
            String::new()
        };
        GroupDescription {
            group_id: self.id.clone(),
            state: self.state,
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            members: self
                .members_in_join_order()
                .into_iter()
                .map(|m| DescribedMember {
                    member_id: m.id.clone(),
                    group_instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: if stable {
                        m.metadata(&protocol)
                    } else {
                        Bytes::new()
                    },
                    assignment: if stable {
                        m.assignment.clone()
                    } else {
                        Bytes::new()
                    },
                })
                .collect(),
            protocol,
        }
    }
}
