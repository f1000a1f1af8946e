//! End-to-end tests of `strom group list|describe|reset-offsets|delete` against a real
//! broker, with groups made by a real client: confluent-kafka consumers (a Python
//! program, [`MEMBER_PY`]) that join, commit known offsets, and then leave or stay.
//!
//! Offsets are checked exactly: topics are filled with known record counts per
//! partition (record `i` of each partition has timestamp `base + i` seconds, for
//! `--to-datetime`).

#[path = "support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use support::Broker;
use support::cli::strom;
use support::groups;

/// The client side of the tests: `produce` creates a topic and fills its partitions;
/// `member` joins a group, commits the given offsets as a member, prints `READY
/// <member id>`, and then either leaves at once or stays (polling) until its stdin
/// closes, and prints `CLOSED` after leaving.
const MEMBER_PY: &str = r#"
import os, sys, threading, time
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

t = threading.Timer(60, lambda: (print("FAIL: watchdog", flush=True), os._exit(3)))
t.daemon = True
t.start()

mode, bootstrap = sys.argv[1], sys.argv[2]
if mode == "produce":
    topic, counts, base = sys.argv[3], [int(n) for n in sys.argv[4].split(",")], int(sys.argv[5])
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for f in admin.create_topics([NewTopic(topic, num_partitions=len(counts), replication_factor=1)]).values():
        f.result(20)
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for part, n in enumerate(counts):
        for i in range(n):
            p.produce(topic, value=b"v%d" % i, partition=part, timestamp=base + i * 1000)
    if p.flush(20) != 0:
        sys.exit("FAIL: records not delivered")
    print("PRODUCED", flush=True)
elif mode == "member":
    group, topic, client_id, commits, stay = sys.argv[3:8]
    c = Consumer({
        "bootstrap.servers": bootstrap, "group.id": group, "client.id": client_id,
        "enable.auto.commit": False, "auto.offset.reset": "earliest",
        "session.timeout.ms": 6000, "heartbeat.interval.ms": 500,
    })
    assigned = []
    c.subscribe([topic], on_assign=lambda consumer, parts: assigned.extend(parts))
    deadline = time.monotonic() + 30
    while not assigned:
        if time.monotonic() > deadline:
            sys.exit("FAIL: no assignment")
        c.poll(0.1)
    offsets = [TopicPartition(topic, int(p), int(o)) for p, o in
               (pair.split(":") for pair in commits.split(","))]
    c.commit(offsets=offsets, asynchronous=False)
    print("READY", c.memberid(), flush=True)
    if stay == "stay":
        closed = threading.Event()
        threading.Thread(target=lambda: (sys.stdin.read(), closed.set()), daemon=True).start()
        while not closed.is_set():
            c.poll(0.1)
    c.close()
    print("CLOSED", flush=True)
"#;

/// A Unix time in ms, whole seconds, an hour ago: record timestamps start here, recent
/// enough that no retention setting touches them.
fn base_ms() -> i64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    (now as i64 - 3600) * 1000
}

/// The broker, or `None` when confluent-kafka is missing and that is allowed.
fn broker() -> Option<Broker> {
    groups::confluent_broker()
}

/// Creates `topic` with one partition per count and fills it.
fn produce(broker: &Broker, topic: &str, counts: &[u32], base: i64) {
    let counts: Vec<String> = counts.iter().map(u32::to_string).collect();
    let (bootstrap, counts, base) = (broker.bootstrap(), counts.join(","), base.to_string());
    let args = [
        "-c", MEMBER_PY, "produce", &bootstrap, topic, &counts, &base,
    ];
    let out = broker.run_client(support::python(), &args, &[], Duration::from_secs(60));
    assert!(out.stdout.contains("PRODUCED"), "{}", out.stdout);
}

/// A running `member` program; killed when dropped.
struct Member {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    log: std::path::PathBuf,
    member_id: String,
}

impl Member {
    /// Starts a member of `group` on `topic` that commits `commits` ("p:o,...") and
    /// waits until it has; with `stay` it remains in the group until [`Member::leave`].
    fn start(
        broker: &Broker,
        group: &str,
        topic: &str,
        client_id: &str,
        commits: &str,
        stay: bool,
    ) -> Member {
        let log = broker.dir().join(format!("member-{client_id}.log"));
        let stderr = File::create(&log).expect("member log");
        let mode = if stay { "stay" } else { "leave" };
        let bootstrap = broker.bootstrap();
        let args = [&bootstrap, group, topic, client_id, commits, mode];
        let mut child = Command::new(support::python())
            .args(["-c", MEMBER_PY, "member"])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .spawn()
            .expect("spawn python");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stdin = child.stdin.take();
        let mut member = Member {
            child,
            stdin,
            lines,
            log,
            member_id: String::new(),
        };
        let ready = member.wait_for("READY");
        member.member_id = ready.trim_start_matches("READY ").to_string();
        member
    }

