//! Hostile clients that `server_hostile.rs` does not cover: slow ones, silent ones,
//! negative lengths and counts inside request bodies, random bytes, and frames cut
//! off with the socket held open. Each runs against the real `strom serve` on
//! 127.0.0.1 and checks that the connection is answered with an error or closed (by a
//! timeout where the client just waits), that the broker says why in its log, and that
//! it keeps answering other clients with bounded memory.
//!
//! Timeouts are set low (`-o socket.request.read.timeout.ms=2000`,
//! `-o connections.max.idle.ms=1500`) so the tests are quick; what is checked is that
//! the connection is closed at all while the client keeps trickling or waiting, not
//! how fast. Declared as a `[[test]]` of `strom-cli`.

#[path = "support/mod.rs"]
mod support;

use std::io::Write;
use std::time::{Duration, Instant};

use bytes::BufMut;
use kafka_protocol::messages::ApiKey;
use support::Broker;
use support::hostile::{
    api_versions, assert_alive, assert_closed, closed_within, connect, frame, header_v1, rss_kib,
    wait_for_log,
};
use support::records::{
    BATCH_LENGTH_OFFSET, RECORDS_COUNT_OFFSET, batch, create_topic, decode, fetch, fetch_request,
    patch_batch_i32, produce,
};
use support::wire::Conn;

/// Resident memory the broker must stay under after hostile input.
const RSS_LIMIT_KIB: u64 = 200 * 1024;
const READ_TIMEOUT_MS: &str = "socket.request.read.timeout.ms=2000";
const IDLE_MS: &str = "connections.max.idle.ms=1500";
/// How long a test waits for a timeout of a few seconds to close a connection.
const CLOSE_WITHIN: Duration = Duration::from_secs(20);

fn broker(settings: &[&str]) -> Broker {
    let mut b = Broker::builder();
    for s in settings {
        b = b.arg("-o").arg(*s);
    }
    b.start()
}

fn assert_rss_bounded(broker: &Broker) {
    let rss = rss_kib(broker);
    assert!(
        rss < RSS_LIMIT_KIB,
        "broker RSS {rss} KiB >= {RSS_LIMIT_KIB} KiB"
    );
}

/// Writes `bytes` one a second until the broker closes the connection; returns how
/// many were written before it did, or panics if it never does within [`CLOSE_WITHIN`].
fn trickle_until_closed(s: &mut std::net::TcpStream, bytes: &[u8], what: &str) -> usize {
    let start = Instant::now();
    for (i, byte) in bytes.iter().enumerate() {
        if s.write_all(&[*byte]).is_err() || closed_within(s, Duration::from_secs(1)) {
            return i;
        }
        assert!(
            start.elapsed() < CLOSE_WITHIN,
            "{what}: still open after {CLOSE_WITHIN:?}"
        );
    }
    panic!("{what}: every byte was accepted and the connection is still open");
}

#[test]
fn slowloris_inside_a_request_is_closed_by_the_read_timeout() {
    let mut broker = broker(&[READ_TIMEOUT_MS]);
    // A 1000-byte ApiVersions request sent at a byte a second: the head, then the body.
    let mut request = (1000i32).to_be_bytes().to_vec();
    request.extend_from_slice(&header_v1(ApiKey::ApiVersions, 3));
    request.resize(4 + 1000, 0);
    let mut s = connect(broker.addr());
    s.write_all(&request[..20]).expect("first bytes");
    // Not closed before its time: the timeout is 2 s.
    assert!(
        !closed_within(&mut s, Duration::from_millis(500)),
        "closed early"
    );
    let sent = trickle_until_closed(&mut s, &request[20..], "slow body");
    assert!(sent < 30, "{sent} bytes trickled before the close");
    wait_for_log(
        &broker,
        &[
            "WARN",
            "socket.request.read.timeout.ms",
            "of a 1004-byte frame",
        ],
    );

    // The same inside the size prefix: a byte, then nothing more for a while.
    let mut s = connect(broker.addr());
    let sent = trickle_until_closed(
        &mut s,
        &[0, 0, 0, 0, 0, 18, 0, 3, 0, 0, 0, 0],
        "slow prefix",
    );
    assert!(
        sent < 10,
        "{sent} bytes of the prefix trickled before the close"
    );
    assert_alive(&mut broker);
    assert_rss_bounded(&broker);
}

#[test]
fn silent_connections_are_closed_by_the_idle_timeout_but_long_polls_are_not() {
    let mut broker = broker(&[IDLE_MS]);
    // Connects and never sends a byte.
    let mut silent = connect(broker.addr());
    // Asks once, then goes quiet.
    let mut quiet = connect(broker.addr());
    assert_eq!(api_versions(&mut quiet, 1).expect("answered").error_code, 0);
    assert!(
        closed_within(&mut silent, CLOSE_WITHIN),
        "silent connection still open"
    );
    assert!(
        closed_within(&mut quiet, CLOSE_WITHIN),
        "quiet connection still open"
    );
    wait_for_log(
        &broker,
        &["closing idle connection", "connections.max.idle.ms"],
    );

    // A long poll (4 s, more than the idle time) is in flight, not idle: it is answered.
    let mut conn = Conn::open(broker.addr());
    create_topic(&mut conn, "t", 1);
    let request = fetch_request("t", 0, 0, 1 << 20, 1 << 20)
        .with_max_wait_ms(4000)
        .with_min_bytes(1);
    let answer = fetch(&mut conn, &request);
    assert_eq!(answer.error_code, 0);
    assert!(decode(&answer).is_empty(), "nothing was produced");
    // ... and the connection is closed once it has been idle after that.
    assert!(
        closed_within(&mut conn.stream, CLOSE_WITHIN),
        "still open after the poll"
    );
    assert_alive(&mut broker);
}

