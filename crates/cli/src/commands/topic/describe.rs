//! `strom topic describe`: a topic's id and configs (DescribeConfigs), and per
//! partition its leader, epoch, replicas and ISR (Metadata), log start offset and high
//! watermark (ListOffsets) and size on disk (DescribeLogDirs, asked of each leader).

use std::collections::{BTreeMap, HashMap};

use clap::Args;
use kafka_protocol::messages::DescribeLogDirsRequest;
use kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
use serde::Serialize;

use super::configs::{self, ConfigValue, DEFAULT_CONFIG};
use super::list::replication_factor;
use super::{id_list, topic_name};
use crate::client::{Cluster, KafkaError, ListedOffset, OffsetSpec, TopicInfo, list_offsets};
use crate::commands::ClientOpts;
use crate::output::{OutputFormat, Table, print_json};

/// Arguments of `strom topic describe`.
#[derive(Debug, Args)]
pub struct DescribeArgs {
    /// Topics to describe
    #[arg(required = true, value_name = "TOPIC")]
    topics: Vec<String>,
    /// Show every config, defaults included (by default only the configs that differ
    /// from Kafka's defaults: topic overrides and broker-wide settings)
    #[arg(short, long)]
    all_configs: bool,
}

#[derive(Debug, Serialize)]
struct Described {
    name: String,
    topic_id: String,
    internal: bool,
    partition_count: usize,
    replication_factor: usize,
    configs: Vec<ConfigValue>,
    partitions: Vec<PartitionRow>,
}

#[derive(Debug, Serialize)]
struct PartitionRow {
    partition: i32,
    leader: i32,
    leader_epoch: i32,
    replicas: Vec<i32>,
    isr: Vec<i32>,
    /// Null when the partition has no leader to ask.
    log_start_offset: Option<i64>,
    high_watermark: Option<i64>,
    /// The leader's log size in bytes; null when it has no leader or does not serve
    /// DescribeLogDirs.
    size_bytes: Option<i64>,
    /// Metadata's error for the partition, e.g. LEADER_NOT_AVAILABLE; null when none.
    error: Option<String>,
}

type Key = (String, i32);

pub async fn run(client: ClientOpts, args: DescribeArgs) -> anyhow::Result<()> {
    let mut cluster = client.connect().await?;
    // Fails with `unknown topic: NAME` for the first topic that does not exist.
    let topics = cluster.topics(Some(&args.topics)).await?;
    let leaders: HashMap<Key, i32> = topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| ((t.name.clone(), p.partition), p.leader))
        })
        .collect();
    let led: Vec<Key> = leaders
        .iter()
        .filter(|(_, leader)| **leader >= 0)
        .map(|(key, _)| key.clone())
        .collect();
    let start = list_offsets(&mut cluster, &led, &leaders, OffsetSpec::Earliest).await?;
    let end = list_offsets(&mut cluster, &led, &leaders, OffsetSpec::Latest).await?;
    let sizes = sizes(&mut cluster, &leaders).await?;
    let names: Vec<String> = topics.iter().map(|t| t.name.clone()).collect();
    let mut configs = configs::describe(cluster.any(), &names).await?;
    let described: Vec<Described> = topics
        .iter()
        .map(|t| {
            let configs = configs
                .remove(&t.name)
                .unwrap_or_default()
                .into_iter()
                .filter(|c| args.all_configs || c.source_code != DEFAULT_CONFIG)
                .collect();
            describe(t, configs, &start, &end, &sizes)
        })
        .collect();
    match client.output {
        OutputFormat::Json => print_json(&described),
        OutputFormat::Table => print_tables(&described),
    }
}

fn describe(
    t: &TopicInfo,
    configs: Vec<ConfigValue>,
    start: &BTreeMap<Key, ListedOffset>,
    end: &BTreeMap<Key, ListedOffset>,
    sizes: &HashMap<Key, i64>,
) -> Described {
    let partitions = t
        .partitions
        .iter()
        .map(|p| {
            let key = (t.name.clone(), p.partition);
            PartitionRow {
                partition: p.partition,
                leader: p.leader,
                leader_epoch: p.leader_epoch,
                replicas: p.replicas.clone(),
                isr: p.isr.clone(),
                log_start_offset: start.get(&key).map(|o| o.offset),
                high_watermark: end.get(&key).map(|o| o.offset),
                size_bytes: sizes.get(&key).copied(),
                error: KafkaError::check(p.error_code, None)
                    .err()
                    .map(|e| e.to_string()),
            }
        })
        .collect();
    Described {
        name: t.name.clone(),
        topic_id: t.topic_id_string(),
        internal: t.internal,
        partition_count: t.partitions.len(),
        replication_factor: replication_factor(t),
        configs,
        partitions,
    }
}

