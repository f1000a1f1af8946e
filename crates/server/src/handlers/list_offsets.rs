//! ListOffsets (API 2): the offset for a time, or the earliest, latest or max-timestamp
//! offset of each partition.
//!
//! Special timestamps (Kafka's): -1 latest (the high watermark, which is also the last
//! stable offset until transactions exist), -2 earliest (log start), -3 the record with
//! the largest timestamp (v7+), -4 earliest local (v8+; all data is local: log start),
//! -5 earliest pending tiered upload (v9+; no tiered storage: none). For a real time
//! the log finds the first batch whose max timestamp reaches it and this handler
//! decodes that one batch to name the exact record, as Kafka does.

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{
    ApiKey, ListOffsetsRequest, ListOffsetsResponse, RequestHeader, RequestKind, ResponseKind,
};
use kafka_protocol::records::RecordBatchDecoder;
use strom_coordinator::{CoordinatorError, Partition};

use crate::broker::Broker;
use crate::error::ServerError;
use crate::handlers::HandlerFuture;
use crate::handlers::blocking::run_blocking;
use crate::handlers::errors;

pub const LATEST: i64 = -1;
pub const EARLIEST: i64 = -2;
pub const MAX_TIMESTAMP: i64 = -3;
pub const EARLIEST_LOCAL: i64 = -4;
pub const EARLIEST_PENDING_UPLOAD: i64 = -5;

pub fn handle(broker: Arc<Broker>, header: RequestHeader, request: RequestKind) -> HandlerFuture {
    Box::pin(async move {
        let RequestKind::ListOffsets(request) = request else {
            return Err(ServerError::HandlerMismatch {
                expected: ApiKey::ListOffsets,
            });
        };
        let version = header.request_api_version;
        let response = run_blocking(ApiKey::ListOffsets, move || {
            list_offsets(&broker, version, &request)
        })
        .await?;
        Ok(ResponseKind::ListOffsets(response))
    })
}

