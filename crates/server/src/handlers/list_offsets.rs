//! ListOffsets (API 2): the offset for a time, or the earliest, latest or max-timestamp
//! offset of each partition.
//!
//! Special timestamps (Kafka's): -1 latest (the high watermark, which is also the last
//! stable offset until transactions exist), -2 earliest (log start), -3 the record with
//! the largest timestamp (v7+), -4 earliest local (v8+; all data is local: log start),
//! -5 earliest pending tiered upload (v9+; no tiered storage: none). For a real time
//! the log finds the first batch whose max timestamp reaches it and this handler
//! decodes that one batch to name the exact record, as Kafka does.

use std::io::{self, Read};
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{
    ApiKey, ListOffsetsRequest, ListOffsetsResponse, RequestHeader, RequestKind, ResponseKind,
};
use strom_coordinator::{CoordinatorError, Partition};
use strom_storage::BatchHeader;
use strom_storage::batch::HEADER_SIZE;

use crate::broker::Broker;
use crate::error::ServerError;
use crate::handlers::HandlerFuture;
use crate::handlers::blocking::run_blocking;
use crate::handlers::errors;

pub const LATEST: i64 = -1;
pub const EARLIEST: i64 = -2;
pub const MAX_TIMESTAMP: i64 = -3;
pub const EARLIEST_LOCAL: i64 = -4;
pub const EARLIEST_PENDING_UPLOAD: i64 = -5;

pub fn handle(broker: Arc<Broker>, header: RequestHeader, request: RequestKind) -> HandlerFuture {
    Box::pin(async move {
        let RequestKind::ListOffsets(request) = request else {
            return Err(ServerError::HandlerMismatch {
                expected: ApiKey::ListOffsets,
            });
        };
        let version = header.request_api_version;
        let response = run_blocking(ApiKey::ListOffsets, move || {
            list_offsets(&broker, version, &request)
        })
        .await?;
        Ok(ResponseKind::ListOffsets(response))
    })
}

