//! The idempotent producer across broker crashes: no duplicate, no gap.
//!
//! confluent-kafka (tests/clients/idempotent_restart.py) produces the values 0..N-1 to
//! a single-partition topic with `enable.idempotence=true`, `acks=all` and a long
//! `message.timeout.ms`, paced so that production lasts about 15 s. Meanwhile this test
//! SIGKILLs the broker and restarts it (same port, same data directory) at least
//! [`MIN_KILLS`] times, each time after the producer has moved on from the previous
//! crash. librdkafka retries the batches that were in flight with their original
//! producer id and sequence numbers; a batch that had reached the log before the crash
//! must be recognised by the broker's idempotent-producer state (rebuilt from the log
//! at restart) and answered with its original offsets, not written again.
//!
//! The broker runs with `log.flush.interval.messages=1` (fsync before every append is
//! acknowledged). That is not what makes records survive here (SIGKILL keeps the page
//! cache), but it widens the window between a batch reaching the log and its
//! acknowledgement, so that crashes often land inside it: exactly the retries that
//! must be deduplicated. Right after each crash the test reads the partition's segment
//! files and checks they hold exactly the values 0..E-1; librdkafka's `RETRY` lines
//! (batches that failed in flight) whose values are all below E were in the log before
//! the crash, so their retries are counted as deduplications. Kills continue past the
//! minimum (up to [`MAX_KILLS`]) until at least one such retry was seen.
//!
//! At the end: the producer must report every value delivered without error at
//! offset == value, no fatal error, and the whole partition (read back by a consumer,
//! and from the segment files after a clean stop) must be exactly 0..N-1 in order.
//!
//! Declared as a `[[test]]` of `strom-cli` for `CARGO_BIN_EXE_strom`.

#[path = "support/mod.rs"]
mod support;

use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::records::RecordBatchDecoder;
use support::Broker;

const TOPIC: &str = "idempotent-restart";
const RECORDS: u64 = 30_000;
/// Records per second: production lasts about RECORDS / RATE seconds.
const RATE: u64 = 2_000;
const MIN_KILLS: usize = 3;
const MAX_KILLS: usize = 8;
/// The first crash waits for this many acknowledgements (the producer is warmed up).
const FIRST_KILL_AFTER_ACKED: u64 = 3_000;
/// A later crash waits until this many more values than were sent at the previous
/// crash are acknowledged: everything in flight then has been resolved.
const KILL_SPACING: u64 = 1_500;
/// The producer program's own deadline, and ours for it.
const PRODUCER_DEADLINE_SECS: u64 = 80;
const PRODUCER_TIMEOUT: Duration = Duration::from_secs(85);
const VERIFY_TIMEOUT: Duration = Duration::from_secs(60);

/// A child process with its stdout lines streamed to a channel (and kept), its stderr
/// kept, in its own process group; the group is SIGKILLed when dropped.
struct Spawned {
    child: Child,
    lines: Receiver<String>,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
}

