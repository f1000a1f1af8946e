//! The client commands of `strom`: each speaks the Kafka protocol to a cluster given by
//! `--brokers`, so they work against Strom and against any Kafka broker.

pub mod cluster;
pub mod completion;
pub mod consume;
pub mod group;
pub mod produce;
pub mod topic;

use std::future::Future;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use crate::client::{Cluster, Timeouts};
use crate::output::OutputFormat;

/// Options every client command takes.
#[derive(Debug, Clone, Args)]
pub struct ClientOpts {
    /// Bootstrap brokers, comma-separated host:port
    #[arg(
        short = 'b',
        long,
        global = true,
        env = "STROM_BROKERS",
        default_value = "localhost:9092",
        value_name = "HOST:PORT,..."
    )]
    pub brokers: String,

    /// Output format: human-readable tables, or JSON for scripts
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,

    /// Seconds to wait for a connection or a response
    #[arg(long, global = true, default_value_t = 30, value_name = "SECS")]
    pub timeout: u64,
}

impl ClientOpts {
    pub fn timeouts(&self) -> Timeouts {
        let request = Duration::from_secs(self.timeout.max(1));
        Timeouts {
            connect: request.min(Duration::from_secs(10)),
            request,
        }
    }

    /// Connects to the cluster named by `--brokers`.
    pub async fn connect(&self) -> anyhow::Result<Cluster> {
        Cluster::connect(&self.brokers, self.timeouts()).await
    }
}

/// Runs a client command's future on a single-threaded runtime: the commands are I/O
/// bound and a second thread would only add wakeups.
pub fn block_on<F: Future<Output = anyhow::Result<()>>>(future: F) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(future)
}
