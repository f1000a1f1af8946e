//! Damaged files on disk (issue 7): the broker starts, cuts or rebuilds what is
//! damaged, logs at warn level exactly what it dropped (file, byte position, bytes,
//! batches and their offsets, or the index rebuilt), serves every record before the
//! damage at its old offset, and takes new records at the right offset.
//!
//! Each test fills a one-partition topic through a real broker with the `strom` client
//! (one 10-record, 221-byte batch per produce; `segment.bytes=1200` rolls every 5
//! batches, so 12 batches make segments 0, 50 and 100; `index.interval.bytes=200`
//! indexes every batch), stops the broker (SIGTERM, or SIGKILL where a crash is the
//! point), damages the files, restarts it and reads everything back with the client.
//!
//! Where the damage is decides what it costs, as in Kafka's `LogLoader` (see
//! `crates/storage/src/log/load.rs`): a damaged tail of the active segment is cut
//! there; a damaged flushed segment in the middle is cut alone and the later segments
//! are kept, leaving a gap in the offsets; damage in a segment that crash recovery
//! must treat as unflushed (here: the recovery point checkpoint lost) ends the log
//! there and deletes the later segments.

#[path = "support/mod.rs"]
mod support;

use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;
use support::Broker;
use support::cli::strom;

const TOPIC: &str = "damaged";
const GROUP: &str = "billing";

type Records = Vec<(u64, String)>;

/// A broker with a one-partition `__consumer_offsets`, and `TOPIC` holding 12 batches
/// of 10 `rec-NNNNN` values (the value names the offset) in segments 0, 50 and 100;
/// batch `b` has timestamp `t0 + b` seconds. Returns the broker and `t0`.
fn filled_broker() -> (Broker, i64) {
    let broker = Broker::builder()
        .arg("-o")
        .arg("offsets.topic.num.partitions=1")
        .arg("-o")
        .arg("group.initial.rebalance.delay.ms=200")
        .start();
    run(
        &broker,
        &format!(
            "topic create {TOPIC} --partitions 1 --config segment.bytes=1200 \
             --config index.interval.bytes=200"
        ),
    );
    let now_s = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    // Whole seconds an hour ago: no retention setting touches them.
    let t0 = (now_s as i64 - 3600) * 1000;
    for b in 0..12u64 {
        let values: Vec<String> = original(b * 10..b * 10 + 10)
            .into_iter()
            .map(|r| r.1)
            .collect();
        produce(&broker, &values, Some(t0 + b as i64 * 1000));
    }
    assert_eq!(segment_bases(&partition_dir(&broker)), [0, 50, 100]);
    (broker, t0)
}

/// `strom` with `args` split at spaces; requires success and returns stdout.
fn run(broker: &Broker, args: &str) -> String {
    strom(broker, &args.split_whitespace().collect::<Vec<_>>()).ok()
}

/// One produce of `values`: one batch.
fn produce(broker: &Broker, values: &[String], timestamp: Option<i64>) {
    let ts = timestamp.map(|t| t.to_string());
    let mut args = vec!["produce", TOPIC, "--partition", "0"];
    if let Some(ts) = &ts {
        args.extend(["--timestamp", ts.as_str()]);
    }
    strom(broker, &args).stdin(values.join("\n") + "\n").ok();
}

/// `rec-NNNNN` at their own offsets.
fn original(offsets: Range<u64>) -> Records {
    offsets.map(|o| (o, format!("rec-{o:05}"))).collect()
}

/// Produces 10 `new-N` records and returns them at the offsets they must get.
fn produce_new(broker: &Broker, from: u64) -> Records {
    let new: Records = (0..10).map(|i| (from + i, format!("new-{i}"))).collect();
    let values: Vec<String> = new.iter().map(|(_, v)| v.clone()).collect();
    produce(broker, &values, None);
    new
}

