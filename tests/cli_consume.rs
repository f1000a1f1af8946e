//! End-to-end tests of `strom consume`: records produced by a real client
//! (confluent-kafka, with keys, headers, timestamps and codecs) are printed exactly,
//! in every format; start options; consumer groups that resume, commit, share
//! partitions and leave on SIGINT/SIGTERM; errors; `--exit`; a closed stdout.

#[path = "support/mod.rs"]
mod support;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use kafka_protocol::messages::{
    ApiKey, CreateTopicsRequest, CreateTopicsResponse, DescribeGroupsRequest,
    DescribeGroupsResponse, GroupId, OffsetFetchRequest, OffsetFetchResponse, TopicName,
    create_topics_request::CreatableTopic, offset_fetch_request::OffsetFetchRequestTopic,
};
use kafka_protocol::protocol::StrBytes;
use serde_json::{Value, json};
use support::Broker;
use support::cli::{strom, strom_alone};
use support::wire::Conn;

/// Produces the records of a JSON list with confluent-kafka: each has a partition, a
/// value, and optionally a key, headers ([[k, v], ...]), a timestamp (ms) and a
/// repeat count.
const PRODUCER: &str = r#"
import json, sys
from confluent_kafka import Producer
bootstrap, topic, codec, records = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
errors = []
p = Producer({"bootstrap.servers": bootstrap, "compression.type": codec, "linger.ms": 5})
for r in records:
    kw = {}
    if r.get("key") is not None:
        kw["key"] = r["key"]
    if r.get("headers"):
        kw["headers"] = [(k, v) for k, v in r["headers"]]
    if r.get("timestamp") is not None:
        kw["timestamp"] = r["timestamp"]
    for _ in range(r.get("repeat", 1)):
        p.produce(topic, value=r["value"], partition=r["partition"],
                  on_delivery=lambda err, msg: err and errors.append(str(err)), **kw)
left = p.flush(30)
if left or errors:
    sys.exit(f"not delivered: {left} left, errors {errors}")
print("ALL OK")
"#;

fn confluent() -> Option<Broker> {
    support::groups::confluent_broker()
}

fn create_topic(broker: &Broker, name: &str, partitions: i32) {
    let mut conn = Conn::open(broker.addr());
    let request = CreateTopicsRequest::default()
        .with_topics(vec![
            CreatableTopic::default()
                .with_name(TopicName(StrBytes::from_string(name.to_string())))
                .with_num_partitions(partitions)
                .with_replication_factor(1),
        ])
        .with_timeout_ms(10_000);
    let response: CreateTopicsResponse = conn.call(ApiKey::CreateTopics, 5, &request);
    assert_eq!(
        response.topics[0].error_code, 0,
        "create {name}: {response:?}"
    );
}

/// Produces `records` (JSON objects, see [`PRODUCER`]) with `codec`.
fn produce(broker: &Broker, topic: &str, codec: &str, records: &[Value]) {
    let list = serde_json::to_string(records).expect("JSON");
    let args = [
        "-c",
        PRODUCER,
        &broker.bootstrap(),
        topic,
        codec,
        list.as_str(),
    ];
    let out = broker.run_client(support::python(), &args, &[], Duration::from_secs(30));
    assert!(out.stdout.contains("ALL OK"), "{}", out.stdout);
}

fn rec(partition: i32, key: Option<&str>, value: &str, headers: &[(&str, &str)], ts: i64) -> Value {
    json!({"partition": partition, "key": key, "value": value, "headers": headers, "timestamp": ts})
}

/// `strom consume WORDS... EXTRA...` (`words` split at spaces): its stdout, requiring
/// exit status 0.
fn consume(broker: &Broker, words: &str, extra: &[&str]) -> String {
    let mut args = vec!["consume"];
    args.extend(words.split_whitespace());
    args.extend(extra);
    strom(broker, &args).ok()
}

fn sorted_lines(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    lines.sort();
    lines
}

