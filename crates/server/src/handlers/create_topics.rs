//! CreateTopics (API 19), v2–v7: creates topics, or with `validate_only` checks that
//! they could be created.
//!
//! As Kafka (KRaft) does:
//! - a name given more than once gets one INVALID_REQUEST result and none is created;
//! - `num_partitions` / `replication_factor` -1 take `num.partitions` /
//!   `default.replication.factor`;
//! - a manual assignment (`assignments`) requires both to be -1, gives the partition
//!   count, and must name partitions 0..n-1 once each, each with the replicas
//!   `[this broker]`: anything else is INVALID_REPLICA_ASSIGNMENT (there is one broker);
//! - a config with a null value is not set (the topic uses the default);
//! - a successful result (also with `validate_only`) carries the topic id (v7+), the
//!   partition count, replication factor and every config of the topic (v5+); a failed
//!   one carries the error and message, partition count and replication factor -1, no
//!   configs and the nil topic id.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{
    ApiKey, BrokerId, CreateTopicsRequest, CreateTopicsResponse, RequestHeader, RequestKind,
    ResponseKind, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use strom_coordinator::{CreatedTopic, NewTopic};
use tracing::debug;

use crate::broker::Broker;
use crate::error::ServerError;
use crate::handlers::blocking::run_blocking;
use crate::handlers::duplicates::Duplicates;
use crate::handlers::{HandlerFuture, configs, errors};

/// Serves CreateTopics; see the module docs.
pub fn handle(broker: Arc<Broker>, _header: RequestHeader, request: RequestKind) -> HandlerFuture {
    Box::pin(async move {
        let RequestKind::CreateTopics(request) = request else {
            return Err(ServerError::HandlerMismatch {
                expected: ApiKey::CreateTopics,
            });
        };
        // Creating a topic creates and fsyncs files.
        let response = run_blocking(ApiKey::CreateTopics, move || {
            create_topics(&broker, &request)
        })
        .await?;
        Ok(ResponseKind::CreateTopics(response))
    })
}

fn create_topics(broker: &Broker, request: &CreateTopicsRequest) -> CreateTopicsResponse {
    let names = request.topics.iter().map(|t| t.name.as_str());
    let mut duplicates = Duplicates::new(names, "Duplicate topic name.");
    let mut results = Vec::with_capacity(request.topics.len());
    for topic in &request.topics {
        let name = topic.name.as_str();
        match duplicates.check(name) {
            None => continue,
            Some(Err((code, message))) => {
                results.push(failed(name, code, message));
                continue;
            }
            Some(Ok(())) => {}
        }
        let result = new_topic(broker.node_id(), topic)
            .map_err(|(e, message)| (e.code(), message))
            .and_then(|new| {
                broker
                    .coordinator()
                    .create_topic(&new, request.validate_only)
                    .map_err(errors::refusal)
            });
        results.push(match result {
            Ok(created) => succeeded(broker, name, &created),
            Err((code, message)) => {
                debug!(topic = name, code, %message, "CreateTopics refused");
                failed(name, code, message)
            }
        });
    }
    CreateTopicsResponse::default().with_topics(results)
}

