//! End-to-end tests of `strom topic` (create, list, describe, delete, alter-config,
//! add-partitions) against a real `strom serve`: the tables and JSON carry the
//! broker's real values (records produced with kcat show up as high watermark and
//! size on disk), and every error is one line with a non-zero exit.

#[path = "support/mod.rs"]
mod support;

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::Value;
use support::Broker;
use support::cli::strom;

/// Produces `count` records to `topic`'s `partition` with kcat; false (after saying
/// why) when kcat is missing and that is allowed.
fn kcat_produce(broker: &Broker, topic: &str, partition: i32, count: usize) -> bool {
    let kcat = support::find_program("kcat");
    if !support::require_client("kcat (Debian package kcat)", kcat.clone().map(|_| ())) {
        return false;
    }
    let mut child = Command::new(kcat.expect("checked"))
        .args(["-b", &broker.bootstrap(), "-P", "-t", topic])
        .args(["-p", &partition.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn kcat");
    let lines: String = (0..count).map(|i| format!("record number {i}\n")).collect();
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(lines.as_bytes())
        .expect("write to kcat");
    let out = child.wait_with_output().expect("kcat");
    assert!(
        out.status.success(),
        "kcat failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    true
}

/// The whitespace-separated cells of the table row whose first cell is `first`.
fn row<'a>(table: &'a str, first: &str) -> Vec<&'a str> {
    table
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|cells| cells.first() == Some(&first))
        .unwrap_or_else(|| panic!("no row {first}:\n{table}"))
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("bad JSON ({e}):\n{text}"))
}

/// The names `topic list --output json` shows.
fn listed(broker: &Broker, extra: &[&str]) -> Vec<String> {
    let mut args = vec!["topic", "list", "--output", "json"];
    args.extend(extra);
    json(&strom(broker, &args).ok())
        .as_array()
        .expect("array")
        .iter()
        .map(|t| t["name"].as_str().expect("name").to_string())
        .collect()
}

#[test]
fn create_describe_list_delete() {
    let broker = Broker::start();
    let out = strom(
        &broker,
        &[
            "topic",
            "create",
            "orders",
            "-p",
            "3",
            "-r",
            "1",
            "--config",
            "retention.ms=123456",
            "-c",
            "cleanup.policy=compact,delete",
        ],
    )
    .ok();
    let created = row(&out, "orders");
    assert_eq!(created[1], "created", "{out}");
    assert_eq!(created[3..5], ["3", "1"], "{out}");
    assert_eq!(
        created[5], "cleanup.policy=compact,delete,retention.ms=123456",
        "{out}"
    );
    let json_create = json(&strom(&broker, &["topic", "create", "small", "--output", "json"]).ok());
    assert_eq!(json_create[0]["status"], "created");
    assert_eq!(
        json_create[0]["partitions"], 1,
        "the broker's num.partitions"
    );
    assert_eq!(json_create[0]["replication_factor"], 1);

    let table = strom(&broker, &["topic", "list"]).ok();
    assert_eq!(row(&table, "NAME"), ["NAME", "PARTITIONS", "REPLICAS"]);
    assert_eq!(row(&table, "orders"), ["orders", "3", "1"]);
    assert_eq!(row(&table, "small"), ["small", "1", "1"]);

    if !kcat_produce(&broker, "orders", 1, 7) {
        return;
    }
    let text = strom(&broker, &["topic", "describe", "orders"]).ok();
    assert_eq!(row(&text, "TOPIC:"), ["TOPIC:", "orders"]);
    assert_eq!(row(&text, "PARTITIONS:"), ["PARTITIONS:", "3"]);
    assert_eq!(
        row(&text, "retention.ms"),
        ["retention.ms", "123456", "DYNAMIC_TOPIC_CONFIG"]
    );
    assert!(
        !text.contains("segment.bytes"),
        "defaults are hidden unless --all-configs:\n{text}"
    );
    // PARTITION LEADER EPOCH REPLICAS ISR LOG-START HIGH-WATERMARK SIZE-BYTES ERROR
    let p1 = row(&text, "1");
    assert_eq!(p1[..7], ["1", "1", "0", "1", "1", "0", "7"], "{text}");
    let size: u64 = p1[7].parse().expect("size in bytes");
    assert!(size > 7 * "record number 0".len() as u64, "{text}");
    assert_eq!(
        row(&text, "0")[5..8],
        ["0", "0", "0"],
        "empty partition:\n{text}"
    );

    let all = strom(&broker, &["topic", "describe", "orders", "--all-configs"]).ok();
    assert_eq!(row(&all, "segment.bytes")[2], "DEFAULT_CONFIG", "{all}");

    let described = json(
        &strom(
            &broker,
            &["topic", "describe", "orders", "small", "--output", "json"],
        )
        .ok(),
    );
    let orders = &described[0];
    assert_eq!(orders["name"], "orders");
    assert_eq!(
        // Kafka's rendering: URL-safe base64 of the 16 bytes.
        orders["topic_id"].as_str().map(str::len),
        Some(22),
        "{orders}"
    );
    assert_eq!(orders["partition_count"], 3);
    let p1 = &orders["partitions"][1];
    assert_eq!(
        (p1["leader"].as_i64(), p1["high_watermark"].as_i64()),
        (Some(1), Some(7))
    );
    assert_eq!(
        p1["size_bytes"].as_u64(),
        Some(size),
        "same size in both formats"
    );
    assert_eq!(p1["replicas"], serde_json::json!([1]));
    assert_eq!(p1["isr"], serde_json::json!([1]));
    let policy = orders["configs"]
        .as_array()
        .expect("configs")
        .iter()
        .find(|c| c["name"] == "cleanup.policy")
        .expect("cleanup.policy shown");
    assert_eq!(policy["value"], "compact,delete");
    assert_eq!(described[1]["name"], "small");

    let out = strom(&broker, &["topic", "delete", "orders", "small"]).ok();
    assert_eq!(row(&out, "orders"), ["orders", "deleted"]);
    assert_eq!(row(&out, "small"), ["small", "deleted"]);
    assert!(listed(&broker, &[]).is_empty());
}

