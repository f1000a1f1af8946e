//! Fetch (API 1): whole record batches from each requested partition, with long poll.
//!
//! Limits, as Kafka applies them: each partition returns at most `partition_max_bytes`
//! and the response at most `max_bytes`, itself capped by the broker's `fetch.max.bytes`
//! (a request asking for more is served that much, with a rate-limited warning), except
//! that the first non-empty partition
//! always returns at least one whole batch, so a consumer never gets stuck behind a
//! batch larger than its limits. Consumers read only up to the high watermark.
//!
//! Long poll: if fewer than `min_bytes` are available the fetch waits until a produce
//! moves the high watermark of one of its partitions (a `watch` channel per partition,
//! subscribed before the first read so no append is missed) or `max_wait_ms` passes.
//! No timer polls the logs.
//!
//! Record sets of at least [`SENDFILE_MIN_BYTES`] are not read: the response names
//! them in their segment files and they are sent with `sendfile` ([`splice`]); smaller
//! ones are read and inlined, where a syscall per set would cost more than the copy.
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
use crate::dispatch;
use crate::error::{Result, ServerError};
use crate::handlers::FrameHandlerFuture;
use crate::handlers::blocking::run_blocking;
use crate::handlers::errors;
use crate::response_frame::ResponseFrame;
use crate::warn_limit::{WarnLimiter, limited_warn};

pub mod splice;

use splice::{FileSet, Markers};

/// `isolation_level` of a consumer that only reads committed records.
const READ_COMMITTED: i8 = 1;

/// A consumer configured above `fetch.max.bytes` asks for it in every Fetch: say so a
/// few times a minute, not every time.
static CAPPED_WARNINGS: WarnLimiter = WarnLimiter::new(3, Duration::from_secs(60));

/// Record sets at least this large are sent from their file; smaller ones are copied.
pub const SENDFILE_MIN_BYTES: usize = 32 * 1024;

/// A Fetch response before encoding: record sets in `files` stand in the response as
/// markers until [`FetchReply::encode`] splices them in.
#[derive(Debug)]
pub struct FetchReply {
    pub response: FetchResponse,
    pub files: Vec<FileSet>,
}

impl FetchReply {
    /// The response frame, record sets sent from their files.
    pub fn encode(self, version: i16, correlation_id: i32) -> Result<ResponseFrame> {
        let response = ResponseKind::Fetch(self.response);
        let frame = dispatch::encode_response(ApiKey::Fetch, version, correlation_id, &response)?;
        splice::splice(frame, version, self.files)
    }

    /// The response with every record set read into it, as a client decodes it.
    pub fn materialize(self) -> std::io::Result<FetchResponse> {
        let mut response = self.response;
        let mut files = self.files.into_iter().peekable();
        for partition in response
            .responses
            .iter_mut()
            .flat_map(|t| &mut t.partitions)
        {
            if let Some(set) = files.next_if(|f| partition.records.as_ref() == Some(&f.marker)) {
                partition.records = Some(set.records.read()?);
            }
        }
        Ok(response)
    }
}

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

pub fn handle(
    broker: Arc<Broker>,
    header: RequestHeader,
    request: RequestKind,
) -> FrameHandlerFuture {
    Box::pin(async move {
        let (version, correlation_id) = (header.request_api_version, header.correlation_id);
        let RequestKind::Fetch(request) = request else {
            return Err(ServerError::HandlerMismatch {
                expected: ApiKey::Fetch,
            });
        };
        respond(broker, version, request)
            .await?
            .encode(version, correlation_id)
    })
}

