//! A client's view of a Kafka cluster: bootstrap, metadata (brokers, topics, partition
//! leaders), one lazily opened connection per broker, and group coordinators.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use kafka_protocol::messages::{
    BrokerId, FindCoordinatorRequest, MetadataRequest, MetadataResponse, TopicName,
    metadata_request::MetadataRequestTopic,
};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use super::connection::{BrokerConnection, Timeouts};
use super::error::KafkaError;

/// One broker as metadata describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerInfo {
    pub node_id: i32,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
}

impl TopicInfo {
    /// The topic id as Kafka's tools print it (URL-safe base64, not hyphenated hex).
    pub fn topic_id_string(&self) -> String {
        kafka_uuid_string(&self.topic_id)
    }
}

/// A UUID as Kafka prints it for people: URL-safe base64 without padding.
pub fn kafka_uuid_string(id: &Uuid) -> String {
    strom_coordinator::base64_url(id.as_bytes())
}

impl BrokerInfo {
    pub fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// One partition as metadata describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionInfo {
    pub partition: i32,
    /// -1 when the partition has no leader.
    pub leader: i32,
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub error_code: i16,
}

/// One topic as metadata describes it; partitions sorted by index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    pub name: String,
    /// Nil when the broker does not report topic ids (Metadata before v10).
    pub topic_id: Uuid,
    pub internal: bool,
    pub partitions: Vec<PartitionInfo>,
}

/// Bootstrap addresses, a metadata snapshot and connections to brokers.
pub struct Cluster {
    timeouts: Timeouts,
    /// Connection to whichever bootstrap broker answered first; used for requests any
    /// broker can answer (metadata, admin requests Strom and KRaft forward).
    bootstrap: BrokerConnection,
    connections: HashMap<i32, BrokerConnection>,
    brokers: BTreeMap<i32, BrokerInfo>,
    cluster_id: Option<String>,
    controller_id: i32,
}

impl Cluster {
    /// Connects to the first reachable address of `brokers` (comma-separated host:port).
    /// The error names every address tried.
    pub async fn connect(brokers: &str, timeouts: Timeouts) -> anyhow::Result<Cluster> {
        let addrs: Vec<&str> = brokers
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .collect();
        if addrs.is_empty() {
            bail!("no broker address given (--brokers or STROM_BROKERS)");
        }
        let mut failures = Vec::new();
        for addr in &addrs {
            let addr = with_default_port(addr);
            match BrokerConnection::connect(&addr, timeouts).await {
                Ok(bootstrap) => {
                    return Ok(Cluster {
                        timeouts,
                        bootstrap,
                        connections: HashMap::new(),
                        brokers: BTreeMap::new(),
                        cluster_id: None,
                        controller_id: -1,
                    });
                }
                Err(e) => failures.push(e),
            }
        }
        if failures.len() == 1 {
            return Err(failures.remove(0));
        }
        let tried: Vec<String> = failures.iter().map(|e| format!("{e:#}")).collect();
        bail!("cannot reach any broker: {}", tried.join("; "))
    }

    /// The bootstrap connection, for requests any broker answers.
    pub fn any(&mut self) -> &mut BrokerConnection {
        &mut self.bootstrap
    }

    /// Replaces the bootstrap connection with a new one to the same address, after it
    /// failed (the broker restarted, or a cancelled request left a response pending).
    pub async fn reconnect_bootstrap(&mut self) -> anyhow::Result<()> {
        let addr = self.bootstrap.addr().to_string();
        self.bootstrap = BrokerConnection::connect(&addr, self.timeouts).await?;
        Ok(())
    }

    pub fn timeouts(&self) -> Timeouts {
        self.timeouts
    }

    /// Brokers from the last metadata response.
    pub fn brokers(&self) -> &BTreeMap<i32, BrokerInfo> {
        &self.brokers
    }

    pub fn cluster_id(&self) -> Option<&str> {
        self.cluster_id.as_deref()
    }

    pub fn controller_id(&self) -> i32 {
        self.controller_id
    }

    /// Fetches metadata for `topics` (all topics when `None`) and remembers the brokers.
    /// Never creates topics.
    pub async fn metadata(
        &mut self,
        topics: Option<&[String]>,
    ) -> anyhow::Result<MetadataResponse> {
        let request = MetadataRequest::default()
            .with_topics(topics.map(|names| {
                names
                    .iter()
                    .map(|n| {
                        MetadataRequestTopic::default()
                            .with_name(Some(TopicName(StrBytes::from_string(n.clone()))))
                    })
                    .collect()
            }))
            .with_allow_auto_topic_creation(false);
        let response = match self.bootstrap.call(&request).await {
            Ok(response) => response,
            // The bootstrap broker may have restarted since: one new connection.
            Err(e) => match self.reconnect_bootstrap().await {
                Ok(()) => self.bootstrap.call(&request).await?,
                Err(_) => return Err(e),
            },
        };
        self.brokers = response
            .brokers
            .iter()
            .map(|b| {
                (
                    b.node_id.0,
                    BrokerInfo {
                        node_id: b.node_id.0,
                        host: b.host.to_string(),
                        port: b.port,
                        rack: b.rack.as_ref().map(|r| r.to_string()),
                    },
                )
            })
            .collect();
        self.cluster_id = response.cluster_id.as_ref().map(|c| c.to_string());
        self.controller_id = response.controller_id.0;
        Ok(response)
    }