/// Request bodies with negative string lengths and array counts: `kafka-protocol`
/// refuses them, and the connection is closed.
#[test]
fn negative_lengths_and_counts_in_bodies_close_the_connection() {
    let mut broker = broker(&[]);
    let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();
    // Header v1: client id (nullable string) of length -2 (-1 would be null).
    let mut b = bytes::BytesMut::new();
    b.put_i16(ApiKey::Metadata as i16);
    b.put_i16(1);
    b.put_i32(7);
    b.put_i16(-2);
    b.put_i32(0);
    cases.push(("client id length -2", b.to_vec()));
    // Metadata v1: topics array count -5 (-1 means all topics).
    let mut b = header_v1(ApiKey::Metadata, 1);
    b.put_i32(-5);
    cases.push(("Metadata topics count -5", b.to_vec()));
    // Metadata v1: one topic whose name has length -2.
    let mut b = header_v1(ApiKey::Metadata, 1);
    b.put_i32(1);
    b.put_i16(-2);
    cases.push(("Metadata topic name length -2", b.to_vec()));
    // Produce v3: acks 1, timeout, topics count -5.
    let mut b = header_v1(ApiKey::Produce, 3);
    b.put_i16(-1);
    b.put_i16(1);
    b.put_i32(1000);
    b.put_i32(-5);
    cases.push(("Produce topics count -5", b.to_vec()));
    // Produce v3: one topic "t", partitions count -7.
    let mut b = header_v1(ApiKey::Produce, 3);
    b.put_i16(-1);
    b.put_i16(1);
    b.put_i32(1000);
    b.put_i32(1);
    b.put_i16(1);
    b.put_u8(b't');
    b.put_i32(-7);
    cases.push(("Produce partitions count -7", b.to_vec()));
    // FindCoordinator v1: key (non-nullable string) of length -1.
    let mut b = header_v1(ApiKey::FindCoordinator, 1);
    b.put_i16(-1);
    b.put_i8(0);
    cases.push(("FindCoordinator key length -1", b.to_vec()));
    for (what, body) in cases {
        let mut s = connect(broker.addr());
        s.write_all(&frame(&body)).expect("write");
        assert_closed(&mut s, what);
    }
    wait_for_log(&broker, &["WARN", "negative"]);
    assert_alive(&mut broker);
    assert_rss_bounded(&broker);
}

/// Negative values inside well-formed requests are answered with an error (or, where
/// Kafka treats them as 0, served), and nothing of a refused batch is stored.
#[test]
fn negative_values_in_well_formed_requests_are_answered() {
    let mut broker = broker(&[]);
    let mut conn = Conn::open(broker.addr());
    create_topic(&mut conn, "t", 1);
    let good = batch("k", 3, 10);
    let corrupt = 2;
    for (what, records) in [
        (
            "batch length -5",
            patch_batch_i32(&good, BATCH_LENGTH_OFFSET, -5),
        ),
        (
            "records count -5",
            patch_batch_i32(&good, RECORDS_COUNT_OFFSET, -5),
        ),
    ] {
        let r = produce(&mut conn, "t", 0, records);
        assert_eq!(r.error_code, corrupt, "{what}: {r:?}");
        assert_eq!(r.base_offset, -1, "{what}");
    }
    // Nothing was stored: the log is empty, then the good batch lands at offset 0.
    let empty = fetch(&mut conn, &fetch_request("t", 0, 0, 1 << 20, 1 << 20));
    assert_eq!((empty.error_code, empty.high_watermark), (0, 0));
    let r = produce(&mut conn, "t", 0, good);
    assert_eq!((r.error_code, r.base_offset), (0, 0), "{r:?}");
    // Negative max_bytes: treated as 0, so the first batch still comes back whole.
    let p = fetch(&mut conn, &fetch_request("t", 0, 0, -5, -7));
    assert_eq!(p.error_code, 0);
    assert_eq!(decode(&p).len(), 3);
    // A negative offset is out of range; a negative partition is unknown.
    let p = fetch(&mut conn, &fetch_request("t", 0, -5, 1 << 20, 1 << 20));
    assert_eq!(p.error_code, 1, "OFFSET_OUT_OF_RANGE: {p:?}");
    let p = fetch(&mut conn, &fetch_request("t", -3, 0, 1 << 20, 1 << 20));
    assert_eq!(p.error_code, 3, "UNKNOWN_TOPIC_OR_PARTITION: {p:?}");
    wait_for_log(&broker, &["WARN", "produce refused", "records count -5"]);
    assert_alive(&mut broker);
}

