//! `strom group list`: ListGroups sent to every broker in the metadata, since each broker
//! lists only the groups it coordinates.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use kafka_protocol::messages::ListGroupsRequest;
use kafka_protocol::protocol::StrBytes;
use serde::Serialize;

use super::or_dash;
use crate::client::KafkaError;
use crate::commands::ClientOpts;
use crate::output::{OutputFormat, Table, print_json};

/// Group states a broker may report: the classic protocol's, then KIP-848's.
const STATES: &[&str] = &[
    "PreparingRebalance",
    "CompletingRebalance",
    "Stable",
    "Dead",
    "Empty",
    "Assigning",
    "Reconciling",
    "NotReady",
];

/// Arguments of `strom group list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only groups in these states (case-insensitive; comma-separated or repeated):
    /// Stable, Empty, PreparingRebalance, CompletingRebalance, Dead
    #[arg(long, value_delimiter = ',', value_name = "STATE")]
    state: Vec<String>,
}

#[derive(Debug, Serialize)]
struct GroupRow {
    group: String,
    /// Empty when the broker is too old to say (ListGroups before v4).
    state: String,
    /// "consumer" for consumer groups; empty for groups that only hold offsets
    /// committed without group membership.
    protocol_type: String,
    coordinator: i32,
}

pub async fn run(client: ClientOpts, args: ListArgs) -> anyhow::Result<()> {
    let states = args
        .state
        .iter()
        .map(|s| canonical_state(s))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut cluster = client.connect().await?;
    cluster.metadata(Some(&[])).await?;
    let nodes: Vec<i32> = cluster.brokers().keys().copied().collect();
    let timeouts = cluster.timeouts();
    let mut rows = Vec::new();
    for node in nodes {
        let conn = cluster.broker(node).await?;
        let version = conn.version::<ListGroupsRequest>()?;
        if !states.is_empty() && version < 4 {
            bail!("broker {node} cannot filter groups by state (ListGroups v{version})");
        }
        let request = ListGroupsRequest::default().with_states_filter(
            states
                .iter()
                .map(|s| StrBytes::from_static_str(s))
                .collect(),
        );
        let deadline = Instant::now() + timeouts.request;
        let response = loop {
            let response = conn.call_at(&request, version).await?;
            // A broker that just started answers COORDINATOR_LOAD_IN_PROGRESS until it has
            // read its offsets partitions; that is worth waiting for.
            let retry = KafkaError::new(response.error_code).is_retriable();
            if response.error_code == 0 || !retry || Instant::now() >= deadline {
                break response;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        KafkaError::check(response.error_code, None)
            .with_context(|| format!("broker {node} cannot list groups"))?;
        rows.extend(response.groups.into_iter().map(|g| GroupRow {
            group: g.group_id.0.to_string(),
            state: g.group_state.to_string(),
            protocol_type: g.protocol_type.to_string(),
            coordinator: node,
        }));
    }
    rows.sort_by(|a, b| a.group.cmp(&b.group));
    match client.output {
        OutputFormat::Json => print_json(&rows),
        OutputFormat::Table => {
            let mut table = Table::new(&["GROUP", "STATE", "PROTOCOL-TYPE", "COORDINATOR"]);
            for r in &rows {
                table.row(&[
                    r.group.clone(),
                    or_dash(&r.state),
                    or_dash(&r.protocol_type),
                    r.coordinator.to_string(),
                ]);
            }
            table.print()
        }
    }
}

/// The broker's spelling of a state named in any case, so that brokers that compare
/// states case-sensitively match too.
fn canonical_state(state: &str) -> anyhow::Result<&'static str> {
    STATES
        .iter()
        .copied()
        .find(|s| s.eq_ignore_ascii_case(state.trim()))
        .ok_or_else(|| {
            anyhow::anyhow!(
                "unknown group state {state:?} (one of {})",
                STATES.join(", ")
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_are_matched_in_any_case() {
        assert_eq!(canonical_state("stable").unwrap(), "Stable");
        assert_eq!(
            canonical_state("PREPARINGREBALANCE").unwrap(),
            "PreparingRebalance"
        );
        assert!(canonical_state("running").is_err());
    }
}
