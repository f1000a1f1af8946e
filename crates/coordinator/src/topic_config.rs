//! Topic-level configuration: Kafka's topic config names, their validation, the broker
//! defaults they fall back to, and the storage settings they turn into.
//!
//! A topic stores only its overrides; everything else is the broker default at the
//! time of reading, as in Kafka. Configs that Strom accepts but does not act on yet
//! (compaction, replication throttles, ...) are stored and described, and listed in
//! [`NOT_ENFORCED`] so the README can say so.

use std::collections::BTreeMap;

use strom_storage::{FlushPolicy, LogConfig};

use crate::error::{CoordinatorError, Result};

/// Broker-wide defaults for topic configs (Kafka's `log.*` broker properties).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicDefaults {
    pub log: LogConfig,
    /// `message.max.bytes` (broker) / `max.message.bytes` (topic): largest batch.
    pub max_message_bytes: u64,
    pub min_insync_replicas: u32,
}

impl Default for TopicDefaults {
    fn default() -> Self {
        TopicDefaults {
            log: LogConfig::default(),
            max_message_bytes: 1_048_588,
            min_insync_replicas: 1,
        }
    }
}

/// How a value is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A long (`min` -1 where -1 means "no limit").
    Long {
        min: i64,
    },
    Int {
        min: i64,
    },
    Bool,
    Double,
    /// One of a fixed set (case-sensitive, as Kafka).
    OneOf(&'static [&'static str]),
    /// A comma-separated list of the given values.
    ListOf(&'static [&'static str]),
    /// A comma-separated list of free-form items (the throttled-replica lists).
    FreeList,
}

impl Kind {
    fn config_type(self) -> ConfigType {
        match self {
            Kind::Long { .. } => ConfigType::Long,
            Kind::Int { .. } => ConfigType::Int,
            Kind::Bool => ConfigType::Boolean,
            Kind::Double => ConfigType::Double,
            Kind::OneOf(_) => ConfigType::String,
            Kind::ListOf(_) | Kind::FreeList => ConfigType::List,
        }
    }
}

/// Every topic config Strom knows, with its check and a fixed default for those not
/// derived from broker settings.
const CONFIGS: &[(&str, Kind, &str)] = &[
    (
        "cleanup.policy",
        Kind::ListOf(&["delete", "compact"]),
        "delete",
    ),
    (
        "compression.type",
        Kind::OneOf(&["producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"]),
        "producer",
    ),
    ("delete.retention.ms", Kind::Long { min: 0 }, "86400000"),
    ("file.delete.delay.ms", Kind::Long { min: 0 }, "60000"),
    ("flush.messages", Kind::Long { min: 1 }, ""),
    ("flush.ms", Kind::Long { min: 0 }, ""),
    (
        "follower.replication.throttled.replicas",
        Kind::FreeList,
        "",
    ),
    ("index.interval.bytes", Kind::Int { min: 0 }, ""),
    ("leader.replication.throttled.replicas", Kind::FreeList, ""),
    (
        "max.compaction.lag.ms",
        Kind::Long { min: 1 },
        "9223372036854775807",
    ),
    ("max.message.bytes", Kind::Int { min: 0 }, ""),
    ("message.downconversion.enable", Kind::Bool, "true"),
    (
        "message.timestamp.after.max.ms",
        Kind::Long { min: 0 },
        "9223372036854775807",
    ),
    (
        "message.timestamp.before.max.ms",
        Kind::Long { min: 0 },
        "9223372036854775807",
    ),
    (
        "message.timestamp.difference.max.ms",
        Kind::Long { min: 0 },
        "9223372036854775807",
    ),
    (
        "message.timestamp.type",
        Kind::OneOf(&["CreateTime", "LogAppendTime"]),
        "CreateTime",
    ),
    ("min.cleanable.dirty.ratio", Kind::Double, "0.5"),
    ("min.compaction.lag.ms", Kind::Long { min: 0 }, "0"),
    ("min.insync.replicas", Kind::Int { min: 1 }, ""),
    ("preallocate", Kind::Bool, "false"),
    ("retention.bytes", Kind::Long { min: -1 }, ""),
    ("retention.ms", Kind::Long { min: -1 }, ""),
    ("segment.bytes", Kind::Int { min: 14 }, ""),
    ("segment.index.bytes", Kind::Int { min: 8 }, ""),
    ("segment.jitter.ms", Kind::Long { min: 0 }, "0"),
    ("segment.ms", Kind::Long { min: 1 }, ""),
    ("unclean.leader.election.enable", Kind::Bool, "false"),
];

