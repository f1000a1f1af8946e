//! The producer side: N independent librdkafka producers, each on its own
//! thread, sending pre-generated payloads on schedule (or flat out) and
//! timing every record from `send` to its delivery report.
//!
//! Delivery reports are served by rdkafka's `ThreadedProducer` thread, which
//! blocks in librdkafka's queue poll and wakes when a report arrives. The
//! sending thread only sends and sleeps: `BaseProducer::poll(d)` with a
//! non-zero `d` busy-loops for the last millisecond of `d` (rdkafka 0.39
//! truncates the remaining time to whole ms), which at a paced rate kept a
//! core spinning.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use rdkafka::ClientConfig;
use rdkafka::client::ClientContext;
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;

use crate::cli::Load;
use crate::clock::now_ns;
use crate::latency::Latencies;
use crate::payload::Payloads;
use crate::rate::{Pacer, RateSpec};

/// When to stop sending.
#[derive(Clone, Copy, Debug)]
pub struct Limit {
    pub count: Option<u64>,
    pub duration: Option<Duration>,
}

impl Limit {
    /// `--count`/`--duration`, with `default_count` when neither is set.
    pub fn from_load(load: &Load, default_count: u64) -> Limit {
        match (load.count, load.duration) {
            (None, None) => Limit {
                count: Some(default_count),
                duration: None,
            },
            (count, duration) => Limit { count, duration },
        }
    }
}

/// What the producers achieved, all threads together.
#[derive(Default)]
pub struct ProduceOutcome {
    pub sent: u64,
    pub acked: u64,
    pub acked_bytes: u64,
    pub failed: u64,
    pub first_error: Option<String>,
    /// From the first send to the last delivery report, in ns.
    pub start_ns: u64,
    pub end_ns: u64,
    pub latency: Latencies,
}

impl ProduceOutcome {
    pub fn elapsed_s(&self) -> f64 {
        self.end_ns.saturating_sub(self.start_ns) as f64 / 1e9
    }

    fn merge(&mut self, other: ProduceOutcome) {
        self.start_ns = match (self.start_ns, other.start_ns) {
            (0, b) => b,
            (a, 0) => a,
            (a, b) => a.min(b),
        };
        self.end_ns = self.end_ns.max(other.end_ns);
        self.sent += other.sent;
        self.acked += other.acked;
        self.acked_bytes += other.acked_bytes;
        self.failed += other.failed;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        self.latency.merge(&other.latency);
    }
}

/// Delivery reports land here (called from the producer's polling thread,
/// or from `flush` at the end, so the mutex is hardly ever contended).
#[derive(Default)]
struct DeliveryState {
    acked: u64,
    acked_bytes: u64,
    failed: u64,
    first_error: Option<String>,
    last_ack_ns: u64,
    latency: Latencies,
}

#[derive(Default)]
struct Reports {
    state: Mutex<DeliveryState>,
    /// Signalled on every delivery report: room in librdkafka's queue for
    /// a sender that found it full.
    room: Condvar,
}

impl ClientContext for Reports {
    fn error(&self, error: KafkaError, reason: &str) {
        eprintln!("strom-perf: librdkafka: {error}: {reason}");
    }
}

impl ProducerContext for Reports {
    /// The send time (`clock::now_ns`), carried by librdkafka as the
    /// opaque pointer value: no allocation per record.
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, sent_ns: usize) {
        let now = now_ns();
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        match result {
            Ok(m) => {
                s.acked += 1;
                s.acked_bytes += m.payload_len() as u64;
                s.last_ack_ns = now;
                s.latency.record_ns(now.saturating_sub(sent_ns as u64));
                // Cheap when nobody waits (no syscall).
                self.room.notify_one();
            }
            Err((e, _)) => {
                s.failed += 1;
                if s.first_error.is_none() {
                    s.first_error = Some(e.to_string());
                }
            }
        }
    }
}

/// librdkafka producer settings for a load.
pub fn producer_config(
    mut cfg: ClientConfig,
    load: &Load,
    extra: &[String],
) -> Result<ClientConfig> {
    cfg.set("acks", &load.acks)
        .set("compression.codec", load.compression.as_str())
        .set("linger.ms", load.linger_ms.to_string())
        .set("batch.size", load.batch_size.to_string())
        .set("enable.idempotence", load.idempotence.to_string())
        // A dead broker fails the run within 30 s instead of librdkafka's 300 s.
        .set("message.timeout.ms", "30000")
        // At most 64 MiB queued in the client (librdkafka allows 1 GiB): a flat-out run
        // measures the broker, not how long a huge client queue takes to drain after
        // the clock stops.
        .set("queue.buffering.max.kbytes", "65536");
    // -X wins over the flags.
    crate::kafka::apply_properties(&mut cfg, extra)?;
    Ok(cfg)
}

/// Everything a producer thread needs.
#[derive(Clone)]
pub struct Job {
    pub cfg: ClientConfig,
    pub topic: Arc<str>,
    pub payloads: Arc<Payloads>,
    pub limit: Limit,
    pub rate: RateSpec,
    pub producers: usize,
    /// Write the send time into the first 8 bytes of each payload (e2e).
    pub stamp: bool,
    /// Set by anyone to make the producers stop early.
    pub stop: Arc<AtomicBool>,
}

