//! [`Broker`]: everything a request handler may use. This is the integration point
//! between the network layer and the broker's logic.
//!
//! Handlers receive an `Arc<Broker>` and nothing else from the server, so they cannot
//! reach sockets, frames or the connection: they turn a decoded request into a response
//! using the broker's state.
//!
//! INTEGRATION POINT (issue 3, part 2): the coordinator (`strom-coordinator`, being
//! written now) becomes a field here, passed in through [`crate::Server::bind`], and the
//! Metadata/Produce/Fetch/... handlers call it through `broker.coordinator()`. Until then
//! the broker holds only its configuration and identity, and the only handler is
//! ApiVersions.

use std::sync::Arc;

use crate::config::{BrokerConfig, HostPort};

/// The broker as request handlers see it.
#[derive(Debug)]
pub struct Broker {
    config: Arc<BrokerConfig>,
    advertised: HostPort,
}

impl Broker {
    /// `advertised` is the address clients should connect to (resolved after binding,
    /// see [`BrokerConfig::advertised`]).
    pub fn new(config: Arc<BrokerConfig>, advertised: HostPort) -> Self {
        Broker { config, advertised }
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
