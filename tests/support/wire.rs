//! Raw Kafka requests over a real socket, encoded with `kafka-protocol`: for tests of
//! APIs and behaviours no installed client exercises directly.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

/// Read and write timeout of a [`Conn`].
pub const IO_TIMEOUT: Duration = Duration::from_secs(15);

/// One connection speaking Kafka framing.
pub struct Conn {
    pub stream: TcpStream,
    correlation_id: i32,
}

impl Conn {
    pub fn open(addr: SocketAddr) -> Conn {
        let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT).expect("connect");
        Conn::from_stream(stream)
    }

    /// A connection made elsewhere (e.g. from a chosen source address).
    pub fn from_stream(stream: TcpStream) -> Conn {
        stream.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
        stream.set_write_timeout(Some(IO_TIMEOUT)).expect("timeout");
        stream.set_nodelay(true).expect("nodelay");
        Conn {
            stream,
            correlation_id: 0,
        }
    }

    /// Sends one request; returns its correlation id.
    pub fn send<R: Encodable>(&mut self, api: ApiKey, version: i16, request: &R) -> i32 {
        self.correlation_id += 1;
        let header = RequestHeader::default()
            .with_request_api_key(api as i16)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("strom-test")));
        let mut body = BytesMut::new();
        header
            .encode(&mut body, api.request_header_version(version))
            .expect("encode header");
        request.encode(&mut body, version).expect("encode request");
        let mut frame = (body.len() as i32).to_be_bytes().to_vec();
        frame.extend_from_slice(&body);
        self.stream.write_all(&frame).expect("send request");
        self.correlation_id
    }

    /// Reads one response to `correlation_id`.
    pub fn receive<R: Decodable>(&mut self, api: ApiKey, version: i16, correlation_id: i32) -> R {
        let mut size = [0u8; 4];
        self.stream
            .read_exact(&mut size)
            .unwrap_or_else(|e| panic!("no {api:?} response: {e}"));
        let len = usize::try_from(i32::from_be_bytes(size)).expect("negative frame size");
        let mut body = vec![0u8; len];
        self.stream.read_exact(&mut body).expect("response body");
        let mut body = Bytes::from(body);
        let header = ResponseHeader::decode(&mut body, api.response_header_version(version))
            .expect("decode response header");
        assert_eq!(
            header.correlation_id, correlation_id,
            "{api:?} correlation id"
        );
        let response = R::decode(&mut body, version).expect("decode response");
        assert!(!body.has_remaining(), "{api:?}: trailing bytes in response");
        response
    }

    pub fn call<Req: Encodable, Resp: Decodable>(
        &mut self,
        api: ApiKey,
        version: i16,
        request: &Req,
    ) -> Resp {
        let id = self.send(api, version, request);
        self.receive(api, version, id)
    }
}