/// The group's committed offsets of partitions `0..n` of `topic` (-1 for none).
fn committed(broker: &Broker, group: &str, topic: &str, n: i32) -> Vec<i64> {
    let mut conn = Conn::open(broker.addr());
    let request = OffsetFetchRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
        .with_topics(Some(vec![
            OffsetFetchRequestTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partition_indexes((0..n).collect()),
        ]));
    let response: OffsetFetchResponse = conn.call(ApiKey::OffsetFetch, 7, &request);
    assert_eq!(response.error_code, 0, "{response:?}");
    let mut offsets = vec![-1; n as usize];
    for p in &response.topics[0].partitions {
        offsets[p.partition_index as usize] = p.committed_offset;
    }
    offsets
}

/// The group's state and member count.
fn describe_group(broker: &Broker, group: &str) -> (String, usize) {
    let mut conn = Conn::open(broker.addr());
    let request = DescribeGroupsRequest::default()
        .with_groups(vec![GroupId(StrBytes::from_string(group.to_string()))]);
    let response: DescribeGroupsResponse = conn.call(ApiKey::DescribeGroups, 5, &request);
    let g = &response.groups[0];
    (g.group_state.to_string(), g.members.len())
}

fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(50));
    }
}

/// A `strom consume` running in the background, its stdout collected line by line.
struct Running {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<String>>,
}

