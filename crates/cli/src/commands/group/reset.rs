//! `strom group reset-offsets`: moves a group's committed offsets, as
//! `kafka-consumer-groups --reset-offsets` does. The new offsets are computed from
//! ListOffsets and the current commits (OffsetFetch), then committed with OffsetCommit
//! as an admin: generation -1 and no member id, which a coordinator only accepts while
//! the group has no members. Without `--execute` it only prints the plan.
//!
//! `--to-datetime` takes RFC 3339 (`2024-05-01T12:00:00Z`,
//! `2024-05-01T14:00:00.250+02:00`) or a date-time without offset
//! (`2024-05-01T12:00:00[.sss]`, or just `2024-05-01`), read in the local time zone
//! (`TZ`), as Kafka's tool does.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use anyhow::{Context, anyhow, bail};
use clap::{ArgGroup, Args};
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::{GroupId, OffsetCommitRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use serde::Serialize;

use super::call_coordinator;
use super::describe::{committed_offsets, describe_group};
use super::partition_leaders;
use crate::client::{Cluster, KafkaError, OffsetSpec, list_offsets};
use crate::commands::ClientOpts;
use crate::output::{OutputFormat, Table, print_json, write_stdout};

/// Arguments of `strom group reset-offsets`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("scope").required(true).args(["topic", "all_topics"])))]
#[command(group(
    ArgGroup::new("target")
        .required(true)
        .args(["to_earliest", "to_latest", "to_offset", "to_datetime", "shift_by"])
))]
pub struct ResetArgs {
    /// The group whose offsets to reset
    group: String,

    /// A topic to reset, all its partitions or only some: `orders` or `orders:0,2`
    /// (repeatable)
    #[arg(long, value_name = "TOPIC[:PARTITIONS]")]
    topic: Vec<String>,

    /// Every partition the group has committed offsets for
    #[arg(long)]
    all_topics: bool,

    /// To the log start offset
    #[arg(long)]
    to_earliest: bool,

    /// To the log end offset (nothing left to consume)
    #[arg(long)]
    to_latest: bool,

    /// To this offset, clamped to the partition's log start and end
    #[arg(long, value_name = "OFFSET", allow_negative_numbers = true)]
    to_offset: Option<i64>,

    /// To the first record at or after this time (the log end when there is none):
    /// RFC 3339, or YYYY-MM-DDTHH:MM:SS[.sss] in the local time zone
    #[arg(long, value_name = "DATETIME")]
    to_datetime: Option<String>,

    /// By N from the committed offset (negative: back), clamped to the log start and end
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    shift_by: Option<i64>,

    /// Commit the new offsets (without it, only the plan is printed)
    #[arg(long, conflicts_with = "dry_run")]
    execute: bool,

    /// Only print the plan (the default)
    #[arg(long)]
    dry_run: bool,
}

/// Where the offsets go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Earliest,
    Latest,
    Offset(i64),
    /// Milliseconds since the epoch.
    Datetime(i64),
    ShiftBy(i64),
}

impl Target {
    fn from_args(args: &ResetArgs) -> anyhow::Result<Target> {
        Ok(if args.to_earliest {
            Target::Earliest
        } else if args.to_latest {
            Target::Latest
        } else if let Some(offset) = args.to_offset {
            Target::Offset(offset)
        } else if let Some(datetime) = &args.to_datetime {
            Target::Datetime(parse_datetime(datetime)?)
        } else if let Some(n) = args.shift_by {
            Target::ShiftBy(n)
        } else {
            // clap's "target" group requires one of the above.
            bail!("give one of --to-earliest, --to-latest, --to-offset, --to-datetime, --shift-by")
        })
    }
}

/// One partition of the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct Planned {
    topic: String,
    partition: i32,
    /// The committed offset now; `None` when there is none.
    current: Option<i64>,
    new: i64,
}

#[derive(Debug, Serialize)]
struct Plan {
    group: String,
    executed: bool,
    partitions: Vec<Planned>,
}

