//! The "consumer" embedded protocol of the classic group protocol: the subscription a
//! member sends in JoinGroup metadata and the assignment the leader sends in SyncGroup,
//! each a 2-byte version followed by the message at that version.

use anyhow::{Context, bail};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ConsumerProtocolAssignment, ConsumerProtocolSubscription, TopicName,
    consumer_protocol_assignment::TopicPartition as AssignedTopic,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

/// Protocol type of consumer groups in JoinGroup.
pub const PROTOCOL_TYPE: &str = "consumer";

/// Version written: v1 is what every broker and client reads.
const WRITE_VERSION: i16 = 1;
/// Newest version this client can read.
const MAX_READ_VERSION: i16 = 3;

/// Encodes a subscription to `topics`.
pub fn encode_subscription(topics: &[String]) -> anyhow::Result<Bytes> {
    let subscription = ConsumerProtocolSubscription::default().with_topics(
        topics
            .iter()
            .map(|t| StrBytes::from_string(t.clone()))
            .collect(),
    );
    let mut buf = BytesMut::new();
    buf.put_i16(WRITE_VERSION);
    subscription
        .encode(&mut buf, WRITE_VERSION)
        .context("cannot encode consumer subscription")?;
    Ok(buf.freeze())
}

/// Decodes a member's subscription: the topics it wants.
pub fn decode_subscription(bytes: &[u8]) -> anyhow::Result<Vec<String>> {
    let (version, mut body) = split_version(bytes)?;
    let subscription = ConsumerProtocolSubscription::decode(&mut body, version)
        .context("bad consumer subscription")?;
    Ok(subscription.topics.iter().map(|t| t.to_string()).collect())
}

/// Encodes an assignment of `(topic, partitions)`.
pub fn encode_assignment(assignment: &[(String, Vec<i32>)]) -> anyhow::Result<Bytes> {
    let message = ConsumerProtocolAssignment::default().with_assigned_partitions(
        assignment
            .iter()
            .map(|(topic, partitions)| {
                AssignedTopic::default()
                    .with_topic(TopicName(StrBytes::from_string(topic.clone())))
                    .with_partitions(partitions.clone())
            })
            .collect(),
    );
    let mut buf = BytesMut::new();
    buf.put_i16(WRITE_VERSION);
    message
        .encode(&mut buf, WRITE_VERSION)
        .context("cannot encode consumer assignment")?;
    Ok(buf.freeze())
}

/// Decodes an assignment into `(topic, partitions)`; an empty byte string (a member
/// with nothing assigned, as some clients send) is an empty assignment.
pub fn decode_assignment(bytes: &[u8]) -> anyhow::Result<Vec<(String, Vec<i32>)>> {
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    let (version, mut body) = split_version(bytes)?;
    let assignment = ConsumerProtocolAssignment::decode(&mut body, version)
        .context("bad consumer assignment")?;
    Ok(assignment
        .assigned_partitions
        .into_iter()
        .map(|t| (t.topic.0.to_string(), t.partitions))
        .collect())
}

fn split_version(bytes: &[u8]) -> anyhow::Result<(i16, Bytes)> {
    let mut body = Bytes::copy_from_slice(bytes);
    if body.remaining() < 2 {
        bail!("consumer protocol data of {} bytes", bytes.len());
    }
    // Newer versions only add fields, so read them as the newest version we know.
    let version = body.get_i16().min(MAX_READ_VERSION);
    if version < 0 {
        bail!("consumer protocol version {version}");
    }
    Ok((version, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscription_and_assignment_round_trip() {
        let topics = vec!["a".to_string(), "b".to_string()];
        let bytes = encode_subscription(&topics).unwrap();
        assert_eq!(&bytes[..2], &[0, 1]);
        assert_eq!(decode_subscription(&bytes).unwrap(), topics);

        let assignment = vec![("a".to_string(), vec![0, 2]), ("b".to_string(), vec![1])];
        let bytes = encode_assignment(&assignment).unwrap();
        assert_eq!(decode_assignment(&bytes).unwrap(), assignment);
        assert!(decode_assignment(&[]).unwrap().is_empty());
        assert!(decode_assignment(&[0]).is_err());
    }
}
