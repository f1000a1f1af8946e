//! Produce and fetch through the coordinator, without sockets: what the broker spends
//! per request once the bytes have arrived, and before they are sent.
//!
//! - `produce`: `partition_append` is `Partition::append` of each partition's batch
//!   (producer checks, CRC-32C, write to the page cache; default flush policy, so no
//!   fsync), to compare with `cargo bench -p strom-storage --bench log` (`append`).
//!   `request` is the whole in-process path of a Produce frame: header and body decode
//!   (`request::decode_header`, `dispatch::route`), the handler (`dispatch::run`, which
//!   moves the append to tokio's blocking pool as the server does) and the encoded
//!   response frame.
//! - `fetch`: `partition_fetch` is `Partition::fetch` of one batch per partition,
//!   walking a 256 MiB log; `request` is the in-process path of a Fetch frame for the
//!   same batches: decode, the handler (resolve, read on the blocking pool) and
//!   `dispatch::encode_response`.
//!
//! Both start from a `Coordinator` and `Broker` built as `strom serve` builds them
//! (default `BrokerConfig`, multi-threaded tokio runtime). Every file stays in the page
//! cache: these measure CPU and copies, not the disk. Throughput is record bytes per
//! request; `STROM_BENCH_CLOCK=cpu` times the CPU of every thread of the process instead
//! of wall-clock time (see `support`). Run with `cargo bench -p strom-server --bench
//! partition`; `cargo test --benches` runs each once on small logs; `STROM_BENCH_DIR`
//! picks where files go.

mod support;

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use kafka_protocol::messages::{ApiKey, FetchResponse, ProduceResponse, ResponseHeader};
use kafka_protocol::protocol::Decodable;
use strom_coordinator::{BrokerSettings, Coordinator, NewTopic, Partition};
use strom_server::dispatch::{self, Route};
use strom_server::response_frame::ResponseFrame;
use strom_server::{Broker, BrokerConfig, HostPort, MmapAlloc, request};
use strom_storage::{LogConfig, SystemClock};
use support::{FETCH_VERSION, MIB, PRODUCE_VERSION, SHAPES, Shape, Stopwatch};
use tempfile::TempDir;
use tokio::runtime::Runtime;

// The allocator the `strom` binary runs with, so allocation costs are the broker's.
#[global_allocator]
static ALLOC: MmapAlloc = MmapAlloc::new();

/// A broker on a fresh directory, set up as `strom serve` sets one up.
struct InProcess {
    runtime: Runtime,
    broker: Arc<Broker>,
    max_message_bytes: u64,
    _dir: TempDir,
}

impl InProcess {
    fn new() -> Self {
        let dir = support::bench_dir();
        let config = BrokerConfig {
            data_dir: dir.path().to_path_buf(),
            ..BrokerConfig::default()
        };
        let settings: BrokerSettings = config.broker_settings();
        let max_message_bytes = settings.defaults.max_message_bytes;
        let coordinator =
            Coordinator::open(settings, Arc::new(SystemClock)).expect("opening coordinator");
        let broker = Broker::new(
            Arc::new(config),
            HostPort::new("localhost", 9092),
            Arc::new(coordinator),
        );
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("runtime");
        InProcess {
            runtime,
            broker: Arc::new(broker),
            max_message_bytes,
            _dir: dir,
        }
    }

    /// Creates the bench topic with the shape's partitions, deleting it first if it
    /// exists, and returns its partitions.
    fn fresh_topic(&self, shape: &Shape) -> Vec<Arc<Partition>> {
        let coordinator = self.broker.coordinator();
        if coordinator.topic(support::TOPIC).is_some() {
            coordinator.delete_topic(support::TOPIC).expect("delete");
        }
        let new = NewTopic {
            name: support::TOPIC.into(),
            partitions: shape.partitions,
            replication_factor: -1,
            configs: BTreeMap::new(),
        };
        coordinator.create_topic(&new, false).expect("create");
        coordinator
            .topic(support::TOPIC)
            .expect("created")
            .partitions()
    }

