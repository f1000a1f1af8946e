//! FindCoordinator (API 10), v0–v6: which broker coordinates a group or a
//! transactional id.
//!
//! This single broker is every group's coordinator (key type 0). There is no
//! transaction coordinator yet, so transactional ids (key type 1) get
//! COORDINATOR_NOT_AVAILABLE, as Kafka answers while its coordinator is unavailable;
//! any other key type (share groups, 2) is INVALID_REQUEST. v0–v3 ask about one key and
//! answer at the top level; v4+ ask about a batch (`coordinator_keys`) and answer one
//! entry per key. Error messages exist from v1.

use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{
    ApiKey, BrokerId, FindCoordinatorRequest, FindCoordinatorResponse, RequestHeader, RequestKind,
    ResponseKind,
};
use kafka_protocol::protocol::StrBytes;

use crate::broker::Broker;
use crate::error::ServerError;
use crate::handlers::HandlerFuture;

const GROUP: i8 = 0;
const TRANSACTION: i8 = 1;

pub fn handle(broker: Arc<Broker>, header: RequestHeader, request: RequestKind) -> HandlerFuture {
    Box::pin(async move {
        let RequestKind::FindCoordinator(request) = request else {
            return Err(ServerError::HandlerMismatch {
                expected: ApiKey::FindCoordinator,
            });
        };
        Ok(ResponseKind::FindCoordinator(find_coordinator(
            &broker,
            header.request_api_version,
            request,
        )))
    })
}

/// The answer for one key: this broker, or the error and why.
fn lookup(key_type: i8) -> Result<(), (ResponseError, &'static str)> {
    match key_type {
        GROUP => Ok(()),
        TRANSACTION => Err((
            ResponseError::CoordinatorNotAvailable,
            "transactions are not supported by this broker yet",
        )),
        _ => Err((
            ResponseError::InvalidRequest,
            "unsupported coordinator key type",
        )),
    }
}

fn find_coordinator(
    broker: &Broker,
    version: i16,
    request: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    let advertised = broker.advertised();
    let node = BrokerId(broker.node_id());
    let host = StrBytes::from_string(advertised.host.clone());
    let port = i32::from(advertised.port);
    if version >= 4 {
        let coordinators = request
            .coordinator_keys
            .into_iter()
            .map(|key| {
                let entry = Coordinator::default().with_key(key);
                match lookup(request.key_type) {
                    Ok(()) => entry
                        .with_node_id(node)
                        .with_host(host.clone())
                        .with_port(port),
                    Err((error, why)) => entry
                        .with_node_id(BrokerId(-1))
                        .with_port(-1)
                        .with_error_code(error.code())
                        .with_error_message(Some(StrBytes::from_static_str(why))),
                }
            })
            .collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    match lookup(request.key_type) {
        Ok(()) => FindCoordinatorResponse::default()
            .with_node_id(node)
            .with_host(host)
            .with_port(port),
        Err((error, why)) => {
            let response = FindCoordinatorResponse::default()
                .with_error_code(error.code())
                .with_node_id(BrokerId(-1))
                .with_port(-1);
            if version >= 1 {
                response.with_error_message(Some(StrBytes::from_static_str(why)))
            } else {
                response
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support;

    #[test]
    fn groups_are_coordinated_here_transactions_are_not() {
        let test = test_support::broker();
        let broker = &test.broker;
        let v3 = find_coordinator(
            broker,
            3,
            FindCoordinatorRequest::default().with_key(StrBytes::from_static_str("g")),
        );
        assert_eq!(v3.error_code, 0);
        assert_eq!(v3.node_id, BrokerId(broker.node_id()));
        let v4 = find_coordinator(
            broker,
            4,
            FindCoordinatorRequest::default()
                .with_key_type(TRANSACTION)
                .with_coordinator_keys(vec![StrBytes::from_static_str("t")]),
        );
        assert_eq!(v4.coordinators.len(), 1);
        assert_eq!(v4.coordinators[0].error_code, 15);
    }
}