fn list_offsets(
    broker: &Broker,
    version: i16,
    request: &ListOffsetsRequest,
) -> ListOffsetsResponse {
    let coordinator = broker.coordinator();
    let topics = request
        .topics
        .iter()
        .map(|t| {
            let topic = coordinator.topic(&t.name);
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let response = ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index)
                        .with_timestamp(-1)
                        .with_offset(-1)
                        .with_leader_epoch(-1);
                    let Some(partition) = topic.as_ref().and_then(|t| t.partition(p.partition_index))
                    else {
                        return response.with_error_code(ResponseError::UnknownTopicOrPartition.code());
                    };
                    if let Some(error) = errors::leader_epoch_error(p.current_leader_epoch, partition.leader_epoch()) {
                        return response.with_error_code(error.code());
                    }
                    match lookup(&partition, p.timestamp) {
                        Ok(Some((timestamp, offset))) => {
                            let found = response.with_timestamp(timestamp).with_offset(offset);
                            // leader_epoch exists from v4.
                            if version >= 4 {
                                found.with_leader_epoch(partition.leader_epoch())
                            } else {
                                found
                            }
                        }
                        Ok(None) => response,
                        Err(e) => {
                            tracing::warn!(topic = partition.topic(), partition = p.partition_index, error = %e, "list offsets failed");
                            response.with_error_code(errors::response_error(&e).code())
                        }
                    }
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(t.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}

/// `(timestamp, offset)` for a ListOffsets query; `None` when nothing matches.
fn lookup(partition: &Partition, timestamp: i64) -> Result<Option<(i64, i64)>, CoordinatorError> {
    Ok(match timestamp {
        LATEST => Some((-1, partition.high_watermark() as i64)),
        EARLIEST | EARLIEST_LOCAL => Some((-1, partition.log_start_offset()? as i64)),
        EARLIEST_PENDING_UPLOAD => None,
        MAX_TIMESTAMP => match partition.max_timestamp()? {
            // The batch's last offset names the batch; find the record itself.
            Some(max) => {
                let batch = partition.batch_at(max.offset)?;
                find_record(&batch, |ts| ts >= max.timestamp)
                    .or(Some((max.timestamp, max.offset as i64)))
            }
            None => None,
        },
        t if t < 0 => {
            return Err(CoordinatorError::InvalidConfig {
                name: "timestamp".into(),
                reason: format!("unknown special timestamp {t}"),
            });
        }
        t => match partition.offset_for_timestamp(t)? {
            Some(found) => {
                let start = partition.log_start_offset()? as i64;
                let batch = partition.batch_at(found.offset)?;
                find_record(&batch, |ts| ts >= t)
                    .filter(|(_, offset)| *offset >= start)
                    .or(Some((found.timestamp, found.offset as i64)))
            }
            None => None,
        },
    })
}

/// Decompressed record bytes [`find_record`] reads at most before it gives up (and
/// ListOffsets answers with the batch instead of the record). Far above a real batch
/// (`max.message.bytes` is 1 MiB by default; real data compresses 2-10x), far below
/// what a hostile one inflates to: 1 MiB of zstd can hold 32 GiB of zeros, 1 MiB of
/// gzip 1 GiB. Streamed, so this bounds the CPU time, never the memory.
const MAX_SCANNED_BYTES: u64 = 256 << 20;

/// The first record of the first batch in `batch` whose timestamp satisfies `hit`:
/// `(timestamp, offset)`, or `None` if no record does or the records do not parse.
///
/// The records were written by a client, so this reads as little of them as it can,
/// streaming: each record's length, timestamp delta and offset delta; keys, values and
/// headers are skipped by the record's length, and compressed records are inflated as
/// they are read, at most [`MAX_SCANNED_BYTES`] of them. It does not use
/// `kafka_protocol`'s `RecordBatchDecoder` (0.18), which inflates the whole batch into
/// memory first (a 1 MiB zstd batch made every ListOffsets that reached it allocate
/// 32 GiB), sizes a map for as many headers as a record claims
/// (`IndexMap::with_capacity`, whose hash table is initialised on allocation: 2^31-1
/// claimed headers wrote 4 GiB), and adds the client's deltas unchecked (a panic in
/// debug builds). Its snappy decoder also zero-fills whatever size a block claims
/// (4 GiB from a 6-byte block). The last three were found by
/// `fuzz/fuzz_targets/record_batch.rs`, which is why this is public: that target calls it.
pub fn find_record(batch: &Bytes, hit: impl Fn(i64) -> bool) -> Option<(i64, i64)> {
    let header = BatchHeader::parse_and_validate(batch).ok()?;
    let records = &batch[HEADER_SIZE..header.total_size()];
    match header.compression_codec() {
        0 => scan_records(records, &header, &hit),
        1 => scan_records(flate2::read::GzDecoder::new(records), &header, &hit),
        2 => scan_records(SnappyReader::new(records), &header, &hit),
        3 => scan_records(lz4::Decoder::new(records).ok()?, &header, &hit),
        4 => scan_records(
            zstd::stream::read::Decoder::new(records).ok()?,
            &header,
            &hit,
        ),
        _ => None,
    }
}

/// Kafka's snappy records, inflated block by block: xerial framing (`\x82SNAPPY\0`, a
/// version and a compatible version, then blocks of `[u32 length][raw snappy]`), or one
/// raw snappy block, as Kafka's Java client and kafka-protocol both accept. A block's
/// size, claimed in its first bytes, is checked against what its bytes can inflate to
/// before anything is allocated.
struct SnappyReader<'a> {
    rest: &'a [u8],
    xerial: bool,
    block: io::Cursor<Vec<u8>>,
}

impl<'a> SnappyReader<'a> {
    const XERIAL_MAGIC: &'static [u8; 8] = b"\x82SNAPPY\0";
    /// Snappy's densest op, a 3-byte copy, writes 64 bytes.
    const MAX_RATIO: usize = 22;

    fn new(records: &'a [u8]) -> Self {
        let (rest, xerial) = match records.strip_prefix(Self::XERIAL_MAGIC) {
            // The version and compatible version that follow are not checked.
            Some(framed) => (framed.get(8..).unwrap_or_default(), true),
            None => (records, false),
        };
        SnappyReader {
            rest,
            xerial,
            block: io::Cursor::new(Vec::new()),
        }
    }

    /// Inflates the next block into `self.block`; `false` at the end.
    fn next_block(&mut self) -> io::Result<bool> {
        let invalid = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_owned());
        if self.rest.is_empty() {
            return Ok(false);
        }
        let block = if self.xerial {
            let (length, rest) = self
                .rest
                .split_first_chunk::<4>()
                .ok_or_else(|| invalid("truncated block length"))?;
            let (block, rest) = rest
                .split_at_checked(u32::from_be_bytes(*length) as usize)
                .ok_or_else(|| invalid("truncated block"))?;
            self.rest = rest;
            block
        } else {
            std::mem::take(&mut self.rest)
        };
        let size = snap::raw::decompress_len(block).map_err(|e| invalid(&e.to_string()))?;
        if size > block.len().saturating_mul(Self::MAX_RATIO) {
            return Err(invalid("block claims more than snappy can inflate"));
        }
        let mut out = vec![0; size];
        let n = snap::raw::Decoder::new()
            .decompress(block, &mut out)
            .map_err(|e| invalid(&e.to_string()))?;
        out.truncate(n);
        self.block = io::Cursor::new(out);
        Ok(true)
    }
}

