//! `strom serve` on a full disk (issue 7): the broker's data directory is a 16 MiB
//! tmpfs mounted by this test.
//!
//! confluent-kafka (tests/clients/disk_full.py, acks=all, no retries, so every
//! delivery report is the broker's answer) produces 1 KB records to a one-partition
//! topic with 1 MiB segments until the disk is full. Then:
//!
//! 1. the failed records got KAFKA_STORAGE_ERROR and nothing else failed; the broker
//!    is still up;
//! 2. a consumer reads every acknowledged record back, at its offset, in order, while
//!    the disk is still full; no refused record is in the log (no half-written batch);
//! 3. an offset commit on the full disk gets an error code or succeeds, and the group's
//!    committed offset is what the answer said;
//! 4. a filler file the test wrote first is deleted: producing works again and the
//!    first new record lands right after the last acknowledged one;
//! 5. after a SIGKILL, on the full disk (before step 4) and again after it, the broker
//!    starts, its recovery repairs nothing (no cut, no deleted segment: the refused
//!    appends left no bytes), and everything acknowledged reads back; a clean stop
//!    ends the test.
//!
//! Mounting needs root (CI runs the tests as root). Where `mount` is refused the test
//! fails, unless `STROM_ALLOW_MISSING_CLIENTS=1` turns that into a skip. The mount is
//! removed by a drop guard, after the broker is killed.

#[path = "support/mod.rs"]
mod support;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use support::cli::strom;
use support::{Broker, TempDir};

const TOPIC: &str = "full";
const GROUP: &str = "disk-full-group";
/// Space the test takes first and gives back in step 4.
const FILLER_BYTES: u64 = 4 << 20;
const PROGRAM_DEADLINE_SECS: &str = "90";
const HARD_TIMEOUT: Duration = Duration::from_secs(110);

/// A tmpfs mounted at `path`; unmounted when dropped (lazily if still busy).
struct Mount {
    path: PathBuf,
}

impl Mount {
    /// `None` when mounting is refused and skipping is allowed.
    fn tmpfs(path: &Path, size: &str) -> Option<Mount> {
        fs::create_dir_all(path).expect("create mount point");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .output();
        let why = match out {
            Ok(o) if o.status.success() => {
                return Some(Mount {
                    path: path.to_path_buf(),
                });
            }
            Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_string(),
            Err(e) => format!("cannot run mount: {e}"),
        };
        if support::missing_clients_allowed() {
            println!(
                "SKIP: cannot mount a tmpfs ({why}); {}=1",
                support::ALLOW_MISSING_ENV
            );
            return None;
        }
        panic!(
            "cannot mount a tmpfs for the disk-full test ({why}): run the tests as root, or \
             set {}=1 to skip",
            support::ALLOW_MISSING_ENV
        );
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let done = Command::new("umount")
            .arg(&self.path)
            .status()
            .is_ok_and(|s| s.success());
        if !done {
            let _ = Command::new("umount").arg("-l").arg(&self.path).status();
        }
    }
}

/// Writes `bytes` to `path` (fails the test if the filesystem cannot hold them).
fn write_filler(path: &Path, bytes: u64) {
    let mut f = fs::File::create(path).expect("create filler");
    let chunk = vec![0xa5u8; 1 << 16];
    let mut left = bytes;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        f.write_all(&chunk[..n]).expect("write filler");
        left -= n as u64;
    }
    f.sync_all().expect("sync filler");
}

/// The `KEY=N` field of a summary line.
fn field(line: &str, key: &str) -> i64 {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{key}=")))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key}= in `{line}`"))
}

fn script() -> String {
    support::clients_dir()
        .join("disk_full.py")
        .to_string_lossy()
        .into_owned()
}

/// Runs disk_full.py and returns its `PRODUCE OK` / `VERIFY OK` line.
fn run(broker: &Broker, args: &[String]) -> String {
    let mut all = vec![script()];
    all.extend(args.iter().cloned());
    all.extend(["--timeout".into(), PROGRAM_DEADLINE_SECS.into()]);
    let out = broker.run_client(support::python(), &all, &[], HARD_TIMEOUT);
    let want = if args[0] == "produce" {
        "PRODUCE OK "
    } else {
        "VERIFY OK "
    };
    out.stdout
        .lines()
        .find(|l| l.starts_with(want))
        .unwrap_or_else(|| panic!("no `{want}` line\n{}\n{}", out.stdout, out.stderr))
        .to_string()
}

