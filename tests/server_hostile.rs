//! End-to-end tests of `strom serve` against well-formed and hostile clients.
//!
//! Each test starts the real binary on an ephemeral 127.0.0.1 port with a temporary data
//! directory, talks raw Kafka framing to it, and checks that the broker answers what it
//! should, closes connections it should, and stays alive with bounded memory. The
//! broker is killed when the test ends, pass or fail (`Broker`'s Drop), and every socket
//! operation has a timeout.
//!
//! Declared as a `[[test]]` of `strom-cli` (crates/cli/Cargo.toml) for
//! `CARGO_BIN_EXE_strom`.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

const IO_TIMEOUT: Duration = Duration::from_secs(10);
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// Resident memory the broker must stay under after hostile input.
const RSS_LIMIT_KIB: u64 = 200 * 1024;

/// A running `strom serve`; killed on drop.
struct Broker {
    child: Child,
    addr: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
    _data_dir: tempfile::TempDir,
}

impl Broker {
    fn start(extra_args: &[&str]) -> Broker {
        let data_dir = tempfile::tempdir().expect("temp dir");
        // STROM_TEST_BIN: see tests/support/mod.rs.
        let bin = std::env::var("STROM_TEST_BIN")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_strom").to_string());
        let mut cmd = Command::new(bin);
        cmd.arg("serve")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(data_dir.path())
            .args(extra_args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        // The test's own environment must not configure the broker.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("STROM_") {
                cmd.env_remove(key);
            }
        }
        let mut child = cmd.spawn().expect("spawn strom serve");
        let stderr = child.stderr.take().expect("stderr piped");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (addr_tx, addr_rx) = mpsc::channel();
        let log_writer = log.clone();
        // Keeps draining stderr for the broker's whole life so it never blocks on a
        // full pipe; the first "address=" it sees is the bound address.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(addr) = line
                    .split_whitespace()
                    .find_map(|w| w.strip_prefix("address="))
                    .and_then(|a| a.parse::<SocketAddr>().ok())
                {
                    let _ = addr_tx.send(addr);
                }
                log_writer.lock().expect("log lock").push(line);
            }
        });
        let mut broker = Broker {
            child,
            addr: "0.0.0.0:0".parse().expect("placeholder"),
            log,
            _data_dir: data_dir,
        };
        match addr_rx.recv_timeout(STARTUP_TIMEOUT) {
            Ok(addr) => broker.addr = addr,
            Err(_) => panic!("broker did not start:\n{}", broker.log_text()),
        }
        broker
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn log_text(&self) -> String {
        self.log.lock().map(|l| l.join("\n")).unwrap_or_default()
    }

    /// The broker's log once it contains `needle`: the log is collected by another
    /// thread, so a line the broker wrote just now may not be in it yet. Panics with
    /// the log after a few seconds.
    fn log_containing(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let log = self.log_text();
            if log.contains(needle) {
                return log;
            }
            assert!(
                Instant::now() < deadline,
                "broker log never mentioned {needle:?}:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn connect(&self) -> TcpStream {
        let s = TcpStream::connect_timeout(&self.addr, IO_TIMEOUT).expect("connect");
        s.set_read_timeout(Some(IO_TIMEOUT)).expect("read timeout");
        s.set_write_timeout(Some(IO_TIMEOUT))
            .expect("write timeout");
        s
    }

    /// The process is running and answers ApiVersions on a fresh connection.
    fn assert_alive(&mut self) {
        let answer = TcpStream::connect_timeout(&self.addr, IO_TIMEOUT).and_then(|mut s| {
            s.set_read_timeout(Some(IO_TIMEOUT))?;
            s.set_write_timeout(Some(IO_TIMEOUT))?;
            api_versions(&mut s, 3, 4242)
        });
        match answer {
            Ok(response) => assert_eq!(response.error_code, 0),
            Err(e) => {
                // Give a dying process a moment so the report shows how it ended.
                std::thread::sleep(Duration::from_millis(500));
                let status = self.child.try_wait();
                panic!(
                    "broker not answering ({e}); process status {status:?}; log:\n{}",
                    self.log_text()
                );
            }
        }
    }

    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("broker /proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    }

    fn assert_rss_bounded(&self) {
        let rss = self.rss_kib();
        assert!(
            rss < RSS_LIMIT_KIB,
            "broker RSS {rss} KiB >= {RSS_LIMIT_KIB} KiB\n{}",
            self.log_text()
        );
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn frame(body: &[u8]) -> Vec<u8> {
    let mut v = (body.len() as i32).to_be_bytes().to_vec();
    v.extend_from_slice(body);
    v
}

/// Reads one response frame; `Err` on EOF, reset or timeout.
fn read_frame(s: &mut TcpStream) -> std::io::Result<Bytes> {
    let mut size = [0u8; 4];
    s.read_exact(&mut size)?;
    let size = i32::from_be_bytes(size);
    let len = usize::try_from(size).map_err(|_| std::io::Error::other("negative size"))?;
    let mut body = vec![0u8; len];
    s.read_exact(&mut body)?;
    Ok(Bytes::from(body))
}

/// An ApiVersions request frame of `version`, encoded with kafka-protocol.
fn api_versions_frame(version: i16, correlation_id: i32) -> Vec<u8> {
    let header = RequestHeader::default()
        .with_request_api_key(ApiKey::ApiVersions as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("server-hostile-test")));
    let mut buf = BytesMut::new();
    let header_version = ApiKey::ApiVersions.request_header_version(version);
    header.encode(&mut buf, header_version).expect("header");
    // kafka-protocol knows v0-v4; a higher version has the same body as v4.
    let request = ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str("strom-test"))
        .with_client_software_version(StrBytes::from_static_str("1.0"));
    request.encode(&mut buf, version.min(4)).expect("body");
    frame(&buf)
}

/// Decodes an ApiVersions response frame: header v0, body of `version`.
fn decode_api_versions(mut frame: Bytes, version: i16, correlation_id: i32) -> ApiVersionsResponse {
    let header = ResponseHeader::decode(&mut frame, 0).expect("response header v0");
    assert_eq!(header.correlation_id, correlation_id);
    let body = ApiVersionsResponse::decode(&mut frame, version).expect("response body");
    assert!(!frame.has_remaining(), "trailing bytes in response");
    body
}

fn api_versions(
    s: &mut TcpStream,
    version: i16,
    correlation_id: i32,
) -> std::io::Result<ApiVersionsResponse> {
    s.write_all(&api_versions_frame(version, correlation_id))?;
    let frame = read_frame(s)?;
    Ok(decode_api_versions(frame, version, correlation_id))
}

/// The broker closed the connection: a read sees EOF or a reset, not a timeout.
fn assert_closed(s: &mut TcpStream, what: &str) {
    let mut buf = [0u8; 64];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => continue, // responses to earlier requests, if any
            Err(e) if matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe) => {
                return;
            }
            Err(e) => panic!("{what}: connection not closed ({e})"),
        }
    }
}

