//! Membership of a classic consumer group (protocol type "consumer"): JoinGroup and
//! SyncGroup (computing the range assignment when this member is the leader),
//! Heartbeat, OffsetFetch, OffsetCommit with the generation and member id, LeaveGroup.
//!
//! The member does not run its own task: the caller polls [`GroupMember::heartbeat`]
//! when [`GroupMember::heartbeat_due`] says so, between its own (short) requests. That
//! keeps every request on the single-threaded runtime in order on one connection.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use kafka_protocol::messages::{
    GroupId, HeartbeatRequest, JoinGroupRequest, LeaveGroupRequest, OffsetCommitRequest,
    OffsetFetchRequest, SyncGroupRequest, TopicName,
    join_group_request::JoinGroupRequestProtocol,
    leave_group_request::MemberIdentity,
    offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic},
    sync_group_request::SyncGroupRequestAssignment,
};
use kafka_protocol::protocol::StrBytes;

use super::cluster::Cluster;
use super::consumer_protocol::{
    PROTOCOL_TYPE, decode_assignment, decode_subscription, encode_assignment, encode_subscription,
};
use super::error::KafkaError;
use super::offset_fetch;
use super::range_assignor::{self, RANGE};

/// A partition of a topic.
pub type TopicPartition = (String, i32);

/// Timeouts of a group member.
#[derive(Debug, Clone, Copy)]
pub struct GroupTimeouts {
    /// How long the coordinator waits for a heartbeat before evicting the member.
    pub session: Duration,
    /// How long the coordinator waits for members to rejoin during a rebalance.
    pub rebalance: Duration,
    /// How often to heartbeat; a third of the session timeout or less.
    pub heartbeat: Duration,
}

/// What a heartbeat or commit found out about the group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Membership {
    /// The member still belongs to the current generation.
    Stable,
    /// The group is rebalancing or has moved on: commit what can be committed, then
    /// [`GroupMember::join`] again.
    Rejoin,
}

/// JoinGroup/SyncGroup retries before giving up: each retry follows an error the
/// coordinator expects clients to retry, so this many in a row means something else is
/// wrong.
const MAX_JOIN_ATTEMPTS: usize = 30;
/// Pause before retrying after a coordinator error.
const RETRY_BACKOFF: Duration = Duration::from_millis(200);

/// One member of one consumer group.
pub struct GroupMember {
    group: String,
    topics: Vec<String>,
    timeouts: GroupTimeouts,
    member_id: String,
    generation: i32,
    /// Node id of the coordinator, found on first use and after NOT_COORDINATOR.
    coordinator: Option<i32>,
    next_heartbeat: Instant,
}

impl GroupMember {
    /// A member of `group` subscribing to `topics`; nothing is sent until
    /// [`GroupMember::join`].
    pub fn new(group: &str, topics: &[String], timeouts: GroupTimeouts) -> GroupMember {
        GroupMember {
            group: group.to_string(),
            topics: topics.to_vec(),
            timeouts,
            member_id: String::new(),
            generation: -1,
            coordinator: None,
            next_heartbeat: Instant::now(),
        }
    }

    pub fn group(&self) -> &str {
        &self.group
    }

    /// Whether the member has joined (and so has a member id to leave with).
    pub fn is_joined(&self) -> bool {
        !self.member_id.is_empty() && self.generation >= 0
    }

    /// When the next heartbeat is due.
    pub fn heartbeat_due(&self) -> Instant {
        self.next_heartbeat
    }

    /// The coordinator's node id, found once and cached.
    async fn coordinator(&mut self, cluster: &mut Cluster) -> anyhow::Result<i32> {
        if let Some(node) = self.coordinator {
            return Ok(node);
        }
        let node = match cluster.find_coordinator(&self.group).await {
            Ok(node) => node,
            // The bootstrap connection may be the broken one (a restarted broker).
            Err(e) => match cluster.reconnect_bootstrap().await {
                Ok(()) => cluster.find_coordinator(&self.group).await?,
                Err(_) => return Err(e),
            },
        };
        self.coordinator = Some(node);
        Ok(node)
    }

    /// Forgets the coordinator (and its connection, which may be mid-request) so the
    /// next request finds it again.
    pub fn reset_coordinator(&mut self, cluster: &mut Cluster) {
        if let Some(node) = self.coordinator.take() {
            cluster.forget(node);
        }
    }

