//! Latency histograms (HdrHistogram, microsecond resolution) and the
//! percentiles the report prints.

use hdrhistogram::Histogram;
use serde::Serialize;

/// Highest trackable latency: 10 minutes, in µs. Anything above is clamped
/// (and would be a broken run anyway).
const MAX_US: u64 = 600_000_000;

/// A latency histogram in microseconds, 3 significant digits.
pub struct Latencies {
    hist: Histogram<u64>,
}

impl Default for Latencies {
    fn default() -> Self {
        Self::new()
    }
}

impl Latencies {
    pub fn new() -> Self {
        // The bounds are constants that hdrhistogram accepts (low >= 1,
        // high >= 2 * low, sigfig <= 5), so this cannot fail.
        let hist = Histogram::new_with_bounds(1, MAX_US, 3).expect("valid histogram bounds");
        Latencies { hist }
    }

    /// Records one latency given in nanoseconds.
    pub fn record_ns(&mut self, ns: u64) {
        self.hist.saturating_record((ns / 1000).clamp(1, MAX_US));
    }

    /// Adds another histogram's samples to this one.
    pub fn merge(&mut self, other: &Latencies) {
        // Same bounds on both sides, so `add` cannot fail; saturate anyway.
        let _ = self.hist.add(&other.hist);
    }

    #[cfg(test)]
    pub fn count(&self) -> u64 {
        self.hist.len()
    }

    /// The summary printed and written as JSON; `None` with no samples.
    pub fn summary(&self) -> Option<LatencySummary> {
        if self.hist.is_empty() {
            return None;
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Some(LatencySummary {
            samples: self.hist.len(),
            p50_ms: ms(self.hist.value_at_quantile(0.50)),
            p99_ms: ms(self.hist.value_at_quantile(0.99)),
            p999_ms: ms(self.hist.value_at_quantile(0.999)),
            max_ms: ms(self.hist.max()),
            mean_ms: self.hist.mean() / 1000.0,
        })
    }
}

/// Percentiles in milliseconds. HdrHistogram reports the highest value
/// equivalent to the sample at that quantile, so figures are upper bounds
/// within 0.1 %.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct LatencySummary {
    pub samples: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

impl LatencySummary {
    /// One line: `p50 1.23  p99 4.56  p99.9 7.89  max 12.3 ms`.
    pub fn line(&self) -> String {
        format!(
            "p50 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2} ms  (mean {:.2}, n={})",
            self.p50_ms, self.p99_ms, self.p999_ms, self.max_ms, self.mean_ms, self.samples
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_has_no_summary() {
        assert_eq!(Latencies::new().summary(), None);
    }

    #[test]
    fn percentiles_of_a_uniform_spread() {
        let mut l = Latencies::new();
        // 1..=1000 ms, one sample each.
        for ms in 1..=1000u64 {
            l.record_ns(ms * 1_000_000);
        }
        let s = l.summary().expect("samples");
        assert_eq!(s.samples, 1000);
        let close = |a: f64, b: f64| (a - b).abs() <= b * 0.001 + 1e-9;
        assert!(close(s.p50_ms, 500.0), "p50 {}", s.p50_ms);
        assert!(close(s.p99_ms, 990.0), "p99 {}", s.p99_ms);
        assert!(close(s.p999_ms, 999.0), "p99.9 {}", s.p999_ms);
        assert!(close(s.max_ms, 1000.0), "max {}", s.max_ms);
        assert!(close(s.mean_ms, 500.5), "mean {}", s.mean_ms);
    }

    #[test]
    fn merge_and_clamp() {
        let mut a = Latencies::new();
        let mut b = Latencies::new();
        a.record_ns(0); // below 1 µs: counted as 1 µs
        b.record_ns(u64::MAX); // far above the bound: clamped
        a.merge(&b);
        assert_eq!(a.count(), 2);
        let s = a.summary().expect("samples");
        assert!(s.p50_ms <= 0.001 + 1e-9);
        assert!(s.max_ms >= 599_000.0);
    }

    #[test]
    fn line_names_every_percentile() {
        let mut l = Latencies::new();
        l.record_ns(2_500_000);
        let line = l.summary().expect("samples").line();
        for word in ["p50", "p99", "p99.9", "max"] {
            assert!(line.contains(word), "{line}");
        }
    }
}
