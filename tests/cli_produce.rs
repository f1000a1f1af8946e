//! End-to-end tests of `strom produce` against a real `strom serve`: what is produced
//! is read back with kcat (keys, values, headers, partitions, timestamps) and, for
//! compression, with a raw Fetch whose batch headers show the codec; keyed records
//! land where Java clients (and librdkafka's `murmur2_random`) put them; every failure
//! is one `error:` line with a non-zero exit.

#[path = "support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{
    ApiKey, BrokerId, CreateTopicsRequest, CreateTopicsResponse, FetchRequest, FetchResponse,
    TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{Compression, RecordBatchDecoder};
use serde_json::Value;
use support::Broker;
use support::cli::{strom, strom_alone};
use support::wire::Conn;

/// The last Fetch version that names topics (v13+ uses topic ids).
const FETCH_VERSION: i16 = 12;

fn name(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// Creates `topic` with `partitions` partitions and topic `configs`.
fn create_topic(broker: &Broker, topic: &str, partitions: i32, configs: &[(&str, &str)]) {
    let mut conn = Conn::open(broker.addr());
    let request = CreateTopicsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![
            CreatableTopic::default()
                .with_name(TopicName(name(topic)))
                .with_num_partitions(partitions)
                .with_replication_factor(-1)
                .with_configs(
                    configs
                        .iter()
                        .map(|(k, v)| {
                            CreatableTopicConfig::default()
                                .with_name(name(k))
                                .with_value(Some(name(v)))
                        })
                        .collect(),
                ),
        ]);
    let response: CreateTopicsResponse = conn.call(ApiKey::CreateTopics, 5, &request);
    assert_eq!(
        response.topics[0].error_code, 0,
        "create {topic}: {response:?}"
    );
}

/// kcat, or `None` (after saying why) when it is missing and that is allowed.
fn kcat() -> Option<String> {
    let kcat = support::find_program("kcat");
    if !support::require_client("kcat (Debian package kcat)", kcat.clone().map(|_| ())) {
        return None;
    }
    kcat.ok().map(|p| p.display().to_string())
}

/// Every record of `topic` as kcat formats it with `format`, one string per record,
/// grouped by partition (kcat interleaves partitions).
fn kcat_read(kcat: &str, broker: &Broker, topic: &str, format: &str) -> Vec<String> {
    let out = Command::new(kcat)
        .args(["-b", &broker.bootstrap(), "-C", "-t", topic, "-e", "-q"])
        .args(["-f", &format!("%p\t{format}\n")])
        .output()
        .expect("run kcat");
    assert!(
        out.status.success(),
        "kcat -C failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("UTF-8 records");
    let mut by_partition: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    for line in text.lines() {
        let (p, rest) = line.split_once('\t').expect("partition column");
        by_partition
            .entry(p.parse().expect("partition number"))
            .or_default()
            .push(rest.to_string());
    }
    by_partition.into_values().flatten().collect()
}

/// The compression of every batch stored in `topic`'s partition 0, by raw Fetch.
fn batch_codecs(broker: &Broker, topic: &str) -> Vec<Compression> {
    let mut conn = Conn::open(broker.addr());
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(64 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(TopicName(name(topic)))
                .with_partitions(vec![
                    FetchPartition::default()
                        .with_partition(0)
                        .with_current_leader_epoch(-1)
                        .with_fetch_offset(0)
                        .with_last_fetched_epoch(-1)
                        .with_log_start_offset(-1)
                        .with_partition_max_bytes(64 << 20),
                ]),
        ]);
    let response: FetchResponse = conn.call(ApiKey::Fetch, FETCH_VERSION, &request);
    let partition = &response.responses[0].partitions[0];
    assert_eq!(partition.error_code, 0, "{response:?}");
    let mut records = partition.records.clone().expect("records");
    RecordBatchDecoder::decode_batch_info(&mut records)
        .expect("batch headers")
        .into_iter()
        .map(|b| b.compression)
        .collect()
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("bad JSON ({e}):\n{text}"))
}

