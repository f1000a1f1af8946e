//! AlterConfigs (API 33), v0–v2: replaces a topic's config overrides with the given
//! set (a config left out, or given a null value, goes back to its default), or with
//! `validate_only` checks that it could.
//!
//! Per resource, as Kafka does: a resource given twice gets one INVALID_REQUEST result
//! and is not changed; a config key given twice in one resource is INVALID_REQUEST; an
//! unknown topic is UNKNOWN_TOPIC_OR_PARTITION; an unknown or invalid config
//! INVALID_CONFIG. Broker configs are static in Strom (they come from flags, the
//! environment and the config file), so broker resources are INVALID_REQUEST, as Kafka
//! answers for its own static configs; so are broker loggers and the resource types
//! Strom does not have. A resource type Kafka does not know is UNSUPPORTED_VERSION.
//!
//! The resource checks are shared with IncrementalAlterConfigs.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, ApiKey, RequestHeader, RequestKind, ResponseKind,
};
use kafka_protocol::protocol::StrBytes;
use tracing::debug;

use crate::broker::Broker;
use crate::error::ServerError;
use crate::handlers::HandlerFuture;
use crate::handlers::blocking::run_blocking;
use crate::handlers::configs::{self, resource_type};
use crate::handlers::duplicates::Duplicates;
use crate::handlers::errors::{self, Refusal, invalid_request};

/// What a resource named twice in one request is answered (Kafka's words).
pub(crate) const DUPLICATE_RESOURCE: &str = "Duplicate resource.";

/// Serves AlterConfigs; see the module docs.
pub fn handle(broker: Arc<Broker>, _header: RequestHeader, request: RequestKind) -> HandlerFuture {
    Box::pin(async move {
        let RequestKind::AlterConfigs(request) = request else {
            return Err(ServerError::HandlerMismatch {
                expected: ApiKey::AlterConfigs,
            });
        };
        // Altering a topic rewrites its metadata file.
        let response = run_blocking(ApiKey::AlterConfigs, move || {
            alter_configs(&broker, &request)
        })
        .await?;
        Ok(ResponseKind::AlterConfigs(response))
    })
}

fn alter_configs(broker: &Broker, request: &AlterConfigsRequest) -> AlterConfigsResponse {
    let keys: Vec<(i8, &str)> = request
        .resources
        .iter()
        .map(|r| (r.resource_type, r.resource_name.as_str()))
        .collect();
    let mut duplicates = Duplicates::new(keys.iter().copied(), DUPLICATE_RESOURCE);
    let mut responses = Vec::with_capacity(request.resources.len());
    for (resource, key) in request.resources.iter().zip(&keys) {
        let names: Vec<&str> = resource.configs.iter().map(|c| c.name.as_str()).collect();
        let Some(checked) = check_resource(&mut duplicates, *key, &names) else {
            continue;
        };
        let outcome = checked.and_then(|topic| {
            let configs: BTreeMap<String, String> = resource
                .configs
                .iter()
                .filter_map(|c| Some((c.name.to_string(), c.value.as_ref()?.to_string())))
                .collect();
            broker
                .coordinator()
                .alter_topic_config(topic, configs, request.validate_only)
                .map_err(errors::refusal)
        });
        let (code, message) = error_fields(*key, outcome);
        responses.push(
            AlterConfigsResourceResponse::default()
                .with_resource_type(key.0)
                .with_resource_name(StrBytes::from_string(key.1.to_string()))
                .with_error_code(code)
                .with_error_message(message),
        );
    }
    AlterConfigsResponse::default().with_responses(responses)
}

/// The checks of one resource (`key`: type and name) before its configs are applied,
/// in Kafka's order: named twice in the request, a resource whose configs can be
/// altered, a config key given twice. `None`: the resource gets no answer (a later
/// mention of a duplicate); else the topic to alter, or why not.
pub(crate) fn check_resource<'a>(
    duplicates: &mut Duplicates<(i8, &'a str)>,
    key: (i8, &'a str),
    config_names: &[&str],
) -> Option<Result<&'a str, Refusal>> {
    let checked = duplicates.check(key)?.and_then(|()| {
        let topic = topic_resource(key.0, key.1)?;
        check_unique_keys(config_names)?;
        Ok(topic)
    });
    Some(checked)
}

/// A resource's `(error_code, error_message)` for `outcome`, logging a refusal.
pub(crate) fn error_fields(
    (t, name): (i8, &str),
    outcome: Result<(), Refusal>,
) -> (i16, Option<StrBytes>) {
    match outcome {
        Ok(()) => (0, None),
        Err((code, message)) => {
            debug!(resource_type = t, resource_name = name, code, %message, "config change refused");
            (code, Some(StrBytes::from_string(message)))
        }
    }
}

/// The topic a resource names, or why its config cannot be altered.
fn topic_resource(t: i8, name: &str) -> Result<&str, Refusal> {
    match t {
        resource_type::TOPIC => Ok(name),
        resource_type::BROKER => Err(invalid_request(configs::BROKER_CONFIGS_ARE_STATIC)),
        resource_type::BROKER_LOGGER => Err(invalid_request(configs::NO_BROKER_LOGGERS)),
        t if resource_type::is_known(t) => {
            Err(invalid_request(format!("Unsupported resource type: {t}")))
        }
        t => Err((
            ResponseError::UnsupportedVersion.code(),
            format!("Unknown resource type {t}."),
        )),
    }
}

