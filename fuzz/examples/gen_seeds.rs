//! Writes the seed corpora under `fuzz/corpus/<target>/`: a few well-formed inputs per
//! target, encoded with the same `kafka-protocol` codec the broker decodes with, so the
//! fuzzers start from valid frames, bodies and batches instead of finding them by
//! chance. Regenerate with (from `fuzz/`):
//!
//! ```sh
//! cargo run --example gen_seeds
//! ```
//!
//! Each file is named after what it holds; rerunning overwrites them with the same bytes.

use std::fs;
use std::path::{Path, PathBuf};

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Encodable, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use strom_fuzz::selector_of;
use strom_storage::batch::{BASE_SEQUENCE_OFFSET, CRC_OFFSET, PRODUCER_EPOCH_OFFSET};
use strom_storage::testing::encode_batch;

fn name(s: &'static str) -> StrBytes {
    StrBytes::from_static_str(s)
}

fn topic(s: &'static str) -> TopicName {
    TopicName(name(s))
}

/// A real batch of three records (keys, values, a header), encoded by kafka-protocol.
fn batch(compression: Compression, producer_id: i64, sequence: i32) -> Bytes {
    let records: Vec<Record> = (0..3)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id,
            producer_epoch: if producer_id < 0 { -1 } else { 0 },
            timestamp_type: TimestampType::Creation,
            offset: i,
            // Offset minus sequence constant, or kafka-protocol starts a new batch.
            sequence: sequence + i as i32,
            timestamp: 1_700_000_000_000 + i,
            key: Some(Bytes::from(format!("k{i}"))),
            value: Some(Bytes::from(format!("value {i} value {i} value {i}"))),
            headers: [(name("h"), Some(Bytes::from_static(b"v")))]
                .into_iter()
                .collect(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .expect("encode batch");
    buf.freeze()
}

fn produce(records: Bytes) -> ProduceRequest {
    use produce_request::{PartitionProduceData, TopicProduceData};
    ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(1000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(topic("t"))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(records)),
                ]),
        ])
}

