//! Fetch responses with record sets sent from segment files, spliced into the frame.
//!
//! The response is encoded by kafka-protocol like any other, except that each record
//! set to be sent from a file stands in as a 16-byte marker: a per-response nonce and
//! the set's index. The encoded frame is then cut at each marker's field, found by
//! searching for the field's exact encoding (length prefix and marker) after the
//! previous one, and the field is re-headed with the real length; the records follow
//! as a file part (see `crate::response_frame`). Only that length prefix is written
//! here (kafka-protocol keeps its primitive encoders private): an INT32, or an
//! UNSIGNED_VARINT in flexible versions; a test checks it against the codec's output.
//! Everything else in the message is the codec's.
//!
//! The nonce comes from SipHash with keys drawn at random per process, so a client
//! cannot predict it and plant a marker in record bytes that are inlined in the same
//! response (small sets are read and inlined rather than sent from the file).

use std::hash::{BuildHasher, RandomState};
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::BufMut;
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::ApiKey;
use strom_storage::FileRecords;

use crate::error::{Result, ServerError};
use crate::response_frame::{FramePart, ResponseFrame};

/// The first Fetch version whose records field is COMPACT_RECORDS (flexible versions).
const FIRST_FLEXIBLE_VERSION: i16 = 12;

const MARKER_LEN: usize = 16;

static NONCE_KEYS: LazyLock<RandomState> = LazyLock::new(RandomState::new);
static NONCE_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Hands out the markers of one response.
#[derive(Debug)]
pub struct Markers {
    nonce: u64,
    next: u64,
}

impl Markers {
    pub fn new() -> Self {
        let count = NONCE_COUNTER.fetch_add(1, Ordering::Relaxed);
        Markers {
            nonce: NONCE_KEYS.hash_one(count),
            next: 0,
        }
    }

    pub fn next_marker(&mut self) -> Bytes {
        let mut marker = [0u8; MARKER_LEN];
        marker[..8].copy_from_slice(&self.nonce.to_be_bytes());
        marker[8..].copy_from_slice(&self.next.to_be_bytes());
        self.next += 1;
        Bytes::copy_from_slice(&marker)
    }
}

impl Default for Markers {
    fn default() -> Self {
        Self::new()
    }
}

/// A record set to send from its file, and the marker standing in for it.
#[derive(Debug)]
pub struct FileSet {
    pub marker: Bytes,
    pub records: FileRecords,
}

/// Cuts `frame` (an encoded Fetch response of `version`, size prefix included) at each
/// set's marker and puts the set's file range there, in order.
pub fn splice(frame: Bytes, version: i16, sets: Vec<FileSet>) -> Result<ResponseFrame> {
    if sets.is_empty() {
        return Ok(ResponseFrame::Encoded(frame));
    }
    if frame.len() < 4 {
        return Err(splice_error("frame shorter than its size prefix".into()));
    }
    let mut meta = BytesMut::with_capacity(frame.len() + sets.len() * 4);
    meta.extend_from_slice(&frame[..4]); // rewritten below
    let mut cuts = Vec::with_capacity(sets.len());
    let mut cursor = 4usize;
    let mut file_bytes = 0usize;
    for set in &sets {
        let field = records_field(version, &set.marker)?;
        let at = memchr::memmem::find(&frame[cursor..], &field)
            .ok_or_else(|| splice_error("a record set's marker is missing".into()))?
            + cursor;
        meta.extend_from_slice(&frame[cursor..at]);
        records_prefix(&mut meta, version, set.records.len())?;
        cuts.push(meta.len());
        cursor = at + field.len();
        file_bytes += set.records.len();
    }
    meta.extend_from_slice(&frame[cursor..]);
    let size = i32::try_from(meta.len() - 4 + file_bytes)
        .map_err(|_| splice_error("response larger than a frame".into()))?;
    meta[..4].copy_from_slice(&size.to_be_bytes());
    let meta = meta.freeze();
    let mut parts = Vec::with_capacity(sets.len() * 2 + 1);
    let mut from = 0;
    for (cut, set) in cuts.into_iter().zip(sets) {
        parts.push(FramePart::Bytes(meta.slice(from..cut)));
        parts.push(FramePart::File(set.records));
        from = cut;
    }
    parts.push(FramePart::Bytes(meta.slice(from..)));
    Ok(ResponseFrame::Parts(parts))
}

/// The records field holding `data`, as the codec encodes it in this version.
fn records_field(version: i16, data: &Bytes) -> Result<BytesMut> {
    let mut buf = BytesMut::with_capacity(data.len() + 5);
    records_prefix(&mut buf, version, data.len())?;
    buf.extend_from_slice(data);
    Ok(buf)
}

/// The length prefix of a records field of `len` bytes: INT32 length (RECORDS), or in
/// flexible versions UNSIGNED_VARINT length + 1 (COMPACT_RECORDS).
fn records_prefix(buf: &mut BytesMut, version: i16, len: usize) -> Result<()> {
    let too_long = |_| splice_error(format!("{len} bytes of records do not fit a frame"));
    if version >= FIRST_FLEXIBLE_VERSION {
        let mut n = u32::try_from(len + 1).map_err(too_long)?;
        while n >= 0x80 {
            buf.put_u8((n as u8 & 0x7f) | 0x80);
            n >>= 7;
        }
        buf.put_u8(n as u8);
    } else {
        buf.put_i32(i32::try_from(len).map_err(too_long)?);
    }
    Ok(())
}

fn splice_error(reason: String) -> ServerError {
    ServerError::HandlerFailed {
        api: ApiKey::Fetch,
        reason: format!("splicing record sets into the response: {reason}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_matches_the_codec() {
        use kafka_protocol::messages::fetch_response::PartitionData;
        use kafka_protocol::protocol::Encodable;
        for version in [4, 11, 12, 17] {
            // After the records the codec writes only the (empty) tagged fields.
            let tail = usize::from(version >= FIRST_FLEXIBLE_VERSION);
            for len in [0usize, 1, 126, 127, 128, 16_382, 16_383, 16_384, 1 << 20] {
                let data = Bytes::from(vec![9u8; len]);
                let mut encoded = BytesMut::new();
                PartitionData::default()
                    .with_records(Some(data.clone()))
                    .encode(&mut encoded, version)
                    .expect("encodes");
                let field = records_field(version, &data).expect("field");
                let end = encoded.len() - tail;
                assert_eq!(
                    &encoded[end - field.len()..end],
                    &field[..],
                    "v{version} len {len}"
                );
            }
        }
    }

    #[test]
    fn markers_differ_within_and_across_responses() {
        let mut a = Markers::new();
        let mut b = Markers::new();
        let (a0, a1, b0) = (a.next_marker(), a.next_marker(), b.next_marker());
        assert_ne!(a0, a1);
        assert_ne!(a0, b0);
        assert_eq!(a0.len(), MARKER_LEN);
    }

    #[test]
    fn a_frame_without_the_marker_is_refused() {
        let frame = Bytes::from_static(&[0, 0, 0, 4, 1, 2, 3, 4]);
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f");
        std::fs::write(&path, b"0123456789").expect("write");
        let records = strom_storage::testing::file_records(&path, 0, 10).expect("records");
        let sets = vec![FileSet {
            marker: Markers::new().next_marker(),
            records,
        }];
        assert!(splice(frame, 12, sets).is_err());
    }
}