/// A request header v1 (non-flexible) for `api`/`version`.
fn header_v1(api: ApiKey, version: i16) -> BytesMut {
    let mut b = BytesMut::new();
    b.put_i16(api as i16);
    b.put_i16(version);
    b.put_i32(99); // correlation id
    b.put_i16(1); // client id "x"
    b.put_u8(b'x');
    b
}

#[test]
fn api_versions_v0_to_v4_succeed_pipelined_and_in_order() {
    let broker = Broker::start(&[]);
    let mut s = broker.connect();
    for version in 0..=4 {
        let r = api_versions(&mut s, version, 100 + i32::from(version)).expect("answered");
        assert_eq!(r.error_code, 0, "v{version}");
        let own = r
            .api_keys
            .iter()
            .find(|k| k.api_key == ApiKey::ApiVersions as i16)
            .expect("ApiVersions advertised");
        assert_eq!((own.min_version, own.max_version), (0, 4));
    }
    // Pipelined: 20 requests in one write, answered in order.
    let mut batch = Vec::new();
    for i in 0..20 {
        batch.extend(api_versions_frame((i % 5) as i16, 1000 + i));
    }
    s.write_all(&batch).expect("write batch");
    for i in 0..20 {
        let frame = read_frame(&mut s).expect("pipelined response");
        let r = decode_api_versions(frame, (i % 5) as i16, 1000 + i);
        assert_eq!(r.error_code, 0);
    }
}

