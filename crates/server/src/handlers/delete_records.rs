//! DeleteRecords (API 21), v0–v2: moves partitions' log start offsets forward, deleting
//! the records before them.
//!
//! As Kafka does, per partition: offset -1 means the high watermark; another negative
//! offset, or one above the high watermark, is OFFSET_OUT_OF_RANGE; an offset at or
//! below the log start changes nothing; an unknown topic or partition is
//! UNKNOWN_TOPIC_OR_PARTITION; a topic whose `cleanup.policy` lacks `delete` is
//! POLICY_VIOLATION. The result is the partition's new log start offset (its low
//! watermark), or -1 on error.

use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::delete_records_request::DeleteRecordsPartition;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{
    ApiKey, DeleteRecordsRequest, DeleteRecordsResponse, RequestHeader, RequestKind, ResponseKind,
};
use strom_coordinator::Topic;
use tracing::debug;

use crate::broker::Broker;
use crate::error::ServerError;
use crate::handlers::blocking::run_blocking;
use crate::handlers::{HandlerFuture, errors};

/// DeleteRecords' "up to the high watermark" offset.
const HIGH_WATERMARK: i64 = -1;

/// Serves DeleteRecords; see the module docs.
pub fn handle(broker: Arc<Broker>, _header: RequestHeader, request: RequestKind) -> HandlerFuture {
    Box::pin(async move {
        let RequestKind::DeleteRecords(request) = request else {
            return Err(ServerError::HandlerMismatch {
                expected: ApiKey::DeleteRecords,
            });
        };
        // Deleting records removes segment files and checkpoints the log start.
        let response = run_blocking(ApiKey::DeleteRecords, move || {
            delete_records(&broker, &request)
        })
        .await?;
        Ok(ResponseKind::DeleteRecords(response))
    })
}

