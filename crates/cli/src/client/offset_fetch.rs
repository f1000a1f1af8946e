//! OffsetFetch in both of its layouts: one group at the top level (v1–v7) or a list of
//! groups (v8+). Callers build one request and read one list of rows whatever the
//! version; retries and error wording stay theirs.

use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::{GroupId, OffsetFetchRequest, OffsetFetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

/// One partition's answer: topic, partition, committed offset (-1: none), error code.
pub type Row = (String, i32, i64, i16);

/// OffsetFetch of `group` at `version` for `partitions` grouped by topic, or of every
/// partition with an offset when `None` (v2+).
pub fn request(
    group: &str,
    version: i16,
    partitions: Option<&[(String, Vec<i32>)]>,
) -> OffsetFetchRequest {
    let group_id = GroupId(StrBytes::from_string(group.to_string()));
    let name = |t: &str| TopicName(StrBytes::from_string(t.to_string()));
    if version >= 8 {
        let topics = partitions.map(|ps| {
            ps.iter()
                .map(|(t, p)| {
                    OffsetFetchRequestTopics::default()
                        .with_name(name(t))
                        .with_partition_indexes(p.clone())
                })
                .collect()
        });
        OffsetFetchRequest::default().with_groups(vec![
            OffsetFetchRequestGroup::default()
                .with_group_id(group_id)
                .with_topics(topics),
        ])
    } else {
        let topics = partitions.map(|ps| {
            ps.iter()
                .map(|(t, p)| {
                    OffsetFetchRequestTopic::default()
                        .with_name(name(t))
                        .with_partition_indexes(p.clone())
                })
                .collect()
        });
        OffsetFetchRequest::default()
            .with_group_id(group_id)
            .with_topics(topics)
    }
}

/// The group-level error code of a response, from either layout.
pub fn group_error(response: &OffsetFetchResponse) -> i16 {
    match response.groups.first() {
        Some(g) => g.error_code,
        None => response.error_code,
    }
}

/// The group-level error code and every partition row of a response.
pub fn rows(response: OffsetFetchResponse) -> (i16, Vec<Row>) {
    let mut rows = Vec::new();
    match response.groups.into_iter().next() {
        Some(group) => {
            for t in group.topics {
                let topic = t.name.0.to_string();
                for p in t.partitions {
                    rows.push((
                        topic.clone(),
                        p.partition_index,
                        p.committed_offset,
                        p.error_code,
                    ));
                }
            }
            (group.error_code, rows)
        }
        None => {
            for t in response.topics {
                let topic = t.name.0.to_string();
                for p in t.partitions {
                    rows.push((
                        topic.clone(),
                        p.partition_index,
                        p.committed_offset,
                        p.error_code,
                    ));
                }
            }
            (response.error_code, rows)
        }
    }
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::offset_fetch_response::{
        OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
        OffsetFetchResponseTopic, OffsetFetchResponseTopics,
    };

    use super::*;

    #[test]
    fn both_layouts_give_the_same_rows() {
        let old = OffsetFetchResponse::default().with_topics(vec![
            OffsetFetchResponseTopic::default()
                .with_name(TopicName(StrBytes::from_static_str("t")))
                .with_partitions(vec![
                    OffsetFetchResponsePartition::default()
                        .with_partition_index(1)
                        .with_committed_offset(7),
                ]),
        ]);
        let new = OffsetFetchResponse::default().with_groups(vec![
            OffsetFetchResponseGroup::default()
                .with_error_code(0)
                .with_topics(vec![
                    OffsetFetchResponseTopics::default()
                        .with_name(TopicName(StrBytes::from_static_str("t")))
                        .with_partitions(vec![
                            OffsetFetchResponsePartitions::default()
                                .with_partition_index(1)
                                .with_committed_offset(7),
                        ]),
                ]),
        ]);
        let want = (0, vec![("t".to_string(), 1, 7, 0)]);
        assert_eq!(group_error(&old), 0);
        assert_eq!(rows(old), want);
        assert_eq!(rows(new), want);
        let asked = request("g", 8, None);
        assert_eq!(asked.groups.len(), 1);
        assert!(asked.groups[0].topics.is_none());
        let asked = request("g", 7, Some(&[("t".to_string(), vec![0, 2])]));
        assert_eq!(asked.group_id.0.as_str(), "g");
        assert_eq!(asked.topics.as_ref().map(Vec::len), Some(1));
    }
}
