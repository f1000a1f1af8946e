//! `strom cluster info`: the brokers, the controller and the cluster id, from Metadata.

use clap::{Args, Subcommand};
use serde::Serialize;

use super::{ClientOpts, block_on};
use crate::output::{OutputFormat, Table, print_json};

/// Arguments of `strom cluster`.
#[derive(Debug, Args)]
pub struct ClusterArgs {
    #[command(subcommand)]
    command: ClusterCommand,
    #[command(flatten)]
    client: ClientOpts,
}

#[derive(Debug, Subcommand)]
enum ClusterCommand {
    /// Show the cluster id, the controller and every broker.
    Info,
}

#[derive(Debug, Serialize)]
struct ClusterInfo {
    cluster_id: Option<String>,
    controller_id: i32,
    brokers: Vec<BrokerRow>,
}

#[derive(Debug, Serialize)]
struct BrokerRow {
    node_id: i32,
    host: String,
    port: i32,
    rack: Option<String>,
    controller: bool,
}

pub fn run(args: ClusterArgs) -> anyhow::Result<()> {
    match args.command {
        ClusterCommand::Info => block_on(info(args.client)),
    }
}

async fn info(client: ClientOpts) -> anyhow::Result<()> {
    let mut cluster = client.connect().await?;
    // An empty topic list asks for brokers only.
    cluster.metadata(Some(&[])).await?;
    let controller_id = cluster.controller_id();
    let info = ClusterInfo {
        cluster_id: cluster.cluster_id().map(str::to_string),
        controller_id,
        brokers: cluster
            .brokers()
            .values()
            .map(|b| BrokerRow {
                node_id: b.node_id,
                host: b.host.clone(),
                port: b.port,
                rack: b.rack.clone(),
                controller: b.node_id == controller_id,
            })
            .collect(),
    };
    match client.output {
        OutputFormat::Json => print_json(&info),
        OutputFormat::Table => {
            println!("CLUSTER ID:  {}", info.cluster_id.as_deref().unwrap_or("-"));
            println!("CONTROLLER:  {}", info.controller_id);
            println!();
            let mut table = Table::new(&["ID", "HOST", "PORT", "RACK", "CONTROLLER"]);
            for b in &info.brokers {
                table.row(&[
                    b.node_id.to_string(),
                    b.host.clone(),
                    b.port.to_string(),
                    b.rack.clone().unwrap_or_else(|| "-".into()),
                    if b.controller {
                        "yes".into()
                    } else {
                        String::new()
                    },
                ]);
            }
            table.print()
        }
    }
}
