//! `request_body`: an arbitrary body for every (API, version) whose body the broker
//! decodes, through `dispatch::route` exactly as a connection calls it after the header.
//!
//! Input: two selector bytes, then the body. The selector (big-endian u16, modulo the
//! number of cases) picks one of `strom_fuzz::DECODED`: every version `HANDLERS`
//! serves, Produce v2 (decoded to refuse it partition by partition), and every codec
//! version of the APIs without a handler (decoded before the connection is closed).
//! `request_frame` reaches the same decoders, but must first get a frame and a header
//! right; here every input is a body.
//!
//! Decoding may fail; it must not panic, abort, or fill memory. Huge array counts
//! allocate through `MmapAlloc` (see `strom_fuzz`), as in the broker, so only memory a
//! decoder really writes counts against libFuzzer's `-rss_limit_mb`.

#![no_main]

use bytes::Bytes;
use kafka_protocol::messages::RequestHeader;
use libfuzzer_sys::fuzz_target;
use strom_fuzz::decoded_case;
use strom_server::MmapAlloc;
use strom_server::dispatch::{self, Route};

#[global_allocator]
static ALLOC: MmapAlloc = MmapAlloc::new();

fuzz_target!(|data: &[u8]| {
    let [a, b, body @ ..] = data else {
        return;
    };
    let (api, version) = decoded_case([*a, *b]);
    let header = RequestHeader::default()
        .with_request_api_key(api as i16)
        .with_request_api_version(version)
        .with_correlation_id(1);
    match dispatch::route(api, &header, Bytes::copy_from_slice(body)) {
        Ok(Route::Handle { handler, .. }) => assert_eq!(handler.api, api),
        Ok(Route::Respond(_)) => {}
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
