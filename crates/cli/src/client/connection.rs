//! One connection to one Kafka broker: framing, request headers, and the API versions
//! both ends support (negotiated once with ApiVersions when the connection opens).
//!
//! Requests can be pipelined: [`BrokerConnection::send`] writes a request and returns
//! its correlation id, [`BrokerConnection::receive`] reads the next response, which a
//! Kafka broker sends in request order on one connection.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::ResponseHeader;
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use super::error::KafkaError;

/// The client id Strom's CLI sends in every request header.
pub const CLIENT_ID: &str = "strom-cli";

/// Responses larger than this are refused: a broker that sends more is broken or is not
/// a Kafka broker, and the CLI should not try to allocate what a stray length claims.
const MAX_RESPONSE_BYTES: usize = 512 * 1024 * 1024;

/// How long to wait for a TCP connection and for each response.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub connect: Duration,
    pub request: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(10),
            request: Duration::from_secs(30),
        }
    }
}

/// An open connection to one broker, with the API versions it supports.
pub struct BrokerConnection {
    addr: String,
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    /// api key → (min, max) version the broker supports.
    versions: HashMap<i16, (i16, i16)>,
    next_correlation_id: i32,
    timeouts: Timeouts,
    /// Encoding buffer, reused so a request costs no allocation once it has grown.
    buf: BytesMut,
}

impl BrokerConnection {
    /// Connects to `addr` (host:port) and negotiates API versions.
    pub async fn connect(addr: &str, timeouts: Timeouts) -> anyhow::Result<BrokerConnection> {
        let stream = tokio::time::timeout(timeouts.connect, TcpStream::connect(addr))
            .await
            .map_err(|_| anyhow!("cannot connect to broker {addr}: timed out"))?
            .with_context(|| format!("cannot connect to broker {addr}"))?;
        stream.set_nodelay(true).ok();
        let (read, write) = stream.into_split();
        let mut conn = BrokerConnection {
            addr: addr.to_string(),
            reader: BufReader::with_capacity(64 * 1024, read),
            writer: write,
            versions: HashMap::new(),
            next_correlation_id: 1,
            timeouts,
            buf: BytesMut::with_capacity(64 * 1024),
        };
        conn.negotiate().await?;
        Ok(conn)
    }