#[test]
fn create_errors_are_one_line() {
    let broker = Broker::start();
    strom(&broker, &["topic", "create", "t"]).ok();
    let line = strom(&broker, &["topic", "create", "t"]).fails();
    assert!(
        line.starts_with("error: cannot create topic t: TOPIC_ALREADY_EXISTS"),
        "{line}"
    );
    let out = strom(&broker, &["topic", "create", "t", "--if-not-exists"]).ok();
    assert_eq!(row(&out, "t")[1], "exists", "{out}");

    let line = strom(
        &broker,
        &["topic", "create", "u", "--config", "retention.ms"],
    )
    .fails();
    assert_eq!(
        line,
        "error: invalid --config 'retention.ms': expected KEY=VALUE"
    );
    let line = strom(
        &broker,
        &["topic", "create", "u", "--config", "no.such.config=1"],
    )
    .fails();
    assert!(line.contains("INVALID_CONFIG"), "{line}");
    let line = strom(&broker, &["topic", "create", "u", "-r", "3"]).fails();
    assert!(line.contains("INVALID_REPLICATION_FACTOR"), "{line}");
    let line = strom(&broker, &["topic", "create", "u", "-c", "a=1", "-c", "a=2"]).fails();
    assert_eq!(line, "error: --config a is given twice");
    let line = strom(&broker, &["topic", "create", "u", "-p", "0"]).fails();
    assert_eq!(line, "error: --partitions must be at least 1");

    // --dry-run validates without creating.
    let out = strom(&broker, &["topic", "create", "v", "-p", "2", "--dry-run"]).ok();
    assert_eq!(row(&out, "v")[1], "valid", "{out}");
    assert_eq!(listed(&broker, &[]), ["t"]);
}

