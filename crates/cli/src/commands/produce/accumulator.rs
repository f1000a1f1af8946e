//! Record batches being filled, one open batch per partition, as the Java producer's
//! RecordAccumulator: a batch closes when the next record would take it past
//! `--batch-size` (its size as encoded, before compression), when it is
//! `--linger-ms` old, or at the end of the input. A closed batch goes to the
//! [`Encoder`].
//!
//! Records are kept in reusable slots: after the first batch of a partition, filling a
//! slot only moves two `Bytes` (slices of an input chunk) and a timestamp into it, so
//! the hot path allocates nothing, not even for `--header`s, which each slot keeps.

use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{Compression, Record, TimestampType};

use super::encoder::{Batch, Encoder};

/// A v2 record batch's header: base offset to record count.
pub const BATCH_OVERHEAD: usize = 61;

/// Record headers as kafka-protocol's `Record` holds them.
pub type Headers = IndexMap<StrBytes, Option<Bytes>>;

/// Options for [`Accumulator::new`].
pub struct AccumulatorConfig {
    pub partitions: usize,
    pub batch_size: usize,
    pub linger: Duration,
    pub compression: Compression,
    pub headers: Headers,
}

/// The open batches of every partition of one topic.
pub struct Accumulator {
    batch_size: usize,
    linger: Duration,
    headers: Headers,
    /// Encoded size of `headers`, the same in every record.
    header_bytes: usize,
    open: Vec<OpenBatch>,
    encoder: Encoder,
}

struct OpenBatch {
    /// Slots `..len` hold this batch's records; later ones are kept for reuse.
    slots: Vec<Record>,
    len: usize,
    /// Encoded size so far, batch header included.
    size: usize,
    first_timestamp: i64,
    since: Option<Instant>,
}

impl Accumulator {
    pub fn new(config: AccumulatorConfig) -> Accumulator {
        let header_bytes = config
            .headers
            .iter()
            .map(|(k, v)| {
                varint_size(k.len() as i64)
                    + k.len()
                    + v.as_ref()
                        .map_or(1, |v| varint_size(v.len() as i64) + v.len())
            })
            .sum::<usize>()
            + varint_size(config.headers.len() as i64);
        let open = (0..config.partitions.max(1))
            .map(|_| OpenBatch {
                slots: Vec::new(),
                len: 0,
                size: BATCH_OVERHEAD,
                first_timestamp: 0,
                since: None,
            })
            .collect();
        Accumulator {
            batch_size: config.batch_size,
            linger: config.linger,
            headers: config.headers,
            header_bytes,
            open,
            encoder: Encoder::new(config.compression),
        }
    }

