//! `strom topic create`: CreateTopics for one or more topics with the same partition
//! count, replication factor and config overrides.

use std::collections::BTreeMap;

use anyhow::bail;
use clap::Args;
use kafka_protocol::messages::CreateTopicsRequest;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::protocol::StrBytes;
use serde::Serialize;

use super::{parse_config, timeout_ms, topic_error, topic_name};
use crate::client::KafkaError;
use crate::client::cluster::kafka_uuid_string;
use crate::commands::ClientOpts;
use crate::output::{OutputFormat, Table, print_json};

/// Arguments of `strom topic create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Topics to create
    #[arg(required = true, value_name = "TOPIC")]
    topics: Vec<String>,
    /// Number of partitions (default: the broker's num.partitions)
    #[arg(short, long, value_name = "N")]
    partitions: Option<i32>,
    /// Replicas per partition (default: the broker's default.replication.factor)
    #[arg(short, long, value_name = "R")]
    replication_factor: Option<i16>,
    /// A topic config override, e.g. retention.ms=86400000; repeatable
    #[arg(short, long = "config", value_name = "KEY=VALUE")]
    configs: Vec<String>,
    /// Succeed, changing nothing, when a topic already exists
    #[arg(long)]
    if_not_exists: bool,
    /// Ask the broker to validate the request without creating anything
    #[arg(long)]
    dry_run: bool,
}

/// One topic as created (or found existing with `--if-not-exists`).
#[derive(Debug, Serialize)]
struct Created {
    name: String,
    /// `created`, `exists` (with --if-not-exists) or `valid` (with --dry-run).
    status: &'static str,
    /// Null when the broker does not say (responses before v7, or an existing topic).
    topic_id: Option<String>,
    /// -1 when the broker does not say (before v5, or an existing topic).
    partitions: i32,
    replication_factor: i16,
    configs: BTreeMap<String, String>,
}

pub async fn run(client: ClientOpts, args: CreateArgs) -> anyhow::Result<()> {
    let mut configs = BTreeMap::new();
    for text in &args.configs {
        let (k, v) = parse_config("--config", text)?;
        // Kafka refuses the whole topic (INVALID_REQUEST) without naming the key.
        if configs.insert(k.clone(), v).is_some() {
            bail!("--config {k} is given twice");
        }
    }
    if args.partitions.is_some_and(|p| p < 1) {
        bail!("--partitions must be at least 1");
    }
    if args.replication_factor.is_some_and(|r| r < 1) {
        bail!("--replication-factor must be at least 1");
    }
    let mut cluster = client.connect().await?;
    let conn = cluster.any();
    let version = conn.version::<CreateTopicsRequest>()?;
    // -1 ("the broker's default") exists from v4; older brokers need numbers.
    let unset: i16 = if version >= 4 { -1 } else { 1 };
    let partitions = args.partitions.unwrap_or(unset.into());
    let replication_factor = args.replication_factor.unwrap_or(unset);
    let request = CreateTopicsRequest::default()
        .with_timeout_ms(timeout_ms(&client))
        .with_validate_only(args.dry_run)
        .with_topics(
            args.topics
                .iter()
                .map(|name| {
                    CreatableTopic::default()
                        .with_name(topic_name(name))
                        .with_num_partitions(partitions)
                        .with_replication_factor(replication_factor)
                        .with_configs(
                            configs
                                .iter()
                                .map(|(k, v)| {
                                    CreatableTopicConfig::default()
                                        .with_name(StrBytes::from_string(k.clone()))
                                        .with_value(Some(StrBytes::from_string(v.clone())))
                                })
                                .collect(),
                        )
                })
                .collect(),
        );
    let response = conn.call_at(&request, version).await?;
    let mut created = Vec::new();
    let mut failure = None;
    for result in response.topics {
        let name = result.name.0.to_string();
        if result.error_code == KafkaError::TOPIC_ALREADY_EXISTS && args.if_not_exists {
            created.push(Created {
                name,
                status: "exists",
                topic_id: None,
                partitions: -1,
                replication_factor: -1,
                configs: BTreeMap::new(),
            });
            continue;
        }
        let message = result.error_message.as_ref().map(|m| m.as_str());
        if let Err(e) = topic_error("create", &name, result.error_code, message) {
            // Report the topics that were created before failing on the first that was not.
            failure.get_or_insert(e);
            continue;
        }
        created.push(Created {
            name,
            status: if args.dry_run { "valid" } else { "created" },
            topic_id: (version >= 7 && !result.topic_id.is_nil())
                .then(|| kafka_uuid_string(&result.topic_id)),
            // Before v5 the response has no counts: echo what was asked, if anything.
            partitions: if version >= 5 {
                result.num_partitions
            } else {
                partitions
            },
            replication_factor: if version >= 5 {
                result.replication_factor
            } else {
                replication_factor
            },
            configs: configs.clone(),
        });
    }
    print(&client, &created)?;
    match failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn print(client: &ClientOpts, created: &[Created]) -> anyhow::Result<()> {
    match client.output {
        OutputFormat::Json => print_json(&created),
        OutputFormat::Table => {
            if created.is_empty() {
                return Ok(());
            }
            let mut table =
                Table::new(&["TOPIC", "STATUS", "ID", "PARTITIONS", "REPLICAS", "CONFIGS"]);
            let known = |n: i64| {
                if n < 0 {
                    "-".to_string()
                } else {
                    n.to_string()
                }
            };
            for c in created {
                let configs: Vec<String> =
                    c.configs.iter().map(|(k, v)| format!("{k}={v}")).collect();
                table.row(&[
                    c.name.clone(),
                    c.status.to_string(),
                    c.topic_id.clone().unwrap_or_else(|| "-".into()),
                    known(c.partitions.into()),
                    known(c.replication_factor.into()),
                    if configs.is_empty() {
                        "-".into()
                    } else {
                        configs.join(",")
                    },
                ]);
            }
            table.print()
        }
    }
}
