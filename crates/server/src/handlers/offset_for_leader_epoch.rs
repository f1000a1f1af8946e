//! OffsetForLeaderEpoch (API 23): the end offset of a leader epoch, which consumers use
//! to detect log truncation after a leader change (KIP-320).
//!
//! A partition on this single broker has had one leader epoch (0) since it was
//! created, so epoch 0 ends at the log end offset, and any other epoch is unknown
//! (UNDEFINED_EPOCH and UNDEFINED_EPOCH_OFFSET, as Kafka answers for epochs it has no
//! record of). Replication will bring a leader-epoch cache.

use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{
    ApiKey, OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse, RequestHeader, RequestKind,
    ResponseKind,
};

use crate::broker::Broker;
use crate::error::ServerError;
use crate::handlers::HandlerFuture;
use crate::handlers::errors;

pub fn handle(broker: Arc<Broker>, _header: RequestHeader, request: RequestKind) -> HandlerFuture {
    Box::pin(async move {
        let RequestKind::OffsetForLeaderEpoch(request) = request else {
            return Err(ServerError::HandlerMismatch {
                expected: ApiKey::OffsetForLeaderEpoch,
            });
        };
        Ok(ResponseKind::OffsetForLeaderEpoch(answer(
            &broker, &request,
        )))
    })
}

fn answer(broker: &Broker, request: &OffsetForLeaderEpochRequest) -> OffsetForLeaderEpochResponse {
    let coordinator = broker.coordinator();
    let topics = request
        .topics
        .iter()
        .map(|t| {
            let topic = coordinator.topic(&t.topic);
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let undefined = EpochEndOffset::default()
                        .with_partition(p.partition)
                        .with_leader_epoch(-1)
                        .with_end_offset(-1);
                    let Some(partition) = topic.as_ref().and_then(|t| t.partition(p.partition))
                    else {
                        return undefined
                            .with_error_code(ResponseError::UnknownTopicOrPartition.code());
                    };
                    let epoch = partition.leader_epoch();
                    if let Some(error) = errors::leader_epoch_error(p.current_leader_epoch, epoch) {
                        return undefined.with_error_code(error.code());
                    }
                    if p.leader_epoch != epoch {
                        return undefined;
                    }
                    match partition.log_end_offset() {
                        Ok(end) => undefined
                            .with_leader_epoch(epoch)
                            .with_end_offset(end as i64),
                        Err(e) => undefined.with_error_code(errors::response_error(&e).code()),
                    }
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(t.topic.clone())
                .with_partitions(partitions)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use kafka_protocol::messages::TopicName;
    use kafka_protocol::messages::offset_for_leader_epoch_request::{
        OffsetForLeaderPartition, OffsetForLeaderTopic,
    };
    use kafka_protocol::protocol::{Encodable, StrBytes};
    use strom_storage::testing::encode_batch;

    use super::*;
    use crate::test_support::{self, T0, create_topic};

    #[test]
    fn epoch_zero_ends_at_the_log_end() {
        let t = test_support::broker();
        let c = t.broker.coordinator();
        create_topic(&t.broker, "t", 1, &[]);
        let p = c.topic("t").and_then(|t| t.partition(0)).expect("p");
        p.append(Bytes::from(encode_batch(4, T0, T0, -1, b"x")), 1 << 20)
            .expect("append");
        let ask = |partition, current, epoch| {
            OffsetForLeaderPartition::default()
                .with_partition(partition)
                .with_current_leader_epoch(current)
                .with_leader_epoch(epoch)
        };
        let request = OffsetForLeaderEpochRequest::default().with_topics(vec![
            OffsetForLeaderTopic::default()
                .with_topic(TopicName(StrBytes::from_static_str("t")))
                .with_partitions(vec![
                    ask(0, 0, 0),
                    ask(0, -1, 3),
                    ask(0, 2, 0),
                    ask(9, -1, 0),
                ]),
        ]);
        let r = answer(&t.broker, &request);
        for v in 2..=4 {
            r.encode(&mut bytes::BytesMut::new(), v).expect("encodes");
        }
        let got: Vec<_> = r.topics[0]
            .partitions
            .iter()
            .map(|p| (p.error_code, p.leader_epoch, p.end_offset))
            .collect();
        assert_eq!(
            got,
            vec![
                (0, 0, 4),
                (0, -1, -1),
                (ResponseError::UnknownLeaderEpoch.code(), -1, -1),
                (ResponseError::UnknownTopicOrPartition.code(), -1, -1),
            ]
        );
    }
}