    /// Adds one record to `partition`'s open batch. Returns whether a batch of that
    /// partition was closed (full), which moves the sticky partition on.
    #[inline]
    pub fn append(
        &mut self,
        partition: usize,
        key: Option<Bytes>,
        value: Bytes,
        timestamp: i64,
        now: Instant,
    ) -> anyhow::Result<bool> {
        let key_len = key.as_ref().map(Bytes::len);
        let mut closed = false;
        let batch = &self.open[partition];
        let mut size = self.record_size(batch, key_len, value.len(), timestamp);
        if batch.len > 0 && batch.size + size > self.batch_size {
            self.close(partition)?;
            closed = true;
            size = self.record_size(&self.open[partition], key_len, value.len(), timestamp);
        }
        let batch = &mut self.open[partition];
        if batch.len == 0 {
            batch.first_timestamp = timestamp;
            batch.since = Some(now);
        }
        let offset = batch.len;
        if let Some(slot) = batch.slots.get_mut(offset) {
            slot.key = key;
            slot.value = Some(value);
            slot.timestamp = timestamp;
        } else {
            batch.slots.push(Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: offset as i64,
                // The encoder keeps records in one batch only while offset - sequence
                // is constant; offset - 1 makes the batch's base sequence -1 (none).
                sequence: (offset as i32).wrapping_sub(1),
                timestamp,
                key,
                value: Some(value),
                headers: self.headers.clone(),
            });
        }
        batch.len += 1;
        batch.size += size;
        // A batch that cannot take even an empty record more is sent now rather than
        // when the next record for its partition comes.
        if batch.size + 8 > self.batch_size {
            self.close(partition)?;
            closed = true;
        }
        Ok(closed)
    }

    /// The encoded size of one record (its length prefix included) appended to `batch`,
    /// exactly as the encoder will write it when timestamps do not go backwards.
    #[inline]
    fn record_size(
        &self,
        batch: &OpenBatch,
        key_len: Option<usize>,
        value_len: usize,
        timestamp: i64,
    ) -> usize {
        let timestamp_delta = if batch.len == 0 {
            0
        } else {
            timestamp.wrapping_sub(batch.first_timestamp)
        };
        let key = key_len.map_or(1, |k| varint_size(k as i64) + k);
        let body = 1
            + varint_size(timestamp_delta)
            + varint_size(batch.len as i64)
            + key
            + varint_size(value_len as i64)
            + value_len
            + self.header_bytes;
        body + varint_size(body as i64)
    }

    /// Closes and encodes `partition`'s open batch, if it has records.
    fn close(&mut self, partition: usize) -> anyhow::Result<()> {
        let batch = &mut self.open[partition];
        if batch.len == 0 {
            return Ok(());
        }
        self.encoder
            .encode(partition, &mut batch.slots, batch.len, batch.size)?;
        batch.len = 0;
        batch.size = BATCH_OVERHEAD;
        batch.since = None;
        Ok(())
    }

    /// Closes the batches that have waited `--linger-ms`.
    pub fn close_expired(&mut self, now: Instant) -> anyhow::Result<()> {
        for partition in 0..self.open.len() {
            if self.open[partition]
                .since
                .is_some_and(|since| now.saturating_duration_since(since) >= self.linger)
            {
                self.close(partition)?;
            }
        }
        Ok(())
    }

    /// Closes every open batch (end of input).
    pub fn close_all(&mut self) -> anyhow::Result<()> {
        for partition in 0..self.open.len() {
            self.close(partition)?;
        }
        Ok(())
    }

    /// When the oldest open batch's linger runs out; `None` when no batch is open.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.open
            .iter()
            .filter_map(|b| b.since)
            .min()
            .map(|since| since + self.linger)
    }

    /// Batches closed and encoded since the last call, in the order they closed; with
    /// `all`, every closed batch (waiting for compression).
    pub async fn closed(&mut self, all: bool) -> anyhow::Result<Vec<Batch>> {
        self.encoder.finished(all).await
    }
}

