//! What the broker advertises in ApiVersions, derived from the handler table, and the
//! special answer to an ApiVersions request of a version the broker does not speak.
//!
//! ApiVersions is how a client learns which versions to use, so it must work even when
//! the client guessed too high: Kafka then answers with UNSUPPORTED_VERSION (35) in a
//! **v0** body (which every client can parse) that still lists the supported ranges, and
//! the client retries with the highest version both sides know. ApiVersions responses
//! always use response header v0, for the same reason.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::ApiKey;
use kafka_protocol::messages::api_versions_response::{ApiVersion, ApiVersionsResponse};

use crate::handlers::HANDLERS;

/// The body version used for the UNSUPPORTED_VERSION answer.
pub const UNSUPPORTED_RESPONSE_VERSION: i16 = 0;

/// One entry per handler, with the versions it serves (as advertised).
pub fn advertised_api_keys() -> Vec<ApiVersion> {
    HANDLERS
        .iter()
        .map(|h| {
            ApiVersion::default()
                .with_api_key(h.api as i16)
                .with_min_version(h.advertised_min_version)
                .with_max_version(h.max_version)
        })
        .collect()
}

/// A successful ApiVersions response.
pub fn supported() -> ApiVersionsResponse {
    ApiVersionsResponse::default().with_api_keys(advertised_api_keys())
}

/// The answer to an ApiVersions request of an unsupported version: error 35 plus the
/// supported ranges; encode it as v0 ([`UNSUPPORTED_RESPONSE_VERSION`]).
pub fn unsupported_version() -> ApiVersionsResponse {
    supported().with_error_code(ResponseError::UnsupportedVersion.code())
}

/// The answer to an ApiVersions request whose client software name or version is not
/// valid (v3+): INVALID_REQUEST with no API list, as Kafka does.
pub fn invalid_request() -> ApiVersionsResponse {
    ApiVersionsResponse::default().with_error_code(ResponseError::InvalidRequest.code())
}

/// Whether ApiVersions is among the served APIs (it must be: clients start with it).
pub fn serves_api_versions() -> bool {
    HANDLERS.iter().any(|h| h.api == ApiKey::ApiVersions)
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;
    use kafka_protocol::protocol::{Decodable, Encodable};

    use super::*;

    #[test]
    fn advertises_exactly_the_handler_table() {
        assert!(serves_api_versions());
        let keys = advertised_api_keys();
        assert_eq!(keys.len(), HANDLERS.len());
        for (k, h) in keys.iter().zip(HANDLERS) {
            assert_eq!(k.api_key, h.api as i16);
            assert_eq!(k.max_version, h.max_version);
        }
    }

    #[test]
    fn unsupported_answer_round_trips_as_v0() {
        let mut buf = BytesMut::new();
        unsupported_version()
            .encode(&mut buf, UNSUPPORTED_RESPONSE_VERSION)
            .expect("encodes");
        let decoded = ApiVersionsResponse::decode(&mut buf.freeze(), 0).expect("decodes as v0");
        assert_eq!(decoded.error_code, 35);
        assert_eq!(decoded.api_keys, advertised_api_keys());
    }
}
