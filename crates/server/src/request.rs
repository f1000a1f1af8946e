//! Decoding a request frame's header.
//!
//! A request body starts with a header whose layout depends on the API and version:
//! v1 (key, version, correlation id, client id) or v2 (v1 plus tagged fields, for
//! "flexible" versions). [`ApiKey::request_header_version`] knows which; the header
//! codec is `kafka-protocol`'s.

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, RequestHeader};
use kafka_protocol::protocol::Decodable;

use crate::error::{Result, ServerError};

/// Splits a request frame into its decoded header and the undecoded body after it.
///
/// `api` and `version` are the values the frame head already showed; the decoded header
/// repeats them.
pub fn decode_header(
    api: ApiKey,
    version: i16,
    mut frame: Bytes,
) -> Result<(RequestHeader, Bytes)> {
    let header_version = api.request_header_version(version);
    let header = RequestHeader::decode(&mut frame, header_version)
        .map_err(|e| ServerError::MalformedHeader(format!("{e:#}")))?;
    Ok((header, frame))
}

#[cfg(test)]
mod tests {
    use bytes::{BufMut, BytesMut};
    use kafka_protocol::protocol::{Encodable, StrBytes};

    use super::*;

    fn encoded(header: &RequestHeader, header_version: i16, body: &[u8]) -> Bytes {
        let mut buf = BytesMut::new();
        header.encode(&mut buf, header_version).expect("encode");
        buf.put_slice(body);
        buf.freeze()
    }

    #[test]
    fn decodes_v1_and_flexible_v2_headers() {
        let header = RequestHeader::default()
            .with_request_api_key(ApiKey::Metadata as i16)
            .with_request_api_version(4)
            .with_correlation_id(42)
            .with_client_id(Some(StrBytes::from_static_str("me")));
        let (h, rest) =
            decode_header(ApiKey::Metadata, 4, encoded(&header, 1, b"body")).expect("v1 header");
        assert_eq!(h, header);
        assert_eq!(&rest[..], b"body");

        let header = header.with_request_api_version(12);
        let (h, rest) =
            decode_header(ApiKey::Metadata, 12, encoded(&header, 2, b"xy")).expect("v2 header");
        assert_eq!(h.correlation_id, 42);
        assert_eq!(&rest[..], b"xy");
    }

    #[test]
    fn truncated_header_is_an_error_not_a_panic() {
        let frame = Bytes::from_static(&[0, 3, 0, 4, 0, 0]);
        assert!(matches!(
            decode_header(ApiKey::Metadata, 4, frame),
            Err(ServerError::MalformedHeader(_))
        ));
    }
}
