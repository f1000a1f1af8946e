//! Load: 2,000 partitions (100 topics x 20) and 1,000 client connections held open
//! and busy for a while, against a real `strom serve`.
//!
//! The broker is started with a soft open-file limit of 1,024 (what many systems give a
//! process), so it must raise the limit itself to hold ~6,000 segment files and 1,000
//! sockets. 1,000 connections then stay open for `STROM_LOAD_SECS` seconds (default 60,
//! so that CI stays fast; the full run of issue 7 is `STROM_LOAD_SECS=300`):
//!
//! ```sh
//! STROM_LOAD_SECS=300 cargo test --release -p strom-cli --test broker_load -- --nocapture
//! ```
//!
//! 900 of them send ApiVersions or Metadata every one to three seconds; 100 produce
//! batches (acks=all) to random partitions, read each back at once, and park long-poll
//! fetches (`tests/load/generator.rs`). The broker's resident memory, open descriptors
//! and CPU time are sampled from `/proc` throughout and printed as a table.
//!
//! Asserted: no request fails; every connection is still open and answering at the end;
//! every acknowledged record is in the log afterwards, at its offset, with nothing else
//! there; RSS stays under 512 MiB and does not grow (the last third of the run averages
//! within 10% + 16 MiB of the middle third); the descriptor count holds every segment
//! file and socket and stays flat; the broker stops cleanly on SIGTERM within the
//! harness's timeout and, restarted, serves every record again; so it does after a
//! SIGKILL (every log recovered). Speed is not asserted.
//!
//! Needs a hard open-file limit of at least 8,192 for the test process (`ulimit -Hn`).
//! Declared as a `[[test]]` of `strom-cli` (crates/cli/Cargo.toml) for
//! `CARGO_BIN_EXE_strom`.

#[path = "support/mod.rs"]
mod support;

#[path = "load/conn.rs"]
mod conn;
#[path = "load/generator.rs"]
mod generator;
#[path = "load/proc_stats.rs"]
mod proc_stats;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::{ApiKey, CreateTopicsRequest, CreateTopicsResponse, FetchResponse};
use kafka_protocol::records::RecordBatchDecoder;
use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
use support::Broker;
use support::wire::Conn;

use generator::{Plan, ProducedBatch, Stats};
use proc_stats::{Sample, Sampler};

const TOPICS: usize = 100;
const PARTITIONS_PER_TOPIC: i32 = 20;
const CONNECTIONS: usize = 1_000;
/// Every this many connections, one is a worker (produce and fetch); the rest ping.
const WORKER_EVERY: usize = 10;

const LOAD_SECS_ENV: &str = "STROM_LOAD_SECS";
const DEFAULT_LOAD_SECS: u64 = 60;

/// The soft open-file limit the broker starts with.
const STARTING_SOFT_LIMIT: u64 = 1_024;
/// The hard limit this test needs: the broker holds ~6,000 segment files plus 1,000
/// sockets, and the test itself 1,000 sockets.
const MIN_HARD_LIMIT: u64 = 8_192;
/// Descriptors a segment holds (`.log`, `.index`, `.timeindex`).
const FILES_PER_SEGMENT: u64 = 3;

const TOPICS_PER_CREATE: usize = 10;
const CREATE_TOPICS_VERSION: i16 = 7;

const RSS_LIMIT_MIB: f64 = 512.0;
/// Allowed growth of mean RSS from the middle to the last third of the run.
const RSS_GROWTH_FRACTION: f64 = 0.10;
const RSS_GROWTH_SLACK_MIB: f64 = 16.0;
/// Allowed spread of the descriptor count while the load runs (checkpoint and snapshot
/// files are opened briefly).
const FD_SPREAD: u64 = 32;

fn load_duration() -> Duration {
    let secs = std::env::var(LOAD_SECS_ENV)
        .ok()
        .map(|v| {
            v.parse::<u64>()
                .unwrap_or_else(|_| panic!("{LOAD_SECS_ENV}={v:?} is not a number of seconds"))
        })
        .unwrap_or(DEFAULT_LOAD_SECS);
    assert!(
        secs >= 6,
        "{LOAD_SECS_ENV} must be at least 6 (three thirds of samples)"
    );
    Duration::from_secs(secs)
}