fn delete_records(broker: &Broker, request: &DeleteRecordsRequest) -> DeleteRecordsResponse {
    let topics = request
        .topics
        .iter()
        .map(|t| {
            let topic = broker.coordinator().topic(t.name.as_str());
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let outcome = match &topic {
                        Some(topic) => delete(topic, p),
                        None => Err(ResponseError::UnknownTopicOrPartition.code()),
                    };
                    let (low_watermark, code) = match outcome {
                        Ok(low) => (low, 0),
                        Err(code) => {
                            debug!(
                                topic = t.name.as_str(),
                                partition = p.partition_index,
                                offset = p.offset,
                                code,
                                "DeleteRecords refused"
                            );
                            (-1, code)
                        }
                    };
                    DeleteRecordsPartitionResult::default()
                        .with_partition_index(p.partition_index)
                        .with_low_watermark(low_watermark)
                        .with_error_code(code)
                })
                .collect();
            DeleteRecordsTopicResult::default()
                .with_name(t.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    DeleteRecordsResponse::default().with_topics(topics)
}

/// The partition's new low watermark, or the error code.
fn delete(topic: &Topic, p: &DeleteRecordsPartition) -> Result<i64, i16> {
    let Some(partition) = topic.partition(p.partition_index) else {
        return Err(ResponseError::UnknownTopicOrPartition.code());
    };
    let policy = topic.config().overrides().get("cleanup.policy").cloned();
    if policy.is_some_and(|v| !v.split(',').any(|p| p.trim() == "delete")) {
        return Err(ResponseError::PolicyViolation.code());
    }
    let offset = match p.offset {
        HIGH_WATERMARK => partition.high_watermark(),
        o => u64::try_from(o).map_err(|_| ResponseError::OffsetOutOfRange.code())?,
    };
    partition
        .delete_records_before(offset)
        .map(|low| low as i64)
        .map_err(|e| errors::response_error(&e).code())
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use kafka_protocol::messages::TopicName;
    use kafka_protocol::messages::delete_records_request::DeleteRecordsTopic;
    use kafka_protocol::protocol::StrBytes;
    use strom_storage::testing::encode_batch;

    use super::*;
    use crate::test_support::{self, T0, TestBroker, response_as, round_trip};

    async fn call(
        b: &TestBroker,
        version: i16,
        request: DeleteRecordsRequest,
    ) -> DeleteRecordsResponse {
        let r = response_as!(
            DeleteRecords,
            test_support::call(handle, &b.broker, version, request.into()).await
        );
        for v in 0..=2 {
            assert_eq!(round_trip(&r, v), r, "v{v}");
        }
        r
    }

    /// A topic whose partitions each hold `records` records in batches of 5.
    fn create(b: &TestBroker, name: &str, partitions: i32, records: i32, configs: &[(&str, &str)]) {
        test_support::create_topic(&b.broker, name, partitions, configs);
        let topic = b.broker.coordinator().topic(name).expect("topic");
        for p in topic.partitions() {
            for _ in 0..records / 5 {
                p.append(Bytes::from(encode_batch(5, T0, T0, -1, b"v")), u64::MAX)
                    .expect("append");
            }
        }
    }

    fn request(topics: &[(&str, &[(i32, i64)])]) -> DeleteRecordsRequest {
        DeleteRecordsRequest::default()
            .with_timeout_ms(30_000)
            .with_topics(
                topics
                    .iter()
                    .map(|(name, parts)| {
                        DeleteRecordsTopic::default()
                            .with_name(TopicName(StrBytes::from_string(name.to_string())))
                            .with_partitions(
                                parts
                                    .iter()
                                    .map(|(i, o)| {
                                        DeleteRecordsPartition::default()
                                            .with_partition_index(*i)
                                            .with_offset(*o)
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            )
    }

    fn results(r: &DeleteRecordsResponse) -> Vec<(String, i32, i64, i16)> {
        r.topics
            .iter()
            .flat_map(|t| {
                t.partitions.iter().map(|p| {
                    (
                        t.name.to_string(),
                        p.partition_index,
                        p.low_watermark,
                        p.error_code,
                    )
                })
            })
            .collect()
    }

    fn log_start(b: &TestBroker, name: &str, partition: i32) -> u64 {
        b.broker
            .coordinator()
            .topic(name)
            .and_then(|t| t.partition(partition))
            .expect("partition")
            .log_start_offset()
            .expect("open")
    }

    #[tokio::test]
    async fn deletes_up_to_offsets_and_the_high_watermark() {
        let b = test_support::broker();
        create(&b, "t", 3, 20, &[]);
        for v in 0..=2 {
            let r = call(&b, v, request(&[("t", &[(0, 5), (1, -1), (2, 0)])])).await;
            assert_eq!(
                results(&r),
                vec![
                    ("t".into(), 0, 5, 0),
                    ("t".into(), 1, 20, 0),
                    ("t".into(), 2, 0, 0),
                ],
                "v{v}"
            );
        }
        assert_eq!(log_start(&b, "t", 0), 5);
        assert_eq!(log_start(&b, "t", 1), 20);
        // Below the log start: nothing changes, the low watermark is reported.
        let r = call(&b, 2, request(&[("t", &[(0, 3)])])).await;
        assert_eq!(results(&r), vec![("t".into(), 0, 5, 0)]);
    }

    #[tokio::test]
    async fn errors_per_partition() {
        let b = test_support::broker();
        create(&b, "t", 1, 10, &[]);
        create(&b, "compacted", 1, 10, &[("cleanup.policy", "compact")]);
        create(&b, "both", 1, 10, &[("cleanup.policy", "compact,delete")]);
        let r = call(
            &b,
            1,
            request(&[
                ("t", &[(0, 11), (0, -2), (5, 1)]),
                ("missing", &[(0, 1)]),
                ("compacted", &[(0, 1)]),
                ("both", &[(0, 1)]),
            ]),
        )
        .await;
        assert_eq!(
            results(&r),
            vec![
                ("t".into(), 0, -1, 1),
                ("t".into(), 0, -1, 1),
                ("t".into(), 5, -1, 3),
                ("missing".into(), 0, -1, 3),
                ("compacted".into(), 0, -1, 44),
                ("both".into(), 0, 1, 0),
            ]
        );
        assert_eq!(log_start(&b, "t", 0), 0);
        assert_eq!(log_start(&b, "compacted", 0), 0);
    }

    #[tokio::test]
    async fn mismatched_request_is_an_error() {
        let b = test_support::broker();
        let res = handle(
            b.broker.clone(),
            RequestHeader::default(),
            RequestKind::Metadata(Default::default()),
        )
        .await;
        assert!(matches!(res, Err(ServerError::HandlerMismatch { .. })));
    }
}