#[test]
fn keys_headers_partition_and_timestamp_read_back_exactly() {
    let broker = Broker::start();
    create_topic(&broker, "t", 3, &[]);
    let input = "k1:v1\nno separator\n:empty key\nk2:\n\nk3:a:b\r\nlast\r";
    let out = strom(
        &broker,
        &[
            "produce",
            "t",
            "-K",
            ":",
            "-H",
            "h1=x",
            "--header",
            "h2",
            "-p",
            "2",
            "--timestamp",
            "1700000000123",
        ],
    )
    .stdin(input)
    .ok();
    assert_eq!(out, "", "nothing on stdout without --output json");
    let Some(kcat) = kcat() else { return };
    let got = kcat_read(&kcat, &broker, "t", "%p|%o|%K|%k|%S|%s|%h|%T");
    let h = "h1=x,h2=NULL";
    let ts = "1700000000123";
    assert_eq!(
        got,
        [
            format!("2|0|2|k1|2|v1|{h}|{ts}"),
            format!("2|1|-1||12|no separator|{h}|{ts}"),
            format!("2|2|0||9|empty key|{h}|{ts}"),
            format!("2|3|2|k2|0||{h}|{ts}"),
            format!("2|4|-1||0||{h}|{ts}"),
            // First separator only; `\r\n` is a line ending.
            format!("2|5|2|k3|3|a:b|{h}|{ts}"),
            // A last line without `\n` keeps its `\r`.
            format!("2|6|-1||5|last\r|{h}|{ts}"),
        ]
    );
}

#[test]
fn without_a_separator_the_whole_line_is_the_value_and_time_is_now() {
    let broker = Broker::start();
    create_topic(&broker, "plain", 1, &[]);
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    strom(&broker, &["produce", "plain", "--acks", "1"])
        .stdin("a:b\nc\n")
        .ok();
    let Some(kcat) = kcat() else { return };
    let got = kcat_read(&kcat, &broker, "plain", "%K|%s|%T");
    assert_eq!(got.len(), 2, "{got:?}");
    for (line, value) in got.iter().zip(["a:b", "c"]) {
        let cells: Vec<&str> = line.split('|').collect();
        assert_eq!(&cells[..2], ["-1", value]);
        let ts: i64 = cells[2].parse().expect("timestamp");
        assert!(
            ts >= before && ts < before + 60_000,
            "CreateTime is now: {ts}"
        );
    }
}

#[test]
fn every_codec_is_applied_and_reads_back() {
    let broker = Broker::start();
    let kcat = kcat();
    let lines: String = (0..2000)
        .map(|i| format!("record {i} {}\n", "compressible ".repeat(i % 7)))
        .collect();
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        let topic = format!("codec-{codec}");
        create_topic(&broker, &topic, 1, &[]);
        strom(
            &broker,
            &[
                "produce",
                &topic,
                "--compression",
                codec,
                "--batch-size",
                "16384",
            ],
        )
        .stdin(lines.as_str())
        .ok();
        let codecs = batch_codecs(&broker, &topic);
        assert!(codecs.len() > 1, "{codec}: several batches: {codecs:?}");
        let want = match codec {
            "none" => Compression::None,
            "gzip" => Compression::Gzip,
            "snappy" => Compression::Snappy,
            "lz4" => Compression::Lz4,
            _ => Compression::Zstd,
        };
        assert!(codecs.iter().all(|&c| c == want), "{codec}: {codecs:?}");
        if let Some(kcat) = &kcat {
            let got = kcat_read(kcat, &broker, &topic, "%s");
            let want: Vec<&str> = lines.lines().collect();
            assert_eq!(got, want, "{codec}");
        }
    }
    // -z is the short form, as in kcat.
    create_topic(&broker, "short", 1, &[]);
    strom(&broker, &["produce", "short", "-z", "lz4"])
        .stdin("x\n")
        .ok();
    assert_eq!(batch_codecs(&broker, "short"), [Compression::Lz4]);
}

#[test]
fn keyed_records_land_where_java_clients_put_them() {
    let broker = Broker::start();
    let Some(kcat) = kcat() else { return };
    create_topic(&broker, "keyed", 6, &[]);
    create_topic(&broker, "keyed-librdkafka", 6, &[]);
    // Kafka's own murmur2 test keys, with toPositive(murmur2(key)) % 6 from the Java
    // values in UtilsTest.testMurmur2.
    let java: &[(&str, &str)] = &[
        ("21", "0"),
        ("foobar", "0"),
        ("abc", "3"),
        ("a-little-bit-long-string", "2"),
        ("a-little-bit-longer-string", "5"),
        ("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", "5"),
    ];
    let mut input: String = java.iter().map(|(k, _)| format!("{k}=java\n")).collect();
    input.extend((0..500).map(|i| format!("key-{i}=v{i}\n")));
    strom(&broker, &["produce", "keyed", "--key-separator", "="])
        .stdin(input.as_str())
        .ok();
    let ours: BTreeMap<String, String> = kcat_read(&kcat, &broker, "keyed", "%k %p")
        .into_iter()
        .map(|l| {
            let (k, p) = l.split_once(' ').expect("key and partition");
            (k.to_string(), p.to_string())
        })
        .collect();
    assert_eq!(ours.len(), 506);
    for (key, partition) in java {
        assert_eq!(ours[*key], *partition, "key {key}");
    }
    // librdkafka's murmur2_random is the Java partitioner for non-null keys.
    let mut child = Command::new(&kcat)
        .args([
            "-b",
            &broker.bootstrap(),
            "-P",
            "-t",
            "keyed-librdkafka",
            "-K",
            "=",
        ])
        .args(["-X", "topic.partitioner=murmur2_random"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("spawn kcat -P");
    std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), input.as_bytes())
        .expect("write to kcat");
    assert!(child.wait().expect("kcat -P").success());
    let theirs: BTreeMap<String, String> = kcat_read(&kcat, &broker, "keyed-librdkafka", "%k %p")
        .into_iter()
        .map(|l| {
            let (k, p) = l.split_once(' ').expect("key and partition");
            (k.to_string(), p.to_string())
        })
        .collect();
    assert_eq!(ours, theirs);
    let used: std::collections::BTreeSet<&String> = ours.values().collect();
    assert_eq!(used.len(), 6, "500 keys use every partition");
}

