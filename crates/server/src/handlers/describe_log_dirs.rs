//! DescribeLogDirs (API 35), v1–v4: the log directories of this broker and the size on
//! disk of every partition in them.
//!
//! As Kafka 4 does (it dropped v0, KIP-896):
//! - one result per log directory: Strom has one, the data directory, named by its
//!   absolute path;
//! - `topics` null asks for every partition; otherwise only the listed partitions that
//!   exist are described, and unknown ones are left out (no per-partition error exists
//!   in the schema); a topic with no partition left is left out too;
//! - `offset_lag` is 0 (a current replica's lag behind the high watermark; Strom has no
//!   future replicas, so `is_future_key` is false);
//! - `total_bytes` / `usable_bytes` (v4) are -1, which the schema defines as unknown:
//!   the file-system figures need `statvfs`, an `unsafe` call, and this crate keeps
//!   `unsafe` to its allocator.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{
    ApiKey, DescribeLogDirsRequest, DescribeLogDirsResponse, RequestHeader, RequestKind,
    ResponseKind, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use strom_coordinator::Partition;

use crate::broker::Broker;
use crate::error::ServerError;
use crate::handlers::HandlerFuture;
use crate::handlers::blocking::run_blocking;

/// Serves DescribeLogDirs; see the module docs.
pub fn handle(broker: Arc<Broker>, _header: RequestHeader, request: RequestKind) -> HandlerFuture {
    Box::pin(async move {
        let RequestKind::DescribeLogDirs(request) = request else {
            return Err(ServerError::HandlerMismatch {
                expected: ApiKey::DescribeLogDirs,
            });
        };
        // Sizes are read under each partition's lock, which an append holding it through
        // a write or fsync would make this wait for: off the async workers.
        let result =
            run_blocking(ApiKey::DescribeLogDirs, move || describe(&broker, &request)).await?;
        Ok(ResponseKind::DescribeLogDirs(
            DescribeLogDirsResponse::default()
                .with_error_code(0)
                .with_results(vec![result]),
        ))
    })
}

