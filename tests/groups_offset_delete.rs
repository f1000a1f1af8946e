//! OffsetDelete against a real `strom serve`, over a real socket. No client installed
//! here sends OffsetDelete (confluent-kafka's Python AdminClient has no call for it and
//! Debian's sarama predates it), so the requests are encoded with `kafka-protocol`.
//!
//! A simple consumer (generation -1) commits an offset, OffsetDelete removes it, and
//! OffsetFetch then reports none; an unknown group and an unknown topic get Kafka's
//! errors; ApiVersions advertises the API.

#[path = "support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use kafka_protocol::messages::api_versions_request::ApiVersionsRequest;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, CreateTopicsRequest, CreateTopicsResponse, GroupId,
    OffsetCommitRequest, OffsetCommitResponse, OffsetDeleteRequest, OffsetDeleteResponse,
    OffsetFetchRequest, OffsetFetchResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use support::Broker;
use support::wire::Conn;

const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
const GROUP_ID_NOT_FOUND: i16 = 69;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;

fn name(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

fn commit(conn: &mut Conn, offset: i64) -> OffsetCommitResponse {
    let request = OffsetCommitRequest::default()
        .with_group_id(GroupId(name("g")))
        .with_generation_id_or_member_epoch(-1)
        .with_member_id(name(""))
        .with_topics(vec![
            OffsetCommitRequestTopic::default()
                .with_name(TopicName(name("t")))
                .with_partitions(vec![
                    OffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(offset),
                ]),
        ]);
    conn.call(ApiKey::OffsetCommit, 8, &request)
}

fn fetch(conn: &mut Conn) -> i64 {
    let request = OffsetFetchRequest::default()
        .with_group_id(GroupId(name("g")))
        .with_topics(Some(vec![
            OffsetFetchRequestTopic::default()
                .with_name(TopicName(name("t")))
                .with_partition_indexes(vec![0]),
        ]));
    let response: OffsetFetchResponse = conn.call(ApiKey::OffsetFetch, 7, &request);
    assert_eq!(response.error_code, 0);
    response.topics[0].partitions[0].committed_offset
}

fn delete(conn: &mut Conn, group: &str, topic: &str) -> OffsetDeleteResponse {
    let request = OffsetDeleteRequest::default()
        .with_group_id(GroupId(name(group)))
        .with_topics(vec![
            OffsetDeleteRequestTopic::default()
                .with_name(TopicName(name(topic)))
                .with_partitions(vec![
                    OffsetDeleteRequestPartition::default().with_partition_index(0),
                ]),
        ]);
    conn.call(ApiKey::OffsetDelete, 0, &request)
}

#[test]
fn offset_delete_removes_a_committed_offset() {
    let broker = Broker::builder()
        .arg("-o")
        .arg("offsets.topic.num.partitions=2")
        .start();
    let mut conn = Conn::open(broker.addr());

    let versions: ApiVersionsResponse = conn.call(
        ApiKey::ApiVersions,
        3,
        &ApiVersionsRequest::default()
            .with_client_software_name(name("strom-test"))
            .with_client_software_version(name("1")),
    );
    assert!(
        versions
            .api_keys
            .iter()
            .any(|k| k.api_key == ApiKey::OffsetDelete as i16 && k.max_version == 0),
        "OffsetDelete v0 advertised"
    );

    let created: CreateTopicsResponse = conn.call(
        ApiKey::CreateTopics,
        5,
        &CreateTopicsRequest::default().with_topics(vec![
            kafka_protocol::messages::create_topics_request::CreatableTopic::default()
                .with_name(TopicName(name("t")))
                .with_num_partitions(1)
                .with_replication_factor(-1),
        ]),
    );
    assert_eq!(created.topics[0].error_code, 0);

    // The coordinator loads __consumer_offsets first; retry while it says so.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = commit(&mut conn, 42);
        let code = r.topics[0].partitions[0].error_code;
        if code != COORDINATOR_LOAD_IN_PROGRESS {
            assert_eq!(code, 0, "commit accepted");
            break;
        }
        assert!(Instant::now() < deadline, "coordinator never loaded");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(fetch(&mut conn), 42);

    let r = delete(&mut conn, "g", "t");
    assert_eq!(r.error_code, 0);
    assert_eq!(r.topics[0].partitions[0].error_code, 0);
    assert_eq!(fetch(&mut conn), -1, "the offset is gone");

    let r = delete(&mut conn, "g", "nope");
    assert_eq!(
        r.topics[0].partitions[0].error_code,
        UNKNOWN_TOPIC_OR_PARTITION
    );
    let r = delete(&mut conn, "no-such-group", "t");
    assert_eq!(r.error_code, GROUP_ID_NOT_FOUND);
}
