//! `strom group`: consumer groups as the group coordinator sees them — list them,
//! describe one with its committed offsets and lag, reset its committed offsets, delete
//! groups. Like `kafka-consumer-groups`, everything goes through the classic group
//! APIs (ListGroups, DescribeGroups, OffsetFetch, OffsetCommit, DeleteGroups), so the
//! commands work against Strom and against any Kafka broker.

mod delete;
mod describe;
mod list;
mod reset;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::anyhow;
use clap::{Args, Subcommand};
use kafka_protocol::protocol::Request;

use super::{ClientOpts, block_on};
use crate::client::{Cluster, KafkaError};

/// Arguments of `strom group`.
#[derive(Debug, Args)]
pub struct GroupArgs {
    #[command(subcommand)]
    command: GroupCommand,
    #[command(flatten)]
    client: ClientOpts,
}

#[derive(Debug, Subcommand)]
enum GroupCommand {
    /// List consumer groups, asking every broker (each lists the groups it coordinates).
    List(list::ListArgs),
    /// Show a group's state, members, committed offsets and lag per partition.
    Describe(describe::DescribeArgs),
    /// Move a group's committed offsets; prints the plan only, unless --execute.
    ResetOffsets(reset::ResetArgs),
    /// Delete groups that have no active members, with their committed offsets.
    Delete(delete::DeleteArgs),
}

pub fn run(args: GroupArgs) -> anyhow::Result<()> {
    let client = args.client;
    match args.command {
        GroupCommand::List(a) => block_on(list::run(client, a)),
        GroupCommand::Describe(a) => block_on(describe::run(client, a)),
        GroupCommand::ResetOffsets(a) => block_on(reset::run(client, a)),
        GroupCommand::Delete(a) => block_on(delete::run(client, a)),
    }
}

/// The error for a group the coordinator does not know.
fn unknown_group(group: &str) -> anyhow::Error {
    anyhow!("unknown group: {group}")
}

/// Sends a request about `group` to its coordinator: `build` makes the request for the
/// negotiated version, `error_code` picks the group-level error out of the response.
/// While the coordinator moves or is loading the group's offsets partition (a retriable
/// error), finds it again and retries, up to the request timeout; any other error code
/// is left in the response for the caller to judge.
async fn call_coordinator<R: Request>(
    cluster: &mut Cluster,
    group: &str,
    build: impl Fn(i16) -> R,
    error_code: impl Fn(&R::Response) -> i16,
) -> anyhow::Result<R::Response> {
    let deadline = Instant::now() + cluster.timeouts().request;
    loop {
        let conn = cluster.coordinator(group).await?;
        let version = conn.version::<R>()?;
        let response = conn.call_at(&build(version), version).await?;
        let code = error_code(&response);
        if code != 0 && KafkaError::new(code).is_retriable() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        return Ok(response);
    }
}

/// Partition → leader (-1 for none) of each of `topics` that exists. A topic missing
/// from the metadata is left out rather than failing: a group can hold offsets of a
/// topic deleted since, and describing that group must still work.
async fn partition_leaders(
    cluster: &mut Cluster,
    topics: &[String],
) -> anyhow::Result<BTreeMap<String, BTreeMap<i32, i32>>> {
    if topics.is_empty() {
        return Ok(BTreeMap::new());
    }
    let response = cluster.metadata(Some(topics)).await?;
    let mut out = BTreeMap::new();
    for topic in response.topics {
        let Some(name) = topic.name else { continue };
        if topic.error_code != 0 {
            continue;
        }
        let partitions = topic
            .partitions
            .iter()
            .map(|p| (p.partition_index, p.leader_id.0))
            .collect();
        out.insert(name.0.to_string(), partitions);
    }
    Ok(out)
}

/// `-` for an empty cell, so that table columns stay aligned for `awk` and friends.
fn or_dash(s: &str) -> String {
    if s.is_empty() {
        "-".to_string()
    } else {
        s.to_string()
    }
}