/// Configs that are stored and described but do not change behaviour yet.
pub const NOT_ENFORCED: &[&str] = &[
    "cleanup.policy (compact)",
    "compression.type (batches are stored as the producer compressed them)",
    "message.timestamp.type (LogAppendTime)",
    "message.timestamp.*.max.ms",
    "delete.retention.ms",
    "min.compaction.lag.ms",
    "max.compaction.lag.ms",
    "min.cleanable.dirty.ratio",
    "segment.jitter.ms",
    "preallocate",
    "file.delete.delay.ms",
    "*.replication.throttled.replicas",
    "unclean.leader.election.enable",
];

/// Where a described value comes from (Kafka's DescribeConfigs config source).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    /// Set on this topic.
    Topic,
    /// A broker setting (`log.retention.ms`, ...) applies.
    Broker,
    /// Kafka's built-in default.
    Default,
}

/// A config's data type, as Kafka's `ConfigDef.Type` names it (DescribeConfigs reports
/// it so tools can show and validate values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigType {
    Boolean,
    String,
    Int,
    Short,
    Long,
    Double,
    List,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    pub name: &'static str,
    pub value: String,
    pub source: ConfigSource,
    pub config_type: ConfigType,
}

fn kind_of(name: &str) -> Option<(&'static str, Kind, &'static str)> {
    CONFIGS.iter().find(|(n, _, _)| *n == name).copied()
}

/// Checks one `name=value` pair.
pub fn validate(name: &str, value: &str) -> Result<()> {
    let invalid = |reason: String| CoordinatorError::InvalidConfig {
        name: name.to_string(),
        reason,
    };
    let Some((_, kind, _)) = kind_of(name) else {
        return Err(invalid("unknown topic config".into()));
    };
    match kind {
        Kind::Long { min } | Kind::Int { min } => {
            let v: i64 = value
                .trim()
                .parse()
                .map_err(|_| invalid(format!("{value:?} is not a number")))?;
            let max = match kind {
                Kind::Int { .. } => i64::from(i32::MAX),
                _ => i64::MAX,
            };
            if v < min || v > max {
                return Err(invalid(format!("{v} is outside [{min}, {max}]")));
            }
        }
        Kind::Bool => {
            if !value.eq_ignore_ascii_case("true") && !value.eq_ignore_ascii_case("false") {
                return Err(invalid(format!("{value:?} is not true or false")));
            }
        }
        Kind::Double => {
            value
                .trim()
                .parse::<f64>()
                .map_err(|_| invalid(format!("{value:?} is not a number")))?;
        }
        Kind::OneOf(allowed) => {
            if !allowed.contains(&value) {
                return Err(invalid(format!("{value:?} is not one of {allowed:?}")));
            }
        }
        Kind::ListOf(allowed) => {
            if value.split(',').any(|v| !allowed.contains(&v.trim())) {
                return Err(invalid(format!("{value:?} is not a list of {allowed:?}")));
            }
        }
        Kind::FreeList => {}
    }
    Ok(())
}

fn opt_to_kafka(v: Option<u64>) -> String {
    v.map_or("-1".to_string(), |v| v.to_string())
}

/// The value a config has from broker settings, when it derives from one.
fn broker_value(name: &str, d: &TopicDefaults) -> Option<String> {
    Some(match name {
        "retention.ms" => opt_to_kafka(d.log.retention_ms),
        "retention.bytes" => opt_to_kafka(d.log.retention_bytes),
        "segment.bytes" => d.log.segment_bytes.to_string(),
        "segment.ms" => d.log.segment_ms.unwrap_or(i64::MAX as u64).to_string(),
        "segment.index.bytes" => d.log.segment_index_bytes.to_string(),
        "index.interval.bytes" => d.log.index_interval_bytes.to_string(),
        "flush.messages" => d.log.flush.messages.unwrap_or(i64::MAX as u64).to_string(),
        "flush.ms" => d
            .log
            .flush
            .interval_ms
            .unwrap_or(i64::MAX as u64)
            .to_string(),
        "max.message.bytes" => d.max_message_bytes.to_string(),
        "min.insync.replicas" => d.min_insync_replicas.to_string(),
        _ => return None,
    })
}

/// A topic's own settings: the overrides it was created or altered with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopicConfig {
    overrides: BTreeMap<String, String>,
}

/// What the topic's configs mean for the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EffectiveConfig {
    pub log: LogConfig,
    pub max_message_bytes: u64,
}