fn topic_names() -> Vec<String> {
    (0..TOPICS).map(|t| format!("load-{t:03}")).collect()
}

/// Sets this process's soft open-file limit (the broker inherits it when spawned).
fn set_soft_nofile(soft: Option<u64>) {
    let hard = getrlimit(Resource::Nofile).maximum;
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: soft,
            maximum: hard,
        },
    )
    .expect("setrlimit(RLIMIT_NOFILE)");
}

/// Starts the broker with a soft open-file limit of [`STARTING_SOFT_LIMIT`], then gives
/// this process its hard limit (for its own 1,000 sockets). Returns the hard limit.
fn start_broker_with_low_soft_limit() -> (Broker, Option<u64>) {
    let hard = getrlimit(Resource::Nofile).maximum;
    assert!(
        hard.is_none_or(|h| h >= MIN_HARD_LIMIT),
        "the hard open-file limit is {hard:?}; this test needs {MIN_HARD_LIMIT} \
         (raise it with `ulimit -Hn` as root, or LimitNOFILE= for the CI service)"
    );
    set_soft_nofile(Some(STARTING_SOFT_LIMIT));
    let broker = Broker::start();
    set_soft_nofile(hard.or_else(|| {
        std::fs::read_to_string("/proc/sys/fs/nr_open")
            .ok()
            .and_then(|v| v.trim().parse().ok())
    }));
    (broker, hard)
}

/// The broker raised its soft limit to the hard one and said so.
fn check_broker_raised_its_limit(broker: &Broker, hard: Option<u64>) {
    let (soft, broker_hard) =
        proc_stats::open_file_limits(broker.pid()).expect("read /proc/PID/limits");
    assert_eq!(broker_hard, hard, "the broker's hard open-file limit");
    match hard {
        Some(hard) => assert_eq!(soft, Some(hard), "the broker did not raise its soft limit"),
        None => assert!(
            soft.is_none_or(|s| s > STARTING_SOFT_LIMIT),
            "the broker did not raise its soft limit: {soft:?}"
        ),
    }
    let log = broker.log_tail(200);
    assert!(
        log.contains("open-file limit") && log.contains(&format!("was={STARTING_SOFT_LIMIT}")),
        "the broker did not log its open-file limit:\n{log}"
    );
    println!(
        "broker open-file limit: soft {soft:?}, hard {hard:?} (started with {STARTING_SOFT_LIMIT})"
    );
}

/// CreateTopics, ten topics per request; every topic must be created.
fn create_topics(broker: &Broker, topics: &[String]) {
    let mut conn = Conn::open(broker.addr());
    for chunk in topics.chunks(TOPICS_PER_CREATE) {
        let request = CreateTopicsRequest::default()
            .with_timeout_ms(60_000)
            .with_topics(
                chunk
                    .iter()
                    .map(|name| {
                        CreatableTopic::default()
                            .with_name(generator::topic_name(name))
                            .with_num_partitions(PARTITIONS_PER_TOPIC)
                            .with_replication_factor(1)
                    })
                    .collect(),
            );
        let response: CreateTopicsResponse =
            conn.call(ApiKey::CreateTopics, CREATE_TOPICS_VERSION, &request);
        assert_eq!(response.topics.len(), chunk.len(), "{response:?}");
        for t in &response.topics {
            assert_eq!(t.error_code, 0, "creating {:?}: {t:?}", t.name);
            assert_eq!(t.num_partitions, PARTITIONS_PER_TOPIC, "{t:?}");
        }
    }
}

/// What the load phase returns.
struct LoadOutcome {
    opened: usize,
    still_open: usize,
    batches: Vec<ProducedBatch>,
    samples: Vec<Sample>,
    wall: Duration,
}