    /// The first line starting with `prefix`; panics with the member's log if it exits
    /// or takes more than 30 s.
    fn wait_for(&mut self, prefix: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            match self.lines.recv_timeout(Duration::from_millis(100)) {
                Ok(line) if line.starts_with(prefix) => return line,
                Ok(line) => assert!(
                    !line.starts_with("FAIL"),
                    "member: {line}\n{}",
                    self.log_text()
                ),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        panic!("member printed no {prefix} line\n{}", self.log_text());
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Closes the member's stdin, so it leaves the group, and waits until it has.
    fn leave(mut self) {
        drop(self.stdin.take());
        self.wait_for("CLOSED");
        let status = self.child.wait().expect("wait for member");
        assert!(
            status.success(),
            "member exited with {status}\n{}",
            self.log_text()
        );
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `strom group describe --output json`.
fn describe_json(broker: &Broker, group: &str) -> Value {
    let out = strom(broker, &["group", "describe", group, "--output", "json"]).ok();
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("bad JSON ({e}): {out}"))
}

/// (topic, partition) → committed offset, from `describe --output json`.
fn committed(broker: &Broker, group: &str) -> BTreeMap<(String, i64), i64> {
    let d = describe_json(broker, group);
    d["partitions"]
        .as_array()
        .expect("partitions")
        .iter()
        .filter_map(|p| {
            let offset = p["current_offset"].as_i64()?;
            let topic = p["topic"].as_str().expect("topic").to_string();
            Some(((topic, p["partition"].as_i64().expect("partition")), offset))
        })
        .collect()
}

fn offsets(topic: &str, list: &[(i64, i64)]) -> BTreeMap<(String, i64), i64> {
    list.iter()
        .map(|&(p, o)| ((topic.to_string(), p), o))
        .collect()
}

/// The whitespace-separated cells of each line of `table` whose first cell is `first`.
fn rows<'a>(table: &'a str, first: &str) -> Vec<Vec<&'a str>> {
    table
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|cells| cells.first() == Some(&first))
        .collect()
}

/// `strom group list` rows as "GROUP STATE PROTOCOL-TYPE" (the coordinator, always
/// broker 1 here, checked and left out).
fn listed(broker: &Broker, extra: &[&str]) -> Vec<String> {
    let mut args = vec!["group", "list"];
    args.extend(extra);
    let out = strom(broker, &args).ok();
    let mut lines = out
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>());
    let header = lines.next();
    assert_eq!(
        header.as_deref(),
        Some(&["GROUP", "STATE", "PROTOCOL-TYPE", "COORDINATOR"][..])
    );
    lines
        .map(|c| {
            assert!(c.len() == 4 && c[3] == "1", "{out}");
            c[..3].join(" ")
        })
        .collect()
}

