//! IncrementalAlterConfigs (API 44), v0–v1: applies SET (0), DELETE (1), APPEND (2) and
//! SUBTRACT (3) operations to a topic's config overrides, or with `validate_only`
//! checks that it could.
//!
//! Resources are checked as in AlterConfigs (see `alter_configs`): duplicates, config
//! keys named twice, broker and other resource types. An unknown operation, or APPEND or
//! SUBTRACT without a value, is INVALID_REQUEST; SET with a null value removes the
//! override, as Kafka (KRaft) does; APPEND and SUBTRACT of a config that is not a list
//! are INVALID_CONFIG.

use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::incremental_alter_configs_request::AlterableConfig;
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{
    ApiKey, IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse, RequestHeader,
    RequestKind, ResponseKind,
};
use strom_coordinator::AlterOp;

use crate::broker::Broker;
use crate::error::ServerError;
use crate::handlers::HandlerFuture;
use crate::handlers::alter_configs::{DUPLICATE_RESOURCE, check_resource, error_fields};
use crate::handlers::blocking::run_blocking;
use crate::handlers::duplicates::Duplicates;
use crate::handlers::errors::{self, Refusal};

/// Serves IncrementalAlterConfigs; see the module docs.
pub fn handle(broker: Arc<Broker>, _header: RequestHeader, request: RequestKind) -> HandlerFuture {
    Box::pin(async move {
        let RequestKind::IncrementalAlterConfigs(request) = request else {
            return Err(ServerError::HandlerMismatch {
                expected: ApiKey::IncrementalAlterConfigs,
            });
        };
        // Altering a topic rewrites its metadata file.
        let response = run_blocking(ApiKey::IncrementalAlterConfigs, move || {
            alter(&broker, &request)
        })
        .await?;
        Ok(ResponseKind::IncrementalAlterConfigs(response))
    })
}

fn alter(
    broker: &Broker,
    request: &IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
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
            let ops = resource
                .configs
                .iter()
                .map(operation)
                .collect::<Result<Vec<_>, _>>()?;
            broker
                .coordinator()
                .incremental_alter_topic_config(topic, &ops, request.validate_only)
                .map_err(errors::refusal)
        });
        let (code, message) = error_fields(*key, outcome);
        responses.push(
            AlterConfigsResourceResponse::default()
                .with_resource_type(key.0)
                .with_resource_name(resource.resource_name.clone())
                .with_error_code(code)
                .with_error_message(message),
        );
    }
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

