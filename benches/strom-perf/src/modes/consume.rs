//! `strom-perf consume`: read a topic at full speed.

use anyhow::Result;
use serde_json::json;

use crate::cli::ConsumeCmd;
use crate::consume::{self, Start, Stop, consumer_config};
use crate::cost::Meter;
use crate::kafka::base_config;
use crate::report::{Flow, Report};

pub fn run(cmd: &ConsumeCmd) -> Result<Report> {
    let start = match &cmd.group {
        Some(g) => Start::Group(g.clone()),
        None => Start::Beginning,
    };
    // By assignment the natural end is the end of every partition; a group
    // member's partitions may move, so it stops on --count or --idle.
    let at_end = cmd.group.is_none();
    let mut cfg = consumer_config(base_config(&cmd.conn.brokers, &[])?, &start, at_end);
    crate::kafka::apply_properties(&mut cfg, &cmd.conn.properties)?;
    let stop = Stop {
        count: cmd.count,
        at_end,
        idle: cmd.idle,
        start_timeout: cmd.start_timeout,
        expected: None,
    };

    // The meter starts before the consumer so the broker's work for the
    // first fetches is counted.
    let meter = Meter::start(&cmd.watch)?;
    let consumer = consume::open(&cfg, &cmd.conn.topic, &start)?;
    let out = consume::run(&consumer, &stop, false)?;
    let cost = meter.finish(out.bytes)?;
    drop(consumer);

    let mut flow = Flow::new(out.records, out.bytes, out.elapsed_s());
    flow.errors = out.errors;
    flow.first_error = out.first_error;
    Ok(Report {
        mode: "consume",
        target: cmd.conn.brokers.clone(),
        topic: cmd.conn.topic.clone(),
        settings: json!({
            "group": cmd.group,
            "count": cmd.count,
            "idle_s": cmd.idle.as_secs_f64(),
            "properties": cmd.conn.properties,
            "startup_s": out.first_ns.saturating_sub(out.begin_ns) as f64 / 1e9,
        }),
        produce: None,
        consume: Some(flow),
        cost,
    })
}