/// Each led partition's size in bytes, from DescribeLogDirs sent to its leader (the
/// API describes the disks of the broker it is sent to). A broker that does not serve
/// it, or refuses it (Kafka requires DESCRIBE on the cluster), costs only the sizes:
/// a warning on stderr, and `-` in the table.
async fn sizes(
    cluster: &mut Cluster,
    leaders: &HashMap<Key, i32>,
) -> anyhow::Result<HashMap<Key, i64>> {
    let mut by_leader: BTreeMap<i32, BTreeMap<&str, Vec<i32>>> = BTreeMap::new();
    for ((topic, partition), leader) in leaders {
        if *leader >= 0 {
            by_leader
                .entry(*leader)
                .or_default()
                .entry(topic.as_str())
                .or_default()
                .push(*partition);
        }
    }
    let mut out = HashMap::new();
    for (leader, topics) in by_leader {
        let conn = cluster.broker(leader).await?;
        if !conn.supports::<DescribeLogDirsRequest>(1) {
            eprintln!(
                "warning: broker {leader} does not serve DescribeLogDirs: no partition sizes"
            );
            continue;
        }
        let request = DescribeLogDirsRequest::default().with_topics(Some(
            topics
                .iter()
                .map(|(topic, parts)| {
                    DescribableLogDirTopic::default()
                        .with_topic(topic_name(topic))
                        .with_partitions(parts.clone())
                })
                .collect(),
        ));
        let response = conn.call(&request).await?;
        if let Err(e) = KafkaError::check(response.error_code, None) {
            eprintln!("warning: broker {leader} refused DescribeLogDirs: {e}: no partition sizes");
            continue;
        }
        for dir in response.results {
            // An offline log dir has no sizes to give; its partitions show `-`.
            if dir.error_code != 0 {
                continue;
            }
            for topic in dir.topics {
                for p in topic.partitions.iter().filter(|p| !p.is_future_key) {
                    out.insert(
                        (topic.name.0.to_string(), p.partition_index),
                        p.partition_size,
                    );
                }
            }
        }
    }
    Ok(out)
}

fn print_tables(described: &[Described]) -> anyhow::Result<()> {
    let mut text = String::new();
    let opt = |v: Option<i64>| v.map_or_else(|| "-".to_string(), |v| v.to_string());
    for (i, t) in described.iter().enumerate() {
        if i > 0 {
            text.push('\n');
        }
        let mut head = Table::new(&["TOPIC:", t.name.as_str()]);
        head.row(&["ID:", t.topic_id.as_str()]);
        head.row(&["INTERNAL:", if t.internal { "yes" } else { "no" }]);
        head.row(&["PARTITIONS:".to_string(), t.partition_count.to_string()]);
        head.row(&["REPLICAS:".to_string(), t.replication_factor.to_string()]);
        text.push_str(&head.render());
        text.push('\n');
        let mut configs = Table::new(&["CONFIG", "VALUE", "SOURCE"]);
        for c in &t.configs {
            let value = match (&c.value, c.sensitive) {
                (_, true) => "<sensitive>".to_string(),
                (Some(v), false) if !v.is_empty() => v.clone(),
                _ => "-".to_string(),
            };
            configs.row(&[c.name.clone(), value, c.source.to_string()]);
        }
        text.push_str(&configs.render());
        text.push('\n');
        let mut parts = Table::new(&[
            "PARTITION",
            "LEADER",
            "EPOCH",
            "REPLICAS",
            "ISR",
            "LOG-START",
            "HIGH-WATERMARK",
            "SIZE-BYTES",
            "ERROR",
        ]);
        for p in &t.partitions {
            parts.row(&[
                p.partition.to_string(),
                p.leader.to_string(),
                p.leader_epoch.to_string(),
                id_list(&p.replicas),
                id_list(&p.isr),
                opt(p.log_start_offset),
                opt(p.high_watermark),
                opt(p.size_bytes),
                p.error.clone().unwrap_or_else(|| "-".into()),
            ]);
        }
        text.push_str(&parts.render());
    }
    crate::output::write_stdout(text.as_bytes())
}
