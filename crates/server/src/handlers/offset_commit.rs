//! OffsetCommit (API 8), v2–v9: a group commits consumed positions.
//!
//! Partitions of topics (or partition indexes) this broker does not have fail alone
//! with UNKNOWN_TOPIC_OR_PARTITION; the rest go to the group's partition task, which
//! answers once the commit is durable. A group-level refusal fails every partition.
//! v2–v4 carry `retention_time_ms` (-1: the broker's retention); v7+ the group instance
//! id. Below v9 a commit with a generation to an unknown group is ILLEGAL_GENERATION
//! (GROUP_ID_NOT_FOUND came with v9).

use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{
    ApiKey, OffsetCommitRequest, OffsetCommitResponse, RequestHeader, RequestKind, ResponseKind,
};
use strom_coordinator::group::{self, CommitOffset, GroupError};

use crate::broker::Broker;
use crate::error::ServerError;
use crate::groups::Command;
use crate::handlers::HandlerFuture;
use crate::handlers::errors;

pub fn handle(broker: Arc<Broker>, header: RequestHeader, request: RequestKind) -> HandlerFuture {
    Box::pin(async move {
        let RequestKind::OffsetCommit(request) = request else {
            return Err(ServerError::HandlerMismatch {
                expected: ApiKey::OffsetCommit,
            });
        };
        let version = header.request_api_version;
        Ok(ResponseKind::OffsetCommit(
            commit(&broker, version, request).await,
        ))
    })
}

/// The error code of a group error in `version`.
fn code(version: i16, e: &GroupError) -> i16 {
    match e {
        GroupError::GroupIdNotFound if version < 9 => ResponseError::IllegalGeneration.code(),
        e => errors::group_error(e).code(),
    }
}

async fn commit(broker: &Broker, version: i16, r: OffsetCommitRequest) -> OffsetCommitResponse {
    let coordinator = broker.coordinator();
    // One code per partition in request order; `None` until the group answers.
    let mut codes: Vec<Vec<Option<i16>>> = Vec::with_capacity(r.topics.len());
    let mut offsets = Vec::new();
    for t in &r.topics {
        let topic = coordinator.topic(&t.name.0);
        let mut topic_codes = Vec::with_capacity(t.partitions.len());
        for p in &t.partitions {
            let known = topic
                .as_ref()
                .is_some_and(|topic| topic.partition(p.partition_index).is_some());
            if known {
                topic_codes.push(None);
                offsets.push(CommitOffset {
                    topic: t.name.0.to_string(),
                    partition: p.partition_index,
                    offset: p.committed_offset,
                    leader_epoch: if version >= 6 {
                        p.committed_leader_epoch
                    } else {
                        -1
                    },
                    metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
                });
            } else {
                topic_codes.push(Some(ResponseError::UnknownTopicOrPartition.code()));
            }
        }
        codes.push(topic_codes);
    }
    if !offsets.is_empty() {
        let request = group::OffsetCommitRequest {
            group_id: r.group_id.0.to_string(),
            member_id: r.member_id.to_string(),
            generation_id: r.generation_id_or_member_epoch,
            group_instance_id: r.group_instance_id.as_ref().map(|s| s.to_string()),
            retention_time_ms: (version <= 4 && r.retention_time_ms != -1)
                .then_some(r.retention_time_ms),
            offsets,
        };
        let answer = broker
            .groups()
            .call(&request.group_id.clone(), |reply| Command::CommitOffsets {
                request,
                reply,
            })
            .await;
        let mut results: Box<dyn Iterator<Item = i16>> = match answer {
            Ok(Ok(results)) => Box::new(
                results
                    .into_iter()
                    .map(move |p| p.error.as_ref().map_or(0, |e| code(version, e))),
            ),
            Ok(Err(e)) => Box::new(std::iter::repeat(code(version, &e))),
            Err(u) => Box::new(std::iter::repeat(errors::unavailable(u).code())),
        };
        for slot in codes.iter_mut().flatten().filter(|c| c.is_none()) {
            *slot = Some(results.next().unwrap_or(0));
        }
    }
    let topics = r
        .topics
        .into_iter()
        .zip(codes)
        .map(|(t, codes)| {
            let partitions = t
                .partitions
                .iter()
                .zip(codes)
                .map(|(p, c)| {
                    OffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(c.unwrap_or(0))
                })
                .collect();
            OffsetCommitResponseTopic::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}
