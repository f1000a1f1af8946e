//! Where `strom consume` starts reading each partition: `--from-beginning`,
//! `--offset beginning|end|N|-N`, `--from-timestamp`, the latest offset by default, and
//! what to do when a position is out of range (Kafka's `auto.offset.reset`).

use std::collections::{BTreeMap, HashMap};

use anyhow::{Context, bail};

use crate::client::{Cluster, OffsetSpec, TopicInfo, list_offsets};

/// A start position, the same for every partition it applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartOffset {
    /// The log start offset.
    Earliest,
    /// The end of the log: only records produced from now on.
    Latest,
    /// This offset in every partition.
    Absolute(i64),
    /// This many records before the end of each partition (kcat's `-o -N`).
    FromEnd(i64),
    /// The first record at or after this many ms since the epoch.
    Timestamp(i64),
}

impl StartOffset {
    /// Parses `--offset`: `beginning`/`earliest`, `end`/`latest`, `N` or `-N`.
    pub fn parse(text: &str) -> anyhow::Result<StartOffset> {
        match text {
            "beginning" | "earliest" => return Ok(StartOffset::Earliest),
            "end" | "latest" => return Ok(StartOffset::Latest),
            _ => {}
        }
        let n: i64 = text.parse().map_err(|_| {
            anyhow::anyhow!("invalid offset {text:?}: expected beginning, end, N or -N")
        })?;
        Ok(if n < 0 {
            StartOffset::FromEnd(n.saturating_neg())
        } else {
            StartOffset::Absolute(n)
        })
    }

    /// Where a position that is out of range goes: the beginning when reading from the
    /// beginning was asked for, the end otherwise (Kafka's `auto.offset.reset=latest`).
    pub fn reset(self) -> OffsetSpec {
        match self {
            StartOffset::Earliest => OffsetSpec::Earliest,
            _ => OffsetSpec::Latest,
        }
    }
}

/// Parses `--from-timestamp`: milliseconds since the epoch, an RFC 3339 timestamp
/// (`2024-05-01T12:00:00Z`), or a civil date-time or date in the local time zone
/// (`2024-05-01 12:00`, `2024-05-01`).
pub fn parse_timestamp(text: &str) -> anyhow::Result<i64> {
    let text = text.trim();
    if let Ok(ms) = text.parse::<i64>() {
        if ms < 0 {
            bail!("invalid timestamp {text}: milliseconds since the epoch cannot be negative");
        }
        return Ok(ms);
    }
    if let Ok(ts) = text.parse::<jiff::Timestamp>() {
        return Ok(ts.as_millisecond());
    }
    let civil = text.parse::<jiff::civil::DateTime>().or_else(|_| {
        text.parse::<jiff::civil::Date>()
            .map(|d| d.to_datetime(jiff::civil::Time::midnight()))
    });
    match civil {
        Ok(dt) => {
            let zoned = dt
                .to_zoned(jiff::tz::TimeZone::system())
                .with_context(|| format!("invalid timestamp {text}"))?;
            Ok(zoned.timestamp().as_millisecond())
        }
        Err(_) => bail!(
            "invalid timestamp {text:?}: expected milliseconds since the epoch, \
             an RFC 3339 timestamp (2024-05-01T12:00:00Z) or a local date-time (2024-05-01 12:00)"
        ),
    }
}

