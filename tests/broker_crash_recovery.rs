//! Process crash (issue 7): idempotent producers write continuously to 12 partitions
//! while `strom serve` is SIGKILLed and restarted at random moments, at least
//! [`MIN_KILLS`] times; afterwards every acknowledged record is in the log exactly once,
//! in order, at the offset it was acknowledged at, offsets are dense and every batch
//! passes its CRC.
//!
//! tests/clients/crash_producer.py runs [`PRODUCERS`] confluent-kafka producers
//! (`enable.idempotence=true`, `acks=all`, 120 s `message.timeout.ms` so retries span
//! the restarts), each writing `PRODUCER:PARTITION:SEQ` values to explicit partitions,
//! and writes down every delivery report. The kill times come from a seeded generator
//! (printed at the start; rerun a failure with `STROM_CRASH_SEED=<seed>`). At the end
//! the same program reads every partition back (`check.crcs=true`; any consumer error
//! fails it) and this test checks the records against the acknowledgements.
//!
//! Two scenarios: the default flush policy (fsync on roll and close only; a SIGKILL
//! keeps the page cache, so nothing acknowledged may be lost), and `flush.messages=1`
//! on the topic with the broker under strace, where `support/fsync_trace.rs` proves
//! from the syscalls that every acknowledged batch was fdatasynced after it was
//! written and before the response left the broker: an acknowledged record would then
//! survive losing the page cache, not only a process crash.
//!
//! Declared as a `[[test]]` of `strom-cli` for `CARGO_BIN_EXE_strom`.

#[path = "support/fsync_trace.rs"]
mod fsync_trace;
#[path = "support/mod.rs"]
mod support;

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::fs::{self, File};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use support::{Broker, TempDir};

const PARTITIONS: i32 = 12;
const PRODUCERS: usize = 2;
const MIN_KILLS: usize = 20;
/// Time between a restart and the next SIGKILL, uniformly drawn, in ms.
const KILL_GAP_MS: (u64, u64) = (300, 2000);
/// Warm-up: the first kill waits for this many acknowledgements.
const FIRST_ACKS: usize = 200;
const WARM_UP_TIMEOUT: Duration = Duration::from_secs(30);
/// Producing goes on this long after the last restart before the stop signal.
const TAIL: Duration = Duration::from_secs(1);
/// The producer's flush after the stop signal, and the reader.
const FINISH_TIMEOUT: Duration = Duration::from_secs(100);
const READ_TIMEOUT: Duration = Duration::from_secs(90);

fn script() -> String {
    support::clients_dir()
        .join("crash_producer.py")
        .to_string_lossy()
        .into_owned()
}

/// splitmix64: small, seedable, good enough for kill times.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn between(&mut self, (low, high): (u64, u64)) -> u64 {
        low + self.next() % (high - low + 1)
    }
}

fn seed() -> u64 {
    match std::env::var("STROM_CRASH_SEED") {
        Ok(s) => s.parse().expect("STROM_CRASH_SEED must be a number"),
        Err(_) => SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(7, |d| d.as_nanos() as u64),
    }
}

