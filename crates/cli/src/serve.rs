//! `strom serve`: run the broker until SIGTERM or Ctrl-C.
//!
//! Start-up opens the data directory (recovering partition logs after a crash) before
//! the listener is bound; shutdown stops accepting, lets in-flight requests finish,
//! then closes every log cleanly so the next start needs no recovery.
//!
//! First of all the soft open-file limit is raised to the hard limit (each segment holds
//! three files, each client a socket; see `strom_server::os_limits`), and once the logs
//! are open a warning says if the limits are still too low for them and
//! `max.connections`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use strom_coordinator::Coordinator;
use strom_server::config::load::{
    ENV_ADVERTISE, ENV_CONFIG, ENV_DATA_DIR, ENV_LISTEN, ENV_NODE_ID,
};
use strom_server::{BrokerConfig, ConfigSources, Server, os_limits};
use strom_storage::SystemClock;
use tracing::{info, warn};
use tracing_subscriber::EnvFilter;

/// Flags of `strom serve`. Each flag falls back to its `STROM_*` variable; any Kafka
/// property can be set with `-o` or `STROM_<PROPERTY>` (e.g. STROM_LOG_RETENTION_MS).
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Directory holding the partition logs [default: ./strom-data]
    #[arg(long, value_name = "DIR", env = ENV_DATA_DIR)]
    data_dir: Option<PathBuf>,

    /// Address to listen on [default: 0.0.0.0:9092]
    #[arg(long, value_name = "HOST:PORT", env = ENV_LISTEN)]
    listen: Option<String>,

    /// Address clients are told to connect to [default: localhost:<listen port>]
    #[arg(long, value_name = "HOST:PORT", env = ENV_ADVERTISE)]
    advertise: Option<String>,

    /// This broker's node id [default: 1]
    #[arg(long, value_name = "N", env = ENV_NODE_ID)]
    node_id: Option<i32>,

    /// TOML config file (Strom keys and Kafka property names)
    #[arg(long, value_name = "FILE", env = ENV_CONFIG)]
    config: Option<PathBuf>,

    /// Set a Kafka broker property, e.g. -o log.retention.ms=60000 (repeatable)
    #[arg(short = 'o', long = "override", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
}

/// Runs the broker; returns after a clean shutdown.
pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    init_logging();
    if !strom_server::mmap_alloc::keep_request_buffers() {
        tracing::debug!("malloc tuning unavailable; request buffers go back to the kernel");
    }
    let sources = ConfigSources {
        config_file: args.config,
        data_dir: args.data_dir,
        listen: args.listen,
        advertise: args.advertise,
        node_id: args.node_id,
        overrides: args.overrides,
        env: Vec::new(),
    }
    .with_process_env();
    let config = BrokerConfig::load(&sources)?;
    // Before the data directory is opened: each of its segments holds three files.
    let nofile = raise_open_file_limit();
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create data directory {}", config.data_dir.display()))?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        // Install the signal handlers before announcing the address, so a supervisor
        // that signals as soon as it sees the log line gets a clean shutdown.
        let shutdown = shutdown_signal()?;
        let data_dir = config.data_dir.clone();
        let settings = config.broker_settings();
        let coordinator =
            tokio::task::spawn_blocking(move || Coordinator::open(settings, Arc::new(SystemClock)))
                .await
                .context("opening the data directory panicked")?
                .with_context(|| format!("cannot open data directory {}", data_dir.display()))?;
        let coordinator = Arc::new(coordinator);
        check_os_limits(&coordinator, nofile, config.max_connections);
        let server = Server::bind(config, coordinator.clone()).await?;
        info!(
            address = %server.local_addr(),
            advertised = %server.broker().advertised(),
            node_id = server.broker().node_id(),
            data_dir = %data_dir.display(),
            "strom listening"
        );
        server.run(shutdown).await?;
        // `run` has returned, so no handler is still writing to the logs.
        tokio::task::spawn_blocking(move || coordinator.shutdown())
            .await
            .context("closing the logs panicked")?
            .context("closing the logs")?;
        info!("strom stopped");
        anyhow::Ok(())
    })
}

/// Raises the soft open-file limit to the hard limit and logs both; a failure is
/// logged and start-up goes on with the limit as it was.
fn raise_open_file_limit() -> Option<u64> {
    match os_limits::raise_nofile_limit() {
        Ok(limit) => {
            info!(
                soft = %show_limit(limit.soft),
                hard = %show_limit(limit.hard),
                was = %show_limit(limit.before),
                "open-file limit"
            );
            limit.soft
        }
        Err(e) => {
            let limit = os_limits::nofile_limit();
            warn!(
                soft = %show_limit(limit.soft),
                hard = %show_limit(limit.hard),
                error = %e,
                "cannot raise the open-file limit"
            );
            limit.soft
        }
    }
}

/// Warns when the open-file limit (`soft`) or `vm.max_map_count` is too low for the
/// segments just opened and the connections `max.connections` allows.
fn check_os_limits(coordinator: &Coordinator, soft: Option<u64>, max_connections: i32) {
    let partitions = coordinator.all_partitions();
    let segments = partitions
        .iter()
        .filter_map(|p| p.segment_count().ok())
        .map(|n| n as u64)
        .sum();
    let demand = os_limits::FileDemand::new(segments, max_connections);
    info!(
        partitions = partitions.len(),
        segments,
        connections_that_fit = %show_limit(demand.connections_that_fit(soft)),
        "open files"
    );
    let problems = os_limits::shortfalls(
        &demand,
        soft,
        os_limits::max_map_count(),
        MIN_CONNECTION_ROOM,
    );
    for problem in problems {
        warn!("{problem}");
    }
}

/// With `max.connections` unlimited, the open-file limit must leave at least this many
/// sockets for clients, or start-up warns.
const MIN_CONNECTION_ROOM: u64 = 1_000;

fn show_limit(limit: Option<u64>) -> String {
    limit.map_or_else(|| "unlimited".to_string(), |n| n.to_string())
}

/// Logs to stderr, filtered by RUST_LOG (default `info`); colours only on a terminal.
fn init_logging() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

/// A future that completes on SIGTERM or Ctrl-C (SIGINT). The handlers are installed
/// when this returns, not when the future is first polled.
#[cfg(unix)]
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => info!("SIGTERM received"),
            _ = int.recv() => info!("interrupt received"),
        }
    })
}

#[cfg(not(unix))]
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    Ok(async {
        if tokio::signal::ctrl_c().await.is_ok() {
            info!("interrupt received");
        }
    })
}