pub async fn run(client: ClientOpts, args: ResetArgs) -> anyhow::Result<()> {
    let target = Target::from_args(&args)?;
    let topics = args
        .topic
        .iter()
        .map(|s| parse_topic(s))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let group = args.group.as_str();
    let mut cluster = client.connect().await?;

    let membership = describe_group(&mut cluster, group).await?;
    if !membership.members.is_empty() {
        // The coordinator would refuse the commit anyway (UNKNOWN_MEMBER_ID); and a plan
        // made while consumers commit is stale before it is printed.
        let n = membership.members.len();
        bail!(
            "group {group} has {n} active member{} (state {}): offsets can only be reset \
             while the group is inactive; stop its consumers first",
            if n == 1 { "" } else { "s" },
            membership.state
        );
    }
    let committed = committed_offsets(&mut cluster, group).await?;
    let (partitions, leaders) = select(&mut cluster, group, &topics, &committed).await?;

    let earliest = list_offsets(&mut cluster, &partitions, &leaders, OffsetSpec::Earliest).await?;
    let latest = list_offsets(&mut cluster, &partitions, &leaders, OffsetSpec::Latest).await?;
    let by_time = match target {
        Target::Datetime(ms) => Some(
            list_offsets(
                &mut cluster,
                &partitions,
                &leaders,
                OffsetSpec::Timestamp(ms),
            )
            .await?,
        ),
        _ => None,
    };
    let mut plan = Vec::with_capacity(partitions.len());
    for tp in &partitions {
        let offset_of = |map: &BTreeMap<(String, i32), crate::client::ListedOffset>| {
            map.get(tp)
                .map(|o| o.offset)
                .ok_or_else(|| anyhow!("ListOffsets did not answer for {}-{}", tp.0, tp.1))
        };
        let range = (offset_of(&earliest)?, offset_of(&latest)?);
        let at_time = by_time.as_ref().map(offset_of).transpose()?;
        let current = committed.get(tp).copied();
        let new = new_offset(target, current, range, at_time)
            .with_context(|| format!("cannot shift {}-{}", tp.0, tp.1))?;
        plan.push(Planned {
            topic: tp.0.clone(),
            partition: tp.1,
            current,
            new,
        });
    }

    if args.execute {
        commit(&mut cluster, group, &plan).await?;
    }
    let plan = Plan {
        group: group.to_string(),
        executed: args.execute,
        partitions: plan,
    };
    match client.output {
        OutputFormat::Json => print_json(&plan),
        OutputFormat::Table => {
            let mut table = Table::new(&["TOPIC", "PARTITION", "CURRENT", "NEW"]);
            for p in &plan.partitions {
                table.row(&[
                    p.topic.clone(),
                    p.partition.to_string(),
                    p.current.map_or_else(|| "-".to_string(), |c| c.to_string()),
                    p.new.to_string(),
                ]);
            }
            let mut out = table.render();
            out.push('\n');
            if plan.executed {
                out.push_str(&format!("Committed the new offsets of group {group}.\n"));
            } else {
                out.push_str("Dry run: nothing was committed. Run again with --execute to commit these offsets.\n");
            }
            write_stdout(out.as_bytes())
        }
    }
}

/// `orders` → all partitions; `orders:0,2` → those.
fn parse_topic(spec: &str) -> anyhow::Result<(String, Option<Vec<i32>>)> {
    // Kafka topic names cannot contain ':', so the first one splits.
    let Some((topic, list)) = spec.split_once(':') else {
        if spec.is_empty() {
            bail!("--topic needs a topic name");
        }
        return Ok((spec.to_string(), None));
    };
    if topic.is_empty() {
        bail!("--topic {spec}: no topic name before ':'");
    }
    let partitions = list
        .split(',')
        .map(|p| {
            p.trim()
                .parse::<i32>()
                .ok()
                .filter(|&p| p >= 0)
                .ok_or_else(|| anyhow!("--topic {spec}: {p:?} is not a partition number"))
        })
        .collect::<anyhow::Result<Vec<i32>>>()?;
    Ok((topic.to_string(), Some(partitions)))
}

