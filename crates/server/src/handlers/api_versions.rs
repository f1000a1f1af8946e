//! The ApiVersions handler (API key 18): tells the client which APIs and versions this
//! broker serves.
//!
//! Requests of an unsupported ApiVersions version never get here; the dispatcher answers
//! those itself (see `crate::api_versions`) because their body may not be decodable.

use std::sync::Arc;

use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseKind};
use tracing::{debug, warn};

use crate::api_versions;
use crate::broker::Broker;
use crate::error::ServerError;
use crate::handlers::HandlerFuture;

/// Serves ApiVersions; see the module docs.
pub fn handle(_broker: Arc<Broker>, header: RequestHeader, request: RequestKind) -> HandlerFuture {
    Box::pin(async move {
        let RequestKind::ApiVersions(request) = request else {
            return Err(ServerError::HandlerMismatch {
                expected: ApiKey::ApiVersions,
            });
        };
        // v3+ carries the client's software name and version; Kafka rejects values that
        // are not `[a-zA-Z0-9](?:[a-zA-Z0-9\-.]*[a-zA-Z0-9])?`, and so do we, so clients
        // behave the same against both.
        if header.request_api_version >= 3
            && !(is_valid_software_field(&request.client_software_name)
                && is_valid_software_field(&request.client_software_version))
        {
            warn!(
                client_software_name = %request.client_software_name,
                client_software_version = %request.client_software_version,
                "ApiVersions with invalid client software name or version"
            );
            return Ok(ResponseKind::ApiVersions(api_versions::invalid_request()));
        }
        if header.request_api_version >= 3 {
            debug!(
                client_id = header.client_id.as_deref().unwrap_or(""),
                client_software_name = %request.client_software_name,
                client_software_version = %request.client_software_version,
                "client identified itself"
            );
        }
        Ok(ResponseKind::ApiVersions(api_versions::supported()))
    })
}

/// Kafka's rule for `client_software_name` and `client_software_version`.
fn is_valid_software_field(s: &str) -> bool {
    let bytes = s.as_bytes();
    let inner_ok = |b: &u8| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'.';
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => {
            first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && bytes.iter().all(inner_ok)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::ApiVersionsRequest;
    use kafka_protocol::protocol::StrBytes;

    use super::*;

    fn broker() -> Arc<Broker> {
        crate::test_support::broker().broker
    }

    async fn call(version: i16, name: &'static str, sw_version: &'static str) -> ResponseKind {
        let request = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str(name))
            .with_client_software_version(StrBytes::from_static_str(sw_version));
        crate::test_support::call(handle, &broker(), version, request.into()).await
    }

    #[test]
    fn software_field_rule() {
        for ok in ["a", "librdkafka", "apache-kafka-java", "2.3.0", "v1.0-rc1"] {
            assert!(is_valid_software_field(ok), "{ok}");
        }
        for bad in ["", "-a", "a-", ".", "a b", "kafka_python", "é"] {
            assert!(!is_valid_software_field(bad), "{bad}");
        }
    }

    #[tokio::test]
    async fn lists_the_table_and_rejects_bad_software_names() {
        let ResponseKind::ApiVersions(ok) = call(3, "strom-test", "1.0").await else {
            panic!("wrong response kind");
        };
        assert_eq!(ok.error_code, 0);
        assert_eq!(ok.api_keys, api_versions::advertised_api_keys());

        let ResponseKind::ApiVersions(bad) = call(3, "bad name", "1.0").await else {
            panic!("wrong response kind");
        };
        assert_eq!(bad.error_code, 42);
        // Before v3 the fields do not exist on the wire, so they are not checked.
        let ResponseKind::ApiVersions(old) = call(2, "", "").await else {
            panic!("wrong response kind");
        };
        assert_eq!(old.error_code, 0);
    }

    #[tokio::test]
    async fn mismatched_request_is_an_error() {
        let res = handle(
            broker(),
            RequestHeader::default(),
            RequestKind::Metadata(Default::default()),
        )
        .await;
        assert!(matches!(res, Err(ServerError::HandlerMismatch { .. })));
    }
}
