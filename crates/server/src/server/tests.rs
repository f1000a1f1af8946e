//! In-process tests of the listener and connections: pipelining, backpressure limits,
//! half-closed clients and graceful shutdown.

use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::produce_response::PartitionProduceResponse;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, MetadataRequest, ProduceRequest,
    ProduceResponse, RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::*;
use crate::config::HostPort;

const TIMEOUT: Duration = Duration::from_secs(10);

async fn start(config: BrokerConfig) -> (SocketAddr, oneshot::Sender<()>, JoinHandle<Result<()>>) {
    let config = BrokerConfig {
        listen: HostPort::new("127.0.0.1", 0),
        ..config
    };
    let (dir, coordinator) = crate::test_support::coordinator();
    let server = Server::bind(config, coordinator).await.expect("bind");
    let addr = server.local_addr();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let run = tokio::spawn(async move {
        // The data directory lives as long as the server.
        let _dir = dir;
        server
            .run(async {
                let _ = stop_rx.await;
            })
            .await
    });
    (addr, stop_tx, run)
}

fn request(version: i16, correlation_id: i32) -> Vec<u8> {
    let mut buf = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(ApiKey::ApiVersions as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .encode(
            &mut buf,
            ApiKey::ApiVersions.request_header_version(version),
        )
        .expect("header");
    ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str("strom-test"))
        .with_client_software_version(StrBytes::from_static_str("1"))
        .encode(&mut buf, version)
        .expect("body");
    let mut out = (buf.len() as i32).to_be_bytes().to_vec();
    out.extend_from_slice(&buf);
    out
}

async fn read_response(s: &mut TcpStream, version: i16) -> (i32, ApiVersionsResponse) {
    let size = tokio::time::timeout(TIMEOUT, s.read_i32())
        .await
        .expect("in time")
        .expect("size");
    let mut body = vec![0u8; size as usize];
    s.read_exact(&mut body).await.expect("body");
    let mut body = Bytes::from(body);
    let header = ResponseHeader::decode(&mut body, 0).expect("header");
    let response = ApiVersionsResponse::decode(&mut body, version).expect("response");
    assert!(!body.has_remaining());
    (header.correlation_id, response)
}

async fn assert_eof(s: &mut TcpStream) {
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(TIMEOUT, s.read(&mut buf))
        .await
        .expect("closed in time")
        .unwrap_or(0);
    assert_eq!(n, 0, "expected EOF");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_are_answered_in_order_with_one_in_flight_slot() {
    let config = BrokerConfig {
        connection_max_in_flight_requests: 1,
        ..BrokerConfig::default()
    };
    let (addr, stop, run) = start(config).await;
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let mut wire = Vec::new();
    for i in 0..50 {
        wire.extend(request((i % 5) as i16, i));
    }
    s.write_all(&wire).await.expect("write");
    for i in 0..50 {
        let (correlation_id, response) = read_response(&mut s, (i % 5) as i16).await;
        assert_eq!(correlation_id, i);
        assert_eq!(response.error_code, 0);
    }
    drop(s);
    let _ = stop.send(());
    run.await.expect("join").expect("run");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_closed_client_still_gets_its_responses() {
    let (addr, stop, run) = start(BrokerConfig::default()).await;
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let mut wire = request(3, 1);
    wire.extend(request(0, 2));
    s.write_all(&wire).await.expect("write");
    s.shutdown().await.expect("half close");
    assert_eq!(read_response(&mut s, 3).await.0, 1);
    assert_eq!(read_response(&mut s, 0).await.0, 2);
    assert_eof(&mut s).await;
    let _ = stop.send(());
    run.await.expect("join").expect("run");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_idle_connections_and_stops_accepting() {
    let (addr, stop, run) = start(BrokerConfig::default()).await;
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(&request(3, 9)).await.expect("write");
    assert_eq!(read_response(&mut s, 3).await.0, 9);
    // The connection is idle but open; shutdown must not wait for the client.
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(5), run)
        .await
        .expect("run returns well before shutdown.timeout.ms")
        .expect("join")
        .expect("run");
    assert_eof(&mut s).await;
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "listener must be closed after run returns"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bind_failure_names_the_address() {
    let (addr, stop, run) = start(BrokerConfig::default()).await;
    let taken = BrokerConfig {
        listen: HostPort::new("127.0.0.1", addr.port()),
        ..BrokerConfig::default()
    };
    let (_dir, coordinator) = crate::test_support::coordinator();
    let err = Server::bind(taken, coordinator)
        .await
        .expect_err("port in use");
    assert!(err.to_string().contains(&addr.port().to_string()), "{err}");
    let _ = stop.send(());
    run.await.expect("join").expect("run");
}

/// Frames one request of any API.
fn frame_of(api: ApiKey, version: i16, correlation_id: i32, body: impl Encodable) -> Vec<u8> {
    let mut buf = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(api as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .encode(&mut buf, api.request_header_version(version))
        .expect("header");
    body.encode(&mut buf, version).expect("body");
    let mut out = (buf.len() as i32).to_be_bytes().to_vec();
    out.extend_from_slice(&buf);
    out
}

async fn read_frame(s: &mut TcpStream) -> Bytes {
    let size = tokio::time::timeout(TIMEOUT, s.read_i32())
        .await
        .expect("in time")
        .expect("size");
    let mut body = vec![0u8; size as usize];
    s.read_exact(&mut body).await.expect("body");
    Bytes::from(body)
}

/// Creates `name` (one partition) through Metadata's auto-creation.
async fn create_topic(s: &mut TcpStream, name: &'static str) -> TopicName {
    let topic = TopicName(StrBytes::from_static_str(name));
    let metadata = MetadataRequest::default()
        .with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(topic.clone())),
        ]))
        .with_allow_auto_topic_creation(true);
    s.write_all(&frame_of(ApiKey::Metadata, 9, 0, metadata))
        .await
        .expect("write");
    read_frame(s).await;
    topic
}