fn list_offsets(
    broker: &Broker,
    version: i16,
    request: &ListOffsetsRequest,
) -> ListOffsetsResponse {
    let coordinator = broker.coordinator();
    let topics = request
        .topics
        .iter()
        .map(|t| {
            let topic = coordinator.topic(&t.name);
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let response = ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index)
                        .with_timestamp(-1)
                        .with_offset(-1)
                        .with_leader_epoch(-1);
                    let Some(partition) = topic.as_ref().and_then(|t| t.partition(p.partition_index))
                    else {
                        return response.with_error_code(ResponseError::UnknownTopicOrPartition.code());
                    };
                    if let Some(error) = errors::leader_epoch_error(p.current_leader_epoch, partition.leader_epoch()) {
                        return response.with_error_code(error.code());
                    }
                    match lookup(&partition, p.timestamp) {
                        Ok(Some((timestamp, offset))) => {
                            let found = response.with_timestamp(timestamp).with_offset(offset);
                            // leader_epoch exists from v4.
                            if version >= 4 {
                                found.with_leader_epoch(partition.leader_epoch())
                            } else {
                                found
                            }
                        }
                        Ok(None) => response,
                        Err(e) => {
                            tracing::warn!(topic = partition.topic(), partition = p.partition_index, error = %e, "list offsets failed");
                            response.with_error_code(errors::response_error(&e).code())
                        }
                    }
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(t.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}

/// `(timestamp, offset)` for a ListOffsets query; `None` when nothing matches.
fn lookup(partition: &Partition, timestamp: i64) -> Result<Option<(i64, i64)>, CoordinatorError> {
    Ok(match timestamp {
        LATEST => Some((-1, partition.high_watermark() as i64)),
        EARLIEST | EARLIEST_LOCAL => Some((-1, partition.log_start_offset()? as i64)),
        EARLIEST_PENDING_UPLOAD => None,
        MAX_TIMESTAMP => match partition.max_timestamp()? {
            // The batch's last offset names the batch; find the record itself.
            Some(max) => {
                let batch = partition.batch_at(max.offset)?;
                find_record(&batch, |ts| ts >= max.timestamp)
                    .or(Some((max.timestamp, max.offset as i64)))
            }
            None => None,
        },
        t if t < 0 => {
            return Err(CoordinatorError::InvalidConfig {
                name: "timestamp".into(),
                reason: format!("unknown special timestamp {t}"),
            });
        }
        t => match partition.offset_for_timestamp(t)? {
            Some(found) => {
                let start = partition.log_start_offset()? as i64;
                let batch = partition.batch_at(found.offset)?;
                find_record(&batch, |ts| ts >= t)
                    .filter(|(_, offset)| *offset >= start)
                    .or(Some((found.timestamp, found.offset as i64)))
            }
            None => None,
        },
    })
}

/// The first record of the first batch in `batch` whose timestamp satisfies `hit`.
fn find_record(batch: &Bytes, hit: impl Fn(i64) -> bool) -> Option<(i64, i64)> {
    let mut buf = batch.clone();
    let set = RecordBatchDecoder::decode(&mut buf).ok()?;
    set.records
        .iter()
        .find(|r| hit(r.timestamp))
        .map(|r| (r.timestamp, r.offset))
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::TopicName;
    use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
    use kafka_protocol::protocol::{Encodable, StrBytes};
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };

    use super::*;
    use crate::test_support::{self, create_topic, response_as};

    /// A real batch of records with the given timestamps, compressed with gzip.
    fn batch(timestamps: &[i64]) -> Bytes {
        let records: Vec<Record> = timestamps
            .iter()
            .enumerate()
            .map(|(i, ts)| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 0,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                sequence: -1,
                timestamp: *ts,
                key: None,
                value: Some(Bytes::from_static(b"v")),
                headers: Default::default(),
            })
            .collect();
        let mut buf = bytes::BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            &records,
            &RecordEncodeOptions {
                version: 2,
                compression: Compression::Gzip,
            },
        )
        .expect("encode");
        buf.freeze()
    }

    async fn query(
        broker: &Arc<Broker>,
        partition: i32,
        timestamp: i64,
    ) -> ListOffsetsPartitionResponse {
        let request = ListOffsetsRequest::default()
            .with_replica_id((-1).into())
            .with_topics(vec![
                ListOffsetsTopic::default()
                    .with_name(TopicName(StrBytes::from_static_str("t")))
                    .with_partitions(vec![
                        ListOffsetsPartition::default()
                            .with_partition_index(partition)
                            .with_timestamp(timestamp)
                            .with_current_leader_epoch(-1),
                    ]),
            ]);
        let r = response_as!(
            ListOffsets,
            test_support::call(handle, broker, 7, request.into()).await
        );
        r.encode(&mut bytes::BytesMut::new(), 7).expect("encodes");
        r.topics[0].partitions[0].clone()
    }

    #[tokio::test]
    async fn special_and_real_timestamps() {
        let t = test_support::broker();
        let c = t.broker.coordinator();
        create_topic(&t.broker, "t", 1, &[]);
        let p = c.topic("t").and_then(|t| t.partition(0)).expect("p");
        assert_eq!(query(&t.broker, 0, LATEST).await.offset, 0);
        assert_eq!(
            query(&t.broker, 0, 100).await.offset,
            -1,
            "empty log: no match"
        );
        p.append(batch(&[100, 300, 200]), 1 << 20).expect("append");
        p.append(batch(&[400, 500]), 1 << 20).expect("append");
        assert_eq!(query(&t.broker, 0, EARLIEST).await.offset, 0);
        assert_eq!(query(&t.broker, 0, LATEST).await.offset, 5);
        let r = query(&t.broker, 0, 150).await;
        assert_eq!(
            (r.timestamp, r.offset),
            (300, 1),
            "the exact record inside the batch"
        );
        let r = query(&t.broker, 0, 450).await;
        assert_eq!((r.timestamp, r.offset, r.leader_epoch), (500, 4, 0));
        assert_eq!(query(&t.broker, 0, 501).await.offset, -1);
        let r = query(&t.broker, 0, MAX_TIMESTAMP).await;
        assert_eq!((r.timestamp, r.offset), (500, 4));
        p.delete_records_before(1).expect("delete");
        assert_eq!(query(&t.broker, 0, EARLIEST).await.offset, 1);
        assert_eq!(
            query(&t.broker, 0, 0).await.offset,
            1,
            "never before the log start"
        );
        assert_eq!(
            query(&t.broker, 3, LATEST).await.error_code,
            ResponseError::UnknownTopicOrPartition.code()
        );
    }
}