/// disk_full.py produce: `records` from index `first` to `topic` until `stop_after`
/// reports failed; `extra` arguments after the others.
fn produce_to(
    broker: &Broker,
    topic: &str,
    acks: &Path,
    (first, records, stop_after): (i64, i64, u32),
    extra: &[&str],
) -> String {
    let mut args: Vec<String> = vec![
        "produce".into(),
        broker.bootstrap(),
        "--topic".into(),
        topic.into(),
        "--acks-file".into(),
        acks.to_string_lossy().into_owned(),
        "--first-index".into(),
        first.to_string(),
        "--records".into(),
        records.to_string(),
        "--stop-after-errors".into(),
        stop_after.to_string(),
    ];
    args.extend(extra.iter().map(|a| a.to_string()));
    run(broker, &args)
}

fn produce(broker: &Broker, acks: &Path, first: i64, records: i64, stop_after: u32) -> String {
    produce_to(broker, TOPIC, acks, (first, records, stop_after), &[])
}

fn verify(broker: &Broker, acks: &[&Path]) -> String {
    verify_topic(broker, TOPIC, acks)
}

fn verify_topic(broker: &Broker, topic: &str, acks: &[&Path]) -> String {
    let mut args: Vec<String> = vec!["verify".into(), broker.bootstrap()];
    args.extend(["--topic".into(), topic.into()]);
    for a in acks {
        args.push("--acks-file".into());
        args.push(a.to_string_lossy().into_owned());
    }
    run(broker, &args)
}

fn assert_running(broker: &mut Broker, when: &str) {
    if !broker.is_running() {
        let status = broker.stop();
        panic!(
            "the broker died {when}: {status:?}\n{}",
            broker.log_tail(60)
        );
    }
}

/// An offset commit on the full disk: refused with an error code, or accepted; either
/// way the group's committed offset afterwards is what the answer said.
fn commit_on_full_disk(broker: &Broker) -> String {
    let out = strom(
        broker,
        &[
            "group",
            "reset-offsets",
            GROUP,
            "--topic",
            TOPIC,
            "--to-offset",
            "3",
            "--execute",
            "--timeout",
            "10",
        ],
    )
    .run();
    let described = strom(broker, &["group", "describe", GROUP, "--output", "json"]).run();
    let committed_3 = described.status.success()
        && described
            .stdout
            .replace(' ', "")
            .contains("\"current_offset\":3");
    if out.status.success() {
        assert!(
            committed_3,
            "the commit was acknowledged but the group does not show offset 3: {}{}",
            described.stdout, described.stderr
        );
        "accepted".into()
    } else {
        assert!(
            [
                "COORDINATOR_NOT_AVAILABLE",
                "NOT_COORDINATOR",
                "KAFKA_STORAGE_ERROR"
            ]
            .iter()
            .any(|code| out.stderr.contains(code)),
            "the commit failed without a Kafka error code: {}",
            out.stderr
        );
        assert!(
            !committed_3,
            "the commit was refused but the group shows offset 3: {}",
            described.stdout
        );
        format!("refused: {}", out.stderr.trim())
    }
}

/// SIGKILLs the broker, starts it again and checks its recovery repaired nothing: the
/// refused appends left no bytes behind to cut.
fn kill_and_recover(broker: &mut Broker, when: &str) {
    broker.kill().expect("broker was running");
    let before = fs::read_to_string(broker.log_path()).unwrap_or_default();
    broker.restart();
    let after = fs::read_to_string(broker.log_path()).unwrap_or_default();
    let restart_log = &after[before.len().min(after.len())..];
    // What storage logs for each repair (tests/broker_damaged_files.rs shows them all).
    for repair in [
        "recovered partition log",
        "truncated damaged segment",
        "deleted segment after damage",
        "run past the next segment",
        "offsets missing before the next segment",
        "rebuilt the segment's indexes",
    ] {
        assert!(
            !restart_log.contains(repair),
            "recovery {when} logged `{repair}`:\n{restart_log}"
        );
    }
}

