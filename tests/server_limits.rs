//! The broker's limits against the real `strom serve`, each set low with `-o`:
//! `max.connections`, `max.connections.per.ip` (and its overrides), `message.max.bytes`,
//! `socket.request.max.bytes` and `fetch.max.bytes`; and the open-file limit, lowered
//! with `prlimit`. For each: what the client sees
//! (a closed connection or a Kafka error code), and the warning in the broker's log.
//! The timeouts (`connections.max.idle.ms`, `socket.request.read.timeout.ms`) are in
//! `server_hostile_input.rs`.
//!
//! Clients use loopback source addresses other than 127.0.0.1 (a socket bound to
//! 127.0.0.2 reaches the 127.0.0.1 listener) so each address has its own count.
//! Declared as a `[[test]]` of `strom-cli`.

#[path = "support/mod.rs"]
mod support;

use std::fs;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, TcpStream};
use std::process::Command;

use kafka_protocol::protocol::Decodable;
use std::time::{Duration, Instant};

use support::Broker;
use support::hostile::{
    api_versions, api_versions_frame, assert_alive, assert_closed, closed_within, connect_from,
    log_lines, wait_for_log,
};
use support::records::{batch, create_topic, decode, fetch, fetch_request, produce};
use support::wire::Conn;

const LIMITED: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
const OVERRIDDEN: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3));
/// The broker's cap on refused-connection warnings: this many per window.
const REFUSED_BURST: usize = 5;
const REFUSED_WINDOW: Duration = Duration::from_secs(10);
const REFUSED: &str = "max.connections.per.ip reached";

fn broker(settings: &[&str]) -> Broker {
    let mut b = Broker::builder();
    for s in settings {
        b = b.arg("-o").arg(*s);
    }
    b.start()
}

/// A connection from `source` that the broker accepted and answers.
fn accepted(broker: &Broker, source: IpAddr) -> TcpStream {
    let mut s = connect_from(source, broker.addr()).expect("connect");
    let r = api_versions(&mut s, 1).expect("accepted connection answers");
    assert_eq!(r.error_code, 0);
    s
}

/// A connection from `source` that the broker closes without answering.
fn refused(broker: &Broker, source: IpAddr, what: &str) {
    let mut s = connect_from(source, broker.addr()).expect("the TCP handshake completes");
    // The request may or may not be written before the close; either way no answer.
    let _ = s.write_all(&api_versions_frame(2));
    assert_closed(&mut s, what);
}

#[test]
fn connections_over_the_per_ip_limit_are_closed_at_once_with_a_limited_warning() {
    let mut broker = broker(&[
        "max.connections.per.ip=5",
        "max.connections.per.ip.overrides=127.0.0.3:8",
    ]);
    let mut limited: Vec<TcpStream> = (0..5).map(|_| accepted(&broker, LIMITED)).collect();
    refused(&broker, LIMITED, "6th connection from 127.0.0.2");
    let line = wait_for_log(&broker, &["WARN", REFUSED]);
    assert!(line.contains("peer=127.0.0.2:"), "{line}");
    assert!(line.contains("limit=5"), "{line}");
    // Other addresses have their own counts: the override, and the default for 127.0.0.1.
    let overridden: Vec<TcpStream> = (0..8).map(|_| accepted(&broker, OVERRIDDEN)).collect();
    refused(&broker, OVERRIDDEN, "9th connection from 127.0.0.3");
    assert_alive(&mut broker);
    // The connections that were let in still work.
    for s in &mut limited {
        assert_eq!(api_versions(s, 3).expect("still served").error_code, 0);
    }
    // A slot comes free when a connection closes (asynchronously: retry a little).
    drop(limited.pop());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut s = connect_from(LIMITED, broker.addr()).expect("connect");
        if api_versions(&mut s, 4).is_ok() {
            limited.push(s);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the freed slot was never reusable"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // A flood of refused connections: the warnings are capped per window.
    let start = Instant::now();
    for _ in 0..300 {
        let mut s = connect_from(LIMITED, broker.addr()).expect("connect");
        assert!(
            closed_within(&mut s, Duration::from_secs(10)),
            "over-limit connection kept"
        );
    }
    let windows =
        (start.elapsed().as_secs_f64() / REFUSED_WINDOW.as_secs_f64()).ceil() as usize + 2;
    let lines = log_lines(&broker, &[REFUSED]).len();
    assert!(
        lines <= REFUSED_BURST * windows,
        "{lines} warnings for ~302 refusals over {} windows",
        windows
    );
    // Once the window has passed, the next warning says how many were held back.
    std::thread::sleep(REFUSED_WINDOW);
    refused(&broker, LIMITED, "after the window");
    let line = wait_for_log(&broker, &[REFUSED, "suppressed="]);
    let suppressed: usize = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("suppressed="))
        .and_then(|n| n.parse().ok())
        .expect("a count");
    assert!(
        suppressed + lines >= 300,
        "{suppressed} suppressed + {lines} logged"
    );
    drop(overridden);
    assert_alive(&mut broker);
}