fn describe(broker: &Broker, request: &DescribeLogDirsRequest) -> DescribeLogDirsResult {
    let coordinator = broker.coordinator();
    let partitions: Vec<Arc<Partition>> = match &request.topics {
        None => coordinator.all_partitions(),
        Some(topics) => {
            // A partition named twice is described once, as Kafka's set of partitions.
            let mut seen = HashSet::new();
            topics
                .iter()
                .flat_map(|t| t.partitions.iter().map(move |&p| (&t.topic, p)))
                .filter(|&(topic, p)| seen.insert((topic.0.as_str(), p)))
                .filter_map(|(topic, p)| coordinator.topic(topic).and_then(|t| t.partition(p)))
                .collect()
        }
    };
    let mut by_topic: BTreeMap<&str, Vec<DescribeLogDirsPartition>> = BTreeMap::new();
    for p in &partitions {
        // A partition deleted since it was listed has no log to measure: left out, as
        // Kafka leaves out partitions it has no log for.
        let Ok(size) = p.size_bytes() else {
            continue;
        };
        by_topic.entry(p.topic()).or_default().push(
            DescribeLogDirsPartition::default()
                .with_partition_index(p.index())
                .with_partition_size(i64::try_from(size).unwrap_or(i64::MAX))
                .with_offset_lag(0)
                .with_is_future_key(false),
        );
    }
    let topics = by_topic
        .into_iter()
        .map(|(name, mut parts)| {
            parts.sort_by_key(|p| p.partition_index);
            DescribeLogDirsTopic::default()
                .with_name(TopicName(StrBytes::from_string(name.to_string())))
                .with_partitions(parts)
        })
        .collect();
    let dir = coordinator.data_dir();
    // Kafka names a log dir by its absolute path; `absolute` does not touch the disk,
    // and failing that the configured path is still the right directory.
    let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    DescribeLogDirsResult::default()
        .with_error_code(0)
        .with_log_dir(StrBytes::from_string(dir.display().to_string()))
        .with_topics(topics)
        .with_total_bytes(-1)
        .with_usable_bytes(-1)
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;

    use super::*;
    use crate::test_support::{self, TestBroker, create_topic, response_as, round_trip};

    const VERSIONS: std::ops::RangeInclusive<i16> = 1..=4;

    async fn call(
        b: &TestBroker,
        version: i16,
        topics: Option<&[(&str, &[i32])]>,
    ) -> DescribeLogDirsResponse {
        let request = DescribeLogDirsRequest::default().with_topics(topics.map(|ts| {
            ts.iter()
                .map(|(name, parts)| {
                    DescribableLogDirTopic::default()
                        .with_topic(TopicName(StrBytes::from_string(name.to_string())))
                        .with_partitions(parts.to_vec())
                })
                .collect()
        }));
        let r = response_as!(
            DescribeLogDirs,
            test_support::call(handle, &b.broker, version, request.into()).await
        );
        for v in VERSIONS {
            round_trip(&r, v);
        }
        round_trip(&r, version)
    }

    /// `(topic, partition, size)` of every partition in the one log dir.
    fn sizes(r: &DescribeLogDirsResponse) -> Vec<(String, i32, i64)> {
        assert_eq!(r.results.len(), 1, "one log dir");
        r.results[0]
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .map(|p| (t.name.0.to_string(), p.partition_index, p.partition_size))
            })
            .collect()
    }

    /// A one-record v2 batch, as a producer sends it.
    fn batch() -> Bytes {
        use kafka_protocol::records::{
            Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
        };
        let record = Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: 0,
            sequence: -1,
            timestamp: test_support::T0,
            key: None,
            value: Some(Bytes::from_static(b"value")),
            headers: Default::default(),
        };
        let mut buf = bytes::BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            &[record],
            &RecordEncodeOptions {
                version: 2,
                compression: Compression::None,
            },
        )
        .expect("encode");
        buf.freeze()
    }

    #[tokio::test]
    async fn null_topics_describes_every_partition_with_its_size() {
        let b = test_support::broker();
        create_topic(&b.broker, "b", 2, &[]);
        create_topic(&b.broker, "a", 1, &[]);
        let p = b
            .broker
            .coordinator()
            .topic("b")
            .and_then(|t| t.partition(1))
            .expect("b-1");
        let written = batch();
        p.append(written.clone(), 1 << 20).expect("append");
        for version in VERSIONS {
            let r = call(&b, version, None).await;
            assert_eq!(r.error_code, 0);
            let dir = &r.results[0];
            assert_eq!(dir.error_code, 0);
            let expected = std::path::absolute(b.broker.coordinator().data_dir()).expect("abs");
            assert_eq!(dir.log_dir.as_str(), expected.display().to_string());
            assert_eq!(
                sizes(&r),
                [
                    ("a".to_string(), 0, 0),
                    ("b".to_string(), 0, 0),
                    ("b".to_string(), 1, written.len() as i64),
                ],
                "v{version}"
            );
            for part in dir.topics.iter().flat_map(|t| &t.partitions) {
                assert_eq!((part.offset_lag, part.is_future_key), (0, false));
            }
            // v4 carries the file-system figures; unknown is -1 (and older versions
            // decode the field's default, also -1).
            assert_eq!((dir.total_bytes, dir.usable_bytes), (-1, -1));
        }
    }

    #[tokio::test]
    async fn listed_partitions_only_and_unknown_ones_left_out() {
        let b = test_support::broker();
        create_topic(&b.broker, "t", 3, &[]);
        create_topic(&b.broker, "other", 1, &[]);
        let r = call(&b, 4, Some(&[("t", &[2, 0, 7, 2]), ("missing", &[0])])).await;
        assert_eq!(
            sizes(&r),
            [("t".to_string(), 0, 0), ("t".to_string(), 2, 0)],
            "sorted, deduplicated, unknown partition and topic left out"
        );
        let r = call(&b, 1, Some(&[("missing", &[0])])).await;
        assert!(r.results[0].topics.is_empty(), "{r:?}");
        let r = call(&b, 2, Some(&[])).await;
        assert!(
            r.results[0].topics.is_empty(),
            "an empty list asks for nothing"
        );
    }
}
