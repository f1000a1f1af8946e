//! Describing topic and broker configs as Kafka does: each config's value, where it
//! comes from (the config source), the chain of synonyms behind it, and its type.
//! Shared by DescribeConfigs and CreateTopics (v5+ returns the new topic's configs).
//!
//! Kafka's rule for a topic config: its synonyms are the topic override (if any), then
//! the broker properties it falls back to, most specific first (`retention.ms` →
//! `log.retention.ms`, `log.retention.minutes`, `log.retention.hours`): those set in
//! the broker's configuration (STATIC_BROKER_CONFIG), then those with a default
//! (DEFAULT_CONFIG). The entry's source is its first synonym's. Strom's broker has no
//! dynamic configs, so the DYNAMIC_* sources never appear. A topic config without a
//! broker property in Strom lists itself as its DEFAULT_CONFIG synonym.

use std::collections::HashMap;

use strom_coordinator::{ConfigEntry, ConfigSource, ConfigType, TopicConfig};

use crate::broker::Broker;
use crate::config::PropertyValue;

/// Kafka's `DescribeConfigsResponse.ConfigSource` ids.
pub mod source {
    pub const TOPIC_CONFIG: i8 = 1;
    pub const STATIC_BROKER_CONFIG: i8 = 4;
    pub const DEFAULT_CONFIG: i8 = 5;
}

/// Kafka's `ConfigResource.Type` ids.
pub mod resource_type {
    pub const TOPIC: i8 = 2;
    pub const BROKER: i8 = 4;
    pub const BROKER_LOGGER: i8 = 8;
    pub const CLIENT_METRICS: i8 = 16;
    pub const GROUP: i8 = 32;

    /// Whether Kafka knows the type (Kafka answers unknown types differently from known
    /// but unsupported ones).
    pub fn is_known(t: i8) -> bool {
        matches!(t, TOPIC | BROKER | BROKER_LOGGER | CLIENT_METRICS | GROUP)
    }
}

/// What AlterConfigs and IncrementalAlterConfigs say about broker resources.
pub const BROKER_CONFIGS_ARE_STATIC: &str =
    "broker configs are static in Strom; restart the broker with the new setting";

/// What DescribeConfigs and the alter APIs say about broker loggers.
pub const NO_BROKER_LOGGERS: &str =
    "broker loggers are not exposed by Strom; set the RUST_LOG environment variable";

/// One described config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Described {
    pub name: String,
    pub value: Option<String>,
    pub source: i8,
    pub read_only: bool,
    pub sensitive: bool,
    pub config_type: i8,
    /// `(name, value, source)`, most specific first; never empty for a topic config.
    pub synonyms: Vec<(String, Option<String>, i8)>,
}

/// Kafka's `DescribeConfigsResponse.ConfigType` id.
pub fn config_type_id(t: ConfigType) -> i8 {
    match t {
        ConfigType::Boolean => 1,
        ConfigType::String => 2,
        ConfigType::Int => 3,
        ConfigType::Short => 4,
        ConfigType::Long => 5,
        ConfigType::Double => 6,
        ConfigType::List => 7,
    }
}

/// The broker properties a topic config falls back to, most specific first (Kafka's
/// `ServerTopicConfigSynonyms`), limited to those Strom's broker has.
fn broker_synonyms(topic_config: &str) -> &'static [&'static str] {
    match topic_config {
        "segment.bytes" => &["log.segment.bytes"],
        "segment.ms" => &["log.roll.ms", "log.roll.hours"],
        "segment.index.bytes" => &["log.index.size.max.bytes"],
        "flush.messages" => &["log.flush.interval.messages"],
        "flush.ms" => &["log.flush.interval.ms"],
        "retention.bytes" => &["log.retention.bytes"],
        "retention.ms" => &[
            "log.retention.ms",
            "log.retention.minutes",
            "log.retention.hours",
        ],
        "max.message.bytes" => &["message.max.bytes"],
        "index.interval.bytes" => &["log.index.interval.bytes"],
        _ => &[],
    }
}

/// The broker-side synonym chain of `name`: broker properties set in the configuration,
/// then the first with a default value. Empty when Strom has no broker property for it.
fn broker_chain(
    name: &str,
    properties: &HashMap<&str, PropertyValue>,
    default_properties: &HashMap<&str, PropertyValue>,
) -> Vec<(String, Option<String>, i8)> {
    let synonyms = broker_synonyms(name);
    let mut chain = Vec::new();
    for s in synonyms {
        if let Some(p) = properties.get(s).filter(|p| !p.is_default) {
            chain.push((s.to_string(), p.value.clone(), source::STATIC_BROKER_CONFIG));
        }
    }
    for s in synonyms {
        if let Some(v) = default_properties.get(s).and_then(|p| p.value.clone()) {
            chain.push((s.to_string(), Some(v), source::DEFAULT_CONFIG));
        }
    }
    chain
}

fn by_name(properties: Vec<PropertyValue>) -> HashMap<&'static str, PropertyValue> {
    properties.into_iter().map(|p| (p.name, p)).collect()
}

