//! `strom-perf`: the end-to-end load generator for Strom (issue 6), built
//! on librdkafka through the `rdkafka` crate, in the manner of
//! `rdkafka_performance` and `kafka-producer-perf-test`. See
//! benches/strom-perf/README.md.

mod cli;
mod clock;
mod consume;
mod cost;
mod kafka;
mod latency;
mod listener;
mod modes;
mod payload;
mod procstat;
mod produce;
mod rate;
mod report;

use anyhow::Result;
use clap::Parser;

use cli::{Cli, Mode};

fn main() -> Result<()> {
    let cli = Cli::parse();
    // Start the shared clock before any thread stamps a time.
    clock::now_ns();
    let (json, human) = match &cli.mode {
        Mode::Produce(c) => report(modes::produce::run(c)?),
        Mode::Consume(c) => report(modes::consume::run(c)?),
        Mode::E2e(c) => report(modes::e2e::run(c)?),
        Mode::Baseline(c) => {
            let b = modes::baseline::run(c)?;
            (serde_json::to_string(&b)?, b.human())
        }
    };
    if cli.json {
        println!("{json}");
    } else {
        print!("{human}");
    }
    Ok(())
}

fn report(r: report::Report) -> (String, String) {
    let json = serde_json::to_string(&r).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
    (json, r.human())
}
