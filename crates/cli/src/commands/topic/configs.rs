//! Topic configs from DescribeConfigs, for `topic describe` and for the AlterConfigs
//! fallback of `topic alter-config`.

use std::collections::BTreeMap;

use kafka_protocol::messages::DescribeConfigsRequest;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::protocol::StrBytes;
use serde::Serialize;

use super::topic_error;
use crate::client::BrokerConnection;

/// DescribeConfigs / AlterConfigs resource type of a topic.
pub const TOPIC_RESOURCE: i8 = 2;

/// `config_source` of an override set on the topic itself.
pub const DYNAMIC_TOPIC_CONFIG: i8 = 1;
/// `config_source` of a config nobody set: Kafka's default.
pub const DEFAULT_CONFIG: i8 = 5;

/// One config of a topic.
#[derive(Debug, Clone, Serialize)]
pub struct ConfigValue {
    pub name: String,
    /// Null for a sensitive config (and for a config with no value).
    pub value: Option<String>,
    /// Kafka's name of where the value comes from, e.g. `DYNAMIC_TOPIC_CONFIG`.
    pub source: &'static str,
    pub read_only: bool,
    pub sensitive: bool,
    #[serde(skip)]
    pub source_code: i8,
}

/// Every config of each of `topics`, by topic, sorted by config name.
pub async fn describe(
    conn: &mut BrokerConnection,
    topics: &[String],
) -> anyhow::Result<BTreeMap<String, Vec<ConfigValue>>> {
    let request = DescribeConfigsRequest::default().with_resources(
        topics
            .iter()
            .map(|t| {
                DescribeConfigsResource::default()
                    .with_resource_type(TOPIC_RESOURCE)
                    .with_resource_name(StrBytes::from_string(t.clone()))
                    .with_configuration_keys(None)
            })
            .collect(),
    );
    let response = conn.call(&request).await?;
    let mut out = BTreeMap::new();
    for result in response.results {
        let name = result.resource_name.to_string();
        let message = result.error_message.as_ref().map(|m| m.as_str());
        topic_error("describe the configs of", &name, result.error_code, message)?;
        let mut configs: Vec<ConfigValue> = result
            .configs
            .into_iter()
            .map(|c| ConfigValue {
                name: c.name.to_string(),
                value: c.value.map(|v| v.to_string()),
                source: source_name(c.config_source),
                read_only: c.read_only,
                sensitive: c.is_sensitive,
                source_code: c.config_source,
            })
            .collect();
        configs.sort_by(|a, b| a.name.cmp(&b.name));
        out.insert(name, configs);
    }
    Ok(out)
}

/// Kafka's name of a `config_source` (ConfigEntry.ConfigSource).
pub fn source_name(source: i8) -> &'static str {
    match source {
        DYNAMIC_TOPIC_CONFIG => "DYNAMIC_TOPIC_CONFIG",
        2 => "DYNAMIC_BROKER_CONFIG",
        3 => "DYNAMIC_DEFAULT_BROKER_CONFIG",
        4 => "STATIC_BROKER_CONFIG",
        DEFAULT_CONFIG => "DEFAULT_CONFIG",
        6 => "DYNAMIC_BROKER_LOGGER_CONFIG",
        7 => "CLIENT_METRICS_CONFIG",
        8 => "GROUP_CONFIG",
        _ => "UNKNOWN",
    }
}
