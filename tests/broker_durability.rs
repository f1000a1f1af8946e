//! Acknowledged records survive a clean stop and a SIGKILL of `strom serve`.
//!
//! confluent-kafka (tests/clients/restart_durability.py) produces 20,000 keyed records
//! with acks=all to a 3-partition topic and writes down where each was acknowledged.
//! Between its steps this test:
//!
//! 1. stops the broker with SIGTERM, checks it exited 0 and that every partition
//!    directory holds the clean-shutdown marker (`.strom-clean-shutdown`), restarts it,
//!    checks the markers are gone (the logs were reopened), and has the client read all
//!    partitions back: every acknowledged record exactly once, at its acknowledged
//!    partition and offset, with its key and value, nothing else;
//! 2. SIGKILLs it (no marker: the next start recovers), restarts, reads back again;
//! 3. produces 2,000 more, reads everything back, SIGKILLs right after, restarts and
//!    reads everything back once more; then a final clean stop.
//!
//! The reader uses `assign()` on every partition (no consumer group: the broker has no
//! group coordinator yet). Declared as a `[[test]]` of `strom-cli` for
//! `CARGO_BIN_EXE_strom`.

#[path = "support/mod.rs"]
mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use support::{Broker, TempDir};

const TOPIC: &str = "durability";
const PARTITIONS: u32 = 3;
const RECORDS: u32 = 20_000;
const MORE_RECORDS: u32 = 2_000;
/// `storage::CLEAN_SHUTDOWN_FILE`.
const CLEAN_SHUTDOWN_MARKER: &str = ".strom-clean-shutdown";
/// The program's own deadline, and the harder one enforced from here.
const PROGRAM_DEADLINE_SECS: &str = "80";
const HARD_TIMEOUT: Duration = Duration::from_secs(90);

fn script() -> String {
    support::clients_dir()
        .join("restart_durability.py")
        .to_string_lossy()
        .into_owned()
}

fn run(broker: &Broker, what: &str, args: &[String]) -> String {
    let mut all = vec![script()];
    all.extend(args.iter().cloned());
    all.push("--timeout".into());
    all.push(PROGRAM_DEADLINE_SECS.into());
    let started = Instant::now();
    let out = broker.run_client(support::python(), &all, &[], HARD_TIMEOUT);
    let expected = match args[0].as_str() {
        "produce" => "PRODUCE OK ",
        _ => "VERIFY OK ",
    };
    let line = out
        .stdout
        .lines()
        .find(|l| l.starts_with(expected))
        .unwrap_or_else(|| {
            panic!(
                "{what}: no `{expected}` line\n---- stdout ----\n{}\n---- stderr ----\n{}",
                out.stdout, out.stderr
            )
        })
        .to_string();
    eprintln!("{what}: done in {:.1?}", started.elapsed());
    line
}

fn produce(broker: &Broker, acks: &Path, first: u32, count: u32) {
    let args: Vec<String> = vec![
        "produce".into(),
        broker.bootstrap(),
        "--topic".into(),
        TOPIC.into(),
        "--partitions".into(),
        PARTITIONS.to_string(),
        "--records".into(),
        count.to_string(),
        "--first-index".into(),
        first.to_string(),
        "--acks-file".into(),
        acks.to_string_lossy().into_owned(),
    ];
    let line = run(broker, &format!("produce {count} from #{first}"), &args);
    assert!(
        line.contains(&format!("records={count} ")),
        "unexpected summary: {line}"
    );
}

fn verify(broker: &Broker, what: &str, acks: &[&Path], expected_records: u32) {
    let mut args: Vec<String> = vec!["verify".into(), broker.bootstrap()];
    for a in acks {
        args.push("--acks-file".into());
        args.push(a.to_string_lossy().into_owned());
    }
    let line = run(broker, what, &args);
    let want = format!("acked={expected_records} read={expected_records} ");
    assert!(line.contains(&want), "{what}: expected `{want}` in: {line}");
}

/// Which partition directories hold the clean-shutdown marker.
fn markers(broker: &Broker) -> Vec<bool> {
    (0..PARTITIONS)
        .map(|p| {
            let dir = broker.data_dir().join(format!("{TOPIC}-{p}"));
            assert!(
                dir.is_dir(),
                "partition directory {} missing",
                dir.display()
            );
            dir.join(CLEAN_SHUTDOWN_MARKER).exists()
        })
        .collect()
}

fn stop_cleanly(broker: &mut Broker) {
    let started = Instant::now();
    let status = broker.stop().expect("broker was running");
    assert!(
        status.success(),
        "broker exited with {status} on SIGTERM\n{}",
        broker.log_tail(40)
    );
    eprintln!("clean stop took {:.1?}", started.elapsed());
    assert_eq!(
        markers(broker),
        vec![true; PARTITIONS as usize],
        "every partition must hold {CLEAN_SHUTDOWN_MARKER} after a clean stop"
    );
}

fn restart(broker: &mut Broker) {
    let started = Instant::now();
    broker.restart();
    eprintln!("restart took {:.1?}", started.elapsed());
    // Partitions are opened at startup, and opening removes the marker first.
    assert_eq!(
        markers(broker),
        vec![false; PARTITIONS as usize],
        "the markers must be gone once the broker has reopened the logs"
    );
}

#[test]
fn acked_records_survive_clean_stop_and_sigkill() {
    if !support::require_client(
        "confluent-kafka (pip)",
        support::python_module("confluent_kafka"),
    ) {
        return;
    }
    let started = Instant::now();
    let work = TempDir::new("durability-acks");
    let first = work.path().join("acks-first.json");
    let more = work.path().join("acks-more.json");
    let mut broker = Broker::builder()
        .arg("-o")
        .arg(format!("num.partitions={PARTITIONS}"))
        .start();

    produce(&broker, &first, 0, RECORDS);

    // 1. Clean stop, restart, read back.
    stop_cleanly(&mut broker);
    restart(&mut broker);
    verify(&broker, "verify after clean restart", &[&first], RECORDS);

    // 2. SIGKILL, restart (crash recovery), read back.
    broker.kill().expect("broker was running");
    assert_eq!(
        markers(&broker),
        vec![false; PARTITIONS as usize],
        "a killed broker leaves no clean-shutdown marker"
    );
    restart(&mut broker);
    verify(&broker, "verify after SIGKILL restart", &[&first], RECORDS);

    // 3. More records after the crash; then a crash right after producing them.
    produce(&broker, &more, RECORDS, MORE_RECORDS);
    verify(
        &broker,
        "verify after producing more",
        &[&first, &more],
        RECORDS + MORE_RECORDS,
    );
    broker.kill().expect("broker was running");
    restart(&mut broker);
    verify(
        &broker,
        "verify after second SIGKILL restart",
        &[&first, &more],
        RECORDS + MORE_RECORDS,
    );

    stop_cleanly(&mut broker);
    println!(
        "durability: {RECORDS}+{MORE_RECORDS} acked records intact after 1 clean restart and \
         2 SIGKILL restarts, in {:.1?}",
        started.elapsed()
    );
}