/// The records of `TOPIC` as (offset, value), read by the client from `start`
/// (`--from-beginning`, or `--from-timestamp MS`) to the end.
fn consume(broker: &Broker, start: &str) -> Records {
    let args = format!("consume {TOPIC} -e {start} --format %o:%v\\n");
    run(broker, &args)
        .lines()
        .map(|l| {
            let (o, v) = l
                .split_once(':')
                .unwrap_or_else(|| panic!("bad line {l:?}"));
            (o.parse().expect("offset"), v.to_string())
        })
        .collect()
}

fn assert_served(broker: &Broker, expected: &Records, what: &str) {
    let got = consume(broker, "--from-beginning");
    assert!(
        got == *expected,
        "{what}: served {} records, expected {}; first difference at {:?}\n{}",
        got.len(),
        expected.len(),
        got.iter().zip(expected).find(|(g, e)| g != e),
        broker.log_tail(40)
    );
}

fn partition_dir(broker: &Broker) -> PathBuf {
    broker.data_dir().join(format!("{TOPIC}-0"))
}

fn segment_bases(dir: &Path) -> Vec<u64> {
    let mut bases: Vec<u64> = fs::read_dir(dir)
        .expect("list partition dir")
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            name.strip_suffix(".log")?.parse().ok()
        })
        .collect();
    bases.sort_unstable();
    bases
}

fn file(dir: &Path, base: u64, suffix: &str) -> PathBuf {
    dir.join(format!("{base:020}.{suffix}"))
}

fn len(path: &Path) -> u64 {
    fs::metadata(path).expect("metadata").len()
}

/// One record batch as stored: where, how long, which offsets.
#[derive(Debug, Clone, Copy)]
struct Batch {
    position: u64,
    size: u64,
    base_offset: u64,
    last_offset: u64,
}

/// The last batch of a `.log`, found by walking the length fields (Kafka's v2 layout).
fn last_batch(path: &Path) -> Batch {
    let data = fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let mut last = None;
    let mut pos = 0usize;
    while pos + 61 <= data.len() {
        let be = |at: usize, n: usize| {
            data[pos + at..pos + at + n]
                .iter()
                .fold(0u64, |acc, b| acc << 8 | u64::from(*b))
        };
        let batch = Batch {
            position: pos as u64,
            size: 12 + be(8, 4),
            base_offset: be(0, 8),
            last_offset: be(0, 8) + be(23, 4),
        };
        pos += batch.size as usize;
        last = Some(batch);
    }
    last.expect("a batch")
}

fn flip_bit(path: &Path, position: u64) {
    let mut data = fs::read(path).expect("read");
    data[position as usize] ^= 0x10;
    fs::write(path, data).expect("write");
}

fn set_len(path: &Path, len: u64) {
    let f = OpenOptions::new().write(true).open(path).expect("open");
    f.set_len(len).expect("set_len");
}

/// Appends `len` deterministic bytes that are no record batch (xorshift).
fn append_garbage(path: &Path, len: usize, mut x: u64) {
    let bytes: Vec<u8> = (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let mut f = OpenOptions::new().append(true).open(path).expect("open");
    f.write_all(&bytes).expect("append");
}

fn stop_cleanly(broker: &mut Broker) {
    let status = broker.stop().expect("broker was running");
    assert!(status.success(), "exit {status}\n{}", broker.log_tail(30));
}

/// Restarts the (stopped or killed) broker; returns the log of this start.
fn restart(broker: &mut Broker) -> String {
    broker.restart();
    let log = fs::read_to_string(broker.log_path()).expect("broker log");
    let at = log.rfind("===== start #").expect("start banner");
    log[at..].to_string()
}

/// The value of `name=` in a log line (up to the next space).
fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let key = format!("{name}=");
    line.split_whitespace()
        .find_map(|t| t.strip_prefix(key.as_str()))
}

/// The WARN line with `message` whose `path=` is `path`, checked to hold each
/// `name=value` of `fields` (space-separated); panics showing the log.
fn warn_line<'a>(log: &'a str, message: &str, path: &Path, fields: &str) -> &'a str {
    let path = path.display().to_string();
    let line = log
        .lines()
        .find(|l| {
            l.contains(" WARN ") && l.contains(message) && field(l, "path") == Some(path.as_str())
        })
        .unwrap_or_else(|| panic!("no WARN `{message}` for {path} in the log:\n{log}"));
    for want in fields.split_whitespace() {
        let (name, value) = want.split_once('=').expect("name=value");
        assert_eq!(field(line, name), Some(value), "{name} in: {line}");
    }
    line
}

