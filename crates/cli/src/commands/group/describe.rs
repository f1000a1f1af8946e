//! `strom group describe`: a group's state and members (DescribeGroups, with the
//! consumer protocol assignments decoded), its committed offsets (OffsetFetch) and the
//! log end offsets (ListOffsets), as a per-partition lag table like
//! `kafka-consumer-groups --describe`.
//!
//! The group lookups here are also what `reset-offsets` builds on.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use anyhow::Context;
use clap::Args;
use kafka_protocol::messages::{DescribeGroupsRequest, GroupId};
use kafka_protocol::protocol::StrBytes;
use serde::Serialize;

use super::{call_coordinator, or_dash, partition_leaders, unknown_group};
use crate::client::consumer_protocol::{PROTOCOL_TYPE, decode_assignment};
use crate::client::{Cluster, KafkaError, OffsetSpec, list_offsets, offset_fetch};
use crate::commands::ClientOpts;
use crate::output::{OutputFormat, Table, print_json};

/// Arguments of `strom group describe`.
#[derive(Debug, Args)]
pub struct DescribeArgs {
    /// The group to describe
    group: String,
}

/// One member of a group, as DescribeGroups reports it.
#[derive(Debug, Clone, Serialize)]
pub(super) struct Member {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    /// Decoded from the consumer protocol; empty for other protocol types and while
    /// the group is rebalancing (brokers only send assignments of Stable groups).
    pub assignment: Vec<Assigned>,
}

#[derive(Debug, Clone, Serialize)]
pub(super) struct Assigned {
    pub topic: String,
    pub partitions: Vec<i32>,
}

/// A group's membership as DescribeGroups reports it.
#[derive(Debug, Clone)]
pub(super) struct GroupMembership {
    pub state: String,
    pub protocol_type: String,
    /// The assignor chosen for the current generation (e.g. "range").
    pub protocol: String,
    pub members: Vec<Member>,
    /// False when the coordinator does not know the group: GROUP_ID_NOT_FOUND
    /// (DescribeGroups v6+) or, before v6, state Dead with no members.
    pub found: bool,
}

/// DescribeGroups for one group at its coordinator.
pub(super) async fn describe_group(
    cluster: &mut Cluster,
    group: &str,
) -> anyhow::Result<GroupMembership> {
    let response = call_coordinator(
        cluster,
        group,
        |_| {
            DescribeGroupsRequest::default()
                .with_groups(vec![GroupId(StrBytes::from_string(group.to_string()))])
        },
        |r| r.groups.first().map_or(0, |g| g.error_code),
    )
    .await?;
    let described = response
        .groups
        .into_iter()
        .next()
        .with_context(|| format!("DescribeGroups answered nothing for group {group}"))?;
    if described.error_code == KafkaError::GROUP_ID_NOT_FOUND {
        return Ok(GroupMembership {
            state: "Dead".to_string(),
            protocol_type: String::new(),
            protocol: String::new(),
            members: Vec::new(),
            found: false,
        });
    }
    KafkaError::check(
        described.error_code,
        described.error_message.as_ref().map(|m| m.as_str()),
    )
    .with_context(|| format!("cannot describe group {group}"))?;
    let protocol_type = described.protocol_type.to_string();
    let members: Vec<Member> = described
        .members
        .into_iter()
        .map(|m| Member {
            member_id: m.member_id.to_string(),
            group_instance_id: m.group_instance_id.map(|i| i.to_string()),
            client_id: m.client_id.to_string(),
            client_host: m.client_host.to_string(),
            // An assignment that does not decode (a client's bug) should not hide the
            // rest of the group: that member is shown without partitions.
            assignment: if protocol_type == PROTOCOL_TYPE {
                decode_assignment(&m.member_assignment)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(topic, mut partitions)| {
                        partitions.sort_unstable();
                        Assigned { topic, partitions }
                    })
                    .collect()
            } else {
                Vec::new()
            },
        })
        .collect();
    let state = described.group_state.to_string();
    Ok(GroupMembership {
        found: !(state == "Dead" && members.is_empty()),
        state,
        protocol_type,
        protocol: described.protocol_data.to_string(),
        members,
    })
}

