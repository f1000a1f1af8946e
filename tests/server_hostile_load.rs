//! "Other clients are unaffected": a well-behaved client produces and consumes while
//! attackers run beside it against the same real `strom serve`:
//!
//! - slowloris: connections from 127.0.0.2 up to its `max.connections.per.ip`, each
//!   sending a request a byte a second (reopened when the read timeout closes them);
//! - garbage: connections from 127.0.0.4 sending 4 KiB of random bytes;
//! - 2 GiB claims: connections from 127.0.0.4 announcing an `i32::MAX`-byte Produce.
//!
//! The good client connects from 127.0.0.3. The test asserts that every record it
//! produced is acknowledged and read back, that the attack really ran (refused and
//! timed-out connections in the broker log), and that the broker's RSS stays bounded.
//! The producer's throughput with and without the attackers is printed, not asserted
//! (this is a debug build on a shared 2-core machine; `benches/hostile.sh` measures
//! it on a release build). Declared as a `[[test]]` of `strom-cli`.

#[path = "support/mod.rs"]
mod support;

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use kafka_protocol::messages::ApiKey;
use support::Broker;
use support::hostile::{api_versions, closed_within, connect_from, header_v1, log_lines, rss_kib};
use support::records::{batch, create_topic, decode, fetch, fetch_request, produce};
use support::wire::Conn;

const SLOWLORIS: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
const GOOD: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3));
const NOISY: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 4));
const PER_IP: usize = 100;
const RSS_LIMIT_KIB: u64 = 200 * 1024;
/// What the good client sends per phase: batches of records of this size.
const BATCHES: usize = 400;
const RECORDS_PER_BATCH: usize = 50;
const VALUE_SIZE: usize = 200;
/// No attacker runs longer than this, whatever happens to the test.
const ATTACK_LIMIT: Duration = Duration::from_secs(120);

#[derive(Default)]
struct Counters {
    slowloris_opened: AtomicU64,
    slowloris_closed_by_broker: AtomicU64,
    garbage_sent: AtomicU64,
    huge_claims_closed: AtomicU64,
    max_rss_kib: AtomicU64,
}

/// Runs the attackers until `stop` (or [`ATTACK_LIMIT`]); returns their threads.
fn start_attack(
    broker: &Broker,
    stop: &Arc<AtomicBool>,
    counters: &Arc<Counters>,
) -> Vec<thread::JoinHandle<()>> {
    let addr = broker.addr();
    let started = Instant::now();
    let running = {
        let stop = stop.clone();
        move || !stop.load(Ordering::Relaxed) && started.elapsed() < ATTACK_LIMIT
    };
    let mut threads = Vec::new();

    // Slowloris: keep up to the per-IP limit of connections trickling.
    let (run, c) = (running.clone(), counters.clone());
    threads.push(thread::spawn(move || {
        let mut request = 10_000i32.to_be_bytes().to_vec();
        request.extend_from_slice(&header_v1(ApiKey::ApiVersions, 3));
        request.resize(10_004, 0);
        let mut conns: Vec<(TcpStream, usize)> = Vec::new();
        while run() {
            while conns.len() < PER_IP + 5 {
                // Over the limit the broker closes them at once; they are dropped below.
                match connect_from(SLOWLORIS, addr) {
                    Ok(s) => {
                        s.set_nonblocking(true).expect("nonblocking");
                        conns.push((s, 0));
                        c.slowloris_opened.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => break,
                }
            }
            conns.retain_mut(|(s, sent)| {
                let alive = still_open(s, request[*sent]);
                *sent = (*sent + 1) % request.len();
                if !alive {
                    c.slowloris_closed_by_broker.fetch_add(1, Ordering::Relaxed);
                }
                alive
            });
            thread::sleep(Duration::from_secs(1));
        }
    }));

    // Garbage: 4 KiB of noise per connection, ~100 connections a second.
    let (run, c) = (running.clone(), counters.clone());
    threads.push(thread::spawn(move || {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        while run() {
            if let Ok(mut s) = connect_from(NOISY, addr) {
                let noise: Vec<u8> = (0..4096)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        x as u8
                    })
                    .collect();
                let _ = s.write_all(&noise);
                c.garbage_sent.fetch_add(1, Ordering::Relaxed);
            }
            thread::sleep(Duration::from_millis(10));
        }
    }));

    // 2 GiB claims: each must be closed by the broker.
    let (run, c) = (running.clone(), counters.clone());
    threads.push(thread::spawn(move || {
        while run() {
            if let Ok(mut s) = connect_from(NOISY, addr) {
                let mut wire = i32::MAX.to_be_bytes().to_vec();
                wire.extend_from_slice(&header_v1(ApiKey::Produce, 3));
                if s.write_all(&wire).is_ok() && closed_within(&mut s, Duration::from_secs(10)) {
                    c.huge_claims_closed.fetch_add(1, Ordering::Relaxed);
                }
            }
            thread::sleep(Duration::from_millis(10));
        }
    }));

    // Memory watch.
    let (run, c, pid) = (running, counters.clone(), broker.pid());
    threads.push(thread::spawn(move || {
        while run() {
            if let Some(rss) = std::fs::read_to_string(format!("/proc/{pid}/status"))
                .ok()
                .and_then(|s| {
                    s.lines()
                        .find_map(|l| l.strip_prefix("VmRSS:"))
                        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                })
            {
                c.max_rss_kib.fetch_max(rss, Ordering::Relaxed);
            }
            thread::sleep(Duration::from_millis(50));
        }
    }));
    threads
}