/// A `--to-datetime` value as milliseconds since the epoch; see the module docs.
fn parse_datetime(s: &str) -> anyhow::Result<i64> {
    if let Ok(ts) = s.parse::<jiff::Timestamp>() {
        return Ok(ts.as_millisecond());
    }
    let civil: jiff::civil::DateTime = s.parse().map_err(|_| {
        anyhow!(
            "--to-datetime {s:?}: expected RFC 3339 (2024-05-01T12:00:00Z) or \
             YYYY-MM-DDTHH:MM:SS[.sss] in the local time zone"
        )
    })?;
    let zoned = civil
        .to_zoned(jiff::tz::TimeZone::system())
        .with_context(|| format!("--to-datetime {s:?} in the local time zone"))?;
    Ok(zoned.timestamp().as_millisecond())
}

/// The partitions to reset, sorted, with their leaders: those named by `--topic`, or
/// with `--all-topics` those the group has offsets for (of topics that still exist).
async fn select(
    cluster: &mut Cluster,
    group: &str,
    topics: &[(String, Option<Vec<i32>>)],
    committed: &BTreeMap<(String, i32), i64>,
) -> anyhow::Result<(Vec<(String, i32)>, HashMap<(String, i32), i32>)> {
    let names: Vec<String> = if topics.is_empty() {
        committed
            .keys()
            .map(|(t, _)| t.clone())
            .collect::<BTreeSet<_>>()
    } else {
        topics
            .iter()
            .map(|(t, _)| t.clone())
            .collect::<BTreeSet<_>>()
    }
    .into_iter()
    .collect();
    let metadata = partition_leaders(cluster, &names).await?;
    let mut selected = BTreeSet::new();
    if topics.is_empty() {
        selected.extend(
            committed
                .keys()
                .filter(|(t, p)| metadata.get(t).is_some_and(|parts| parts.contains_key(p)))
                .cloned(),
        );
        if selected.is_empty() {
            bail!(
                "group {group} has no committed offsets (of existing topics); name partitions with --topic"
            );
        }
    }
    for (topic, partitions) in topics {
        let known = metadata
            .get(topic)
            .ok_or_else(|| anyhow!("unknown topic: {topic}"))?;
        match partitions {
            None => selected.extend(known.keys().map(|&p| (topic.clone(), p))),
            Some(list) => {
                for &p in list {
                    if !known.contains_key(&p) {
                        bail!(
                            "unknown partition: {topic}-{p} (the topic has {})",
                            known.len()
                        );
                    }
                    selected.insert((topic.clone(), p));
                }
            }
        }
    }
    let leaders = selected
        .iter()
        .map(|(t, p)| {
            let leader = metadata
                .get(t)
                .and_then(|m| m.get(p))
                .copied()
                .unwrap_or(-1);
            ((t.clone(), *p), leader)
        })
        .collect();
    Ok((selected.into_iter().collect(), leaders))
}

/// The new offset of one partition. `range` is (log start, log end); `at_time` the
/// ListOffsets answer for a `--to-datetime` (-1: no record that late). Like Kafka's
/// tool, every target is clamped into the range.
fn new_offset(
    target: Target,
    current: Option<i64>,
    range: (i64, i64),
    at_time: Option<i64>,
) -> anyhow::Result<i64> {
    let (start, end) = range;
    let wanted = match target {
        Target::Earliest => start,
        Target::Latest => end,
        Target::Offset(o) => o,
        Target::Datetime(_) => match at_time {
            Some(o) if o >= 0 => o,
            _ => end,
        },
        Target::ShiftBy(n) => {
            let current = current.ok_or_else(|| anyhow!("the group has no committed offset"))?;
            current.saturating_add(n)
        }
    };
    // Not `clamp`: it panics if a broker ever answers a start after the end.
    Ok(wanted.min(end).max(start))
}

