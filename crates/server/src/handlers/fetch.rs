//! Fetch (API 1): whole record batches from each requested partition, with long poll.
//!
//! Limits, as Kafka applies them: each partition returns at most `partition_max_bytes`
//! and the response at most `max_bytes`, except that the first non-empty partition
//! always returns at least one whole batch, so a consumer never gets stuck behind a
//! batch larger than its limits. Consumers read only up to the high watermark.
//!
//! Long poll: if fewer than `min_bytes` are available the fetch waits until a produce
//! moves the high watermark of one of its partitions (a `watch` channel per partition,
//! subscribed before the first read so no append is missed) or `max_wait_ms` passes.
//! No timer polls the logs.
//!
//! Fetch sessions (KIP-227) are not kept: every response says session 0, which tells
//! clients to send full fetch requests.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::select_all;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{
    ApiKey, FetchRequest, FetchResponse, RequestHeader, RequestKind, ResponseKind, TopicName,
};
use strom_coordinator::{CoordinatorError, Partition};
use tokio::sync::watch;
use uuid::Uuid;

use crate::broker::Broker;
use crate::error::ServerError;
use crate::handlers::HandlerFuture;
use crate::handlers::blocking::run_blocking;
use crate::handlers::errors;

/// `isolation_level` of a consumer that only reads committed records.
const READ_COMMITTED: i8 = 1;

/// One requested partition, resolved.
struct Wanted {
    index: i32,
    partition: Result<Arc<Partition>, ResponseError>,
    fetch_offset: i64,
    max_bytes: i32,
    current_leader_epoch: i32,
}

struct WantedTopic {
    name: TopicName,
    id: Uuid,
    partitions: Vec<Wanted>,
}

pub fn handle(broker: Arc<Broker>, header: RequestHeader, request: RequestKind) -> HandlerFuture {
    Box::pin(async move {
        let RequestKind::Fetch(request) = request else {
            return Err(ServerError::HandlerMismatch {
                expected: ApiKey::Fetch,
            });
        };
        let version = header.request_api_version;
        if request.session_id != 0 {
            // We never hand out sessions, so the client cannot hold one.
            return Ok(ResponseKind::Fetch(
                FetchResponse::default()
                    .with_error_code(ResponseError::FetchSessionIdNotFound.code())
                    .with_session_id(0),
            ));
        }
        let wanted = Arc::new(resolve(&broker, version, &request));
        // Subscribed before the first read: an append after it is seen as a change.
        let mut watchers: Vec<watch::Receiver<u64>> = wanted
            .iter()
            .flat_map(|t| &t.partitions)
            .filter_map(|p| p.partition.as_ref().ok().map(|p| p.subscribe()))
            .collect();
        let max_wait = Duration::from_millis(u64::try_from(request.max_wait_ms).unwrap_or(0));
        let mut deadline = tokio::time::Instant::now() + max_wait;
        let mut shutdown = broker.shutting_down();
        let min_bytes = usize::try_from(request.min_bytes).unwrap_or(0);
        let max_bytes = usize::try_from(request.max_bytes).unwrap_or(0);
        let isolation = request.isolation_level;
        loop {
            for w in &mut watchers {
                w.borrow_and_update();
            }
            let w = wanted.clone();
            let (response, bytes, errors) = run_blocking(ApiKey::Fetch, move || {
                read_all(&w, version, max_bytes, isolation)
            })
            .await?;
            // min_bytes 0 answers at once, as in Kafka.
            let done = bytes >= min_bytes
                || errors
                || watchers.is_empty()
                || tokio::time::Instant::now() >= deadline;
            if done {
                return Ok(ResponseKind::Fetch(response));
            }
            let changed = select_all(watchers.iter_mut().map(|w| Box::pin(w.changed())));
            // A partition moved, time is up, or the server is stopping: all end in a
            // fresh read, and stopping ends the wait for good.
            tokio::select! {
                _ = tokio::time::timeout_at(deadline, changed) => {}
                _ = shutdown.wait_for(|s| *s) => deadline = tokio::time::Instant::now(),
            }
        }
    })
}

