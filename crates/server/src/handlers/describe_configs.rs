//! DescribeConfigs (API 32), v1–v4: the configs of topics and of this broker.
//!
//! Per resource, as Kafka does:
//! - topic (2): every topic config with its value, source and synonyms (see
//!   [`configs`]); an invalid name is INVALID_TOPIC_EXCEPTION, an unknown topic
//!   UNKNOWN_TOPIC_OR_PARTITION;
//! - broker (4) named with this broker's id: its properties, all read-only (Strom has
//!   no dynamic broker configs); named `""`: the cluster-wide dynamic defaults, of
//!   which Strom has none, so an empty list; another id or a non-number:
//!   INVALID_REQUEST;
//! - broker logger (8): INVALID_REQUEST (Strom's log levels come from `RUST_LOG`);
//! - anything else: INVALID_REQUEST.
//!
//! `configuration_keys` null or empty lists every config. `include_synonyms` fills
//! `synonyms`; `config_type` (v3+) is always set; `documentation` is null.

use std::sync::Arc;

use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{
    ApiKey, DescribeConfigsRequest, DescribeConfigsResponse, RequestHeader, RequestKind,
    ResponseKind,
};
use kafka_protocol::protocol::StrBytes;
use strom_coordinator::validate_name;
use tracing::debug;

use crate::broker::Broker;
use crate::error::ServerError;
use crate::handlers::HandlerFuture;
use crate::handlers::configs::{self, Described, resource_type};
use crate::handlers::errors::{self, Refusal, invalid_request};

/// Serves DescribeConfigs; see the module docs.
pub fn handle(broker: Arc<Broker>, _header: RequestHeader, request: RequestKind) -> HandlerFuture {
    Box::pin(async move {
        let RequestKind::DescribeConfigs(request) = request else {
            return Err(ServerError::HandlerMismatch {
                expected: ApiKey::DescribeConfigs,
            });
        };
        // In-memory only: topic configs and the broker's configuration.
        let results = request
            .resources
            .iter()
            .map(|r| describe(&broker, &request, r))
            .collect();
        Ok(ResponseKind::DescribeConfigs(
            DescribeConfigsResponse::default().with_results(results),
        ))
    })
}

fn describe(
    broker: &Broker,
    request: &DescribeConfigsRequest,
    resource: &DescribeConfigsResource,
) -> DescribeConfigsResult {
    let base = DescribeConfigsResult::default()
        .with_resource_type(resource.resource_type)
        .with_resource_name(resource.resource_name.clone());
    match described(broker, resource) {
        Ok(entries) => {
            let keys = resource.configuration_keys.as_deref().unwrap_or_default();
            let configs = entries
                .into_iter()
                .filter(|d| keys.is_empty() || keys.iter().any(|k| k.as_str() == d.name))
                .map(|d| entry(d, request.include_synonyms))
                .collect();
            base.with_error_code(0)
                .with_error_message(None)
                .with_configs(configs)
        }
        Err((code, message)) => {
            debug!(
                resource_type = resource.resource_type,
                resource_name = %resource.resource_name,
                code,
                %message,
                "DescribeConfigs refused"
            );
            base.with_error_code(code)
                .with_error_message(Some(StrBytes::from_string(message)))
                .with_configs(Vec::new())
        }
    }
}

fn described(
    broker: &Broker,
    resource: &DescribeConfigsResource,
) -> Result<Vec<Described>, Refusal> {
    let name = resource.resource_name.as_str();
    let invalid = |message: String| Err(invalid_request(message));
    match resource.resource_type {
        resource_type::TOPIC => {
            validate_name(name).map_err(errors::refusal)?;
            let entries = broker
                .coordinator()
                .describe_topic_config(name)
                .map_err(errors::refusal)?;
            Ok(configs::describe_topic(broker, &entries))
        }
        resource_type::BROKER if name.is_empty() => Ok(Vec::new()),
        resource_type::BROKER_LOGGER if name.is_empty() => {
            invalid("Broker id must not be empty".into())
        }
        resource_type::BROKER | resource_type::BROKER_LOGGER => {
            let Ok(id) = name.parse::<i32>() else {
                return invalid(format!("Broker id must be an integer, but it is: {name}"));
            };
            let node_id = broker.node_id();
            if id != node_id {
                let expected = if resource.resource_type == resource_type::BROKER {
                    format!("{node_id} or empty string")
                } else {
                    node_id.to_string()
                };
                return invalid(format!(
                    "Unexpected broker id, expected {expected}, but received {name}"
                ));
            }
            if resource.resource_type == resource_type::BROKER {
                Ok(configs::describe_broker(broker))
            } else {
                invalid(configs::NO_BROKER_LOGGERS.into())
            }
        }
        other => invalid(format!("Unsupported resource type: {other}")),
    }
}

