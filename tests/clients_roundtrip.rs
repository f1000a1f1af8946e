//! Real Kafka clients against a real `strom serve`.
//!
//! One test per client. Each starts its own broker and runs the client's
//! program from `tests/clients/`, which per compression codec the client
//! supports (none, gzip, snappy, lz4, zstd) creates a 3-partition topic with
//! the client's own admin API, produces 10,000 keyed records with headers
//! and explicit timestamps, consumes them back from the beginning of all
//! partitions and checks key, value, headers, timestamp, partition and
//! offset are identical and per-partition order is kept. See
//! tests/clients/README.md for what each client needs from the broker.
//!
//! The clients are installed by `.ci/run`. A missing client fails its test,
//! unless `STROM_ALLOW_MISSING_CLIENTS=1` (never set in CI) turns that into a
//! printed skip. `STROM_ROUNDTRIP_ARGS` (whitespace-separated) is appended to
//! every program's arguments, e.g. `--codecs gzip --records 100` for a quick
//! run.

#[path = "support/mod.rs"]
mod support;

use std::path::PathBuf;
use std::time::Duration;

use support::Broker;

/// Each program's own overall deadline (it also bounds every step to 60 s).
const PROGRAM_DEADLINE_SECS: &str = "360";
/// Hard limit enforced from here, above the program's own deadline.
const HARD_TIMEOUT: Duration = Duration::from_secs(420);

fn extra_args() -> Vec<String> {
    std::env::var("STROM_ROUNDTRIP_ARGS")
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

fn program_args(program: Option<PathBuf>, broker: &Broker) -> Vec<String> {
    let mut args: Vec<String> = program
        .into_iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    args.push(broker.bootstrap());
    args.push("--timeout".to_string());
    args.push(PROGRAM_DEADLINE_SECS.to_string());
    args.extend(extra_args());
    args
}

fn assert_all_ok(client: &str, out: &support::ClientOutput) {
    assert!(
        out.stdout.lines().any(|l| l.starts_with("ALL OK ")),
        "{client}: program exited 0 without its `ALL OK` summary line\n\
         ---- stdout ----\n{}\n---- stderr ----\n{}",
        out.stdout,
        out.stderr
    );
}

fn python_roundtrip(client: &str, module: &str, script: &str) {
    if !support::require_client(client, support::python_module(module)) {
        return;
    }
    let broker = Broker::start();
    let args = program_args(Some(support::clients_dir().join(script)), &broker);
    let out = broker.run_client(support::python(), &args, &[], HARD_TIMEOUT);
    assert_all_ok(client, &out);
}

#[test]
fn confluent_kafka_python_roundtrip() {
    python_roundtrip(
        "confluent-kafka (pip)",
        "confluent_kafka",
        "confluent_roundtrip.py",
    );
}

#[test]
fn kafka_python_roundtrip() {
    python_roundtrip("kafka-python (pip)", "kafka", "kafka_python_roundtrip.py");
}

#[test]
fn aiokafka_roundtrip() {
    python_roundtrip("aiokafka (pip)", "aiokafka", "aiokafka_roundtrip.py");
}

#[test]
fn kcat_roundtrip() {
    let tools = support::find_program("kcat")
        .map(drop)
        // kcat cannot choose a partition count: the script creates its
        // topics with confluent-kafka's AdminClient.
        .and_then(|()| support::python_module("confluent_kafka"));
    if !support::require_client("kcat (Debian package kcat)", tools) {
        return;
    }
    let broker = Broker::start();
    let args = program_args(
        Some(support::clients_dir().join("kcat_roundtrip.sh")),
        &broker,
    );
    let out = broker.run_client("bash", &args, &[], HARD_TIMEOUT);
    assert_all_ok("kcat", &out);
}

#[test]
fn sarama_roundtrip() {
    let sarama_src = PathBuf::from(support::DEBIAN_GOPATH).join("src/github.com/Shopify/sarama");
    let tools = support::find_program("go").map(drop).and_then(|()| {
        if sarama_src.is_dir() {
            Ok(())
        } else {
            Err(format!(
                "{} is missing (Debian package golang-github-shopify-sarama-dev)",
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
    // Build first, outside the broker's lifetime: no network is needed
    // (GOPATH mode against Debian's sources), the cache is in target/tmp.
    let build_dir = support::TempDir::new("sarama-build");
    let bin = build_dir.path().join("sarama_roundtrip");
    let version = support::debian_package_version("golang-github-shopify-sarama-dev")
        .unwrap_or_else(|| "unknown".to_string());
    support::go_build_offline(
        &support::clients_dir().join("sarama_roundtrip"),
        &bin,
        &format!("-X main.saramaVersion={version}"),
    );
    let broker = Broker::start();
    let args = program_args(None, &broker);
    let out = broker.run_client(&bin, &args, &[], HARD_TIMEOUT);
    assert_all_ok("sarama", &out);
}
