//! Metadata (API 3): brokers, the controller, topics and their partitions' leaders.
//!
//! One broker: it is every partition's leader, only replica and only in-sync replica,
//! and the controller (sarama's admin client needs a real controller id). Topics may be
//! auto-created here, as in Kafka, when the request allows it (v4+) and
//! `auto.create.topics.enable` is on.

use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{
    ApiKey, BrokerId, MetadataRequest, MetadataResponse, RequestHeader, RequestKind, ResponseKind,
    TopicName,
};
use kafka_protocol::protocol::StrBytes;
use strom_coordinator::{Topic, validate_name};
use uuid::Uuid;

use crate::broker::Broker;
use crate::error::ServerError;
use crate::handlers::HandlerFuture;
use crate::handlers::blocking::run_blocking;
use crate::handlers::errors;

/// Kafka's "authorized operations not requested" value.
pub const OPERATIONS_NOT_REQUESTED: i32 = i32::MIN;

/// Bits of the ACL operations a principal may perform on a topic (READ 3, WRITE 4,
/// CREATE 5, DELETE 6, ALTER 7, DESCRIBE 8, DESCRIBE_CONFIGS 10, ALTER_CONFIGS 11): all
/// of them, since there are no ACLs yet.
pub const TOPIC_OPERATIONS: i32 =
    (1 << 3) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 7) | (1 << 8) | (1 << 10) | (1 << 11);

/// Cluster operations (CREATE 5, ALTER 7, DESCRIBE 8, CLUSTER_ACTION 9,
/// DESCRIBE_CONFIGS 10, ALTER_CONFIGS 11, IDEMPOTENT_WRITE 12): all allowed.
pub const CLUSTER_OPERATIONS: i32 =
    (1 << 5) | (1 << 7) | (1 << 8) | (1 << 9) | (1 << 10) | (1 << 11) | (1 << 12);

pub fn handle(broker: Arc<Broker>, header: RequestHeader, request: RequestKind) -> HandlerFuture {
    Box::pin(async move {
        let RequestKind::Metadata(request) = request else {
            return Err(ServerError::HandlerMismatch {
                expected: ApiKey::Metadata,
            });
        };
        let version = header.request_api_version;
        // Auto-creation writes files.
        let response = run_blocking(ApiKey::Metadata, move || {
            metadata(&broker, version, &request)
        })
        .await?;
        Ok(ResponseKind::Metadata(response))
    })
}

fn metadata(broker: &Broker, version: i16, request: &MetadataRequest) -> MetadataResponse {
    let coordinator = broker.coordinator();
    let node = BrokerId(broker.node_id());
    let topics = match &request.topics {
        // v0 has no null: an empty list means every topic.
        None => all_topics(broker, version, request),
        Some(list) if list.is_empty() && version == 0 => all_topics(broker, version, request),
        Some(list) => {
            // Before v4 every request may auto-create.
            let allow_create = version < 4 || request.allow_auto_topic_creation;
            list.iter()
                .map(|t| match &t.name {
                    // v10+ may name a topic by id instead (name null, or empty).
                    Some(name) if !name.is_empty() || t.topic_id.is_nil() => {
                        by_name(broker, version, request, name, allow_create)
                    }
                    _ => match coordinator.topic_by_id(t.topic_id) {
                        Some(topic) => describe(broker, version, request, &topic),
                        None => error_topic(None, t.topic_id, ResponseError::UnknownTopicId),
                    },
                })
                .collect()
        }
    };
    let advertised = broker.advertised();
    // Fields a version lacks must keep their defaults, or the encoder refuses them.
    let mut response = MetadataResponse::default()
        .with_brokers(vec![
            MetadataResponseBroker::default()
                .with_node_id(node)
                .with_host(StrBytes::from_string(advertised.host.clone()))
                .with_port(i32::from(advertised.port))
                .with_rack(None),
        ])
        .with_topics(topics);
    if version >= 1 {
        response.controller_id = node;
    }
    if version >= 2 {
        response.cluster_id = Some(StrBytes::from_string(coordinator.cluster_id().to_string()));
    }
    if (8..=10).contains(&version) && request.include_cluster_authorized_operations {
        response.cluster_authorized_operations = CLUSTER_OPERATIONS;
    }
    response
}

fn all_topics(
    broker: &Broker,
    version: i16,
    request: &MetadataRequest,
) -> Vec<MetadataResponseTopic> {
    broker
        .coordinator()
        .topics()
        .iter()
        .map(|t| describe(broker, version, request, t))
        .collect()
}

fn by_name(
    broker: &Broker,
    version: i16,
    request: &MetadataRequest,
    name: &TopicName,
    allow_create: bool,
) -> MetadataResponseTopic {
    if validate_name(name).is_err() {
        return error_topic(
            Some(name.clone()),
            Uuid::nil(),
            ResponseError::InvalidTopicException,
        );
    }
    let coordinator = broker.coordinator();
    let found = if allow_create {
        coordinator.topic_or_auto_create(name)
    } else {
        Ok(coordinator.topic(name))
    };
    match found {
        Ok(Some(topic)) => describe(broker, version, request, &topic),
        Ok(None) => error_topic(
            Some(name.clone()),
            Uuid::nil(),
            ResponseError::UnknownTopicOrPartition,
        ),
        Err(e) => {
            tracing::warn!(topic = %&**name, error = %e, "auto-creating topic failed");
            error_topic(Some(name.clone()), Uuid::nil(), errors::response_error(&e))
        }
    }
}

