//! The result of a run, printed for people or as one JSON object for
//! scripts (benches/run.sh).

use serde::Serialize;

use crate::cost::Cost;
use crate::latency::LatencySummary;

/// Throughput of one direction (produce or consume).
#[derive(Clone, Debug, Serialize)]
pub struct Flow {
    pub records: u64,
    /// Payload bytes.
    pub bytes: u64,
    pub elapsed_s: f64,
    pub records_per_s: f64,
    /// Decimal MB (10^6 bytes) per second.
    pub mb_per_s: f64,
    /// Produce: send to delivery report. Consume (e2e): send to receipt.
    pub latency: Option<LatencySummary>,
    pub errors: u64,
    pub first_error: Option<String>,
}

impl Flow {
    pub fn new(records: u64, bytes: u64, elapsed_s: f64) -> Flow {
        let rate = |n: u64| {
            if elapsed_s > 0.0 {
                n as f64 / elapsed_s
            } else {
                0.0
            }
        };
        Flow {
            records,
            bytes,
            elapsed_s,
            records_per_s: rate(records),
            mb_per_s: rate(bytes) / 1e6,
            latency: None,
            errors: 0,
            first_error: None,
        }
    }
}

/// One run of produce, consume or e2e.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub mode: &'static str,
    /// Bootstrap servers, or `mock` for the in-process mock cluster.
    pub target: String,
    pub topic: String,
    /// The options that shape the load, echoed for the record.
    pub settings: serde_json::Value,
    pub produce: Option<Flow>,
    pub consume: Option<Flow>,
    pub cost: Cost,
}

impl Report {
    /// The human-readable block.
    pub fn human(&self) -> String {
        let mut s = format!(
            "== strom-perf {} → {} topic {}\n   settings: {}\n",
            self.mode, self.target, self.topic, self.settings
        );
        for (name, flow, lat_name) in [
            ("produce", &self.produce, "produce→ack"),
            ("consume", &self.consume, "end-to-end "),
        ] {
            let Some(f) = flow else { continue };
            s += &format!(
                "   {name}: {} records, {:.1} MB in {:.2} s: {:.0} records/s, {:.1} MB/s\n",
                f.records,
                f.bytes as f64 / 1e6,
                f.elapsed_s,
                f.records_per_s,
                f.mb_per_s
            );
            if let Some(l) = &f.latency {
                s += &format!("   {lat_name} latency: {}\n", l.line());
            }
            if f.errors > 0 {
                s += &format!(
                    "   {name} errors: {} (first: {})\n",
                    f.errors,
                    f.first_error.as_deref().unwrap_or("?")
                );
            }
        }
        s += &cost_lines(&self.cost);
        s
    }
}

/// The broker and client CPU lines.
pub fn cost_lines(cost: &Cost) -> String {
    let mut s = String::new();
    let per_gb = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.3}"));
    if let Some(b) = &cost.broker {
        s += &format!(
            "   broker pid {}: {:.2} CPU-s (user {:.2}, sys {:.2}) = {} CPU-s/GB; \
             peak RSS {:.1} MiB (end {:.1}, VmHWM {:.1})\n",
            b.pid,
            b.usage.cpu_s,
            b.usage.user_s,
            b.usage.system_s,
            per_gb(b.cpu_s_per_gb),
            b.usage.peak_rss_mib,
            b.usage.end_rss_mib,
            b.usage.hwm_mib
        );
    }
    let c = &cost.client;
    s += &format!(
        "   strom-perf: {:.2} CPU-s (user {:.2}, sys {:.2}) = {} CPU-s/GB; peak RSS {:.1} MiB\n",
        c.cpu_s,
        c.user_s,
        c.system_s,
        per_gb(cost.client_cpu_s_per_gb),
        c.peak_rss_mib
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flow_rates() {
        let f = Flow::new(1000, 1_024_000, 2.0);
        assert_eq!(f.records_per_s, 500.0);
        assert_eq!(f.mb_per_s, 0.512);
        let z = Flow::new(5, 5, 0.0);
        assert_eq!((z.records_per_s, z.mb_per_s), (0.0, 0.0));
    }
}
