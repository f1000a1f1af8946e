//! The task owning one `__consumer_offsets` partition: loads it, then serves
//! [`Command`]s one at a time, carrying out the [`PartitionEffect`]s of each.
//!
//! Writes are appended on the blocking pool, one after another in the order they were
//! returned, and their outcome reported with `on_persisted` before the next command is
//! read, so the log's order is the order changes are applied in. JoinGroup and
//! SyncGroup answers may come later (when the rebalance completes): their responders
//! wait in a map by [`RequestToken`]. The group timers are driven by `next_deadline`,
//! offset expiry by `retention_check_interval_ms`. The task stops when the broker
//! shuts down, dropping the responders still waiting (their requests answer
//! COORDINATOR_NOT_AVAILABLE).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use strom_coordinator::Partition;
use strom_coordinator::group::classic::{
    GroupConfig, GroupDescription, GroupState, HeartbeatRequest, JoinGroupRequest,
    JoinGroupResponse, LeaveGroupRequest, LeftMember, ListedGroup, RequestToken, Response,
    SyncGroupRequest, SyncGroupResponse,
};
use strom_coordinator::group::records::{build_batch, read_records};
use strom_coordinator::group::{
    FetchedOffset, GroupCoordinatorPartition, GroupCoordinatorShard, GroupError,
    OffsetCommitRequest, OffsetsConfig, PartitionEffect, PartitionResult, TopicPartition, Write,
};
use tokio::sync::{mpsc, oneshot, watch};

use super::now_ms;

/// How much of the log one read while loading returns.
const LOAD_READ_BYTES: usize = 8 * 1024 * 1024;

/// A request for one partition's task, with where to send the answer.
#[derive(Debug)]
pub enum Command {
    Join {
        request: JoinGroupRequest,
        reply: oneshot::Sender<JoinGroupResponse>,
    },
    Sync {
        request: SyncGroupRequest,
        reply: oneshot::Sender<SyncGroupResponse>,
    },
    Heartbeat {
        request: HeartbeatRequest,
        reply: oneshot::Sender<Result<(), GroupError>>,
    },
    Leave {
        request: LeaveGroupRequest,
        reply: oneshot::Sender<Result<Vec<LeftMember>, GroupError>>,
    },
    CommitOffsets {
        request: OffsetCommitRequest,
        reply: oneshot::Sender<Result<Vec<PartitionResult>, GroupError>>,
    },
    FetchOffsets {
        group_id: String,
        /// `None`: every partition with an offset.
        partitions: Option<Vec<TopicPartition>>,
        require_stable: bool,
        reply: oneshot::Sender<Vec<FetchedOffset>>,
    },
    Describe {
        group_ids: Vec<String>,
        reply: oneshot::Sender<Vec<Result<GroupDescription, GroupError>>>,
    },
    List {
        states: Vec<GroupState>,
        reply: oneshot::Sender<Vec<ListedGroup>>,
    },
    DeleteGroups {
        group_ids: Vec<String>,
        reply: oneshot::Sender<Vec<(String, Result<(), GroupError>)>>,
    },
    DeleteOffsets {
        group_id: String,
        partitions: Vec<TopicPartition>,
        reply: oneshot::Sender<Result<Vec<PartitionResult>, GroupError>>,
    },
}

/// What a task needs besides its commands.
#[derive(Debug)]
pub struct TaskContext {
    pub partition: Arc<Partition>,
    pub max_message_bytes: u64,
    pub group_config: GroupConfig,
    pub offsets_config: OffsetsConfig,
    /// Set once loading is done.
    pub loaded: Arc<AtomicBool>,
    pub shutting_down: watch::Receiver<bool>,
}

/// A deferred JoinGroup or SyncGroup answer.
#[derive(Debug)]
enum Waiting {
    Join(oneshot::Sender<JoinGroupResponse>),
    Sync(oneshot::Sender<SyncGroupResponse>),
}

/// What woke the task up.
enum Event {
    Stop,
    Command(Box<Command>),
    Timer,
    Expiry,
}

struct PartitionTask {
    partition: Arc<Partition>,
    max_message_bytes: u64,
    state: GroupCoordinatorPartition,
    waiting: HashMap<RequestToken, Waiting>,
    next_token: u64,
}