#[test]
fn message_max_bytes_refuses_larger_batches_with_message_too_large() {
    let mut broker = broker(&["message.max.bytes=2000"]);
    let mut conn = Conn::open(broker.addr());
    create_topic(&mut conn, "t", 1);
    let big = batch("big", 3, 1000);
    assert!(big.len() > 2000);
    let r = produce(&mut conn, "t", 0, big);
    assert_eq!(r.error_code, 10, "MESSAGE_TOO_LARGE: {r:?}");
    let message = r.error_message.map(|m| m.to_string()).unwrap_or_default();
    assert!(
        message.contains("2000"),
        "the error message names the limit: {message:?}"
    );
    wait_for_log(&broker, &["WARN", "produce refused", "2000"]);
    // A batch under the limit is stored, and the refused one was not.
    let r = produce(&mut conn, "t", 0, batch("small", 3, 100));
    assert_eq!((r.error_code, r.base_offset), (0, 0), "{r:?}");
    assert_alive(&mut broker);
}

#[test]
fn socket_request_max_bytes_closes_oversized_requests() {
    let mut broker = broker(&["socket.request.max.bytes=10000"]);
    let mut conn = Conn::open(broker.addr());
    create_topic(&mut conn, "t", 1);
    let r = produce(&mut conn, "t", 0, batch("ok", 5, 1000));
    assert_eq!(r.error_code, 0, "{r:?}");
    // A 20 kB Produce: Kafka closes the connection (there is no error response for
    // a frame the broker will not read), and so does Strom.
    let big = support::records::produce_request("t", 0, batch("big", 20, 1000));
    conn.send(kafka_protocol::messages::ApiKey::Produce, 9, &big);
    assert_closed(&mut conn.stream, "oversized Produce");
    let line = wait_for_log(&broker, &["WARN", "closing connection", "10000]"]);
    assert!(line.contains("frame size 2"), "names the size: {line}");
    assert_alive(&mut broker);
}

#[test]
fn fetch_max_bytes_caps_what_a_fetch_asks_for() {
    let mut broker = broker(&["fetch.max.bytes=4096"]);
    let mut conn = Conn::open(broker.addr());
    create_topic(&mut conn, "t", 1);
    let one = batch("k", 1, 900);
    for _ in 0..10 {
        assert_eq!(produce(&mut conn, "t", 0, one.clone()).error_code, 0);
    }
    let fits = 4096 / one.len();
    // Asks for 50 MiB: gets what fits in 4096 bytes.
    let p = fetch(&mut conn, &fetch_request("t", 0, 0, 50 << 20, 50 << 20));
    let bytes = p.records.as_ref().map_or(0, |r| r.len());
    assert!(bytes <= 4096, "{bytes} bytes returned");
    assert_eq!(decode(&p).len(), fits);
    wait_for_log(&broker, &["WARN", "fetch.max.bytes", "requested=52428800"]);
    // Under the cap, the request's own limit applies.
    let p = fetch(
        &mut conn,
        &fetch_request("t", 0, 0, (2 * one.len()) as i32, 50 << 20),
    );
    assert_eq!(decode(&p).len(), 2);
    // A batch larger than the cap still comes back whole (the consumer must progress).
    assert_eq!(
        produce(&mut conn, "t", 0, batch("big", 1, 6000)).error_code,
        0
    );
    let p = fetch(&mut conn, &fetch_request("t", 0, 10, 50 << 20, 50 << 20));
    assert_eq!(decode(&p).len(), 1);
    assert_alive(&mut broker);
}

