//! CreatePartitions (API 37), v0–v3: grows topics to `count` partitions, or with
//! `validate_only` checks that it could.
//!
//! As Kafka (KRaft) does: a topic named more than once gets one INVALID_REQUEST result
//! and is not changed; an unknown topic is UNKNOWN_TOPIC_OR_PARTITION; a count that
//! does not add partitions is INVALID_PARTITIONS; `assignments`, when given, must have
//! one entry per new partition, each `[this broker]` (there is one broker), else
//! INVALID_REPLICA_ASSIGNMENT.

use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{
    ApiKey, CreatePartitionsRequest, CreatePartitionsResponse, RequestHeader, RequestKind,
    ResponseKind, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use tracing::debug;

use crate::broker::Broker;
use crate::error::ServerError;
use crate::handlers::HandlerFuture;
use crate::handlers::blocking::run_blocking;
use crate::handlers::create_topics::check_replicas;
use crate::handlers::duplicates::Duplicates;
use crate::handlers::errors::{self, Refusal};

/// Serves CreatePartitions; see the module docs.
pub fn handle(broker: Arc<Broker>, _header: RequestHeader, request: RequestKind) -> HandlerFuture {
    Box::pin(async move {
        let RequestKind::CreatePartitions(request) = request else {
            return Err(ServerError::HandlerMismatch {
                expected: ApiKey::CreatePartitions,
            });
        };
        // New partitions are new files.
        let response = run_blocking(ApiKey::CreatePartitions, move || {
            create_partitions(&broker, &request)
        })
        .await?;
        Ok(ResponseKind::CreatePartitions(response))
    })
}

fn create_partitions(
    broker: &Broker,
    request: &CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let names = request.topics.iter().map(|t| t.name.as_str());
    let mut duplicates = Duplicates::new(names, "Duplicate topic name.");
    let mut results = Vec::with_capacity(request.topics.len());
    for topic in &request.topics {
        let name = topic.name.as_str();
        let outcome = match duplicates.check(name) {
            None => continue,
            Some(Err(refusal)) => Err(refusal),
            Some(Ok(())) => grow(broker, topic, request.validate_only),
        };
        results.push(match outcome {
            Ok(()) => result(name, 0, None),
            Err((code, message)) => {
                debug!(topic = name, code, %message, "CreatePartitions refused");
                result(name, code, Some(message))
            }
        });
    }
    CreatePartitionsResponse::default().with_results(results)
}

fn grow(
    broker: &Broker,
    topic: &CreatePartitionsTopic,
    validate_only: bool,
) -> Result<(), Refusal> {
    let coordinator = broker.coordinator();
    let name = topic.name.as_str();
    if let Some(assignments) = &topic.assignments {
        // Only meaningful when partitions are added; otherwise the coordinator refuses
        // the count below, as Kafka checks the count first.
        let current = coordinator.topic(name).map(|t| t.partition_count());
        if let Some(current) = current.filter(|c| topic.count > *c) {
            let additional = i64::from(topic.count) - i64::from(current);
            if assignments.len() as i64 != additional {
                return Err((
                    ResponseError::InvalidReplicaAssignment.code(),
                    format!(
                        "Attempted to add {additional} additional partition(s), but only {} \
                         assignment(s) were specified.",
                        assignments.len()
                    ),
                ));
            }
            for a in assignments {
                check_replicas(broker.node_id(), &a.broker_ids)
                    .map_err(|(e, message)| (e.code(), message))?;
            }
        }
    }
    coordinator
        .create_partitions(name, topic.count, validate_only)
        .map_err(errors::refusal)
}

fn result(name: &str, code: i16, message: Option<String>) -> CreatePartitionsTopicResult {
    CreatePartitionsTopicResult::default()
        .with_name(TopicName(StrBytes::from_string(name.to_string())))
        .with_error_code(code)
        .with_error_message(message.map(StrBytes::from_string))
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::BrokerId;
    use kafka_protocol::messages::create_partitions_request::CreatePartitionsAssignment;

    use super::*;
    use crate::test_support::{self, TestBroker, response_as, round_trip};

    async fn call(
        b: &TestBroker,
        version: i16,
        request: CreatePartitionsRequest,
    ) -> CreatePartitionsResponse {
        let r = response_as!(
            CreatePartitions,
            test_support::call(handle, &b.broker, version, request.into()).await
        );
        for v in 0..=3 {
            assert_eq!(round_trip(&r, v), r, "v{v}");
        }
        r
    }

    fn create(b: &TestBroker, name: &str, partitions: i32) {
        test_support::create_topic(&b.broker, name, partitions, &[]);
    }

    fn count(b: &TestBroker, name: &str) -> i32 {
        b.broker
            .coordinator()
            .topic(name)
            .expect("exists")
            .partition_count()
    }

    fn topic(name: &str, count: i32, assignments: Option<Vec<&[i32]>>) -> CreatePartitionsTopic {
        CreatePartitionsTopic::default()
            .with_name(TopicName(StrBytes::from_string(name.to_string())))
            .with_count(count)
            .with_assignments(assignments.map(|a| {
                a.into_iter()
                    .map(|ids| {
                        CreatePartitionsAssignment::default()
                            .with_broker_ids(ids.iter().map(|i| BrokerId(*i)).collect())
                    })
                    .collect()
            }))
    }

    fn codes(r: &CreatePartitionsResponse) -> Vec<(String, i16)> {
        r.results
            .iter()
            .map(|t| (t.name.to_string(), t.error_code))
            .collect()
    }

    #[tokio::test]
    async fn grows_topics_and_reports_errors() {
        let b = test_support::broker();
        for name in [
            "plain",
            "assigned",
            "same",
            "dup",
            "wrong-count",
            "other-broker",
        ] {
            create(&b, name, 1);
        }
        let req = CreatePartitionsRequest::default().with_topics(vec![
            topic("plain", 3, None),
            topic("assigned", 3, Some(vec![&[1], &[1]])),
            topic("same", 1, None),
            topic("dup", 2, None),
            topic("dup", 3, None),
            topic("missing", 2, None),
            topic("wrong-count", 3, Some(vec![&[1]])),
            topic("other-broker", 2, Some(vec![&[2]])),
        ]);
        let r = call(&b, 3, req).await;
        let expected: Vec<(String, i16)> = [
            ("plain", 0),
            ("assigned", 0),
            ("same", 37),
            ("dup", 42),
            ("missing", 3),
            ("wrong-count", 39),
            ("other-broker", 39),
        ]
        .iter()
        .map(|(n, c)| (n.to_string(), *c))
        .collect();
        assert_eq!(codes(&r), expected);
        for t in &r.results {
            assert_eq!(t.error_message.is_some(), t.error_code != 0, "{t:?}");
        }
        assert_eq!(count(&b, "plain"), 3);
        assert_eq!(count(&b, "assigned"), 3);
        assert_eq!(count(&b, "dup"), 1);
        assert_eq!(count(&b, "wrong-count"), 1);
        assert_eq!(count(&b, "other-broker"), 1);
    }

    #[tokio::test]
    async fn validate_only_changes_nothing() {
        let b = test_support::broker();
        create(&b, "t", 1);
        for v in 0..=3 {
            let req = CreatePartitionsRequest::default()
                .with_topics(vec![topic("t", 4, None)])
                .with_validate_only(true);
            let r = call(&b, v, req).await;
            assert_eq!(codes(&r), vec![("t".to_string(), 0)], "v{v}");
            assert_eq!(count(&b, "t"), 1);
        }
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