/// The coordinator's view of a request entry, after the checks only the protocol has.
fn new_topic(node_id: i32, t: &CreatableTopic) -> Result<NewTopic, (ResponseError, String)> {
    let (partitions, replication_factor) = if t.assignments.is_empty() {
        if t.replication_factor == 0 || t.replication_factor < -1 {
            return Err((
                ResponseError::InvalidReplicationFactor,
                "Replication factor must be larger than 0, or -1 to use the default value.".into(),
            ));
        }
        (t.num_partitions, t.replication_factor)
    } else {
        if t.replication_factor != -1 {
            return Err((
                ResponseError::InvalidRequest,
                "A manual partition assignment was specified, but replication factor was \
                 not set to -1."
                    .into(),
            ));
        }
        if t.num_partitions != -1 {
            return Err((
                ResponseError::InvalidRequest,
                "A manual partition assignment was specified, but numPartitions was not set \
                 to -1."
                    .into(),
            ));
        }
        let mut seen = HashSet::new();
        for a in &t.assignments {
            if !seen.insert(a.partition_index) {
                return Err((
                    ResponseError::InvalidReplicaAssignment,
                    format!(
                        "Found multiple manual partition assignments for partition {}",
                        a.partition_index
                    ),
                ));
            }
            check_replicas(node_id, &a.broker_ids)?;
        }
        let count = seen.len() as i32;
        if (0..count).any(|i| !seen.contains(&i)) {
            return Err((
                ResponseError::InvalidReplicaAssignment,
                "partitions should be a consecutive 0-based integer sequence".into(),
            ));
        }
        (count, 1)
    };
    // A null value means "no override": the topic uses the default.
    let configs: BTreeMap<String, String> = t
        .configs
        .iter()
        .filter_map(|c| Some((c.name.to_string(), c.value.as_ref()?.to_string())))
        .collect();
    Ok(NewTopic {
        name: t.name.to_string(),
        partitions,
        replication_factor,
        configs,
    })
}

/// Checks a manual replica list: with one broker, the only valid one is `[node_id]`.
/// Shared with CreatePartitions; the messages are Kafka's.
pub(crate) fn check_replicas(
    node_id: i32,
    broker_ids: &[BrokerId],
) -> Result<(), (ResponseError, String)> {
    let invalid = |message: String| Err((ResponseError::InvalidReplicaAssignment, message));
    if broker_ids.is_empty() {
        return invalid("The manual partition assignment includes an empty replica list.".into());
    }
    let mut sorted: Vec<i32> = broker_ids.iter().map(|b| b.0).collect();
    sorted.sort_unstable();
    for (i, id) in sorted.iter().enumerate() {
        if *id != node_id {
            return invalid(format!(
                "The manual partition assignment includes broker {id}, but no such broker is \
                 registered."
            ));
        }
        if i > 0 && sorted[i - 1] == *id {
            return invalid(format!(
                "The manual partition assignment includes the broker {id} more than once."
            ));
        }
    }
    Ok(())
}

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

fn failed(name: &str, code: i16, message: String) -> CreatableTopicResult {
    CreatableTopicResult::default()
        .with_name(topic_name(name))
        .with_error_code(code)
        .with_error_message(Some(StrBytes::from_string(message)))
        .with_num_partitions(-1)
        .with_replication_factor(-1)
        .with_configs(Some(Vec::new()))
}