    /// Handles a coordinator-level error code: `true` when the request should be
    /// retried (after finding the coordinator again if it moved).
    async fn retry_after(&mut self, cluster: &mut Cluster, code: i16) -> bool {
        match code {
            KafkaError::NOT_COORDINATOR | KafkaError::COORDINATOR_NOT_AVAILABLE => {
                self.reset_coordinator(cluster);
            }
            KafkaError::COORDINATOR_LOAD_IN_PROGRESS => {}
            _ => return false,
        }
        tokio::time::sleep(RETRY_BACKOFF).await;
        true
    }

    /// Joins the group (or rejoins after a rebalance) and returns this member's
    /// assignment. When this member is the leader it computes the range assignment of
    /// every member's subscription.
    pub async fn join(&mut self, cluster: &mut Cluster) -> anyhow::Result<Vec<(String, Vec<i32>)>> {
        let subscription = encode_subscription(&self.topics)?;
        for _ in 0..MAX_JOIN_ATTEMPTS {
            let node = self.coordinator(cluster).await?;
            let request = JoinGroupRequest::default()
                .with_group_id(GroupId(StrBytes::from_string(self.group.clone())))
                .with_session_timeout_ms(millis(self.timeouts.session))
                .with_rebalance_timeout_ms(millis(self.timeouts.rebalance))
                .with_member_id(StrBytes::from_string(self.member_id.clone()))
                .with_protocol_type(StrBytes::from_static_str(PROTOCOL_TYPE))
                .with_protocols(vec![
                    JoinGroupRequestProtocol::default()
                        .with_name(StrBytes::from_static_str(RANGE))
                        .with_metadata(subscription.clone()),
                ]);
            let response = match cluster.broker(node).await?.call(&request).await {
                Ok(response) => response,
                Err(e) => {
                    // The connection may be half-way through a response; start afresh.
                    self.reset_coordinator(cluster);
                    return Err(e).with_context(|| format!("cannot join group {}", self.group));
                }
            };
            match response.error_code {
                0 => {}
                KafkaError::MEMBER_ID_REQUIRED => {
                    // KIP-394: the coordinator hands out the id to join with.
                    self.member_id = response.member_id.to_string();
                    continue;
                }
                KafkaError::UNKNOWN_MEMBER_ID => {
                    self.member_id.clear();
                    continue;
                }
                KafkaError::REBALANCE_IN_PROGRESS => continue,
                code if self.retry_after(cluster, code).await => continue,
                code => {
                    return Err(KafkaError::new(code))
                        .with_context(|| format!("cannot join group {}", self.group));
                }
            }
            self.member_id = response.member_id.to_string();
            self.generation = response.generation_id;
            let protocol_name = response.protocol_name.clone();
            let assignments = if response.leader == response.member_id {
                self.leader_assignments(cluster, &response.members).await?
            } else {
                Vec::new()
            };
            let request = SyncGroupRequest::default()
                .with_group_id(GroupId(StrBytes::from_string(self.group.clone())))
                .with_generation_id(self.generation)
                .with_member_id(StrBytes::from_string(self.member_id.clone()))
                .with_protocol_type(Some(StrBytes::from_static_str(PROTOCOL_TYPE)))
                .with_protocol_name(protocol_name)
                .with_assignments(assignments);
            let response = match cluster.broker(node).await?.call(&request).await {
                Ok(response) => response,
                Err(e) => {
                    self.reset_coordinator(cluster);
                    return Err(e).with_context(|| format!("cannot join group {}", self.group));
                }
            };
            match response.error_code {
                0 => {}
                KafkaError::REBALANCE_IN_PROGRESS | KafkaError::ILLEGAL_GENERATION => continue,
                KafkaError::UNKNOWN_MEMBER_ID => {
                    self.member_id.clear();
                    continue;
                }
                code if self.retry_after(cluster, code).await => continue,
                code => {
                    return Err(KafkaError::new(code))
                        .with_context(|| format!("cannot sync group {}", self.group));
                }
            }
            self.next_heartbeat = Instant::now() + self.timeouts.heartbeat;
            let assignment = decode_assignment(&response.assignment)
                .with_context(|| format!("assignment from group {}", self.group))?;
            return Ok(assignment);
        }
        bail!(
            "cannot join group {}: still rebalancing after {MAX_JOIN_ATTEMPTS} attempts",
            self.group
        )
    }

