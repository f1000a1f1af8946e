//! `__consumer_offsets` records in Kafka v2 record batches: [`build_batch`] makes the
//! bytes the coordinator appends with `Log::append`; [`read_records`] turns a log read
//! back into records when the coordinator loads the topic on start-up.
//!
//! The batch header is the one `strom_storage::batch` documents; a batch built here has
//! base offset 0 (the log assigns it), leader epoch -1 (the log stamps it), attributes 0
//! (no compression, CreateTime, not transactional), no producer (-1/-1/-1), and every
//! record stamped with the one timestamp. Records inside, zig-zag varints:
//! ```text
//! length varint (bytes after it) | attributes i8 (0) | timestamp_delta varlong |
//! offset_delta varint | key_length varint (-1 null) | key | value_length varint
//! (-1 null) | value | header_count varint |
//!   per header: key_length varint | key | value_length varint (-1 null) | value
//! ```
//! Reading checks each batch's length and CRC-32C, skips control batches (transaction
//! markers carry no group data), and refuses compressed batches: Strom writes
//! uncompressed, as Kafka does by default (`offsets.topic.compression.codec` = none).

use bytes::{BufMut, Bytes, BytesMut};
use strom_storage::BatchHeader;
use strom_storage::batch::{
    ATTRIBUTES_OFFSET, CRC_OFFSET, HEADER_SIZE, LENGTH_OFFSET, LOG_OVERHEAD, MAGIC_V2,
    NO_PRODUCER_ID,
};

use super::CoordinatorRecord;
use super::wire::Reader;
use super::{RecordError, Result};

fn invalid(what: &'static str, detail: impl Into<String>) -> RecordError {
    RecordError::Invalid {
        what,
        detail: detail.into(),
    }
}

fn put_varint(buf: &mut BytesMut, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        buf.put_u8((z as u8) | 0x80);
        z >>= 7;
    }
    buf.put_u8(z as u8);
}

fn put_nullable(buf: &mut BytesMut, b: Option<&[u8]>) {
    match b {
        Some(b) => {
            put_varint(buf, b.len() as i64);
            buf.put_slice(b);
        }
        None => put_varint(buf, -1),
    }
}

/// One v2 batch holding `records` (key, value or `None` for a tombstone), all stamped
/// `timestamp`, ready for `Log::append`.
pub fn build_raw_batch(records: &[(Bytes, Option<Bytes>)], timestamp: i64) -> Result<Bytes> {
    if records.is_empty() {
        return Err(invalid("record batch", "no records"));
    }
    let count =
        i32::try_from(records.len()).map_err(|_| invalid("record batch", "too many records"))?;
    let mut buf = BytesMut::new();
    buf.put_i64(0); // base offset
    buf.put_i32(0); // batch length, set below
    buf.put_i32(-1); // partition leader epoch
    buf.put_i8(MAGIC_V2);
    buf.put_u32(0); // crc, set below
    buf.put_i16(0); // attributes
    buf.put_i32(count - 1); // last offset delta
    buf.put_i64(timestamp); // base timestamp
    buf.put_i64(timestamp); // max timestamp
    buf.put_i64(NO_PRODUCER_ID);
    buf.put_i16(-1); // producer epoch
    buf.put_i32(-1); // base sequence
    buf.put_i32(count);
    debug_assert_eq!(buf.len(), HEADER_SIZE);
    let mut body = BytesMut::new();
    for (delta, (key, value)) in records.iter().enumerate() {
        body.clear();
        body.put_i8(0); // attributes
        put_varint(&mut body, 0); // timestamp delta
        put_varint(&mut body, delta as i64);
        put_nullable(&mut body, Some(key));
        put_nullable(&mut body, value.as_deref());
        put_varint(&mut body, 0); // headers
        put_varint(&mut buf, body.len() as i64);
        buf.put_slice(&body);
    }
    let length = i32::try_from(buf.len() - LOG_OVERHEAD)
        .map_err(|_| invalid("record batch", format!("{} bytes is too large", buf.len())))?;
    buf[LENGTH_OFFSET..LENGTH_OFFSET + 4].copy_from_slice(&length.to_be_bytes());
    let crc = strom_storage::batch::checksum(&buf[ATTRIBUTES_OFFSET..]);
    buf[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    Ok(buf.freeze())
}

/// One v2 batch of coordinator records (keys and values at the versions Kafka writes).
pub fn build_batch(records: &[CoordinatorRecord], timestamp: i64) -> Result<Bytes> {
    let encoded = records
        .iter()
        .map(CoordinatorRecord::encode)
        .collect::<Result<Vec<_>>>()?;
    build_raw_batch(&encoded, timestamp)
}

/// One record of a batch, its key and value still encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawRecord<'a> {
    pub offset: i64,
    pub timestamp: i64,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
}

