//! Pre-generated record payloads.
//!
//! The hot loop must not allocate or generate data per record, so all
//! payloads are windows into one buffer made up front. The content is
//! text-like on purpose: words drawn from a fixed vocabulary of 512 random
//! lowercase "words" (2–9 letters) separated by spaces, picked by a seeded
//! xorshift generator. Random bytes would make every compression figure
//! meaningless (nothing compresses), and a repeated pattern (what
//! `rdkafka_performance` sends) would make it flattering (everything
//! compresses to nothing); this sits between, like log lines or JSON: lz4
//! finds the repeated words, zstd and gzip also the skewed letter
//! frequencies. Ratios measured are in benches/README.md.
//!
//! Records start at scattered offsets in a 32 MiB buffer, so a batch is
//! neither one payload repeated nor a run of overlapping windows: with a
//! 1 MiB buffer, zstd (whose window spans the whole batch) found the
//! overlaps and compressed to 9 %, against 48 % for lz4.

/// Span of possible start offsets: a power of two, so any odd stride
/// visits every offset before repeating.
const SPAN: usize = 32 << 20;
/// Distance between consecutive records' starts (odd, about 5 MB).
const STRIDE: usize = 5_000_011;

/// A buffer of generated text and a record size; `get(i)` is record `i`.
pub struct Payloads {
    buf: Vec<u8>,
    record_size: usize,
    span: usize,
}

impl Payloads {
    /// Generates payloads of `record_size` bytes (deterministic for a seed).
    pub fn new(record_size: usize, seed: u64) -> Self {
        Self::with_span(record_size, seed, SPAN)
    }

    /// `span` must be a power of two (tests use a small one: generating
    /// 32 MiB takes a second in a debug build).
    fn with_span(record_size: usize, seed: u64, span: usize) -> Self {
        let len = record_size + span;
        let mut rng = XorShift::new(seed);
        let vocabulary: Vec<Vec<u8>> = (0..512)
            .map(|_| {
                let n = 2 + rng.below(8) as usize;
                (0..n).map(|_| b'a' + rng.below(26) as u8).collect()
            })
            .collect();
        let mut buf = Vec::with_capacity(len + 16);
        while buf.len() < len {
            // A skewed pick (the min of two draws) makes some words much more
            // frequent than others, as in natural text.
            let a = rng.below(vocabulary.len() as u64);
            let b = rng.below(vocabulary.len() as u64);
            buf.extend_from_slice(&vocabulary[a.min(b) as usize]);
            buf.push(b' ');
        }
        buf.truncate(len);
        Payloads {
            buf,
            record_size,
            span,
        }
    }

    /// The payload of record number `index`.
    pub fn get(&self, index: u64) -> &[u8] {
        let start = (index as usize).wrapping_mul(STRIDE) % self.span;
        &self.buf[start..start + self.record_size]
    }

    pub fn record_size(&self) -> usize {
        self.record_size
    }
}

/// xorshift64*: tiny, seedable, good enough for filler text.
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> Self {
        XorShift(seed.max(1))
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n` (slightly biased for huge `n`; irrelevant here).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_payload_has_the_record_size() {
        for size in [0, 1, 8, 100, 1024, 16384] {
            let p = Payloads::with_span(size, 7, 1 << 16);
            for i in [0, 1, 250, 251, 1_000_000] {
                assert_eq!(p.get(i).len(), size);
            }
        }
    }

    #[test]
    fn consecutive_payloads_differ() {
        let p = Payloads::with_span(1024, 7, 1 << 16);
        assert_ne!(p.get(0), p.get(1));
        assert_ne!(p.get(1), p.get(2));
    }

    #[test]
    fn content_is_text() {
        let p = Payloads::with_span(4096, 1, 1 << 16);
        assert!(
            p.get(3)
                .iter()
                .all(|b| b.is_ascii_lowercase() || *b == b' ')
        );
    }
}
