//! Strom's network layer: the Kafka wire protocol over tokio.
//!
//! `strom-server` accepts client connections ([`Server`]), reads size-prefixed frames
//! (`frame`), decodes request headers and bodies with `kafka-protocol` (`request`,
//! `dispatch`), runs the handler for the API (`handlers`) concurrently per request, and
//! writes the responses back in request order (`connection`). It holds no broker state
//! of its own: handlers reach the broker through [`Broker`], the integration point for
//! `strom-coordinator`.
//!
//! Hostile input is bounded at every step: frame sizes are checked before allocation,
//! body buffers grow only as bytes arrive, non-Produce requests have a lower size cap,
//! a server-wide budget bounds the memory of requests in flight (`budget`), and
//! [`MmapAlloc`] keeps `kafka-protocol`'s wire-controlled `Vec::with_capacity` from
//! aborting the process. Connections are bounded too: per client address
//! (`ip_limit`), by an idle timeout (`activity`) and by a deadline for each request to
//! arrive once started (`frame`). See the crate README for the numbers.

mod activity;
pub mod api_versions;
pub mod broker;
pub mod budget;
pub mod config;
mod connection;
pub mod dispatch;
pub mod error;
mod fd_headroom;
pub mod frame;
pub mod groups;
pub mod handlers;
mod ip_limit;
pub mod maintenance;
pub mod mmap_alloc;
pub mod os_limits;
pub mod request;
pub mod response_frame;
mod server;
mod warn_limit;

pub use broker::Broker;
pub use config::{BrokerConfig, ConfigSources, HostPort};
pub use error::{Result, ServerError};
pub use mmap_alloc::MmapAlloc;
pub use server::Server;

#[cfg(test)]
pub(crate) mod test_support;

// The unit tests feed hostile bytes to the decoders (see `dispatch`), which needs the
// same allocator the binary installs.
#[cfg(test)]
#[global_allocator]
static TEST_ALLOC: MmapAlloc = MmapAlloc::new();