fn assert_no_warnings(log: &str) {
    let warnings: Vec<&str> = log.lines().filter(|l| l.contains(" WARN ")).collect();
    assert!(
        warnings.is_empty(),
        "unexpected warnings:\n{}",
        warnings.join("\n")
    );
}

#[test]
fn truncated_segment_is_cut_at_the_torn_batch() {
    let (mut broker, _) = filled_broker();
    broker.kill().expect("broker was running");
    let active = file(&partition_dir(&broker), 100, "log");
    let last = last_batch(&active);
    let cut = last.position + last.size / 2;
    set_len(&active, cut);

    let log = restart(&mut broker);
    let fields = format!(
        "position={} truncated_bytes={} dropped_batches=1 dropped_offsets=110..=119 \
         next_offset=110",
        last.position,
        cut - last.position
    );
    let line = warn_line(&log, "truncated damaged segment", &active, &fields);
    assert!(line.contains("torn batch"), "{line}");
    assert_eq!(len(&active), last.position);
    let mut expected = original(0..110);
    assert_served(&broker, &expected, "after the cut");
    expected.extend(produce_new(&broker, 110));
    assert_served(&broker, &expected, "after producing again");
    stop_cleanly(&mut broker);
}

#[test]
fn random_bytes_appended_to_segments_are_cut() {
    let (mut broker, _) = filled_broker();
    stop_cleanly(&mut broker);
    let dir = partition_dir(&broker);
    let damaged = [(file(&dir, 50, "log"), 777), (file(&dir, 100, "log"), 1000)];
    let sizes = damaged.clone().map(|(path, _)| len(&path));
    for (seed, (path, extra)) in damaged.iter().enumerate() {
        append_garbage(path, *extra, seed as u64 + 7);
    }

    let log = restart(&mut broker);
    for ((path, extra), size) in damaged.iter().zip(sizes) {
        warn_line(&log, "segment failed its check", path, "");
        let fields = format!(
            "position={size} truncated_bytes={extra} dropped_batches=0 dropped_offsets=none"
        );
        warn_line(&log, "truncated damaged segment", path, &fields);
        assert_eq!(len(path), size);
    }
    // Garbage after the middle segment's last batch costs no offsets: the later
    // segment stays.
    assert_eq!(segment_bases(&dir), [0, 50, 100]);
    let mut expected = original(0..120);
    assert_served(&broker, &expected, "after cutting the garbage");
    expected.extend(produce_new(&broker, 120));
    assert_served(&broker, &expected, "after producing again");
    stop_cleanly(&mut broker);
}

#[test]
fn bit_flip_in_the_last_batch_drops_that_batch() {
    let (mut broker, _) = filled_broker();
    stop_cleanly(&mut broker);
    let active = file(&partition_dir(&broker), 100, "log");
    let last = last_batch(&active);
    // Inside the records, which the CRC-32C covers.
    flip_bit(&active, last.position + last.size - 3);

    let log = restart(&mut broker);
    let fields = format!(
        "position={} truncated_bytes={} dropped_batches=1 dropped_offsets=110..=119 \
         kept_batches=1 next_offset=110",
        last.position, last.size
    );
    let line = warn_line(&log, "truncated damaged segment", &active, &fields);
    assert!(line.contains("CRC-32C mismatch"), "{line}");
    let mut expected = original(0..110);
    assert_served(&broker, &expected, "after the cut");
    expected.extend(produce_new(&broker, 110));
    assert_served(&broker, &expected, "after producing again");
    stop_cleanly(&mut broker);
}