    /// The leader's SyncGroup assignments: range over the partition counts of every
    /// topic any member subscribed to.
    async fn leader_assignments(
        &mut self,
        cluster: &mut Cluster,
        members: &[kafka_protocol::messages::join_group_response::JoinGroupResponseMember],
    ) -> anyhow::Result<Vec<SyncGroupRequestAssignment>> {
        let mut subscriptions = BTreeMap::new();
        for member in members {
            let topics = decode_subscription(&member.metadata)
                .with_context(|| format!("subscription of member {}", member.member_id))?;
            subscriptions.insert(member.member_id.to_string(), topics);
        }
        let mut all_topics: Vec<String> = subscriptions.values().flatten().cloned().collect();
        all_topics.sort();
        all_topics.dedup();
        let metadata = cluster.metadata(Some(&all_topics)).await?;
        // Topics that do not exist (or are not readable) are left unassigned, as the
        // Java assignor does.
        let counts: BTreeMap<String, i32> = metadata
            .topics
            .iter()
            .filter(|t| t.error_code == 0)
            .filter_map(|t| {
                let name = t.name.as_ref()?.0.to_string();
                Some((name, t.partitions.len() as i32))
            })
            .collect();
        range_assignor::assign(&subscriptions, &counts)
            .into_iter()
            .map(|(member, assignment)| {
                Ok(SyncGroupRequestAssignment::default()
                    .with_member_id(StrBytes::from_string(member))
                    .with_assignment(encode_assignment(&assignment)?))
            })
            .collect()
    }