impl Running {
    fn spawn(broker: &Broker, args: &[&str]) -> Running {
        let mut child = Command::new(support::strom_bin())
            .args(args)
            .env("STROM_BROKERS", broker.bootstrap())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn strom");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let out = child.stdout.take().expect("stdout");
        let sink = Arc::clone(&lines);
        thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                sink.lock().expect("lock").push(line);
            }
        });
        let mut err = child.stderr.take().expect("stderr");
        let sink = Arc::clone(&stderr);
        thread::spawn(move || {
            let mut text = String::new();
            let _ = err.read_to_string(&mut text);
            sink.lock().expect("lock").push_str(&text);
        });
        Running {
            child,
            lines,
            stderr,
        }
    }

    fn lines(&self) -> Vec<String> {
        self.lines.lock().expect("lock").clone()
    }

    fn wait_lines(&self, n: usize, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let lines = self.lines();
            if lines.len() >= n {
                return lines;
            }
            assert!(
                Instant::now() < deadline,
                "wanted {n} lines, got {lines:?}; stderr: {}",
                self.stderr.lock().expect("lock")
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill");
        assert!(status.success());
    }

    fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "strom consume did not exit");
            thread::sleep(Duration::from_millis(20));
        }
    }

    fn stderr(&self) -> String {
        self.stderr.lock().expect("lock").clone()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every code of `--format`.
const FORMAT: &str = r"%T|%p|%o|%t|%k|%v|%s|%h|%K|%S\n";

#[test]
fn prints_exactly_the_produced_records_in_every_format() {
    let Some(broker) = confluent() else { return };
    create_topic(&broker, "fmt", 3);
    produce(
        &broker,
        "fmt",
        "snappy",
        &[
            rec(0, Some("k0a"), "v0a", &[("h", "1"), ("x", "y")], 1000),
            rec(0, None, "v0b", &[], 2000),
            rec(1, Some("k1a"), "", &[], 3000),
        ],
    );
    produce(
        &broker,
        "fmt",
        "zstd",
        &[
            rec(2, Some("k2a"), "v2a", &[("h", "2")], 4000),
            rec(2, Some("k2b"), "v2b", &[], 5000),
        ],
    );

    let all = consume(&broker, "fmt --from-beginning -e -f", &[FORMAT]);
    assert_eq!(
        sorted_lines(&all),
        [
            "fmt|0|0|1000|k0a|v0a|v0a|h=1,x=y|3|3",
            "fmt|0|1|2000||v0b|v0b||-1|3",
            "fmt|1|0|3000|k1a||||3|0",
            "fmt|2|0|4000|k2a|v2a|v2a|h=2|3|3",
            "fmt|2|1|5000|k2b|v2b|v2b||3|3",
        ]
    );

    // --count stops after exactly N records, whatever the partitions.
    let five = consume(&broker, "fmt --from-beginning -n 5 --format %k:%v\\n", &[]);
    let expected = [":v0b", "k0a:v0a", "k1a:", "k2a:v2a", "k2b:v2b"];
    assert_eq!(sorted_lines(&five), expected);
    let one = consume(&broker, "fmt -p 2 --from-beginning -n 1 -f %k\\n", &[]);
    assert_eq!(one, "k2a\n");
    // Without a \n in the template, each record still ends its line.
    let plain = consume(&broker, "fmt --from-beginning -n 5 --format %k:%v", &[]);
    assert_eq!(sorted_lines(&plain), expected);
    assert_eq!(plain.lines().count(), 5, "{plain:?}");

    // Default format: the value and a newline, in offset order.
    let values = consume(&broker, "fmt -p 0 --from-beginning -e", &[]);
    assert_eq!(values, "v0a\nv0b\n");
    let escaped = consume(
        &broker,
        "fmt -p 1 --from-beginning -e -f",
        &[r"100%%\t%k\\\n"],
    );
    assert_eq!(escaped, "100%\tk1a\\\n");

    let json = consume(&broker, "fmt -p 0 --from-beginning -e --output json", &[]);
    let rows: Vec<Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(
        rows,
        [
            json!({"topic": "fmt", "partition": 0, "offset": 0, "timestamp": 1000,
                   "key": "k0a", "value": "v0a", "headers": {"h": "1", "x": "y"}}),
            json!({"topic": "fmt", "partition": 0, "offset": 1, "timestamp": 2000,
                   "key": null, "value": "v0b", "headers": {}}),
        ]
    );
}

#[test]
fn start_options_choose_where_each_partition_is_read_from() {
    let Some(broker) = confluent() else { return };
    create_topic(&broker, "start", 2);
    let mut records: Vec<Value> = (0..5)
        .map(|i| rec(0, None, &format!("a{i}"), &[], 1000 * (i + 1)))
        .collect();
    records.extend((0..3).map(|i| rec(1, None, &format!("b{i}"), &[], 1500 + 1000 * i)));
    produce(&broker, "start", "lz4", &records);
    let read = |words: &str| sorted_lines(&consume(&broker, &format!("start -e {words}"), &[]));
    assert_eq!(read("--offset 2 -p 0"), ["a2", "a3", "a4"]);
    assert_eq!(read("-o -2"), ["a3", "a4", "b1", "b2"]);
    assert_eq!(read("-o beginning --partition 1"), ["b0", "b1", "b2"]);
    assert_eq!(read("--partition 0,1 --from-beginning").len(), 8);
    assert_eq!(read("-p 0 -p 1 --from-beginning").len(), 8);
    assert_eq!(read("--from-timestamp 3000"), ["a2", "a3", "a4", "b2"]);
    // After every record of partition 1: it starts at its end.
    assert_eq!(read("--from-timestamp 1970-01-01T00:00:04Z"), ["a3", "a4"]);
    // Out of range resets to the end (auto.offset.reset=latest); the default is the end.
    assert!(read("--offset 99 -p 0").is_empty());
    assert!(read("").is_empty());
    assert!(read("-o end").is_empty());
}

#[test]
fn a_group_resumes_where_it_stopped_and_commits() {
    let Some(broker) = confluent() else { return };
    create_topic(&broker, "grp", 2);
    let records: Vec<Value> = (0..10)
        .map(|i| rec(i % 2, None, &format!("v{i}"), &[], 1000 + i as i64))
        .collect();
    produce(&broker, "grp", "gzip", &records);
    let first = consume(&broker, "grp -g g --from-beginning -n 4 -f %p:%o\\n", &[]);
    let first = sorted_lines(&first);
    assert_eq!(first.len(), 4);
    let rest = "grp --group g -e -f %p:%o\\n";
    let second = sorted_lines(&consume(&broker, rest, &[]));
    assert_eq!(second.len(), 6, "{first:?} then {second:?}");
    let all: BTreeSet<String> = first.iter().chain(&second).cloned().collect();
    assert_eq!(all.len(), 10, "no record twice: {first:?} then {second:?}");
    assert_eq!(committed(&broker, "g", "grp", 2), [5, 5]);
    assert_eq!(
        describe_group(&broker, "g"),
        ("Empty".to_string(), 0),
        "members left"
    );

    assert_eq!(consume(&broker, rest, &[]), "");
    produce(&broker, "grp", "none", &[rec(1, None, "late", &[], 9000)]);
    assert_eq!(consume(&broker, rest, &[]), "1:5\n");
    assert_eq!(committed(&broker, "g", "grp", 2), [5, 6]);

    // A new group without --from-beginning starts at the end and commits it.
    assert_eq!(consume(&broker, "grp -g new -e", &[]), "");
    assert_eq!(committed(&broker, "new", "grp", 2), [5, 6]);
}

#[test]
fn sigint_and_sigterm_commit_leave_and_exit_zero() {
    let Some(broker) = confluent() else { return };
    create_topic(&broker, "sig", 1);
    produce(
        &broker,
        "sig",
        "none",
        &(0..3)
            .map(|i| rec(0, None, &format!("v{i}"), &[], 1))
            .collect::<Vec<_>>(),
    );
    let args = ["consume", "sig", "-g", "gs", "--from-beginning"];
    let mut consumer = Running::spawn(&broker, &args);
    assert_eq!(
        consumer.wait_lines(3, Duration::from_secs(15)),
        ["v0", "v1", "v2"]
    );
    consumer.signal("INT");
    let status = consumer.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "{status}: {}", consumer.stderr());
    assert_eq!(consumer.stderr(), "");
    assert_eq!(committed(&broker, "gs", "sig", 1), [3]);
    assert_eq!(describe_group(&broker, "gs").1, 0, "the member left");

    produce(
        &broker,
        "sig",
        "none",
        &[rec(0, None, "v3", &[], 1), rec(0, None, "v4", &[], 1)],
    );
    let mut consumer = Running::spawn(&broker, &args);
    assert_eq!(
        consumer.wait_lines(2, Duration::from_secs(15)),
        ["v3", "v4"]
    );
    consumer.signal("TERM");
    let status = consumer.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "{status}: {}", consumer.stderr());
    assert_eq!(committed(&broker, "gs", "sig", 1), [5]);
}