    /// Describes `names` (all topics when `None`), sorted by name. A requested topic
    /// that does not exist is an error naming it.
    pub async fn topics(&mut self, names: Option<&[String]>) -> anyhow::Result<Vec<TopicInfo>> {
        let response = self.metadata(names).await?;
        let mut topics = Vec::with_capacity(response.topics.len());
        for topic in response.topics {
            let name = topic
                .name
                .as_ref()
                .map(|n| n.0.to_string())
                .unwrap_or_default();
            if topic.error_code == KafkaError::UNKNOWN_TOPIC_OR_PARTITION {
                bail!("unknown topic: {name}");
            }
            KafkaError::check(topic.error_code, None).with_context(|| format!("topic {name}"))?;
            let mut partitions: Vec<PartitionInfo> = topic
                .partitions
                .iter()
                .map(|p| PartitionInfo {
                    partition: p.partition_index,
                    leader: p.leader_id.0,
                    leader_epoch: p.leader_epoch,
                    replicas: p.replica_nodes.iter().map(|b| b.0).collect(),
                    isr: p.isr_nodes.iter().map(|b| b.0).collect(),
                    error_code: p.error_code,
                })
                .collect();
            partitions.sort_by_key(|p| p.partition);
            topics.push(TopicInfo {
                name,
                topic_id: topic.topic_id,
                internal: topic.is_internal,
                partitions,
            });
        }
        topics.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(topics)
    }

    /// Describes one topic; an unknown topic is an error naming it.
    pub async fn topic(&mut self, name: &str) -> anyhow::Result<TopicInfo> {
        let mut topics = self.topics(Some(&[name.to_string()])).await?;
        topics.pop().ok_or_else(|| anyhow!("unknown topic: {name}"))
    }

    /// The connection to broker `node_id`, opened on first use at the address the last
    /// metadata response advertised.
    pub async fn broker(&mut self, node_id: i32) -> anyhow::Result<&mut BrokerConnection> {
        if !self.connections.contains_key(&node_id) {
            if !self.brokers.contains_key(&node_id) {
                self.metadata(Some(&[])).await?;
            }
            let info = self
                .brokers
                .get(&node_id)
                .ok_or_else(|| anyhow!("broker {node_id} is not in the cluster metadata"))?;
            let addr = info.addr();
            let conn = BrokerConnection::connect(&addr, self.timeouts)
                .await
                .with_context(|| format!("broker {node_id} is advertised as {addr}"))?;
            self.connections.insert(node_id, conn);
        }
        self.connections
            .get_mut(&node_id)
            .ok_or_else(|| anyhow!("broker {node_id} connection lost"))
    }

    /// Drops the connection to `node_id` (after an I/O error), so the next use reconnects.
    pub fn forget(&mut self, node_id: i32) {
        self.connections.remove(&node_id);
    }

    /// The node id of `group`'s coordinator. Retries while the coordinator is loading or
    /// not yet available, for up to the request timeout.
    pub async fn find_coordinator(&mut self, group: &str) -> anyhow::Result<i32> {
        let deadline = Instant::now() + self.timeouts.request;
        loop {
            let conn = &mut self.bootstrap;
            let version = conn.version::<FindCoordinatorRequest>()?;
            let request = if version >= 4 {
                FindCoordinatorRequest::default()
                    .with_coordinator_keys(vec![StrBytes::from_string(group.to_string())])
            } else {
                FindCoordinatorRequest::default().with_key(StrBytes::from_string(group.to_string()))
            };
            let response = conn.call_at(&request, version).await?;
            let (code, message, node, host, port) = match response.coordinators.first() {
                Some(c) if version >= 4 => (
                    c.error_code,
                    c.error_message.as_ref().map(|m| m.to_string()),
                    c.node_id,
                    c.host.to_string(),
                    c.port,
                ),
                _ => (
                    response.error_code,
                    response.error_message.as_ref().map(|m| m.to_string()),
                    response.node_id,
                    response.host.to_string(),
                    response.port,
                ),
            };
            match KafkaError::check(code, message.as_deref()) {
                Ok(()) => {
                    let BrokerId(node) = node;
                    self.brokers.entry(node).or_insert(BrokerInfo {
                        node_id: node,
                        host,
                        port,
                        rack: None,
                    });
                    return Ok(node);
                }
                Err(e) if e.is_retriable() && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => {
                    return Err(e)
                        .with_context(|| format!("cannot find the coordinator of group {group}"));
                }
            }
        }
    }

    /// The connection to `group`'s coordinator.
    pub async fn coordinator(&mut self, group: &str) -> anyhow::Result<&mut BrokerConnection> {
        let node = self.find_coordinator(group).await?;
        self.broker(node).await
    }
}

/// `host` → `host:9092`, as Kafka tools accept a bare host.
fn with_default_port(addr: &str) -> String {
    if addr
        .rsplit_once(':')
        .is_some_and(|(_, port)| port.parse::<u16>().is_ok())
    {
        addr.to_string()
    } else {
        format!("{addr}:9092")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_hosts_get_the_kafka_port() {
        assert_eq!(with_default_port("localhost"), "localhost:9092");
        assert_eq!(with_default_port("10.0.0.1:19092"), "10.0.0.1:19092");
        assert_eq!(with_default_port("[::1]:9093"), "[::1]:9093");
    }
}