    /// The address this connection was opened to.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// ApiVersions v3 (flexible); a broker that only knows older versions answers
    /// UNSUPPORTED_VERSION in a v0 body, after which v0 is asked.
    async fn negotiate(&mut self) -> anyhow::Result<()> {
        let request = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("strom"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let mut response: ApiVersionsResponse = self.call_at(&request, 3).await?;
        if response.error_code == KafkaError::UNSUPPORTED_VERSION {
            response = self.call_at(&ApiVersionsRequest::default(), 0).await?;
        }
        if response.error_code != 0 {
            bail!(
                "broker {} refused ApiVersions: {}",
                self.addr,
                KafkaError::new(response.error_code)
            );
        }
        self.versions = response
            .api_keys
            .iter()
            .map(|k| (k.api_key, (k.min_version, k.max_version)))
            .collect();
        Ok(())
    }

    /// The highest version of `R` both this client and the broker support.
    pub fn version<R: Request>(&self) -> anyhow::Result<i16> {
        let name = api_name(R::KEY);
        let (broker_min, broker_max) = *self
            .versions
            .get(&R::KEY)
            .ok_or_else(|| anyhow!("broker {} does not support {name}", self.addr))?;
        let ours = R::VERSIONS;
        let version = broker_max.min(ours.max);
        if version < broker_min.max(ours.min) {
            bail!(
                "broker {} supports {name} v{broker_min}–v{broker_max}; this client speaks v{}–v{}",
                self.addr,
                ours.min,
                ours.max
            );
        }
        Ok(version)
    }

    /// Whether the broker supports `R` at `version` or newer.
    pub fn supports<R: Request>(&self, version: i16) -> bool {
        self.version::<R>().is_ok_and(|v| v >= version)
    }

    /// Sends `request` at the negotiated version and waits for its response.
    pub async fn call<R: Request>(&mut self, request: &R) -> anyhow::Result<R::Response> {
        let version = self.version::<R>()?;
        self.call_at(request, version).await
    }

    /// Sends `request` at `version` and waits for its response.
    pub async fn call_at<R: Request>(
        &mut self,
        request: &R,
        version: i16,
    ) -> anyhow::Result<R::Response> {
        let id = self.send(request, version).await?;
        self.receive::<R>(version, id).await
    }

    /// Writes one request; returns its correlation id. Does not wait for the response.
    pub async fn send<R: Request>(&mut self, request: &R, version: i16) -> anyhow::Result<i32> {
        let id = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(id)
            .with_client_id(Some(StrBytes::from_static_str(CLIENT_ID)));
        let name = api_name(R::KEY);
        self.buf.clear();
        self.buf.put_i32(0);
        header
            .encode(&mut self.buf, R::header_version(version))
            .with_context(|| format!("cannot encode {name} request header"))?;
        request
            .encode(&mut self.buf, version)
            .with_context(|| format!("cannot encode {name} v{version} request"))?;
        let len =
            i32::try_from(self.buf.len() - 4).map_err(|_| anyhow!("{name} request too large"))?;
        self.buf[..4].copy_from_slice(&len.to_be_bytes());
        let write = self.writer.write_all(&self.buf);
        tokio::time::timeout(self.timeouts.request, write)
            .await
            .map_err(|_| anyhow!("broker {}: timed out sending {name}", self.addr))?
            .with_context(|| format!("broker {}: cannot send {name}", self.addr))?;
        Ok(id)
    }

    /// Reads the response to the request `correlation_id`, which must be the oldest
    /// outstanding one.
    pub async fn receive<R: Request>(
        &mut self,
        version: i16,
        correlation_id: i32,
    ) -> anyhow::Result<R::Response> {
        let name = api_name(R::KEY);
        let mut body = self.read_frame(&name).await?;
        let header = ResponseHeader::decode(&mut body, R::Response::header_version(version))
            .with_context(|| format!("broker {}: bad {name} response header", self.addr))?;
        if header.correlation_id != correlation_id {
            bail!(
                "broker {}: {name} response has correlation id {}, expected {correlation_id}",
                self.addr,
                header.correlation_id
            );
        }
        R::Response::decode(&mut body, version).with_context(|| {
            format!(
                "broker {}: cannot decode {name} v{version} response",
                self.addr
            )
        })
    }

    async fn read_frame(&mut self, name: &str) -> anyhow::Result<Bytes> {
        let timeout = self.timeouts.request;
        let addr = self.addr.clone();
        let read = async {
            let len = self.reader.read_i32().await?;
            let len = usize::try_from(len)
                .ok()
                .filter(|&l| l <= MAX_RESPONSE_BYTES)
                .ok_or_else(|| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("response frame of {len} bytes"),
                    )
                })?;
            let mut body = BytesMut::zeroed(len);
            self.reader.read_exact(&mut body).await?;
            Ok::<Bytes, std::io::Error>(body.freeze())
        };
        match tokio::time::timeout(timeout, read).await {
            Err(_) => bail!("broker {addr}: no {name} response within {timeout:?}"),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                bail!("broker {addr} closed the connection instead of answering {name}")
            }
            Ok(Err(e)) => Err(e).with_context(|| format!("broker {addr}: reading {name} response")),
            Ok(Ok(body)) => Ok(body),
        }
    }
}

/// The Kafka name of an API key, e.g. "Metadata" (ApiKey's Debug is Kafka's own name).
pub fn api_name(key: i16) -> String {
    match ApiKey::try_from(key) {
        Ok(api) => format!("{api:?}"),
        Err(()) => format!("API {key}"),
    }
}
