//! `strom topic alter-config`: sets and removes a topic's config overrides with
//! IncrementalAlterConfigs, which changes only the configs named. A broker without it
//! (Kafka before 2.3) gets AlterConfigs, which replaces every override: the current
//! overrides are read first (DescribeConfigs) and sent back with the changes applied.

use std::collections::BTreeMap;

use anyhow::bail;
use clap::{ArgGroup, Args};
use kafka_protocol::messages::{
    AlterConfigsRequest, IncrementalAlterConfigsRequest, alter_configs_request,
    incremental_alter_configs_request,
};
use kafka_protocol::protocol::StrBytes;
use serde::Serialize;

use super::configs::{self, DYNAMIC_TOPIC_CONFIG, TOPIC_RESOURCE};
use super::{parse_config, topic_error};
use crate::client::BrokerConnection;
use crate::commands::ClientOpts;
use crate::output::{OutputFormat, Table, print_json};

/// IncrementalAlterConfigs operations (AlterConfigOp.OpType).
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;

/// Arguments of `strom topic alter-config`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("change").required(true).multiple(true).args(["set", "delete"])))]
pub struct AlterConfigArgs {
    /// The topic to change
    #[arg(value_name = "TOPIC")]
    topic: String,
    /// Set a config override, e.g. retention.ms=3600000; repeatable
    #[arg(short, long, value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Remove a config override, so the topic uses the default again; repeatable
    #[arg(short, long, value_name = "KEY")]
    delete: Vec<String>,
    /// Ask the broker to validate the change without making it
    #[arg(long)]
    dry_run: bool,
}

#[derive(Debug, Serialize)]
struct Change {
    config: String,
    /// `set` or `delete`.
    action: &'static str,
    value: Option<String>,
}

#[derive(Debug, Serialize)]
struct Altered {
    topic: String,
    dry_run: bool,
    changes: Vec<Change>,
}

pub async fn run(client: ClientOpts, args: AlterConfigArgs) -> anyhow::Result<()> {
    let set = args
        .set
        .iter()
        .map(|c| parse_config("--set", c))
        .collect::<anyhow::Result<Vec<_>>>()?;
    for key in &args.delete {
        if key.trim().is_empty() || key.contains('=') {
            bail!("invalid --delete '{key}': expected a config name");
        }
        // Kafka refuses a request naming a config twice (INVALID_REQUEST); say why here.
        if set.iter().any(|(k, _)| k == key) {
            bail!("config {key} is both set and deleted");
        }
    }
    let mut cluster = client.connect().await?;
    let conn = cluster.any();
    if conn.supports::<IncrementalAlterConfigsRequest>(0) {
        incremental(conn, &args, &set).await?;
    } else {
        replace(conn, &args, &set).await?;
    }
    let altered = Altered {
        topic: args.topic.clone(),
        dry_run: args.dry_run,
        changes: set
            .iter()
            .map(|(k, v)| Change {
                config: k.clone(),
                action: "set",
                value: Some(v.clone()),
            })
            .chain(args.delete.iter().map(|k| Change {
                config: k.clone(),
                action: "delete",
                value: None,
            }))
            .collect(),
    };
    match client.output {
        OutputFormat::Json => print_json(&altered),
        OutputFormat::Table => {
            let mut table = Table::new(&["TOPIC", "CONFIG", "ACTION", "VALUE"]);
            let action = |a: &str| {
                if altered.dry_run {
                    format!("{a} (dry run)")
                } else {
                    a.to_string()
                }
            };
            for c in &altered.changes {
                table.row(&[
                    altered.topic.clone(),
                    c.config.clone(),
                    action(c.action),
                    c.value.clone().unwrap_or_else(|| "-".into()),
                ]);
            }
            table.print()
        }
    }
}

async fn incremental(
    conn: &mut BrokerConnection,
    args: &AlterConfigArgs,
    set: &[(String, String)],
) -> anyhow::Result<()> {
    use incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig};
    let op = |name: &str, op: i8, value: Option<&str>| {
        AlterableConfig::default()
            .with_name(StrBytes::from_string(name.to_string()))
            .with_config_operation(op)
            .with_value(value.map(|v| StrBytes::from_string(v.to_string())))
    };
    let ops = set
        .iter()
        .map(|(k, v)| op(k, OP_SET, Some(v)))
        .chain(args.delete.iter().map(|k| op(k, OP_DELETE, None)))
        .collect();
    let request = IncrementalAlterConfigsRequest::default()
        .with_validate_only(args.dry_run)
        .with_resources(vec![
            AlterConfigsResource::default()
                .with_resource_type(TOPIC_RESOURCE)
                .with_resource_name(StrBytes::from_string(args.topic.clone()))
                .with_configs(ops),
        ]);
    let response = conn.call(&request).await?;
    for r in &response.responses {
        let message = r.error_message.as_ref().map(|m| m.as_str());
        topic_error("alter the configs of", &args.topic, r.error_code, message)?;
    }
    Ok(())
}

/// The AlterConfigs fallback: current overrides, with `set` applied and `--delete`
/// removed, replace all of the topic's overrides.
async fn replace(
    conn: &mut BrokerConnection,
    args: &AlterConfigArgs,
    set: &[(String, String)],
) -> anyhow::Result<()> {
    use alter_configs_request::{AlterConfigsResource, AlterableConfig};
    let current = configs::describe(conn, std::slice::from_ref(&args.topic)).await?;
    let mut overrides: BTreeMap<String, Option<String>> = current
        .into_values()
        .flatten()
        .filter(|c| c.source_code == DYNAMIC_TOPIC_CONFIG)
        .map(|c| (c.name, c.value))
        .collect();
    for key in &args.delete {
        overrides.remove(key);
    }
    for (k, v) in set {
        overrides.insert(k.clone(), Some(v.clone()));
    }
    if overrides.values().any(Option::is_none) {
        bail!(
            "topic {} has a sensitive config override this broker will not show, which \
             AlterConfigs would lose; it does not support IncrementalAlterConfigs",
            args.topic
        );
    }
    let request = AlterConfigsRequest::default()
        .with_validate_only(args.dry_run)
        .with_resources(vec![
            AlterConfigsResource::default()
                .with_resource_type(TOPIC_RESOURCE)
                .with_resource_name(StrBytes::from_string(args.topic.clone()))
                .with_configs(
                    overrides
                        .into_iter()
                        .map(|(k, v)| {
                            AlterableConfig::default()
                                .with_name(StrBytes::from_string(k))
                                .with_value(v.map(StrBytes::from_string))
                        })
                        .collect(),
                ),
        ]);
    let response = conn.call(&request).await?;
    for r in &response.responses {
        let message = r.error_message.as_ref().map(|m| m.as_str());
        topic_error("alter the configs of", &args.topic, r.error_code, message)?;
    }
    Ok(())
}
