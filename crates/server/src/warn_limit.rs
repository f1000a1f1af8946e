//! Rate limiting for warnings a client can trigger at will.
//!
//! A refused connection or a malformed request costs an attacker a few bytes and the
//! broker a log line; unbounded, an attacker could fill the disk with the log or bury
//! the lines an operator needs. So each kind of such warning goes through a
//! [`WarnLimiter`]: at most `burst` lines per `window`, the rest counted, and the count
//! reported with the next line that is let through.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Lets through at most `burst` events per `window`.
#[derive(Debug)]
pub struct WarnLimiter {
    burst: u32,
    window: Duration,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    window_start: Option<Instant>,
    logged: u32,
    suppressed: u64,
}

impl WarnLimiter {
    pub const fn new(burst: u32, window: Duration) -> WarnLimiter {
        WarnLimiter {
            burst,
            window,
            state: Mutex::new(State {
                window_start: None,
                logged: 0,
                suppressed: 0,
            }),
        }
    }

    /// Whether to log this event: `Some(n)` means log it, noting `n` events suppressed
    /// since the last one logged; `None` means stay quiet (the event is counted).
    pub fn allow(&self) -> Option<u64> {
        self.allow_at(Instant::now())
    }

    fn allow_at(&self, now: Instant) -> Option<u64> {
        // A poisoned lock only means another thread panicked mid-update of three
        // counters; they are still usable.
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let expired = s
            .window_start
            .is_none_or(|start| now.saturating_duration_since(start) >= self.window);
        if expired {
            s.window_start = Some(now);
            s.logged = 0;
        }
        if s.logged < self.burst {
            s.logged += 1;
            Some(std::mem::take(&mut s.suppressed))
        } else {
            s.suppressed += 1;
            None
        }
    }
}

/// Logs a warning through a [`WarnLimiter`]; suppressed warnings are counted and the
/// count is added as `suppressed` to the next one logged.
macro_rules! limited_warn {
    ($limiter:expr, $($arg:tt)+) => {
        if let Some(suppressed) = $limiter.allow() {
            if suppressed > 0 {
                tracing::warn!(suppressed, $($arg)+);
            } else {
                tracing::warn!($($arg)+);
            }
        }
    };
}
pub(crate) use limited_warn;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lets_a_burst_through_per_window_and_counts_the_rest() {
        let limiter = WarnLimiter::new(3, Duration::from_secs(10));
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        assert_eq!(limiter.allow_at(at(0)), Some(0));
        assert_eq!(limiter.allow_at(at(1)), Some(0));
        assert_eq!(limiter.allow_at(at(2)), Some(0));
        for ms in 3..1000 {
            assert_eq!(limiter.allow_at(at(ms)), None);
        }
        // The next window: the first line reports what was held back.
        assert_eq!(limiter.allow_at(at(10_000)), Some(997));
        assert_eq!(limiter.allow_at(at(10_001)), Some(0));
    }
}