/// Polls `describe` until the group reports `state` (a member's leave takes effect on
/// the broker just after the client returns).
fn wait_for_state(broker: &Broker, group: &str, state: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let d = describe_json(broker, group);
        if d["state"] == state {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "group {group} never became {state}: {d}"
        );
        thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn describe_and_list_show_offsets_lag_and_the_live_member() {
    let Some(broker) = broker() else { return };
    produce(&broker, "orders", &[10, 5, 0], base_ms());
    let member = Member::start(&broker, "live", "orders", "cli-group-test", "0:4,1:5", true);
    let id = member.member_id.clone();

    assert_eq!(listed(&broker, &[]), ["live Stable consumer"]);
    assert_eq!(listed(&broker, &["--state", "stable"]).len(), 1);
    assert!(listed(&broker, &["--state", "Empty,Dead"]).is_empty());
    let line = strom(&broker, &["group", "list", "--state", "running"]).fails();
    assert!(line.contains("unknown group state"), "{line}");

    let table = strom(&broker, &["group", "describe", "live"]).ok();
    let header: Vec<&str> = table.lines().take(5).collect();
    assert_eq!(header[0], "GROUP:        live", "{table}");
    assert_eq!(
        header[1],
        format!("COORDINATOR:  1 ({})", broker.bootstrap()),
        "{table}"
    );
    assert_eq!(header[2], "STATE:        Stable", "{table}");
    // librdkafka's default assignors are range,roundrobin; range is chosen.
    assert_eq!(header[3], "PROTOCOL:     consumer/range", "{table}");
    assert_eq!(header[4], "MEMBERS:      1", "{table}");
    assert!(
        table.contains("TOPIC   PARTITION  CURRENT-OFFSET  LOG-END-OFFSET  LAG  CONSUMER-ID"),
        "{table}"
    );
    let lag = rows(&table, "orders");
    assert_eq!(lag.len(), 3, "{table}");
    let expected = [
        ["0", "4", "10", "6"],
        ["1", "5", "5", "0"],
        ["2", "-", "0", "-"],
    ];
    for (row, want) in lag.iter().zip(expected) {
        assert_eq!(row[1..5], want, "{table}");
        assert_eq!(row[5], id, "{table}");
        // Host as Kafka reports it: the member's peer address.
        assert_eq!(row[6], "/127.0.0.1", "{table}");
        assert_eq!(row[7], "cli-group-test", "{table}");
    }
    let member_row = rows(&table, &id);
    let member_row = member_row.last().expect("member row");
    assert_eq!(
        member_row[2..],
        ["cli-group-test", "-", "orders:0,1,2"],
        "{table}"
    );

    let d = describe_json(&broker, "live");
    assert_eq!(d["state"], "Stable");
    assert_eq!(d["protocol_type"], "consumer");
    assert_eq!(d["coordinator"]["node_id"], 1);
    assert_eq!(d["members"][0]["member_id"], id.as_str());
    assert_eq!(d["members"][0]["client_id"], "cli-group-test");
    assert_eq!(d["members"][0]["assignment"][0]["topic"], "orders");
    assert_eq!(
        d["members"][0]["assignment"][0]["partitions"],
        serde_json::json!([0, 1, 2])
    );
    let p0 = &d["partitions"][0];
    assert_eq!(
        (&p0["current_offset"], &p0["log_end_offset"], &p0["lag"]),
        (&Value::from(4), &Value::from(10), &Value::from(6))
    );
    assert_eq!(d["partitions"][2]["current_offset"], Value::Null);
    assert_eq!(d["partitions"][2]["consumer_id"], id.as_str());

    // An active group's offsets cannot be reset (not even planned) nor the group deleted.
    let args = [
        "group",
        "reset-offsets",
        "live",
        "--all-topics",
        "--to-earliest",
        "--execute",
    ];
    for n in [5, 6] {
        let line = strom(&broker, &args[..n]).fails();
        let want = "group live has 1 active member (state Stable)";
        assert!(line.contains(want), "{line}");
    }
    let line = strom(&broker, &["group", "delete", "live"]).fails();
    assert!(line.contains("NON_EMPTY_GROUP"), "{line}");
    assert_eq!(
        committed(&broker, "live"),
        offsets("orders", &[(0, 4), (1, 5)])
    );

    member.leave();
    wait_for_state(&broker, "live", "Empty");
    let table = strom(&broker, &["group", "describe", "live"]).ok();
    assert!(table.contains("MEMBERS:      0"), "{table}");
    // Committed offsets outlive the member; nobody owns the partitions now.
    let lag = rows(&table, "orders");
    assert_eq!(
        lag,
        [
            ["orders", "0", "4", "10", "6", "-", "-", "-"],
            ["orders", "1", "5", "5", "0", "-", "-", "-"],
        ],
        "{table}"
    );
    assert_eq!(
        listed(&broker, &["--state", "EMPTY"]),
        ["live Empty consumer"]
    );
}

#[test]
fn reset_offsets_in_every_mode() {
    let Some(broker) = broker() else { return };
    let base = base_ms();
    produce(&broker, "r", &[10, 6], base);
    produce(&broker, "other", &[3], base);
    Member::start(&broker, "g", "r", "resetter", "0:3,1:2", false).leave();
    wait_for_state(&broker, "g", "Empty");
    let reset = |args: &[&str]| {
        let mut full = vec!["group", "reset-offsets", "g"];
        full.extend(args);
        strom(&broker, &full).ok()
    };

    // Dry run (the default, or explicit): the plan, and nothing committed.
    let plan = reset(&["--all-topics", "--to-latest"]);
    let header = rows(&plan, "TOPIC");
    assert_eq!(header, [["TOPIC", "PARTITION", "CURRENT", "NEW"]], "{plan}");
    assert_eq!(
        rows(&plan, "r"),
        [["r", "0", "3", "10"], ["r", "1", "2", "6"]],
        "{plan}"
    );
    assert!(plan.contains("Dry run: nothing was committed"), "{plan}");
    reset(&["--all-topics", "--to-latest", "--dry-run"]);
    assert_eq!(committed(&broker, "g"), offsets("r", &[(0, 3), (1, 2)]));

    let json = reset(&["--topic", "r", "--to-earliest", "--output", "json"]);
    let v: Value = serde_json::from_str(&json).expect("JSON plan");
    assert_eq!(v["executed"], false);
    assert_eq!(
        v["partitions"][1],
        serde_json::json!({"topic": "r", "partition": 1, "current": 2, "new": 0})
    );

    // --execute, each mode, checked through describe.
    let out = reset(&["--topic", "r", "--to-earliest", "--execute"]);
    assert!(
        out.contains("Committed the new offsets of group g."),
        "{out}"
    );
    assert_eq!(committed(&broker, "g"), offsets("r", &[(0, 0), (1, 0)]));

    reset(&["--all-topics", "--to-latest", "--execute"]);
    assert_eq!(committed(&broker, "g"), offsets("r", &[(0, 10), (1, 6)]));

    reset(&["--topic", "r:0", "--to-offset", "4", "--execute"]);
    assert_eq!(committed(&broker, "g"), offsets("r", &[(0, 4), (1, 6)]));

    // Clamped to the log end like Kafka's tool; partitions listed explicitly.
    let plan = reset(&["--topic", "r:0,1", "--to-offset", "8", "--execute"]);
    assert_eq!(
        rows(&plan, "r"),
        [["r", "0", "4", "8"], ["r", "1", "6", "6"]],
        "{plan}"
    );
    assert_eq!(committed(&broker, "g"), offsets("r", &[(0, 8), (1, 6)]));

    reset(&["--all-topics", "--shift-by", "-5", "--execute"]);
    assert_eq!(committed(&broker, "g"), offsets("r", &[(0, 3), (1, 1)]));
    reset(&["--all-topics", "--shift-by", "-4", "--execute"]);
    assert_eq!(committed(&broker, "g"), offsets("r", &[(0, 0), (1, 0)]));
    reset(&["--all-topics", "--shift-by", "7", "--execute"]);
    assert_eq!(committed(&broker, "g"), offsets("r", &[(0, 7), (1, 6)]));

    // Record i is at base + i s: 4.5 s after base finds offset 5 in both partitions;
    // 5.5 s finds 6 in partition 0 and nothing in partition 1 (its last record is at
    // 5 s), which therefore goes to its log end.
    let at = |ms: i64| jiff::Timestamp::from_millisecond(ms).expect("timestamp");
    let rfc3339 = at(base + 4500).to_string();
    assert!(rfc3339.ends_with('Z'), "{rfc3339}");
    reset(&["--all-topics", "--to-datetime", &rfc3339, "--execute"]);
    assert_eq!(committed(&broker, "g"), offsets("r", &[(0, 5), (1, 5)]));
    let offset_form = at(base + 5500)
        .to_zoned(jiff::tz::TimeZone::fixed(jiff::tz::offset(2)))
        .strftime("%Y-%m-%dT%H:%M:%S%.3f%:z")
        .to_string();
    reset(&["--all-topics", "--to-datetime", &offset_form, "--execute"]);
    assert_eq!(committed(&broker, "g"), offsets("r", &[(0, 6), (1, 6)]));
    // Without an offset: the local time zone, here TZ=UTC.
    let local = at(base + 1000)
        .to_zoned(jiff::tz::TimeZone::UTC)
        .strftime("%Y-%m-%dT%H:%M:%S")
        .to_string();
    let args = ["--topic", "r:1", "--to-datetime", &local, "--execute"];
    strom(
        &broker,
        &[&["group", "reset-offsets", "g"][..], &args].concat(),
    )
    .env("TZ", "UTC")
    .ok();
    assert_eq!(committed(&broker, "g"), offsets("r", &[(0, 6), (1, 1)]));

    // A second topic joins the group's offsets; --all-topics then covers it.
    reset(&["--topic", "other", "--to-offset", "2", "--execute"]);
    let mut want = offsets("r", &[(0, 6), (1, 1)]);
    want.insert(("other".to_string(), 0), 2);
    assert_eq!(committed(&broker, "g"), want);
    let plan = reset(&["--all-topics", "--to-earliest"]);
    assert_eq!(rows(&plan, "other"), [["other", "0", "2", "0"]], "{plan}");

    // Mistakes are one-line errors and change nothing.
    let fails = |args: &[&str]| {
        let mut full = vec!["group", "reset-offsets"];
        full.extend(args);
        strom(&broker, &full).fails()
    };
    let line = fails(&["g", "--topic", "nope", "--to-earliest"]);
    assert_eq!(line, "error: unknown topic: nope");
    let line = fails(&["g", "--topic", "r:2", "--to-earliest"]);
    assert!(line.contains("unknown partition: r-2"), "{line}");
    let line = fails(&["g", "--topic", "r:x", "--to-earliest"]);
    assert!(line.contains("not a partition number"), "{line}");
    let line = fails(&["g", "--topic", "r", "--to-datetime", "yesterday"]);
    assert!(line.contains("--to-datetime"), "{line}");
    let line = fails(&["fresh", "--topic", "r", "--shift-by", "1"]);
    assert!(line.contains("no committed offset"), "{line}");
    let line = fails(&["fresh", "--all-topics", "--to-earliest"]);
    assert!(
        line.contains("group fresh has no committed offsets"),
        "{line}"
    );
    for args in [
        &["g", "--all-topics"][..],
        &["g", "--all-topics", "--to-earliest", "--to-latest"],
        &["g", "--to-earliest"],
        &["g", "--all-topics", "--topic", "r", "--to-earliest"],
        &["g", "--all-topics", "--to-latest", "--execute", "--dry-run"],
    ] {
        let mut full = vec!["group", "reset-offsets"];
        full.extend(args);
        let out = strom(&broker, &full).run();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", out.stderr);
    }
    assert_eq!(committed(&broker, "g"), want);
}

#[test]
fn delete_groups_and_unknown_groups() {
    let Some(broker) = broker() else { return };
    let line = strom(&broker, &["group", "describe", "nope"]).fails();
    assert_eq!(line, "error: unknown group: nope");
    assert!(listed(&broker, &[]).is_empty());
    let json = strom(&broker, &["group", "list", "--output", "json"]).ok();
    assert_eq!(json.trim(), "[]");

    produce(&broker, "t", &[4, 4], base_ms());
    // Resetting the offsets of a group that does not exist creates it, with offsets
    // only (as kafka-consumer-groups allows): a group of no protocol type.
    for g in ["a", "b", "c"] {
        let args = ["--topic", "t", "--to-offset", "1", "--execute"];
        strom(
            &broker,
            &[&["group", "reset-offsets", g][..], &args].concat(),
        )
        .ok();
    }
    assert_eq!(
        listed(&broker, &[]),
        ["a Empty -", "b Empty -", "c Empty -"]
    );
    let table = strom(&broker, &["group", "describe", "a"]).ok();
    assert!(
        table.contains("STATE:        Empty") && table.contains("PROTOCOL:     -"),
        "{table}"
    );
    assert_eq!(
        rows(&table, "t"),
        [
            ["t", "0", "1", "4", "3", "-", "-", "-"],
            ["t", "1", "1", "4", "3", "-", "-", "-"],
        ],
        "{table}"
    );

    let out = strom(&broker, &["group", "delete", "a", "b"]).ok();
    assert_eq!(out, "deleted group a\ndeleted group b\n");
    assert_eq!(listed(&broker, &[]), ["c Empty -"]);
    let line = strom(&broker, &["group", "describe", "a"]).fails();
    assert_eq!(line, "error: unknown group: a");
    let line = strom(&broker, &["group", "delete", "a"]).fails();
    assert_eq!(line, "error: unknown group: a");

    // A mix: the known group goes, the unknown ones are named on one line.
    let out = strom(&broker, &["group", "delete", "x", "c", "y"]).run();
    assert_eq!(out.status.code(), Some(1), "{}", out.stderr);
    assert_eq!(out.stdout, "deleted group c\n");
    assert_eq!(out.stderr, "error: unknown group: x; unknown group: y\n");
    assert!(listed(&broker, &[]).is_empty());
    let json = strom(&broker, &["group", "delete", "b", "--output", "json"]).run();
    let v: Value = serde_json::from_str(&json.stdout).expect("JSON");
    assert_eq!(
        v,
        serde_json::json!([{"group": "b", "error": "unknown group: b"}])
    );
}