/// Describes a topic's configs (as the coordinator lists them) for `broker`.
pub fn describe_topic(broker: &Broker, entries: &[ConfigEntry]) -> Vec<Described> {
    let properties = by_name(broker.config().kafka_properties());
    let default_properties = by_name(crate::config::BrokerConfig::default().kafka_properties());
    // What each config would be without the topic's overrides.
    let base: HashMap<&str, ConfigEntry> = TopicConfig::default()
        .describe(&broker.coordinator().settings().defaults)
        .into_iter()
        .map(|e| (e.name, e))
        .collect();
    entries
        .iter()
        .map(|e| {
            let mut synonyms = Vec::new();
            if e.source == ConfigSource::Topic {
                synonyms.push((
                    e.name.to_string(),
                    Some(e.value.clone()),
                    source::TOPIC_CONFIG,
                ));
            }
            let chain = broker_chain(e.name, &properties, &default_properties);
            if chain.is_empty() {
                let default = base
                    .get(e.name)
                    .map_or_else(|| e.value.clone(), |b| b.value.clone());
                synonyms.push((e.name.to_string(), Some(default), source::DEFAULT_CONFIG));
            } else {
                synonyms.extend(chain);
            }
            Described {
                name: e.name.to_string(),
                value: Some(e.value.clone()),
                source: synonyms[0].2,
                read_only: false,
                sensitive: false,
                config_type: config_type_id(e.config_type),
                synonyms,
            }
        })
        .collect()
}

/// Describes the broker's own properties. All are read-only: Strom has no dynamic
/// broker configs.
pub fn describe_broker(broker: &Broker) -> Vec<Described> {
    broker
        .config()
        .kafka_properties()
        .into_iter()
        .map(|p| {
            let source = if p.is_default {
                source::DEFAULT_CONFIG
            } else {
                source::STATIC_BROKER_CONFIG
            };
            // Kafka lists a synonym only for a value that exists (an unset property
            // without a default has none).
            let synonyms = match &p.value {
                Some(v) => vec![(p.name.to_string(), Some(v.clone()), source)],
                None => Vec::new(),
            };
            Described {
                name: p.name.to_string(),
                value: p.value,
                source,
                read_only: true,
                sensitive: false,
                config_type: config_type_id(p.config_type),
                synonyms,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{BrokerConfig, ConfigSources};
    use crate::test_support;

    fn find<'a>(all: &'a [Described], name: &str) -> &'a Described {
        all.iter()
            .find(|d| d.name == name)
            .unwrap_or_else(|| panic!("{name}"))
    }

    fn topic_configs(b: &Broker, overrides: &[(&str, &str)]) -> Vec<Described> {
        test_support::create_topic(b, "t", 1, overrides);
        let entries = b
            .coordinator()
            .describe_topic_config("t")
            .expect("describe");
        describe_topic(b, &entries)
    }

    #[test]
    fn topic_sources_and_synonyms_follow_kafka() {
        let tb = test_support::broker();
        let all = topic_configs(&tb.broker, &[("segment.bytes", "1048576")]);
        let seg = find(&all, "segment.bytes");
        assert_eq!(seg.source, source::TOPIC_CONFIG);
        assert_eq!(
            seg.synonyms,
            vec![
                ("segment.bytes".into(), Some("1048576".into()), 1),
                ("log.segment.bytes".into(), Some("1073741824".into()), 5),
            ]
        );
        let retention = find(&all, "retention.ms");
        assert_eq!(retention.source, source::DEFAULT_CONFIG);
        assert_eq!(retention.value.as_deref(), Some("604800000"));
        assert_eq!(
            retention.synonyms,
            vec![("log.retention.hours".into(), Some("168".into()), 5)]
        );
        let cleanup = find(&all, "cleanup.policy");
        assert_eq!(cleanup.source, source::DEFAULT_CONFIG);
        assert_eq!(cleanup.config_type, 7);
        assert_eq!(
            cleanup.synonyms,
            vec![("cleanup.policy".into(), Some("delete".into()), 5)]
        );
        assert!(all.iter().all(|d| !d.read_only && !d.sensitive));
    }

    #[test]
    fn static_broker_settings_are_the_source_when_set() {
        let config = BrokerConfig::load(&ConfigSources {
            overrides: vec!["log.retention.ms=1000".into()],
            ..Default::default()
        })
        .expect("config");
        let tb = test_support::broker_with(config);
        let all = topic_configs(&tb.broker, &[]);
        let retention = find(&all, "retention.ms");
        assert_eq!(retention.value.as_deref(), Some("1000"));
        assert_eq!(retention.source, source::STATIC_BROKER_CONFIG);
        assert_eq!(
            retention.synonyms,
            vec![
                ("log.retention.ms".into(), Some("1000".into()), 4),
                ("log.retention.hours".into(), Some("168".into()), 5),
            ]
        );

        let broker = describe_broker(&tb.broker);
        let ms = find(&broker, "log.retention.ms");
        assert_eq!((ms.source, ms.value.as_deref()), (4, Some("1000")));
        assert!(ms.read_only);
        assert_eq!(ms.config_type, 5);
        let unset = find(&broker, "log.retention.minutes");
        assert_eq!((unset.source, unset.value.as_deref()), (5, None));
        assert!(unset.synonyms.is_empty());
        let hours = find(&broker, "log.retention.hours");
        assert_eq!(
            hours.synonyms,
            vec![("log.retention.hours".into(), Some("168".into()), 5)]
        );
    }
}
