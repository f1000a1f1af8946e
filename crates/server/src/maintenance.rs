//! Background upkeep of the partition logs: retention every
//! `log.retention.check.interval.ms`, and the `flush.ms` deadline check every second.
//!
//! Both do file I/O, so each pass runs on the blocking pool; tokio timers drive them,
//! and they stop when the server shuts down.

use std::sync::Arc;
use std::time::Duration;

use strom_coordinator::Coordinator;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How often `flush.ms` deadlines are checked (Kafka's `log.flush.scheduler.interval.ms`
/// plays this role there).
const FLUSH_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// Starts the upkeep tasks; they end when `stop` turns true.
pub fn spawn(
    coordinator: Arc<Coordinator>,
    retention_interval: Duration,
    stop: watch::Receiver<bool>,
) -> Vec<JoinHandle<()>> {
    let every = |period: Duration, work: fn(&Coordinator)| {
        let coordinator = coordinator.clone();
        let mut stop = stop.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(period);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks.tick().await; // the first tick is immediate
            loop {
                tokio::select! {
                    _ = ticks.tick() => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
                let c = coordinator.clone();
                if let Err(e) = tokio::task::spawn_blocking(move || work(&c)).await {
                    tracing::error!(error = %e, "log maintenance task failed");
                }
            }
        })
    };
    vec![
        every(
            retention_interval.max(Duration::from_millis(1)),
            Coordinator::apply_retention,
        ),
        every(FLUSH_CHECK_INTERVAL, Coordinator::flush_due),
    ]
}