#[test]
fn alter_config_and_add_partitions() {
    let broker = Broker::start();
    strom(
        &broker,
        &["topic", "create", "t", "-c", "retention.ms=1000"],
    )
    .ok();
    let out = strom(
        &broker,
        &[
            "topic",
            "alter-config",
            "t",
            "--set",
            "segment.ms=600000",
            "--set",
            "max.message.bytes=2048",
            "--delete",
            "retention.ms",
        ],
    )
    .ok();
    assert_eq!(row(&out, "t")[..3], ["t", "segment.ms", "set"], "{out}");
    let described = strom(&broker, &["topic", "describe", "t"]).ok();
    assert_eq!(
        row(&described, "segment.ms")[1..],
        ["600000", "DYNAMIC_TOPIC_CONFIG"]
    );
    assert_eq!(row(&described, "max.message.bytes")[1], "2048");
    assert!(
        !described.contains("retention.ms"),
        "deleted override is back to default:\n{described}"
    );
    let line = strom(
        &broker,
        &["topic", "alter-config", "t", "--set", "segment.ms"],
    )
    .fails();
    assert_eq!(
        line,
        "error: invalid --set 'segment.ms': expected KEY=VALUE"
    );
    let line = strom(
        &broker,
        &["topic", "alter-config", "t", "--set", "segment.ms=x"],
    )
    .fails();
    assert!(line.contains("INVALID_CONFIG"), "{line}");
    let line = strom(
        &broker,
        &["topic", "alter-config", "t", "-s", "a=1", "-d", "a"],
    )
    .fails();
    assert_eq!(line, "error: config a is both set and deleted");
    assert!(
        !strom(&broker, &["topic", "alter-config", "t"])
            .run()
            .status
            .success()
    );

    let out = strom(&broker, &["topic", "add-partitions", "t", "--total", "4"]).ok();
    assert_eq!(row(&out, "t"), ["t", "1", "4", "added"]);
    let grown = json(
        &strom(
            &broker,
            &[
                "topic",
                "add-partitions",
                "t",
                "--add",
                "2",
                "--output",
                "json",
            ],
        )
        .ok(),
    );
    assert_eq!(
        (grown["previous"].as_u64(), grown["partitions"].as_u64()),
        (Some(4), Some(6))
    );
    let list = strom(&broker, &["topic", "list"]).ok();
    assert_eq!(row(&list, "t"), ["t", "6", "1"]);
    let line = strom(&broker, &["topic", "add-partitions", "t", "--total", "3"]).fails();
    assert!(line.contains("already has 6 partitions"), "{line}");
    assert!(
        !strom(
            &broker,
            &["topic", "add-partitions", "t", "--total", "8", "--add", "1"]
        )
        .run()
        .status
        .success(),
        "--total and --add exclude each other"
    );
}

#[test]
fn unknown_topics_are_named() {
    let broker = Broker::start();
    strom(&broker, &["topic", "create", "real"]).ok();
    for args in [
        vec!["topic", "describe", "nope"],
        vec!["topic", "describe", "real", "nope"],
        vec!["topic", "delete", "nope"],
        vec!["topic", "delete", "real", "nope"],
        vec!["topic", "alter-config", "nope", "--set", "retention.ms=1"],
        vec!["topic", "add-partitions", "nope", "--total", "3"],
    ] {
        let line = strom(&broker, &args).fails();
        assert_eq!(line, "error: unknown topic: nope", "{args:?}");
    }
    assert_eq!(
        listed(&broker, &[]),
        ["real"],
        "a failed delete deletes nothing"
    );
    let out = strom(&broker, &["topic", "delete", "nope", "real", "--if-exists"]).ok();
    assert_eq!(row(&out, "nope"), ["nope", "absent"]);
    assert_eq!(row(&out, "real"), ["real", "deleted"]);
}

#[test]
fn internal_topics_only_when_asked() {
    let broker = Broker::start();
    strom(&broker, &["topic", "create", "mine"]).ok();
    // The broker creates __consumer_offsets when it starts.
    assert_eq!(listed(&broker, &[]), ["mine"]);
    let all = json(&strom(&broker, &["topic", "list", "-i", "--output", "json"]).ok());
    let offsets = all
        .as_array()
        .expect("array")
        .iter()
        .find(|t| t["name"] == "__consumer_offsets")
        .unwrap_or_else(|| panic!("internal topic listed with -i: {all}"));
    assert_eq!(offsets["internal"], true);
    assert_eq!(all[1]["name"], "mine");
    assert_eq!(all[1]["internal"], false);
    let table = strom(&broker, &["topic", "list", "--internal"]).ok();
    assert_eq!(row(&table, "__consumer_offsets")[2], "1", "{table}");
}