/// Runs `job.producers` producers to completion and merges their results.
pub fn run(job: &Job) -> Result<ProduceOutcome> {
    let n = job.producers.max(1);
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let job = job.clone();
            thread::Builder::new()
                .name(format!("producer-{i}"))
                .spawn(move || run_one(&job, i, n))
                .context("spawning a producer thread")
        })
        .collect::<Result<_>>()?;
    let mut total = ProduceOutcome::default();
    for h in handles {
        let one = h
            .join()
            .map_err(|_| anyhow!("a producer thread panicked"))??;
        total.merge(one);
    }
    Ok(total)
}

/// Producer `index` of `n`: its share of the count and rate.
fn run_one(job: &Job, index: usize, n: usize) -> Result<ProduceOutcome> {
    let producer: ThreadedProducer<Reports> = job
        .cfg
        .create_with_context(Reports::default())
        .context("creating a producer")?;
    let share = |total: u64| total / n as u64 + u64::from((index as u64) < total % n as u64);
    let count = job.limit.count.map(share);
    let record_size = job.payloads.record_size();
    let pacer = job
        .rate
        .records_per_sec(record_size)
        .map(|r| Pacer::new(r / n as f64));
    let mut scratch = vec![0u8; record_size];
    // Each producer starts at a different place in the payload cycle.
    let first_payload = index as u64 * 7919;

    let start = now_ns();
    let deadline = job.limit.duration.map(|d| start + d.as_nanos() as u64);
    let mut sent: u64 = 0;
    loop {
        if count.is_some_and(|c| sent >= c) || job.stop.load(Ordering::Relaxed) {
            break;
        }
        let now = now_ns();
        if deadline.is_some_and(|d| now >= d) {
            break;
        }
        if let Some(p) = pacer
            && sent >= p.allowed(now - start)
        {
            // Ahead of schedule. Sleeping less than ~200 µs costs more in
            // wake-ups than it gains (the timer slack alone is 50 µs), so
            // records due within that are sent as a small burst.
            let wait = p.due_ns(sent).saturating_sub(now - start);
            thread::sleep(Duration::from_nanos(wait.clamp(200_000, 100_000_000)));
            continue;
        }
        let template = job.payloads.get(first_payload + sent);
        // One clock read per record (clock_gettime was 6 % of the profile
        // against the mock cluster when read twice).
        let sent_at = now;
        let payload: &[u8] = if job.stamp && record_size >= 8 {
            scratch.copy_from_slice(template);
            scratch[..8].copy_from_slice(&sent_at.to_le_bytes());
            &scratch
        } else {
            template
        };
        let record = BaseRecord::<(), [u8], usize>::with_opaque_to(&job.topic, sent_at as usize)
            .payload(payload);
        match producer.send(record) {
            Ok(()) => sent += 1,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                // librdkafka's queue (queue.buffering.max.*, 100,000
                // records by default) is full: the broker or the network is
                // the bottleneck. Wait for the next ack to make room
                // rather than a fixed sleep that may leave the queue idle;
                // the timeout covers an ack that came between the failed
                // send and the wait.
                let reports = producer.context();
                let guard = reports.state.lock().unwrap_or_else(PoisonError::into_inner);
                let _ = reports
                    .room
                    .wait_timeout(guard, Duration::from_millis(1))
                    .unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            Err((e, _)) => return Err(e).context("producing"),
        }
    }
    producer
        .flush(Duration::from_secs(120))
        .context("flushing the producer (records still unacknowledged after 120 s)")?;

    let state = std::mem::take(
        &mut *producer
            .context()
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner),
    );
    Ok(ProduceOutcome {
        sent,
        acked: state.acked,
        acked_bytes: state.acked_bytes,
        failed: state.failed,
        first_error: state.first_error,
        start_ns: start,
        end_ns: state.last_ack_ns.max(start),
        latency: state.latency,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_defaults_to_a_count() {
        let load = |count, duration| Load {
            record_size: 1024,
            count,
            duration,
            rate: None,
            acks: "1".into(),
            compression: crate::cli::Compression::None,
            linger_ms: 5,
            batch_size: 1_000_000,
            partitions: 1,
            producers: 1,
            idempotence: false,
        };
        let l = Limit::from_load(&load(None, None), 10);
        assert_eq!((l.count, l.duration), (Some(10), None));
        let d = Some(Duration::from_secs(3));
        let l = Limit::from_load(&load(None, d), 10);
        assert_eq!((l.count, l.duration), (None, d));
    }

    #[test]
    fn merge_spans_all_threads() {
        let mut a = ProduceOutcome {
            start_ns: 10,
            end_ns: 50,
            acked: 1,
            ..Default::default()
        };
        a.merge(ProduceOutcome {
            start_ns: 5,
            end_ns: 40,
            acked: 2,
            first_error: Some("x".into()),
            ..Default::default()
        });
        assert_eq!((a.start_ns, a.end_ns, a.acked), (5, 50, 3));
        assert_eq!(a.first_error.as_deref(), Some("x"));
    }
}