#[test]
fn many_null_key_records_stick_per_batch_and_are_all_acknowledged() {
    let broker = Broker::start();
    create_topic(&broker, "bulk", 4, &[]);
    let count: u64 = 50_000;
    let lines: String = (0..count)
        .map(|i| format!("{i:08} {}\n", "x".repeat(100)))
        .collect();
    let out = strom(
        &broker,
        &[
            "produce",
            "bulk",
            "--batch-size",
            "65536",
            "--linger-ms",
            "10000",
            "--output",
            "json",
        ],
    )
    .stdin(lines.as_str())
    .ok();
    let summary = json(&out);
    assert_eq!(summary["records"], count);
    assert_eq!(summary["input_bytes"], lines.len());
    assert_eq!(summary["acks"], "all");
    let partitions = summary["partitions"].as_array().expect("partitions");
    assert_eq!(
        partitions.len(),
        4,
        "sticky partitioning moves on per batch: {out}"
    );
    let mut total = 0;
    for p in partitions {
        let records = p["records"].as_u64().expect("records");
        assert_eq!(p["first_offset"], 0, "{out}");
        assert_eq!(p["last_offset"].as_u64(), Some(records - 1), "{out}");
        total += records;
    }
    assert_eq!(total, count);
    let batches = summary["batches"].as_u64().expect("batches");
    // 50,000 records of 110 bytes in batches of 64 KiB (closed when full, with this
    // linger): about 90 batches, a few more where batches filled on the last partition.
    assert!((80..=100).contains(&batches), "{out}");
    assert!(summary["requests"].as_u64().expect("requests") <= batches);

    let Some(kcat) = kcat() else { return };
    let mut got = kcat_read(&kcat, &broker, "bulk", "%s");
    assert_eq!(got.len() as u64, count);
    // Each partition holds increasing runs; together every record once.
    got.sort();
    let want: Vec<&str> = lines.lines().collect();
    assert_eq!(got, want);
}

#[test]
fn file_input_and_json_summary() {
    let broker = Broker::start();
    create_topic(&broker, "f", 2, &[]);
    let dir = support::TempDir::new("produce-file");
    let path = dir.path().join("records.txt");
    std::fs::write(&path, "a\nb\nc\n").expect("write input file");
    let path = path.display().to_string();
    let out = strom(
        &broker,
        &[
            "produce", "f", "--file", &path, "-p", "1", "--output", "json",
        ],
    )
    .stdin("ignored\n")
    .ok();
    let summary = json(&out);
    assert_eq!(summary["records"], 3);
    assert_eq!(summary["input_bytes"], 6);
    assert_eq!(summary["compression"], "none");
    assert_eq!(
        summary["partitions"],
        serde_json::json!([{"partition": 1, "records": 3, "first_offset": 0, "last_offset": 2}])
    );
    // --verbose: the summary line on stderr, stdout stays empty.
    let run = strom(&broker, &["produce", "f", "-f", &path, "-p", "1", "-v"]).run();
    assert!(run.status.success(), "{}", run.stderr);
    assert_eq!(run.stdout, "");
    assert!(
        run.stderr
            .starts_with("produced 3 records (0.00 MB) to f in "),
        "{}",
        run.stderr
    );
    let Some(kcat) = kcat() else { return };
    assert_eq!(
        kcat_read(&kcat, &broker, "f", "%s@%o"),
        ["a@0", "b@1", "c@2", "a@3", "b@4", "c@5"]
    );

    let missing = dir.path().join("missing.txt").display().to_string();
    let line = strom(&broker, &["produce", "f", "--file", &missing]).fails();
    assert!(
        line.starts_with(&format!("error: cannot open {missing}")),
        "{line}"
    );
}

