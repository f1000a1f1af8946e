//! DescribeCluster (API 60), v0–v2: the cluster id, the controller and the brokers.
//!
//! One broker: it is the whole cluster and its controller, never fenced, without a rack.
//! As Kafka's brokers do, only the brokers endpoint type (1) is served: a request for the
//! controllers (2) is MISMATCHED_ENDPOINT_TYPE (those are served by Kafka's controller
//! listeners, which Strom does not have), any other type UNSUPPORTED_ENDPOINT_TYPE (in
//! v0, which cannot ask for either, INVALID_REQUEST). Authorized operations are Kafka's
//! "not requested" value unless asked for, then every cluster operation: there are no
//! ACLs yet.

use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{
    ApiKey, BrokerId, DescribeClusterRequest, DescribeClusterResponse, RequestHeader, RequestKind,
    ResponseKind,
};
use kafka_protocol::protocol::StrBytes;

use crate::broker::Broker;
use crate::error::ServerError;
use crate::handlers::HandlerFuture;
use crate::handlers::metadata::{CLUSTER_OPERATIONS, OPERATIONS_NOT_REQUESTED};

/// Kafka's `EndpointType` ids.
const BROKERS: i8 = 1;
const CONTROLLERS: i8 = 2;

/// Serves DescribeCluster; see the module docs.
pub fn handle(broker: Arc<Broker>, header: RequestHeader, request: RequestKind) -> HandlerFuture {
    Box::pin(async move {
        let RequestKind::DescribeCluster(request) = request else {
            return Err(ServerError::HandlerMismatch {
                expected: ApiKey::DescribeCluster,
            });
        };
        Ok(ResponseKind::DescribeCluster(describe_cluster(
            &broker,
            header.request_api_version,
            &request,
        )))
    })
}

fn describe_cluster(
    broker: &Broker,
    version: i16,
    request: &DescribeClusterRequest,
) -> DescribeClusterResponse {
    let refuse = |error: ResponseError, message: String| {
        let code = if version == 0 {
            ResponseError::InvalidRequest.code()
        } else {
            error.code()
        };
        DescribeClusterResponse::default()
            .with_error_code(code)
            .with_error_message(Some(StrBytes::from_string(message)))
    };
    match request.endpoint_type {
        BROKERS => {}
        CONTROLLERS => {
            return refuse(
                ResponseError::MismatchedEndpointType,
                "The request was sent to an endpoint of type BROKER, but we wanted an \
                 endpoint of type CONTROLLER"
                    .into(),
            );
        }
        other => {
            return refuse(
                ResponseError::UnsupportedEndpointType,
                format!("Unsupported endpoint type {other}"),
            );
        }
    }
    let advertised = broker.advertised();
    let this = DescribeClusterBroker::default()
        .with_broker_id(BrokerId(broker.node_id()))
        .with_host(StrBytes::from_string(advertised.host.clone()))
        .with_port(i32::from(advertised.port))
        .with_rack(None)
        .with_is_fenced(false);
    let operations = if request.include_cluster_authorized_operations {
        CLUSTER_OPERATIONS
    } else {
        OPERATIONS_NOT_REQUESTED
    };
    DescribeClusterResponse::default()
        .with_error_code(0)
        .with_error_message(None)
        .with_endpoint_type(BROKERS)
        .with_cluster_id(StrBytes::from_string(
            broker.coordinator().cluster_id().to_string(),
        ))
        .with_controller_id(BrokerId(broker.node_id()))
        .with_brokers(vec![this])
        .with_cluster_authorized_operations(operations)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{self, TestBroker, response_as, round_trip};

    async fn call(
        b: &TestBroker,
        version: i16,
        request: DescribeClusterRequest,
    ) -> DescribeClusterResponse {
        let r = response_as!(
            DescribeCluster,
            test_support::call(handle, &b.broker, version, request.into()).await
        );
        assert_eq!(round_trip(&r, version), r, "v{version}");
        r
    }

    #[tokio::test]
    async fn describes_this_broker_in_every_version() {
        let b = test_support::broker();
        for v in 0..=2 {
            let r = call(&b, v, DescribeClusterRequest::default()).await;
            assert_eq!((r.error_code, &r.error_message), (0, &None), "v{v}");
            assert_eq!(r.cluster_id.as_str(), b.broker.coordinator().cluster_id());
            assert_eq!(r.controller_id, BrokerId(1));
            assert_eq!(r.endpoint_type, 1);
            assert_eq!(r.brokers.len(), 1);
            let me = &r.brokers[0];
            assert_eq!(
                (me.broker_id, me.host.as_str(), me.port),
                (BrokerId(1), "localhost", 9092)
            );
            assert_eq!((me.rack.as_ref(), me.is_fenced), (None, false));
            assert_eq!(r.cluster_authorized_operations, i32::MIN);

            let r = call(
                &b,
                v,
                DescribeClusterRequest::default().with_include_cluster_authorized_operations(true),
            )
            .await;
            assert_eq!(r.cluster_authorized_operations, 8096, "v{v}");
        }
        let r = call(
            &b,
            2,
            DescribeClusterRequest::default().with_include_fenced_brokers(true),
        )
        .await;
        assert_eq!(r.brokers.len(), 1);
    }

    #[tokio::test]
    async fn other_endpoint_types_are_refused_as_kafka_does() {
        let b = test_support::broker();
        for v in 1..=2 {
            let r = call(
                &b,
                v,
                DescribeClusterRequest::default().with_endpoint_type(2),
            )
            .await;
            assert_eq!(r.error_code, 114, "v{v}");
            assert!(r.error_message.is_some());
            assert!(r.brokers.is_empty());
            assert_eq!(r.controller_id, BrokerId(-1));
            let r = call(
                &b,
                v,
                DescribeClusterRequest::default().with_endpoint_type(9),
            )
            .await;
            assert_eq!(r.error_code, 115, "v{v}");
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