fn entry(d: Described, include_synonyms: bool) -> DescribeConfigsResourceResult {
    let synonyms = if include_synonyms {
        d.synonyms
            .into_iter()
            .map(|(name, value, source)| {
                DescribeConfigsSynonym::default()
                    .with_name(StrBytes::from_string(name))
                    .with_value(value.map(StrBytes::from_string))
                    .with_source(source)
            })
            .collect()
    } else {
        Vec::new()
    };
    DescribeConfigsResourceResult::default()
        .with_name(StrBytes::from_string(d.name))
        .with_value(d.value.map(StrBytes::from_string))
        .with_read_only(d.read_only)
        .with_config_source(d.source)
        .with_is_sensitive(d.sensitive)
        .with_synonyms(synonyms)
        .with_config_type(d.config_type)
        .with_documentation(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{self, TestBroker, response_as, round_trip};

    const VERSIONS: std::ops::RangeInclusive<i16> = 1..=4;

    async fn call(
        b: &TestBroker,
        version: i16,
        request: DescribeConfigsRequest,
    ) -> DescribeConfigsResponse {
        let r = response_as!(
            DescribeConfigs,
            test_support::call(handle, &b.broker, version, request.into()).await
        );
        for v in VERSIONS {
            round_trip(&r, v);
        }
        round_trip(&r, version)
    }

    fn resource(t: i8, name: &str, keys: Option<&[&str]>) -> DescribeConfigsResource {
        DescribeConfigsResource::default()
            .with_resource_type(t)
            .with_resource_name(StrBytes::from_string(name.into()))
            .with_configuration_keys(keys.map(|k| {
                k.iter()
                    .map(|s| StrBytes::from_string(s.to_string()))
                    .collect()
            }))
    }

    fn create(b: &TestBroker, name: &str, configs: &[(&str, &str)]) {
        test_support::create_topic(&b.broker, name, 1, configs);
    }

    fn config<'a>(r: &'a DescribeConfigsResult, name: &str) -> &'a DescribeConfigsResourceResult {
        r.configs
            .iter()
            .find(|c| c.name.as_str() == name)
            .unwrap_or_else(|| panic!("{name} in {r:?}"))
    }

    #[tokio::test]
    async fn topic_configs_with_and_without_synonyms() {
        let b = test_support::broker();
        create(&b, "t", &[("retention.ms", "1000")]);
        for v in VERSIONS {
            for synonyms in [false, true] {
                let req = DescribeConfigsRequest::default()
                    .with_resources(vec![resource(2, "t", None)])
                    .with_include_synonyms(synonyms)
                    .with_include_documentation(true);
                let r = call(&b, v, req).await;
                let t = &r.results[0];
                assert_eq!((t.error_code, &t.error_message), (0, &None), "v{v}");
                assert_eq!((t.resource_type, t.resource_name.as_str()), (2, "t"));
                assert_eq!(t.configs.len(), 27, "every topic config");
                let retention = config(t, "retention.ms");
                assert_eq!(retention.value.as_deref(), Some("1000"));
                assert_eq!(retention.config_source, 1);
                assert!(!retention.read_only && !retention.is_sensitive);
                if v >= 3 {
                    assert_eq!(retention.documentation, None, "v{v}");
                }
                assert_eq!(retention.config_type, if v >= 3 { 5 } else { 0 }, "v{v}");
                if synonyms {
                    let s: Vec<_> = retention
                        .synonyms
                        .iter()
                        .map(|s| {
                            (
                                s.name.to_string(),
                                s.value.as_deref().map(String::from),
                                s.source,
                            )
                        })
                        .collect();
                    assert_eq!(
                        s,
                        vec![
                            ("retention.ms".into(), Some("1000".into()), 1),
                            ("log.retention.hours".into(), Some("168".into()), 5),
                        ]
                    );
                } else {
                    assert!(retention.synonyms.is_empty());
                }
                let segment = config(t, "segment.bytes");
                assert_eq!(segment.config_source, 5);
                assert_eq!(segment.value.as_deref(), Some("1073741824"));
            }
        }
    }

    #[tokio::test]
    async fn configuration_keys_filter() {
        let b = test_support::broker();
        create(&b, "t", &[]);
        let req = DescribeConfigsRequest::default().with_resources(vec![
            resource(2, "t", Some(&["retention.ms", "no.such.config"])),
            resource(2, "t", Some(&[])),
        ]);
        let r = call(&b, 4, req).await;
        let names: Vec<&str> = r.results[0]
            .configs
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(names, vec!["retention.ms"]);
        assert_eq!(r.results[1].configs.len(), 27, "empty list = all, as Kafka");
    }

    #[tokio::test]
    async fn broker_resources() {
        let b = test_support::broker();
        let req = DescribeConfigsRequest::default()
            .with_include_synonyms(true)
            .with_resources(vec![
                resource(4, "1", None),
                resource(4, "", None),
                resource(4, "2", None),
                resource(4, "one", None),
                resource(4, "1", Some(&["num.partitions"])),
            ]);
        let r = call(&b, 4, req).await;
        let broker = &r.results[0];
        assert_eq!(broker.error_code, 0);
        let partitions = config(broker, "num.partitions");
        assert_eq!(partitions.value.as_deref(), Some("1"));
        assert_eq!((partitions.config_source, partitions.read_only), (5, true));
        assert_eq!(partitions.config_type, 3);
        assert_eq!(partitions.synonyms.len(), 1);
        let unset = config(broker, "log.retention.ms");
        assert_eq!((unset.value.as_ref(), unset.config_source), (None, 5));
        assert_eq!(config(broker, "node.id").value.as_deref(), Some("1"));
        assert_eq!(
            (r.results[1].error_code, r.results[1].configs.len()),
            (0, 0)
        );
        for bad in &r.results[2..4] {
            assert_eq!(bad.error_code, 42, "{bad:?}");
            assert!(bad.error_message.is_some() && bad.configs.is_empty());
        }
        assert_eq!(r.results[4].configs.len(), 1);
    }

    #[tokio::test]
    async fn errors_per_resource() {
        let b = test_support::broker();
        create(&b, "t", &[]);
        let req = DescribeConfigsRequest::default().with_resources(vec![
            resource(2, "missing", None),
            resource(2, "bad name", None),
            resource(8, "1", None),
            resource(8, "", None),
            resource(32, "group", None),
            resource(99, "x", None),
            resource(2, "t", Some(&["retention.ms"])),
        ]);
        let r = call(&b, 2, req).await;
        let codes: Vec<(i8, i16)> = r
            .results
            .iter()
            .map(|t| (t.resource_type, t.error_code))
            .collect();
        assert_eq!(
            codes,
            vec![
                (2, 3),
                (2, 17),
                (8, 42),
                (8, 42),
                (32, 42),
                (99, 42),
                (2, 0)
            ]
        );
        for t in &r.results[..6] {
            assert!(t.error_message.as_ref().is_some_and(|m| !m.is_empty()));
            assert!(t.configs.is_empty());
        }
    }

    #[tokio::test]
    async fn mismatched_request_is_an_error() {
        let b = test_support::broker();
        let res = handle(
            b.broker.clone(),
            RequestHeader::default(),
            RequestKind::Metadata(Default::default()),
        )
        .await;
        assert!(matches!(res, Err(ServerError::HandlerMismatch { .. })));
    }
}
