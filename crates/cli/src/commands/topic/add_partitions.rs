//! `strom topic add-partitions`: CreatePartitions, given either the new total
//! (`--total`, like `kafka-topics --alter --partitions`) or how many to add (`--add`,
//! like `rpk topic add-partitions --num`). Existing records are not moved: keys map
//! to other partitions afterwards.

use clap::{ArgGroup, Args};
use kafka_protocol::messages::CreatePartitionsRequest;
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use serde::Serialize;

use super::{timeout_ms, topic_error, topic_name};
use crate::commands::ClientOpts;
use crate::output::{OutputFormat, Table, print_json};

/// Arguments of `strom topic add-partitions`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("count").required(true).args(["total", "add"])))]
pub struct AddPartitionsArgs {
    /// The topic to grow
    #[arg(value_name = "TOPIC")]
    topic: String,
    /// The partition count the topic should have afterwards
    #[arg(short, long, value_name = "N")]
    total: Option<i32>,
    /// How many partitions to add to the current count
    #[arg(short, long, value_name = "N")]
    add: Option<i32>,
    /// Ask the broker to validate the change without making it
    #[arg(long)]
    dry_run: bool,
}

#[derive(Debug, Serialize)]
struct Grown {
    topic: String,
    previous: usize,
    partitions: i32,
    dry_run: bool,
}

pub async fn run(client: ClientOpts, args: AddPartitionsArgs) -> anyhow::Result<()> {
    let mut cluster = client.connect().await?;
    // Fails with `unknown topic: NAME`; the current count is needed for --add and to
    // show what changed.
    let previous = cluster.topic(&args.topic).await?.partitions.len();
    let current = i32::try_from(previous).unwrap_or(i32::MAX);
    let total = match (args.total, args.add) {
        (Some(total), _) => total,
        (None, Some(add)) if add > 0 => current.saturating_add(add),
        (None, add) => anyhow::bail!("--add must be at least 1, got {}", add.unwrap_or(0)),
    };
    // The broker's INVALID_PARTITIONS message says the same, but names no flag.
    if total <= current {
        anyhow::bail!(
            "topic {} already has {current} partitions; --total must be more than that",
            args.topic
        );
    }
    let request = CreatePartitionsRequest::default()
        .with_timeout_ms(timeout_ms(&client))
        .with_validate_only(args.dry_run)
        .with_topics(vec![
            CreatePartitionsTopic::default()
                .with_name(topic_name(&args.topic))
                .with_count(total)
                .with_assignments(None),
        ]);
    let response = cluster.any().call(&request).await?;
    for result in &response.results {
        let message = result.error_message.as_ref().map(|m| m.as_str());
        topic_error(
            "add partitions to",
            &result.name.0,
            result.error_code,
            message,
        )?;
    }
    let grown = Grown {
        topic: args.topic,
        previous,
        partitions: total,
        dry_run: args.dry_run,
    };
    match client.output {
        OutputFormat::Json => print_json(&grown),
        OutputFormat::Table => {
            let mut table = Table::new(&["TOPIC", "PREVIOUS", "PARTITIONS", "STATUS"]);
            table.row(&[
                grown.topic.clone(),
                grown.previous.to_string(),
                grown.partitions.to_string(),
                if grown.dry_run { "valid" } else { "added" }.to_string(),
            ]);
            table.print()
        }
    }
}
