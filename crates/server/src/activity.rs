//! When a connection last did something, for `connections.max.idle.ms`.
//!
//! A connection is idle when no request of it is in flight and no request has been
//! read or answered for the idle time. Requests in flight count as activity however
//! long they take, so a consumer's long-poll Fetch (or a slow handler) never gets its
//! connection closed under it; the idle time starts again when the last one is
//! answered. Bytes of a request that is still arriving are not watched here: the
//! frame reader gives a started request `socket.request.read.timeout.ms` instead.
//!
//! Shared by the connection's reader (a request read) and writer (a request answered),
//! which run in one task; atomics make it `Sync` so the task stays `Send`.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::time::{Instant, sleep_until};

#[derive(Debug)]
pub struct Activity {
    anchor: Instant,
    /// Milliseconds from `anchor` to the last request read or answered.
    last_ms: AtomicU64,
    in_flight: AtomicUsize,
}

impl Activity {
    /// Starts counting idle time now (the connection was just accepted).
    pub fn new() -> Activity {
        Activity {
            anchor: Instant::now(),
            last_ms: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
        }
    }

    /// A request was read and queued.
    pub fn request_read(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.touch();
    }

    /// A queued request was answered (or needed no answer).
    pub fn request_done(&self) {
        // Saturating: a `done` without its `read` would be a bug, not a reason to wrap.
        let _ = self
            .in_flight
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        self.touch();
    }

    fn touch(&self) {
        let ms = u64::try_from(self.anchor.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.fetch_max(ms, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.anchor + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }

    /// Completes once the connection has been idle for `limit` (see the module docs).
    /// Cancel safe: it only sleeps and reads the counters.
    pub async fn idle_for(&self, limit: Duration) {
        loop {
            let deadline = self.last() + limit;
            if Instant::now() >= deadline {
                if self.in_flight.load(Ordering::Relaxed) == 0 {
                    return;
                }
                // Busy: look again one idle time from now; the answer to the last
                // request moves `last` forward.
                sleep_until(Instant::now() + limit).await;
            } else {
                sleep_until(deadline).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: Duration = Duration::from_secs(10);

    #[tokio::test(start_paused = true)]
    async fn idle_after_the_limit_with_nothing_in_flight() {
        let a = Activity::new();
        let start = Instant::now();
        a.idle_for(LIMIT).await;
        assert_eq!(start.elapsed(), LIMIT);
    }

    #[tokio::test(start_paused = true)]
    async fn requests_in_flight_are_not_idle_and_restart_the_clock() {
        let a = Activity::new();
        let start = Instant::now();
        a.request_read();
        let idle = a.idle_for(LIMIT);
        tokio::pin!(idle);
        // A long-poll request, 25 s: never idle while it runs.
        tokio::select! {
            () = &mut idle => panic!("idle with a request in flight"),
            () = tokio::time::sleep(Duration::from_secs(25)) => {}
        }
        a.request_done();
        idle.await;
        // Idle time counts from the answer, not from the request.
        assert_eq!(start.elapsed(), Duration::from_secs(35));
    }
}