#[test]
fn two_members_share_the_partitions_without_duplicates() {
    let Some(broker) = confluent() else { return };
    create_topic(&broker, "reb", 4);
    let batch = |round: i32| -> Vec<Value> {
        (0..8)
            .map(|i| rec(i % 4, None, &format!("r{round}-{i}"), &[], 1))
            .collect()
    };
    produce(&broker, "reb", "none", &batch(0));
    let args = [
        "consume",
        "reb",
        "-g",
        "gr",
        "--from-beginning",
        "-f",
        "%p %v\\n",
    ];
    let mut a = Running::spawn(&broker, &args);
    a.wait_lines(8, Duration::from_secs(15));
    let mut b = Running::spawn(&broker, &args);
    wait_until(
        "both members in a stable group",
        Duration::from_secs(20),
        || describe_group(&broker, "gr") == ("Stable".to_string(), 2),
    );
    produce(&broker, "reb", "none", &batch(1));
    wait_until("every record", Duration::from_secs(20), || {
        a.lines().len() + b.lines().len() >= 16
    });
    thread::sleep(Duration::from_millis(300));
    for member in [&a, &b] {
        member.signal("INT");
    }
    for member in [&mut a, &mut b] {
        let status = member.wait_exit(Duration::from_secs(10));
        assert!(status.success(), "{status}: {}", member.stderr());
    }
    let (a_lines, b_lines) = (a.lines(), b.lines());
    let mut all: Vec<String> = a_lines.iter().chain(&b_lines).cloned().collect();
    all.sort();
    let mut expected: Vec<String> = batch(0)
        .iter()
        .chain(&batch(1))
        .map(|r| {
            format!(
                "{} {}",
                r["partition"],
                r["value"].as_str().unwrap_or_default()
            )
        })
        .collect();
    expected.sort();
    assert_eq!(all, expected, "a: {a_lines:?}\nb: {b_lines:?}");
    // After the rebalance each read only its own partitions.
    let partitions = |lines: &[String]| -> BTreeSet<String> {
        lines
            .iter()
            .filter(|l| l.contains("r1-"))
            .filter_map(|l| l.split(' ').next().map(str::to_string))
            .collect()
    };
    let (pa, pb) = (partitions(&a_lines), partitions(&b_lines));
    assert!(!pb.is_empty(), "b got no partitions: {b_lines:?}");
    assert!(pa.is_disjoint(&pb), "a: {a_lines:?}\nb: {b_lines:?}");
    assert_eq!(committed(&broker, "gr", "reb", 4), [4, 4, 4, 4]);
}