impl Spawned {
    fn spawn(program: &str, args: &[String]) -> Spawned {
        let mut child = Command::new(program)
            .args(args)
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
        let (tx, lines) = mpsc::channel();
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let out = BufReader::new(child.stdout.take().expect("piped stdout"));
        let keep = stdout.clone();
        thread::spawn(move || {
            for line in out.lines() {
                let Ok(line) = line else { break };
                keep.lock()
                    .expect("stdout lock")
                    .push_str(&format!("{line}\n"));
                let _ = tx.send(line);
            }
        });
        let mut err = child.stderr.take().expect("piped stderr");
        let keep = stderr.clone();
        thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    break;
                }
                keep.lock()
                    .expect("stderr lock")
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Spawned {
            child,
            lines,
            stdout,
            stderr,
        }
    }

    fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    fn wait_until(&mut self, deadline: Instant) -> Option<ExitStatus> {
        loop {
            if let Some(status) = self.exited() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    fn kill(&mut self) {
        let _ = Command::new("kill")
            .arg("-KILL")
            .arg("--")
            .arg(format!("-{}", self.child.id()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The last `n` lines of stdout and of stderr.
    fn tails(&self, n: usize) -> String {
        let tail = |s: &Mutex<String>| {
            let s = s.lock().map(|s| s.clone()).unwrap_or_default();
            let lines: Vec<&str> = s.lines().collect();
            lines[lines.len().saturating_sub(n)..].join("\n")
        };
        format!(
            "---- producer stdout (tail) ----\n{}\n---- producer stderr (tail) ----\n{}",
            tail(&self.stdout),
            tail(&self.stderr)
        )
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if self.exited().is_none() {
            self.kill();
        }
    }
}

/// `key=value` fields of a line.
fn field(line: &str, key: &str) -> Option<u64> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
}

/// `RETRY values=A..B ...` → (A, B).
fn retry_range(line: &str) -> Option<(u64, u64)> {
    let range = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("values="))?;
    let (a, b) = range.split_once("..")?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// The values (decimal ASCII) in the partition's segment files, in log order; a torn
/// batch at the end of a file (a crash mid-write) is left out, as recovery would.
fn values_on_disk(broker: &Broker) -> Vec<u64> {
    let dir = broker.data_dir().join(format!("{TOPIC}-0"));
    let mut segments: Vec<_> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("list {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    segments.sort();
    let mut values = Vec::new();
    for path in segments {
        values.extend(segment_values(&path));
    }
    values
}

fn segment_values(path: &Path) -> Vec<u64> {
    let data = fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    // Whole batches only: base offset (8 bytes), then the length of the rest (4).
    let mut end = 0;
    while end + 12 <= data.len() {
        let len = i32::from_be_bytes(data[end + 8..end + 12].try_into().expect("4 bytes"));
        let Ok(len) = usize::try_from(len) else { break };
        if len == 0 || end + 12 + len > data.len() {
            break;
        }
        end += 12 + len;
    }
    let mut batches = Bytes::from(data).slice(..end);
    RecordBatchDecoder::decode_all(&mut batches)
        .unwrap_or_else(|e| panic!("decode {}: {e:?}", path.display()))
        .into_iter()
        .flat_map(|set| set.records)
        .map(|r| {
            let v = r.value.expect("record value");
            std::str::from_utf8(&v)
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("record value {v:?} is not a number"))
        })
        .collect()
}

/// Checks the log holds exactly 0..len-1 and returns len.
fn assert_exact_prefix(values: &[u64], when: &str) -> u64 {
    if let Some(i) = values.iter().enumerate().position(|(i, v)| *v != i as u64) {
        let from = i.saturating_sub(3);
        panic!(
            "{when}: the log holds {} records but is not exactly 0..{}: offset {i} holds {} \
             (offsets {from}..: {:?})",
            values.len(),
            values.len(),
            values[i],
            &values[from..(i + 5).min(values.len())]
        );
    }
    values.len() as u64
}

/// One crash.
struct Kill {
    /// Values sent / acknowledged by the producer as of its last progress line (printed
    /// every 100 ms) before the crash.
    sent: u64,
    acked: u64,
    /// The log held exactly 0..persisted-1 right after it.
    persisted: u64,
    /// Value ranges of the batches librdkafka retried because of it.
    retried: Vec<(u64, u64)>,
    restart: Duration,
}

impl Kill {
    /// Retried batches that were entirely in the log before the crash.
    fn deduplicated(&self) -> usize {
        self.retried
            .iter()
            .filter(|(_, last)| *last < self.persisted)
            .count()
    }
}

#[test]
fn idempotent_producer_survives_sigkill_restarts_without_duplicates_or_gaps() {
    if !support::require_client(
        "confluent-kafka (pip)",
        support::python_module("confluent_kafka"),
    ) {
        return;
    }
    let started = Instant::now();
    let mut broker = Broker::builder()
        .arg("-o")
        .arg("num.partitions=1")
        .arg("-o")
        .arg("log.flush.interval.messages=1")
        .start();
    let script = support::clients_dir().join("idempotent_restart.py");
    let args: Vec<String> = vec![
        script.to_string_lossy().into_owned(),
        "produce".into(),
        broker.bootstrap(),
        "--topic".into(),
        TOPIC.into(),
        "--records".into(),
        RECORDS.to_string(),
        "--rate".into(),
        RATE.to_string(),
        "--debug".into(),
        "eos,msg".into(),
        "--timeout".into(),
        PRODUCER_DEADLINE_SECS.to_string(),
    ];
    let mut producer = Spawned::spawn(&support::python(), &args);
    let deadline = Instant::now() + PRODUCER_TIMEOUT;

    let (mut sent, mut acked) = (0u64, 0u64);
    let mut kills: Vec<Kill> = Vec::new();
    let mut early_retries: Vec<(u64, u64)> = Vec::new();
    let status = loop {
        match producer.lines.recv_timeout(Duration::from_millis(50)) {
            Ok(line) if line.starts_with("PROGRESS ") => {
                sent = field(&line, "sent").unwrap_or(sent);
                acked = field(&line, "acked").unwrap_or(acked);
            }
            Ok(line) if line.starts_with("RETRY ") => {
                let range = retry_range(&line)
                    .unwrap_or_else(|| panic!("unparsable producer line: {line}"));
                match kills.last_mut() {
                    Some(k) => k.retried.push(range),
                    None => early_retries.push(range),
                }
            }
            Ok(_) | Err(RecvTimeoutError::Timeout) => {}
            // The producer closed its stdout: it is exiting.
            Err(RecvTimeoutError::Disconnected) => {
                if let Some(status) = producer.wait_until(deadline) {
                    break status;
                }
            }
        }
        if let Some(status) = producer.exited() {
            // Drain what is left of its output first.
            while let Ok(line) = producer.lines.recv_timeout(Duration::from_millis(200)) {
                if let (Some(range), Some(k)) = (retry_range(&line), kills.last_mut()) {
                    k.retried.push(range);
                }
            }
            break status;
        }
        if Instant::now() >= deadline {
            producer.kill();
            panic!(
                "producer did not finish within {PRODUCER_TIMEOUT:?} (sent {sent}, acked \
                 {acked}, {} kills)\n{}",
                kills.len(),
                producer.tails(60)
            );
        }

        let deduplicated: usize = kills.iter().map(Kill::deduplicated).sum();
        let want_more = kills.len() < MIN_KILLS || (deduplicated == 0 && kills.len() < MAX_KILLS);
        let due = match kills.last() {
            None => acked >= FIRST_KILL_AFTER_ACKED,
            Some(k) => acked >= k.sent + KILL_SPACING,
        };
        if want_more && due && sent < RECORDS {
            broker.kill().expect("broker was running");
            let when = format!("after SIGKILL #{}", kills.len() + 1);
            let persisted = assert_exact_prefix(&values_on_disk(&broker), &when);
            let t = Instant::now();
            broker.restart();
            kills.push(Kill {
                sent,
                acked,
                persisted,
                retried: Vec::new(),
                restart: t.elapsed(),
            });
        }
    };
    let produced_in = started.elapsed();
    let stdout = producer.stdout.lock().expect("stdout").clone();
    assert!(
        status.success(),
        "producer failed with {status} after {} kills\n{}",
        kills.len(),
        producer.tails(80)
    );
    let summary = stdout
        .lines()
        .find(|l| l.starts_with("PRODUCE OK "))
        .unwrap_or_else(|| {
            panic!(
                "producer printed no PRODUCE OK line\n{}",
                producer.tails(80)
            )
        })
        .to_string();

    for (i, k) in kills.iter().enumerate() {
        println!(
            "SIGKILL #{}: producer had sent {} / acked {} (last progress line); log held \
             0..{}; restart took {:.0?}; {} batch(es) retried {:?}, {} of them already in the \
             log (deduplicated)",
            i + 1,
            k.sent,
            k.acked,
            k.persisted,
            k.restart,
            k.retried.len(),
            k.retried,
            k.deduplicated()
        );
    }
    println!("{summary}");
    assert!(
        kills.len() >= MIN_KILLS,
        "only {} SIGKILLs happened during production (want {MIN_KILLS}); the producer \
         finished too early\n{}",
        kills.len(),
        producer.tails(20)
    );
    assert!(
        early_retries.is_empty(),
        "batches failed in flight before any crash: {early_retries:?}\n{}",
        producer.tails(40)
    );
    let retried: usize = kills.iter().map(|k| k.retried.len()).sum();
    let deduplicated: usize = kills.iter().map(Kill::deduplicated).sum();
    if deduplicated == 0 {
        println!(
            "note: none of the {retried} retried batches had reached the log before its crash \
             in this run, so no retry needed deduplication"
        );
    }

    // Everything back, through a consumer...
    let verify = broker.run_client(
        support::python(),
        &[
            script.to_string_lossy().into_owned(),
            "verify".into(),
            broker.bootstrap(),
            "--topic".into(),
            TOPIC.into(),
            "--records".into(),
            RECORDS.to_string(),
        ],
        &[],
        VERIFY_TIMEOUT,
    );
    assert!(
        verify.stdout.contains("VERIFY OK "),
        "verify printed no VERIFY OK line:\n{}\n{}",
        verify.stdout,
        verify.stderr
    );
    // ... and from the segment files after a clean stop.
    let status = broker.stop().expect("broker was running");
    assert!(status.success(), "broker exited with {status} on SIGTERM");
    assert_eq!(
        assert_exact_prefix(&values_on_disk(&broker), "after the final clean stop"),
        RECORDS,
        "the log must hold exactly the {RECORDS} values"
    );
    println!(
        "idempotence: {RECORDS} values exactly once and in order after {} SIGKILL restarts \
         ({retried} batches retried, {deduplicated} of them deduplicated by the broker); \
         production {:.1?}, test {:.1?}",
        kills.len(),
        produced_in,
        started.elapsed()
    );
}
