//! OffsetDelete (API 47), v0: deletes a group's committed offsets of some partitions.
//! Group-level refusals (GROUP_ID_NOT_FOUND, NON_EMPTY_GROUP, ...) are the response's
//! error; a partition of a topic the group's members subscribe to fails alone with
//! GROUP_SUBSCRIBED_TO_TOPIC, and one of a topic this broker does not have with
//! UNKNOWN_TOPIC_OR_PARTITION (as Kafka filters them before the coordinator).

use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::{
    ApiKey, OffsetDeleteResponse, RequestHeader, RequestKind, ResponseKind,
};
use strom_coordinator::group::TopicPartition;

use crate::broker::Broker;
use crate::error::ServerError;
use crate::groups::Command;
use crate::handlers::HandlerFuture;
use crate::handlers::errors;

pub fn handle(broker: Arc<Broker>, _header: RequestHeader, request: RequestKind) -> HandlerFuture {
    Box::pin(async move {
        let RequestKind::OffsetDelete(r) = request else {
            return Err(ServerError::HandlerMismatch {
                expected: ApiKey::OffsetDelete,
            });
        };
        let group_id = r.group_id.0.to_string();
        let known = |name: &str| broker.coordinator().topic(name).is_some();
        let partitions: Vec<TopicPartition> = r
            .topics
            .iter()
            .filter(|t| known(&t.name))
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .map(|p| TopicPartition::new(t.name.0.to_string(), p.partition_index))
            })
            .collect();
        let answer = broker
            .groups()
            .call(&group_id, |reply| Command::DeleteOffsets {
                group_id: group_id.clone(),
                partitions,
                reply,
            })
            .await;
        let results = match answer {
            Ok(Ok(results)) => results,
            Ok(Err(e)) => {
                return Ok(ResponseKind::OffsetDelete(
                    OffsetDeleteResponse::default().with_error_code(errors::group_error(&e).code()),
                ));
            }
            Err(u) => {
                return Ok(ResponseKind::OffsetDelete(
                    OffsetDeleteResponse::default().with_error_code(errors::unavailable(u).code()),
                ));
            }
        };
        // One result per partition, in request order.
        let mut results = results.into_iter();
        let topics = r
            .topics
            .into_iter()
            .map(|t| {
                let is_known = known(&t.name);
                let partitions = t
                    .partitions
                    .iter()
                    .map(|p| {
                        let code = if is_known {
                            results
                                .next()
                                .map_or(0, |res| errors::group_code(res.error.as_ref()))
                        } else {
                            ResponseError::UnknownTopicOrPartition.code()
                        };
                        OffsetDeleteResponsePartition::default()
                            .with_partition_index(p.partition_index)
                            .with_error_code(code)
                    })
                    .collect();
                OffsetDeleteResponseTopic::default()
                    .with_name(t.name)
                    .with_partitions(partitions)
            })
            .collect();
        Ok(ResponseKind::OffsetDelete(
            OffsetDeleteResponse::default().with_topics(topics),
        ))
    })
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::offset_delete_request::{
        OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
    };
    use kafka_protocol::messages::{GroupId, OffsetDeleteRequest, TopicName};
    use kafka_protocol::protocol::StrBytes;
    use strom_coordinator::group::{CommitOffset, OffsetCommitRequest};

    use super::*;
    use crate::config::BrokerConfig;
    use crate::groups::{self, Unavailable};
    use crate::test_support;

    fn request(group: &str, topic: &str, partition: i32) -> RequestKind {
        RequestKind::OffsetDelete(
            OffsetDeleteRequest::default()
                .with_group_id(GroupId(StrBytes::from_string(group.to_owned())))
                .with_topics(vec![
                    OffsetDeleteRequestTopic::default()
                        .with_name(TopicName(StrBytes::from_string(topic.to_owned())))
                        .with_partitions(vec![
                            OffsetDeleteRequestPartition::default().with_partition_index(partition),
                        ]),
                ]),
        )
    }

    async fn delete(broker: &Arc<Broker>, group: &str) -> OffsetDeleteResponse {
        let header = RequestHeader::default().with_request_api_key(ApiKey::OffsetDelete as i16);
        match handle(broker.clone(), header, request(group, "t", 0)).await {
            Ok(ResponseKind::OffsetDelete(r)) => r,
            other => panic!("unexpected {other:?}"),
        }
    }

    #[tokio::test]
    async fn deletes_a_simple_consumers_offset() {
        let config = BrokerConfig {
            offsets_topic_num_partitions: 2,
            ..BrokerConfig::default()
        };
        let test = test_support::broker_with(config);
        let broker = test.broker.clone();
        test_support::create_topic(&broker, "t", 1, &[]);
        let tasks = groups::start(&broker).await;
        let commit = OffsetCommitRequest {
            group_id: "g".into(),
            member_id: String::new(),
            generation_id: -1,
            group_instance_id: None,
            retention_time_ms: None,
            offsets: vec![CommitOffset {
                topic: "t".into(),
                partition: 0,
                offset: 42,
                leader_epoch: -1,
                metadata: None,
            }],
        };
        let committed = loop {
            let request = commit.clone();
            let answer = broker
                .groups()
                .call("g", |reply| Command::CommitOffsets { request, reply })
                .await;
            match answer {
                Err(Unavailable::LoadInProgress) => tokio::task::yield_now().await,
                other => break other,
            }
        };
        assert!(matches!(committed, Ok(Ok(ref r)) if r[0].error.is_none()));

        let r = delete(&broker, "g").await;
        assert_eq!(r.error_code, 0);
        assert_eq!(r.topics[0].partitions[0].error_code, 0);
        let fetched = broker
            .groups()
            .call("g", |reply| Command::FetchOffsets {
                group_id: "g".into(),
                partitions: Some(vec![TopicPartition::new("t", 0)]),
                require_stable: false,
                reply,
            })
            .await
            .expect("fetch");
        assert_eq!(fetched[0].offset, -1);

        let r = delete(&broker, "unknown").await;
        assert_eq!(r.error_code, 69); // GROUP_ID_NOT_FOUND

        // A topic the broker does not have fails that partition alone.
        let header = RequestHeader::default().with_request_api_key(ApiKey::OffsetDelete as i16);
        let Ok(ResponseKind::OffsetDelete(r)) =
            handle(broker.clone(), header, request("g", "nope", 0)).await
        else {
            panic!("unexpected response");
        };
        assert_eq!(r.error_code, 0);
        assert_eq!(
            r.topics[0].partitions[0].error_code,
            ResponseError::UnknownTopicOrPartition.code()
        );

        broker.begin_shutdown();
        for t in tasks {
            t.await.expect("task");
        }
    }
}
