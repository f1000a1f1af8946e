//! `strom-perf produce`: flat out (or at --rate) to a broker or to
//! librdkafka's mock cluster.

use anyhow::{Context, Result};
use rdkafka::mocking::MockCluster;

use crate::cli::{Load, ProduceCmd};
use crate::cost::Meter;
use crate::kafka::{base_config, ensure_topic};
use crate::produce::{self, Limit, producer_config};
use crate::rate::RateSpec;
use crate::report::Report;

pub fn run(cmd: &ProduceCmd) -> Result<Report> {
    if cmd.mock {
        return run_mock(&cmd.load, &cmd.conn.topic, &cmd.conn.properties);
    }
    let base = base_config(&cmd.conn.brokers, &cmd.conn.properties)?;
    ensure_topic(&base, &cmd.conn.topic, cmd.load.partitions)?;
    let limit = Limit::from_load(&cmd.load, Load::DEFAULT_COUNT);
    let rate = cmd.load.rate.unwrap_or(RateSpec::Unlimited);
    let cfg = producer_config(base, &cmd.load, &cmd.conn.properties)?;
    let job = super::job(cfg, &cmd.conn.topic, &cmd.load, limit, rate, false);

    let meter = Meter::start(&cmd.watch)?;
    let out = produce::run(&job)?;
    let cost = meter.finish(out.acked_bytes)?;
    Ok(Report {
        mode: "produce",
        target: cmd.conn.brokers.clone(),
        topic: cmd.conn.topic.clone(),
        settings: super::settings(&cmd.load, &limit, rate, &cmd.conn.properties),
        produce: Some(super::produce_flow(&out)),
        consume: None,
        cost,
    })
}

/// The same load against an in-process mock cluster (one broker): the
/// client's own ceiling on this machine. The mock broker's threads are in
/// this process, so the client CPU figure includes them.
pub fn run_mock(load: &Load, topic: &str, properties: &[String]) -> Result<Report> {
    let mock = MockCluster::new(1).context("starting the mock cluster")?;
    // The mock broker does not implement CreateTopics.
    mock.create_topic(topic, load.partitions, 1)
        .context("creating the topic on the mock cluster")?;
    let base = base_config(&mock.bootstrap_servers(), properties)?;
    let limit = Limit::from_load(load, Load::DEFAULT_COUNT);
    let rate = load.rate.unwrap_or(RateSpec::Unlimited);
    let cfg = producer_config(base, load, properties)?;
    let job = super::job(cfg, topic, load, limit, rate, false);

    let meter = Meter::start(&Default::default())?;
    let out = produce::run(&job)?;
    let cost = meter.finish(out.acked_bytes)?;
    drop(mock);
    Ok(Report {
        mode: "produce",
        target: "mock".into(),
        topic: topic.into(),
        settings: super::settings(load, &limit, rate, properties),
        produce: Some(super::produce_flow(&out)),
        consume: None,
        cost,
    })
}
