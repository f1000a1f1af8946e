//! One file per subcommand; each turns its arguments into a report.

pub mod baseline;
pub mod consume;
pub mod e2e;
pub mod produce;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use serde_json::json;

use crate::cli::Load;
use crate::payload::Payloads;
use crate::produce::{Job, Limit, ProduceOutcome};
use crate::rate::RateSpec;
use crate::report::Flow;

/// Seed of the payload generator: fixed, so runs move identical bytes.
const PAYLOAD_SEED: u64 = 0x5eed_5707;

/// The load options echoed in a report.
fn settings(
    load: &Load,
    limit: &Limit,
    rate: RateSpec,
    properties: &[String],
) -> serde_json::Value {
    json!({
        "record_size": load.record_size,
        "count": limit.count,
        "duration_s": limit.duration.map(|d| d.as_secs_f64()),
        "rate": rate.to_string(),
        "acks": load.acks,
        "compression": load.compression,
        "linger_ms": load.linger_ms,
        "batch_size": load.batch_size,
        "partitions": load.partitions,
        "producers": load.producers,
        "idempotence": load.idempotence,
        "properties": properties,
    })
}

/// A producer job for `load` with a ready config.
fn job(
    cfg: rdkafka::ClientConfig,
    topic: &str,
    load: &Load,
    limit: Limit,
    rate: RateSpec,
    stamp: bool,
) -> Job {
    Job {
        cfg,
        topic: Arc::from(topic),
        payloads: Arc::new(Payloads::new(load.record_size, PAYLOAD_SEED)),
        limit,
        rate,
        producers: load.producers,
        stamp,
        stop: Arc::new(AtomicBool::new(false)),
    }
}

/// The produce side of a report.
fn produce_flow(out: &ProduceOutcome) -> Flow {
    let mut f = Flow::new(out.acked, out.acked_bytes, out.elapsed_s());
    f.latency = out.latency.summary();
    f.errors = out.failed + out.sent.saturating_sub(out.acked + out.failed);
    f.first_error = out.first_error.clone();
    f
}