#[test]
fn empty_input_produces_nothing_and_succeeds() {
    let broker = Broker::start();
    create_topic(&broker, "empty", 1, &[]);
    assert_eq!(strom(&broker, &["produce", "empty"]).stdin("").ok(), "");
    let summary = json(&strom(&broker, &["produce", "empty", "--output", "json"]).ok());
    assert_eq!(summary["records"], 0);
    assert_eq!(summary["requests"], 0);
    assert!(batch_codecs(&broker, "empty").is_empty());
}

#[test]
fn acks_zero_one_and_all_are_all_delivered() {
    let broker = Broker::start();
    create_topic(&broker, "acks", 1, &[]);
    for acks in ["0", "1", "all", "-1"] {
        let out = strom(
            &broker,
            &["produce", "acks", "--acks", acks, "--output", "json"],
        )
        .stdin(format!("acks {acks}\n"))
        .ok();
        let summary = json(&out);
        assert_eq!(summary["records"], 1, "{out}");
        let name = if acks == "-1" { "all" } else { acks };
        assert_eq!(summary["acks"], name);
        // Offsets are only known from an acknowledgement.
        assert_eq!(
            summary["partitions"][0].get("first_offset").is_none(),
            acks == "0"
        );
    }
    // --acks=-1 with an equals sign, too.
    strom(&broker, &["produce", "acks", "--acks=-1"])
        .stdin("x\n")
        .ok();
    let Some(kcat) = kcat() else { return };
    assert_eq!(
        kcat_read(&kcat, &broker, "acks", "%s"),
        ["acks 0", "acks 1", "acks all", "acks -1", "x"]
    );
}

#[test]
fn unknown_topic_is_one_error_line() {
    let broker = Broker::start();
    let line = strom(&broker, &["produce", "nope"]).stdin("a\n").fails();
    assert_eq!(line, "error: unknown topic: nope");
    // Not auto-created by asking.
    let line = strom(&broker, &["produce", "nope"]).stdin("a\n").fails();
    assert_eq!(line, "error: unknown topic: nope");
}

#[test]
fn a_record_over_the_topic_limit_is_message_too_large() {
    let broker = Broker::start();
    create_topic(&broker, "small", 1, &[("max.message.bytes", "1000")]);
    let big = format!("ok\n{}\n", "y".repeat(5000));
    for acks in ["1", "all"] {
        let line = strom(
            &broker,
            &["produce", "small", "--acks", acks, "--linger-ms", "0"],
        )
        .stdin(big.as_str())
        .fails();
        assert!(
            line.starts_with("error: cannot produce to small-0"),
            "{line}"
        );
        assert!(line.contains("MESSAGE_TOO_LARGE"), "{line}");
    }
}

#[test]
fn bad_flag_values_are_refused() {
    let broker = Broker::start();
    create_topic(&broker, "three", 3, &[]);
    for (flag, value) in [
        ("--acks", "2"),
        ("--acks", "none"),
        ("--compression", "brotli"),
        ("--partition", "-1"),
        ("--batch-size", "0"),
        ("--timestamp", "soon"),
    ] {
        // `--flag=value`, so that `-1` is not taken for a flag.
        let arg = format!("{flag}={value}");
        let out = strom(&broker, &["produce", "three", &arg])
            .stdin("a\n")
            .run();
        assert_eq!(out.status.code(), Some(2), "{flag} {value}: {}", out.stderr);
        let first = out.stderr.lines().next().unwrap_or_default();
        assert!(
            first.starts_with(&format!("error: invalid value '{value}' for '{flag}")),
            "{flag} {value}: {}",
            out.stderr
        );
    }
    let line = strom(&broker, &["produce", "three", "-p", "3"])
        .stdin("a\n")
        .fails();
    assert_eq!(
        line,
        "error: partition 3 does not exist: topic three has 3 partitions"
    );
    let line = strom(&broker, &["produce", "three", "-H", "a=1", "-H", "a=2"])
        .stdin("a\n")
        .fails();
    assert_eq!(line, "error: --header a is given twice");
    let out = strom(&broker, &["produce", "three", "-H", "=v"]).run();
    assert_eq!(out.status.code(), Some(2), "{}", out.stderr);
    let line = strom(&broker, &["produce", "three", "-K", ""])
        .stdin("a\n")
        .fails();
    assert_eq!(line, "error: --key-separator must not be empty");
}

#[test]
fn unreachable_broker_is_one_line_naming_the_address() {
    let addr = format!("127.0.0.1:{}", support::free_port());
    let line = strom_alone(&["produce", "t", "--brokers", &addr])
        .stdin("a\n")
        .timeout(Duration::from_secs(30))
        .fails();
    assert!(line.contains(&addr), "{line}");
    assert!(line.contains("Connection refused"), "{line}");
}