/// Loads the partition, then serves commands until shutdown.
pub async fn run(cx: TaskContext, mut commands: mpsc::Receiver<Command>) {
    let TaskContext {
        partition,
        max_message_bytes,
        group_config,
        offsets_config,
        loaded,
        mut shutting_down,
    } = cx;
    let index = partition.index();
    let retention_check = Duration::from_millis(
        u64::try_from(offsets_config.retention_check_interval_ms).unwrap_or(1),
    )
    .max(Duration::from_millis(1));
    let mut state =
        GroupCoordinatorPartition::new(GroupCoordinatorShard::new(group_config), offsets_config);
    let log = partition.clone();
    let loading = tokio::task::spawn_blocking(move || load(&log, &mut state).map(|fx| (state, fx)));
    let (state, fx) = match loading.await {
        Ok(Ok(loaded)) => loaded,
        Ok(Err(e)) => {
            tracing::error!(partition = index, error = %e, "cannot load group partition");
            return;
        }
        Err(e) => {
            tracing::error!(partition = index, error = %e, "loading group partition failed");
            return;
        }
    };
    let mut task = PartitionTask {
        partition,
        max_message_bytes,
        state,
        waiting: HashMap::new(),
        next_token: 0,
    };
    task.apply(fx).await;
    loaded.store(true, Ordering::Release);
    tracing::debug!(partition = index, "group partition loaded");

    let mut expiry = tokio::time::interval(retention_check);
    expiry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    expiry.tick().await; // the first tick is immediate
    loop {
        let timer = task.state.next_deadline().map(|at| {
            let wait = u64::try_from(at.saturating_sub(now_ms())).unwrap_or(0);
            tokio::time::Instant::now() + Duration::from_millis(wait)
        });
        let sleep = async {
            match timer {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        let event = tokio::select! {
            _ = shutting_down.wait_for(|s| *s) => Event::Stop,
            command = commands.recv() => command.map_or(Event::Stop, |c| Event::Command(Box::new(c))),
            () = sleep => Event::Timer,
            _ = expiry.tick() => Event::Expiry,
        };
        match event {
            Event::Stop => break,
            Event::Command(command) => task.serve(*command).await,
            Event::Timer => {
                let fx = task.state.on_timer(now_ms());
                task.apply(fx).await;
            }
            Event::Expiry => {
                if let Some(write) = task.state.expire(now_ms()) {
                    let fx = task.persist(write).await.1;
                    task.apply(fx).await;
                }
            }
        }
    }
    loaded.store(false, Ordering::Release);
    tracing::debug!(partition = index, "group partition task stopped");
}

/// Replays the whole partition into `state`.
fn load(
    partition: &Partition,
    state: &mut GroupCoordinatorPartition,
) -> Result<Vec<PartitionEffect>, String> {
    let mut offset = partition.log_start_offset().map_err(|e| e.to_string())?;
    let end = partition.log_end_offset().map_err(|e| e.to_string())?;
    let now = now_ms();
    let mut fx = Vec::new();
    while offset < end {
        let fetched = partition
            .fetch(offset, LOAD_READ_BYTES)
            .map_err(|e| e.to_string())?;
        let read = read_records(&fetched.records).map_err(|e| e.to_string())?;
        let records = read.records.into_iter().map(|r| r.record);
        fx.extend(
            state
                .replay_log_records(records, now)
                .map_err(|e| e.to_string())?,
        );
        match read.next_offset.and_then(|n| u64::try_from(n).ok()) {
            Some(next) if next > offset => offset = next,
            _ => break,
        }
    }
    fx.extend(state.finish_loading(now));
    Ok(fx)
}

impl PartitionTask {
    fn token(&mut self) -> RequestToken {
        self.next_token += 1;
        RequestToken(self.next_token)
    }

    async fn serve(&mut self, command: Command) {
        let now = now_ms();
        match command {
            Command::Join { request, reply } => {
                let token = self.token();
                self.waiting.insert(token, Waiting::Join(reply));
                let fx = self.state.join_group(token, request, now);
                self.apply(fx).await;
            }
            Command::Sync { request, reply } => {
                let token = self.token();
                self.waiting.insert(token, Waiting::Sync(reply));
                let fx = self.state.sync_group(token, request, now);
                self.apply(fx).await;
            }
            Command::Heartbeat { request, reply } => {
                let _ = reply.send(self.state.heartbeat(request, now));
            }
            Command::Leave { request, reply } => {
                let (response, fx) = self.state.leave_group(request, now);
                let _ = reply.send(response);
                self.apply(fx).await;
            }
            Command::CommitOffsets { request, reply } => {
                let response = match self.state.commit_offsets(request, now) {
                    Ok(outcome) => Ok(self.finish(outcome.response, outcome.write).await),
                    Err(e) => Err(e),
                };
                let _ = reply.send(response);
            }
            Command::FetchOffsets {
                group_id,
                partitions,
                require_stable,
                reply,
            } => {
                let fetched =
                    self.state
                        .fetch_offsets(&group_id, partitions.as_deref(), require_stable);
                let _ = reply.send(fetched);
            }
            Command::Describe { group_ids, reply } => {
                let _ = reply.send(self.state.shard().describe_groups(&group_ids));
            }
            Command::List { states, reply } => {
                let _ = reply.send(self.state.shard().list_groups(&states));
            }
            Command::DeleteGroups { group_ids, reply } => {
                let outcome = self.state.delete_groups(&group_ids, now);
                let (failed, fx) = match outcome.write {
                    Some(write) => self.persist(write).await,
                    None => (None, Vec::new()),
                };
                let response = outcome
                    .response
                    .into_iter()
                    .map(|(id, r)| (id, r.and_then(|()| failed.clone().map_or(Ok(()), Err))))
                    .collect();
                let _ = reply.send(response);
                self.apply(fx).await;
            }
            Command::DeleteOffsets {
                group_id,
                partitions,
                reply,
            } => {
                let response = match self.state.delete_offsets(&group_id, &partitions) {
                    Ok(outcome) => Ok(self.finish(outcome.response, outcome.write).await),
                    Err(e) => Err(e),
                };
                let _ = reply.send(response);
            }
        }
    }

    /// Persists an offset write, if any, then gives each partition result the write's
    /// error where it has none.
    async fn finish(
        &mut self,
        mut results: Vec<PartitionResult>,
        write: Option<Write>,
    ) -> Vec<PartitionResult> {
        let Some(write) = write else {
            return results;
        };
        let (failed, fx) = self.persist(write).await;
        if let Some(error) = failed {
            for r in results.iter_mut().filter(|r| r.error.is_none()) {
                r.error = Some(error.clone());
            }
        }
        self.apply(fx).await;
        results
    }

    /// Appends a write and reports its outcome: the error it failed with, if it did,
    /// and the effects of `on_persisted`.
    async fn persist(&mut self, write: Write) -> (Option<GroupError>, Vec<PartitionEffect>) {
        let partition = self.partition.clone();
        let max = self.max_message_bytes;
        let Write { id, records } = write;
        let appended = tokio::task::spawn_blocking(move || {
            let batch = build_batch(&records, now_ms()).map_err(|e| e.to_string())?;
            partition
                .append(batch, max)
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
        .await
        .unwrap_or_else(|e| Err(e.to_string()));
        let result = appended.map_err(|e| {
            tracing::warn!(
                partition = self.partition.index(),
                error = %e,
                "group metadata write failed"
            );
            GroupError::CoordinatorNotAvailable
        });
        let failed = result.clone().err();
        (failed, self.state.on_persisted(id, result, now_ms()))
    }

    /// Carries out effects in order; the effects of a write's `on_persisted` come right
    /// after the write.
    async fn apply(&mut self, fx: Vec<PartitionEffect>) {
        let mut queue: VecDeque<PartitionEffect> = fx.into();
        while let Some(effect) = queue.pop_front() {
            match effect {
                PartitionEffect::Respond { token, response } => self.respond(token, response),
                PartitionEffect::Persist(write) => {
                    let (_, more) = self.persist(write).await;
                    for e in more.into_iter().rev() {
                        queue.push_front(e);
                    }
                }
            }
        }
    }

    fn respond(&mut self, token: RequestToken, response: Response) {
        match (self.waiting.remove(&token), response) {
            (Some(Waiting::Join(reply)), Response::Join(r)) => {
                let _ = reply.send(r);
            }
            (Some(Waiting::Sync(reply)), Response::Sync(r)) => {
                let _ = reply.send(r);
            }
            (waiting, response) => {
                tracing::warn!(
                    ?token,
                    found = waiting.is_some(),
                    ?response,
                    "unmatched group response"
                );
            }
        }
    }
}