impl TopicConfig {
    /// Validates every override.
    pub fn new(overrides: BTreeMap<String, String>) -> Result<Self> {
        for (name, value) in &overrides {
            validate(name, value)?;
        }
        Ok(TopicConfig { overrides })
    }

    pub fn overrides(&self) -> &BTreeMap<String, String> {
        &self.overrides
    }

    fn long(&self, name: &str) -> Option<i64> {
        self.overrides.get(name).and_then(|v| v.trim().parse().ok())
    }

    /// The storage and broker settings this topic runs with.
    pub fn effective(&self, defaults: &TopicDefaults) -> Result<EffectiveConfig> {
        let d = &defaults.log;
        let positive = |v: i64| (v >= 0).then_some(v as u64);
        let never_if_max = |v: i64| (v > 0 && v != i64::MAX).then_some(v as u64);
        let log = LogConfig {
            segment_bytes: self
                .long("segment.bytes")
                .map_or(d.segment_bytes, |v| v as u64),
            segment_ms: self.long("segment.ms").map_or(d.segment_ms, never_if_max),
            retention_ms: self.long("retention.ms").map_or(d.retention_ms, positive),
            retention_bytes: self
                .long("retention.bytes")
                .map_or(d.retention_bytes, positive),
            index_interval_bytes: self
                .long("index.interval.bytes")
                .map_or(d.index_interval_bytes, |v| (v as u64).max(1)),
            segment_index_bytes: self
                .long("segment.index.bytes")
                .map_or(d.segment_index_bytes, |v| v as u64),
            flush: FlushPolicy {
                messages: self
                    .long("flush.messages")
                    .map_or(d.flush.messages, never_if_max),
                interval_ms: self
                    .long("flush.ms")
                    .map_or(d.flush.interval_ms, never_if_max),
            },
        };
        log.validate()
            .map_err(|e| CoordinatorError::InvalidConfig {
                name: "segment".into(),
                reason: e.to_string(),
            })?;
        Ok(EffectiveConfig {
            log,
            max_message_bytes: self
                .long("max.message.bytes")
                .map_or(defaults.max_message_bytes, |v| v as u64),
        })
    }

    /// Every known config with its value and where it comes from (DescribeConfigs).
    pub fn describe(&self, defaults: &TopicDefaults) -> Vec<ConfigEntry> {
        CONFIGS
            .iter()
            .map(|(name, kind, fixed)| {
                let (value, source) = if let Some(v) = self.overrides.get(*name) {
                    (v.clone(), ConfigSource::Topic)
                } else if let Some(v) = broker_value(name, defaults) {
                    (v, ConfigSource::Broker)
                } else {
                    (fixed.to_string(), ConfigSource::Default)
                };
                ConfigEntry {
                    name,
                    value,
                    source,
                    config_type: kind.config_type(),
                }
            })
            .collect()
    }

    /// Whether `name` is a topic config Strom knows.
    pub fn is_known(name: &str) -> bool {
        kind_of(name).is_some()
    }
}

/// One IncrementalAlterConfigs operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlterOp {
    Set(String),
    Delete,
    Append(String),
    Subtract(String),
}

