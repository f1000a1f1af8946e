//! Decoding a request frame's header.
//!
//! A request body starts with a header whose layout depends on the API and version:
//! v1 (key, version, correlation id, client id) or v2 (v1 plus tagged fields, for
//! "flexible" versions). [`ApiKey::request_header_version`] knows which; the header
//! codec is `kafka-protocol`'s.
//!
//! The connection's peer address travels with each request as a task-local, so the few
//! handlers that report it (JoinGroup records a member's host) need no extra argument.

use std::future::Future;
use std::net::SocketAddr;

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

tokio::task_local! {
    static PEER: SocketAddr;
}

/// Runs `handler` with `peer` as the address of the client that sent the request.
pub async fn with_peer<F: Future>(peer: SocketAddr, handler: F) -> F::Output {
    PEER.scope(peer, handler).await
}

/// The requesting client's host as Kafka reports it (`/127.0.0.1`); empty when the
/// request did not come from a connection (unit tests).
pub fn client_host() -> String {
    PEER.try_with(|peer| format!("/{}", peer.ip()))
        .unwrap_or_default()
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

    #[tokio::test]
    async fn client_host_is_the_peer_ip_inside_a_request() {
        assert_eq!(client_host(), "");
        let peer: SocketAddr = "10.1.2.3:40000".parse().expect("addr");
        assert_eq!(with_peer(peer, async { client_host() }).await, "/10.1.2.3");
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