fn resolve(broker: &Broker, version: i16, request: &FetchRequest) -> Vec<WantedTopic> {
    let coordinator = broker.coordinator();
    request
        .topics
        .iter()
        .map(|t| {
            // v13+ names topics by id (KIP-516).
            let (topic, unknown) = if version >= 13 {
                (
                    coordinator.topic_by_id(t.topic_id),
                    ResponseError::UnknownTopicId,
                )
            } else {
                (
                    coordinator.topic(&t.topic),
                    ResponseError::UnknownTopicOrPartition,
                )
            };
            let partitions = t
                .partitions
                .iter()
                .map(|p| Wanted {
                    index: p.partition,
                    partition: topic
                        .as_ref()
                        .and_then(|topic| topic.partition(p.partition))
                        .ok_or(unknown),
                    fetch_offset: p.fetch_offset,
                    max_bytes: p.partition_max_bytes,
                    current_leader_epoch: p.current_leader_epoch,
                })
                .collect();
            WantedTopic {
                name: t.topic.clone(),
                id: t.topic_id,
                partitions,
            }
        })
        .collect()
}

/// Reads every partition once; returns the response, the record bytes in it, and
/// whether any partition failed (an error is answered at once, not waited on).
fn read_all(
    wanted: &[WantedTopic],
    version: i16,
    max_bytes: usize,
    isolation: i8,
) -> (FetchResponse, usize, bool) {
    let mut remaining = max_bytes;
    let mut total = 0usize;
    let mut any_error = false;
    let responses = wanted
        .iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|w| {
                    let mut data = read_one(w, remaining, total == 0, isolation);
                    if version < 5 {
                        // log_start_offset exists from v5.
                        data.log_start_offset = -1;
                    }
                    let len = data.records.as_ref().map_or(0, Bytes::len);
                    total += len;
                    remaining = remaining.saturating_sub(len);
                    any_error |= data.error_code != 0;
                    data
                })
                .collect();
            FetchableTopicResponse::default()
                .with_topic(t.name.clone())
                .with_topic_id(t.id)
                .with_partitions(partitions)
        })
        .collect();
    let response = FetchResponse::default()
        .with_session_id(0)
        .with_responses(responses);
    (response, total, any_error)
}

fn read_one(w: &Wanted, remaining: usize, first: bool, isolation: i8) -> PartitionData {
    let empty = |error: ResponseError| {
        PartitionData::default()
            .with_partition_index(w.index)
            .with_error_code(error.code())
            .with_high_watermark(-1)
            .with_last_stable_offset(-1)
            .with_log_start_offset(-1)
            // librdkafka rejects a null record set: always send an empty one.
            .with_records(Some(Bytes::new()))
    };
    let partition = match &w.partition {
        Ok(p) => p,
        Err(e) => return empty(*e),
    };
    if let Some(error) =
        errors::leader_epoch_error(w.current_leader_epoch, partition.leader_epoch())
    {
        return empty(error);
    }
    let limit = usize::try_from(w.max_bytes).unwrap_or(0).min(remaining);
    let offset = u64::try_from(w.fetch_offset).unwrap_or(u64::MAX);
    // With no room left in the response only offsets are returned (max_bytes 0).
    let result = partition.fetch(offset, if first { limit.max(1) } else { limit });
    let data = match result {
        Ok(mut fetched) => {
            // Only the first non-empty partition may exceed its limit.
            if !first && fetched.records.len() > limit {
                fetched.records = Bytes::new();
            }
            PartitionData::default()
                .with_partition_index(w.index)
                .with_high_watermark(fetched.high_watermark as i64)
                // No transactions yet: everything below the high watermark is stable.
                .with_last_stable_offset(fetched.high_watermark as i64)
                .with_log_start_offset(fetched.log_start_offset as i64)
                .with_records(Some(fetched.records))
        }
        Err(e) => {
            let hw = partition.high_watermark() as i64;
            let start = partition.log_start_offset().map_or(-1, |s| s as i64);
            if !matches!(
                e,
                CoordinatorError::Storage(strom_storage::StorageError::OffsetOutOfRange { .. })
            ) {
                tracing::warn!(topic = partition.topic(), partition = w.index, error = %e, "fetch failed");
            }
            empty(errors::response_error(&e))
                .with_high_watermark(hw)
                .with_last_stable_offset(hw)
                .with_log_start_offset(start)
        }
    };
    // Kafka sends null aborted transactions to read_uncommitted consumers and an empty
    // list to read_committed ones.
    data.with_aborted_transactions((isolation == READ_COMMITTED).then(Vec::new))
}

#[cfg(test)]
mod tests;