/// Opens every connection, runs the load until the deadline, then checks that every
/// connection still answers. The broker is sampled from when all are open until then.
fn run_load(
    broker: &Broker,
    topics: Vec<String>,
    duration: Duration,
    stats: &Arc<Stats>,
) -> LoadOutcome {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let addr = broker.addr();
    let pid = broker.pid();
    let every = Duration::from_secs((duration.as_secs() / 30).clamp(2, 10));
    runtime.block_on(async {
        let mut conns = Vec::with_capacity(CONNECTIONS);
        for id in 0..CONNECTIONS {
            match generator::open(addr, stats).await {
                Ok(c) => conns.push(c),
                Err(e) => stats.error(id, format!("opening: {e}")),
            }
        }
        let opened = conns.len();
        let sampler = Sampler::start(pid, every, stats.requests.clone());
        let started = Instant::now();
        let plan = Arc::new(Plan {
            topics,
            partitions: PARTITIONS_PER_TOPIC,
            until: tokio::time::Instant::now() + duration,
        });
        let mut tasks = Vec::with_capacity(opened);
        for (id, conn) in conns.into_iter().enumerate() {
            let (plan, stats) = (plan.clone(), stats.clone());
            tasks.push(tokio::spawn(async move {
                if id % WORKER_EVERY == 0 {
                    generator::worker(conn, id, plan, stats).await
                } else {
                    (generator::pinger(conn, id, plan, stats).await, Vec::new())
                }
            }));
        }
        let mut alive = Vec::with_capacity(opened);
        let mut batches = Vec::new();
        for task in tasks {
            let (conn, produced) = task.await.expect("load task panicked");
            alive.extend(conn);
            batches.extend(produced);
        }
        // Every connection that lasted must still be served after the run.
        let finals: Vec<_> = alive
            .into_iter()
            .enumerate()
            .map(|(i, mut conn)| {
                let stats = stats.clone();
                tokio::spawn(async move {
                    let result = generator::api_versions(&mut conn, &stats).await;
                    if let Err(e) = &result {
                        stats.error(i, format!("final ApiVersions: {e}"));
                    }
                    (result.is_ok(), conn)
                })
            })
            .collect();
        let mut still_open = 0;
        let mut keep = Vec::new();
        for f in finals {
            let (ok, conn) = f.await.expect("final check panicked");
            still_open += usize::from(ok);
            keep.push(conn);
        }
        let wall = started.elapsed();
        // The last sample is taken with every connection still open.
        let mut samples = sampler.finish();
        samples.extend(proc_stats::sample(
            pid,
            wall.as_secs_f64(),
            stats.requests.load(Ordering::Relaxed),
        ));
        drop(keep);
        LoadOutcome {
            opened,
            still_open,
            batches,
            samples,
            wall,
        }
    })
}

/// Reads every partition back from offset 0: it must hold exactly the acknowledged
/// batches, back to back, record for record. Returns the records checked.
fn verify_log(broker: &Broker, topics: &[String], batches: &[ProducedBatch]) -> u64 {
    let mut by_partition: HashMap<(usize, i32), Vec<ProducedBatch>> = HashMap::new();
    for b in batches {
        by_partition
            .entry((b.topic, b.partition))
            .or_default()
            .push(*b);
    }
    for list in by_partition.values_mut() {
        list.sort_by_key(|b| b.base_offset);
        let mut next = 0;
        for b in list.iter() {
            assert_eq!(
                b.base_offset, next,
                "acknowledged batches are not back to back: {b:?}"
            );
            next = b.end_offset();
        }
    }
    let mut conn = Conn::open(broker.addr());
    let mut checked = 0;
    for (t, topic) in topics.iter().enumerate() {
        // Per partition: the batches still to read, and the offset to read from.
        let mut pending: Vec<(i32, std::collections::VecDeque<ProducedBatch>)> = (0
            ..PARTITIONS_PER_TOPIC)
            .map(|p| (p, by_partition.remove(&(t, p)).unwrap_or_default().into()))
            .collect();
        // The first round asks for every partition, so that one nobody produced to is
        // checked to be empty too.
        let mut first_round = true;
        loop {
            let wanted: Vec<(i32, i64)> = pending
                .iter()
                .filter(|(_, q)| first_round || !q.is_empty())
                .map(|(p, q)| (*p, q.front().map_or(0, |b| b.base_offset)))
                .collect();
            if wanted.is_empty() {
                break;
            }
            first_round = false;
            let before = checked;
            let request = generator::fetch_request(generator::topic_name(topic), wanted, 0);
            let response: FetchResponse =
                conn.call(ApiKey::Fetch, generator::FETCH_VERSION, &request);
            assert_eq!(response.error_code, 0, "{topic}: {response:?}");
            let parts = response
                .responses
                .first()
                .map(|r| r.partitions.as_slice())
                .unwrap_or(&[]);
            for data in parts {
                assert_eq!(
                    data.error_code, 0,
                    "{topic}/{}: {data:?}",
                    data.partition_index
                );
                let (_, queue) = &mut pending[data.partition_index as usize];
                let expected_end = queue.back().map_or(0, |b| b.end_offset());
                assert_eq!(
                    data.high_watermark, expected_end,
                    "{topic}/{}: the log holds records nobody acknowledged, or lost some",
                    data.partition_index
                );
                let mut bytes = data.records.clone().unwrap_or_default();
                let records: Vec<_> = RecordBatchDecoder::decode_all(&mut bytes)
                    .expect("decode fetched records")
                    .into_iter()
                    .flat_map(|s| s.records)
                    .collect();
                let mut rest = records.as_slice();
                while let Some(batch) = queue.front().copied() {
                    if rest.is_empty() {
                        break;
                    }
                    if let Err(e) = generator::check_batch(rest, &batch) {
                        panic!("{topic}/{}: {e}", data.partition_index);
                    }
                    rest = &rest[batch.records as usize..];
                    checked += batch.records;
                    queue.pop_front();
                }
                assert!(
                    rest.is_empty(),
                    "{topic}/{}: records past the last batch",
                    data.partition_index
                );
            }
            // The first partition with data always returns at least one batch.
            let waiting = pending.iter().any(|(_, q)| !q.is_empty());
            assert!(
                checked > before || !waiting,
                "{topic}: a fetch returned none of the records still to read"
            );
        }
    }
    checked
}