/// Damages the index files of every segment with `damage`, restarts, and checks the
/// rebuild: `expect_line` and a "rebuilt" WARN per segment, the same records,
/// ListOffsets by time answered from the rebuilt time indexes, index files identical to
/// the originals after a clean stop, and a next start that finds nothing to repair.
fn check_index_rebuild(damage: impl Fn(&Path, u64), expect_line: impl Fn(&str, &Path, u64)) {
    let (mut broker, t0) = filled_broker();
    stop_cleanly(&mut broker);
    let dir = partition_dir(&broker);
    let read_indexes = || {
        [0, 50, 100].map(|b| {
            let read = |suffix| fs::read(file(&dir, b, suffix)).expect("read index");
            (read("index"), read("timeindex"))
        })
    };
    let saved = read_indexes();
    assert!(saved.iter().all(|(i, t)| !i.is_empty() && !t.is_empty()));
    for base in [0, 50, 100] {
        damage(&dir, base);
    }

    let log = restart(&mut broker);
    for base in [0, 50, 100] {
        expect_line(&log, &dir, base);
        let n = if base == 100 { 2 } else { 5 };
        let index = file(&dir, base, "index");
        let fields = format!("entries={n} time_index_entries={n} batches={n}");
        warn_line(&log, "rebuilt the segment's indexes", &index, &fields);
    }
    assert_served(&broker, &original(0..120), "after the rebuild");
    // Batch 7 (offsets 70..79) is the first at or after its timestamp.
    let from_time = consume(&broker, &format!("--from-timestamp {}", t0 + 7000));
    assert_eq!(from_time, original(70..120), "ListOffsets by time");

    stop_cleanly(&mut broker);
    assert!(
        read_indexes() == saved,
        "rebuilt index files differ from the originals"
    );
    assert_no_warnings(&restart(&mut broker));
    let mut expected = original(0..120);
    expected.extend(produce_new(&broker, 120));
    assert_served(&broker, &expected, "after producing again");
    stop_cleanly(&mut broker);
}

#[test]
fn deleted_index_files_are_rebuilt() {
    // The offset index of segments 0 and 100, the time index of segment 50.
    let missing =
        |dir: &Path, base: u64| file(dir, base, if base == 50 { "timeindex" } else { "index" });
    check_index_rebuild(
        |dir, base| fs::remove_file(missing(dir, base)).expect("rm index"),
        |log, dir, base| {
            let fields = format!("base_offset={base}");
            warn_line(log, "index file missing", &missing(dir, base), &fields);
        },
    );
}

#[test]
fn zero_length_index_files_are_rebuilt() {
    // Both index files of segments 0 and 100, only the time index of segment 50.
    check_index_rebuild(
        |dir, base| {
            if base != 50 {
                set_len(&file(dir, base, "index"), 0);
            }
            set_len(&file(dir, base, "timeindex"), 0);
        },
        |log, dir, base| {
            let line = warn_line(log, "segment failed its check", &file(dir, base, "log"), "");
            let (index, why) = match base {
                50 => ("timeindex", "newer than the index's last"),
                _ => ("index", "bytes after its last entry"),
            };
            let named = format!("{}:", file(dir, base, index).display());
            assert!(line.contains(&named) && line.contains(why), "{line}");
        },
    );
}

/// The group's committed offset of `TOPIC`-0, through OffsetFetch.
fn committed(broker: &Broker) -> Option<i64> {
    let out = run(broker, &format!("group describe {GROUP} --output json"));
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("bad JSON ({e}): {out}"));
    v["partitions"].as_array()?.iter().find_map(|p| {
        (p["topic"] == TOPIC && p["partition"] == 0)
            .then(|| p["current_offset"].as_i64())
            .flatten()
    })
}

fn commit_as_admin(broker: &Broker, offset: u64) {
    run(
        broker,
        &format!("group reset-offsets {GROUP} --topic {TOPIC} --to-offset {offset} --execute"),
    );
}

