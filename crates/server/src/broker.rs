//! [`Broker`]: everything a request handler may use. This is the integration point
//! between the network layer and the broker's logic.
//!
//! Handlers receive an `Arc<Broker>` and nothing else from the server, so they cannot
//! reach sockets, frames or the connection: they turn a decoded request into a response
//! using the broker's state.
//!
//! The broker's state and logic live in the coordinator (`strom-coordinator`), passed in
//! through [`crate::Server::bind`]; handlers reach it with [`Broker::coordinator`].

use std::sync::Arc;

use strom_coordinator::Coordinator;
use tokio::sync::watch;

use crate::config::{BrokerConfig, HostPort};
use crate::groups::GroupRouter;

/// The broker as request handlers see it.
#[derive(Debug)]
pub struct Broker {
    config: Arc<BrokerConfig>,
    advertised: HostPort,
    coordinator: Arc<Coordinator>,
    /// Turns true when the server starts shutting down: requests that only wait (a
    /// long-poll fetch) answer at once instead of holding shutdown up.
    shutting_down: watch::Sender<bool>,
    /// The consumer-group coordinator's partitions, once started (`crate::groups`).
    groups: GroupRouter,
}

impl Broker {
    /// `advertised` is the address clients should connect to (resolved after binding,
    /// see [`BrokerConfig::advertised`]).
    pub fn new(
        config: Arc<BrokerConfig>,
        advertised: HostPort,
        coordinator: Arc<Coordinator>,
    ) -> Self {
        Broker {
            config,
            advertised,
            coordinator,
            shutting_down: watch::Sender::new(false),
            groups: GroupRouter::default(),
        }
    }

    /// A receiver that turns true when the server shuts down.
    pub fn shutting_down(&self) -> watch::Receiver<bool> {
        self.shutting_down.subscribe()
    }

    /// Tells waiting requests that the server is shutting down.
    pub fn begin_shutdown(&self) {
        self.shutting_down.send_replace(true);
    }

    /// Topics, partitions, producer state: everything the handlers act on.
    pub fn coordinator(&self) -> &Arc<Coordinator> {
        &self.coordinator
    }

    /// Where group requests go.
    pub fn groups(&self) -> &GroupRouter {
        &self.groups
    }

    /// The configuration the broker runs with.
    pub fn config(&self) -> &BrokerConfig {
        &self.config
    }

    /// This broker's node id, as reported in metadata.
    pub fn node_id(&self) -> i32 {
        self.config.node_id
    }

    /// The host and port clients are told to connect to.
    pub fn advertised(&self) -> &HostPort {
        &self.advertised
    }
}