impl Read for SnappyReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let n = self.block.read(buf)?;
            if n > 0 || buf.is_empty() || !self.next_block()? {
                return Ok(n);
            }
        }
    }
}

/// Walks the uncompressed records of a batch with `header`; see [`find_record`]. A
/// record whose timestamp or offset overflows is not a hit.
fn scan_records(
    records: impl Read,
    header: &BatchHeader,
    hit: &impl Fn(i64) -> bool,
) -> Option<(i64, i64)> {
    let mut records = records.take(MAX_SCANNED_BYTES);
    for _ in 0..header.records_count {
        let length = u64::try_from(read_varint(&mut records)?).ok()?;
        let mut record = (&mut records).take(length);
        let mut attributes = [0u8; 1];
        record.read_exact(&mut attributes).ok()?;
        let timestamp_delta = read_varlong(&mut record)?;
        let offset_delta = read_varint(&mut record)?;
        let timestamp = header.base_timestamp.checked_add(timestamp_delta);
        let offset = header.base_offset.checked_add(i64::from(offset_delta));
        if let (Some(timestamp), Some(offset)) = (timestamp, offset)
            && hit(timestamp)
        {
            return Some((timestamp, offset));
        }
        // Key, value and headers.
        io::copy(&mut record, &mut io::sink()).ok()?;
        if record.limit() > 0 {
            return None; // truncated
        }
    }
    None
}

/// A zig-zag varlong (at most 10 bytes), as in Kafka's record format.
fn read_varlong(r: &mut impl Read) -> Option<i64> {
    let mut raw = 0u64;
    for i in 0..10 {
        let mut byte = [0u8; 1];
        r.read_exact(&mut byte).ok()?;
        raw |= u64::from(byte[0] & 0x7f) << (7 * i);
        if byte[0] & 0x80 == 0 {
            return Some((raw >> 1) as i64 ^ -((raw & 1) as i64));
        }
    }
    None
}

