//! The listener: binds, accepts connections, and shuts down gracefully.
//!
//! Shutdown, when the future given to [`Server::run`] completes:
//! 1. stop accepting (the listening socket is closed);
//! 2. tell every connection to stop reading new requests;
//! 3. wait, at most `shutdown.timeout.ms`, for the requests already read to be answered
//!    and for every handler task to finish;
//! 4. abort the remaining connections and return, so the caller can flush and close the
//!    logs. Without a timeout no handler is running any more; after one (logged as a
//!    warning) handler tasks still running are left to the runtime, which drops them
//!    when it shuts down.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use strom_coordinator::Coordinator;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;
use tracing::{error, info, warn};

use crate::broker::Broker;
use crate::budget::RequestBudget;
use crate::config::BrokerConfig;
use crate::connection;
use crate::error::{Result, ServerError};
use crate::fd_headroom::{self, DescriptorHeadroom};
use crate::groups;
use crate::ip_limit::PerIpConnections;
use crate::maintenance;
use crate::os_limits;
use crate::warn_limit::{WarnLimiter, limited_warn};

/// Refused connections cost an attacker nothing; their warnings are capped at a few per
/// ten seconds (with a count of the rest).
static REFUSED_WARNINGS: WarnLimiter = WarnLimiter::new(5, Duration::from_secs(10));
/// Warnings while accepting is paused near the open-file limit (checked every 50 ms).
static DESCRIPTOR_WARNINGS: WarnLimiter = WarnLimiter::new(1, Duration::from_secs(10));

/// Per-request limits, from the configuration.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// `socket.request.max.bytes`.
    pub max_frame: usize,
    /// `non.produce.request.max.bytes` (never above `max_frame`).
    pub non_produce_max: usize,
    /// `connection.max.in.flight.requests`.
    pub max_in_flight: usize,
    /// `socket.request.read.timeout.ms`: a started request's time to arrive in full.
    pub read_timeout: Duration,
    /// `connections.max.idle.ms`.
    pub idle_timeout: Duration,
}

/// What every connection shares.
#[derive(Debug)]
pub struct Shared {
    pub broker: Arc<Broker>,
    pub budget: RequestBudget,
    pub limits: Limits,
}

/// Held by a task shutdown waits for; the task is finished when its token is dropped.
#[derive(Debug, Clone)]
pub struct TaskToken(#[allow(dead_code)] mpsc::Sender<()>);

/// A bound, not yet running, Kafka listener.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    local_addr: SocketAddr,
    shared: Arc<Shared>,
    /// Cloned into every task shutdown must wait for (connections, handlers).
    token: TaskToken,
    /// The receiving end of the task tokens: `recv` returns `None` once all are dropped.
    tasks_done: mpsc::Receiver<()>,
    max_connections: usize,
    shutdown_timeout: Duration,
}

impl Server {
    /// Binds the listener on `config.listen`; handlers act on `coordinator`.
    pub async fn bind(config: BrokerConfig, coordinator: Arc<Coordinator>) -> Result<Server> {
        let listen = config.listen.clone();
        let backlog = u32::try_from(config.socket_listen_backlog_size)
            .unwrap_or(1)
            .max(1);
        let listener = listen_on(&listen.host, listen.port, backlog)
            .await
            .map_err(|source| ServerError::Bind {
                addr: listen.to_string(),
                source,
            })?;
        let local_addr = listener.local_addr()?;
        let advertised = config.advertised(local_addr.port());
        let max_frame = usize::try_from(config.socket_request_max_bytes).unwrap_or(0);
        let limits = Limits {
            max_frame,
            non_produce_max: usize::try_from(config.non_produce_request_max_bytes)
                .unwrap_or(0)
                .min(max_frame),
            max_in_flight: usize::try_from(config.connection_max_in_flight_requests)
                .unwrap_or(1)
                .max(1),
            read_timeout: BrokerConfig::timeout(config.socket_request_read_timeout_ms),
            idle_timeout: BrokerConfig::timeout(config.connections_max_idle_ms),
        };
        let (token_tx, tasks_done) = mpsc::channel(1);
        let max_connections = usize::try_from(config.max_connections).unwrap_or(1).max(1);
        let shutdown_timeout =
            Duration::from_millis(u64::try_from(config.shutdown_timeout_ms).unwrap_or(0));
        let budget = RequestBudget::new(config.request_memory_budget());
        let shared = Arc::new(Shared {
            broker: Arc::new(Broker::new(Arc::new(config), advertised, coordinator)),
            budget,
            limits,
        });
        Ok(Server {
            listener,
            local_addr,
            shared,
            token: TaskToken(token_tx),
            tasks_done,
            max_connections,
            shutdown_timeout,
        })
    }

    /// The address actually bound (useful when `listen` asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The broker state handlers see.
    pub fn broker(&self) -> &Arc<Broker> {
        &self.shared.broker
    }

    /// Accepts and serves connections until `shutdown` completes, then shuts down as
    /// described in the module docs.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<()> {
        let Server {
            listener,
            shared,
            token,
            mut tasks_done,
            max_connections,
            shutdown_timeout,
            ..
        } = self;
        let (stop_tx, stop_rx) = watch::channel(false);
        let retention_check = Duration::from_millis(
            u64::try_from(shared.broker.config().log_retention_check_interval_ms).unwrap_or(1),
        );
        let upkeep = maintenance::spawn(
            shared.broker.coordinator().clone(),
            retention_check,
            stop_rx.clone(),
        );
        let group_tasks = groups::start(&shared.broker).await;
        let connection_slots = Arc::new(Semaphore::new(max_connections));
        let per_ip = Arc::new(PerIpConnections::default());
        let mut headroom = DescriptorHeadroom::new(os_limits::RESERVE_FILES);
        let mut connections = JoinSet::new();
        tokio::pin!(shutdown);