    /// Sends a heartbeat and schedules the next one.
    pub async fn heartbeat(&mut self, cluster: &mut Cluster) -> anyhow::Result<Membership> {
        self.next_heartbeat = Instant::now() + self.timeouts.heartbeat;
        let node = self.coordinator(cluster).await?;
        let request = HeartbeatRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(self.group.clone())))
            .with_generation_id(self.generation)
            .with_member_id(StrBytes::from_string(self.member_id.clone()));
        let response = match cluster.broker(node).await?.call(&request).await {
            Ok(response) => response,
            Err(e) => {
                self.reset_coordinator(cluster);
                return Err(e).with_context(|| format!("heartbeat to group {}", self.group));
            }
        };
        self.membership(cluster, response.error_code, "heartbeat to")
            .await
    }

    /// Maps a group error code to what the member must do next.
    async fn membership(
        &mut self,
        cluster: &mut Cluster,
        code: i16,
        what: &str,
    ) -> anyhow::Result<Membership> {
        match code {
            0 => Ok(Membership::Stable),
            KafkaError::REBALANCE_IN_PROGRESS | KafkaError::ILLEGAL_GENERATION => {
                Ok(Membership::Rejoin)
            }
            KafkaError::UNKNOWN_MEMBER_ID => {
                self.member_id.clear();
                Ok(Membership::Rejoin)
            }
            KafkaError::NOT_COORDINATOR | KafkaError::COORDINATOR_NOT_AVAILABLE => {
                // The next request finds the new coordinator; the generation is still
                // valid there.
                self.reset_coordinator(cluster);
                self.next_heartbeat = Instant::now() + RETRY_BACKOFF;
                Ok(Membership::Stable)
            }
            KafkaError::COORDINATOR_LOAD_IN_PROGRESS => Ok(Membership::Stable),
            code => {
                Err(KafkaError::new(code)).with_context(|| format!("{what} group {}", self.group))
            }
        }
    }

    /// The group's committed offsets of `partitions`; partitions with none are absent.
    pub async fn committed(
        &mut self,
        cluster: &mut Cluster,
        partitions: &[TopicPartition],
    ) -> anyhow::Result<HashMap<TopicPartition, i64>> {
        let mut grouped: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for (topic, partition) in partitions {
            grouped.entry(topic).or_default().push(*partition);
        }
        let by_topic: Vec<(String, Vec<i32>)> = grouped
            .into_iter()
            .map(|(t, ps)| (t.to_string(), ps))
            .collect();
        let deadline = Instant::now() + cluster.timeouts().request;
        loop {
            let node = self.coordinator(cluster).await?;
            let conn = cluster.broker(node).await?;
            let version = conn.version::<OffsetFetchRequest>()?;
            let request = offset_fetch::request(&self.group, version, Some(&by_topic));
            let response = match conn.call_at(&request, version).await {
                Ok(response) => response,
                Err(e) => {
                    self.reset_coordinator(cluster);
                    return Err(e)
                        .with_context(|| format!("cannot fetch offsets of group {}", self.group));
                }
            };
            let (code, rows) = offset_fetch::rows(response);
            if code != 0 {
                if Instant::now() < deadline && self.retry_after(cluster, code).await {
                    continue;
                }
                return Err(KafkaError::new(code))
                    .with_context(|| format!("cannot fetch offsets of group {}", self.group));
            }
            let mut out = HashMap::new();
            for (topic, partition, offset, error) in rows {
                KafkaError::check(error, None).with_context(|| {
                    format!(
                        "committed offset of {topic}-{partition} in group {}",
                        self.group
                    )
                })?;
                if offset >= 0 {
                    out.insert((topic, partition), offset);
                }
            }
            return Ok(out);
        }
    }

    /// Commits `offsets` (the next offset to read, per partition) in the current
    /// generation. A rebalance shows up as [`Membership::Rejoin`]: the offsets were not
    /// committed.
    pub async fn commit(
        &mut self,
        cluster: &mut Cluster,
        offsets: &BTreeMap<TopicPartition, i64>,
    ) -> anyhow::Result<Membership> {
        if offsets.is_empty() {
            return Ok(Membership::Stable);
        }
        let mut by_topic: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
        for ((topic, partition), offset) in offsets {
            by_topic.entry(topic).or_default().push(
                OffsetCommitRequestPartition::default()
                    .with_partition_index(*partition)
                    .with_committed_offset(*offset),
            );
        }
        let request = OffsetCommitRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(self.group.clone())))
            .with_generation_id_or_member_epoch(self.generation)
            .with_member_id(StrBytes::from_string(self.member_id.clone()))
            .with_topics(
                by_topic
                    .into_iter()
                    .map(|(topic, partitions)| {
                        OffsetCommitRequestTopic::default()
                            .with_name(topic_name(topic))
                            .with_partitions(partitions)
                    })
                    .collect(),
            );
        let deadline = Instant::now() + cluster.timeouts().request;
        loop {
            let node = self.coordinator(cluster).await?;
            let response = match cluster.broker(node).await?.call(&request).await {
                Ok(response) => response,
                Err(e) => {
                    self.reset_coordinator(cluster);
                    return Err(e)
                        .with_context(|| format!("cannot commit offsets of group {}", self.group));
                }
            };
            // The first failing partition decides: errors are group-wide in practice.
            let code = response
                .topics
                .iter()
                .flat_map(|t| t.partitions.iter())
                .map(|p| p.error_code)
                .find(|&c| c != 0)
                .unwrap_or(0);
            if matches!(
                code,
                KafkaError::NOT_COORDINATOR
                    | KafkaError::COORDINATOR_NOT_AVAILABLE
                    | KafkaError::COORDINATOR_LOAD_IN_PROGRESS
            ) && Instant::now() < deadline
                && self.retry_after(cluster, code).await
            {
                continue;
            }
            return self
                .membership(cluster, code, "cannot commit offsets of")
                .await;
        }
    }

    /// Leaves the group so the others rebalance at once instead of after the session
    /// timeout. Errors are returned for the caller to report or ignore.
    pub async fn leave(&mut self, cluster: &mut Cluster) -> anyhow::Result<()> {
        if self.member_id.is_empty() {
            return Ok(());
        }
        let node = self.coordinator(cluster).await?;
        let conn = cluster.broker(node).await?;
        let version = conn.version::<LeaveGroupRequest>()?;
        let member_id = StrBytes::from_string(std::mem::take(&mut self.member_id));
        let group_id = GroupId(StrBytes::from_string(self.group.clone()));
        // v3 (KIP-345) replaced the member id with a list of members.
        let request = if version >= 3 {
            LeaveGroupRequest::default()
                .with_group_id(group_id)
                .with_members(vec![MemberIdentity::default().with_member_id(member_id)])
        } else {
            LeaveGroupRequest::default()
                .with_group_id(group_id)
                .with_member_id(member_id)
        };
        let response = conn.call_at(&request, version).await?;
        self.generation = -1;
        let code = response
            .members
            .iter()
            .map(|m| m.error_code)
            .find(|&c| c != 0)
            .unwrap_or(response.error_code);
        match code {
            // Already evicted: the goal is reached.
            0 | KafkaError::UNKNOWN_MEMBER_ID => Ok(()),
            code => Err(KafkaError::new(code))
                .with_context(|| format!("cannot leave group {}", self.group)),
        }
    }
}

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

/// A duration as the i32 milliseconds Kafka requests carry, saturating.
fn millis(d: Duration) -> i32 {
    i32::try_from(d.as_millis()).unwrap_or(i32::MAX)
}