/// One wire operation as the coordinator's.
fn operation(c: &AlterableConfig) -> Result<(String, AlterOp), Refusal> {
    let name = c.name.to_string();
    let value = c.value.as_ref().map(|v| v.to_string());
    let needs_value = |op: &str| {
        (
            ResponseError::InvalidRequest.code(),
            format!("{op} of config {name} needs a value"),
        )
    };
    let op = match (c.config_operation, value) {
        (0, Some(v)) => AlterOp::Set(v),
        // KRaft stores a SET to null as "no value": the override goes.
        (0, None) | (1, _) => AlterOp::Delete,
        (2, Some(v)) => AlterOp::Append(v),
        (2, None) => return Err(needs_value("APPEND")),
        (3, Some(v)) => AlterOp::Subtract(v),
        (3, None) => return Err(needs_value("SUBTRACT")),
        (other, _) => {
            return Err((
                ResponseError::InvalidRequest.code(),
                format!("Unknown operation type {other}"),
            ));
        }
    };
    Ok((name, op))
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::incremental_alter_configs_request::AlterConfigsResource;
    use kafka_protocol::protocol::StrBytes;

    use super::*;
    use crate::handlers::configs;
    use crate::test_support::{self, TestBroker, pairs, response_as, round_trip};

    async fn call(
        b: &TestBroker,
        version: i16,
        request: IncrementalAlterConfigsRequest,
    ) -> IncrementalAlterConfigsResponse {
        let r = response_as!(
            IncrementalAlterConfigs,
            test_support::call(handle, &b.broker, version, request.into()).await
        );
        for v in 0..=1 {
            assert_eq!(round_trip(&r, v), r, "v{v}");
        }
        r
    }

    fn create(b: &TestBroker, name: &str, configs: &[(&str, &str)]) {
        test_support::create_topic(&b.broker, name, 1, configs);
    }

    fn resource(t: i8, name: &str, ops: &[(&str, i8, Option<&str>)]) -> AlterConfigsResource {
        AlterConfigsResource::default()
            .with_resource_type(t)
            .with_resource_name(StrBytes::from_string(name.into()))
            .with_configs(
                ops.iter()
                    .map(|(k, op, v)| {
                        AlterableConfig::default()
                            .with_name(StrBytes::from_string(k.to_string()))
                            .with_config_operation(*op)
                            .with_value(v.map(|v| StrBytes::from_string(v.to_string())))
                    })
                    .collect(),
            )
    }

    fn request(resources: Vec<AlterConfigsResource>) -> IncrementalAlterConfigsRequest {
        IncrementalAlterConfigsRequest::default().with_resources(resources)
    }

    fn overrides(b: &TestBroker, name: &str) -> Vec<(String, String)> {
        test_support::topic_overrides(&b.broker, name)
    }

    #[tokio::test]
    async fn applies_each_operation() {
        let b = test_support::broker();
        create(
            &b,
            "t",
            &[("retention.ms", "1000"), ("segment.ms", "60000")],
        );
        let r = call(
            &b,
            1,
            request(vec![resource(
                2,
                "t",
                &[
                    ("retention.ms", 1, None),
                    ("retention.bytes", 0, Some("4096")),
                    ("cleanup.policy", 2, Some("compact")),
                    ("segment.ms", 0, None),
                ],
            )]),
        )
        .await;
        assert_eq!(
            (r.responses[0].error_code, &r.responses[0].error_message),
            (0, &None)
        );
        assert_eq!(
            overrides(&b, "t"),
            pairs(&[
                ("cleanup.policy", "delete,compact"),
                ("retention.bytes", "4096")
            ])
        );
        let r = call(
            &b,
            0,
            request(vec![resource(
                2,
                "t",
                &[("cleanup.policy", 3, Some("delete"))],
            )]),
        )
        .await;
        assert_eq!(r.responses[0].error_code, 0);
        assert_eq!(
            overrides(&b, "t"),
            pairs(&[("cleanup.policy", "compact"), ("retention.bytes", "4096")])
        );
    }

    #[tokio::test]
    async fn validate_only_changes_nothing() {
        let b = test_support::broker();
        create(&b, "t", &[("retention.ms", "1000")]);
        let req = request(vec![resource(2, "t", &[("retention.ms", 0, Some("5"))])])
            .with_validate_only(true);
        assert_eq!(call(&b, 1, req).await.responses[0].error_code, 0);
        assert_eq!(overrides(&b, "t"), pairs(&[("retention.ms", "1000")]));
    }

    #[tokio::test]
    async fn errors_per_resource() {
        let b = test_support::broker();
        for t in ["t1", "t2", "t3", "t4", "t5"] {
            create(&b, t, &[("retention.ms", "1000")]);
        }
        let r = call(
            &b,
            1,
            request(vec![
                resource(2, "missing", &[("retention.ms", 0, Some("1"))]),
                resource(2, "t1", &[("retention.ms", 7, Some("1"))]),
                resource(2, "t2", &[("cleanup.policy", 2, None)]),
                resource(2, "t3", &[("retention.ms", 2, Some("5"))]),
                resource(2, "t4", &[("retention.ms", 0, Some("soon"))]),
                resource(
                    2,
                    "t5",
                    &[("retention.ms", 0, Some("1")), ("retention.ms", 1, None)],
                ),
                resource(4, "1", &[("num.partitions", 0, Some("3"))]),
                resource(4, "1", &[]),
                resource(8, "1", &[("root", 0, Some("DEBUG"))]),
                resource(0, "x", &[]),
            ]),
        )
        .await;
        let codes: Vec<(i8, i16)> = r
            .responses
            .iter()
            .map(|x| (x.resource_type, x.error_code))
            .collect();
        assert_eq!(
            codes,
            vec![
                (2, 3),
                (2, 42),
                (2, 42),
                (2, 40),
                (2, 40),
                (2, 42),
                (4, 42),
                (8, 42),
                (0, 35)
            ],
            "{r:?}"
        );
        assert_eq!(
            r.responses[6].error_message.as_deref(),
            Some("Duplicate resource.")
        );
        assert!(r.responses.iter().all(|x| x.error_message.is_some()));
        for t in ["t1", "t2", "t3", "t4", "t5"] {
            assert_eq!(overrides(&b, t), pairs(&[("retention.ms", "1000")]), "{t}");
        }
        let r = call(
            &b,
            0,
            request(vec![resource(4, "1", &[("num.partitions", 0, Some("3"))])]),
        )
        .await;
        assert_eq!(
            r.responses[0].error_message.as_deref(),
            Some(configs::BROKER_CONFIGS_ARE_STATIC)
        );
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
