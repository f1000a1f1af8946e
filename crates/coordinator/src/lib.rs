//! The broker's brain.
//!
//! `strom-coordinator` owns everything the broker knows and decides, without touching
//! a socket: the broker's identity and its topics ([`Coordinator`], [`Topic`]), each topic's
//! partitions backed by a `strom-storage` log ([`Partition`]), per-producer state for
//! idempotent writes ([`producer_state`]), topic configuration ([`topic_config`]), and
//! later the consumer-group coordinator. The network layer (`strom-server`) decodes
//! Kafka requests and calls into this crate; Kafka error codes are chosen there.

mod broker;
mod cluster_meta;
mod error;
pub mod group;
mod partition;
mod producer_ids;
pub mod producer_state;
mod topic;
pub mod topic_config;

#[cfg(test)]
mod tests;

pub use broker::{BrokerSettings, Coordinator, CreatedTopic, NewTopic};
pub use cluster_meta::{ClusterMeta, base64_url};
pub use error::{CoordinatorError, Result};
pub use partition::{AppendOutcome, FetchedRecords, Partition};
pub use topic::{Topic, TopicRecord, validate_name};
pub use topic_config::{
    AlterOp, ConfigEntry, ConfigSource, ConfigType, TopicConfig, TopicDefaults,
};