    /// One request frame through decode, handler and response encoding, as a connection
    /// runs it; returns the response frame (a Fetch frame's record sets still in their
    /// files, as the connection sends them with `sendfile`).
    fn serve(&self, api: ApiKey, version: i16, frame: Bytes) -> ResponseFrame {
        let (header, body) = request::decode_header(api, version, frame).expect("header");
        let Route::Handle { handler, request } =
            dispatch::route(api, &header, body).expect("routed")
        else {
            panic!("{api:?} v{version} must reach its handler");
        };
        self.runtime
            .block_on(dispatch::run(handler, self.broker.clone(), header, request))
            .expect("handled")
    }
}

/// The body of a response frame: past the size prefix and the v0 response header.
fn response_body(frame: ResponseFrame) -> Bytes {
    let mut frame = frame.to_bytes().expect("record sets readable");
    assert_eq!(frame.get_i32() as usize, frame.len());
    ResponseHeader::decode(&mut frame, 0).expect("response header");
    frame
}

/// Appends a shape's requests, starting the topic over (untimed) every
/// [`append_reset_bytes`], before any partition's log would roll.
struct Producer {
    inproc: InProcess,
    shape: Shape,
    batch: Bytes,
    frame: Bytes,
    partitions: Vec<Arc<Partition>>,
    written: u64,
}

/// Bytes appended before the topic starts over: one default segment (1 GiB) in all, so
/// new segments and their index files cost what they cost in production, once per GiB.
fn append_reset_bytes() -> u64 {
    if support::test_mode() {
        4 * MIB
    } else {
        LogConfig::default().segment_bytes
    }
}

impl Producer {
    fn new(shape: Shape) -> Self {
        let inproc = InProcess::new();
        let partitions = inproc.fresh_topic(&shape);
        let batch = shape.batch();
        let frame = support::produce_frame(&shape, &batch);
        Producer {
            inproc,
            shape,
            batch,
            frame,
            partitions,
            written: 0,
        }
    }

    fn append_partitions(&self) {
        for p in &self.partitions {
            let outcome = p.append(self.batch.clone(), self.inproc.max_message_bytes);
            black_box(outcome.expect("append"));
        }
    }

    fn request(&self) {
        let frame = self
            .inproc
            .serve(ApiKey::Produce, PRODUCE_VERSION, self.frame.clone());
        black_box(frame);
    }

    /// Checks once, untimed, that a produce request succeeds for every partition.
    fn check_request(&mut self) {
        let frame = self
            .inproc
            .serve(ApiKey::Produce, PRODUCE_VERSION, self.frame.clone());
        let mut body = response_body(frame);
        let response = ProduceResponse::decode(&mut body, PRODUCE_VERSION).expect("decodes");
        let parts: Vec<_> = response
            .responses
            .iter()
            .flat_map(|t| &t.partition_responses)
            .collect();
        assert_eq!(parts.len(), self.shape.partitions as usize);
        assert!(parts.iter().all(|p| p.error_code == 0), "{parts:?}");
        self.written += self.shape.request_bytes();
    }

    fn run(&mut self, iters: u64, step: fn(&Self)) -> Duration {
        let len = self.shape.request_bytes();
        let reset_every = append_reset_bytes();
        let mut timed = Duration::ZERO;
        let mut done = 0;
        while done < iters {
            if self.written + len > reset_every {
                self.partitions = self.inproc.fresh_topic(&self.shape);
                self.written = 0;
            }
            let n = ((reset_every - self.written) / len).clamp(1, iters - done);
            let watch = Stopwatch::start();
            for _ in 0..n {
                step(self);
            }
            timed += watch.elapsed();
            self.written += n * len;
            done += n;
        }
        timed
    }
}

fn produce(c: &mut Criterion) {
    let mut group = c.benchmark_group("produce");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .sample_size(50);
    for shape in SHAPES {
        group.throughput(Throughput::Bytes(shape.request_bytes()));
        // Built on first use, so a filter that skips a bench skips its setup too.
        let mut producer = None;
        group.bench_function(BenchmarkId::new("partition_append", shape.name), |b| {
            let p = producer.get_or_insert_with(|| Producer::new(shape));
            b.iter_custom(|iters| p.run(iters, Producer::append_partitions));
        });
        group.bench_function(BenchmarkId::new("request", shape.name), |b| {
            let p = producer.get_or_insert_with(|| Producer::new(shape));
            p.check_request();
            b.iter_custom(|iters| p.run(iters, Producer::request));
        });
    }
    group.finish();
}