/// Applies IncrementalAlterConfigs operations to a copy of the overrides.
pub fn apply_incremental(current: &TopicConfig, ops: &[(String, AlterOp)]) -> Result<TopicConfig> {
    let mut overrides = current.overrides.clone();
    for (name, op) in ops {
        if !TopicConfig::is_known(name) {
            return Err(CoordinatorError::InvalidConfig {
                name: name.clone(),
                reason: "unknown topic config".into(),
            });
        }
        let is_list = matches!(kind_of(name), Some((_, Kind::ListOf(_), _)));
        match op {
            AlterOp::Set(v) => {
                overrides.insert(name.clone(), v.clone());
            }
            AlterOp::Delete => {
                overrides.remove(name);
            }
            AlterOp::Append(_) | AlterOp::Subtract(_) if !is_list => {
                return Err(CoordinatorError::InvalidConfig {
                    name: name.clone(),
                    reason: "APPEND and SUBTRACT apply only to list configs".into(),
                });
            }
            AlterOp::Append(v) => {
                let fixed = kind_of(name).map_or("", |(_, _, f)| f);
                let base = overrides
                    .get(name)
                    .cloned()
                    .unwrap_or_else(|| fixed.to_string());
                let mut items: Vec<String> = base
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect();
                for item in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    if !items.iter().any(|i| i == item) {
                        items.push(item.to_string());
                    }
                }
                overrides.insert(name.clone(), items.join(","));
            }
            AlterOp::Subtract(v) => {
                let fixed = kind_of(name).map_or("", |(_, _, f)| f);
                let base = overrides
                    .get(name)
                    .cloned()
                    .unwrap_or_else(|| fixed.to_string());
                let drop: Vec<&str> = v.split(',').map(str::trim).collect();
                let items: Vec<&str> = base
                    .split(',')
                    .map(str::trim)
                    .filter(|i| !i.is_empty() && !drop.contains(i))
                    .collect();
                overrides.insert(name.clone(), items.join(","));
            }
        }
    }
    TopicConfig::new(overrides)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(pairs: &[(&str, &str)]) -> Result<TopicConfig> {
        TopicConfig::new(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn validates_names_and_values() {
        assert!(
            cfg(&[
                ("retention.ms", "1000"),
                ("cleanup.policy", "compact,delete")
            ])
            .is_ok()
        );
        assert!(cfg(&[("retention.ms", "-1")]).is_ok());
        assert!(cfg(&[("retention.ms", "-2")]).is_err());
        assert!(cfg(&[("retention.ms", "soon")]).is_err());
        assert!(cfg(&[("segment.bytes", "10")]).is_err());
        assert!(
            cfg(&[("segment.bytes", "4294967296")]).is_err(),
            "int range"
        );
        assert!(cfg(&[("no.such.config", "1")]).is_err());
        assert!(cfg(&[("message.timestamp.type", "Whenever")]).is_err());
        assert!(cfg(&[("preallocate", "TRUE")]).is_ok());
    }

    #[test]
    fn overrides_take_effect_and_defaults_fill_the_rest() {
        let defaults = TopicDefaults::default();
        let c = cfg(&[
            ("retention.ms", "-1"),
            ("segment.bytes", "1048576"),
            ("flush.messages", "1"),
        ])
        .expect("valid");
        let e = c.effective(&defaults).expect("effective");
        assert_eq!(e.log.retention_ms, None);
        assert_eq!(e.log.segment_bytes, 1 << 20);
        assert_eq!(e.log.flush, FlushPolicy::every_append());
        assert_eq!(
            e.log.index_interval_bytes,
            defaults.log.index_interval_bytes
        );
        assert_eq!(e.max_message_bytes, 1_048_588);
        let described = c.describe(&defaults);
        let find = |n: &str| described.iter().find(|e| e.name == n).cloned().expect(n);
        assert_eq!(find("segment.bytes").source, ConfigSource::Topic);
        assert_eq!(find("retention.bytes").value, "-1");
        assert_eq!(find("retention.bytes").source, ConfigSource::Broker);
        assert_eq!(find("cleanup.policy").source, ConfigSource::Default);
        assert_eq!(find("cleanup.policy").config_type, ConfigType::List);
        assert_eq!(find("segment.bytes").config_type, ConfigType::Int);
        assert_eq!(find("retention.ms").config_type, ConfigType::Long);
        assert_eq!(find("preallocate").config_type, ConfigType::Boolean);
        assert_eq!(
            find("min.cleanable.dirty.ratio").config_type,
            ConfigType::Double
        );
        assert_eq!(find("compression.type").config_type, ConfigType::String);
        assert_eq!(
            find("leader.replication.throttled.replicas").config_type,
            ConfigType::List
        );
        assert_eq!(described.len(), CONFIGS.len());
    }

    #[test]
    fn incremental_operations() {
        let c = cfg(&[("retention.ms", "5")]).expect("valid");
        let ops = vec![
            ("retention.ms".to_string(), AlterOp::Delete),
            ("segment.ms".to_string(), AlterOp::Set("60000".into())),
            (
                "cleanup.policy".to_string(),
                AlterOp::Append("compact".into()),
            ),
        ];
        let n = apply_incremental(&c, &ops).expect("apply");
        assert_eq!(n.overrides().get("retention.ms"), None);
        assert_eq!(
            n.overrides().get("cleanup.policy").map(String::as_str),
            Some("delete,compact")
        );
        let n = apply_incremental(
            &n,
            &[("cleanup.policy".into(), AlterOp::Subtract("delete".into()))],
        )
        .expect("subtract");
        assert_eq!(
            n.overrides().get("cleanup.policy").map(String::as_str),
            Some("compact")
        );
        assert!(
            apply_incremental(&n, &[("retention.ms".into(), AlterOp::Append("1".into()))]).is_err()
        );
        assert!(apply_incremental(&n, &[("segment.ms".into(), AlterOp::Set("0".into()))]).is_err());
    }
}