/// The group's committed offsets, (topic, partition) → offset; partitions without a
/// committed offset are absent. An unknown group has none.
pub(super) async fn committed_offsets(
    cluster: &mut Cluster,
    group: &str,
) -> anyhow::Result<BTreeMap<(String, i32), i64>> {
    // `topics` null asks for every partition with an offset (v2+).
    let response = call_coordinator(
        cluster,
        group,
        |version| offset_fetch::request(group, version, None),
        offset_fetch::group_error,
    )
    .await?;
    let (error_code, entries) = offset_fetch::rows(response);
    if error_code == KafkaError::GROUP_ID_NOT_FOUND {
        return Ok(BTreeMap::new());
    }
    KafkaError::check(error_code, None)
        .with_context(|| format!("cannot fetch the committed offsets of group {group}"))?;
    let mut offsets = BTreeMap::new();
    for (topic, partition, offset, code) in entries {
        KafkaError::check(code, None).with_context(|| {
            format!("cannot fetch group {group}'s committed offset of {topic}-{partition}")
        })?;
        // -1: no offset committed for this partition.
        if offset >= 0 {
            offsets.insert((topic, partition), offset);
        }
    }
    Ok(offsets)
}

/// Log end offsets (high watermarks) of `partitions`; partitions of topics that no
/// longer exist, or without a leader to ask, are absent.
pub(super) async fn log_end_offsets(
    cluster: &mut Cluster,
    partitions: &BTreeSet<(String, i32)>,
) -> anyhow::Result<BTreeMap<(String, i32), i64>> {
    let topics: Vec<String> = partitions
        .iter()
        .map(|(t, _)| t.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let leaders = partition_leaders(cluster, &topics).await?;
    let leaders: HashMap<(String, i32), i32> = leaders
        .into_iter()
        .flat_map(|(t, parts)| parts.into_iter().map(move |(p, l)| ((t.clone(), p), l)))
        .filter(|&(_, leader)| leader >= 0)
        .collect();
    let asked: Vec<(String, i32)> = partitions
        .iter()
        .filter(|tp| leaders.contains_key(*tp))
        .cloned()
        .collect();
    if asked.is_empty() {
        return Ok(BTreeMap::new());
    }
    let listed = list_offsets(cluster, &asked, &leaders, OffsetSpec::Latest).await?;
    Ok(listed.into_iter().map(|(tp, o)| (tp, o.offset)).collect())
}

#[derive(Debug, Serialize)]
struct Description {
    group: String,
    coordinator: Coordinator,
    state: String,
    protocol_type: String,
    protocol: String,
    members: Vec<Member>,
    partitions: Vec<PartitionRow>,
}

#[derive(Debug, Serialize)]
struct Coordinator {
    node_id: i32,
    host: String,
    port: i32,
}

/// One line of the lag table; `None` is printed as "-".
#[derive(Debug, Serialize)]
struct PartitionRow {
    topic: String,
    partition: i32,
    current_offset: Option<i64>,
    log_end_offset: Option<i64>,
    lag: Option<i64>,
    consumer_id: Option<String>,
    host: Option<String>,
    client_id: Option<String>,
}

pub async fn run(client: ClientOpts, args: DescribeArgs) -> anyhow::Result<()> {
    let group = args.group;
    let mut cluster = client.connect().await?;
    let membership = describe_group(&mut cluster, &group).await?;
    let committed = committed_offsets(&mut cluster, &group).await?;
    if !membership.found && committed.is_empty() {
        return Err(unknown_group(&group));
    }
    let node = cluster.find_coordinator(&group).await?;
    let coordinator = match cluster.brokers().get(&node) {
        Some(b) => Coordinator {
            node_id: node,
            host: b.host.clone(),
            port: b.port,
        },
        None => Coordinator {
            node_id: node,
            host: String::new(),
            port: -1,
        },
    };

    let mut owners: BTreeMap<(String, i32), &Member> = BTreeMap::new();
    for m in &membership.members {
        for a in &m.assignment {
            for &p in &a.partitions {
                owners.insert((a.topic.clone(), p), m);
            }
        }
    }
    let partitions: BTreeSet<(String, i32)> =
        committed.keys().chain(owners.keys()).cloned().collect();
    let log_end = log_end_offsets(&mut cluster, &partitions).await?;
    let rows: Vec<PartitionRow> = partitions
        .into_iter()
        .map(|tp| {
            let current = committed.get(&tp).copied();
            let end = log_end.get(&tp).copied();
            let owner = owners.get(&tp);
            PartitionRow {
                lag: current.zip(end).map(|(c, e)| e - c),
                current_offset: current,
                log_end_offset: end,
                consumer_id: owner.map(|m| m.member_id.clone()),
                host: owner.map(|m| m.client_host.clone()),
                client_id: owner.map(|m| m.client_id.clone()),
                topic: tp.0,
                partition: tp.1,
            }
        })
        .collect();
    let description = Description {
        group,
        coordinator,
        state: membership.state,
        protocol_type: membership.protocol_type,
        protocol: membership.protocol,
        members: membership.members,
        partitions: rows,
    };
    match client.output {
        OutputFormat::Json => print_json(&description),
        OutputFormat::Table => print_table(&description),
    }
}

fn print_table(d: &Description) -> anyhow::Result<()> {
    let dash = |v: Option<i64>| v.map_or_else(|| "-".to_string(), |v| v.to_string());
    let text = |v: &Option<String>| v.as_deref().map_or_else(|| "-".to_string(), or_dash);
    let protocol = match (d.protocol_type.as_str(), d.protocol.as_str()) {
        ("", "") => "-".to_string(),
        (t, "") => t.to_string(),
        (t, p) => format!("{}/{p}", or_dash(t)),
    };
    let coordinator = if d.coordinator.host.is_empty() {
        d.coordinator.node_id.to_string()
    } else {
        format!(
            "{} ({}:{})",
            d.coordinator.node_id, d.coordinator.host, d.coordinator.port
        )
    };
    let mut out = String::new();
    out.push_str(&format!("GROUP:        {}\n", d.group));
    out.push_str(&format!("COORDINATOR:  {coordinator}\n"));
    out.push_str(&format!("STATE:        {}\n", d.state));
    out.push_str(&format!("PROTOCOL:     {protocol}\n"));
    out.push_str(&format!("MEMBERS:      {}\n", d.members.len()));

    let mut offsets = Table::new(&[
        "TOPIC",
        "PARTITION",
        "CURRENT-OFFSET",
        "LOG-END-OFFSET",
        "LAG",
        "CONSUMER-ID",
        "HOST",
        "CLIENT-ID",
    ]);
    for r in &d.partitions {
        offsets.row(&[
            r.topic.clone(),
            r.partition.to_string(),
            dash(r.current_offset),
            dash(r.log_end_offset),
            dash(r.lag),
            text(&r.consumer_id),
            text(&r.host),
            text(&r.client_id),
        ]);
    }
    out.push('\n');
    out.push_str(&offsets.render());

    if !d.members.is_empty() {
        let mut members = Table::new(&[
            "CONSUMER-ID",
            "HOST",
            "CLIENT-ID",
            "INSTANCE-ID",
            "ASSIGNMENT",
        ]);
        for m in &d.members {
            let assignment: Vec<String> = m
                .assignment
                .iter()
                .map(|a| {
                    let parts: Vec<String> = a.partitions.iter().map(i32::to_string).collect();
                    format!("{}:{}", a.topic, parts.join(","))
                })
                .collect();
            members.row(&[
                m.member_id.clone(),
                or_dash(&m.client_host),
                or_dash(&m.client_id),
                or_dash(m.group_instance_id.as_deref().unwrap_or("")),
                or_dash(&assignment.join(" ")),
            ]);
        }
        out.push('\n');
        out.push_str(&members.render());
    }
    crate::output::write_stdout(out.as_bytes())
}
