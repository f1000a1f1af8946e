//! The admin APIs against a real `strom serve`.
//!
//! `confluent_kafka_admin_client` runs `tests/clients/confluent_admin.py`:
//! confluent-kafka-python's `AdminClient` (librdkafka) creates topics (with
//! configs, validate_only, and refusals), describes topic and broker configs,
//! alters them with AlterConfigs and IncrementalAlterConfigs and describes
//! them again, adds partitions, produces and deletes records, describes the
//! cluster and deletes the topics, checking every answer.
//!
//! librdkafka implements `describe_cluster` with Metadata, not with the
//! DescribeCluster API, so `describe_cluster_over_the_wire` sends DescribeCluster
//! v0-v2 itself (encoded with kafka-protocol) to the same kind of broker.
//!
//! A missing confluent-kafka fails the test unless
//! `STROM_ALLOW_MISSING_CLIENTS=1` (never set in CI).

#[path = "support/mod.rs"]
mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, BrokerId, DescribeClusterRequest, DescribeClusterResponse, RequestHeader,
    ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use support::Broker;

/// The program's own overall deadline.
const PROGRAM_DEADLINE_SECS: &str = "150";
/// Hard limit enforced from here, above the program's own deadline.
const HARD_TIMEOUT: Duration = Duration::from_secs(180);

#[test]
fn confluent_kafka_admin_client() {
    if !support::require_client(
        "confluent-kafka (pip)",
        support::python_module("confluent_kafka"),
    ) {
        return;
    }
    let broker = Broker::start();
    let script = support::clients_dir().join("confluent_admin.py");
    let args = vec![
        script.to_string_lossy().into_owned(),
        broker.bootstrap(),
        "--timeout".to_string(),
        PROGRAM_DEADLINE_SECS.to_string(),
    ];
    let out = broker.run_client(support::python(), &args, &[], HARD_TIMEOUT);
    assert!(
        out.stdout.lines().any(|l| l.starts_with("ALL OK ")),
        "program exited 0 without its `ALL OK` line\n---- stdout ----\n{}\n---- stderr ----\n{}",
        out.stdout,
        out.stderr
    );
}

/// Sends one request and reads its response body (after the response header).
fn exchange(
    stream: &mut TcpStream,
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &impl Encodable,
) -> Bytes {
    let header = RequestHeader::default()
        .with_request_api_key(api as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("strom-admin-test")));
    let mut buf = BytesMut::new();
    header
        .encode(&mut buf, api.request_header_version(version))
        .expect("encode header");
    body.encode(&mut buf, version).expect("encode body");
    let mut frame = BytesMut::new();
    frame.put_i32(buf.len() as i32);
    frame.extend_from_slice(&buf);
    stream.write_all(&frame).expect("send request");

    let mut size = [0u8; 4];
    stream.read_exact(&mut size).expect("read response size");
    let mut response = vec![0u8; i32::from_be_bytes(size) as usize];
    stream.read_exact(&mut response).expect("read response");
    let mut response = Bytes::from(response);
    let header = ResponseHeader::decode(&mut response, api.response_header_version(version))
        .expect("response header");
    assert_eq!(header.correlation_id, correlation_id);
    response
}

#[test]
fn describe_cluster_over_the_wire() {
    let broker = Broker::builder().node_id(3).start();
    let mut stream = TcpStream::connect(broker.addr()).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut correlation_id = 0;
    let mut describe = |version: i16, request: DescribeClusterRequest| {
        correlation_id += 1;
        let mut body = exchange(
            &mut stream,
            ApiKey::DescribeCluster,
            version,
            correlation_id,
            &request,
        );
        let response = DescribeClusterResponse::decode(&mut body, version).expect("decode");
        assert!(body.is_empty(), "v{version}: trailing bytes");
        response
    };
    for version in 0..=2 {
        let r = describe(
            version,
            DescribeClusterRequest::default().with_include_cluster_authorized_operations(true),
        );
        assert_eq!(
            (r.error_code, r.error_message.as_ref()),
            (0, None),
            "v{version}"
        );
        assert!(!r.cluster_id.is_empty());
        assert_eq!(r.controller_id, BrokerId(3));
        assert_eq!(r.brokers.len(), 1);
        let me = &r.brokers[0];
        assert_eq!(me.broker_id, BrokerId(3));
        assert_eq!(me.host.as_str(), "127.0.0.1");
        assert_eq!(me.port, i32::from(broker.port()));
        assert!(!me.is_fenced);
        // Every cluster operation: there are no ACLs.
        assert_eq!(r.cluster_authorized_operations, 8096, "v{version}");

        let r = describe(version, DescribeClusterRequest::default());
        assert_eq!(r.cluster_authorized_operations, i32::MIN, "v{version}");
    }
    // Controllers are not served by brokers (Kafka: MISMATCHED_ENDPOINT_TYPE).
    let r = describe(2, DescribeClusterRequest::default().with_endpoint_type(2));
    assert_eq!(r.error_code, 114);
    assert!(r.brokers.is_empty());
}
