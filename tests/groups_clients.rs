//! Consumer groups (classic protocol) through kafka-python, aiokafka and
//! sarama, each against its own `strom serve`.
//!
//! Each program (`tests/clients/group_kafka_python.py`,
//! `tests/clients/group_aiokafka.py`, `tests/clients/sarama_group/main.go`)
//! creates a 4-partition topic and produces to it with the same library, runs
//! two consumers of that library in one group, which must split the partitions
//! (each owned by exactly one member) and consume every record, commits, then
//! has a fresh member of the group resume from the committed offsets without
//! re-reading a committed record. It prints `ALL OK ...` with the group API
//! versions the client used.
//!
//! sarama 1.22.1 sends OffsetCommit v1 unless `Consumer.Offsets.Retention` is
//! set; like Kafka 4 (KIP-896) this broker serves OffsetCommit from v2 only,
//! so the program sets a retention (see its header).
//!
//! The broker runs with `group.initial.rebalance.delay.ms=200` and a small
//! `__consumer_offsets`, as in `tests/groups_confluent.rs`.
//!
//! A missing client fails the test unless `STROM_ALLOW_MISSING_CLIENTS=1`
//! (never set in CI).

#[path = "support/mod.rs"]
mod support;

use std::path::PathBuf;
use std::time::Duration;

use support::groups;

/// The program's own overall deadline.
const PROGRAM_DEADLINE_SECS: &str = "45";
/// Hard limit enforced from here, above the program's own deadline (and its
/// watchdog, 5 s later).
const HARD_TIMEOUT: Duration = Duration::from_secs(60);

fn python_group(client: &str, module: &str, script: &str) {
    if !support::require_client(client, support::python_module(module)) {
        return;
    }
    let broker = groups::broker();
    let args = vec![
        support::clients_dir()
            .join(script)
            .to_string_lossy()
            .into_owned(),
        broker.bootstrap(),
        "--timeout".to_string(),
        PROGRAM_DEADLINE_SECS.to_string(),
    ];
    groups::run_ok(
        &broker,
        &format!("{client}: "),
        support::python(),
        &args,
        HARD_TIMEOUT,
    );
}

#[test]
fn kafka_python_consumer_group() {
    python_group("kafka-python (pip)", "kafka", "group_kafka_python.py");
}

#[test]
fn aiokafka_consumer_group() {
    python_group("aiokafka (pip)", "aiokafka", "group_aiokafka.py");
}

#[test]
fn sarama_consumer_group() {
    let sarama_src = PathBuf::from(support::DEBIAN_GOPATH).join("src/github.com/Shopify/sarama");
    let tools = support::find_program("go").map(drop).and_then(|()| {
        if sarama_src.join("consumer_group.go").is_file() {
            Ok(())
        } else {
            Err(format!(
                "{} is missing or has no ConsumerGroup (Debian package \
                 golang-github-shopify-sarama-dev)",
                sarama_src.display()
            ))
        }
    });
    if !support::require_client(
        "sarama (Debian golang-go + golang-github-shopify-sarama-dev)",
        tools,
    ) {
        return;
    }
    // Build first, outside the broker's lifetime (offline, GOPATH mode).
    let build_dir = support::TempDir::new("sarama-group-build");
    let bin = build_dir.path().join("sarama_group");
    let version = support::debian_package_version("golang-github-shopify-sarama-dev")
        .unwrap_or_else(|| "unknown".to_string());
    support::go_build_offline(
        &support::clients_dir().join("sarama_group"),
        &bin,
        &format!("-X main.saramaVersion={version}"),
    );
    let broker = groups::broker();
    let args = vec![
        broker.bootstrap(),
        "-timeout".to_string(),
        PROGRAM_DEADLINE_SECS.to_string(),
    ];
    groups::run_ok(&broker, "sarama: ", &bin, &args, HARD_TIMEOUT);
}
