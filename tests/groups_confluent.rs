//! Consumer groups against a real `strom serve`.
//!
//! `confluent_kafka_consumer_group` runs `tests/clients/group_basic.py`:
//! three confluent-kafka-python consumers (librdkafka) subscribe() to a
//! 6-partition topic in one group, which must assign every partition to
//! exactly one member; every produced record is consumed and committed, then a
//! new member of the group resumes from the committed offsets.
//!
//! The broker runs with `group.initial.rebalance.delay.ms=200` so the first
//! rebalance does not wait Kafka's default 3 s, and `__consumer_offsets` kept
//! small (`offsets.topic.num.partitions=4`) to keep start-up cheap.
//!
//! `committed_offsets_survive_a_restart` runs `tests/clients/group_restart.py`
//! twice: a member commits, the broker restarts (loading `__consumer_offsets`
//! back), and a new member resumes from the committed offsets.
//!
//! A missing confluent-kafka fails the test unless
//! `STROM_ALLOW_MISSING_CLIENTS=1` (never set in CI).

#[path = "support/mod.rs"]
mod support;

use std::time::Duration;

use support::Broker;
use support::groups;

/// The program's own overall deadline.
const PROGRAM_DEADLINE_SECS: &str = "50";
/// Hard limit enforced from here, above the program's own deadline.
const HARD_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs a client program and checks its `ALL OK` line.
fn run_ok(broker: &Broker, args: &[String]) {
    groups::run_ok(broker, "", support::python(), args, HARD_TIMEOUT);
}

#[test]
fn confluent_kafka_consumer_group() {
    let Some(broker) = groups::confluent_broker() else {
        return;
    };
    let script = support::clients_dir().join("group_basic.py");
    let args = vec![
        script.to_string_lossy().into_owned(),
        broker.bootstrap(),
        "--timeout".to_string(),
        PROGRAM_DEADLINE_SECS.to_string(),
    ];
    run_ok(&broker, &args);
}

#[test]
fn committed_offsets_survive_a_restart() {
    let Some(mut broker) = groups::confluent_broker() else {
        return;
    };
    let script = support::clients_dir().join("group_restart.py");
    let args = |mode: &str| {
        vec![
            script.to_string_lossy().into_owned(),
            broker.bootstrap(),
            mode.to_string(),
            "restart-topic".to_string(),
            "--timeout".to_string(),
            "40".to_string(),
        ]
    };
    let commit = args("commit");
    let verify = args("verify");
    run_ok(&broker, &commit);
    broker.restart();
    run_ok(&broker, &verify);
}
