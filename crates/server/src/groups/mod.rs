//! The group coordinator in the server: the internal topic `__consumer_offsets`, one
//! task per partition of it owning that partition's [`GroupCoordinatorPartition`]
//! (`task`), and the [`GroupRouter`] handlers send group requests through.
//!
//! [`start`] (called by `Server::run`) ensures the topic exists, with
//! `offsets.topic.num.partitions` partitions and `cleanup.policy=compact`, and spawns
//! the tasks. Each task first loads its partition; until it has, requests for its
//! groups are refused with [`Unavailable::LoadInProgress`]. Before `start` and after
//! shutdown they are refused with [`Unavailable::NotAvailable`].
//!
//! [`GroupCoordinatorPartition`]: strom_coordinator::group::GroupCoordinatorPartition

mod task;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use strom_coordinator::group::classic::GroupConfig;
use strom_coordinator::group::{OffsetsConfig, group_partition};
use strom_coordinator::{Coordinator, CoordinatorError, NewTopic};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::broker::Broker;
use crate::config::BrokerConfig;

pub use task::Command;

/// The internal topic holding groups and committed offsets.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Why a group request cannot be served by this broker right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unavailable {
    /// COORDINATOR_LOAD_IN_PROGRESS: the group's partition is still loading.
    LoadInProgress,
    /// COORDINATOR_NOT_AVAILABLE: not started, shutting down, or the partition failed.
    NotAvailable,
}

/// One partition's task, as the router sees it.
#[derive(Debug)]
struct PartitionHandle {
    commands: mpsc::Sender<Command>,
    loaded: Arc<AtomicBool>,
}

/// Routes group requests to the task owning the group's partition.
#[derive(Debug, Default)]
pub struct GroupRouter {
    partitions: OnceLock<Vec<PartitionHandle>>,
}

impl GroupRouter {
    /// Sends the command built by `make` to the task owning `group_id` and waits for
    /// its answer.
    pub async fn call<T>(
        &self,
        group_id: &str,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, Unavailable> {
        let handle = self.handle(group_id)?;
        let (tx, rx) = oneshot::channel();
        handle
            .commands
            .send(make(tx))
            .await
            .map_err(|_| Unavailable::NotAvailable)?;
        rx.await.map_err(|_| Unavailable::NotAvailable)
    }

    /// Sends the same kind of command to every partition (ListGroups), answers in
    /// partition order; a partition that cannot answer fails the whole call.
    pub async fn call_all<T>(
        &self,
        make: impl Fn(oneshot::Sender<T>) -> Command,
    ) -> Result<Vec<T>, Unavailable> {
        let partitions = self.partitions.get().ok_or(Unavailable::NotAvailable)?;
        let mut out = Vec::with_capacity(partitions.len());
        for handle in partitions {
            if !handle.loaded.load(Ordering::Acquire) {
                return Err(Unavailable::LoadInProgress);
            }
            let (tx, rx) = oneshot::channel();
            handle
                .commands
                .send(make(tx))
                .await
                .map_err(|_| Unavailable::NotAvailable)?;
            out.push(rx.await.map_err(|_| Unavailable::NotAvailable)?);
        }
        Ok(out)
    }

    fn handle(&self, group_id: &str) -> Result<&PartitionHandle, Unavailable> {
        let partitions = self.partitions.get().ok_or(Unavailable::NotAvailable)?;
        let n = i32::try_from(partitions.len()).map_err(|_| Unavailable::NotAvailable)?;
        let index =
            usize::try_from(group_partition(group_id, n)).map_err(|_| Unavailable::NotAvailable)?;
        let handle = partitions.get(index).ok_or(Unavailable::NotAvailable)?;
        if !handle.loaded.load(Ordering::Acquire) {
            return Err(Unavailable::LoadInProgress);
        }
        Ok(handle)
    }
}

/// The classic group settings from the broker configuration.
pub fn group_config(config: &BrokerConfig) -> GroupConfig {
    GroupConfig {
        min_session_timeout_ms: config.group_min_session_timeout_ms,
        max_session_timeout_ms: config.group_max_session_timeout_ms,
        initial_rebalance_delay_ms: config.group_initial_rebalance_delay_ms,
        ..GroupConfig::default()
    }
}

/// The committed-offset settings from the broker configuration.
pub fn offsets_config(config: &BrokerConfig) -> OffsetsConfig {
    OffsetsConfig {
        metadata_max_bytes: usize::try_from(config.offset_metadata_max_bytes).unwrap_or(0),
        retention_ms: i64::from(config.offsets_retention_minutes) * 60_000,
        retention_check_interval_ms: config.offsets_retention_check_interval_ms,
    }
}

/// Ensures `__consumer_offsets` exists and starts one task per partition. The tasks end
/// when the broker shuts down.
pub async fn start(broker: &Arc<Broker>) -> Vec<JoinHandle<()>> {
    let coordinator = broker.coordinator().clone();
    let partitions = broker.config().offsets_topic_num_partitions;
    let ensured = tokio::task::spawn_blocking(move || ensure_topic(&coordinator, partitions))
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r.map_err(|e| e.to_string()));
    let topic = match ensured {
        Ok(topic) => topic,
        Err(e) => {
            tracing::error!(error = %e, "cannot create {OFFSETS_TOPIC}; groups are unavailable");
            return Vec::new();
        }
    };
    let mut handles = Vec::new();
    let mut tasks = Vec::new();
    for partition in topic.partitions() {
        let (tx, rx) = mpsc::channel(1024);
        let loaded = Arc::new(AtomicBool::new(false));
        handles.push(PartitionHandle {
            commands: tx,
            loaded: loaded.clone(),
        });
        tasks.push(tokio::spawn(task::run(
            task::TaskContext {
                partition,
                max_message_bytes: topic.max_message_bytes(),
                group_config: group_config(broker.config()),
                offsets_config: offsets_config(broker.config()),
                loaded,
                shutting_down: broker.shutting_down(),
            },
            rx,
        )));
    }
    if broker.groups().partitions.set(handles).is_err() {
        tracing::warn!("group coordinator started twice");
    }
    tasks
}

fn ensure_topic(
    coordinator: &Coordinator,
    partitions: i32,
) -> Result<Arc<strom_coordinator::Topic>, CoordinatorError> {
    if let Some(topic) = coordinator.topic(OFFSETS_TOPIC) {
        return Ok(topic);
    }
    let new = NewTopic {
        name: OFFSETS_TOPIC.to_owned(),
        partitions,
        replication_factor: -1,
        configs: BTreeMap::from([("cleanup.policy".to_owned(), "compact".to_owned())]),
    };
    match coordinator.create_topic(&new, false) {
        Ok(_) | Err(CoordinatorError::TopicAlreadyExists(_)) => {}
        Err(e) => return Err(e),
    }
    coordinator
        .topic(OFFSETS_TOPIC)
        .ok_or_else(|| CoordinatorError::UnknownTopic(OFFSETS_TOPIC.to_owned()))
}

/// The current wall-clock time in ms since the epoch, the groups' clock.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
