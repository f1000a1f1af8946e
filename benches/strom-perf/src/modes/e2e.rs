//! `strom-perf e2e`: produce at a fixed rate while a consumer reads the
//! same topic; end-to-end latency from the send time each producer writes
//! into the first 8 bytes of the payload to the moment the consumer sees
//! the record. (The record's CreateTime has only millisecond resolution,
//! and the payload stamp uses the same monotonic clock at both ends.)

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;

use anyhow::{Context, Result, anyhow, bail};

use crate::cli::{E2eCmd, Load};
use crate::consume::{self, Start, Stop, consumer_config};
use crate::cost::Meter;
use crate::kafka::{base_config, ensure_topic};
use crate::produce::{self, Limit, producer_config};
use crate::rate::RateSpec;
use crate::report::{Flow, Report};

/// Without --count or --duration, e2e runs this long.
const DEFAULT_DURATION: std::time::Duration = std::time::Duration::from_secs(10);

pub fn run(cmd: &E2eCmd) -> Result<Report> {
    if cmd.load.record_size < 8 {
        bail!("e2e needs --record-size of at least 8 (the send time is in the payload)");
    }
    let base = base_config(&cmd.conn.brokers, &[])?;
    let mut props_base = base.clone();
    crate::kafka::apply_properties(&mut props_base, &cmd.conn.properties)?;
    ensure_topic(&props_base, &cmd.conn.topic, cmd.load.partitions)?;

    let limit = match (cmd.load.count, cmd.load.duration) {
        (None, None) => Limit {
            count: None,
            duration: Some(DEFAULT_DURATION),
        },
        _ => Limit::from_load(&cmd.load, Load::DEFAULT_COUNT),
    };
    let rate = cmd.load.rate.unwrap_or(RateSpec::Bytes(50e6));
    let pcfg = producer_config(base.clone(), &cmd.load, &cmd.conn.properties)?;
    let job = super::job(pcfg, &cmd.conn.topic, &cmd.load, limit, rate, true);

    let mut ccfg = consumer_config(base, &Start::Latest, false);
    crate::kafka::apply_properties(&mut ccfg, &cmd.conn.properties)?;
    let consumer = consume::open(&ccfg, &cmd.conn.topic, &Start::Latest)?;
    let expected = Arc::new(AtomicU64::new(u64::MAX));
    let stop = Stop {
        count: None,
        at_end: false,
        idle: cmd.drain_timeout,
        start_timeout: cmd.drain_timeout.max(std::time::Duration::from_secs(30)),
        expected: Some(expected.clone()),
    };

    let meter = Meter::start(&cmd.watch)?;
    let consumer_thread = thread::Builder::new()
        .name("consumer".into())
        .spawn(move || consume::run(&consumer, &stop, true))
        .context("spawning the consumer thread")?;
    let produced = produce::run(&job);
    // Tell the consumer how many to wait for, even when producing failed
    // (then: what was acked), so it does not wait out its idle timeout.
    let acked = produced.as_ref().map_or(0, |p| p.acked);
    expected.store(acked, Ordering::Release);
    let consumed = consumer_thread
        .join()
        .map_err(|_| anyhow!("the consumer thread panicked"))??;
    let produced = produced?;
    let cost = meter.finish(produced.acked_bytes + consumed.bytes)?;

    let mut cflow = Flow::new(consumed.records, consumed.bytes, consumed.elapsed_s());
    cflow.latency = consumed.latency.summary();
    cflow.errors = consumed.errors + produced.acked.saturating_sub(consumed.records);
    cflow.first_error = consumed.first_error.clone().or_else(|| {
        (consumed.records < produced.acked).then(|| {
            format!(
                "{} acked records never consumed",
                produced.acked - consumed.records
            )
        })
    });
    Ok(Report {
        mode: "e2e",
        target: cmd.conn.brokers.clone(),
        topic: cmd.conn.topic.clone(),
        settings: super::settings(&cmd.load, &limit, rate, &cmd.conn.properties),
        produce: Some(super::produce_flow(&produced)),
        consume: Some(cflow),
        cost,
    })
}