/// One request of each API the broker serves, with a little content where it matters.
fn requests() -> Vec<(ApiKey, RequestKind)> {
    use create_topics_request::CreatableTopic;
    use fetch_request::{FetchPartition, FetchTopic};
    use join_group_request::JoinGroupRequestProtocol;
    use list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
    use metadata_request::MetadataRequestTopic;
    use offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};

    vec![
        (
            ApiKey::Produce,
            produce(batch(Compression::None, -1, -1)).into(),
        ),
        (
            ApiKey::Fetch,
            FetchRequest::default()
                .with_max_wait_ms(100)
                .with_max_bytes(1 << 20)
                .with_topics(vec![
                    FetchTopic::default()
                        .with_topic(topic("t"))
                        .with_partitions(vec![
                            FetchPartition::default().with_partition_max_bytes(1 << 20),
                        ]),
                ])
                .into(),
        ),
        (
            ApiKey::ListOffsets,
            ListOffsetsRequest::default()
                .with_topics(vec![
                    ListOffsetsTopic::default()
                        .with_name(topic("t"))
                        .with_partitions(vec![
                            ListOffsetsPartition::default().with_timestamp(1_700_000_000_000),
                        ]),
                ])
                .into(),
        ),
        (
            ApiKey::Metadata,
            MetadataRequest::default()
                .with_topics(Some(vec![
                    MetadataRequestTopic::default().with_name(Some(topic("t"))),
                ]))
                .into(),
        ),
        (
            ApiKey::OffsetCommit,
            OffsetCommitRequest::default()
                .with_group_id(GroupId(name("g")))
                .with_topics(vec![
                    OffsetCommitRequestTopic::default()
                        .with_name(topic("t"))
                        .with_partitions(vec![
                            OffsetCommitRequestPartition::default().with_committed_offset(5),
                        ]),
                ])
                .into(),
        ),
        (ApiKey::OffsetFetch, OffsetFetchRequest::default().into()),
        (
            ApiKey::FindCoordinator,
            FindCoordinatorRequest::default().with_key(name("g")).into(),
        ),
        (
            ApiKey::JoinGroup,
            JoinGroupRequest::default()
                .with_group_id(GroupId(name("g")))
                .with_session_timeout_ms(10_000)
                .with_protocol_type(name("consumer"))
                .with_protocols(
                    [JoinGroupRequestProtocol::default()
                        .with_name(name("range"))
                        .with_metadata(Bytes::from_static(b"\0\x01\0\0\0\x01\0\x01t"))]
                    .into_iter()
                    .collect(),
                )
                .into(),
        ),
        (ApiKey::Heartbeat, HeartbeatRequest::default().into()),
        (ApiKey::LeaveGroup, LeaveGroupRequest::default().into()),
        (ApiKey::SyncGroup, SyncGroupRequest::default().into()),
        (
            ApiKey::DescribeGroups,
            DescribeGroupsRequest::default().into(),
        ),
        (ApiKey::ListGroups, ListGroupsRequest::default().into()),
        (
            ApiKey::ApiVersions,
            ApiVersionsRequest::default()
                .with_client_software_name(name("strom-fuzz"))
                .with_client_software_version(name("0.0.0"))
                .into(),
        ),
        (
            ApiKey::CreateTopics,
            CreateTopicsRequest::default()
                .with_topics(
                    [CreatableTopic::default()
                        .with_name(topic("t"))
                        .with_num_partitions(3)
                        .with_replication_factor(1)]
                    .into_iter()
                    .collect(),
                )
                .into(),
        ),
        (ApiKey::DeleteTopics, DeleteTopicsRequest::default().into()),
        (
            ApiKey::DeleteRecords,
            DeleteRecordsRequest::default().into(),
        ),
        (
            ApiKey::InitProducerId,
            InitProducerIdRequest::default().into(),
        ),
        (
            ApiKey::OffsetForLeaderEpoch,
            OffsetForLeaderEpochRequest::default().into(),
        ),
        (
            ApiKey::DescribeConfigs,
            DescribeConfigsRequest::default().into(),
        ),
        (ApiKey::AlterConfigs, AlterConfigsRequest::default().into()),
        (
            ApiKey::DescribeLogDirs,
            DescribeLogDirsRequest::default().into(),
        ),
        (
            ApiKey::CreatePartitions,
            CreatePartitionsRequest::default().into(),
        ),
        (ApiKey::DeleteGroups, DeleteGroupsRequest::default().into()),
        (
            ApiKey::IncrementalAlterConfigs,
            IncrementalAlterConfigsRequest::default().into(),
        ),
        (ApiKey::OffsetDelete, OffsetDeleteRequest::default().into()),
        (
            ApiKey::DescribeCluster,
            DescribeClusterRequest::default().into(),
        ),
    ]
}

fn body(request: &RequestKind, version: i16) -> Option<Bytes> {
    let mut buf = BytesMut::new();
    request.encode(&mut buf, version).ok()?;
    Some(buf.freeze())
}

/// A whole request frame: size, header (the version the API needs), body.
fn frame(api: ApiKey, version: i16, body: &[u8]) -> Vec<u8> {
    let header = RequestHeader::default()
        .with_request_api_key(api as i16)
        .with_request_api_version(version)
        .with_correlation_id(1)
        .with_client_id(Some(name("seed")));
    let mut buf = BytesMut::new();
    header
        .encode(&mut buf, api.request_header_version(version))
        .expect("header");
    buf.put_slice(body);
    let mut out = (buf.len() as i32).to_be_bytes().to_vec();
    out.extend_from_slice(&buf);
    out
}

