//! One Kafka connection over a tokio socket, for load tests that hold a thousand of them
//! on a couple of threads: a request is encoded with `kafka-protocol`, sent, and its
//! response read back and decoded. Failures are returned as text, not panics, so a
//! load generator can count them and keep the other connections going.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long one request may take, answer included, before it counts as an error. Long
/// enough for a 2-core machine running the broker and a thousand clients at once.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A response larger than this is a broken frame, not an answer.
const MAX_RESPONSE: usize = 64 << 20;

pub struct AsyncConn {
    stream: TcpStream,
    correlation_id: i32,
}

impl AsyncConn {
    pub async fn open(addr: SocketAddr) -> Result<AsyncConn, String> {
        let stream = tokio::time::timeout(REQUEST_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| format!("connect to {addr} timed out"))?
            .map_err(|e| format!("connect to {addr}: {e}"))?;
        stream
            .set_nodelay(true)
            .map_err(|e| format!("TCP_NODELAY: {e}"))?;
        Ok(AsyncConn {
            stream,
            correlation_id: 0,
        })
    }

    /// Sends `request` and returns its decoded response, within [`REQUEST_TIMEOUT`].
    pub async fn call<Req: Encodable, Resp: Decodable>(
        &mut self,
        api: ApiKey,
        version: i16,
        request: &Req,
    ) -> Result<Resp, String> {
        tokio::time::timeout(REQUEST_TIMEOUT, self.call_inner(api, version, request))
            .await
            .map_err(|_| format!("{api:?} v{version}: no answer within {REQUEST_TIMEOUT:?}"))?
    }

    async fn call_inner<Req: Encodable, Resp: Decodable>(
        &mut self,
        api: ApiKey,
        version: i16,
        request: &Req,
    ) -> Result<Resp, String> {
        self.correlation_id = self.correlation_id.wrapping_add(1);
        let correlation_id = self.correlation_id;
        let header = RequestHeader::default()
            .with_request_api_key(api as i16)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("strom-load")));
        let mut frame = BytesMut::new();
        frame.extend_from_slice(&[0; 4]);
        header
            .encode(&mut frame, api.request_header_version(version))
            .map_err(|e| format!("{api:?}: encode header: {e}"))?;
        request
            .encode(&mut frame, version)
            .map_err(|e| format!("{api:?}: encode request: {e}"))?;
        let size = i32::try_from(frame.len() - 4).map_err(|_| "request too large")?;
        frame[..4].copy_from_slice(&size.to_be_bytes());
        self.stream
            .write_all(&frame)
            .await
            .map_err(|e| format!("{api:?}: send: {e}"))?;

        let size = self
            .stream
            .read_i32()
            .await
            .map_err(|e| format!("{api:?}: no response: {e}"))?;
        let size = usize::try_from(size)
            .ok()
            .filter(|&s| s <= MAX_RESPONSE)
            .ok_or_else(|| format!("{api:?}: response size {size}"))?;
        let mut body = vec![0u8; size];
        self.stream
            .read_exact(&mut body)
            .await
            .map_err(|e| format!("{api:?}: response body: {e}"))?;
        let mut body = Bytes::from(body);
        let header = ResponseHeader::decode(&mut body, api.response_header_version(version))
            .map_err(|e| format!("{api:?}: decode response header: {e}"))?;
        if header.correlation_id != correlation_id {
            return Err(format!(
                "{api:?}: correlation id {} in answer to {correlation_id}",
                header.correlation_id
            ));
        }
        let response =
            Resp::decode(&mut body, version).map_err(|e| format!("{api:?}: decode: {e}"))?;
        if body.has_remaining() {
            return Err(format!("{api:?}: {} trailing bytes", body.remaining()));
        }
        Ok(response)
    }
}