#[test]
fn exit_flag_on_an_empty_topic_prints_nothing() {
    let broker = support::groups::broker();
    create_topic(&broker, "empty", 2);
    for args in [
        vec!["consume", "empty", "-e"],
        vec![
            "consume",
            "empty",
            "-e",
            "--from-beginning",
            "--output",
            "json",
        ],
        vec!["consume", "empty", "-e", "-g", "ge"],
    ] {
        let out = strom(&broker, &args).run();
        assert!(out.status.success(), "{args:?}: {}", out.stderr);
        assert_eq!(out.stdout, "", "{args:?}");
        assert_eq!(out.stderr, "", "{args:?}");
        assert!(
            out.elapsed < Duration::from_secs(5),
            "{args:?} took {:?}",
            out.elapsed
        );
    }
}

#[test]
fn errors_are_one_line_with_a_failure_status() {
    let broker = support::groups::broker();
    create_topic(&broker, "two", 2);
    assert_eq!(
        strom(&broker, &["consume", "nope"]).fails(),
        "error: unknown topic: nope"
    );
    assert_eq!(
        strom(&broker, &["consume", "nope", "-g", "g"]).fails(),
        "error: unknown topic: nope"
    );
    let line = strom(&broker, &["consume", "two", "-p", "7"]).fails();
    assert!(line.contains("unknown partition: two-7"), "{line}");
    let line = strom(&broker, &["consume", "two", "-f", "%x"]).fails();
    assert!(line.contains("%x"), "{line}");
    let line = strom(&broker, &["consume", "two", "-f", "%v", "--output", "json"]).fails();
    assert!(line.contains("--format"), "{line}");
    for bad in [
        vec!["consume", "two", "-o", "soon"],
        vec!["consume", "two", "--from-timestamp", "yesterday"],
        vec!["consume", "two", "--from-beginning", "-o", "3"],
        vec!["consume", "two", "-g", "g", "-p", "0"],
    ] {
        let out = strom(&broker, &bad).run();
        assert!(!out.status.success(), "{bad:?}");
        assert!(out.stderr.starts_with("error: "), "{bad:?}: {}", out.stderr);
    }
    let addr = format!("127.0.0.1:{}", support::free_port());
    let line = strom_alone(&["consume", "two", "--brokers", &addr]).fails();
    assert!(line.contains(&addr), "{line}");
}

#[test]
fn a_closed_stdout_ends_the_consumer_quietly() {
    let Some(broker) = confluent() else { return };
    create_topic(&broker, "big", 1);
    let value = "x".repeat(1000);
    let mut record = rec(0, None, &value, &[], 1);
    record["repeat"] = json!(400);
    produce(&broker, "big", "lz4", &[record]);
    // Without -e the consumer would wait for more records: it must stop on EPIPE.
    let script =
        r#""$0" consume big --from-beginning | head -c 10; echo; echo "status=${PIPESTATUS[0]}""#;
    let out = Command::new("bash")
        .args(["-c", script, support::strom_bin().as_str()])
        .env("STROM_BROKERS", broker.bootstrap())
        .output()
        .expect("bash");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.ends_with("status=0\n"), "{stdout}");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
}

#[test]
fn a_group_consumer_rides_out_a_broker_restart() {
    let Some(mut broker) = confluent() else {
        return;
    };
    create_topic(&broker, "restart", 1);
    produce(
        &broker,
        "restart",
        "none",
        &[rec(0, None, "before", &[], 1)],
    );
    let mut consumer = Running::spawn(
        &broker,
        &["consume", "restart", "-g", "gr", "--from-beginning"],
    );
    consumer.wait_lines(1, Duration::from_secs(15));
    broker.restart();
    produce(&broker, "restart", "none", &[rec(0, None, "after", &[], 1)]);
    assert_eq!(
        consumer.wait_lines(2, Duration::from_secs(20)),
        ["before", "after"]
    );
    consumer.signal("INT");
    let status = consumer.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "{status}: {}", consumer.stderr());
    assert_eq!(committed(&broker, "gr", "restart", 1), [2]);
}