/// A zig-zag varint: a varlong that must fit an i32.
fn read_varint(r: &mut impl Read) -> Option<i32> {
    i32::try_from(read_varlong(r)?).ok()
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::TopicName;
    use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
    use kafka_protocol::protocol::{Encodable, StrBytes};
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };

    use super::*;
    use crate::test_support::{self, create_topic, response_as};

    /// A real batch of records with the given timestamps, compressed with gzip.
    fn batch(timestamps: &[i64]) -> Bytes {
        batch_with(Compression::Gzip, timestamps)
    }

    /// A real batch of records with the given timestamps, as kafka-protocol encodes it.
    fn batch_with(compression: Compression, timestamps: &[i64]) -> Bytes {
        let records: Vec<Record> = timestamps
            .iter()
            .enumerate()
            .map(|(i, ts)| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 0,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                // Offset minus sequence constant, or kafka-protocol starts a new batch.
                sequence: i as i32 - 1,
                timestamp: *ts,
                key: None,
                value: Some(Bytes::from_static(b"v")),
                headers: Default::default(),
            })
            .collect();
        let mut buf = bytes::BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            &records,
            &RecordEncodeOptions {
                version: 2,
                compression,
            },
        )
        .expect("encode");
        buf.freeze()
    }

    async fn query(
        broker: &Arc<Broker>,
        partition: i32,
        timestamp: i64,
    ) -> ListOffsetsPartitionResponse {
        let request = ListOffsetsRequest::default()
            .with_replica_id((-1).into())
            .with_topics(vec![
                ListOffsetsTopic::default()
                    .with_name(TopicName(StrBytes::from_static_str("t")))
                    .with_partitions(vec![
                        ListOffsetsPartition::default()
                            .with_partition_index(partition)
                            .with_timestamp(timestamp)
                            .with_current_leader_epoch(-1),
                    ]),
            ]);
        let r = response_as!(
            ListOffsets,
            test_support::call(handle, broker, 7, request.into()).await
        );
        r.encode(&mut bytes::BytesMut::new(), 7).expect("encodes");
        r.topics[0].partitions[0].clone()
    }

    fn varlong(v: i64) -> Vec<u8> {
        let mut z = ((v << 1) ^ (v >> 63)) as u64;
        let mut out = Vec::new();
        while z >= 0x80 {
            out.push(z as u8 | 0x80);
            z >>= 7;
        }
        out.push(z as u8);
        out
    }

    /// A valid batch (storage's CRC and header) around hand-made records, each given as
    /// (timestamp delta, offset delta, header count claimed).
    fn raw_batch(base_timestamp: i64, records: &[(i64, i64, i64)]) -> Bytes {
        let mut payload = Vec::new();
        for &(timestamp_delta, offset_delta, headers) in records {
            let mut body = vec![0u8]; // attributes
            body.extend(varlong(timestamp_delta));
            body.extend(varlong(offset_delta));
            body.extend(varlong(-1)); // null key
            body.extend(varlong(-1)); // null value
            body.extend(varlong(headers));
            payload.extend(varlong(body.len() as i64));
            payload.extend(body);
        }
        Bytes::from(strom_storage::testing::encode_batch(
            records.len() as i32,
            base_timestamp,
            base_timestamp,
            -1,
            &payload,
        ))
    }

    /// Peak resident memory of this process (test threads included), in KiB.
    fn peak_rss_kib() -> u64 {
        std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("VmHWM:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            })
            .unwrap_or(0)
    }

    #[test]
    fn finds_the_record_in_every_codec() {
        for c in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let b = batch_with(c, &[100, 300, 200]);
            assert_eq!(find_record(&b, |ts| ts >= 100), Some((100, 0)), "{c:?}");
            assert_eq!(find_record(&b, |ts| ts >= 150), Some((300, 1)), "{c:?}");
            assert_eq!(find_record(&b, |ts| ts >= 301), None, "{c:?}");
        }
    }

    /// A zstd frame (RFC 8878) of `prefix` then `zeros` zero bytes, as a hostile producer
    /// would write it: one RLE block (4 bytes) per 128 KiB.
    fn zstd_zeros(prefix: &[u8], zeros: usize) -> Vec<u8> {
        // Magic, then a frame header of one window descriptor: 2^17 bytes.
        let mut frame = vec![0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x38];
        let block = |frame: &mut Vec<u8>, last: bool, kind: u32, size: usize| {
            let header = u32::from(last) | (kind << 1) | ((size as u32) << 3);
            frame.extend_from_slice(&header.to_le_bytes()[..3]);
        };
        block(&mut frame, false, 0, prefix.len()); // raw block
        frame.extend_from_slice(prefix);
        let mut left = zeros;
        while left > 0 {
            let n = left.min(128 << 10);
            left -= n;
            block(&mut frame, left == 0, 1, n); // RLE block
            frame.push(0);
        }
        frame
    }

    #[test]
    fn a_zstd_bomb_is_streamed_not_inflated() {
        // 12 KiB of zstd holding one record of 384 MiB (zeros: attributes, deltas...).
        let length = 384usize << 20;
        let b = compressed_batch(4, &zstd_zeros(&varlong(length as i64), length));
        assert!(b.len() < 16 << 10, "{}", b.len());
        let before = peak_rss_kib();
        // The record's head is read without inflating the rest...
        assert_eq!(find_record(&b, |ts| ts >= 1000), Some((1000, 0)));
        // ...and skipping it stops at MAX_SCANNED_BYTES.
        assert_eq!(find_record(&b, |_| false), None);
        assert!(
            peak_rss_kib() < before + 128 * 1024,
            "peak RSS grew from {before} KiB"
        );
    }

    /// A valid batch of `codec` around `records`, already compressed.
    fn compressed_batch(codec: u8, records: &[u8]) -> Bytes {
        use strom_storage::batch::{ATTRIBUTES_OFFSET, CRC_OFFSET};
        let mut b = strom_storage::testing::encode_batch(1, 1000, 1000, -1, records);
        b[ATTRIBUTES_OFFSET + 1] = codec;
        let crc = crc32c::crc32c(&b[ATTRIBUTES_OFFSET..]);
        b[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
        Bytes::from(b)
    }

    #[test]
    fn a_snappy_block_claiming_4_gib_is_refused_unallocated() {
        // Found by fuzz/record_batch: kafka-protocol zero-filled the claimed size.
        let mut records = b"\x82SNAPPY\0\0\0\0\x01\0\0\0\x01".to_vec();
        records.extend_from_slice(&6u32.to_be_bytes());
        records.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f, 0]);
        let before = peak_rss_kib();
        assert_eq!(find_record(&compressed_batch(2, &records), |_| true), None);
        assert!(
            peak_rss_kib() < before + 512 * 1024,
            "peak RSS grew from {before} KiB"
        );
        // Raw (unframed) snappy takes the same path.
        assert_eq!(
            find_record(&compressed_batch(2, &records[20..]), |_| true),
            None
        );
    }

    #[test]
    fn a_record_claiming_2_pow_31_headers_costs_nothing() {
        // Found by fuzz/record_batch: kafka-protocol's decoder initialised a 4 GiB hash
        // table for this one 80-byte batch, on every ListOffsets that reached it.
        let batch = raw_batch(1000, &[(5, 0, i64::from(i32::MAX))]);
        let before = peak_rss_kib();
        assert_eq!(find_record(&batch, |ts| ts >= 0), Some((1005, 0)));
        assert!(
            peak_rss_kib() < before + 512 * 1024,
            "peak RSS grew from {before} KiB"
        );
    }

    #[test]
    fn overflowing_timestamps_are_not_hits() {
        // base + delta overflows i64: kafka-protocol's decoder panicked (debug builds).
        let batch = raw_batch(i64::MAX, &[(1, 0, 0), (0, 1, 0)]);
        assert_eq!(find_record(&batch, |_| true), Some((i64::MAX, 1)));
        let batch = raw_batch(i64::MIN, &[(-1, 0, 0)]);
        assert_eq!(find_record(&batch, |_| true), None);
        // Truncated and garbage records are no match, not a panic.
        let mut cut = raw_batch(0, &[(0, 0, 0)]).to_vec();
        cut.truncate(cut.len() - 1);
        assert_eq!(find_record(&Bytes::from(cut), |_| true), None);
    }

    #[tokio::test]
    async fn special_and_real_timestamps() {
        let t = test_support::broker();
        let c = t.broker.coordinator();
        create_topic(&t.broker, "t", 1, &[]);
        let p = c.topic("t").and_then(|t| t.partition(0)).expect("p");
        assert_eq!(query(&t.broker, 0, LATEST).await.offset, 0);
        assert_eq!(
            query(&t.broker, 0, 100).await.offset,
            -1,
            "empty log: no match"
        );
        p.append(batch(&[100, 300, 200]), 1 << 20).expect("append");
        p.append(batch(&[400, 500]), 1 << 20).expect("append");
        assert_eq!(query(&t.broker, 0, EARLIEST).await.offset, 0);
        assert_eq!(query(&t.broker, 0, LATEST).await.offset, 5);
        let r = query(&t.broker, 0, 150).await;
        assert_eq!(
            (r.timestamp, r.offset),
            (300, 1),
            "the exact record inside the batch"
        );
        let r = query(&t.broker, 0, 450).await;
        assert_eq!((r.timestamp, r.offset, r.leader_epoch), (500, 4, 0));
        assert_eq!(query(&t.broker, 0, 501).await.offset, -1);
        let r = query(&t.broker, 0, MAX_TIMESTAMP).await;
        assert_eq!((r.timestamp, r.offset), (500, 4));
        p.delete_records_before(1).expect("delete");
        assert_eq!(query(&t.broker, 0, EARLIEST).await.offset, 1);
        assert_eq!(
            query(&t.broker, 0, 0).await.offset,
            1,
            "never before the log start"
        );
        assert_eq!(
            query(&t.broker, 3, LATEST).await.error_code,
            ResponseError::UnknownTopicOrPartition.code()
        );
    }
}