/// The producer program, in its own process group (SIGKILLed on drop), stdout and
/// stderr to files.
struct Producer {
    child: Child,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Producer {
    fn spawn(dir: &Path, args: &[String]) -> Producer {
        let stdout = dir.join("producer.out");
        let stderr = dir.join("producer.err");
        let child = Command::new(support::python())
            .arg(script())
            .args(args)
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(File::create(&stdout).expect("producer stdout file"))
            .stderr(File::create(&stderr).expect("producer stderr file"))
            .spawn()
            .expect("run the producer");
        Producer {
            child,
            stdout,
            stderr,
        }
    }

    fn output(&self) -> String {
        format!(
            "---- producer stdout ----\n{}---- producer stderr ----\n{}",
            support::file_tail(&self.stdout, 40),
            support::file_tail(&self.stderr, 60)
        )
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn signal(name: &str, pid: u32) {
    let _ = Command::new("kill")
        .args([&format!("-{name}"), "--", &pid.to_string()])
        .stderr(Stdio::null())
        .status();
}

/// A broker, possibly under strace: then the broker is strace's child, and killing
/// or stopping it means signalling that child, after which strace exits by itself
/// (with the trace complete).
struct CrashBroker {
    broker: Broker,
    traced: bool,
}

impl CrashBroker {
    /// The `strom serve` process: the broker's own pid, or strace's only child.
    fn strom_pid(&self) -> Option<u32> {
        let pid = self.broker.pid();
        if !self.traced {
            return Some(pid);
        }
        fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
            .ok()?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    }

    /// Waits (bounded) for the strace process to exit after its tracee did.
    fn wait_wrapper(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.broker.is_running() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
        }
    }

    fn crash_and_restart(&mut self) -> Duration {
        if self.traced {
            let pid = self.strom_pid().expect("strace has a strom child");
            signal("KILL", pid);
            self.wait_wrapper();
        }
        self.broker.kill().expect("broker was running");
        let t = Instant::now();
        self.broker.restart();
        t.elapsed()
    }

    /// SIGTERM to strom; its exit status.
    fn stop(&mut self) -> std::process::ExitStatus {
        if self.traced {
            let pid = self.strom_pid().expect("strace has a strom child");
            signal("TERM", pid);
            self.wait_wrapper();
        }
        self.broker.stop().expect("broker was running")
    }
}

impl Drop for CrashBroker {
    fn drop(&mut self) {
        // Under strace, SIGKILLing strace alone would leave strom running.
        if self.traced && self.broker.is_running() {
            if let Some(pid) = self.strom_pid() {
                signal("KILL", pid);
                self.wait_wrapper();
            }
        }
    }
}

struct Scenario {
    topic: &'static str,
    topic_config: &'static [&'static str],
    /// Records per second, all producers together.
    rate: u32,
    traced: bool,
}

/// What the log showed, against what was acknowledged.
#[derive(Debug, Default)]
struct Tally {
    acked: usize,
    read: usize,
    /// Records in the log never acknowledged (allowed).
    unacked_present: usize,
    /// Acknowledged (partition, offset) pairs, for the fsync proof.
    acked_offsets: Vec<(i32, u64)>,
}

fn run(s: &Scenario) -> String {
    if !support::require_client(
        "confluent-kafka (pip)",
        support::python_module("confluent_kafka"),
    ) {
        return String::new();
    }
    if s.traced && !support::require_client("strace", support::find_program("strace").map(drop)) {
        return String::new();
    }
    let started = Instant::now();
    let seed = seed();
    println!(
        "{}: kill times seeded with {seed} (rerun: STROM_CRASH_SEED={seed})",
        s.topic
    );
    let mut rng = Rng(seed);
    let work = TempDir::new("strom-crash");
    let trace_dir = work.path().join("trace");
    fs::create_dir_all(&trace_dir).expect("trace dir");
    let mut builder = Broker::builder();
    if s.traced {
        let args = fsync_trace::wrapper_args(&trace_dir);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        builder = builder.wrapper("sh", &args);
    }
    let mut broker = CrashBroker {
        broker: builder.start(),
        traced: s.traced,
    };
    let bootstrap = broker.broker.bootstrap();
    let acks_path = work.path().join("acks");
    let stop_path = work.path().join("stop");
    let records_path = work.path().join("records");
    let mut args: Vec<String> = vec![
        "produce".into(),
        bootstrap.clone(),
        "--topic".into(),
        s.topic.into(),
        "--partitions".into(),
        PARTITIONS.to_string(),
        "--producers".into(),
        PRODUCERS.to_string(),
        "--rate".into(),
        s.rate.to_string(),
        "--acks-file".into(),
        acks_path.to_string_lossy().into_owned(),
        "--stop-file".into(),
        stop_path.to_string_lossy().into_owned(),
    ];
    for c in s.topic_config {
        args.push("--config".into());
        args.push((*c).into());
    }
    let mut producer = Producer::spawn(work.path(), &args);
    let context = |what: &str, producer: &Producer| {
        format!("{}: {what} [seed {seed}]\n{}", s.topic, producer.output())
    };

    // Warm up: the producers are connected and getting acknowledgements.
    let deadline = Instant::now() + WARM_UP_TIMEOUT;
    while count_lines(&acks_path) < FIRST_ACKS {
        if Instant::now() >= deadline || producer.child.try_wait().ok().flatten().is_some() {
            panic!(
                "{}",
                context("no acknowledgements to start with", &producer)
            );
        }
        thread::sleep(Duration::from_millis(50));
    }

    let mut restarts = Vec::new();
    for _ in 0..MIN_KILLS {
        thread::sleep(Duration::from_millis(rng.between(KILL_GAP_MS)));
        if let Some(status) = producer.child.try_wait().ok().flatten() {
            panic!(
                "{}",
                context(
                    &format!("producer exited with {status} during the crashes"),
                    &producer
                )
            );
        }
        restarts.push(broker.crash_and_restart());
    }
    let acked_at_last_kill = count_lines(&acks_path);
    thread::sleep(TAIL);
    File::create(&stop_path).expect("create the stop file");
    let deadline = Instant::now() + FINISH_TIMEOUT;
    let status = loop {
        if let Some(status) = producer.child.try_wait().ok().flatten() {
            break status;
        }
        if Instant::now() >= deadline {
            panic!(
                "{}",
                context("producer did not finish after the stop signal", &producer)
            );
        }
        thread::sleep(Duration::from_millis(50));
    };
    assert!(
        status.success(),
        "{}",
        context(&format!("producer failed with {status}"), &producer)
    );
    let summary = fs::read_to_string(&producer.stdout).unwrap_or_default();
    let summary = summary
        .lines()
        .find(|l| l.starts_with("PRODUCE OK "))
        .unwrap_or_else(|| panic!("{}", context("no PRODUCE OK line", &producer)))
        .to_string();

    broker.broker.run_client(
        support::python(),
        &[
            script(),
            "read".into(),
            bootstrap,
            "--topic".into(),
            s.topic.into(),
            "--partitions".into(),
            PARTITIONS.to_string(),
            "--out".into(),
            records_path.to_string_lossy().into_owned(),
        ],
        &[],
        READ_TIMEOUT,
    );
    let acks = fs::read_to_string(&acks_path).expect("read the acknowledgements");
    let records = fs::read_to_string(&records_path).expect("read the records");
    let tally = verify(&acks, &records)
        .unwrap_or_else(|e| panic!("{}", context(&format!("log check failed: {e}"), &producer)));

    let mut report = format!(
        "{}: {} SIGKILLs (restarts {:.0?}..{:.0?}), {} records acknowledged ({} by the last \
         kill), {} read back, {} unacknowledged present, no duplicate, no gap, all in order; \
         {summary}",
        s.topic,
        restarts.len(),
        restarts.iter().min().copied().unwrap_or_default(),
        restarts.iter().max().copied().unwrap_or_default(),
        tally.acked,
        acked_at_last_kill,
        tally.read,
        tally.unacked_present,
    );
    if s.traced {
        let status = broker.stop();
        assert!(status.success(), "broker under strace exited with {status}");
        let files = fsync_trace::trace_files(&trace_dir);
        assert_eq!(files.len(), MIN_KILLS + 1, "one trace per broker start");
        let proof = fsync_trace::check(&files, s.topic)
            .unwrap_or_else(|e| panic!("fsync proof failed [seed {seed}]: {e}"));
        let unproven: Vec<_> = tally
            .acked_offsets
            .iter()
            .filter(|(p, o)| !proof.covers(*p, *o))
            .take(10)
            .collect();
        assert!(
            unproven.is_empty(),
            "acknowledged records with no fsync-before-response found in the trace \
             (partition, offset), first: {unproven:?}; proof {proof:?}"
        );
        assert!(
            proof.fsynced_after_write > 0,
            "no produce acknowledgement in the trace"
        );
        let _ = write!(
            report,
            "; strace: {} produce responses over {} broker starts, {} partition acks fsynced \
             after their write and before the response, {} retried duplicates acked after \
             this start's recovery fsync, {} sends cut by a kill counted as sent; all {} \
             acknowledged records covered",
            proof.produce_responses,
            proof.trace_files,
            proof.fsynced_after_write,
            proof.duplicates_fsynced,
            proof.interrupted_sends,
            tally.acked
        );
    }
    let _ = write!(report, "; test took {:.1?}", started.elapsed());
    println!("{report}");
    report
}

fn count_lines(path: &Path) -> usize {
    fs::read(path).map_or(0, |b| b.iter().filter(|&&c| c == b'\n').count())
}

/// (producer, partition, sequence number) of a value `P:PARTITION:SEQ`.
type Key = (u32, i32, u64);

fn parse_key(fields: &[&str]) -> Option<Key> {
    Some((
        fields[0].parse().ok()?,
        fields[1].parse().ok()?,
        fields[2].parse().ok()?,
    ))
}

/// Checks the log (`W`/`R` lines of the reader) against the delivery reports.
fn verify(acks: &str, records: &str) -> Result<Tally, String> {
    let mut acked: HashMap<Key, u64> = HashMap::new();
    let mut errors = Vec::new();
    for line in acks.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.first() == Some(&"ERR") {
            errors.push(line.to_string());
            continue;
        }
        let key = (f.len() == 4).then(|| parse_key(&f)).flatten();
        let (Some(key), Some(offset)) = (key, f.get(3).and_then(|o| o.parse().ok())) else {
            return Err(format!("bad acknowledgement line {line:?}"));
        };
        if acked.insert(key, offset).is_some() {
            return Err(format!("{key:?} acknowledged twice"));
        }
    }
    if !errors.is_empty() {
        return Err(format!(
            "{} delivery errors, first: {:?}",
            errors.len(),
            &errors[..errors.len().min(5)]
        ));
    }
    if acked.is_empty() {
        return Err("nothing was acknowledged".into());
    }

