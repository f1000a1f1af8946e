//! `strom topic list`: every topic from Metadata with its partition count and
//! replication factor; internal topics (`__consumer_offsets`) only when asked.

use clap::Args;
use serde::Serialize;

use crate::client::TopicInfo;
use crate::commands::ClientOpts;
use crate::output::{OutputFormat, Table, print_json};

/// Arguments of `strom topic list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Include internal topics such as __consumer_offsets
    #[arg(short, long)]
    internal: bool,
}

#[derive(Debug, Serialize)]
struct Listed {
    name: String,
    topic_id: String,
    partitions: usize,
    replication_factor: usize,
    internal: bool,
}

impl Listed {
    fn new(t: &TopicInfo) -> Listed {
        Listed {
            name: t.name.clone(),
            topic_id: t.topic_id_string(),
            partitions: t.partitions.len(),
            replication_factor: replication_factor(t),
            internal: t.internal,
        }
    }
}

/// The replica count of the topic's partitions: Kafka keeps it equal across them, and
/// a partition being reassigned lists its new replicas as well, so the smallest.
pub fn replication_factor(t: &TopicInfo) -> usize {
    t.partitions
        .iter()
        .map(|p| p.replicas.len())
        .min()
        .unwrap_or(0)
}

pub async fn run(client: ClientOpts, args: ListArgs) -> anyhow::Result<()> {
    let mut cluster = client.connect().await?;
    let topics: Vec<Listed> = cluster
        .topics(None)
        .await?
        .iter()
        .filter(|t| args.internal || !t.internal)
        .map(Listed::new)
        .collect();
    match client.output {
        OutputFormat::Json => print_json(&topics),
        OutputFormat::Table => {
            let mut table = Table::new(&["NAME", "PARTITIONS", "REPLICAS"]);
            for t in &topics {
                table.row(&[
                    t.name.clone(),
                    t.partitions.to_string(),
                    t.replication_factor.to_string(),
                ]);
            }
            table.print()
        }
    }
}
