//! Target rates (`--rate 50MB/s`, `--rate 20000`) and the pacing math.
//!
//! Pacing is by schedule, not by sleeping a fixed gap after each send:
//! record `i` is due at `i / rate` seconds after the start, and a sender
//! that fell behind (a slow poll, a full queue) catches up in a burst
//! instead of losing the time, so the achieved rate converges on the target.

use std::fmt;
use std::str::FromStr;

/// What the user asked for with `--rate`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RateSpec {
    /// As fast as the client can go.
    Unlimited,
    /// Records per second.
    Records(f64),
    /// Payload bytes per second.
    Bytes(f64),
}

impl RateSpec {
    /// Records per second for this spec at `record_size` bytes a record,
    /// or `None` when unlimited.
    pub fn records_per_sec(self, record_size: usize) -> Option<f64> {
        match self {
            RateSpec::Unlimited => None,
            RateSpec::Records(r) => Some(r),
            RateSpec::Bytes(b) => Some(b / record_size.max(1) as f64),
        }
    }
}

impl fmt::Display for RateSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RateSpec::Unlimited => write!(f, "unlimited"),
            RateSpec::Records(r) => write!(f, "{r} records/s"),
            RateSpec::Bytes(b) => write!(f, "{} MB/s", b / 1e6),
        }
    }
}

impl FromStr for RateSpec {
    type Err = String;

    /// `unlimited` or `0`; a plain number (records/s, `/s` optional); or a
    /// number with a byte unit: `KB`, `MB`, `GB` (decimal) or `KiB`, `MiB`,
    /// `GiB`, with or without `/s`, any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim().to_ascii_lowercase();
        let t = t.strip_suffix("/s").unwrap_or(&t).trim();
        if t == "unlimited" || t == "max" {
            return Ok(RateSpec::Unlimited);
        }
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '_'))
            .unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let value: f64 = num
            .replace('_', "")
            .parse()
            .map_err(|_| format!("bad rate {s:?}: expected e.g. 20000, 50MB/s or unlimited"))?;
        if !value.is_finite() || value < 0.0 {
            return Err(format!("bad rate {s:?}: must be a non-negative number"));
        }
        if value == 0.0 {
            return Ok(RateSpec::Unlimited);
        }
        let bytes = |m: f64| Ok(RateSpec::Bytes(value * m));
        match unit.trim() {
            "" | "records" | "rec" | "msgs" => Ok(RateSpec::Records(value)),
            "k" => Ok(RateSpec::Records(value * 1e3)),
            "b" => bytes(1.0),
            "kb" => bytes(1e3),
            "mb" => bytes(1e6),
            "gb" => bytes(1e9),
            "kib" => bytes(1024.0),
            "mib" => bytes(1024.0 * 1024.0),
            "gib" => bytes(1024.0 * 1024.0 * 1024.0),
            other => Err(format!("bad rate {s:?}: unknown unit {other:?}")),
        }
    }
}

/// A schedule of `rate` records per second starting at time zero.
#[derive(Clone, Copy, Debug)]
pub struct Pacer {
    rate: f64,
}

impl Pacer {
    /// `rate` must be positive; a non-positive rate is treated as "one
    /// record per second" rather than dividing by zero.
    pub fn new(rate: f64) -> Self {
        let rate = if rate > 0.0 && rate.is_finite() {
            rate
        } else {
            1.0
        };
        Pacer { rate }
    }

    /// How many records may have been sent `elapsed_ns` after the start:
    /// record 0 is due at once, record `i` at `i / rate` seconds.
    pub fn allowed(&self, elapsed_ns: u64) -> u64 {
        (elapsed_ns as f64 * self.rate / 1e9).floor() as u64 + 1
    }

    /// When record number `index` (0-based) is due, in ns after the start.
    pub fn due_ns(&self, index: u64) -> u64 {
        (index as f64 * 1e9 / self.rate).ceil() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rates() {
        assert_eq!("unlimited".parse(), Ok(RateSpec::Unlimited));
        assert_eq!("0".parse(), Ok(RateSpec::Unlimited));
        assert_eq!("20000".parse(), Ok(RateSpec::Records(20000.0)));
        assert_eq!("20_000/s".parse(), Ok(RateSpec::Records(20000.0)));
        assert_eq!("20k".parse(), Ok(RateSpec::Records(20000.0)));
        assert_eq!("50MB/s".parse(), Ok(RateSpec::Bytes(50e6)));
        assert_eq!("50 mb".parse(), Ok(RateSpec::Bytes(50e6)));
        assert_eq!("1MiB/s".parse(), Ok(RateSpec::Bytes(1048576.0)));
        assert_eq!("1.5GB/s".parse(), Ok(RateSpec::Bytes(1.5e9)));
        assert!("fast".parse::<RateSpec>().is_err());
        assert!("-5".parse::<RateSpec>().is_err());
        assert!("5 parsecs".parse::<RateSpec>().is_err());
    }

    #[test]
    fn converts_bytes_to_records() {
        let r = RateSpec::Bytes(50e6);
        assert_eq!(r.records_per_sec(1000), Some(50_000.0));
        assert_eq!(RateSpec::Records(7.0).records_per_sec(1000), Some(7.0));
        assert_eq!(RateSpec::Unlimited.records_per_sec(1000), None);
    }

    #[test]
    fn schedule_allows_one_record_per_period() {
        let p = Pacer::new(1000.0); // one per ms
        assert_eq!(p.allowed(0), 1);
        assert_eq!(p.allowed(999_999), 1);
        assert_eq!(p.allowed(1_000_000), 2);
        assert_eq!(p.allowed(1_000_000_000), 1001);
        assert_eq!(p.due_ns(0), 0);
        assert_eq!(p.due_ns(1), 1_000_000);
        assert_eq!(p.due_ns(1000), 1_000_000_000);
    }

    #[test]
    fn schedule_is_consistent() {
        // A record is allowed exactly from its due time on.
        let p = Pacer::new(51_200.0);
        for i in [1u64, 2, 3, 17, 51_199, 51_200, 1_000_003] {
            let due = p.due_ns(i);
            assert!(p.allowed(due) > i, "record {i} not allowed at its due time");
            assert!(
                p.allowed(due - 1) <= i,
                "record {i} allowed before its due time"
            );
        }
    }

    #[test]
    fn bad_rate_does_not_divide_by_zero() {
        let p = Pacer::new(0.0);
        assert_eq!(p.due_ns(2), 2_000_000_000);
    }
}
