//! The table of Kafka-style broker properties: each name, how its value is parsed and
//! range-checked, and which [`BrokerConfig`] field it sets.
//!
//! One table serves all three sources (TOML file, `STROM_*` variables, `-o` overrides), so
//! a property is known, typed and validated the same way wherever it comes from. Ranges
//! are Kafka's where Kafka has one.

use crate::config::{BrokerConfig, ConnectionOverrides};

/// A property value as a source gave it: typed from TOML, or text from the environment
/// and the command line. Parsers accept either, so `"log.retention.ms" = 1000` and
/// `"log.retention.ms" = "1000"` mean the same.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum RawValue {
    Toml(toml::Value),
    Text(String),
}

impl RawValue {
    fn int(&self) -> Result<i64, String> {
        match self {
            RawValue::Toml(toml::Value::Integer(i)) => Ok(*i),
            RawValue::Toml(toml::Value::String(s)) | RawValue::Text(s) => s
                .trim()
                .parse::<i64>()
                .map_err(|_| format!("'{s}' is not an integer")),
            RawValue::Toml(other) => {
                Err(format!("expected an integer, found {}", other.type_str()))
            }
        }
    }

    /// An integer in `min..=max`, converted to the field's type. The bounds are the
    /// field type's range at most, so the conversion cannot fail after the check.
    fn int_in<T: TryFrom<i64>>(&self, min: i64, max: i64) -> Result<T, String> {
        let v = self.int()?;
        if v < min || v > max {
            return Err(format!("{v} is outside [{min}, {max}]"));
        }
        T::try_from(v).map_err(|_| format!("{v} is out of range"))
    }

    fn text(&self) -> Result<String, String> {
        match self {
            RawValue::Toml(toml::Value::String(s)) | RawValue::Text(s) => Ok(s.clone()),
            RawValue::Toml(other) => Err(format!("expected a string, found {}", other.type_str())),
        }
    }

    fn bool(&self) -> Result<bool, String> {
        match self {
            RawValue::Toml(toml::Value::Boolean(b)) => Ok(*b),
            RawValue::Toml(toml::Value::String(s)) | RawValue::Text(s) => {
                match s.trim().to_ascii_lowercase().as_str() {
                    "true" => Ok(true),
                    "false" => Ok(false),
                    _ => Err(format!("'{s}' is not true or false")),
                }
            }
            RawValue::Toml(other) => Err(format!("expected a boolean, found {}", other.type_str())),
        }
    }
}

type Apply = fn(&mut BrokerConfig, &RawValue) -> Result<(), String>;

/// One Kafka-style property.
pub(crate) struct Property {
    pub name: &'static str,
    apply: Apply,
}

impl Property {
    /// Parses `value` and stores it in `config`; the error is a message without the name.
    pub fn apply(&self, config: &mut BrokerConfig, value: &RawValue) -> Result<(), String> {
        (self.apply)(config, value)
    }

    /// The environment variable that sets this property: `STROM_` + the name upper-cased
    /// with dots turned into underscores (`log.retention.ms` → `STROM_LOG_RETENTION_MS`).
    pub fn env_var(&self) -> String {
        format!("STROM_{}", self.name.to_ascii_uppercase().replace('.', "_"))
    }
}

fn set<T>(slot: &mut T, value: Result<T, String>) -> Result<(), String> {
    *slot = value?;
    Ok(())
}

const I32: i64 = i32::MAX as i64;
const I16: i64 = i16::MAX as i64;

