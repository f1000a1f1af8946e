//! Generators for the properties: plans of appends (batch shapes, timestamps, leader
//! epochs), log configs small enough to span several segments and fill indexes, and
//! damage to a segment file. Also lays a plan out as encoded batches.

use proptest::prelude::*;
use proptest::sample::Index;
use strom_storage::LogConfig;
use strom_storage::batch::{
    BASE_OFFSET_OFFSET, CRC_OFFSET, LENGTH_OFFSET, MAGIC_OFFSET, PARTITION_LEADER_EPOCH_OFFSET,
};
use strom_storage::testing::encode_batch;

// A segment whose time index fills up (small `segment.index.bytes`) has no slot for
// the entry sealing adds; the configs below make that happen often, and the timestamp
// checks hold for such segments too (found by these properties, fixed in
// `LogSegment::load`).

/// One batch to append, before timestamps are laid out.
#[derive(Debug, Clone)]
pub struct BatchSpec {
    records: i32,
    payload_len: usize,
    /// Change of the base timestamp from the previous batch's (mostly forward).
    ts_step: i64,
    /// max_timestamp - base_timestamp.
    ts_spread: i64,
    producer_id: i64,
    seed: u8,
}

/// One `Log::append` call: one or more batches back to back.
#[derive(Debug, Clone)]
pub struct AppendSpec {
    pub batches: Vec<BatchSpec>,
    pub leader_epoch: i32,
}

pub fn batch_spec() -> impl Strategy<Value = BatchSpec> {
    (
        1i32..20,
        0usize..3000,
        -100i64..300,
        0i64..100,
        prop_oneof![Just(-1i64), 0i64..1000],
        any::<u8>(),
    )
        .prop_map(
            |(records, payload_len, ts_step, ts_spread, producer_id, seed)| BatchSpec {
                records,
                payload_len,
                ts_step,
                ts_spread,
                producer_id,
                seed,
            },
        )
}

pub fn plan(appends: std::ops::Range<usize>) -> impl Strategy<Value = Vec<AppendSpec>> {
    prop::collection::vec(
        (prop::collection::vec(batch_spec(), 1..4), 0i32..5).prop_map(|(batches, leader_epoch)| {
            AppendSpec {
                batches,
                leader_epoch,
            }
        }),
        appends,
    )
}

/// Small segments and index intervals so a case spans several segments with several
/// index entries each; sometimes indexes so small that they fill up and force rolls.
pub fn config() -> impl Strategy<Value = LogConfig> {
    (
        4096u64..=16384,
        1u64..=4096,
        prop_oneof![3 => Just(64 * 1024u64), 1 => 12u64..=256],
    )
        .prop_map(
            |(segment_bytes, index_interval_bytes, segment_index_bytes)| LogConfig {
                segment_bytes,
                index_interval_bytes,
                segment_index_bytes,
                segment_ms: None,
                retention_ms: None,
                ..LogConfig::default()
            },
        )
}

/// Encodes the batches of a plan, laying out timestamps that mostly grow: each base
/// timestamp moves from the previous one by `ts_step` (never below 0). `ts` carries the
/// running timestamp between calls.
pub fn encode_plan(plan: &[AppendSpec], ts: &mut i64) -> Vec<(Vec<Vec<u8>>, i32)> {
    plan.iter()
        .map(|append| {
            let batches = append
                .batches
                .iter()
                .map(|b| {
                    *ts = (*ts + b.ts_step).max(0);
                    let payload: Vec<u8> = (0..b.payload_len)
                        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(b.seed))
                        .collect();
                    encode_batch(b.records, *ts, *ts + b.ts_spread, b.producer_id, &payload)
                })
                .collect();
            (batches, append.leader_epoch)
        })
        .collect()
}

/// Where in the last segment to damage it.
#[derive(Debug, Clone)]
pub enum Damage {
    /// Cut the file at a position in `[0, size)`.
    Truncate(Index),
    /// Flip one bit of one byte.
    Flip(Index, u8),
    /// Flip one bit inside a chosen header field of a chosen batch: these must all be
    /// detected, except the leader epoch (see `recovery_after_damage_keeps_*`).
    FlipField(Index, HeaderField, Index, u8),
}

#[derive(Debug, Clone, Copy)]
pub enum HeaderField {
    BaseOffset,
    Length,
    LeaderEpoch,
    Magic,
    Crc,
}

impl HeaderField {
    pub fn range(self) -> std::ops::Range<usize> {
        let (at, len) = match self {
            HeaderField::BaseOffset => (BASE_OFFSET_OFFSET, 8),
            HeaderField::Length => (LENGTH_OFFSET, 4),
            HeaderField::LeaderEpoch => (PARTITION_LEADER_EPOCH_OFFSET, 4),
            HeaderField::Magic => (MAGIC_OFFSET, 1),
            HeaderField::Crc => (CRC_OFFSET, 4),
        };
        at..at + len
    }
}

pub fn damage() -> impl Strategy<Value = Damage> {
    let field = prop_oneof![
        Just(HeaderField::BaseOffset),
        Just(HeaderField::Length),
        Just(HeaderField::LeaderEpoch),
        Just(HeaderField::Magic),
        Just(HeaderField::Crc),
    ];
    prop_oneof![
        2 => any::<Index>().prop_map(Damage::Truncate),
        2 => (any::<Index>(), 0u8..8).prop_map(|(at, bit)| Damage::Flip(at, bit)),
        1 => (any::<Index>(), field, any::<Index>(), 0u8..8)
            .prop_map(|(batch, field, at, bit)| Damage::FlipField(batch, field, at, bit)),
    ]
}
