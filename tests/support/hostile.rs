//! Raw-socket helpers for the hostile-client and limit tests: frames built by hand,
//! connections from a chosen loopback source address, "was this socket closed",
//! and the broker's resident memory and log.
//!
//! Every socket gets read and write timeouts, so no helper can hang a test.

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use super::Broker;

pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// `body` with its 4-byte size prefix.
pub fn frame(body: &[u8]) -> Vec<u8> {
    let mut v = (body.len() as i32).to_be_bytes().to_vec();
    v.extend_from_slice(body);
    v
}

/// A request header v1 (non-flexible) for `api`/`version`, client id "x".
pub fn header_v1(api: ApiKey, version: i16) -> BytesMut {
    let mut b = BytesMut::new();
    b.put_i16(api as i16);
    b.put_i16(version);
    b.put_i32(99); // correlation id
    b.put_i16(1); // client id "x"
    b.put_u8(b'x');
    b
}

/// An ApiVersions v3 request frame.
pub fn api_versions_frame(correlation_id: i32) -> Vec<u8> {
    let header = RequestHeader::default()
        .with_request_api_key(ApiKey::ApiVersions as i16)
        .with_request_api_version(3)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("hostile-test")));
    let mut buf = BytesMut::new();
    header
        .encode(&mut buf, ApiKey::ApiVersions.request_header_version(3))
        .expect("header");
    ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str("strom-test"))
        .with_client_software_version(StrBytes::from_static_str("1.0"))
        .encode(&mut buf, 3)
        .expect("body");
    frame(&buf)
}

/// Reads one response frame; `Err` on EOF, reset or timeout.
pub fn read_frame(s: &mut TcpStream) -> std::io::Result<Bytes> {
    let mut size = [0u8; 4];
    s.read_exact(&mut size)?;
    let len = usize::try_from(i32::from_be_bytes(size))
        .map_err(|_| std::io::Error::other("negative size"))?;
    let mut body = vec![0u8; len];
    s.read_exact(&mut body)?;
    Ok(Bytes::from(body))
}

/// Sends ApiVersions v3 and decodes the answer.
pub fn api_versions(
    s: &mut TcpStream,
    correlation_id: i32,
) -> std::io::Result<ApiVersionsResponse> {
    s.write_all(&api_versions_frame(correlation_id))?;
    let mut frame = read_frame(s)?;
    let header = ResponseHeader::decode(&mut frame, 0).map_err(std::io::Error::other)?;
    assert_eq!(header.correlation_id, correlation_id);
    let body = ApiVersionsResponse::decode(&mut frame, 3).map_err(std::io::Error::other)?;
    assert!(!frame.has_remaining(), "trailing bytes in response");
    Ok(body)
}

fn with_timeouts(s: TcpStream) -> TcpStream {
    s.set_read_timeout(Some(IO_TIMEOUT)).expect("read timeout");
    s.set_write_timeout(Some(IO_TIMEOUT))
        .expect("write timeout");
    s
}

/// A connection to `addr` from the default source address (127.0.0.1 for a loopback
/// broker).
pub fn connect(addr: SocketAddr) -> TcpStream {
    with_timeouts(TcpStream::connect_timeout(&addr, IO_TIMEOUT).expect("connect"))
}

/// A connection to `addr` whose source address is `source` (any 127.0.0.0/8 address
/// reaches a 127.0.0.1 listener), so the broker counts it against that address.
pub fn connect_from(source: IpAddr, addr: SocketAddr) -> std::io::Result<TcpStream> {
    // std cannot bind before connecting; tokio's TcpSocket can, and hands back a std
    // socket.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let stream = rt.block_on(async {
        let socket = match addr {
            SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
            SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
        };
        socket.bind(SocketAddr::new(source, 0))?;
        tokio::time::timeout(IO_TIMEOUT, socket.connect(addr))
            .await
            .map_err(|_| std::io::Error::from(ErrorKind::TimedOut))?
    })?;
    let stream = stream.into_std()?;
    stream.set_nonblocking(false)?;
    Ok(with_timeouts(stream))
}

/// Whether the broker has closed `s`: reads until EOF or a reset (`true`) or until
/// `within` passes without either (`false`). Bytes that arrive (answers to earlier
/// requests) are skipped.
pub fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        s.set_read_timeout(Some(left.min(Duration::from_millis(500))))
            .expect("read timeout");
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe) => {
                return true;
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => panic!("unexpected read error {e}"),
        }
    }
}

/// Panics unless the broker closes `s` within [`IO_TIMEOUT`].
pub fn assert_closed(s: &mut TcpStream, what: &str) {
    assert!(
        closed_within(s, IO_TIMEOUT),
        "{what}: connection not closed"
    );
}

/// The broker's resident memory, from /proc.
pub fn rss_kib(broker: &Broker) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", broker.pid()))
        .expect("broker /proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// The process answers ApiVersions on a fresh connection from 127.0.0.1.
pub fn assert_alive(broker: &mut Broker) {
    assert!(
        broker.is_running(),
        "broker exited:\n{}",
        broker.log_tail(60)
    );
    let mut s = connect(broker.addr());
    let r = api_versions(&mut s, 4242)
        .unwrap_or_else(|e| panic!("broker not answering ({e}):\n{}", broker.log_tail(60)));
    assert_eq!(r.error_code, 0);
}

/// Lines of the broker's log containing every one of `needles`.
pub fn log_lines(broker: &Broker, needles: &[&str]) -> Vec<String> {
    let log = std::fs::read_to_string(broker.log_path()).unwrap_or_default();
    log.lines()
        .filter(|l| needles.iter().all(|n| l.contains(n)))
        .map(str::to_string)
        .collect()
}

/// Waits (a few seconds at most) for a log line containing all of `needles`.
pub fn wait_for_log(broker: &Broker, needles: &[&str]) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(line) = log_lines(broker, needles).pop() {
            return line;
        }
        assert!(
            Instant::now() < deadline,
            "broker log never had a line with {needles:?}:\n{}",
            broker.log_tail(40)
        );
        thread::sleep(Duration::from_millis(50));
    }
}