#[test]
fn full_disk_refuses_produce_with_storage_error_and_recovers() {
    if !support::require_client(
        "confluent-kafka (pip)",
        support::python_module("confluent_kafka"),
    ) {
        return;
    }
    let work = TempDir::new("disk-full");
    let Some(mount) = Mount::tmpfs(&work.path().join("mnt"), "16m") else {
        return;
    };
    let filler = mount.path.join("filler");
    write_filler(&filler, FILLER_BYTES);
    let mut broker = Broker::builder().data_dir(mount.path.join("data")).start();
    strom(
        &broker,
        &[
            "topic",
            "create",
            TOPIC,
            "--partitions",
            "1",
            "--config",
            "segment.bytes=1048576",
        ],
    )
    .ok();

    // Until the disk is full: 20 failed reports, out of at most 100 MB of records.
    let first = work.path().join("acks-first.json");
    let line = produce(&broker, &first, 0, 100_000, 20);
    println!("while filling: {line}");
    assert!(
        field(&line, "storage_errors") >= 1,
        "no KAFKA_STORAGE_ERROR: {line}"
    );
    assert_eq!(
        field(&line, "other_errors"),
        0,
        "failures other than storage: {line}"
    );
    let acked = field(&line, "acked");
    assert!(
        acked >= 5_000,
        "the disk filled after only {acked} records: {line}"
    );
    assert_eq!(field(&line, "first_offset"), 0, "{line}");
    assert_eq!(
        field(&line, "last_offset"),
        acked - 1,
        "acked offsets not dense: {line}"
    );
    assert_running(&mut broker, "when the disk filled");
    let log = fs::read_to_string(broker.log_path()).unwrap_or_default();
    assert!(
        log.contains("No space left on device"),
        "the broker log does not name the full disk\n{}",
        broker.log_tail(40)
    );

    // 2. Consumers keep reading on the full disk.
    let line = verify(&broker, &[&first]);
    println!("on the full disk: {line}");
    assert_eq!(field(&line, "read"), acked, "{line}");

    // 3. Offset commits answer with an error code (or succeed), and say which.
    let commit = commit_on_full_disk(&broker);
    println!("offset commit on the full disk: {commit}");
    assert_running(&mut broker, "after an offset commit on the full disk");

    // A crash on the full disk: the broker starts again, repairs nothing, serves all.
    kill_and_recover(&mut broker, "on the full disk");
    let line = verify(&broker, &[&first]);
    println!("after SIGKILL and recovery on the full disk: {line}");
    assert_eq!(field(&line, "read"), acked, "{line}");

    // 4. Free space: producing resumes right after the last acknowledged record.
    fs::remove_file(&filler).expect("remove filler");
    let more = work.path().join("acks-more.json");
    let line = produce(&broker, &more, 1_000_000, 2_000, 1);
    println!("after freeing space: {line}");
    assert_eq!(field(&line, "failed"), 0, "{line}");
    assert_eq!(field(&line, "acked"), 2_000, "{line}");
    assert_eq!(field(&line, "first_offset"), acked, "{line}");
    let line = verify(&broker, &[&first, &more]);
    assert_eq!(field(&line, "read"), acked + 2_000, "{line}");

    // 5. Crash, recover: nothing to repair, everything still there.
    kill_and_recover(&mut broker, "after freeing space");
    let line = verify(&broker, &[&first, &more]);
    println!("after SIGKILL and recovery: {line}");
    assert_eq!(field(&line, "read"), acked + 2_000, "{line}");
    let status = broker.stop().expect("broker was running");
    assert!(
        status.success(),
        "unclean stop: {status}\n{}",
        broker.log_tail(40)
    );
    drop(broker);
    drop(mount);
}

/// Writes `path` until the filesystem is full; returns the bytes written.
fn fill_up(path: &Path) -> u64 {
    let mut f = fs::File::create(path).expect("create filler");
    let chunk = vec![0xa5u8; 4096];
    let mut written = 0u64;
    loop {
        match f.write(&chunk) {
            Ok(0) => return written,
            Ok(n) => written += n as u64,
            Err(e) if e.raw_os_error() == Some(28) => return written,
            Err(e) => panic!("writing {}: {e}", path.display()),
        }
    }
}

