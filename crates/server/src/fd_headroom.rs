//! Accepting stops while the process is near its open-file limit.
//!
//! Client sockets and segment files draw on one table of descriptors
//! (`RLIMIT_NOFILE`, see [`crate::os_limits`]). With `max.connections` unlimited (the
//! default, as in Kafka) a flood of clients could take the last descriptors, and the
//! next segment roll or checkpoint would fail with EMFILE and take a log offline. So
//! the accept loop keeps a reserve for the logs: it accepts only while the descriptors
//! in use plus the reserve stay under the soft limit; above that, new clients wait in
//! the listen backlog, as at `max.connections`.
//!
//! Counting the open descriptors means listing `/proc/self/fd` (thousands of entries
//! with thousands of segments), so the count is taken at most once a second while far
//! from the limit and estimated in between from the connections accepted since; near
//! the limit it is taken again at most every [`RECOUNT_NEAR_LIMIT`].

use std::time::{Duration, Instant};

/// Largest age of the count while far from the limit.
pub const RECOUNT_FAR: Duration = Duration::from_secs(1);

/// Largest age of the count within two reserves of the limit (and while refusing).
pub const RECOUNT_NEAR_LIMIT: Duration = Duration::from_millis(50);

/// Whether one more client socket leaves the reserve free.
#[derive(Debug)]
pub struct DescriptorHeadroom {
    /// The soft `RLIMIT_NOFILE` at the last count (it can change while the broker runs,
    /// with `prlimit`); `None`: unlimited, nothing to keep.
    soft: Option<u64>,
    /// Descriptors kept free for the logs: segment rolls, checkpoints, new topics.
    reserve: u64,
    /// The last count and when it was taken. Invariant: `None` only before the first
    /// count or where `/proc/self/fd` cannot be read.
    counted: Option<(Instant, u64)>,
    /// Sockets accepted since the count (the estimate ignores sockets closed since,
    /// which only makes it err towards refusing).
    accepted_since: u64,
    /// Counts descriptors in use; `None` when it cannot.
    count: fn() -> Option<u64>,
    /// Reads the soft limit.
    limit: fn() -> Option<u64>,
}

impl DescriptorHeadroom {
    /// Headroom under this process's soft open-file limit, keeping `reserve`
    /// descriptors free.
    pub fn new(reserve: u64) -> DescriptorHeadroom {
        DescriptorHeadroom::with(reserve, open_descriptors, || {
            crate::os_limits::nofile_limit().soft
        })
    }

    fn with(reserve: u64, count: fn() -> Option<u64>, limit: fn() -> Option<u64>) -> Self {
        DescriptorHeadroom {
            soft: limit(),
            reserve,
            counted: None,
            accepted_since: 0,
            count,
            limit,
        }
    }

    /// Whether a socket may be accepted now. `Err` carries (in use, soft limit) for the
    /// warning. Always `Ok` when the limit is unlimited or the count unavailable.
    pub fn check(&mut self, now: Instant) -> Result<(), (u64, u64)> {
        let due = match self.counted {
            None => true,
            Some((at, n)) => {
                let age = now.saturating_duration_since(at);
                age >= RECOUNT_FAR
                    || (self.near(n.saturating_add(self.accepted_since))
                        && age >= RECOUNT_NEAR_LIMIT)
            }
        };
        if due && let Some(n) = (self.count)() {
            self.counted = Some((now, n));
            self.accepted_since = 0;
            self.soft = (self.limit)();
        }
        let (Some(soft), Some((_, n))) = (self.soft, self.counted) else {
            return Ok(());
        };
        let in_use = n.saturating_add(self.accepted_since);
        // One more socket must still leave the whole reserve free.
        if in_use < soft.saturating_sub(self.reserve) {
            Ok(())
        } else {
            Err((in_use, soft))
        }
    }

    /// Whether `in_use` is within two reserves of the limit.
    fn near(&self, in_use: u64) -> bool {
        self.soft
            .is_some_and(|soft| in_use >= soft.saturating_sub(self.reserve.saturating_mul(2)))
    }

    /// Records an accepted socket.
    pub fn accepted(&mut self) {
        self.accepted_since = self.accepted_since.saturating_add(1);
    }
}

/// Descriptors open in this process, from `/proc/self/fd` (less the one listing it).
fn open_descriptors() -> Option<u64> {
    count_entries(std::path::Path::new("/proc/self/fd")).map(|n| n.saturating_sub(1))
}

fn count_entries(dir: &std::path::Path) -> Option<u64> {
    Some(std::fs::read_dir(dir).ok()?.count() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[test]
    fn counts_entries_and_open_descriptors() {
        let dir = tempfile::tempdir().expect("temp dir");
        for i in 0..7 {
            std::fs::write(dir.path().join(i.to_string()), b"").expect("write");
        }
        assert_eq!(count_entries(dir.path()), Some(7));
        assert_eq!(count_entries(&dir.path().join("missing")), None);
        // Other test threads open and close files too, so only a lower bound: the
        // files held here and stdin/stdout/stderr.
        let files: Vec<_> = (0..20)
            .map(|_| tempfile::tempfile().expect("temp file"))
            .collect();
        let open = open_descriptors().expect("/proc/self/fd on Linux");
        assert!(open >= 23, "{open}");
        drop(files);
    }

    #[test]
    fn unlimited_always_has_room() {
        let mut h = DescriptorHeadroom::with(256, || Some(u64::MAX), || None);
        assert_eq!(h.check(Instant::now()), Ok(()));
    }

    // One counter per test: tests run in parallel.
    static IN_USE: AtomicU64 = AtomicU64::new(0);
    fn in_use() -> Option<u64> {
        Some(IN_USE.load(Ordering::SeqCst))
    }

    #[test]
    fn refuses_within_the_reserve_and_recounts_near_it() {
        let t0 = Instant::now();
        IN_USE.store(100, Ordering::SeqCst);
        let mut h = DescriptorHeadroom::with(200, in_use, || Some(1_000));
        // Far from the limit: accepted sockets are estimated, not recounted.
        for _ in 0..500 {
            assert_eq!(h.check(t0), Ok(()));
            h.accepted();
        }
        // 600 in use by the estimate: within two reserves of the limit, but the count
        // is fresh, so it is not retaken.
        IN_USE.store(790, Ordering::SeqCst);
        for _ in 0..200 {
            assert_eq!(h.check(t0), Ok(()));
            h.accepted();
        }
        // 800 in use: one more would eat into the reserve of 200 under 1,000.
        assert_eq!(h.check(t0), Err((800, 1_000)));
        // Near the limit the count is retaken after RECOUNT_NEAR_LIMIT: it is 790.
        let t1 = t0 + RECOUNT_NEAR_LIMIT;
        assert_eq!(h.check(t1), Ok(()));
        // Sockets closed: room again at the next count.
        IN_USE.store(300, Ordering::SeqCst);
        for _ in 0..10 {
            h.accepted();
        }
        assert_eq!(h.check(t1 + RECOUNT_NEAR_LIMIT), Ok(()));
        assert_eq!(h.accepted_since, 0);
    }

    #[test]
    fn without_a_count_it_does_not_refuse() {
        let mut h = DescriptorHeadroom::with(5, || None, || Some(10));
        assert_eq!(h.check(Instant::now()), Ok(()));
    }
}