/// Size of the log each fetch bench walks (in all partitions together).
fn fetch_log_bytes() -> u64 {
    if support::test_mode() {
        4 * MIB
    } else {
        256 * MIB
    }
}

/// A topic filled with a shape's requests, read back one batch per partition per
/// fetch, walking from the start and wrapping at the end so every fetch is a full one.
struct Fetcher {
    inproc: InProcess,
    shape: Shape,
    partitions: Vec<Arc<Partition>>,
    /// A Fetch frame per batch position (requests differ only in their offsets).
    frames: Vec<Bytes>,
    /// The batch position the next fetch reads.
    next: usize,
}

impl Fetcher {
    fn new(shape: Shape) -> Self {
        let inproc = InProcess::new();
        let partitions = inproc.fresh_topic(&shape);
        let batch = shape.batch();
        let batches = (fetch_log_bytes() / shape.request_bytes()).max(1) as usize;
        for _ in 0..batches {
            for p in &partitions {
                p.append(batch.clone(), inproc.max_message_bytes)
                    .expect("append");
            }
        }
        let frames = (0..batches)
            .map(|at| support::fetch_frame(&shape, Self::offset(&shape, at)))
            .collect();
        Fetcher {
            inproc,
            shape,
            partitions,
            frames,
            next: 0,
        }
    }

    fn offset(shape: &Shape, at: usize) -> u64 {
        (at * shape.records_per_batch) as u64
    }

    fn advance(&mut self) -> usize {
        let at = self.next;
        self.next = (self.next + 1) % self.frames.len();
        at
    }

    /// `partition_max_bytes` of the shape's fetch requests.
    fn max_bytes(&self) -> usize {
        if self.shape.partitions == 1 {
            MIB as usize
        } else {
            64 * 1024
        }
    }

    fn fetch_partitions(&mut self, iters: u64) -> Duration {
        let expected = self.shape.batch_bytes() as usize;
        let max_bytes = self.max_bytes();
        let watch = Stopwatch::start();
        for _ in 0..iters {
            let at = self.advance();
            let offset = Self::offset(&self.shape, at);
            for p in &self.partitions {
                let fetched = p.fetch(offset, max_bytes).expect("fetch");
                assert_eq!(fetched.records.len(), expected, "fetch at {offset}");
                black_box(fetched);
            }
        }
        watch.elapsed()
    }

    fn requests(&mut self, iters: u64) -> Duration {
        let min_len = self.shape.request_bytes() as usize;
        let watch = Stopwatch::start();
        for _ in 0..iters {
            let at = self.advance();
            let frame = self.frames[at].clone();
            let response = self.inproc.serve(ApiKey::Fetch, FETCH_VERSION, frame);
            assert!(response.len() > min_len);
            black_box(response);
        }
        watch.elapsed()
    }

    /// Checks once, untimed, that a fetch request returns one batch per partition.
    fn check_request(&self) {
        let frame = self
            .inproc
            .serve(ApiKey::Fetch, FETCH_VERSION, self.frames[0].clone());
        let mut body = response_body(frame);
        let response = FetchResponse::decode(&mut body, FETCH_VERSION).expect("decodes");
        let parts: Vec<_> = response
            .responses
            .iter()
            .flat_map(|t| &t.partitions)
            .collect();
        assert_eq!(parts.len(), self.shape.partitions as usize);
        for p in parts {
            assert_eq!(p.error_code, 0);
            let len = p.records.as_ref().map_or(0, Bytes::len);
            assert_eq!(len as u64, self.shape.batch_bytes());
        }
    }
}

fn fetch(c: &mut Criterion) {
    let mut group = c.benchmark_group("fetch");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .sample_size(50);
    for shape in SHAPES {
        group.throughput(Throughput::Bytes(shape.request_bytes()));
        let mut fetcher = None;
        group.bench_function(BenchmarkId::new("partition_fetch", shape.name), |b| {
            let f = fetcher.get_or_insert_with(|| Fetcher::new(shape));
            b.iter_custom(|iters| f.fetch_partitions(iters));
        });
        group.bench_function(BenchmarkId::new("request", shape.name), |b| {
            let f = fetcher.get_or_insert_with(|| Fetcher::new(shape));
            f.check_request();
            b.iter_custom(|iters| f.requests(iters));
        });
    }
    group.finish();
}

criterion_group!(benches, produce, fetch);
criterion_main!(benches);