#[test]
fn api_versions_above_max_gets_error_35_in_a_v0_body() {
    let broker = Broker::start(&[]);
    let mut s = broker.connect();
    for version in [5, i16::MAX] {
        s.write_all(&api_versions_frame(version, 7)).expect("write");
        let frame = read_frame(&mut s).expect("error response");
        let r = decode_api_versions(frame, 0, 7);
        assert_eq!(r.error_code, 35, "v{version}");
        let own = r
            .api_keys
            .iter()
            .find(|k| k.api_key == ApiKey::ApiVersions as i16)
            .expect("ranges listed");
        assert_eq!((own.min_version, own.max_version), (0, 4));
    }
    // The connection stays usable: the client retries with a supported version.
    let r = api_versions(&mut s, 3, 8).expect("retry answered");
    assert_eq!(r.error_code, 0);
}

/// Request bodies whose array count claims ~2^31 or ~2^32 elements in a few bytes.
/// `kafka-protocol` calls `Vec::with_capacity(count)` on them; without `MmapAlloc` the
/// broker aborts on the first one ("memory allocation of N bytes failed").
fn hostile_bodies() -> Vec<(&'static str, Vec<u8>)> {
    let mut out = Vec::new();

    // Metadata v1: topics array (i32 count) = i32::MAX, then nothing.
    let mut b = header_v1(ApiKey::Metadata, 1);
    b.put_i32(i32::MAX);
    out.push(("Metadata v1, 2^31-1 topics", b.to_vec()));

    // Metadata v12 (flexible, header v2): compact array count varint u32::MAX.
    let mut b = BytesMut::new();
    b.put_i16(ApiKey::Metadata as i16);
    b.put_i16(12);
    b.put_i32(99);
    b.put_i16(-1); // null client id
    b.put_u8(0); // no header tagged fields
    b.put_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
    out.push(("Metadata v12, 2^32-2 topics", b.to_vec()));

    // Produce v3: transactional id null, acks, timeout, topic array = i32::MAX.
    let mut b = header_v1(ApiKey::Produce, 3);
    b.put_i16(-1);
    b.put_i16(1);
    b.put_i32(1000);
    b.put_i32(i32::MAX);
    out.push(("Produce v3, 2^31-1 topics", b.to_vec()));

    // DescribeGroups v0: array of strings, count i32::MAX.
    let mut b = header_v1(ApiKey::DescribeGroups, 0);
    b.put_i32(i32::MAX);
    out.push(("DescribeGroups v0, 2^31-1 groups", b.to_vec()));
    out
}

#[test]
fn impossible_array_counts_do_not_kill_the_broker() {
    let mut broker = Broker::start(&[]);
    for (what, body) in hostile_bodies() {
        // Twice each, on separate connections, to show nothing accumulates.
        for _ in 0..2 {
            let mut s = broker.connect();
            s.write_all(&frame(&body)).expect("write hostile request");
            assert_closed(&mut s, what);
            broker.assert_alive();
            broker.assert_rss_bounded();
        }
    }
}

#[test]
fn frame_sizes_out_of_range_close_the_connection() {
    let mut broker = Broker::start(&[]);
    for (what, size) in [
        ("2 GiB frame", i32::MAX),
        ("just over socket.request.max.bytes", 104_857_601),
        ("negative size", -1),
        ("most negative size", i32::MIN),
        ("size smaller than a request head", 2),
    ] {
        let mut s = broker.connect();
        let mut wire = size.to_be_bytes().to_vec();
        wire.extend_from_slice(&[0, 18, 0, 3, 0, 0, 0, 1]);
        s.write_all(&wire).expect("write");
        assert_closed(&mut s, what);
        broker.assert_alive();
    }
    broker.assert_rss_bounded();
    // The warning names the size.
    let log = broker.log_containing("frame size 2147483647");
    assert!(log.contains("127.0.0.1:"), "warning names the peer:\n{log}");
}

