//! CPU cost of the broker's protocol work on ~1 MiB requests, with no files or sockets.
//!
//! - `produce_decode`: what the broker does with a Produce frame (acks=-1, 1 KiB
//!   records; the shapes are in `support`) before anything is written, step by step:
//!   `header` (`request::decode_header`), `body` (`dispatch::route`, which decodes the
//!   body with `kafka-protocol`), `validate` (the batch header walk of
//!   `Partition::append` plus the header, length and CRC-32C check `Log::append` runs on
//!   every batch), and `total`, all three in a row.
//! - `fetch_encode`: `dispatch::encode_response` of a Fetch response carrying ~1 MiB of
//!   batches (what the connection writes), next to `copy_floor`, a plain copy of the
//!   same record bytes into one fresh buffer: the encoder copies the records into the
//!   frame, so this is the least such an encoder can cost.
//!
//! Throughput is record bytes per request; `STROM_BENCH_CLOCK=cpu` times CPU instead of
//! wall-clock time (see `support`). Run with `cargo bench -p strom-server
//! --bench codec`.

mod support;

use std::hint::black_box;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{
    ApiKey, FetchResponse, ProduceRequest, RequestHeader, RequestKind, ResponseKind, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use strom_coordinator::producer_state::ProducerBatch;
use strom_server::MmapAlloc;
use strom_server::dispatch::{self, Route};
use strom_server::request;
use strom_storage::BatchHeader;
use strom_storage::batch::BatchIter;
use support::{FETCH_VERSION, PRODUCE_VERSION, SHAPES, Shape};

// The allocator the `strom` binary runs with, so allocation costs are the broker's.
#[global_allocator]
static ALLOC: MmapAlloc = MmapAlloc::new();

/// The default `message.max.bytes`, which `Partition::append` checks every batch against.
const MAX_MESSAGE_BYTES: u64 = 1_048_588;

fn decode_header(frame: Bytes) -> (RequestHeader, Bytes) {
    request::decode_header(ApiKey::Produce, PRODUCE_VERSION, frame).expect("header decodes")
}

fn decode_body(header: &RequestHeader, body: Bytes) -> Box<RequestKind> {
    match dispatch::route(ApiKey::Produce, header, body).expect("routed") {
        Route::Handle { request, .. } => request,
        Route::Respond(_) => panic!("a served Produce version must reach its handler"),
    }
}

/// The checks a produce makes before its batches are written, in the order it makes
/// them: `Partition::append` walks the batch headers (size limit, producer sequences),
/// then `Log::append` parses and CRC-checks each batch. Returns the batches seen.
fn validate(request: &RequestKind) -> usize {
    let RequestKind::Produce(ProduceRequest { topic_data, .. }) = request else {
        panic!("not a produce request");
    };
    let mut batches = 0;
    for partition in topic_data.iter().flat_map(|t| &t.partition_data) {
        let records = partition.records.as_ref().expect("records");
        for (_, h) in BatchIter::new(records) {
            assert!(h.total_size() as u64 <= MAX_MESSAGE_BYTES);
            black_box(ProducerBatch::from_header(&h));
        }
        let mut pos = 0;
        while pos < records.len() {
            let h = BatchHeader::parse_and_validate(&records[pos..]).expect("valid batch");
            pos += h.total_size();
            batches += 1;
        }
    }
    batches
}

fn produce_decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("produce_decode");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50);
    for shape in SHAPES {
        let frame = support::produce_frame(&shape, &shape.batch());
        let (header, body) = decode_header(frame.clone());
        let decoded = decode_body(&header, body.clone());
        assert_eq!(validate(&decoded), shape.partitions as usize);
        group.throughput(Throughput::Bytes(shape.request_bytes()));

        group.bench_function(BenchmarkId::new("header", shape.name), |b| {
            b.iter_custom(|n| support::time(n, || decode_header(frame.clone())))
        });
        group.bench_function(BenchmarkId::new("body", shape.name), |b| {
            b.iter_custom(|n| support::time(n, || decode_body(&header, body.clone())))
        });
        group.bench_function(BenchmarkId::new("validate", shape.name), |b| {
            b.iter_custom(|n| support::time(n, || validate(&decoded)))
        });
        group.bench_function(BenchmarkId::new("total", shape.name), |b| {
            b.iter_custom(|n| {
                support::time(n, || {
                    let (header, body) = decode_header(frame.clone());
                    let request = decode_body(&header, body);
                    validate(&request);
                    request
                })
            })
        });
    }
    group.finish();
}

/// A Fetch response as the handler builds it for `shape`, every partition carrying
/// one batch (a `Bytes` handle on it, as `Log::read` returns).
fn fetch_response(shape: &Shape, batch: &Bytes) -> ResponseKind {
    let partitions = (0..shape.partitions)
        .map(|index| {
            PartitionData::default()
                .with_partition_index(index)
                .with_high_watermark(1 << 20)
                .with_last_stable_offset(1 << 20)
                .with_log_start_offset(0)
                .with_records(Some(batch.clone()))
        })
        .collect();
    ResponseKind::Fetch(
        FetchResponse::default()
            .with_session_id(0)
            .with_responses(vec![
                FetchableTopicResponse::default()
                    .with_topic(TopicName(StrBytes::from_static_str(support::TOPIC)))
                    .with_partitions(partitions),
            ]),
    )
}

fn encode(response: &ResponseKind) -> Bytes {
    dispatch::encode_response(ApiKey::Fetch, FETCH_VERSION, 1, response).expect("encodes")
}

/// Every partition's records copied into one buffer allocated at its final size.
fn copy_floor(response: &ResponseKind) -> BytesMut {
    let ResponseKind::Fetch(fetch) = response else {
        panic!("not a fetch response");
    };
    let records = || {
        fetch
            .responses
            .iter()
            .flat_map(|t| &t.partitions)
            .filter_map(|p| p.records.as_ref())
    };
    let mut buf = BytesMut::with_capacity(records().map(Bytes::len).sum());
    for r in records() {
        buf.extend_from_slice(r);
    }
    buf
}

fn fetch_encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("fetch_encode");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50);
    for shape in SHAPES {
        let batch = shape.batch();
        let response = fetch_response(&shape, &batch);
        let frame = encode(&response);
        // The frame holds its own copy of every batch: the records are not referenced.
        assert!(frame.len() as u64 > shape.request_bytes());
        assert!(!frame.as_ptr_range().contains(&batch.as_ptr()));
        group.throughput(Throughput::Bytes(shape.request_bytes()));

        group.bench_function(BenchmarkId::new("encode_response", shape.name), |b| {
            b.iter_custom(|n| support::time(n, || encode(&response)))
        });
        group.bench_function(BenchmarkId::new("copy_floor", shape.name), |b| {
            b.iter_custom(|n| support::time(n, || copy_floor(&response)))
        });
    }
    group.finish();
}

criterion_group!(benches, produce_decode, fetch_encode);
criterion_main!(benches);
