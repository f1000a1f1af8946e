//! `strom consume --group`: the consumer's side of group membership. Wraps
//! [`GroupMember`] with what the command adds: the starting positions of an assignment
//! (committed offsets, else the start option), auto-commit of changed positions every
//! few seconds, and commit-then-leave on exit.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::client::Cluster;
use crate::client::group_member::{GroupMember, GroupTimeouts, Membership};

use super::start::{self, StartOffset};

/// How often consumed positions are committed (Kafka's auto.commit.interval.ms).
const AUTO_COMMIT_INTERVAL: Duration = Duration::from_secs(5);
/// Session timeout: librdkafka's classic default; long enough for a slow terminal,
/// short enough that a killed consumer's partitions move on soon.
const SESSION_TIMEOUT: Duration = Duration::from_secs(10);
const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(3);

/// A consumer's membership of one group, reading one topic.
pub struct GroupSession {
    member: GroupMember,
    topic: String,
    /// Offsets the group has committed for the assigned partitions, as last known.
    committed: BTreeMap<i32, i64>,
    next_commit: Instant,
    last_ok: Instant,
}

impl GroupSession {
    /// `request_timeout` bounds each response, JoinGroup's included, so the
    /// rebalance timeout (how long JoinGroup may block) stays below it.
    pub fn new(group: &str, topic: &str, request_timeout: Duration) -> GroupSession {
        let rebalance = (request_timeout * 3 / 4).max(Duration::from_secs(1));
        let timeouts = GroupTimeouts {
            session: SESSION_TIMEOUT,
            rebalance,
            heartbeat: HEARTBEAT_INTERVAL,
        };
        GroupSession {
            member: GroupMember::new(group, &[topic.to_string()], timeouts),
            topic: topic.to_string(),
            committed: BTreeMap::new(),
            next_commit: Instant::now() + AUTO_COMMIT_INTERVAL,
            last_ok: Instant::now(),
        }
    }

    /// Joins (or rejoins) the group; returns the start position of every assigned
    /// partition: the committed offset, else where `start` says.
    pub async fn join(
        &mut self,
        cluster: &mut Cluster,
        start: StartOffset,
    ) -> anyhow::Result<BTreeMap<i32, i64>> {
        let assignment = self.member.join(cluster).await?;
        let partitions: Vec<i32> = assignment
            .into_iter()
            .filter(|(topic, _)| *topic == self.topic)
            .flat_map(|(_, partitions)| partitions)
            .collect();
        let keys: Vec<(String, i32)> = partitions
            .iter()
            .map(|&p| (self.topic.clone(), p))
            .collect();
        let committed = self.member.committed(cluster, &keys).await?;
        self.committed = committed
            .into_iter()
            .map(|((_, p), offset)| (p, offset))
            .collect();
        let uncommitted: Vec<i32> = partitions
            .iter()
            .copied()
            .filter(|p| !self.committed.contains_key(p))
            .collect();
        let topic = cluster.topic(&self.topic).await?;
        let mut positions = start::resolve(cluster, &topic, &uncommitted, start).await?;
        positions.extend(self.committed.iter().map(|(&p, &o)| (p, o)));
        self.next_commit = Instant::now() + AUTO_COMMIT_INTERVAL;
        self.last_ok = Instant::now();
        Ok(positions)
    }

    /// Heartbeats if one is due. A heartbeat that fails at the connection level is
    /// retried at the next interval; only when that goes on for a whole session
    /// timeout (the coordinator has evicted the member by then) is it an error.
    pub async fn tick(&mut self, cluster: &mut Cluster) -> anyhow::Result<Membership> {
        if Instant::now() < self.member.heartbeat_due() {
            return Ok(Membership::Stable);
        }
        match self.member.heartbeat(cluster).await {
            Ok(membership) => {
                self.last_ok = Instant::now();
                Ok(membership)
            }
            Err(_) if self.last_ok.elapsed() < SESSION_TIMEOUT => Ok(Membership::Stable),
            Err(e) => Err(e),
        }
    }

    pub fn commit_due(&self) -> bool {
        Instant::now() >= self.next_commit
    }

    /// Commits the positions that moved since the last commit.
    pub async fn commit(
        &mut self,
        cluster: &mut Cluster,
        positions: &BTreeMap<i32, i64>,
    ) -> anyhow::Result<Membership> {
        self.next_commit = Instant::now() + AUTO_COMMIT_INTERVAL;
        let changed: BTreeMap<(String, i32), i64> = positions
            .iter()
            .filter(|(p, offset)| self.committed.get(p) != Some(offset))
            .map(|(&p, &offset)| ((self.topic.clone(), p), offset))
            .collect();
        let membership = self.member.commit(cluster, &changed).await?;
        self.last_ok = Instant::now();
        if membership == Membership::Stable {
            self.committed
                .extend(changed.into_iter().map(|((_, p), offset)| (p, offset)));
        }
        Ok(membership)
    }

    /// [`GroupSession::commit`] on the auto-commit interval. Like heartbeats, a failure
    /// is retried at the next interval until it has lasted a session timeout.
    pub async fn auto_commit(
        &mut self,
        cluster: &mut Cluster,
        positions: &BTreeMap<i32, i64>,
    ) -> anyhow::Result<Membership> {
        match self.commit(cluster, positions).await {
            Err(_) if self.last_ok.elapsed() < SESSION_TIMEOUT => Ok(Membership::Stable),
            other => other,
        }
    }

    /// After a request to the coordinator was cancelled half-way: drops its
    /// connection, which still has a response coming.
    pub fn abandon(&mut self, cluster: &mut Cluster) {
        self.member.reset_coordinator(cluster);
    }

    /// Commits `positions` (when still a member of the generation) and leaves the
    /// group. A failed commit is an error; a failed leave only delays the others'
    /// rebalance until the session times out, so it is not.
    pub async fn close(
        &mut self,
        cluster: &mut Cluster,
        positions: &BTreeMap<i32, i64>,
    ) -> anyhow::Result<()> {
        let committed = if self.member.is_joined() {
            match self.commit(cluster, positions).await {
                Ok(Membership::Stable) => Ok(()),
                Ok(Membership::Rejoin) => {
                    // The partitions are being handed to others: the commit is refused,
                    // and the next owner resumes from the previous commit.
                    eprintln!(
                        "warning: group {} is rebalancing; the last positions were not committed",
                        self.member.group()
                    );
                    Ok(())
                }
                Err(e) => Err(e),
            }
        } else {
            Ok(())
        };
        let _ = self.member.leave(cluster).await;
        committed
    }
}