        loop {
            // At `max.connections`, stop accepting (as Kafka does): further clients wait
            // in the listen backlog instead of being accepted and dropped.
            if connection_slots.available_permits() == 0 {
                limited_warn!(
                    REFUSED_WARNINGS,
                    max_connections,
                    "max.connections reached; not accepting until a connection closes"
                );
            }
            let slot = tokio::select! {
                biased;
                () = &mut shutdown => break,
                slot = connection_slots.clone().acquire_owned() => match slot {
                    Ok(slot) => slot,
                    Err(_) => break, // never closed
                },
            };
            // Near the open-file limit, keep the last descriptors for the logs: clients
            // wait in the backlog until connections close (see `fd_headroom`).
            if let Err((open, limit)) = headroom.check(Instant::now()) {
                limited_warn!(
                    DESCRIPTOR_WARNINGS,
                    open,
                    limit,
                    reserve = os_limits::RESERVE_FILES,
                    "near the open-file limit; not accepting until descriptors are free"
                );
                drop(slot);
                tokio::select! {
                    biased;
                    () = &mut shutdown => break,
                    () = tokio::time::sleep(fd_headroom::RECOUNT_NEAR_LIMIT) => continue,
                }
            }
            let accepted = tokio::select! {
                biased;
                () = &mut shutdown => break,
                accepted = listener.accept() => accepted,
            };
            match accepted {
                Ok((stream, peer)) => {
                    headroom.accepted();
                    let limit = shared.broker.config().max_connections_for(peer.ip());
                    let ip_slot = match per_ip.try_acquire(peer.ip(), limit) {
                        Ok(ip_slot) => ip_slot,
                        Err(open) => {
                            // Closed at once (dropping the stream), as Kafka does; the
                            // global slot goes back with it.
                            limited_warn!(
                                REFUSED_WARNINGS,
                                %peer,
                                open,
                                limit,
                                "refusing connection: max.connections.per.ip reached"
                            );
                            continue;
                        }
                    };
                    // Kafka requests and responses are small and latency-bound.
                    if let Err(e) = stream.set_nodelay(true) {
                        warn!(%peer, error = %e, "cannot set TCP_NODELAY");
                    }
                    let shared = shared.clone();
                    let token = token.clone();
                    let stop = stop_rx.clone();
                    connections.spawn(async move {
                        let _slots = (slot, ip_slot);
                        connection::serve(stream, peer, shared, stop, token).await;
                    });
                }
                Err(e) => {
                    warn!(error = %e, "accept failed");
                    if is_resource_exhaustion(&e) {
                        // Retrying at once would spin; give connections time to close.
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
            while let Some(done) = connections.try_join_next() {
                log_join(done);
            }
        }

        drop(listener);
        while let Some(done) = connections.try_join_next() {
            log_join(done);
        }
        info!(
            connections = connections.len(),
            "shutting down: no longer accepting, finishing in-flight requests"
        );
        // Receivers that are gone have nothing to stop; ignore the error.
        let _ = stop_tx.send(true);
        shared.broker.begin_shutdown();
        // Our own token must go, or the wait below never ends.
        drop(token);
        let drained = tokio::time::timeout(shutdown_timeout, tasks_done.recv()).await;
        if drained.is_err() {
            warn!(
                timeout_ms = shutdown_timeout.as_millis() as u64,
                connections = connections.len(),
                "shutdown timed out; aborting remaining connections"
            );
        }
        connections.abort_all();
        while let Some(done) = connections.join_next().await {
            log_join(done);
        }
        for task in upkeep {
            if let Err(e) = task.await {
                error!(error = %e, "log maintenance task failed");
            }
        }
        for task in group_tasks {
            if let Err(e) = task.await {
                error!(error = %e, "group coordinator task failed");
            }
        }
        info!("server stopped");
        Ok(())
    }
}

/// Binds `host:port` (each address the name resolves to, in order, until one binds)
/// and listens with `backlog` (`socket.listen.backlog.size`; tokio's own `bind` would
/// use a fixed one).
async fn listen_on(host: &str, port: u16, backlog: u32) -> io::Result<TcpListener> {
    let mut last_error = None;
    for addr in tokio::net::lookup_host((host, port)).await? {
        let socket = match addr {
            SocketAddr::V4(_) => TcpSocket::new_v4()?,
            SocketAddr::V6(_) => TcpSocket::new_v6()?,
        };
        // As std and tokio do: a restarted broker can rebind while old connections
        // are in TIME_WAIT.
        socket.set_reuseaddr(true)?;
        match socket.bind(addr).and_then(|()| socket.listen(backlog)) {
            Ok(listener) => return Ok(listener),
            Err(e) => last_error = Some(e),
        }
    }
    Err(last_error.unwrap_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "the host resolves to no address",
        )
    }))
}

fn log_join(result: std::result::Result<(), tokio::task::JoinError>) {
    match result {
        Err(e) if e.is_panic() => error!(error = %e, "connection task panicked"),
        _ => {}
    }
}

/// Accept errors that mean "out of file descriptors or memory" rather than "this one
/// connection failed".
fn is_resource_exhaustion(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

#[cfg(test)]
mod tests;
