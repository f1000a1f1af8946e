//! One monotonic clock for the whole process, in nanoseconds.
//!
//! Send times travel through librdkafka as a `usize` delivery opaque and,
//! in `e2e` mode, inside the record payload; both ends read the same
//! `Instant`-based clock, so latencies never go backwards with NTP steps
//! the way `SystemTime` (and the record's CreateTime, in ms) can.

use std::sync::OnceLock;
use std::time::Instant;

static EPOCH: OnceLock<Instant> = OnceLock::new();

/// Nanoseconds since the first call in this process.
pub fn now_ns() -> u64 {
    let epoch = EPOCH.get_or_init(Instant::now);
    // u64 nanoseconds last 584 years; a benchmark run will not overflow it.
    epoch.elapsed().as_nanos() as u64
}