#[test]
fn corrupt_consumer_offsets_tail_keeps_the_commits_before_it() {
    let (mut broker, _) = filled_broker();
    // A member joins, reads 10 records and commits on exit; then two admin commits.
    let read = run(
        &broker,
        &format!("consume {TOPIC} -g {GROUP} --from-beginning -n 10"),
    );
    assert_eq!(read.lines().count(), 10);
    assert_eq!(committed(&broker), Some(10));
    commit_as_admin(&broker, 15);
    commit_as_admin(&broker, 20);
    assert_eq!(committed(&broker), Some(20));
    stop_cleanly(&mut broker);

    let offsets = broker.data_dir().join("__consumer_offsets-0");
    let segment = file(
        &offsets,
        *segment_bases(&offsets).last().expect("a segment"),
        "log",
    );
    let last = last_batch(&segment);
    flip_bit(&segment, last.position + last.size - 2);
    let log = restart(&mut broker);
    let fields = format!(
        "position={} truncated_bytes={} dropped_batches=1 dropped_offsets={}..={}",
        last.position, last.size, last.base_offset, last.last_offset
    );
    warn_line(&log, "truncated damaged segment", &segment, &fields);
    assert_eq!(committed(&broker), Some(15), "the commit before the damage");

    // The group commits again: a member resumes at 15, reads 5 and commits 20.
    let read = run(
        &broker,
        &format!("consume {TOPIC} -g {GROUP} -n 5 --format %o\\n"),
    );
    assert_eq!(
        read.lines().collect::<Vec<_>>(),
        ["15", "16", "17", "18", "19"]
    );
    assert_eq!(committed(&broker), Some(20));
    commit_as_admin(&broker, 25);
    assert_no_warnings(&restart(&mut broker));
    assert_eq!(
        committed(&broker),
        Some(25),
        "commits after the repair are durable"
    );
    stop_cleanly(&mut broker);
}

#[test]
fn damaged_middle_segment_is_cut_and_later_segments_are_kept() {
    let (mut broker, _) = filled_broker();
    stop_cleanly(&mut broker);
    let dir = partition_dir(&broker);
    let middle = file(&dir, 50, "log");
    let last = last_batch(&middle);
    assert_eq!((last.base_offset, last.last_offset), (90, 99));
    flip_bit(&middle, last.position + last.size - 3);

    let log = restart(&mut broker);
    let fields = format!(
        "position={} truncated_bytes={} dropped_batches=1 dropped_offsets=90..=99",
        last.position, last.size
    );
    warn_line(&log, "truncated damaged segment", &middle, &fields);
    let gap = "missing_offsets=90..100 next_segment_base=100";
    warn_line(
        &log,
        "offsets missing before the next segment",
        &middle,
        gap,
    );
    assert_eq!(segment_bases(&dir), [0, 50, 100]);
    // Records after the damage keep their offsets; new ones continue at the old end.
    let mut expected = original(0..90);
    expected.extend(original(100..120));
    assert_served(&broker, &expected, "around the gap");
    expected.extend(produce_new(&broker, 120));
    assert_served(&broker, &expected, "after producing again");

    // The gap is no damage to the next start.
    stop_cleanly(&mut broker);
    assert_no_warnings(&restart(&mut broker));
    assert_served(&broker, &expected, "after another restart");
    stop_cleanly(&mut broker);
}

#[test]
fn damage_in_an_unflushed_segment_ends_the_log_there() {
    let (mut broker, _) = filled_broker();
    broker.kill().expect("broker was running");
    let dir = partition_dir(&broker);
    // Without its recovery point, crash recovery must treat every segment as unflushed.
    fs::remove_file(dir.join("partition.checkpoint")).expect("rm checkpoint");
    let middle = file(&dir, 50, "log");
    let last = last_batch(&middle);
    flip_bit(&middle, last.position + last.size - 3);
    let active = file(&dir, 100, "log");
    let active_size = len(&active);

    let log = restart(&mut broker);
    let fields = format!("position={} dropped_offsets=90..=99", last.position);
    warn_line(&log, "truncated damaged segment", &middle, &fields);
    let fields = format!("bytes={active_size} batches=2 offsets=100..=119 log_end_offset=90");
    warn_line(&log, "deleted segment after damage", &active, &fields);
    assert_eq!(segment_bases(&dir), [0, 50]);
    let mut expected = original(0..90);
    assert_served(&broker, &expected, "after the cut");
    expected.extend(produce_new(&broker, 90));
    assert_served(&broker, &expected, "after producing again");
    stop_cleanly(&mut broker);
}
