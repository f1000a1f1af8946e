//! Helpers shared by Strom's fuzz targets (`fuzz_targets/`) and the seed generator
//! (`examples/gen_seeds.rs`).
//!
//! Every target installs [`strom_server::MmapAlloc`] as its global allocator, as the
//! `strom` binary does: `kafka-protocol` sizes arrays with `Vec::with_capacity(count)`
//! for a `count` read from the wire, and that allocator is what makes a 9-byte body
//! claiming 2^31 elements cost address space instead of an abort. A target without it
//! would report crashes the broker cannot have. The allocator maps such claims
//! `MAP_NORESERVE` and never touches them, so libFuzzer's `-rss_limit_mb` (checked on
//! resident memory, 2048 MB) still catches a decoder that really fills memory (see
//! `run.sh` for the limits and the sanitizer).

use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::LazyLock;
use std::task::{Context, Poll, Waker};

use kafka_protocol::messages::ApiKey;
use strom_server::handlers;
use strom_storage::batch::{
    ATTRIBUTES_OFFSET, CRC_OFFSET, HEADER_SIZE, LENGTH_OFFSET, LOG_OVERHEAD, MAGIC_OFFSET, MAGIC_V2,
};
use tokio::io::{AsyncRead, ReadBuf};

thread_local! {
    /// A runtime to be inside of: the frame reader arms a tokio timer (the request read
    /// deadline), which needs a time driver even though it never fires here.
    static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a current-thread runtime");
}

/// Polls a future that cannot wait (its I/O is in memory) to completion, inside a tokio
/// runtime context so it may arm timers.
///
/// # Panics
/// If the future returns `Pending`, which would mean it waits on something real.
pub fn now<F: Future>(future: F) -> F::Output {
    RUNTIME.with(|runtime| {
        let _context = runtime.enter();
        poll_once(future)
    })
}

fn poll_once<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("an in-memory read never waits"),
    }
}

/// An in-memory socket that hands out at most `chunk` bytes per read, so the frame
/// reader's partial-read paths run as they do over TCP.
pub struct Chunked<'a> {
    data: &'a [u8],
    chunk: usize,
}

impl<'a> Chunked<'a> {
    pub fn new(data: &'a [u8], chunk: usize) -> Self {
        Chunked {
            data,
            chunk: chunk.max(1),
        }
    }
}

impl AsyncRead for Chunked<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let n = self.chunk.min(self.data.len()).min(buf.remaining());
        let (now, rest) = self.data.split_at(n);
        buf.put_slice(now);
        self.data = rest;
        Poll::Ready(Ok(()))
    }
}

/// Every (API, version) whose body the server decodes: the versions [`handlers::HANDLERS`]
/// serves, Produce v2 (refused, but decoded to answer each partition), and every version
/// `kafka-protocol` knows of the APIs without a handler (decoded before the connection
/// is closed, see `strom_server::dispatch`). Versions refused before any decoding are
/// left out: feeding them bodies would test nothing.
pub static DECODED: LazyLock<Vec<(ApiKey, i16)>> = LazyLock::new(|| {
    let mut cases = Vec::new();
    for api in ApiKey::iter() {
        match handlers::find(api) {
            Some(h) => cases.extend((h.min_version..=h.max_version).map(|v| (api, v))),
            None => {
                let r = api.valid_versions();
                cases.extend((r.min..=r.max).map(|v| (api, v)));
            }
        }
    }
    cases.push((ApiKey::Produce, 2));
    cases
});

/// Picks a case of [`DECODED`] from two bytes (so a seed file can name its case).
pub fn decoded_case(selector: [u8; 2]) -> (ApiKey, i16) {
    let cases = &*DECODED;
    cases[usize::from(u16::from_be_bytes(selector)) % cases.len()]
}

/// The selector bytes [`decoded_case`] maps to `(api, version)`, if it is a case.
pub fn selector_of(api: ApiKey, version: i16) -> Option<[u8; 2]> {
    let i = DECODED.iter().position(|&c| c == (api, version))?;
    Some(u16::try_from(i).ok()?.to_be_bytes())
}

/// Makes the record batches at the start of `buf` pass the checks a fuzzer cannot solve
/// by mutation: for each whole batch (length field in range and all its bytes present)
/// sets magic 2 and a correct CRC-32C. Stops at the first batch that is not whole.
pub fn fix_batches(buf: &mut [u8]) {
    let mut pos = 0;
    while buf.len() - pos >= HEADER_SIZE {
        let b = &mut buf[pos..];
        let length = i32::from_be_bytes([
            b[LENGTH_OFFSET],
            b[LENGTH_OFFSET + 1],
            b[LENGTH_OFFSET + 2],
            b[LENGTH_OFFSET + 3],
        ]);
        let Ok(length) = usize::try_from(length) else {
            return;
        };
        let size = LOG_OVERHEAD + length;
        if size < HEADER_SIZE || size > b.len() {
            return;
        }
        b[MAGIC_OFFSET] = MAGIC_V2 as u8;
        let crc = crc32c::crc32c(&b[ATTRIBUTES_OFFSET..size]);
        b[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
        pos += size;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_served_version_is_a_case_and_selectors_round_trip() {
        for h in handlers::HANDLERS {
            for v in h.min_version..=h.max_version {
                let selector = selector_of(h.api, v).expect("served version is a case");
                assert_eq!(decoded_case(selector), (h.api, v));
            }
        }
        assert!(selector_of(ApiKey::Produce, 2).is_some());
        println!("{} (api, version) cases", DECODED.len());
    }

    #[test]
    fn fix_batches_makes_whole_batches_valid() {
        let mut b = strom_storage::testing::encode_batch(2, 0, 0, -1, b"xy");
        b[MAGIC_OFFSET] = 1;
        b[CRC_OFFSET] ^= 1;
        let mut two = b.clone();
        two.extend_from_slice(&b);
        two.extend_from_slice(&b[..20]);
        fix_batches(&mut two);
        let valid = strom_storage::batch::BatchIter::new(&two)
            .filter(|(at, _)| strom_storage::BatchHeader::parse_and_validate(&two[*at..]).is_ok())
            .count();
        assert_eq!(valid, 2);
    }
}
