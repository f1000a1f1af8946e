//! From a decoded request header to a response frame: version checks, body decoding,
//! running the handler, and encoding the response with the right header version.
//!
//! Decisions, following Kafka:
//! - An API this broker serves, in a served version: decode the body with
//!   `kafka-protocol`, run the handler, answer.
//! - ApiVersions in an unsupported version: answer UNSUPPORTED_VERSION in a v0 body
//!   listing the supported ranges (see `crate::api_versions`).
//! - Produce v2 (advertised, not served): UNSUPPORTED_VERSION for every partition (see
//!   `handlers::produce::refuse_v2`).
//! - Any other API in an unsupported version, or an API without a handler: the client
//!   ignored our ApiVersions answer; Kafka closes the connection, and so do we. (There
//!   is no generic error response: where the error code goes differs per API.)
//! - A body that does not decode: close the connection.
//!
//! Requests for an API without a handler are still decoded (when the codec knows the
//! version) before the connection is closed. That costs nothing a client can exploit
//! (the frame limits and memory budget apply), makes the log say whether the request was
//! well-formed, and means every known API's decoder is exposed to hostile input today,
//! under the same protections handlers will run behind (see `tests/server_hostile.rs`).

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::Encodable;

use crate::api_versions;
use crate::broker::Broker;
use crate::error::{Result, ServerError};
use crate::frame::{FrameEncodeError, encode_frame_sized};
use crate::handlers::{self, ApiHandler, Handler};
use crate::response_frame::ResponseFrame;

/// What to do with a request whose header decoded.
#[derive(Debug)]
pub enum Route {
    /// Run `handler` on the decoded `request` (boxed: some requests are large structs,
    /// and this value is moved into a task).
    Handle {
        handler: &'static ApiHandler,
        request: Box<RequestKind>,
    },
    /// Send this response frame; no handler involved.
    Respond(Bytes),
}

/// Decides how to answer a request, decoding its body if it is to be handled. An `Err`
/// means the connection must be closed.
pub fn route(api: ApiKey, header: &RequestHeader, mut body: Bytes) -> Result<Route> {
    let version = header.request_api_version;
    let Some(handler) = handlers::find(api) else {
        if api
            .valid_versions()
            .intersect(&version_range(version))
            .is_empty()
        {
            return Err(ServerError::UnsupportedApi { api, version });
        }
        decode(api, version, &mut body)?;
        return Err(ServerError::UnsupportedApi { api, version });
    };
    if !handler.serves(version) {
        if api == ApiKey::ApiVersions {
            let response = ResponseKind::ApiVersions(api_versions::unsupported_version());
            return encode_response(
                api,
                api_versions::UNSUPPORTED_RESPONSE_VERSION,
                header.correlation_id,
                &response,
            )
            .map(Route::Respond);
        }
        if api == ApiKey::Produce && version == 2 {
            return handlers::produce::refuse_v2(header.correlation_id, body).map(Route::Respond);
        }
        return Err(ServerError::UnsupportedVersion {
            api,
            version,
            min: handler.min_version,
            max: handler.max_version,
        });
    }
    let request = Box::new(decode(api, version, &mut body)?);
    Ok(Route::Handle { handler, request })
}

/// Runs a handler and encodes its response as a frame. An empty frame means "send
/// nothing": the answer to a Produce with acks=0.
pub async fn run(
    handler: &'static ApiHandler,
    broker: Arc<Broker>,
    header: RequestHeader,
    request: Box<RequestKind>,
) -> Result<ResponseFrame> {
    let handle = match handler.handle {
        Handler::Frame(handle) => return handle(broker, header, *request).await,
        Handler::Response(handle) => handle,
    };
    let version = header.request_api_version;
    let correlation_id = header.correlation_id;
    let no_response = matches!(&*request, RequestKind::Produce(p) if p.acks == 0);
    let response = handle(broker, header, *request).await?;
    if no_response {
        return match &response {
            // The client hears of a failure only by the connection closing (Kafka's rule).
            ResponseKind::Produce(p) if handlers::produce::has_errors(p) => {
                Err(ServerError::HandlerFailed {
                    api: ApiKey::Produce,
                    reason: "acks=0 produce failed; closing the connection to tell the client"
                        .into(),
                })
            }
            _ => Ok(ResponseFrame::none()),
        };
    }
    encode_response(handler.api, version, correlation_id, &response).map(ResponseFrame::from)
}

/// Encodes a response frame: size, response header (v0 or v1 as the API and version
/// require; always v0 for ApiVersions), body.
pub fn encode_response(
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    response: &ResponseKind,
) -> Result<Bytes> {
    let header_version = api.response_header_version(version);
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    encode_frame_sized(size_hint(response, version), |buf| {
        header.encode(buf, header_version)?;
        response.encode(buf, version)
    })
    .map_err(|e| ServerError::Encode {
        api,
        version,
        reason: match e {
            FrameEncodeError::Encode(e) => format!("{e:#}"),
            FrameEncodeError::TooLarge(n) => format!("{n} bytes does not fit in a frame"),
        },
    })
}

