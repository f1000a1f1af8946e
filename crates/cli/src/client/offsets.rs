//! ListOffsets: log start, high watermark and offset-by-time lookups for many
//! partitions at once, one request per partition leader.

use std::collections::{BTreeMap, HashMap};

use anyhow::Context;
use kafka_protocol::messages::{
    BrokerId, ListOffsetsRequest, TopicName,
    list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic},
};
use kafka_protocol::protocol::StrBytes;

use super::cluster::Cluster;
use super::error::KafkaError;

/// Which offset ListOffsets should find.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetSpec {
    /// The log start offset.
    Earliest,
    /// The high watermark (the next offset to be consumed at the end of the log).
    Latest,
    /// The first offset whose timestamp is at or after this many ms since the epoch;
    /// the high watermark when there is none.
    Timestamp(i64),
}

impl OffsetSpec {
    fn wire_timestamp(self) -> i64 {
        match self {
            OffsetSpec::Earliest => -2,
            OffsetSpec::Latest => -1,
            OffsetSpec::Timestamp(ms) => ms,
        }
    }
}

/// What ListOffsets answered for one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListedOffset {
    pub offset: i64,
    /// The record's timestamp for a timestamp lookup; -1 otherwise.
    pub timestamp: i64,
}

/// Looks up `spec` for every `(topic, partition)`. `leaders` maps each partition to its
/// leader's node id (from [`Cluster::topics`]). A partition's error fails the call.
pub async fn list_offsets(
    cluster: &mut Cluster,
    partitions: &[(String, i32)],
    leaders: &HashMap<(String, i32), i32>,
    spec: OffsetSpec,
) -> anyhow::Result<BTreeMap<(String, i32), ListedOffset>> {
    // leader → topic → partitions
    let mut by_leader: BTreeMap<i32, BTreeMap<&str, Vec<i32>>> = BTreeMap::new();
    for (topic, partition) in partitions {
        let leader = leaders
            .get(&(topic.clone(), *partition))
            .copied()
            .unwrap_or(-1);
        if leader < 0 {
            anyhow::bail!("partition {topic}-{partition} has no leader");
        }
        by_leader
            .entry(leader)
            .or_default()
            .entry(topic.as_str())
            .or_default()
            .push(*partition);
    }
    let mut out = BTreeMap::new();
    for (leader, topics) in by_leader {
        let request = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(
                topics
                    .iter()
                    .map(|(topic, parts)| {
                        ListOffsetsTopic::default()
                            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                            .with_partitions(
                                parts
                                    .iter()
                                    .map(|&p| {
                                        ListOffsetsPartition::default()
                                            .with_partition_index(p)
                                            .with_current_leader_epoch(-1)
                                            .with_timestamp(spec.wire_timestamp())
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            );
        let conn = cluster.broker(leader).await?;
        let response = conn.call(&request).await?;
        for topic in response.topics {
            let name = topic.name.0.to_string();
            for p in topic.partitions {
                KafkaError::check(p.error_code, None)
                    .with_context(|| format!("ListOffsets for {name}-{}", p.partition_index))?;
                out.insert(
                    (name.clone(), p.partition_index),
                    ListedOffset {
                        offset: p.offset,
                        timestamp: p.timestamp,
                    },
                );
            }
        }
    }
    Ok(out)
}