/// Every property Strom accepts. Kafka spells "unset" as a missing key, so the
/// `Option` fields can only be set, not cleared.
pub(crate) const PROPERTIES: &[Property] = &[
    Property {
        name: "num.partitions",
        apply: |c, v| set(&mut c.num_partitions, v.int_in(1, I32)),
    },
    Property {
        name: "default.replication.factor",
        apply: |c, v| set(&mut c.default_replication_factor, v.int_in(1, I16)),
    },
    Property {
        name: "auto.create.topics.enable",
        apply: |c, v| set(&mut c.auto_create_topics_enable, v.bool()),
    },
    Property {
        name: "message.max.bytes",
        apply: |c, v| set(&mut c.message_max_bytes, v.int_in(0, I32)),
    },
    Property {
        name: "socket.request.max.bytes",
        apply: |c, v| set(&mut c.socket_request_max_bytes, v.int_in(1, I32)),
    },
    Property {
        // 14 bytes is Kafka's minimum: the smallest legacy record.
        name: "log.segment.bytes",
        apply: |c, v| set(&mut c.log_segment_bytes, v.int_in(14, I32)),
    },
    Property {
        name: "log.roll.ms",
        apply: |c, v| set(&mut c.log_roll_ms, v.int_in(1, i64::MAX).map(Some)),
    },
    Property {
        name: "log.roll.hours",
        apply: |c, v| set(&mut c.log_roll_hours, v.int_in(1, I32)),
    },
    Property {
        name: "log.retention.ms",
        apply: |c, v| set(&mut c.log_retention_ms, v.int_in(-1, i64::MAX).map(Some)),
    },
    Property {
        name: "log.retention.minutes",
        apply: |c, v| set(&mut c.log_retention_minutes, v.int_in(-1, I32).map(Some)),
    },
    Property {
        name: "log.retention.hours",
        apply: |c, v| set(&mut c.log_retention_hours, v.int_in(-1, I32)),
    },
    Property {
        name: "log.retention.bytes",
        apply: |c, v| set(&mut c.log_retention_bytes, v.int_in(-1, i64::MAX)),
    },
    Property {
        name: "log.index.interval.bytes",
        apply: |c, v| set(&mut c.log_index_interval_bytes, v.int_in(1, I32)),
    },
    Property {
        name: "log.index.size.max.bytes",
        apply: |c, v| set(&mut c.log_index_size_max_bytes, v.int_in(12, I32)),
    },
    Property {
        name: "log.flush.interval.messages",
        apply: |c, v| set(&mut c.log_flush_interval_messages, v.int_in(1, i64::MAX)),
    },
    Property {
        name: "log.flush.interval.ms",
        apply: |c, v| {
            set(
                &mut c.log_flush_interval_ms,
                v.int_in(1, i64::MAX).map(Some),
            )
        },
    },
    Property {
        name: "log.retention.check.interval.ms",
        apply: |c, v| {
            set(
                &mut c.log_retention_check_interval_ms,
                v.int_in(1, i64::MAX),
            )
        },
    },
    Property {
        name: "offsets.topic.num.partitions",
        apply: |c, v| set(&mut c.offsets_topic_num_partitions, v.int_in(1, I32)),
    },
    Property {
        name: "group.initial.rebalance.delay.ms",
        apply: |c, v| set(&mut c.group_initial_rebalance_delay_ms, v.int_in(0, I32)),
    },
    Property {
        name: "offsets.retention.minutes",
        apply: |c, v| set(&mut c.offsets_retention_minutes, v.int_in(1, I32)),
    },
    Property {
        name: "offsets.retention.check.interval.ms",
        apply: |c, v| {
            set(
                &mut c.offsets_retention_check_interval_ms,
                v.int_in(1, i64::MAX),
            )
        },
    },
    Property {
        name: "offset.metadata.max.bytes",
        apply: |c, v| set(&mut c.offset_metadata_max_bytes, v.int_in(0, I32)),
    },
    Property {
        name: "group.min.session.timeout.ms",
        apply: |c, v| set(&mut c.group_min_session_timeout_ms, v.int_in(0, I32)),
    },
    Property {
        name: "group.max.session.timeout.ms",
        apply: |c, v| set(&mut c.group_max_session_timeout_ms, v.int_in(0, I32)),
    },
    Property {
        name: "max.connections",
        apply: |c, v| set(&mut c.max_connections, v.int_in(1, I32)),
    },
    Property {
        name: "socket.listen.backlog.size",
        apply: |c, v| set(&mut c.socket_listen_backlog_size, v.int_in(1, I32)),
    },
    Property {
        // 0 is allowed only with overrides (checked in `BrokerConfig::validate`).
        name: "max.connections.per.ip",
        apply: |c, v| set(&mut c.max_connections_per_ip, v.int_in(0, I32)),
    },
    Property {
        name: "max.connections.per.ip.overrides",
        apply: |c, v| {
            set(
                &mut c.max_connections_per_ip_overrides,
                ConnectionOverrides::parse(&v.text()?),
            )
        },
    },
    Property {
        name: "connections.max.idle.ms",
        apply: |c, v| set(&mut c.connections_max_idle_ms, v.int_in(1, i64::MAX)),
    },
    Property {
        name: "socket.request.read.timeout.ms",
        apply: |c, v| set(&mut c.socket_request_read_timeout_ms, v.int_in(1, i64::MAX)),
    },
    Property {
        // Kafka's minimum.
        name: "fetch.max.bytes",
        apply: |c, v| set(&mut c.fetch_max_bytes, v.int_in(1024, I32)),
    },
    Property {
        name: "queued.max.request.bytes",
        apply: |c, v| {
            let bytes = v.int_in(-1, i64::MAX)?;
            if bytes == 0 {
                return Err("0 would admit no request; use -1 for no limit".into());
            }
            c.queued_max_request_bytes = bytes;
            Ok(())
        },
    },
    Property {
        name: "non.produce.request.max.bytes",
        apply: |c, v| set(&mut c.non_produce_request_max_bytes, v.int_in(1, I32)),
    },
    Property {
        name: "connection.max.in.flight.requests",
        apply: |c, v| {
            set(
                &mut c.connection_max_in_flight_requests,
                v.int_in(1, 65_536),
            )
        },
    },
    Property {
        name: "shutdown.timeout.ms",
        apply: |c, v| set(&mut c.shutdown_timeout_ms, v.int_in(0, i64::MAX)),
    },
];