/// Sends one more byte on a nonblocking socket; whether the broker still has the
/// connection open (no EOF, no reset).
fn still_open(s: &mut TcpStream, byte: u8) -> bool {
    use std::io::{ErrorKind, Read};
    match s.write(&[byte]) {
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
        Err(_) => return false,
    }
    let mut probe = [0u8; 1];
    match s.read(&mut probe) {
        Ok(0) => false,
        Ok(_) => true,
        Err(e) => e.kind() == ErrorKind::WouldBlock,
    }
}

/// Produces [`BATCHES`] batches to `topic` from the good client's address and reads
/// them all back; returns the produce throughput in MB/s of record values.
fn good_client(broker: &Broker, topic: &str) -> f64 {
    let mut conn =
        Conn::from_stream(connect_from(GOOD, broker.addr()).expect("good client connects"));
    assert_eq!(
        api_versions(&mut conn.stream, 1)
            .expect("answered")
            .error_code,
        0
    );
    create_topic(&mut conn, topic, 1);
    let start = Instant::now();
    for i in 0..BATCHES {
        let r = produce(
            &mut conn,
            topic,
            0,
            batch(&format!("{topic}-{i}"), RECORDS_PER_BATCH, VALUE_SIZE),
        );
        assert_eq!(r.error_code, 0, "batch {i}: {r:?}");
        assert_eq!(r.base_offset, (i * RECORDS_PER_BATCH) as i64, "batch {i}");
    }
    let elapsed = start.elapsed();
    // Read everything back, in order.
    let total = BATCHES * RECORDS_PER_BATCH;
    let mut offset = 0i64;
    while (offset as usize) < total {
        let p = fetch(
            &mut conn,
            &fetch_request(topic, 0, offset, 1 << 20, 1 << 20),
        );
        assert_eq!(p.error_code, 0, "{p:?}");
        let records = decode(&p);
        assert!(!records.is_empty(), "no progress at offset {offset}");
        for r in records {
            let i = offset as usize;
            let key = format!(
                "{topic}-{}-{}",
                i / RECORDS_PER_BATCH,
                i % RECORDS_PER_BATCH
            );
            assert_eq!(r.key.as_deref(), Some(key.as_bytes()), "offset {offset}");
            assert_eq!(r.value.as_ref().map(|v| v.len()), Some(VALUE_SIZE));
            offset += 1;
        }
    }
    assert_eq!(offset as usize, total);
    (total * VALUE_SIZE) as f64 / 1e6 / elapsed.as_secs_f64()
}

#[test]
fn a_producer_beside_attackers_is_served() {
    let mut broker = Broker::builder()
        .arg("-o")
        .arg(format!("max.connections.per.ip={PER_IP}"))
        .arg("-o")
        .arg("socket.request.read.timeout.ms=3000")
        .start();
    let calm = good_client(&broker, "calm");

    let stop = Arc::new(AtomicBool::new(false));
    let counters = Arc::new(Counters::default());
    let threads = start_attack(&broker, &stop, &counters);
    // Let the slowloris fill its address's slots before measuring.
    let deadline = Instant::now() + Duration::from_secs(30);
    while counters.slowloris_opened.load(Ordering::Relaxed) < PER_IP as u64 {
        assert!(
            Instant::now() < deadline,
            "slowloris never got its connections"
        );
        thread::sleep(Duration::from_millis(100));
    }
    thread::sleep(Duration::from_secs(1));
    let attacked = good_client(&broker, "attacked");
    // Keep attacking until the slowloris connections have met the read timeout.
    thread::sleep(Duration::from_secs(4));
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().expect("attacker thread");
    }

    let rss_now = rss_kib(&broker);
    let max_rss = counters.max_rss_kib.load(Ordering::Relaxed);
    eprintln!(
        "good producer: {calm:.1} MB/s alone, {attacked:.1} MB/s beside the attackers \
         ({:+.0}%); attack: {} slowloris connections opened, {} closed by the broker, \
         {} garbage connections, {} 2 GiB claims closed; broker RSS max {} KiB, now {rss_now} KiB",
        (attacked / calm - 1.0) * 100.0,
        counters.slowloris_opened.load(Ordering::Relaxed),
        counters.slowloris_closed_by_broker.load(Ordering::Relaxed),
        counters.garbage_sent.load(Ordering::Relaxed),
        counters.huge_claims_closed.load(Ordering::Relaxed),
        max_rss,
    );
    assert!(
        max_rss > 0 && max_rss < RSS_LIMIT_KIB,
        "broker RSS peaked at {max_rss} KiB"
    );
    assert!(rss_now < RSS_LIMIT_KIB, "broker RSS {rss_now} KiB");
    // The attack was real: each kind reached the broker and was dealt with.
    assert!(counters.huge_claims_closed.load(Ordering::Relaxed) > 0);
    assert!(counters.garbage_sent.load(Ordering::Relaxed) > 0);
    assert!(counters.slowloris_closed_by_broker.load(Ordering::Relaxed) > 0);
    assert!(!log_lines(&broker, &["max.connections.per.ip reached", "127.0.0.2:"]).is_empty());
    assert!(!log_lines(&broker, &["socket.request.read.timeout.ms", "127.0.0.2:"]).is_empty());
    assert!(!log_lines(&broker, &["frame size 2147483647"]).is_empty());
    assert!(broker.is_running());
}
