//! Consumer-group scenarios against a real `strom serve`, each driven by
//! `tests/clients/group_scenarios.py` (confluent-kafka-python / librdkafka):
//!
//! - `members_join_and_a_killed_member_is_replaced`: 3 member processes
//!   share a 6-partition topic, a 4th joins and the partitions spread, one is
//!   SIGKILLed and its partitions move to the others after its session
//!   timeout; a producer runs throughout and every record is consumed.
//!   `cooperative_members_join_and_a_killed_member_is_replaced` does the
//!   same with `cooperative-sticky` members.
//! - `group_resumes_from_committed_offsets_after_a_broker_crash`: a member
//!   commits offsets in the middle of each partition and leaves, the broker
//!   is SIGKILLed and restarted, and a new member resumes exactly at the
//!   committed offsets.
//! - `group_resumes_after_a_broker_crash_with_a_stale_member`: the same,
//!   but the committing member exits without leaving, so the restarted broker
//!   loads a member that is gone; the new member gets in once its session
//!   times out.
//! - `live_members_survive_a_broker_crash_without_a_rebalance`: two members
//!   keep polling while the broker is SIGKILLed and restarted; the loaded
//!   group keeps them (same member ids, partitions, no rebalance callbacks).
//! - `static_member_rejoins_without_a_rebalance`: a static member
//!   (`group.instance.id`) closes (no LeaveGroup) and rejoins within the
//!   session timeout; it gets its partitions back and the other member sees
//!   no rebalance. When it then stays away, the other member gets its
//!   partitions after the session timeout.
//! - `static_member_is_fenced_by_a_duplicate_instance`: a consumer with a
//!   live static member's `group.instance.id` fences it (FENCED_INSTANCE_ID,
//!   fatal in librdkafka) and takes over its partitions, without a rebalance.
//! - `cooperative_sticky_revokes_only_moved_partitions`: with
//!   `cooperative-sticky`, a second member joining takes half the partitions
//!   and the first only revokes those, keeping the rest; when the second
//!   leaves, the first only gets those added back.
//!
//! The broker runs with `group.initial.rebalance.delay.ms=200` and a small
//! `__consumer_offsets`; clients use 6 s session timeouts.
//!
//! A missing confluent-kafka fails the test unless
//! `STROM_ALLOW_MISSING_CLIENTS=1` (never set in CI).

#[path = "support/mod.rs"]
mod support;

use std::fs::{self, File};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use support::Broker;
use support::groups;

/// The program's own overall deadline.
const PROGRAM_DEADLINE_SECS: &str = "45";
/// Hard limit enforced from here, above the program's own deadline.
const HARD_TIMEOUT: Duration = Duration::from_secs(55);

/// Runs `group_scenarios.py BOOTSTRAP ARGS...` and checks its `ALL OK` line.
fn run_ok(broker: &Broker, scenario: &[&str]) {
    let script = support::clients_dir().join("group_scenarios.py");
    let mut args = vec![script.to_string_lossy().into_owned(), broker.bootstrap()];
    args.extend(scenario.iter().map(|s| (*s).to_string()));
    args.push("--timeout".to_string());
    args.push(PROGRAM_DEADLINE_SECS.to_string());
    groups::run_ok(broker, "", support::python(), &args, HARD_TIMEOUT);
}

#[test]
fn members_join_and_a_killed_member_is_replaced() {
    let Some(broker) = groups::confluent_broker() else {
        return;
    };
    run_ok(&broker, &["spread"]);
}

/// The same with `cooperative-sticky` members: incremental rebalances, and
/// the survivors of the kill keep what they owned.
#[test]
fn cooperative_members_join_and_a_killed_member_is_replaced() {
    let Some(broker) = groups::confluent_broker() else {
        return;
    };
    run_ok(&broker, &["spread", "--strategy", "cooperative-sticky"]);
}

#[test]
fn group_resumes_from_committed_offsets_after_a_broker_crash() {
    let Some(mut broker) = groups::confluent_broker() else {
        return;
    };
    run_ok(&broker, &["commit", "crash-topic"]);
    broker.kill();
    broker.restart();
    run_ok(&broker, &["resume", "crash-topic"]);
}