fn write(dir: &Path, file: &str, bytes: &[u8]) {
    fs::write(dir.join(file), bytes).expect("write seed");
}

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let dirs = ["request_frame", "request_body", "record_batch"].map(|t| {
        let d = root.join(t);
        fs::create_dir_all(&d).expect("corpus dir");
        d
    });
    let [frames, bodies, batches] = &dirs;

    // request_body: each served API at its lowest and highest served version.
    for (api, request) in requests() {
        let h = strom_server::handlers::find(api).expect("served");
        for version in [h.min_version, h.max_version] {
            let (Some(selector), Some(body)) = (selector_of(api, version), body(&request, version))
            else {
                continue;
            };
            let mut seed = selector.to_vec();
            seed.extend_from_slice(&body);
            write(bodies, &format!("{api:?}-v{version}"), &seed);
        }
    }
    // Produce v2: a v3 body without the leading (null) transactional id.
    let v3 = body(&produce(batch(Compression::None, -1, -1)).into(), 3).expect("v3");
    let mut seed = selector_of(ApiKey::Produce, 2).expect("case").to_vec();
    seed.extend_from_slice(&v3[2..]);
    write(bodies, "Produce-v2", &seed);

    // request_frame: control byte 0 (whole reads, default limits), then frames.
    let mut all = vec![0u8];
    for (api, request) in requests() {
        let h = strom_server::handlers::find(api).expect("served");
        // The highest version this request encodes at (a topic name does not, once
        // topics go by id).
        let Some((version, body)) = (h.min_version..=h.max_version)
            .rev()
            .find_map(|v| Some((v, body(&request, v)?)))
        else {
            continue;
        };
        let f = frame(api, version, &body);
        if matches!(
            api,
            ApiKey::ApiVersions | ApiKey::Produce | ApiKey::Fetch | ApiKey::Metadata
        ) {
            let mut seed = vec![0u8];
            seed.extend_from_slice(&f);
            write(frames, &format!("{api:?}-v{version}"), &seed);
        }
        all.extend_from_slice(&f);
    }
    write(frames, "every-api", &all);
    // One byte per read, and an ApiVersions version the broker answers without a handler.
    let mut seed = vec![1u8];
    seed.extend(frame(ApiKey::ApiVersions, 99, &[]));
    write(frames, "ApiVersions-v99-trickle", &seed);
    let mut seed = vec![0x10u8];
    seed.extend(frame(ApiKey::Produce, 2, &v3[2..]));
    write(frames, "Produce-v2-small-limits", &seed);

    // record_batch: control byte, then records.
    for (c, label) in [
        (Compression::None, "none"),
        (Compression::Gzip, "gzip"),
        (Compression::Snappy, "snappy"),
        (Compression::Lz4, "lz4"),
        (Compression::Zstd, "zstd"),
    ] {
        let mut seed = vec![0x02u8];
        seed.extend_from_slice(&batch(c, -1, -1));
        write(batches, &format!("{label}-append"), &seed);
    }
    // Two idempotent batches in sequence, appended twice (the second time a duplicate).
    let mut seed = vec![0x12u8];
    seed.extend_from_slice(&batch(Compression::None, 7, 0));
    seed.extend_from_slice(&batch(Compression::None, 7, 3));
    write(batches, "idempotent-twice", &seed);
    // A synthetic batch (opaque records), and one whose CRC and sequence need fixing.
    let mut seed = vec![0x00u8];
    seed.extend(encode_batch(2, 10, 20, -1, b"opaque"));
    write(batches, "synthetic", &seed);
    let mut raw = encode_batch(1, 10, 10, 42, b"x");
    raw[PRODUCER_EPOCH_OFFSET..PRODUCER_EPOCH_OFFSET + 2].copy_from_slice(&0i16.to_be_bytes());
    raw[BASE_SEQUENCE_OFFSET..BASE_SEQUENCE_OFFSET + 4].copy_from_slice(&5i32.to_be_bytes());
    raw[CRC_OFFSET] ^= 0xff;
    let mut seed = vec![0x03u8];
    seed.extend(raw);
    write(batches, "fix-crc-out-of-order", &seed);

    for d in &dirs {
        println!(
            "{}: {} seeds",
            d.display(),
            fs::read_dir(d).expect("dir").count()
        );
    }
}
