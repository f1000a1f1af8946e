//! What a run cost: the broker's CPU seconds per GB moved and peak RSS
//! (when we know its pid), and this process's own CPU, which on a small
//! machine shares the cores with the broker.

use anyhow::{Context, Result};
use serde::Serialize;

use crate::cli::Watch;
use crate::listener::pid_listening_on;
use crate::procstat::{Sampler, Target, Usage, clock_ticks_per_sec};

/// The broker's figures for one run.
#[derive(Clone, Debug, Serialize)]
pub struct BrokerCost {
    pub pid: u32,
    #[serde(flatten)]
    pub usage: Usage,
    /// CPU seconds per 10^9 payload bytes moved (produced + consumed).
    pub cpu_s_per_gb: Option<f64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Cost {
    pub broker: Option<BrokerCost>,
    /// strom-perf itself (librdkafka's threads included; for the mock
    /// cluster, the in-process broker too).
    pub client: Usage,
    pub client_cpu_s_per_gb: Option<f64>,
}

/// Samplers started at the beginning of the measured part of a run.
pub struct Meter {
    broker: Option<(u32, Sampler)>,
    client: Sampler,
}

impl Meter {
    /// Resolves `--broker-pid`/`--broker-port` and starts sampling.
    pub fn start(watch: &Watch) -> Result<Meter> {
        let ticks = clock_ticks_per_sec();
        let pid = match (watch.broker_pid, watch.broker_port) {
            (Some(pid), _) => Some(pid),
            (None, Some(port)) => Some(
                pid_listening_on(port)
                    .with_context(|| format!("finding the broker on port {port}"))?,
            ),
            (None, None) => None,
        };
        let broker = match pid {
            Some(pid) => Some((
                pid,
                Sampler::start(Target::Pid(pid), ticks)
                    .with_context(|| format!("sampling broker pid {pid}"))?,
            )),
            None => None,
        };
        let client = Sampler::start(Target::SelfProcess, ticks)?;
        Ok(Meter { broker, client })
    }

    /// Stops sampling; `bytes` is the payload moved, for the per-GB figure.
    pub fn finish(self, bytes: u64) -> Result<Cost> {
        let per_gb = |cpu_s: f64| (bytes > 0).then(|| cpu_s / (bytes as f64 / 1e9));
        let broker = match self.broker {
            Some((pid, s)) => {
                let usage = s
                    .finish()
                    .with_context(|| format!("reading broker pid {pid} (did it exit?)"))?;
                Some(BrokerCost {
                    pid,
                    cpu_s_per_gb: per_gb(usage.cpu_s),
                    usage,
                })
            }
            None => None,
        };
        let client = self.client.finish()?;
        Ok(Cost {
            broker,
            client_cpu_s_per_gb: per_gb(client.cpu_s),
            client,
        })
    }
}