/// Like the above, but the member crashes too (exits without leaving): the
/// restarted broker loads it as a member of the group, and the new member's
/// join completes once that stale member's session times out.
#[test]
fn group_resumes_after_a_broker_crash_with_a_stale_member() {
    let Some(mut broker) = groups::confluent_broker() else {
        return;
    };
    run_ok(&broker, &["commit", "stale-topic", "--no-leave"]);
    broker.kill();
    broker.restart();
    run_ok(&broker, &["resume", "stale-topic"]);
}

/// Two live members while the broker is SIGKILLed and restarted: the loaded
/// group keeps them, in the same generation, with no rebalance.
#[test]
fn live_members_survive_a_broker_crash_without_a_rebalance() {
    let Some(mut broker) = groups::confluent_broker() else {
        return;
    };
    let signals = broker.dir().join("signals");
    fs::create_dir_all(&signals).expect("create the signal dir");
    let script = support::clients_dir().join("group_scenarios.py");
    let stdout_path = broker.dir().join("live.stdout");
    let stderr_path = broker.dir().join("live.stderr");
    let mut child = Command::new(support::python())
        .arg(&script)
        .arg(broker.bootstrap())
        .arg("live")
        .arg("--signal-dir")
        .arg(&signals)
        .arg("--timeout")
        .arg(PROGRAM_DEADLINE_SECS)
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(File::create(&stdout_path).expect("create stdout file"))
        .stderr(File::create(&stderr_path).expect("create stderr file"))
        .spawn()
        .expect("spawn group_scenarios.py live");
    let outputs = |broker: &Broker| {
        format!(
            "---- stdout ----\n{}\n---- stderr ----\n{}\n---- broker log ----\n{}",
            fs::read_to_string(&stdout_path).unwrap_or_default(),
            fs::read_to_string(&stderr_path).unwrap_or_default(),
            broker.log_tail(support::LOG_TAIL_LINES)
        )
    };
    let deadline = Instant::now() + HARD_TIMEOUT;
    let kill_group = |child: &mut std::process::Child| {
        let _ = Command::new("kill")
            .arg("-KILL")
            .arg("--")
            .arg(format!("-{}", child.id()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = child.kill();
        let _ = child.wait();
    };
    // Wait until the members have settled, then crash and restart the broker.
    while !signals.join("settled").exists() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "group_scenarios.py live exited with {status} before settling\n{}",
                outputs(&broker)
            );
        }
        if Instant::now() >= deadline {
            kill_group(&mut child);
            panic!(
                "group_scenarios.py live did not settle\n{}",
                outputs(&broker)
            );
        }
        thread::sleep(Duration::from_millis(50));
    }
    broker.kill();
    broker.restart();
    File::create(signals.join("restarted")).expect("create the restarted signal");
    let status = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break status;
        }
        if Instant::now() >= deadline {
            kill_group(&mut child);
            panic!("group_scenarios.py live timed out\n{}", outputs(&broker));
        }
        thread::sleep(Duration::from_millis(50));
    };
    let stdout = fs::read_to_string(&stdout_path).unwrap_or_default();
    assert!(
        status.success() && stdout.lines().any(|l| l.starts_with("ALL OK ")),
        "group_scenarios.py live failed with {status}\n{}",
        outputs(&broker)
    );
    print!("{stdout}");
}

#[test]
fn static_member_rejoins_without_a_rebalance() {
    let Some(broker) = groups::confluent_broker() else {
        return;
    };
    run_ok(&broker, &["static"]);
}

#[test]
fn static_member_is_fenced_by_a_duplicate_instance() {
    let Some(broker) = groups::confluent_broker() else {
        return;
    };
    run_ok(&broker, &["fence"]);
}

#[test]
fn cooperative_sticky_revokes_only_moved_partitions() {
    let Some(broker) = groups::confluent_broker() else {
        return;
    };
    run_ok(&broker, &["cooperative"]);
}
