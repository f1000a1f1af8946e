//! Ctrl-C (SIGINT) and SIGTERM for `strom consume`: the first asks for a clean stop
//! (stop fetching, commit, leave the group, exit 0); a second one, while that is
//! stuck on an unresponsive broker, exits at once.

use std::future::Future;

use anyhow::Context;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

/// Exit status after a second signal, as a shell reports a process killed by SIGINT.
const FORCED_EXIT: i32 = 130;

/// Whether a stop was asked for.
pub struct Shutdown {
    requested: watch::Receiver<bool>,
}

impl Shutdown {
    /// Installs the signal handlers; must run inside the runtime.
    pub fn install() -> anyhow::Result<Shutdown> {
        // Registered here rather than in the task, so that a signal arriving before the
        // task first runs is not lost (and does not kill the process).
        let mut interrupt = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
        let mut terminate = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
        let (tx, rx) = watch::channel(false);
        tokio::spawn(async move {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
            let _ = tx.send(true);
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
            std::process::exit(FORCED_EXIT);
        });
        Ok(Shutdown { requested: rx })
    }

    pub fn requested(&self) -> bool {
        *self.requested.borrow()
    }

    /// Runs `work` unless a stop is asked for first; `None` means it was cancelled
    /// (dropped half-way), which the caller must clean up after.
    pub async fn unless<F: Future>(&mut self, work: F) -> Option<F::Output> {
        if self.requested() {
            return None;
        }
        let requested = &mut self.requested;
        tokio::select! {
            output = work => Some(output),
            // An error would mean the signal task dropped its sender, which it never
            // does: it lives until the process exits.
            _ = requested.wait_for(|&stop| stop) => None,
        }
    }
}