/// Bytes to reserve for a response body (plus the few of its header). Only a Fetch
/// response is large; its exact size costs a walk over its partitions, far cheaper than
/// the copies of growing a buffer by doubling to a megabyte (measured: 1.7x the copy
/// floor for 16 partitions x 64 KiB before, `cargo bench -p strom-server --bench codec`).
fn size_hint(response: &ResponseKind, version: i16) -> usize {
    const HEADER: usize = 16;
    match response {
        ResponseKind::Fetch(fetch) => fetch.compute_size(version).unwrap_or(0) + HEADER,
        _ => 256,
    }
}

fn decode(api: ApiKey, version: i16, body: &mut Bytes) -> Result<RequestKind> {
    RequestKind::decode(api, body, version).map_err(|e| ServerError::MalformedRequest {
        api,
        version,
        reason: format!("{e:#}"),
    })
}

fn version_range(version: i16) -> kafka_protocol::protocol::VersionRange {
    kafka_protocol::protocol::VersionRange {
        min: version,
        max: version,
    }
}

#[cfg(test)]
mod tests {
    use bytes::{Buf, BufMut, BytesMut};
    use kafka_protocol::messages::ApiVersionsResponse;
    use kafka_protocol::protocol::Decodable;

    use super::*;

    fn header(api: ApiKey, version: i16) -> RequestHeader {
        RequestHeader::default()
            .with_request_api_key(api as i16)
            .with_request_api_version(version)
            .with_correlation_id(7)
    }

    #[test]
    fn api_versions_in_range_is_handled() {
        for v in 0..=2 {
            let route = route(
                ApiKey::ApiVersions,
                &header(ApiKey::ApiVersions, v),
                Bytes::new(),
            );
            assert!(matches!(route, Ok(Route::Handle { .. })), "v{v}: {route:?}");
        }
    }

    #[test]
    fn api_versions_above_range_answers_35_in_v0() {
        let Ok(Route::Respond(frame)) = route(
            ApiKey::ApiVersions,
            &header(ApiKey::ApiVersions, 99),
            Bytes::new(),
        ) else {
            panic!("expected an immediate response");
        };
        let mut frame = frame;
        assert_eq!(frame.get_i32() as usize, frame.len());
        assert_eq!(frame.get_i32(), 7, "correlation id, header v0");
        let body = ApiVersionsResponse::decode(&mut frame, 0).expect("v0 body");
        assert_eq!(body.error_code, 35);
        assert!(!body.api_keys.is_empty());
    }

    #[test]
    fn unserved_api_is_decoded_then_refused() {
        // AlterReplicaLogDirs v1 with an empty dir array: well-formed, but not served.
        let mut body = BytesMut::new();
        body.put_i32(0);
        let res = route(
            ApiKey::AlterReplicaLogDirs,
            &header(ApiKey::AlterReplicaLogDirs, 1),
            body.freeze(),
        );
        assert!(
            matches!(res, Err(ServerError::UnsupportedApi { .. })),
            "{res:?}"
        );
        // Truncated: the decode error is what gets reported.
        let res = route(
            ApiKey::AlterReplicaLogDirs,
            &header(ApiKey::AlterReplicaLogDirs, 1),
            Bytes::new(),
        );
        assert!(
            matches!(res, Err(ServerError::MalformedRequest { .. })),
            "{res:?}"
        );
        // A version the codec does not know is refused without decoding.
        let res = route(
            ApiKey::AlterReplicaLogDirs,
            &header(ApiKey::AlterReplicaLogDirs, 999),
            Bytes::new(),
        );
        assert!(
            matches!(res, Err(ServerError::UnsupportedApi { .. })),
            "{res:?}"
        );
    }

    #[test]
    fn response_header_version_follows_the_api() {
        // ApiVersions v3 is flexible, but its response header is still v0: 4 bytes of
        // correlation id, no tagged-field byte.
        let frame = encode_response(
            ApiKey::ApiVersions,
            3,
            5,
            &ResponseKind::ApiVersions(api_versions::supported()),
        )
        .expect("encodes");
        let mut rest = frame.slice(8..);
        let body = ApiVersionsResponse::decode(&mut rest, 3).expect("v3 body right after");
        assert_eq!(body.error_code, 0);
        assert!(!rest.has_remaining());
    }

    /// Random bodies for every API and version the codec knows: decoding may fail, but
    /// must neither panic nor abort (the test binary runs with `MmapAlloc`, so hostile
    /// array counts are survivable here exactly as in the broker).
    #[test]
    fn decoding_garbage_never_panics() {
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for api in ApiKey::iter() {
            let range = api.valid_versions();
            for version in range.min..=range.max {
                for _ in 0..40 {
                    let len = (next() % 48) as usize;
                    let bytes: Vec<u8> = (0..len)
                        .map(|i| match next() % 4 {
                            // Bias towards huge lengths/counts, the interesting case.
                            0 if i % 4 == 0 => 0x7f,
                            1 => 0xff,
                            _ => next() as u8,
                        })
                        .collect();
                    let mut body = Bytes::from(bytes);
                    let _ = decode(api, version, &mut body);
                }
            }
        }
    }
}