/// Kafka refuses a request naming a config twice in one resource.
fn check_unique_keys(names: &[&str]) -> Result<(), Refusal> {
    let mut seen = HashSet::new();
    if names.iter().all(|n| seen.insert(*n)) {
        Ok(())
    } else {
        Err(invalid_request("Error due to duplicate config keys"))
    }
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::alter_configs_request::{AlterConfigsResource, AlterableConfig};

    use super::*;
    use crate::test_support::{self, TestBroker, pairs, response_as, round_trip};

    async fn call(
        b: &TestBroker,
        version: i16,
        request: AlterConfigsRequest,
    ) -> AlterConfigsResponse {
        let r = response_as!(
            AlterConfigs,
            test_support::call(handle, &b.broker, version, request.into()).await
        );
        for v in 0..=2 {
            assert_eq!(round_trip(&r, v), r, "v{v}");
        }
        r
    }

    fn create(b: &TestBroker, name: &str, configs: &[(&str, &str)]) {
        test_support::create_topic(&b.broker, name, 1, configs);
    }

    fn resource(t: i8, name: &str, configs: &[(&str, Option<&str>)]) -> AlterConfigsResource {
        AlterConfigsResource::default()
            .with_resource_type(t)
            .with_resource_name(StrBytes::from_string(name.into()))
            .with_configs(
                configs
                    .iter()
                    .map(|(k, v)| {
                        AlterableConfig::default()
                            .with_name(StrBytes::from_string(k.to_string()))
                            .with_value(v.map(|v| StrBytes::from_string(v.to_string())))
                    })
                    .collect(),
            )
    }

    fn overrides(b: &TestBroker, name: &str) -> Vec<(String, String)> {
        test_support::topic_overrides(&b.broker, name)
    }

    #[tokio::test]
    async fn replaces_overrides() {
        let b = test_support::broker();
        create(
            &b,
            "t",
            &[("retention.ms", "1000"), ("segment.ms", "60000")],
        );
        let req = AlterConfigsRequest::default().with_resources(vec![resource(
            2,
            "t",
            &[("retention.bytes", Some("4096")), ("segment.ms", None)],
        )]);
        let r = call(&b, 2, req).await;
        assert_eq!(r.responses[0].error_code, 0);
        assert_eq!(r.responses[0].error_message, None);
        assert_eq!(overrides(&b, "t"), pairs(&[("retention.bytes", "4096")]));
    }

    #[tokio::test]
    async fn validate_only_changes_nothing() {
        let b = test_support::broker();
        create(&b, "t", &[("retention.ms", "1000")]);
        let req = AlterConfigsRequest::default()
            .with_validate_only(true)
            .with_resources(vec![resource(2, "t", &[("retention.ms", Some("5"))])]);
        let r = call(&b, 0, req).await;
        assert_eq!(r.responses[0].error_code, 0);
        assert_eq!(overrides(&b, "t"), pairs(&[("retention.ms", "1000")]));
        // Invalid values are still refused.
        let req = AlterConfigsRequest::default()
            .with_validate_only(true)
            .with_resources(vec![resource(2, "t", &[("retention.ms", Some("x"))])]);
        assert_eq!(call(&b, 0, req).await.responses[0].error_code, 40);
    }

    #[tokio::test]
    async fn errors_per_resource() {
        let b = test_support::broker();
        create(&b, "t", &[("retention.ms", "1000")]);
        create(&b, "t2", &[("retention.ms", "1000")]);
        create(&b, "twice", &[]);
        let req = AlterConfigsRequest::default().with_resources(vec![
            resource(2, "missing", &[("retention.ms", Some("1"))]),
            resource(2, "t", &[("no.such.config", Some("1"))]),
            resource(2, "t2", &[("retention.ms", Some("-7"))]),
            resource(4, "1", &[("num.partitions", Some("3"))]),
            resource(8, "1", &[("root", Some("DEBUG"))]),
            resource(16, "metrics", &[]),
            resource(3, "what", &[]),
            resource(2, "twice", &[("retention.ms", Some("1"))]),
            resource(2, "twice", &[("retention.ms", Some("2"))]),
        ]);
        let r = call(&b, 1, req).await;
        let codes: Vec<(i8, String, i16)> = r
            .responses
            .iter()
            .map(|x| (x.resource_type, x.resource_name.to_string(), x.error_code))
            .collect();
        let expected: Vec<(i8, String, i16)> = [
            (2, "missing", 3),
            (2, "t", 40),
            (2, "t2", 40),
            (4, "1", 42),
            (8, "1", 42),
            (16, "metrics", 42),
            (3, "what", 35),
            (2, "twice", 42),
        ]
        .iter()
        .map(|(t, n, c)| (*t, n.to_string(), *c))
        .collect();
        assert_eq!(codes, expected);
        assert!(r.responses.iter().all(|x| x.error_message.is_some()));
        assert_eq!(
            r.responses[3].error_message.as_deref(),
            Some(configs::BROKER_CONFIGS_ARE_STATIC)
        );
        assert_eq!(overrides(&b, "t"), pairs(&[("retention.ms", "1000")]));
        assert_eq!(overrides(&b, "t2"), pairs(&[("retention.ms", "1000")]));
        assert!(overrides(&b, "twice").is_empty());

        let req = AlterConfigsRequest::default().with_resources(vec![resource(
            2,
            "t",
            &[("retention.ms", Some("1")), ("retention.ms", Some("2"))],
        )]);
        let r = call(&b, 2, req).await;
        assert_eq!(r.responses[0].error_code, 42, "duplicate keys");
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
