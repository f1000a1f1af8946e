//! Shared by the consumer-group tests (`tests/groups_*.rs`): a broker set up
//! for groups, and running a client program that must print `ALL OK`.

use std::ffi::OsStr;
use std::time::Duration;

use super::{Broker, ClientOutput};

/// A broker for group tests: `group.initial.rebalance.delay.ms=200` so the
/// first rebalance does not wait Kafka's default 3 s, and a small
/// `__consumer_offsets` (`offsets.topic.num.partitions=4`) to keep start-up
/// cheap.
pub fn broker() -> Broker {
    Broker::builder()
        .arg("-o")
        .arg("group.initial.rebalance.delay.ms=200")
        .arg("-o")
        .arg("offsets.topic.num.partitions=4")
        .start()
}

/// [`broker`], or `None` when confluent-kafka is missing and that is allowed
/// (see [`super::require_client`]).
pub fn confluent_broker() -> Option<Broker> {
    if !super::require_client(
        "confluent-kafka (pip)",
        super::python_module("confluent_kafka"),
    ) {
        return None;
    }
    Some(broker())
}

/// Checks that a client program printed its `ALL OK` line; `prefix` starts
/// the failure message (e.g. `"sarama: "`, or `""`).
pub fn assert_all_ok(prefix: &str, out: &ClientOutput) {
    assert!(
        out.stdout.lines().any(|l| l.starts_with("ALL OK ")),
        "{prefix}program exited 0 without its `ALL OK` line\n---- stdout ----\n{}\n---- stderr ----\n{}",
        out.stdout,
        out.stderr
    );
}

/// Runs a client program against `broker` (see [`Broker::run_client`]) and
/// checks its `ALL OK` line.
pub fn run_ok<P: AsRef<OsStr>>(
    broker: &Broker,
    prefix: &str,
    program: P,
    args: &[String],
    hard_timeout: Duration,
) {
    let out = broker.run_client(program, args, &[], hard_timeout);
    assert_all_ok(prefix, &out);
}