fn describe(
    broker: &Broker,
    version: i16,
    request: &MetadataRequest,
    topic: &Topic,
) -> MetadataResponseTopic {
    let node = BrokerId(broker.node_id());
    let partitions = topic
        .partitions()
        .iter()
        .map(|p| {
            let partition = MetadataResponsePartition::default()
                .with_partition_index(p.index())
                .with_leader_id(node)
                .with_replica_nodes(vec![node])
                .with_isr_nodes(vec![node])
                .with_offline_replicas(Vec::new());
            if version >= 7 {
                partition.with_leader_epoch(p.leader_epoch())
            } else {
                partition
            }
        })
        .collect();
    let mut response = MetadataResponseTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(
            topic.name().to_string(),
        ))))
        .with_partitions(partitions);
    if version >= 1 {
        response.is_internal = topic.is_internal();
    }
    if version >= 8 && request.include_topic_authorized_operations {
        response.topic_authorized_operations = TOPIC_OPERATIONS;
    }
    if version >= 10 {
        response.topic_id = topic.id();
    }
    response
}

fn error_topic(name: Option<TopicName>, id: Uuid, error: ResponseError) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_error_code(error.code())
        .with_name(name)
        .with_topic_id(id)
        .with_partitions(Vec::new())
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
    use kafka_protocol::protocol::Encodable;

    use super::*;
    use crate::config::BrokerConfig;
    use crate::test_support::{self, create_topic, response_as};

    fn name(s: &str) -> TopicName {
        TopicName(StrBytes::from_string(s.to_string()))
    }

    async fn call(
        broker: &Arc<Broker>,
        version: i16,
        request: MetadataRequest,
    ) -> MetadataResponse {
        let r = response_as!(
            Metadata,
            test_support::call(handle, broker, version, request.into()).await
        );
        r.encode(&mut bytes::BytesMut::new(), version)
            .expect("encodes in the request's version");
        r
    }

    fn topics(names: &[&str]) -> Option<Vec<MetadataRequestTopic>> {
        Some(
            names
                .iter()
                .map(|n| MetadataRequestTopic::default().with_name(Some(name(n))))
                .collect(),
        )
    }

    #[tokio::test]
    async fn describes_the_broker_and_topics() {
        let t = test_support::broker();
        let c = t.broker.coordinator();
        create_topic(&t.broker, "orders", 3, &[]);
        let r = call(&t.broker, 12, MetadataRequest::default().with_topics(None)).await;
        assert_eq!(r.controller_id, BrokerId(1));
        assert_eq!(r.brokers.len(), 1);
        assert_eq!(r.brokers[0].port, 9092);
        assert_eq!(r.cluster_id.as_deref(), Some(c.cluster_id()));
        assert_eq!(r.topics.len(), 1);
        let topic = &r.topics[0];
        assert_eq!(topic.error_code, 0);
        assert_eq!(topic.partitions.len(), 3);
        assert_eq!(topic.partitions[2].leader_id, BrokerId(1));
        assert_eq!(topic.partitions[2].isr_nodes, vec![BrokerId(1)]);
        assert_eq!(topic.topic_authorized_operations, i32::MIN);
        // By id (v10+).
        let by_id = MetadataRequest::default().with_topics(Some(vec![
            MetadataRequestTopic::default()
                .with_name(None)
                .with_topic_id(topic.topic_id),
            MetadataRequestTopic::default()
                .with_name(None)
                .with_topic_id(Uuid::from_u128(7)),
        ]));
        let r = call(&t.broker, 12, by_id).await;
        assert_eq!(r.topics[0].name.as_deref().map(|n| &**n), Some("orders"));
        assert_eq!(r.topics[1].error_code, ResponseError::UnknownTopicId.code());
        // An empty list is "no topics" from v1, "all topics" in v0.
        assert!(
            call(
                &t.broker,
                1,
                MetadataRequest::default().with_topics(Some(vec![]))
            )
            .await
            .topics
            .is_empty()
        );
        assert_eq!(
            call(
                &t.broker,
                0,
                MetadataRequest::default().with_topics(Some(vec![]))
            )
            .await
            .topics
            .len(),
            1
        );
        // Every served version answers and encodes.
        for v in 0..=12 {
            let topics = if v == 0 { Some(vec![]) } else { None };
            let r = call(&t.broker, v, MetadataRequest::default().with_topics(topics)).await;
            assert_eq!(r.topics.len(), 1, "v{v}");
            assert_eq!(r.controller_id, BrokerId(if v >= 1 { 1 } else { -1 }));
        }
    }

    #[tokio::test]
    async fn auto_creates_only_when_allowed() {
        let t = test_support::broker();
        let no = MetadataRequest::default()
            .with_topics(topics(&["fresh"]))
            .with_allow_auto_topic_creation(false);
        let r = call(&t.broker, 9, no).await;
        assert_eq!(
            r.topics[0].error_code,
            ResponseError::UnknownTopicOrPartition.code()
        );
        assert!(t.broker.coordinator().topic("fresh").is_none());
        let yes = MetadataRequest::default()
            .with_topics(topics(&["fresh", "bad name"]))
            .with_allow_auto_topic_creation(true)
            .with_include_topic_authorized_operations(true);
        let r = call(&t.broker, 9, yes).await;
        assert_eq!(r.topics[0].error_code, 0);
        assert_eq!(r.topics[0].partitions.len(), 1);
        assert_eq!(r.topics[0].topic_authorized_operations, TOPIC_OPERATIONS);
        assert_eq!(
            r.topics[1].error_code,
            ResponseError::InvalidTopicException.code()
        );

        let off = test_support::broker_with(BrokerConfig {
            auto_create_topics_enable: false,
            ..BrokerConfig::default()
        });
        let r = call(
            &off.broker,
            1,
            MetadataRequest::default().with_topics(topics(&["x"])),
        )
        .await;
        assert_eq!(
            r.topics[0].error_code,
            ResponseError::UnknownTopicOrPartition.code()
        );
    }
}
