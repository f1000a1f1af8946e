//! OffsetFetch (API 9), v1–v9: a group's committed offsets.
//!
//! v1–v7 ask about one group (`topics` null from v2: every partition with an offset);
//! v8+ about a batch of groups, answered one entry each. Committed leader epochs exist
//! from v5, a top-level error from v2. `require_stable` (v7+) is accepted: without
//! transactions no offset is ever pending. An unknown partition is offset -1.

use std::sync::Arc;

use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    ApiKey, OffsetFetchRequest, OffsetFetchResponse, RequestHeader, RequestKind, ResponseKind,
    TopicName,
};
use kafka_protocol::protocol::StrBytes;
use strom_coordinator::group::{FetchedOffset, TopicPartition};

use crate::broker::Broker;
use crate::error::ServerError;
use crate::groups::Command;
use crate::handlers::HandlerFuture;
use crate::handlers::errors;

pub fn handle(broker: Arc<Broker>, header: RequestHeader, request: RequestKind) -> HandlerFuture {
    Box::pin(async move {
        let RequestKind::OffsetFetch(request) = request else {
            return Err(ServerError::HandlerMismatch {
                expected: ApiKey::OffsetFetch,
            });
        };
        let version = header.request_api_version;
        Ok(ResponseKind::OffsetFetch(
            fetch(&broker, version, request).await,
        ))
    })
}

/// One group's answer: its offsets, or the error code for the whole group.
async fn fetch_group(
    broker: &Broker,
    group_id: String,
    partitions: Option<Vec<TopicPartition>>,
    require_stable: bool,
) -> Result<Vec<FetchedOffset>, i16> {
    let gid = group_id.clone();
    broker
        .groups()
        .call(&gid, |reply| Command::FetchOffsets {
            group_id,
            partitions,
            require_stable,
            reply,
        })
        .await
        .map_err(|u| errors::unavailable(u).code())
}

/// Consecutive offsets of the same topic, grouped.
fn by_topic(fetched: Vec<FetchedOffset>) -> Vec<(String, Vec<FetchedOffset>)> {
    let mut out: Vec<(String, Vec<FetchedOffset>)> = Vec::new();
    for f in fetched {
        match out.last_mut() {
            Some((topic, list)) if *topic == f.topic => list.push(f),
            _ => out.push((f.topic.clone(), vec![f])),
        }
    }
    out
}

async fn fetch(broker: &Broker, version: i16, r: OffsetFetchRequest) -> OffsetFetchResponse {
    let require_stable = version >= 7 && r.require_stable;
    if version >= 8 {
        let mut groups = Vec::with_capacity(r.groups.len());
        for g in r.groups {
            let partitions = g.topics.map(|topics| {
                topics
                    .into_iter()
                    .flat_map(|t| {
                        let name = t.name.0.to_string();
                        t.partition_indexes
                            .into_iter()
                            .map(move |p| TopicPartition::new(name.clone(), p))
                    })
                    .collect()
            });
            let answer =
                fetch_group(broker, g.group_id.0.to_string(), partitions, require_stable).await;
            let entry = OffsetFetchResponseGroup::default().with_group_id(g.group_id);
            groups.push(match answer {
                Ok(fetched) => entry.with_topics(
                    by_topic(fetched)
                        .into_iter()
                        .map(|(topic, list)| {
                            OffsetFetchResponseTopics::default()
                                .with_name(TopicName(StrBytes::from_string(topic)))
                                .with_partitions(
                                    list.into_iter()
                                        .map(|f| {
                                            OffsetFetchResponsePartitions::default()
                                                .with_partition_index(f.partition)
                                                .with_committed_offset(f.offset)
                                                .with_committed_leader_epoch(f.leader_epoch)
                                                .with_metadata(Some(StrBytes::from_string(
                                                    f.metadata,
                                                )))
                                        })
                                        .collect(),
                                )
                        })
                        .collect(),
                ),
                Err(code) => entry.with_error_code(code),
            });
        }
        return OffsetFetchResponse::default().with_groups(groups);
    }
    let asked: Option<Vec<TopicPartition>> = r.topics.as_ref().map(|topics| {
        topics
            .iter()
            .flat_map(|t| {
                t.partition_indexes
                    .iter()
                    .map(|&p| TopicPartition::new(t.name.0.to_string(), p))
            })
            .collect()
    });
    let answer = fetch_group(
        broker,
        r.group_id.0.to_string(),
        asked.clone(),
        require_stable,
    )
    .await;
    let (fetched, error) = match answer {
        Ok(fetched) => (fetched, 0),
        // Every partition asked for carries the error (v1 has no top-level one).
        Err(code) => (
            asked
                .unwrap_or_default()
                .into_iter()
                .map(|tp| FetchedOffset {
                    topic: tp.topic,
                    partition: tp.partition,
                    offset: -1,
                    leader_epoch: -1,
                    metadata: String::new(),
                })
                .collect(),
            code,
        ),
    };
    let topics = by_topic(fetched)
        .into_iter()
        .map(|(topic, list)| {
            let partitions = list
                .into_iter()
                .map(|f| {
                    let p = OffsetFetchResponsePartition::default()
                        .with_partition_index(f.partition)
                        .with_committed_offset(f.offset)
                        .with_metadata(Some(StrBytes::from_string(f.metadata)))
                        .with_error_code(error);
                    if version >= 5 {
                        p.with_committed_leader_epoch(f.leader_epoch)
                    } else {
                        p
                    }
                })
                .collect();
            OffsetFetchResponseTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic)))
                .with_partitions(partitions)
        })
        .collect();
    let response = OffsetFetchResponse::default().with_topics(topics);
    if version >= 2 {
        response.with_error_code(error)
    } else {
        response
    }
}