/// A small deterministic generator (xorshift64*), so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

#[test]
fn random_bytes_close_the_connection() {
    let mut broker = broker(&[READ_TIMEOUT_MS]);
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    // All at once: 40 connections of 4 KiB of noise each, held open afterwards. Most
    // fail on the size or API key at once; a prefix that happens to be a plausible
    // size waits for bytes that never come, until the read timeout.
    let mut open: Vec<_> = (0..40)
        .map(|i| {
            let mut s = connect(broker.addr());
            let noise = rng.bytes(4096);
            // The broker may close before reading it all; a failed write is fine.
            let _ = s.write_all(&noise);
            (i, s)
        })
        .collect();
    // Plus noise that starts with a valid ApiVersions head, so it gets past framing.
    let mut s = connect(broker.addr());
    let mut wire = 200i32.to_be_bytes().to_vec();
    wire.extend_from_slice(&[0, 18, 0, 3]);
    wire.extend(rng.bytes(196));
    s.write_all(&wire).expect("write");
    open.push((40, s));
    for (i, s) in &mut open {
        assert!(
            closed_within(s, CLOSE_WITHIN),
            "noise connection {i} still open"
        );
    }
    assert_alive(&mut broker);
    assert_rss_bounded(&broker);
}

#[test]
fn frames_cut_off_with_the_socket_held_open_are_closed() {
    let mut broker = broker(&[READ_TIMEOUT_MS]);
    // Half a request, then nothing: the socket stays open (no FIN), so only the read
    // timeout can end it.
    let mut half = connect(broker.addr());
    let mut wire = 1000i32.to_be_bytes().to_vec();
    wire.extend_from_slice(&header_v1(ApiKey::Metadata, 1));
    wire.resize(4 + 500, 0);
    half.write_all(&wire).expect("write");
    // Three bytes of the size prefix only.
    let mut prefix = connect(broker.addr());
    prefix.write_all(&[0, 0, 1]).expect("write");
    // A 100 MiB Produce announced (the largest allowed) and 64 KiB of it sent.
    let mut produce = connect(broker.addr());
    let mut wire = (100i32 << 20).to_be_bytes().to_vec();
    wire.extend_from_slice(&header_v1(ApiKey::Produce, 3));
    wire.resize(64 << 10, 0);
    produce.write_all(&wire).expect("write");
    // A 2 GiB claim: refused at once, from the prefix alone.
    let mut huge = connect(broker.addr());
    let mut wire = i32::MAX.to_be_bytes().to_vec();
    wire.extend_from_slice(&header_v1(ApiKey::Produce, 3));
    huge.write_all(&wire).expect("write");
    assert_closed(&mut huge, "2 GiB frame");
    assert_alive(&mut broker);
    for (what, s) in [
        ("half a frame", &mut half),
        ("3-byte prefix", &mut prefix),
        ("stalled 100 MiB produce", &mut produce),
    ] {
        assert!(closed_within(s, CLOSE_WITHIN), "{what}: still open");
    }
    wait_for_log(
        &broker,
        &[
            "WARN",
            "socket.request.read.timeout.ms",
            "of a 104857604-byte frame",
        ],
    );
    wait_for_log(&broker, &["WARN", "frame size 2147483647"]);
    assert_alive(&mut broker);
    assert_rss_bounded(&broker);
}

/// A client that sends Fetch requests and never reads the answers: once a response
/// cannot be written for `connections.max.idle.ms`, the connection is closed instead
/// of holding the queued responses forever.
#[test]
fn a_client_that_never_reads_its_responses_is_closed() {
    use std::io::Read;
    let mut broker = broker(&[IDLE_MS]);
    let mut conn = Conn::open(broker.addr());
    create_topic(&mut conn, "t", 1);
    // 8 batches of ~1 MB (under message.max.bytes).
    for i in 0..8 {
        let r = produce(&mut conn, "t", 0, batch(&format!("b{i}"), 10, 100_000));
        assert_eq!(r.error_code, 0, "{r:?}");
    }
    // 60 requests for the whole 8 MB: ~480 MB of answers, far more than the sockets
    // can buffer.
    let request = fetch_request("t", 0, 0, 8 << 20, 8 << 20);
    const REQUESTS: u64 = 60;
    for _ in 0..REQUESTS {
        conn.send(ApiKey::Fetch, support::records::FETCH_VERSION, &request);
    }
    std::thread::sleep(Duration::from_secs(5));
    wait_for_log(&broker, &["WARN", "client not reading its responses"]);
    // What the sockets held arrives, then the end of the stream.
    let mut received = 0u64;
    let mut buf = vec![0u8; 1 << 20];
    let deadline = Instant::now() + CLOSE_WITHIN;
    loop {
        match conn.stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => received += n as u64,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("read: {e}"),
        }
        assert!(Instant::now() < deadline, "still open");
    }
    assert!(
        received < REQUESTS * (8 << 20) / 2,
        "{received} bytes: most answers were not sent"
    );
    assert_alive(&mut broker);
    assert_rss_bounded(&broker);
}