/// With `max.connections` unlimited (the default), a flood of clients must not take the
/// descriptors the logs need: near the open-file limit the broker stops accepting
/// (clients wait in the backlog), so creating a topic, which opens three files per
/// partition, still works, and waiting clients are served once others close.
#[test]
fn accepting_pauses_near_the_open_file_limit_so_the_logs_keep_their_descriptors() {
    let mut broker = Broker::start();
    let mut admin = Conn::open(broker.addr());
    // Room for about 40 clients above the 256 descriptors kept free for the logs.
    let count = || {
        fs::read_dir(format!("/proc/{}/fd", broker.pid()))
            .expect("the broker's descriptors")
            .count()
    };
    // Once start-up has settled (the offsets topic's files are open).
    let mut open = count();
    let settle = Instant::now() + Duration::from_secs(10);
    loop {
        std::thread::sleep(Duration::from_millis(300));
        let now = count();
        if now == open || Instant::now() > settle {
            break;
        }
        open = now;
    }
    let limit = open + 256 + 40;
    let status = Command::new("prlimit")
        .arg(format!("--pid={}", broker.pid()))
        .arg(format!("--nofile={limit}:{limit}"))
        .status()
        .expect("run prlimit (util-linux)");
    assert!(status.success(), "prlimit: {status}");
    // The broker reads the limit again when it next counts (at most a second later).
    std::thread::sleep(Duration::from_millis(1_200));
    // More than the limit allows (so, accepted, they would exhaust it), fewer than fit
    // in the listen backlog (socket.listen.backlog.size, 1,024).
    const CLIENTS: usize = 400;
    let mut clients: Vec<TcpStream> = (0..CLIENTS)
        .map(|i| {
            let mut s = TcpStream::connect_timeout(&broker.addr(), Duration::from_secs(10))
                .unwrap_or_else(|e| panic!("client {i}: connect: {e}"));
            s.write_all(&api_versions_frame(i as i32))
                .expect("the request fits in the socket buffer");
            s
        })
        .collect();
    let line = wait_for_log(&broker, &["WARN", "near the open-file limit"]);
    assert!(line.contains(&format!("limit={limit}")), "{line}");
    // Those accepted answer at once; give them a moment, then sort.
    std::thread::sleep(Duration::from_millis(500));
    let (mut answered, mut waiting) = (Vec::new(), Vec::new());
    for s in clients.drain(..) {
        if has_response(&s) {
            answered.push(s);
        } else {
            waiting.push(s);
        }
    }
    assert!(
        (10..=80).contains(&answered.len()),
        "{} of {CLIENTS} clients answered under an open-file limit of {limit}",
        answered.len()
    );
    // 30 more descriptors for the logs: taken from the reserve.
    create_topic(&mut admin, "after-the-flood", 10);
    for p in 0..10 {
        let r = produce(&mut admin, "after-the-flood", p, batch("k", 3, 100));
        assert_eq!(r.error_code, 0, "partition {p}");
    }
    // Clients that close make room for those waiting, less the topic's 30 files.
    let freed = answered.len();
    drop(answered);
    let expected = freed.saturating_sub(30 + 2).max(1);
    let deadline = Instant::now() + Duration::from_secs(15);
    let served_later = loop {
        let n = waiting.iter().filter(|s| has_response(s)).count();
        if n >= expected || Instant::now() > deadline {
            break n;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        served_later >= expected,
        "{served_later} waiting clients served after {freed} closed (expected {expected})"
    );
    for bad in ["Too many open files", "offline", "accept failed"] {
        assert!(
            log_lines(&broker, &[bad]).is_empty(),
            "{bad:?} in the broker log: {}",
            broker.log_tail(20)
        );
    }
    drop(waiting);
    assert_alive(&mut broker);
}

/// Whether a response has arrived on `s` (without blocking).
fn has_response(s: &TcpStream) -> bool {
    s.set_nonblocking(true).expect("nonblocking");
    let mut b = [0u8; 1];
    let r = s.peek(&mut b);
    s.set_nonblocking(false).expect("blocking");
    matches!(r, Ok(n) if n > 0)
}

/// `max.connections` (all addresses together): at the limit the broker stops
/// accepting, so a further client waits in the listen backlog (it is neither answered
/// nor closed) and is served as soon as another connection closes.
#[test]
fn max_connections_makes_further_clients_wait_until_one_closes() {
    let mut broker = broker(&["max.connections=5"]);
    // From different addresses: the limit is global, not per address.
    let sources = [1u8, 2, 3, 4, 5].map(|n| IpAddr::V4(Ipv4Addr::new(127, 0, 0, n)));
    let mut open: Vec<TcpStream> = sources.iter().map(|&ip| accepted(&broker, ip)).collect();
    let mut waiting = connect_from(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 6)), broker.addr())
        .expect("the TCP handshake completes in the backlog");
    waiting
        .write_all(&api_versions_frame(6))
        .expect("the request fits in the socket buffer");
    let line = wait_for_log(&broker, &["WARN", "max.connections reached"]);
    assert!(line.contains("max_connections=5"), "{line}");
    std::thread::sleep(Duration::from_secs(1));
    assert!(!has_response(&waiting), "a 6th connection was served");
    assert!(
        !closed_within(
            &mut waiting.try_clone().expect("clone"),
            Duration::from_millis(200)
        ),
        "a waiting connection was closed instead of kept in the backlog"
    );
    // Those accepted are still served.
    for s in &mut open {
        assert_eq!(api_versions(s, 7).expect("still served").error_code, 0);
    }
    drop(open.pop());
    let deadline = Instant::now() + Duration::from_secs(10);
    while !has_response(&waiting) {
        assert!(
            Instant::now() < deadline,
            "the waiting client was not served after a connection closed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut frame = support::hostile::read_frame(&mut waiting).expect("the answer");
    let header = kafka_protocol::messages::ResponseHeader::decode(&mut frame, 0).expect("header");
    assert_eq!(header.correlation_id, 6);
    // Free slots for assert_alive's own connection.
    drop((waiting, open));
    assert_alive(&mut broker);
}