/// Bytes of a zigzag varint (Kafka's varint and varlong) holding `n`.
#[inline]
fn varint_size(n: i64) -> usize {
    let zigzag = ((n << 1) ^ (n >> 63)) as u64;
    let bits = 64 - (zigzag | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::records::RecordBatchDecoder;

    fn accumulator(batch_size: usize, compression: Compression, headers: Headers) -> Accumulator {
        Accumulator::new(AccumulatorConfig {
            partitions: 2,
            batch_size,
            linger: Duration::from_millis(5),
            compression,
            headers,
        })
    }

    fn encoded(acc: &mut Accumulator) -> Vec<Batch> {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(acc.closed(true))
            .unwrap()
    }

    #[test]
    fn varint_sizes() {
        assert_eq!(varint_size(0), 1);
        assert_eq!(varint_size(-1), 1);
        assert_eq!(varint_size(63), 1);
        assert_eq!(varint_size(64), 2);
        assert_eq!(varint_size(-65), 2);
        assert_eq!(varint_size(i64::from(i32::MAX)), 5);
        assert_eq!(varint_size(i64::MIN), 10);
    }

    #[test]
    fn size_estimate_is_exact() {
        let mut headers = Headers::new();
        headers.insert(
            StrBytes::from_static_str("h"),
            Some(Bytes::from_static(b"v1")),
        );
        headers.insert(StrBytes::from_static_str("null"), None);
        for (key, value_len) in [(None, 0), (Some(&b""[..]), 5), (Some(&b"key"[..]), 300)] {
            let mut acc = accumulator(1 << 20, Compression::None, headers.clone());
            let now = Instant::now();
            for i in 0..100 {
                let value = Bytes::from(vec![b'x'; value_len]);
                acc.append(0, key.map(Bytes::copy_from_slice), value, 1_000 + i, now)
                    .unwrap();
            }
            let estimate = acc.open[0].size;
            acc.close_all().unwrap();
            let batch = encoded(&mut acc).remove(0);
            assert_eq!(
                batch.records.len(),
                estimate,
                "key {key:?}, value {value_len}"
            );
            assert_eq!(batch.count, 100);
        }
    }

    #[test]
    fn batches_close_at_batch_size_and_round_trip() {
        let mut headers = Headers::new();
        headers.insert(
            StrBytes::from_static_str("k"),
            Some(Bytes::from_static(b"v")),
        );
        for compression in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let mut acc = accumulator(4096, compression, headers.clone());
            let now = Instant::now();
            let mut closed = 0;
            for i in 0..1000u32 {
                let value = Bytes::from(format!("value {i}"));
                let key = (i % 2 == 0).then(|| Bytes::from(format!("key {i}")));
                if acc.append(1, key, value, 42, now).unwrap() {
                    closed += 1;
                }
            }
            acc.close_all().unwrap();
            let batches = encoded(&mut acc);
            assert_eq!(batches.len(), closed + 1, "{compression:?}");
            let mut next = 0u32;
            for batch in batches {
                assert_eq!(batch.partition, 1);
                if compression == Compression::None {
                    assert!(batch.records.len() <= 4096);
                }
                let mut buf = batch.records.clone();
                let set = RecordBatchDecoder::decode(&mut buf).unwrap();
                assert_eq!(set.compression, compression);
                assert_eq!(set.records.len() as u32, batch.count);
                for (i, r) in set.records.iter().enumerate() {
                    assert_eq!(r.offset, i as i64);
                    assert_eq!(r.sequence, -1 + i as i32);
                    assert_eq!(r.producer_id, -1);
                    assert_eq!(r.timestamp, 42);
                    assert_eq!(r.value.as_deref(), Some(format!("value {next}").as_bytes()));
                    let key = (next % 2 == 0).then(|| format!("key {next}"));
                    assert_eq!(r.key.as_deref(), key.as_deref().map(str::as_bytes));
                    assert_eq!(r.headers.len(), 1);
                    next += 1;
                }
            }
            assert_eq!(next, 1000);
        }
    }

    #[test]
    fn linger_closes_old_batches() {
        let mut acc = accumulator(1 << 20, Compression::None, Headers::new());
        let start = Instant::now();
        assert_eq!(acc.next_deadline(), None);
        acc.append(0, None, Bytes::from_static(b"a"), 1, start)
            .unwrap();
        let deadline = acc.next_deadline().unwrap();
        assert_eq!(deadline, start + Duration::from_millis(5));
        acc.close_expired(start).unwrap();
        assert_eq!(encoded(&mut acc).len(), 0);
        acc.close_expired(deadline).unwrap();
        assert_eq!(encoded(&mut acc).len(), 1);
        assert_eq!(acc.next_deadline(), None);
        // A slot is reused without its old record's data.
        acc.append(
            0,
            Some(Bytes::from_static(b"k")),
            Bytes::from_static(b"b"),
            2,
            start,
        )
        .unwrap();
        acc.close_all().unwrap();
        let batch = encoded(&mut acc).remove(0);
        let set = RecordBatchDecoder::decode(&mut batch.records.clone()).unwrap();
        assert_eq!(set.records[0].key.as_deref(), Some(&b"k"[..]));
        assert_eq!(set.records[0].value.as_deref(), Some(&b"b"[..]));
    }
}
