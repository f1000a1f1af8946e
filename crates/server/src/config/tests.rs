//! Tests of configuration loading: defaults, the TOML file format, and the precedence
//! of flags over environment over file over defaults.

use std::io::Write;
use std::path::PathBuf;

use strom_storage::LogConfig;

use super::*;

fn file(contents: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().expect("temp file");
    f.write_all(contents.as_bytes()).expect("write");
    f
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn load(sources: ConfigSources) -> Result<BrokerConfig> {
    BrokerConfig::load(&sources)
}

fn err_text(sources: ConfigSources) -> String {
    load(sources).expect_err("should fail").to_string()
}

#[test]
fn defaults_match_kafka() {
    let c = load(ConfigSources::default()).expect("defaults load");
    assert_eq!(c, BrokerConfig::default());
    assert_eq!(c.listen.to_string(), "0.0.0.0:9092");
    assert_eq!(c.advertised(9092).to_string(), "localhost:9092");
    assert_eq!(c.node_id, 1);
    assert_eq!(c.data_dir, PathBuf::from("./strom-data"));
    assert_eq!(c.num_partitions, 1);
    assert_eq!(c.message_max_bytes, 1_048_588);
    assert_eq!(c.socket_request_max_bytes, 104_857_600);
    assert_eq!(c.log_retention_check_interval_ms, 300_000);
    // Kafka's log defaults are the storage engine's defaults.
    assert_eq!(c.default_log_config(), LogConfig::default());
}

#[test]
fn file_accepts_quoted_dotted_and_table_keys() {
    let f = file(
        r#"
        data_dir = "/var/lib/strom"
        listen = "127.0.0.1:19092"
        advertise = "broker.example:19092"
        node_id = 7
        "log.retention.ms" = 1000
        num.partitions = 3
        auto.create.topics.enable = false
        "log.segment.bytes" = "1048576"
        [log.flush]
        interval.messages = 10
        "#,
    );
    let c = load(ConfigSources {
        config_file: Some(f.path().into()),
        ..Default::default()
    })
    .expect("loads");
    assert_eq!(c.data_dir, PathBuf::from("/var/lib/strom"));
    assert_eq!(c.listen, HostPort::new("127.0.0.1", 19092));
    assert_eq!(c.advertised(1).to_string(), "broker.example:19092");
    assert_eq!(c.node_id, 7);
    assert_eq!(c.log_retention_ms, Some(1000));
    assert_eq!(c.num_partitions, 3);
    assert!(!c.auto_create_topics_enable);
    assert_eq!(c.log_segment_bytes, 1 << 20);
    let log = c.default_log_config();
    assert_eq!(log.retention_ms, Some(1000));
    assert_eq!(log.segment_bytes, 1 << 20);
    assert_eq!(log.flush.messages, Some(10));
}

#[test]
fn file_errors_name_the_key() {
    let cases = [
        ("log.retention.msec = 5", "log.retention.msec"),
        ("\"no.such.thing\" = 1", "no.such.thing"),
        ("datadir = \"x\"", "datadir"),
        ("[log]\nretention = 5", "log.retention"),
        (
            "\"log.retention.ms\" = 1\nlog.retention.ms = 2",
            "log.retention.ms",
        ),
        ("num.partitions = 0", "num.partitions"),
        ("num.partitions = \"many\"", "num.partitions"),
        ("node_id = \"one\"", "node_id"),
    ];
    for (contents, key) in cases {
        let f = file(contents);
        let text = err_text(ConfigSources {
            config_file: Some(f.path().into()),
            ..Default::default()
        });
        assert!(
            text.contains(key),
            "{contents:?}: error {text:?} does not name {key}"
        );
    }
    let missing = err_text(ConfigSources {
        config_file: Some("/nonexistent/strom.toml".into()),
        ..Default::default()
    });
    assert!(missing.contains("/nonexistent/strom.toml"), "{missing}");
}

#[test]
fn precedence_is_flags_then_env_then_file_then_defaults() {
    let f = file(
        r#"
        data_dir = "/from/file"
        listen = "127.0.0.1:1111"
        advertise = "file:1111"
        node_id = 11
        "log.retention.ms" = 1111
        "num.partitions" = 11
        "message.max.bytes" = 11
        "#,
    );
    let path = f.path().to_path_buf();

    // File only.
    let c = load(ConfigSources {
        config_file: Some(path.clone()),
        ..Default::default()
    })
    .expect("file");
    assert_eq!(
        (c.node_id, c.num_partitions, c.message_max_bytes),
        (11, 11, 11)
    );

    // Environment beats the file.
    let the_env = env(&[
        ("STROM_DATA_DIR", "/from/env"),
        ("STROM_LISTEN", "127.0.0.1:2222"),
        ("STROM_ADVERTISE", "env:2222"),
        ("STROM_NODE_ID", "22"),
        ("STROM_LOG_RETENTION_MS", "2222"),
        ("STROM_NUM_PARTITIONS", "22"),
    ]);
    let c = load(ConfigSources {
        config_file: Some(path.clone()),
        env: the_env.clone(),
        ..Default::default()
    })
    .expect("env");
    assert_eq!(c.data_dir, PathBuf::from("/from/env"));
    assert_eq!(c.listen.port, 2222);
    assert_eq!(c.advertised(0).host, "env");
    assert_eq!(c.node_id, 22);
    assert_eq!(c.log_retention_ms, Some(2222));
    assert_eq!(c.num_partitions, 22);
    assert_eq!(
        c.message_max_bytes, 11,
        "file value kept where env is silent"
    );

    // Flags and overrides beat the environment.
    let c = load(ConfigSources {
        config_file: Some(path),
        data_dir: Some("/from/flag".into()),
        listen: Some("127.0.0.1:3333".into()),
        advertise: Some("flag:3333".into()),
        node_id: Some(33),
        overrides: vec!["log.retention.ms=3333".into(), "num.partitions = 33".into()],
        env: the_env,
    })
    .expect("flags");
    assert_eq!(c.data_dir, PathBuf::from("/from/flag"));
    assert_eq!(c.listen.port, 3333);
    assert_eq!(c.advertised(0).host, "flag");
    assert_eq!(c.node_id, 33);
    assert_eq!(c.log_retention_ms, Some(3333));
    assert_eq!(c.num_partitions, 33);
    assert_eq!(c.message_max_bytes, 11);
}

#[test]
fn config_file_can_come_from_the_environment() {
    let f = file("\"num.partitions\" = 5");
    let path = f.path().to_string_lossy().into_owned();
    let c = load(ConfigSources {
        env: env(&[("STROM_CONFIG", &path)]),
        ..Default::default()
    })
    .expect("loads");
    assert_eq!(c.num_partitions, 5);
    // --config beats STROM_CONFIG.
    let g = file("\"num.partitions\" = 6");
    let c = load(ConfigSources {
        config_file: Some(g.path().into()),
        env: env(&[("STROM_CONFIG", &path)]),
        ..Default::default()
    })
    .expect("loads");
    assert_eq!(c.num_partitions, 6);
}

#[test]
fn later_override_wins_and_bad_overrides_are_named() {
    let c = load(ConfigSources {
        overrides: vec!["num.partitions=2".into(), "num.partitions=4".into()],
        ..Default::default()
    })
    .expect("loads");
    assert_eq!(c.num_partitions, 4);
    for (o, needle) in [
        ("num.partitions", "num.partitions"),
        ("bogus.key=1", "bogus.key"),
        ("data_dir=/x", "data_dir"),
        ("log.retention.ms=soon", "log.retention.ms"),
    ] {
        let text = err_text(ConfigSources {
            overrides: vec![o.into()],
            ..Default::default()
        });
        assert!(text.contains(needle), "{o}: {text}");
    }
    let text = err_text(ConfigSources {
        env: env(&[("STROM_NUM_PARTITIONS", "-3")]),
        ..Default::default()
    });
    assert!(text.contains("STROM_NUM_PARTITIONS"), "{text}");
}

#[test]
fn retention_and_roll_resolve_like_kafka() {
    let with = |overrides: &[&str]| {
        load(ConfigSources {
            overrides: overrides.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        })
        .expect("loads")
    };
    assert_eq!(
        with(&["log.retention.hours=2"]).log_retention_ms_effective(),
        Some(7_200_000)
    );
    assert_eq!(
        with(&["log.retention.hours=2", "log.retention.minutes=3"]).log_retention_ms_effective(),
        Some(180_000)
    );
    assert_eq!(
        with(&["log.retention.minutes=3", "log.retention.ms=5"]).log_retention_ms_effective(),
        Some(5)
    );
    let forever = with(&["log.retention.ms=-1", "log.retention.bytes=-1"]);
    assert_eq!(forever.default_log_config().retention_ms, None);
    assert_eq!(forever.default_log_config().retention_bytes, None);
    assert_eq!(
        with(&["log.retention.bytes=1000"])
            .default_log_config()
            .retention_bytes,
        Some(1000)
    );
    assert_eq!(
        with(&["log.roll.hours=1"]).default_log_config().segment_ms,
        Some(3_600_000)
    );
    assert_eq!(
        with(&["log.roll.hours=1", "log.roll.ms=10"])
            .default_log_config()
            .segment_ms,
        Some(10)
    );
    let flush = with(&["log.flush.interval.ms=50"])
        .default_log_config()
        .flush;
    assert_eq!((flush.messages, flush.interval_ms), (None, Some(50)));
}

#[test]
fn cross_field_validation() {
    let bad = |overrides: &[&str], needle: &str| {
        let text = err_text(ConfigSources {
            overrides: overrides.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        });
        assert!(text.contains(needle), "{overrides:?}: {text}");
    };
    bad(
        &["queued.max.request.bytes=1000"],
        "queued.max.request.bytes",
    );
    // Storage limits: an index must hold at least one 8-byte entry... and at most i32.
    bad(&["log.index.size.max.bytes=11"], "log.index.size.max.bytes");
    let text = err_text(ConfigSources {
        advertise: Some("0.0.0.0:9092".into()),
        ..Default::default()
    });
    assert!(text.contains("advertise"), "{text}");
    let text = err_text(ConfigSources {
        listen: Some("nowhere".into()),
        ..Default::default()
    });
    assert!(text.contains("--listen"), "{text}");
    let text = err_text(ConfigSources {
        env: env(&[("STROM_NODE_ID", "x")]),
        ..Default::default()
    });
    assert!(text.contains("STROM_NODE_ID"), "{text}");
}

#[test]
fn unknown_strom_env_vars_are_not_fatal() {
    let c = load(ConfigSources {
        env: env(&[("STROM_LOG_RETENTION_MSS", "1"), ("OTHER", "x")]),
        ..Default::default()
    })
    .expect("loads");
    assert_eq!(c, BrokerConfig::default());
}

#[test]
fn kafka_properties_cover_every_property_and_flag_defaults() {
    let defaults = BrokerConfig::default().kafka_properties();
    for p in properties::PROPERTIES {
        assert!(
            defaults.iter().any(|d| d.name == p.name),
            "{} missing from kafka_properties",
            p.name
        );
    }
    assert!(defaults.iter().all(|p| p.is_default), "{defaults:?}");
    let find = |all: &[PropertyValue], name: &str| {
        all.iter()
            .find(|p| p.name == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name}"))
    };
    assert_eq!(find(&defaults, "log.retention.ms").value, None);
    assert_eq!(
        find(&defaults, "log.retention.hours").value.as_deref(),
        Some("168")
    );
    assert_eq!(
        find(&defaults, "node.id").config_type,
        strom_coordinator::ConfigType::Int
    );

    let c = load(ConfigSources {
        overrides: vec!["log.retention.ms=1000".into(), "num.partitions=3".into()],
        node_id: Some(7),
        ..Default::default()
    })
    .expect("loads");
    let all = c.kafka_properties();
    assert_eq!(all.len(), defaults.len());
    let retention = find(&all, "log.retention.ms");
    assert_eq!(retention.value.as_deref(), Some("1000"));
    assert!(!retention.is_default);
    assert!(!find(&all, "num.partitions").is_default);
    assert_eq!(find(&all, "node.id").value.as_deref(), Some("7"));
    assert!(find(&all, "log.retention.hours").is_default);
    let mut names: Vec<_> = all.iter().map(|p| p.name).collect();
    names.dedup();
    assert_eq!(names.len(), all.len(), "sorted and unique");
}

#[test]
fn offset_settings_reach_the_group_coordinator() {
    let c = load(ConfigSources {
        overrides: vec![
            "offsets.retention.minutes=5".into(),
            "offsets.retention.check.interval.ms=1000".into(),
            "offset.metadata.max.bytes=10".into(),
        ],
        ..Default::default()
    })
    .expect("loads");
    let o = crate::groups::offsets_config(&c);
    assert_eq!(
        (
            o.retention_ms,
            o.retention_check_interval_ms,
            o.metadata_max_bytes
        ),
        (300_000, 1000, 10)
    );
    let d = crate::groups::offsets_config(&BrokerConfig::default());
    assert_eq!(
        d.retention_ms,
        7 * 24 * 60 * 60 * 1000,
        "Kafka's 7-day default"
    );
}

#[test]
fn connection_and_fetch_limits() {
    let c = BrokerConfig::default();
    // Kafka's defaults, and Strom's own read timeout.
    assert_eq!(c.max_connections_per_ip, i32::MAX);
    assert_eq!(c.connections_max_idle_ms, 600_000);
    assert_eq!(c.fetch_max_bytes, 57_671_680);
    assert_eq!(c.socket_request_read_timeout_ms, 30_000);
    let ip = |s: &str| s.parse::<std::net::IpAddr>().expect("ip");
    assert_eq!(c.max_connections_for(ip("10.0.0.1")), i32::MAX as u32);

    let c = load(ConfigSources {
        overrides: vec![
            "max.connections.per.ip=3".into(),
            "max.connections.per.ip.overrides=127.0.0.2:0, ::1:10".into(),
            "connections.max.idle.ms=9223372036854775807".into(),
        ],
        ..Default::default()
    })
    .expect("loads");
    assert_eq!(c.max_connections_for(ip("10.0.0.1")), 3);
    assert_eq!(c.max_connections_for(ip("127.0.0.2")), 0);
    assert_eq!(c.max_connections_for(ip("::1")), 10);
    // A huge timeout is "never", not an overflow.
    assert_eq!(
        BrokerConfig::timeout(c.connections_max_idle_ms),
        std::time::Duration::from_millis(crate::config::MAX_TIMEOUT_MS)
    );
    let described = c.kafka_properties();
    let overrides = described
        .iter()
        .find(|p| p.name == "max.connections.per.ip.overrides")
        .expect("described");
    assert_eq!(overrides.value.as_deref(), Some("127.0.0.2:0,::1:10"));
    assert!(!overrides.is_default);

    let err = |overrides: &[&str]| {
        err_text(ConfigSources {
            overrides: overrides.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        })
    };
    // 0 refuses everyone unless some addresses are let in by an override.
    let text = err(&["max.connections.per.ip=0"]);
    assert!(text.contains("max.connections.per.ip"), "{text}");
    load(ConfigSources {
        overrides: vec![
            "max.connections.per.ip=0".into(),
            "max.connections.per.ip.overrides=127.0.0.1:5".into(),
        ],
        ..Default::default()
    })
    .expect("0 with overrides is an allow list");
    for bad in [
        "max.connections.per.ip.overrides=localhost:5",
        "max.connections.per.ip.overrides=127.0.0.1",
        "fetch.max.bytes=1023",
        "socket.request.read.timeout.ms=0",
        "connections.max.idle.ms=0",
    ] {
        let text = err(&[bad]);
        let name = bad.split('=').next().expect("name");
        assert!(text.contains(name), "{bad}: {text}");
    }
}
