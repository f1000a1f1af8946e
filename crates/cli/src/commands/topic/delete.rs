//! `strom topic delete`: DeleteTopics, after checking with Metadata that every named
//! topic exists, so a typo deletes nothing rather than the other topics of the list.

use anyhow::bail;
use clap::Args;
use kafka_protocol::messages::DeleteTopicsRequest;
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use serde::Serialize;

use super::{timeout_ms, topic_error, topic_name};
use crate::client::KafkaError;
use crate::commands::ClientOpts;
use crate::output::{OutputFormat, Table, print_json};

/// Arguments of `strom topic delete`.
#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// Topics to delete
    #[arg(required = true, value_name = "TOPIC")]
    topics: Vec<String>,
    /// Skip topics that do not exist instead of failing
    #[arg(long)]
    if_exists: bool,
}

#[derive(Debug, Serialize)]
struct Deleted {
    name: String,
    /// `deleted`, or `absent` for a topic skipped with --if-exists.
    status: &'static str,
}

pub async fn run(client: ClientOpts, args: DeleteArgs) -> anyhow::Result<()> {
    let mut cluster = client.connect().await?;
    let metadata = cluster.metadata(Some(&args.topics)).await?;
    let mut existing = Vec::new();
    let mut rows = Vec::new();
    for name in &args.topics {
        let found = metadata.topics.iter().find(|t| {
            t.name
                .as_ref()
                .is_some_and(|n| n.0.as_str() == name.as_str())
        });
        match found.map(|t| t.error_code) {
            Some(0) => existing.push(name.clone()),
            None | Some(KafkaError::UNKNOWN_TOPIC_OR_PARTITION) if args.if_exists => {
                rows.push(Deleted {
                    name: name.clone(),
                    status: "absent",
                })
            }
            None | Some(KafkaError::UNKNOWN_TOPIC_OR_PARTITION) => bail!("unknown topic: {name}"),
            Some(code) => topic_error("delete", name, code, None)?,
        }
    }
    existing.dedup();
    let mut failure = None;
    if !existing.is_empty() {
        let conn = cluster.any();
        let version = conn.version::<DeleteTopicsRequest>()?;
        let request = DeleteTopicsRequest::default().with_timeout_ms(timeout_ms(&client));
        // v6 names topics in `topics` (name or id); earlier versions in `topic_names`.
        let request = if version >= 6 {
            request.with_topics(
                existing
                    .iter()
                    .map(|n| DeleteTopicState::default().with_name(Some(topic_name(n))))
                    .collect(),
            )
        } else {
            request.with_topic_names(existing.iter().map(|n| topic_name(n)).collect())
        };
        let response = conn.call_at(&request, version).await?;
        for result in response.responses {
            let name = result.name.map(|n| n.0.to_string()).unwrap_or_default();
            let message = result.error_message.as_ref().map(|m| m.as_str());
            match topic_error("delete", &name, result.error_code, message) {
                Ok(()) => rows.push(Deleted {
                    name,
                    status: "deleted",
                }),
                // A topic deleted by someone else since the check is gone all the same.
                Err(_)
                    if result.error_code == KafkaError::UNKNOWN_TOPIC_OR_PARTITION
                        && args.if_exists =>
                {
                    rows.push(Deleted {
                        name,
                        status: "absent",
                    })
                }
                Err(e) => {
                    failure.get_or_insert(e);
                }
            }
        }
    }
    match client.output {
        OutputFormat::Json => print_json(&rows)?,
        OutputFormat::Table if !rows.is_empty() => {
            let mut table = Table::new(&["TOPIC", "STATUS"]);
            for r in &rows {
                table.row(&[r.name.as_str(), r.status]);
            }
            table.print()?;
        }
        OutputFormat::Table => {}
    }
    match failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
