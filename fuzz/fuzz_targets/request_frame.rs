//! `request_frame`: bytes as a client's socket delivers them, through every step the
//! broker takes before a handler runs.
//!
//! Input: one control byte, then the wire bytes. The control byte's low nibble is how
//! many bytes each socket read returns (0 = 4096, else 1-15: partial reads), bit 4
//! picks tight frame limits (1 KiB frames, 256 B non-Produce) instead of the broker's
//! defaults (`socket.request.max.bytes` 100 MiB, `non.produce.request.max.bytes`
//! 8 MiB).
//!
//! The wire is read frame after frame the way `connection::read_requests` reads it
//! (the connection module is private and async over TCP; this is its sequence of
//! public steps, minus the budget and the task spawning): `FrameReader::read_head`
//! (size prefix and limits), the API key lookup, the non-Produce size cap,
//! `FrameReader::read_body`, `request::decode_header`, then `dispatch::route`, which
//! decodes the body (or answers ApiVersions/Produce v2 without a handler). Any error
//! closes the connection, so it ends the input here too. Checked on the way: a frame's
//! size is within the limits, its body is exactly that size and starts with the head,
//! and a ready response frame's size prefix matches its length.

#![no_main]

use bytes::Buf;
use kafka_protocol::messages::ApiKey;
use libfuzzer_sys::fuzz_target;
use strom_fuzz::{Chunked, now};
use strom_server::dispatch::{self, Route};
use strom_server::frame::{FrameReader, HEAD_LEN};
use strom_server::{BrokerConfig, MmapAlloc, ServerError, request};

#[global_allocator]
static ALLOC: MmapAlloc = MmapAlloc::new();

/// More frames than this cost time without reaching new code.
const MAX_FRAMES: usize = 32;

/// The connection logs why it closes: the error's message must format.
fn closed(e: &ServerError) {
    let _ = e.to_string();
}

fuzz_target!(|data: &[u8]| {
    let Some((&control, wire)) = data.split_first() else {
        return;
    };
    let chunk = match usize::from(control & 0x0f) {
        0 => 4096,
        n => n,
    };
    let (max_frame, non_produce_max) = if control & 0x10 != 0 {
        (1024, 256)
    } else {
        let config = BrokerConfig::default();
        let max = usize::try_from(config.socket_request_max_bytes).expect("positive");
        let non_produce = usize::try_from(config.non_produce_request_max_bytes).expect("positive");
        (max, non_produce.min(max))
    };

    // Called without `wait_for_frame` (which starts the read deadline, a tokio timer),
    // the reader sets no deadline: the framing and size checks run without a runtime.
    let read_timeout = std::time::Duration::from_millis(
        u64::try_from(BrokerConfig::default().socket_request_read_timeout_ms).unwrap_or(30_000),
    );
    let mut frames = FrameReader::new(Chunked::new(wire, chunk), max_frame, read_timeout);
    for _ in 0..MAX_FRAMES {
        let head = match now(frames.read_head()) {
            Ok(Some(head)) => head,
            Ok(None) => return,
            Err(e) => return closed(&e),
        };
        assert!((HEAD_LEN..=max_frame).contains(&head.size), "{head:?}");
        let Ok(api) = ApiKey::try_from(head.api_key()) else {
            return;
        };
        if api != ApiKey::Produce && head.size > non_produce_max {
            return;
        }
        let frame = match now(frames.read_body(&head)) {
            Ok(frame) => frame,
            Err(e) => return closed(&e),
        };
        assert_eq!(frame.len(), head.size);
        assert_eq!(frame[..HEAD_LEN], head.head);
        let (header, body) = match request::decode_header(api, head.api_version(), frame) {
            Ok(decoded) => decoded,
            Err(e) => return closed(&e),
        };
        assert_eq!(
            (header.request_api_key, header.request_api_version),
            (head.api_key(), head.api_version())
        );
        match dispatch::route(api, &header, body) {
            Ok(Route::Handle { handler, .. }) => assert_eq!(handler.api, api),
            Ok(Route::Respond(mut response)) => {
                let size = response.get_i32();
                assert_eq!(usize::try_from(size).ok(), Some(response.len()));
            }
            Err(e) => return closed(&e),
        }
    }
});