    let mut watermarks: BTreeMap<i32, (u64, u64)> = BTreeMap::new();
    let mut logs: BTreeMap<i32, Vec<(u64, Key)>> = BTreeMap::new();
    for line in records.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let num = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok());
        match (f.first(), num(1), num(2)) {
            (Some(&"W"), Some(p), Some(low)) => {
                let high = num(3).ok_or_else(|| format!("bad line {line:?}"))?;
                watermarks.insert(p as i32, (low, high));
            }
            (Some(&"R"), Some(p), Some(offset)) => {
                let value: Vec<&str> = f.get(3).map_or(vec![], |v| v.split(':').collect());
                let key = (value.len() == 3)
                    .then(|| parse_key(&value))
                    .flatten()
                    .ok_or_else(|| format!("unexpected record {line:?}"))?;
                if key.1 != p as i32 {
                    return Err(format!("record {line:?} is in the wrong partition"));
                }
                logs.entry(p as i32).or_default().push((offset, key));
            }
            _ => return Err(format!("bad line {line:?}")),
        }
    }

    let mut tally = Tally::default();
    let mut seen: HashMap<Key, Vec<(i32, u64)>> = HashMap::new();
    for p in 0..PARTITIONS {
        let &(low, high) = watermarks
            .get(&p)
            .ok_or_else(|| format!("no watermarks for partition {p}"))?;
        if low != 0 {
            return Err(format!("partition {p} starts at {low}, not 0"));
        }
        let log = logs.remove(&p).unwrap_or_default();
        // Dense: offsets 0..high, each once, in order.
        if let Some((i, (o, _))) = log.iter().enumerate().find(|(i, (o, _))| *o != *i as u64) {
            return Err(format!(
                "partition {p}: offset {o} read at position {i} (gap or repeat)"
            ));
        }
        if log.len() as u64 != high {
            return Err(format!(
                "partition {p}: read {} records, high watermark {high}",
                log.len()
            ));
        }
        // Each producer's sequence numbers rise strictly.
        let mut last: HashMap<u32, u64> = HashMap::new();
        for &(offset, key) in &log {
            if let Some(prev) = last.insert(key.0, key.2) {
                if key.2 <= prev {
                    return Err(format!(
                        "partition {p} offset {offset}: producer {} sequence {} after {prev}",
                        key.0, key.2
                    ));
                }
            }
            seen.entry(key).or_default().push((p, offset));
        }
        tally.read += log.len();
    }
    let duplicated: Vec<_> = seen
        .iter()
        .filter(|(_, at)| at.len() > 1)
        .take(10)
        .collect();
    if !duplicated.is_empty() {
        return Err(format!(
            "{} records are in the log more than once, e.g. {duplicated:?}",
            seen.values().filter(|at| at.len() > 1).count()
        ));
    }
    let mut missing = Vec::new();
    for (key, offset) in &acked {
        match seen.get(key).map(Vec::as_slice) {
            Some([(_, at)]) if at == offset => {}
            Some(at) => {
                return Err(format!(
                    "{key:?} acknowledged at offset {offset} but found at {at:?}"
                ));
            }
            None => missing.push((*key, *offset)),
        }
        tally.acked_offsets.push((key.1, *offset));
    }
    if !missing.is_empty() {
        missing.sort_unstable();
        return Err(format!(
            "{} acknowledged records are missing from the log, first {:?}",
            missing.len(),
            &missing[..missing.len().min(10)]
        ));
    }
    tally.acked = acked.len();
    tally.unacked_present = seen.keys().filter(|k| !acked.contains_key(k)).count();
    Ok(tally)
}

#[test]
fn acknowledged_records_survive_random_sigkills_exactly_once_in_order() {
    run(&Scenario {
        topic: "crash-default-flush",
        topic_config: &[],
        rate: 1500,
        traced: false,
    });
}

#[test]
fn with_flush_messages_1_every_acknowledgement_follows_its_fsync() {
    run(&Scenario {
        topic: "crash-flush-every-message",
        topic_config: &["flush.messages=1"],
        rate: 600,
        traced: true,
    });
}