/// The property called `name`, if Strom knows it.
pub(crate) fn find(name: &str) -> Option<&'static Property> {
    PROPERTIES.iter().find(|p| p.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_property_accepts_text_and_toml_values() {
        for p in PROPERTIES {
            let mut c = BrokerConfig::default();
            let (text, toml) = match p.name {
                "auto.create.topics.enable" => ("false", toml::Value::Boolean(false)),
                // A string property: TOML gives it as a string.
                "max.connections.per.ip.overrides" => (
                    "127.0.0.1:1000",
                    toml::Value::String("127.0.0.1:1000".into()),
                ),
                "fetch.max.bytes" => ("2000", toml::Value::Integer(2000)),
                _ => ("1000", toml::Value::Integer(1000)),
            };
            p.apply(&mut c, &RawValue::Text(text.into()))
                .unwrap_or_else(|e| panic!("{}: {e}", p.name));
            let mut d = BrokerConfig::default();
            p.apply(&mut d, &RawValue::Toml(toml))
                .unwrap_or_else(|e| panic!("{}: {e}", p.name));
            assert_eq!(c, d, "{}", p.name);
            assert_ne!(c, BrokerConfig::default(), "{} changed nothing", p.name);
        }
    }

    #[test]
    fn names_are_unique_and_env_names_follow_the_rule() {
        let mut names: Vec<_> = PROPERTIES.iter().map(|p| p.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), PROPERTIES.len());
        let p = find("log.retention.ms").expect("known");
        assert_eq!(p.env_var(), "STROM_LOG_RETENTION_MS");
    }

    #[test]
    fn values_are_type_and_range_checked() {
        let mut c = BrokerConfig::default();
        let np = find("num.partitions").expect("known");
        assert!(np.apply(&mut c, &RawValue::Text("0".into())).is_err());
        assert!(np.apply(&mut c, &RawValue::Text("x".into())).is_err());
        assert!(
            np.apply(&mut c, &RawValue::Text("2147483648".into()))
                .is_err()
        );
        assert!(
            np.apply(&mut c, &RawValue::Toml(toml::Value::Boolean(true)))
                .is_err()
        );
        let auto = find("auto.create.topics.enable").expect("known");
        assert!(auto.apply(&mut c, &RawValue::Text("yes".into())).is_err());
        assert!(auto.apply(&mut c, &RawValue::Text("TRUE".into())).is_ok());
        let queued = find("queued.max.request.bytes").expect("known");
        assert!(queued.apply(&mut c, &RawValue::Text("0".into())).is_err());
        assert!(queued.apply(&mut c, &RawValue::Text("-1".into())).is_ok());
        assert_eq!(c.request_memory_budget(), None);
    }
}