/// The offset each of `partitions` of `topic` starts at under `start`.
pub async fn resolve(
    cluster: &mut Cluster,
    topic: &TopicInfo,
    partitions: &[i32],
    start: StartOffset,
) -> anyhow::Result<BTreeMap<i32, i64>> {
    if partitions.is_empty() {
        return Ok(BTreeMap::new());
    }
    let keys: Vec<(String, i32)> = partitions
        .iter()
        .map(|&p| (topic.name.clone(), p))
        .collect();
    let leaders: HashMap<(String, i32), i32> = topic
        .partitions
        .iter()
        .map(|p| ((topic.name.clone(), p.partition), p.leader))
        .collect();
    match start {
        // A position outside the log is reset on the first fetch.
        StartOffset::Absolute(n) => Ok(partitions.iter().map(|&p| (p, n)).collect()),
        StartOffset::Earliest => {
            list_offsets_by_partition(cluster, &keys, &leaders, OffsetSpec::Earliest).await
        }
        StartOffset::Latest => {
            list_offsets_by_partition(cluster, &keys, &leaders, OffsetSpec::Latest).await
        }
        StartOffset::Timestamp(ms) => {
            let found =
                list_offsets_by_partition(cluster, &keys, &leaders, OffsetSpec::Timestamp(ms))
                    .await?;
            let latest =
                list_offsets_by_partition(cluster, &keys, &leaders, OffsetSpec::Latest).await?;
            // No record at or after the time: start at the end, for what comes next.
            Ok(latest
                .into_iter()
                .map(|(p, end)| {
                    let at = found.get(&p).copied().filter(|&o| o >= 0).unwrap_or(end);
                    (p, at)
                })
                .collect())
        }
        StartOffset::FromEnd(n) => {
            let earliest =
                list_offsets_by_partition(cluster, &keys, &leaders, OffsetSpec::Earliest).await?;
            let latest =
                list_offsets_by_partition(cluster, &keys, &leaders, OffsetSpec::Latest).await?;
            Ok(latest
                .into_iter()
                .map(|(p, end)| {
                    let first = earliest.get(&p).copied().unwrap_or(0);
                    (p, end.saturating_sub(n).max(first))
                })
                .collect())
        }
    }
}

/// [`list_offsets`] keyed by partition only (the topic is the same for all).
pub async fn list_offsets_by_partition(
    cluster: &mut Cluster,
    keys: &[(String, i32)],
    leaders: &HashMap<(String, i32), i32>,
    spec: OffsetSpec,
) -> anyhow::Result<BTreeMap<i32, i64>> {
    Ok(list_offsets(cluster, keys, leaders, spec)
        .await?
        .into_iter()
        .map(|((_, p), listed)| (p, listed.offset))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_parse_like_kcat() {
        assert_eq!(
            StartOffset::parse("beginning").unwrap(),
            StartOffset::Earliest
        );
        assert_eq!(
            StartOffset::parse("earliest").unwrap(),
            StartOffset::Earliest
        );
        assert_eq!(StartOffset::parse("end").unwrap(), StartOffset::Latest);
        assert_eq!(StartOffset::parse("17").unwrap(), StartOffset::Absolute(17));
        assert_eq!(StartOffset::parse("-3").unwrap(), StartOffset::FromEnd(3));
        assert!(StartOffset::parse("soon").is_err());
        assert_eq!(StartOffset::Earliest.reset(), OffsetSpec::Earliest);
        assert_eq!(StartOffset::Absolute(5).reset(), OffsetSpec::Latest);
    }

    #[test]
    fn timestamps_parse_as_ms_or_datetimes() {
        assert_eq!(parse_timestamp("1700000000000").unwrap(), 1_700_000_000_000);
        assert_eq!(
            parse_timestamp("2023-11-14T22:13:20Z").unwrap(),
            1_700_000_000_000
        );
        assert_eq!(
            parse_timestamp("2023-11-14T23:13:20.5+01:00").unwrap(),
            1_700_000_000_500
        );
        // Civil times are local: compare with jiff's own conversion.
        let local = jiff::civil::date(2023, 11, 14)
            .at(22, 13, 0, 0)
            .to_zoned(jiff::tz::TimeZone::system())
            .unwrap()
            .timestamp()
            .as_millisecond();
        assert_eq!(parse_timestamp("2023-11-14 22:13").unwrap(), local);
        assert_eq!(parse_timestamp("2023-11-14T22:13:00").unwrap(), local);
        assert!(parse_timestamp("2023-11-14").is_ok());
        assert!(parse_timestamp("-5").is_err());
        let e = parse_timestamp("yesterday").unwrap_err().to_string();
        assert!(e.contains("RFC 3339"), "{e}");
    }
}