/// Commits `plan` as an admin (generation -1, no member id).
async fn commit(cluster: &mut Cluster, group: &str, plan: &[Planned]) -> anyhow::Result<()> {
    let mut by_topic: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
    for p in plan {
        by_topic.entry(&p.topic).or_default().push(
            OffsetCommitRequestPartition::default()
                .with_partition_index(p.partition)
                .with_committed_offset(p.new)
                .with_committed_leader_epoch(-1)
                .with_committed_metadata(Some(StrBytes::from_static_str(""))),
        );
    }
    let topics: Vec<OffsetCommitRequestTopic> = by_topic
        .into_iter()
        .map(|(topic, partitions)| {
            OffsetCommitRequestTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partitions(partitions)
        })
        .collect();
    let request = OffsetCommitRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
        .with_generation_id_or_member_epoch(-1)
        .with_member_id(StrBytes::from_static_str(""))
        .with_group_instance_id(None)
        .with_retention_time_ms(-1)
        .with_topics(topics);
    let response = call_coordinator(
        cluster,
        group,
        |_| request.clone(),
        |r| {
            r.topics
                .iter()
                .flat_map(|t| &t.partitions)
                .map(|p| p.error_code)
                .find(|&c| c != 0)
                .unwrap_or(0)
        },
    )
    .await?;
    let mut errors = Vec::new();
    for t in &response.topics {
        for p in &t.partitions {
            match p.error_code {
                0 => {}
                KafkaError::UNKNOWN_MEMBER_ID
                | KafkaError::ILLEGAL_GENERATION
                | KafkaError::REBALANCE_IN_PROGRESS => bail!(
                    "group {group} became active ({}): stop its consumers first",
                    KafkaError::new(p.error_code)
                ),
                code => errors.push(format!(
                    "{}-{}: {}",
                    t.name.0,
                    p.partition_index,
                    KafkaError::new(code)
                )),
            }
        }
    }
    if !errors.is_empty() {
        bail!(
            "cannot commit offsets for group {group}: {}",
            errors.join(", ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_clamped_to_the_log() {
        let range = (5, 20);
        assert_eq!(
            new_offset(Target::Earliest, Some(9), range, None).unwrap(),
            5
        );
        assert_eq!(new_offset(Target::Latest, None, range, None).unwrap(), 20);
        assert_eq!(new_offset(Target::Offset(7), None, range, None).unwrap(), 7);
        assert_eq!(
            new_offset(Target::Offset(99), None, range, None).unwrap(),
            20
        );
        assert_eq!(
            new_offset(Target::Offset(-3), None, range, None).unwrap(),
            5
        );
        assert_eq!(
            new_offset(Target::ShiftBy(-2), Some(9), range, None).unwrap(),
            7
        );
        assert_eq!(
            new_offset(Target::ShiftBy(-20), Some(9), range, None).unwrap(),
            5
        );
        assert_eq!(
            new_offset(Target::ShiftBy(i64::MAX), Some(9), range, None).unwrap(),
            20
        );
        assert!(new_offset(Target::ShiftBy(1), None, range, None).is_err());
        assert_eq!(
            new_offset(Target::Datetime(0), None, range, Some(12)).unwrap(),
            12
        );
        assert_eq!(
            new_offset(Target::Datetime(0), None, range, Some(-1)).unwrap(),
            20
        );
        // A broker answering start > end must not panic the CLI.
        assert_eq!(
            new_offset(Target::Offset(3), None, (9, 4), None).unwrap(),
            9
        );
    }

    #[test]
    fn topic_specs() {
        assert_eq!(parse_topic("orders").unwrap(), ("orders".to_string(), None));
        assert_eq!(
            parse_topic("orders:0, 2").unwrap(),
            ("orders".to_string(), Some(vec![0, 2]))
        );
        assert!(parse_topic("orders:").is_err());
        assert!(parse_topic("orders:x").is_err());
        assert!(parse_topic("orders:-1").is_err());
        assert!(parse_topic(":1").is_err());
    }

    #[test]
    fn datetimes() {
        assert_eq!(parse_datetime("1970-01-01T00:00:01.5Z").unwrap(), 1500);
        assert_eq!(
            parse_datetime("2024-05-01T12:00:00+02:00").unwrap(),
            1_714_557_600_000
        );
        // Without an offset the local zone applies; whatever it is, the value parses.
        assert!(parse_datetime("2024-05-01T12:00:00.250").is_ok());
        assert!(parse_datetime("2024-05-01").is_ok());
        assert!(parse_datetime("yesterday").is_err());
    }
}