/// Answers a Fetch request: reads, and waits for `min_bytes` as long poll requires.
pub async fn respond(
    broker: Arc<Broker>,
    version: i16,
    request: FetchRequest,
) -> Result<FetchReply> {
    if request.session_id != 0 {
        // We never hand out sessions, so the client cannot hold one.
        return Ok(FetchReply {
            response: FetchResponse::default()
                .with_error_code(ResponseError::FetchSessionIdNotFound.code())
                .with_session_id(0),
            files: Vec::new(),
        });
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
    let max_bytes = capped_max_bytes(&broker, request.max_bytes);
    let isolation = request.isolation_level;
    loop {
        for w in &mut watchers {
            w.borrow_and_update();
        }
        let w = wanted.clone();
        let read = run_blocking(ApiKey::Fetch, move || {
            read_all(&w, version, max_bytes, isolation)
        })
        .await?;
        // min_bytes 0 answers at once, as in Kafka.
        let done = read.bytes >= min_bytes
            || read.errors
            || watchers.is_empty()
            || tokio::time::Instant::now() >= deadline;
        if done {
            return Ok(read.reply);
        }
        let changed = select_all(watchers.iter_mut().map(|w| Box::pin(w.changed())));
        // A partition moved, time is up, or the server is stopping: all end in a
        // fresh read, and stopping ends the wait for good.
        tokio::select! {
            _ = tokio::time::timeout_at(deadline, changed) => {}
            _ = shutdown.wait_for(|s| *s) => deadline = tokio::time::Instant::now(),
        }
    }
}

/// The request's `max_bytes` (negative = 0), capped at `fetch.max.bytes` as Kafka does.
fn capped_max_bytes(broker: &Broker, asked: i32) -> usize {
    let cap = broker.config().fetch_max_bytes;
    if asked > cap {
        limited_warn!(
            CAPPED_WARNINGS,
            client = %crate::request::client_host(),
            requested = asked,
            cap,
            "Fetch max_bytes above fetch.max.bytes; serving at most fetch.max.bytes"
        );
    }
    usize::try_from(asked.min(cap)).unwrap_or(0)
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

/// One read of every partition.
struct Read {
    reply: FetchReply,
    /// Record bytes in the response.
    bytes: usize,
    /// Whether any partition failed (an error is answered at once, not waited on).
    errors: bool,
}

fn read_all(wanted: &[WantedTopic], version: i16, max_bytes: usize, isolation: i8) -> Read {
    let mut remaining = max_bytes;
    let mut total = 0usize;
    let mut any_error = false;
    let mut markers = Markers::new();
    let mut files = Vec::new();
    let responses = wanted
        .iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|w| {
                    let (mut data, records) = read_one(w, remaining, total == 0, isolation);
                    if version < 5 {
                        // log_start_offset exists from v5.
                        data.log_start_offset = -1;
                    }
                    let len = match records {
                        Records::Inline => data.records.as_ref().map_or(0, Bytes::len),
                        Records::File(records) => {
                            let marker = markers.next_marker();
                            data.records = Some(marker.clone());
                            let len = records.len();
                            files.push(FileSet { marker, records });
                            len
                        }
                    };
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
    Read {
        reply: FetchReply { response, files },
        bytes: total,
        errors: any_error,
    }
}

/// Where a partition's records are: in the response, or to be sent from a file.
enum Records {
    Inline,
    File(strom_storage::FileRecords),
}

fn read_one(w: &Wanted, remaining: usize, first: bool, isolation: i8) -> (PartitionData, Records) {
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
        Err(e) => return (empty(*e), Records::Inline),
    };
    if let Some(error) =
        errors::leader_epoch_error(w.current_leader_epoch, partition.leader_epoch())
    {
        return (empty(error), Records::Inline);
    }
    let limit = usize::try_from(w.max_bytes).unwrap_or(0).min(remaining);
    let offset = u64::try_from(w.fetch_offset).unwrap_or(u64::MAX);
    // With no room left in the response only offsets are returned (max_bytes 0).
    let result = partition.fetch_slice(offset, if first { limit.max(1) } else { limit });
    let (data, records) = match result {
        Ok(fetched) => {
            // Only the first non-empty partition may exceed its limit.
            let slice = fetched
                .records
                .filter(|s| first || s.len() <= limit)
                .filter(|s| !s.is_empty());
            let (inline, records) = match slice {
                None => (Ok(Bytes::new()), Records::Inline),
                Some(s) if s.len() < SENDFILE_MIN_BYTES => (s.read(), Records::Inline),
                Some(s) => (Ok(Bytes::new()), Records::File(s)),
            };
            let hw = fetched.high_watermark as i64;
            match inline {
                Ok(bytes) => (
                    PartitionData::default()
                        .with_partition_index(w.index)
                        .with_high_watermark(hw)
                        // No transactions yet: everything below the high watermark is
                        // stable.
                        .with_last_stable_offset(hw)
                        .with_log_start_offset(fetched.log_start_offset as i64)
                        .with_records(Some(bytes)),
                    records,
                ),
                Err(e) => {
                    tracing::warn!(topic = partition.topic(), partition = w.index, error = %e, "fetch read failed");
                    (empty(ResponseError::KafkaStorageError), Records::Inline)
                }
            }
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
            let data = empty(errors::response_error(&e))
                .with_high_watermark(hw)
                .with_last_stable_offset(hw)
                .with_log_start_offset(start);
            (data, Records::Inline)
        }
    };
    // Kafka sends null aborted transactions to read_uncommitted consumers and an empty
    // list to read_committed ones.
    let data = data.with_aborted_transactions((isolation == READ_COMMITTED).then(Vec::new));
    (data, records)
}

#[cfg(test)]
mod tests;