fn mib(kib: f64) -> f64 {
    kib / 1024.0
}

/// The samples from `from` to `to` (fractions of the run).
fn window(samples: &[Sample], wall: Duration, from: f64, to: f64) -> Vec<Sample> {
    let (a, b) = (wall.as_secs_f64() * from, wall.as_secs_f64() * to);
    samples
        .iter()
        .copied()
        .filter(|s| s.at_s >= a && s.at_s <= b)
        .collect()
}

#[test]
fn two_thousand_partitions_and_a_thousand_busy_connections() {
    let duration = load_duration();
    let test_started = Instant::now();
    let (mut broker, hard) = start_broker_with_low_soft_limit();
    check_broker_raised_its_limit(&broker, hard);
    let topics = topic_names();
    let created = Instant::now();
    create_topics(&broker, &topics);
    let idle = proc_stats::sample(broker.pid(), 0.0, 0).expect("broker is running");
    println!(
        "created {TOPICS} topics x {PARTITIONS_PER_TOPIC} partitions in {:.1?}; broker idle: \
         RSS {:.1} MiB, {} fds, {:.2} CPU-s",
        created.elapsed(),
        mib(idle.rss_kib as f64),
        idle.fds,
        idle.cpu_s
    );

    let stats = Arc::new(Stats::default());
    let load = run_load(&broker, topics.clone(), duration, &stats);
    let checked = verify_log(&broker, &topics, &load.batches);

    println!("{}", proc_stats::table(&load.samples));
    let errors = stats.errors.load(Ordering::Relaxed);
    let peak = load.samples.iter().map(|s| s.rss_kib).max().unwrap_or(0);
    let (first, last) = (
        load.samples.first().expect("samples"),
        load.samples.last().expect("samples"),
    );
    println!(
        "load: {CONNECTIONS} connections ({} opened, {} open at the end) for {:.1?}: {} requests, \
         {} batches / {} records produced (acks=all) and read back at once, {} long polls, \
         {errors} errors; afterwards {checked} records verified in the log",
        load.opened,
        load.still_open,
        load.wall,
        stats.requests.load(Ordering::Relaxed),
        stats.produced_batches.load(Ordering::Relaxed),
        stats.produced_records.load(Ordering::Relaxed),
        stats.long_polls.load(Ordering::Relaxed),
    );
    println!(
        "broker: RSS {:.1} MiB at start, {:.1} MiB peak, {:.1} MiB at end; fds {}..{}; \
         CPU {:.1} s during the load ({:.0}% of one core); test wall time {:.1?}",
        mib(first.rss_kib as f64),
        mib(peak as f64),
        mib(last.rss_kib as f64),
        load.samples.iter().map(|s| s.fds).min().unwrap_or(0),
        load.samples.iter().map(|s| s.fds).max().unwrap_or(0),
        last.cpu_s - first.cpu_s,
        100.0 * (last.cpu_s - first.cpu_s) / load.wall.as_secs_f64(),
        test_started.elapsed()
    );

    let kept = stats.first_errors.lock().expect("errors").clone();
    assert_eq!(
        errors,
        0,
        "requests failed; the first ones:\n{}",
        kept.join("\n")
    );
    assert_eq!(load.opened, CONNECTIONS, "connections opened");
    assert_eq!(
        load.still_open, CONNECTIONS,
        "connections still answering at the end"
    );
    assert!(
        stats.produced_batches.load(Ordering::Relaxed) > 0,
        "nothing was produced"
    );
    assert_eq!(
        checked,
        stats.produced_records.load(Ordering::Relaxed),
        "records read back"
    );

    assert!(
        mib(peak as f64) < RSS_LIMIT_MIB,
        "broker RSS peaked at {:.1} MiB",
        mib(peak as f64)
    );
    let middle = proc_stats::mean_rss_kib(&window(&load.samples, load.wall, 1.0 / 3.0, 2.0 / 3.0));
    let end = proc_stats::mean_rss_kib(&window(&load.samples, load.wall, 2.0 / 3.0, 1.01));
    assert!(
        middle > 0.0 && end > 0.0,
        "too few samples for the growth check"
    );
    let bound = middle * (1.0 + RSS_GROWTH_FRACTION) + RSS_GROWTH_SLACK_MIB * 1024.0;
    println!(
        "RSS mean: middle third {:.1} MiB, last third {:.1} MiB (bound {:.1} MiB)",
        mib(middle),
        mib(end),
        mib(bound)
    );
    assert!(
        end <= bound,
        "broker RSS grew from {:.1} to {:.1} MiB",
        mib(middle),
        mib(end)
    );

    let segment_files = (TOPICS as u64) * PARTITIONS_PER_TOPIC as u64 * FILES_PER_SEGMENT;
    let fd_min = load.samples.iter().map(|s| s.fds).min().unwrap_or(0);
    let fd_max = load.samples.iter().map(|s| s.fds).max().unwrap_or(0);
    assert!(
        fd_min >= segment_files + CONNECTIONS as u64,
        "the broker held {fd_min} descriptors: fewer than {segment_files} segment files and \
         {CONNECTIONS} sockets"
    );
    assert!(
        fd_max - fd_min <= FD_SPREAD,
        "broker descriptors varied from {fd_min} to {fd_max}"
    );

    // With 2,000 partitions to close, a clean stop must still fit the harness's
    // SIGTERM timeout, and the logs must come back whole.
    let stopping = Instant::now();
    let status = broker.stop().expect("broker was running");
    assert!(status.success(), "broker exited with {status} on SIGTERM");
    let stopped_in = stopping.elapsed();
    let restarting = Instant::now();
    broker.restart();
    let restarted_in = restarting.elapsed();
    let checked_again = verify_log(&broker, &topics, &load.batches);
    assert_eq!(checked_again, checked, "records read back after a restart");
    println!(
        "clean stop with {} partitions took {stopped_in:.1?}; restart {restarted_in:.1?}; \
         {checked_again} records verified again",
        TOPICS * PARTITIONS_PER_TOPIC as usize
    );
    // A crash with 2,000 partitions open: every log is recovered from its last
    // recovery point (the active segments are rescanned), and nothing acknowledged
    // is lost (the page cache survives a process kill).
    broker.kill().expect("broker was running");
    let recovering = Instant::now();
    broker.restart();
    let recovered_in = recovering.elapsed();
    let checked_after_kill = verify_log(&broker, &topics, &load.batches);
    assert_eq!(
        checked_after_kill, checked,
        "records read back after a SIGKILL"
    );
    println!(
        "SIGKILL with {} partitions: restart with recovery {recovered_in:.1?}; \
         {checked_after_kill} records verified again",
        TOPICS * PARTITIONS_PER_TOPIC as usize
    );
    let status = broker.stop().expect("broker was running");
    assert!(
        status.success(),
        "broker exited with {status} on the last SIGTERM"
    );
}