#[test]
fn garbage_and_malformed_requests_close_the_connection() {
    let mut broker = Broker::start(&[]);
    let mut unknown_key = BytesMut::new();
    unknown_key.put_i16(1000);
    unknown_key.put_i16(0);
    unknown_key.put_i32(1);
    let mut bad_body = BytesMut::new();
    bad_body.put_i16(ApiKey::ApiVersions as i16);
    bad_body.put_i16(3);
    bad_body.put_i32(1);
    bad_body.put_i16(-1);
    bad_body.put_u8(0);
    bad_body.put_slice(&[0x80]); // compact string length varint cut short
    let mut bad_header = BytesMut::new();
    bad_header.put_i16(ApiKey::ApiVersions as i16);
    bad_header.put_i16(1);
    bad_header.put_i16(0); // correlation id cut short
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "HTTP request",
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        ),
        (
            "TLS client hello",
            vec![0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc],
        ),
        ("unknown API key", frame(&unknown_key)),
        ("undecodable body", frame(&bad_body)),
        ("undecodable header", frame(&bad_header)),
        ("unserved API (AlterReplicaLogDirs v1, well-formed)", {
            let mut b = header_v1(ApiKey::AlterReplicaLogDirs, 1);
            b.put_i32(0);
            frame(&b)
        }),
        (
            "truncated frame then EOF",
            frame(&[0, 18, 0, 3, 0, 0, 0, 1])[..7].to_vec(),
        ),
    ];
    for (what, wire) in cases {
        let mut s = broker.connect();
        s.write_all(&wire).expect("write");
        if what.starts_with("truncated") {
            s.shutdown(std::net::Shutdown::Write).expect("half close");
        }
        assert_closed(&mut s, what);
        broker.assert_alive();
    }
    // A good request pipelined before a bad one is still answered.
    let mut s = broker.connect();
    let mut wire = api_versions_frame(2, 5);
    wire.extend(frame(&unknown_key));
    s.write_all(&wire).expect("write");
    let r = decode_api_versions(read_frame(&mut s).expect("first answered"), 2, 5);
    assert_eq!(r.error_code, 0);
    assert_closed(&mut s, "after the bad request");
}

#[test]
fn large_non_produce_requests_are_refused_before_buffering() {
    let mut broker = Broker::start(&["-o", "non.produce.request.max.bytes=65536"]);
    let mut s = broker.connect();
    // A Metadata request announcing 1 MiB: refused from its head alone.
    let mut wire = (1i32 << 20).to_be_bytes().to_vec();
    wire.extend_from_slice(&header_v1(ApiKey::Metadata, 1));
    s.write_all(&wire).expect("write");
    assert_closed(&mut s, "oversized Metadata");
    broker.assert_alive();
    broker.log_containing("non.produce.request.max.bytes");
}

#[test]
fn stalled_huge_frames_cost_neither_memory_nor_service() {
    let mut broker = Broker::start(&[]);
    // 20 connections each announce a 100 MiB Produce request (the largest allowed),
    // send a few bytes of it and stall: 2 GB if buffers were sized from the prefix,
    // and enough to exhaust the 512 MiB request budget if it were taken up front.
    let mut stalled = Vec::new();
    for _ in 0..20 {
        let mut s = broker.connect();
        let mut wire = (100i32 << 20).to_be_bytes().to_vec();
        wire.extend_from_slice(&header_v1(ApiKey::Produce, 3));
        wire.extend_from_slice(&[0u8; 100]);
        s.write_all(&wire).expect("write");
        stalled.push(s);
    }
    std::thread::sleep(Duration::from_millis(200));
    broker.assert_alive();
    broker.assert_rss_bounded();
    drop(stalled);
}

#[test]
fn sigterm_shuts_down_cleanly() {
    let mut broker = Broker::start(&[]);
    broker.assert_alive();
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(broker.pid().to_string())
        .status()
        .expect("run kill");
    assert!(status.success());
    for _ in 0..100 {
        if let Ok(Some(exit)) = broker.child.try_wait() {
            assert!(exit.success(), "exit status {exit}\n{}", broker.log_text());
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("broker did not exit after SIGTERM\n{}", broker.log_text());
}
