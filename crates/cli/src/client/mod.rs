//! A small Kafka client on the `kafka-protocol` codecs: what the `strom` commands need
//! to drive Strom or any Kafka-compatible cluster.

pub mod cluster;
pub mod connection;
pub mod consumer_protocol;
pub mod error;
pub mod group_member;
pub mod offset_fetch;
pub mod offsets;
pub mod range_assignor;

pub use cluster::{Cluster, TopicInfo};
pub use connection::{BrokerConnection, Timeouts};
pub use error::KafkaError;
pub use offsets::{ListedOffset, OffsetSpec, list_offsets};
