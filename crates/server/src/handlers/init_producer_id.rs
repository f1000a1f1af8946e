//! InitProducerId (API 22), v0–v5: producer ids for idempotent producers.
//!
//! Without a transactional id, every request gets a fresh producer id with epoch 0, as
//! Kafka does (v3+ may name the producer's current id and epoch; Kafka requires both or
//! neither, else INVALID_REQUEST, and then still hands out a new id).
//!
//! Transactions are not implemented yet (they arrive with a later issue): a request
//! with a transactional id is answered TRANSACTIONAL_ID_AUTHORIZATION_FAILED, which
//! Kafka clients treat as fatal for the transactional producer (rather than retrying
//! forever), and logged as a warning. An empty transactional id is INVALID_REQUEST, as
//! in Kafka. Errors carry producer id and epoch -1.

use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::{
    ApiKey, InitProducerIdRequest, InitProducerIdResponse, ProducerId, RequestHeader, RequestKind,
    ResponseKind,
};
use tracing::warn;

use crate::broker::Broker;
use crate::error::ServerError;
use crate::handlers::blocking::run_blocking;
use crate::handlers::{HandlerFuture, errors};

/// Serves InitProducerId; see the module docs.
pub fn handle(broker: Arc<Broker>, header: RequestHeader, request: RequestKind) -> HandlerFuture {
    Box::pin(async move {
        let RequestKind::InitProducerId(request) = request else {
            return Err(ServerError::HandlerMismatch {
                expected: ApiKey::InitProducerId,
            });
        };
        if let Some(code) = refusal(&header, &request) {
            return Ok(ResponseKind::InitProducerId(failed(code)));
        }
        // Allocating an id may persist the next block of ids.
        let allocated = run_blocking(ApiKey::InitProducerId, move || {
            broker.coordinator().init_producer_id()
        })
        .await?;
        let response = match allocated {
            Ok((id, epoch)) => InitProducerIdResponse::default()
                .with_error_code(0)
                .with_producer_id(ProducerId(id))
                .with_producer_epoch(epoch),
            Err(e) => failed(errors::response_error(&e).code()),
        };
        Ok(ResponseKind::InitProducerId(response))
    })
}

/// Why a request cannot get an id, as an error code.
fn refusal(header: &RequestHeader, request: &InitProducerIdRequest) -> Option<i16> {
    match &request.transactional_id {
        Some(id) if id.is_empty() => Some(ResponseError::InvalidRequest.code()),
        Some(id) => {
            warn!(
                transactional_id = %id.as_str(),
                client_id = header.client_id.as_deref().unwrap_or(""),
                "refusing a transactional producer: transactions are not supported yet \
                 (they arrive with a later issue)"
            );
            Some(ResponseError::TransactionalIdAuthorizationFailed.code())
        }
        None if (request.producer_id.0 == -1) != (request.producer_epoch == -1) => {
            Some(ResponseError::InvalidRequest.code())
        }
        None => None,
    }
}

fn failed(code: i16) -> InitProducerIdResponse {
    InitProducerIdResponse::default()
        .with_error_code(code)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1)
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::TransactionalId;
    use kafka_protocol::protocol::StrBytes;

    use super::*;
    use crate::test_support::{self, TestBroker, response_as, round_trip};

    async fn call(
        b: &TestBroker,
        version: i16,
        request: InitProducerIdRequest,
    ) -> InitProducerIdResponse {
        let r = response_as!(
            InitProducerId,
            test_support::call(handle, &b.broker, version, request.into()).await
        );
        assert_eq!(round_trip(&r, version), r, "v{version}");
        r
    }

    fn idempotent() -> InitProducerIdRequest {
        InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_transaction_timeout_ms(-1)
    }

    #[tokio::test]
    async fn idempotent_producers_get_fresh_ids_in_every_version() {
        let b = test_support::broker();
        let mut ids = Vec::new();
        for v in 0..=5 {
            let r = call(&b, v, idempotent()).await;
            assert_eq!((r.error_code, r.producer_epoch), (0, 0), "v{v}");
            assert!(r.producer_id.0 >= 0);
            ids.push(r.producer_id.0);
        }
        // v3+: a producer re-initializing with its current id and epoch gets a new id.
        let r = call(
            &b,
            4,
            idempotent()
                .with_producer_id(ProducerId(ids[0]))
                .with_producer_epoch(0),
        )
        .await;
        assert_eq!(r.error_code, 0);
        ids.push(r.producer_id.0);
        let mut unique = ids.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), ids.len(), "{ids:?}");
    }

    #[tokio::test]
    async fn transactional_and_malformed_requests_are_refused() {
        let b = test_support::broker();
        let txn = |id: &str| {
            InitProducerIdRequest::default()
                .with_transactional_id(Some(TransactionalId(StrBytes::from_string(id.into()))))
                .with_transaction_timeout_ms(60_000)
        };
        for v in 0..=5 {
            let r = call(&b, v, txn("orders-tx")).await;
            assert_eq!(r.error_code, 53, "v{v}");
            assert_eq!((r.producer_id, r.producer_epoch), (ProducerId(-1), -1));
            assert_eq!(call(&b, v, txn("")).await.error_code, 42, "v{v}");
        }
        let r = call(&b, 3, idempotent().with_producer_id(ProducerId(5))).await;
        assert_eq!((r.error_code, r.producer_id), (42, ProducerId(-1)));
        let r = call(&b, 3, idempotent().with_producer_epoch(2)).await;
        assert_eq!(r.error_code, 42);
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