fn succeeded(broker: &Broker, name: &str, created: &CreatedTopic) -> CreatableTopicResult {
    let configs = configs::describe_topic(broker, &created.configs)
        .into_iter()
        .map(|d| {
            CreatableTopicConfigs::default()
                .with_name(StrBytes::from_string(d.name))
                .with_value(d.value.map(StrBytes::from_string))
                .with_read_only(d.read_only)
                .with_config_source(d.source)
                .with_is_sensitive(d.sensitive)
        })
        .collect();
    CreatableTopicResult::default()
        .with_name(topic_name(name))
        .with_topic_id(created.id)
        .with_error_code(0)
        .with_error_message(None)
        .with_num_partitions(created.partitions)
        .with_replication_factor(created.replication_factor)
        .with_configs(Some(configs))
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::create_topics_request::{
        CreatableReplicaAssignment, CreatableTopicConfig,
    };
    use uuid::Uuid;

    use super::*;
    use crate::test_support::{self, TestBroker, response_as, round_trip};

    const VERSIONS: std::ops::RangeInclusive<i16> = 2..=7;

    async fn call(
        b: &TestBroker,
        version: i16,
        request: CreateTopicsRequest,
    ) -> CreateTopicsResponse {
        let r = response_as!(
            CreateTopics,
            test_support::call(handle, &b.broker, version, request.into()).await
        );
        for v in VERSIONS {
            round_trip(&r, v);
        }
        r
    }

    fn topic(name: &str, partitions: i32, rf: i16) -> CreatableTopic {
        CreatableTopic::default()
            .with_name(topic_name(name))
            .with_num_partitions(partitions)
            .with_replication_factor(rf)
    }

    fn config(name: &str, value: Option<&str>) -> CreatableTopicConfig {
        CreatableTopicConfig::default()
            .with_name(StrBytes::from_string(name.into()))
            .with_value(value.map(|v| StrBytes::from_string(v.into())))
    }

    fn assignment(partition: i32, brokers: &[i32]) -> CreatableReplicaAssignment {
        CreatableReplicaAssignment::default()
            .with_partition_index(partition)
            .with_broker_ids(brokers.iter().map(|b| BrokerId(*b)).collect())
    }

    fn request(topics: Vec<CreatableTopic>) -> CreateTopicsRequest {
        CreateTopicsRequest::default()
            .with_topics(topics)
            .with_timeout_ms(30_000)
    }

    fn config_of<'a>(r: &'a CreatableTopicResult, name: &str) -> &'a CreatableTopicConfigs {
        r.configs
            .as_ref()
            .expect("configs")
            .iter()
            .find(|c| c.name.as_str() == name)
            .unwrap_or_else(|| panic!("{name}"))
    }

    #[tokio::test]
    async fn creates_with_defaults_and_configs() {
        let b = test_support::broker();
        let r = call(
            &b,
            7,
            request(vec![
                topic("plain", -1, -1),
                topic("tuned", 3, 1).with_configs(vec![
                    config("retention.ms", Some("60000")),
                    config("cleanup.policy", None),
                ]),
            ]),
        )
        .await;
        assert_eq!(r.topics.len(), 2);
        let plain = &r.topics[0];
        assert_eq!((plain.error_code, plain.error_message.as_ref()), (0, None));
        assert_eq!((plain.num_partitions, plain.replication_factor), (1, 1));
        let c = b.broker.coordinator();
        assert_eq!(plain.topic_id, c.topic("plain").expect("created").id());
        let tuned = &r.topics[1];
        assert_eq!((tuned.error_code, tuned.num_partitions), (0, 3));
        assert_eq!(c.topic("tuned").expect("created").partition_count(), 3);
        let retention = config_of(tuned, "retention.ms");
        assert_eq!(retention.value.as_deref(), Some("60000"));
        assert_eq!(retention.config_source, configs::source::TOPIC_CONFIG);
        assert!(!retention.read_only && !retention.is_sensitive);
        let cleanup = config_of(tuned, "cleanup.policy");
        assert_eq!(cleanup.value.as_deref(), Some("delete"), "null = default");
        assert_eq!(cleanup.config_source, configs::source::DEFAULT_CONFIG);
        assert_eq!(
            c.topic("tuned").expect("t").config().overrides().len(),
            1,
            "only retention.ms is an override"
        );
    }

    #[tokio::test]
    async fn validate_only_creates_nothing() {
        let b = test_support::broker();
        let mut req = request(vec![topic("checked", 4, -1)]);
        req.validate_only = true;
        let r = call(&b, 7, req).await;
        assert_eq!(r.topics[0].error_code, 0);
        assert_eq!(r.topics[0].num_partitions, 4);
        assert!(!r.topics[0].configs.as_ref().expect("configs").is_empty());
        assert!(b.broker.coordinator().topic("checked").is_none());
    }

    #[tokio::test]
    async fn errors_per_topic() {
        let b = test_support::broker();
        test_support::create_topic(&b.broker, "exists", 1, &[]);
        let r = call(
            &b,
            7,
            request(vec![
                topic("dup", 1, -1),
                topic("exists", 1, -1),
                topic("dup", 2, -1),
                topic("bad name", 1, -1),
                topic("rf3", 1, 3),
                topic("rf0", 1, 0),
                topic("p0", 0, -1),
                topic("badcfg", 1, -1).with_configs(vec![config("retention.ms", Some("soon"))]),
                topic("unknowncfg", 1, -1).with_configs(vec![config("no.such", Some("1"))]),
                topic("ok", 1, -1),
            ]),
        )
        .await;
        let codes: Vec<(&str, i16)> = r
            .topics
            .iter()
            .map(|t| (t.name.as_str(), t.error_code))
            .collect();
        assert_eq!(
            codes,
            vec![
                ("dup", 42),
                ("exists", 36),
                ("bad name", 17),
                ("rf3", 38),
                ("rf0", 38),
                ("p0", 37),
                ("badcfg", 40),
                ("unknowncfg", 40),
                ("ok", 0),
            ]
        );
        for t in r.topics.iter().filter(|t| t.error_code != 0) {
            assert!(
                t.error_message.as_ref().is_some_and(|m| !m.is_empty()),
                "{t:?}"
            );
            assert_eq!((t.num_partitions, t.replication_factor), (-1, -1));
            assert_eq!(t.configs, Some(vec![]));
            assert_eq!(t.topic_id, Uuid::nil());
        }
        assert!(b.broker.coordinator().topic("dup").is_none());
    }

    #[tokio::test]
    async fn manual_assignments() {
        let b = test_support::broker();
        let ok = topic("manual", -1, -1)
            .with_assignments(vec![assignment(1, &[1]), assignment(0, &[1])]);
        let cases = vec![
            (ok, 0),
            (
                topic("rf-set", -1, 1).with_assignments(vec![assignment(0, &[1])]),
                42,
            ),
            (
                topic("n-set", 1, -1).with_assignments(vec![assignment(0, &[1])]),
                42,
            ),
            (
                topic("other-broker", -1, -1).with_assignments(vec![assignment(0, &[2])]),
                39,
            ),
            (
                topic("two-replicas", -1, -1).with_assignments(vec![assignment(0, &[1, 1])]),
                39,
            ),
            (
                topic("empty", -1, -1).with_assignments(vec![assignment(0, &[])]),
                39,
            ),
            (
                topic("gap", -1, -1)
                    .with_assignments(vec![assignment(0, &[1]), assignment(2, &[1])]),
                39,
            ),
            (
                topic("twice", -1, -1)
                    .with_assignments(vec![assignment(0, &[1]), assignment(0, &[1])]),
                39,
            ),
        ];
        let (topics, expected): (Vec<_>, Vec<_>) = cases.into_iter().unzip();
        let r = call(&b, 5, request(topics)).await;
        let codes: Vec<i16> = r.topics.iter().map(|t| t.error_code).collect();
        assert_eq!(codes, expected, "{:?}", r.topics);
        assert_eq!(r.topics[0].num_partitions, 2);
        assert_eq!(
            b.broker
                .coordinator()
                .topic("manual")
                .expect("created")
                .partition_count(),
            2
        );
    }

    #[tokio::test]
    async fn version_dependent_fields() {
        let b = test_support::broker();
        for v in VERSIONS {
            let name = format!("t{v}");
            let r = call(&b, v, request(vec![topic(&name, 2, -1)])).await;
            let seen = round_trip(&r, v);
            let t = &seen.topics[0];
            assert_eq!(t.error_code, 0, "v{v}");
            assert_eq!(t.error_message, None, "v{v}");
            let id = b.broker.coordinator().topic(&name).expect("created").id();
            assert_eq!(t.topic_id, if v >= 7 { id } else { Uuid::nil() }, "v{v}");
            if v >= 5 {
                assert_eq!((t.num_partitions, t.replication_factor), (2, 1), "v{v}");
                assert!(!t.configs.as_ref().expect("configs").is_empty(), "v{v}");
            } else {
                assert_eq!((t.num_partitions, t.replication_factor), (-1, -1), "v{v}");
            }
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