/// A Produce v9 frame with one batch for partition 0 of `topic`.
fn produce_frame(topic: &TopicName, correlation_id: i32, batch: Vec<u8>) -> Vec<u8> {
    let produce = ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(topic.clone())
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(Bytes::from(batch))),
                ]),
        ]);
    frame_of(ApiKey::Produce, 9, correlation_id, produce)
}

/// The one partition of a Produce v9 response frame.
fn produced_partition(mut frame: Bytes) -> PartitionProduceResponse {
    ResponseHeader::decode(&mut frame, 1).expect("header");
    let mut response = ProduceResponse::decode(&mut frame, 9).expect("response");
    response.responses.remove(0).partition_responses.remove(0)
}

/// A producer pipelines Produce requests for one partition and relies on them being
/// appended in the order sent (Kafka runs one request per connection at a time).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_produces_to_one_partition_are_appended_in_request_order() {
    let (addr, stop, run) = start(BrokerConfig::default()).await;
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let topic = create_topic(&mut s, "ordered").await;
    let requests = 200;
    let mut wire = Vec::new();
    for i in 1..=requests {
        let batch = strom_storage::testing::encode_batch(1, 0, 0, -1, &[i as u8; 100]);
        wire.extend(produce_frame(&topic, i, batch));
    }
    s.write_all(&wire).await.expect("write");
    for i in 1..=requests {
        let mut frame = read_frame(&mut s).await;
        let header = ResponseHeader::decode(&mut frame.clone(), 1).expect("header");
        assert_eq!(header.correlation_id, i);
        let p = produced_partition(std::mem::take(&mut frame));
        assert_eq!(p.error_code, 0);
        assert_eq!(
            p.base_offset,
            i64::from(i - 1),
            "request {i} appended out of order"
        );
    }
    drop(s);
    let _ = stop.send(());
    run.await.expect("join").expect("run");
}

/// Large record sets go from the segment file to the socket with `sendfile`; a client
/// that reads slowly fills the socket buffer, so the sender must wait and resume, and
/// every response must still be whole and in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_fetches_are_sent_whole_to_a_slow_reader() {
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::{FetchRequest, FetchResponse};
    use strom_storage::batch::BatchIter;

    let (addr, stop, run) = start(BrokerConfig::default()).await;
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let topic = create_topic(&mut s, "big").await;
    // 8 batches of 512 KiB, each with its own fill byte.
    let batches: Vec<Vec<u8>> = (0..8u8)
        .map(|i| strom_storage::testing::encode_batch(1, 0, 0, -1, &vec![i; 512 * 1024]))
        .collect();
    for (i, batch) in batches.iter().enumerate() {
        s.write_all(&produce_frame(&topic, i as i32 + 1, batch.clone()))
            .await
            .expect("write");
        assert_eq!(produced_partition(read_frame(&mut s).await).error_code, 0);
    }
    // Pipelined fetches from several offsets, in the old and the flexible layouts.
    let fetches = [(4i16, 0i64), (12, 0), (11, 3), (12, 5), (4, 7)];
    let mut wire = Vec::new();
    for (i, (version, offset)) in fetches.iter().enumerate() {
        let fetch = FetchRequest::default()
            .with_replica_id((-1).into())
            .with_max_wait_ms(0)
            .with_min_bytes(1)
            .with_max_bytes(64 << 20)
            .with_session_epoch(-1)
            .with_topics(vec![
                FetchTopic::default()
                    .with_topic(topic.clone())
                    .with_partitions(vec![
                        FetchPartition::default()
                            .with_partition(0)
                            .with_fetch_offset(*offset)
                            .with_partition_max_bytes(64 << 20)
                            .with_current_leader_epoch(-1),
                    ]),
            ]);
        wire.extend(frame_of(ApiKey::Fetch, *version, 100 + i as i32, fetch));
    }
    s.write_all(&wire).await.expect("write");
    for (i, (version, offset)) in fetches.iter().enumerate() {
        // Slow reader: the broker finds the socket buffer full and must wait.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut frame = read_frame(&mut s).await;
        let header =
            ResponseHeader::decode(&mut frame, ApiKey::Fetch.response_header_version(*version))
                .expect("header");
        assert_eq!(header.correlation_id, 100 + i as i32);
        let response = FetchResponse::decode(&mut frame, *version).expect("response");
        assert!(!frame.has_remaining(), "nothing after the response");
        let records = response.responses[0].partitions[0]
            .records
            .clone()
            .expect("records");
        let got: Vec<&[u8]> = BatchIter::new(&records)
            .map(|(pos, h)| &records[pos..pos + h.total_size()])
            .collect();
        let want = &batches[*offset as usize..];
        assert_eq!(got.len(), want.len(), "fetch {i} from {offset}");
        for (n, (g, w)) in got.iter().zip(want).enumerate() {
            // The stored copy differs only in the 16-byte prefix the log assigns (base
            // offset, length, leader epoch).
            assert!(g[16..] == w[16..], "fetch {i}: batch {n} differs");
        }
    }
    drop(s);
    let _ = stop.send(());
    run.await.expect("join").expect("run");
}
