//! End-to-end tests of `strom cluster info`, `strom version` and `strom completion`,
//! and of the error every client command gives for an unreachable broker.

#[path = "support/mod.rs"]
mod support;

use support::Broker;
use support::cli::{strom, strom_alone};

#[test]
fn cluster_info_lists_the_broker_as_controller() {
    let broker = Broker::start();
    let table = strom(&broker, &["cluster", "info"]).ok();
    let port = broker.port().to_string();
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("CLUSTER ID:"), "{table}");
    assert_eq!(
        lines[1].split_whitespace().collect::<Vec<_>>(),
        ["CONTROLLER:", "1"]
    );
    let row: Vec<&str> = lines
        .iter()
        .find(|l| l.starts_with("1 "))
        .unwrap_or_else(|| panic!("no row for broker 1:\n{table}"))
        .split_whitespace()
        .collect();
    assert_eq!(
        row,
        ["1", "127.0.0.1", port.as_str(), "-", "yes"],
        "{table}"
    );

    let json = strom(&broker, &["cluster", "info", "--output", "json"]).ok();
    let value: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
    let cluster_id = value["cluster_id"].as_str().expect("cluster id");
    assert_eq!(cluster_id.len(), 22, "base64 UUID cluster id: {json}");
    assert!(lines[0].ends_with(cluster_id), "same id in both formats");
    assert_eq!(value["controller_id"], 1);
    assert_eq!(value["brokers"][0]["port"], broker.port());
    assert_eq!(value["brokers"][0]["host"], "127.0.0.1");
}

#[test]
fn unreachable_broker_is_one_line_naming_the_address() {
    // A port nothing listens on: bind, note the port, close.
    let port = support::free_port();
    let addr = format!("127.0.0.1:{port}");
    for args in [
        vec!["cluster", "info"],
        vec!["topic", "list"],
        vec!["group", "list"],
    ] {
        let mut full = args.clone();
        full.extend(["--brokers", addr.as_str()]);
        let line = strom_alone(&full).fails();
        assert!(line.contains(&addr), "{args:?}: {line}");
        assert!(line.contains("Connection refused"), "{args:?}: {line}");
    }
    // Several bootstrap addresses: all are named.
    let two = format!("{addr},127.0.0.1:{}", support::free_port());
    let line = strom_alone(&["cluster", "info", "--brokers", &two]).fails();
    for a in two.split(',') {
        assert!(line.contains(a), "{line}");
    }
    // STROM_BROKERS is honoured.
    let line = strom_alone(&["cluster", "info"])
        .env("STROM_BROKERS", &addr)
        .fails();
    assert!(line.contains(&addr), "{line}");
}

#[test]
fn version_and_completions() {
    let out = strom_alone(&["version"]).ok();
    assert_eq!(out.trim(), format!("strom {}", env!("CARGO_PKG_VERSION")));
    let bash = strom_alone(&["completion", "bash"]).ok();
    assert!(
        bash.contains("complete -F") && bash.contains("strom"),
        "{bash}"
    );
    for sub in ["topic", "produce", "consume", "group", "cluster"] {
        assert!(bash.contains(sub), "bash completion lacks {sub}");
    }
    let zsh = strom_alone(&["completion", "zsh"]).ok();
    assert!(zsh.starts_with("#compdef strom"), "{zsh}");
    let fish = strom_alone(&["completion", "fish"]).ok();
    assert!(fish.contains("complete -c strom"), "{fish}");
    let line = strom_alone(&["completion", "tcsh"]).run();
    assert!(!line.status.success());
}