fn read_nullable<'a>(r: &mut Reader<'a>) -> Result<Option<&'a [u8]>> {
    match r.varint()? {
        -1 => Ok(None),
        n if n < 0 => Err(r.err(format!("negative length {n}"))),
        n => Ok(Some(r.take(n as usize)?)),
    }
}

fn read_record<'a>(r: &mut Reader<'a>, header: &BatchHeader) -> Result<RawRecord<'a>> {
    let length = r.varint()?;
    if length < 0 {
        return Err(r.err(format!("negative record length {length}")));
    }
    let mut rec = Reader::new(r.take(length as usize)?, "record");
    let _attributes = rec.i8()?;
    let timestamp_delta = rec.varlong()?;
    let offset_delta = rec.varint()?;
    let key = read_nullable(&mut rec)?;
    let value = read_nullable(&mut rec)?;
    let headers = rec.varint()?;
    if headers < 0 {
        return Err(rec.err(format!("negative header count {headers}")));
    }
    for _ in 0..headers {
        match read_nullable(&mut rec)? {
            Some(_) => {}
            None => return Err(rec.err("null header key")),
        }
        read_nullable(&mut rec)?;
    }
    rec.finish()?;
    Ok(RawRecord {
        offset: header.base_offset.wrapping_add(i64::from(offset_delta)),
        timestamp: header.base_timestamp.wrapping_add(timestamp_delta),
        key,
        value,
    })
}

/// Calls `visit` with every record of the data batches in `buf` (whole batches, as
/// `Log::read` returns them) and returns the offset after the last batch.
fn for_each_raw_record<'a>(
    buf: &'a [u8],
    mut visit: impl FnMut(RawRecord<'a>) -> Result<()>,
) -> Result<Option<i64>> {
    let mut pos = 0usize;
    let mut next_offset = None;
    while pos < buf.len() {
        let rest = &buf[pos..];
        let header = BatchHeader::parse_and_validate(rest)
            .map_err(|e| invalid("record batch", format!("at byte {pos}: {e}")))?;
        let batch = &rest[..header.total_size()];
        pos += header.total_size();
        next_offset = Some(header.last_offset().wrapping_add(1));
        if header.is_control() {
            continue;
        }
        if header.compression_codec() != 0 {
            return Err(invalid(
                "record batch",
                format!(
                    "batch at offset {} is compressed (codec {}); only uncompressed batches are read",
                    header.base_offset,
                    header.compression_codec()
                ),
            ));
        }
        let mut r = Reader::new(&batch[HEADER_SIZE..], "record batch");
        if header.records_count < 0 {
            return Err(r.err(format!("negative record count {}", header.records_count)));
        }
        // Each record consumes at least one byte or fails, so a huge count ends quickly.
        for _ in 0..header.records_count {
            visit(read_record(&mut r, &header)?)?;
        }
        r.finish()?;
    }
    Ok(next_offset)
}

/// Every record of the data batches in `buf`, keys and values still encoded.
pub fn read_raw_records(buf: &[u8]) -> Result<Vec<RawRecord<'_>>> {
    let mut out = Vec::new();
    for_each_raw_record(buf, |r| {
        out.push(r);
        Ok(())
    })?;
    Ok(out)
}

/// A decoded record and where it was in the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedRecord {
    pub offset: i64,
    pub timestamp: i64,
    pub record: CoordinatorRecord,
}

/// What [`read_records`] found in a log read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadRecords {
    /// In log order; replay them in order (a later record of a key replaces an earlier one).
    pub records: Vec<LoadedRecord>,
    /// Records of types Strom does not know, skipped.
    pub skipped: usize,
    /// The offset after the last batch in the read (where to read next), `None` if the
    /// read held no batch.
    pub next_offset: Option<i64>,
}

/// Decodes the records of a log read of `__consumer_offsets`. Records of unknown types
/// are skipped and counted, as Kafka skips them when loading; anything else that does
/// not decode is an error.
pub fn read_records(buf: &[u8]) -> Result<ReadRecords> {
    let mut out = ReadRecords::default();
    out.next_offset = for_each_raw_record(buf, |raw| {
        let Some(key) = raw.key else {
            return Err(invalid(
                "record",
                format!("record at offset {} has a null key", raw.offset),
            ));
        };
        match CoordinatorRecord::decode(key, raw.value) {
            Ok(record) => out.records.push(LoadedRecord {
                offset: raw.offset,
                timestamp: raw.timestamp,
                record,
            }),
            Err(RecordError::UnknownRecordType(t)) => {
                tracing::warn!(offset = raw.offset, "skipping record of unknown type {t}");
                out.skipped += 1;
            }
            Err(e) => return Err(e),
        }
        Ok(())
    })?;
    Ok(out)
}