/// The one `.log` of partition 0 of `topic` (its first segment).
fn first_segment(data: &Path, topic: &str) -> PathBuf {
    data.join(format!("{topic}-0"))
        .join("00000000000000000000.log")
}

/// An offset index entry that needs a new page of the index while the disk is full
/// and the `.log` still has room in its last page. Indexes are written through a
/// memory map, and a write to an unallocated page of a full tmpfs is a SIGBUS: before
/// issue 7 this killed the broker. Now index space is allocated ahead, so the records
/// that fit are stored and the next ones get KAFKA_STORAGE_ERROR.
#[test]
fn index_page_on_a_full_disk_is_not_a_crash() {
    if !support::require_client(
        "confluent-kafka (pip)",
        support::python_module("confluent_kafka"),
    ) {
        return;
    }
    let work = TempDir::new("disk-full-index");
    let Some(mount) = Mount::tmpfs(&work.path().join("mnt"), "8m") else {
        return;
    };
    let data = mount.path.join("data");
    let mut broker = Broker::builder().data_dir(&data).start();
    let one_by_one = ["--one-by-one", "--value-size"];

    // The size of a one-record batch with a 10-byte value, from a probe topic.
    strom(&broker, &["topic", "create", "probe", "--partitions", "1"]).ok();
    let probe = work.path().join("acks-probe.json");
    let line = produce_to(
        &broker,
        "probe",
        &probe,
        (0, 1, 1),
        &[one_by_one[0], one_by_one[1], "10"],
    );
    assert_eq!(field(&line, "acked"), 1, "{line}");
    let probe_size = fs::metadata(first_segment(&data, "probe"))
        .expect("probe segment")
        .len();
    // Batches of B bytes with B = 1 (mod 8): 512 of them (one offset index entry each,
    // 4096 bytes: the index's first page) end 512 bytes into a page of the .log.
    let value_size = 10 + (9 - probe_size % 8) % 8;
    let batch = probe_size + value_size - 10;
    assert_eq!((512 * batch) % 4096, 512);

    strom(
        &broker,
        &[
            "topic",
            "create",
            "idx",
            "--partitions",
            "1",
            "--config",
            "index.interval.bytes=1",
        ],
    )
    .ok();
    let value_size = value_size.to_string();
    let extra = [one_by_one[0], one_by_one[1], value_size.as_str()];
    let first = work.path().join("acks-first.json");
    let line = produce_to(&broker, "idx", &first, (0, 512, 1), &extra);
    assert_eq!(field(&line, "acked"), 512, "{line}");
    let segment = first_segment(&data, "idx");
    assert_eq!(fs::metadata(&segment).expect("segment").len(), 512 * batch);

    let filler = mount.path.join("filler");
    assert!(fill_up(&filler) > 0, "the filesystem was already full");
    let full = work.path().join("acks-full.json");
    let line = produce_to(&broker, "idx", &full, (512, 200, 1), &extra);
    println!("on the full disk: {line}");
    assert_running(&mut broker, "writing an index entry on the full disk");
    let stored = field(&line, "acked");
    assert!(
        stored > 0,
        "the .log's last page had room for more records: {line}"
    );
    assert_eq!(field(&line, "first_offset"), 512, "{line}");
    assert!(field(&line, "storage_errors") >= 1, "{line}");
    assert_eq!(field(&line, "other_errors"), 0, "{line}");
    let line = verify_topic(&broker, "idx", &[&first, &full]);
    assert_eq!(field(&line, "read"), 512 + stored, "{line}");

    fs::remove_file(&filler).expect("remove filler");
    let more = work.path().join("acks-more.json");
    let line = produce_to(&broker, "idx", &more, (10_000, 20, 1), &extra);
    assert_eq!(field(&line, "acked"), 20, "{line}");
    assert_eq!(field(&line, "first_offset"), 512 + stored, "{line}");
    let line = verify_topic(&broker, "idx", &[&first, &full, &more]);
    assert_eq!(field(&line, "read"), 512 + stored + 20, "{line}");
    let status = broker.stop().expect("broker was running");
    assert!(status.success(), "unclean stop: {status}");
    drop(broker);
    drop(mount);
}
