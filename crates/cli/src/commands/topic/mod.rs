//! `strom topic`: create, list, describe, delete, reconfigure and grow topics, with the
//! Kafka admin APIs (CreateTopics, Metadata, DescribeConfigs, DeleteTopics,
//! IncrementalAlterConfigs, CreatePartitions), so it drives Strom or any Kafka cluster.

mod add_partitions;
mod alter_config;
mod configs;
mod create;
mod delete;
mod describe;
mod list;

use anyhow::{Context, anyhow, bail};
use clap::{Args, Subcommand};
use kafka_protocol::messages::TopicName;
use kafka_protocol::protocol::StrBytes;

use super::{ClientOpts, block_on};
use crate::client::KafkaError;

/// Arguments of `strom topic`.
#[derive(Debug, Args)]
pub struct TopicArgs {
    #[command(subcommand)]
    command: TopicCommand,
    #[command(flatten)]
    client: ClientOpts,
}

#[derive(Debug, Subcommand)]
enum TopicCommand {
    /// Create topics.
    Create(create::CreateArgs),
    /// List topics: name, partition count, replication factor.
    #[command(visible_alias = "ls")]
    List(list::ListArgs),
    /// Describe topics: id, configs, and per partition the leader, replicas, ISR,
    /// log start offset, high watermark and size on disk.
    Describe(describe::DescribeArgs),
    /// Delete topics and all their records.
    #[command(visible_alias = "rm")]
    Delete(delete::DeleteArgs),
    /// Set or remove a topic's config overrides.
    AlterConfig(alter_config::AlterConfigArgs),
    /// Add partitions to a topic (existing records stay where they are).
    AddPartitions(add_partitions::AddPartitionsArgs),
}

pub fn run(args: TopicArgs) -> anyhow::Result<()> {
    let client = args.client;
    match args.command {
        TopicCommand::Create(a) => block_on(create::run(client, a)),
        TopicCommand::List(a) => block_on(list::run(client, a)),
        TopicCommand::Describe(a) => block_on(describe::run(client, a)),
        TopicCommand::Delete(a) => block_on(delete::run(client, a)),
        TopicCommand::AlterConfig(a) => block_on(alter_config::run(client, a)),
        TopicCommand::AddPartitions(a) => block_on(add_partitions::run(client, a)),
    }
}

/// A topic name as the protocol carries it.
fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

/// `--timeout` as the `timeout_ms` admin requests carry: how long the broker may take.
fn timeout_ms(client: &ClientOpts) -> i32 {
    i32::try_from(client.timeout.saturating_mul(1000)).unwrap_or(i32::MAX)
}

/// Parses `KEY=VALUE` (the value may contain `=` and may be empty, the key may not).
/// Parsed here rather than by clap so that a bad value is one error line like every
/// other error of the command.
fn parse_config(flag: &str, text: &str) -> anyhow::Result<(String, String)> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_string(), value.to_string()))
        }
        _ => bail!("invalid {flag} '{text}': expected KEY=VALUE"),
    }
}

/// A topic's error code from an admin response as an error: UNKNOWN_TOPIC_OR_PARTITION
/// reads `unknown topic: NAME` (as describe says it), anything else is the protocol's
/// name and the broker's message after `cannot ACTION topic NAME`.
fn topic_error(action: &str, name: &str, code: i16, message: Option<&str>) -> anyhow::Result<()> {
    if code == KafkaError::UNKNOWN_TOPIC_OR_PARTITION {
        return Err(anyhow!("unknown topic: {name}"));
    }
    KafkaError::check(code, message).with_context(|| format!("cannot {action} topic {name}"))
}

/// `[1, 2, 3]` → `1,2,3`: one whitespace-free cell, so tables split on blanks.
fn id_list(ids: &[i32]) -> String {
    if ids.is_empty() {
        return "-".to_string();
    }
    ids.iter().map(i32::to_string).collect::<Vec<_>>().join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_parse_as_key_value() {
        let p = |s| parse_config("--config", s).map_err(|e| e.to_string());
        assert_eq!(
            p("retention.ms=1000"),
            Ok(("retention.ms".into(), "1000".into()))
        );
        assert_eq!(p("a=b=c"), Ok(("a".into(), "b=c".into())));
        assert_eq!(
            p("cleanup.policy="),
            Ok(("cleanup.policy".into(), String::new()))
        );
        assert_eq!(
            p("nokey"),
            Err("invalid --config 'nokey': expected KEY=VALUE".into())
        );
        assert!(p("=1").is_err());
    }

    #[test]
    fn unknown_topic_reads_like_describe() {
        let e = topic_error("delete", "t", 3, Some("x")).unwrap_err();
        assert_eq!(format!("{e:#}"), "unknown topic: t");
        let e = topic_error("create", "t", 36, Some("Topic 't' already exists.")).unwrap_err();
        assert_eq!(
            format!("{e:#}"),
            "cannot create topic t: TOPIC_ALREADY_EXISTS: Topic 't' already exists."
        );
        assert!(topic_error("create", "t", 0, None).is_ok());
        assert_eq!(id_list(&[1, 2]), "1,2");
        assert_eq!(id_list(&[]), "-");
    }
}
