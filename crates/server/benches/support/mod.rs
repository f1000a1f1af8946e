//! The workloads the server benches share: the two request shapes, and request frames
//! built exactly as a client sends them.
//!
//! Both shapes carry about 1 MiB of 1 KiB records per request, as the performance
//! targets are stated (1 KiB records in 1 MiB batches): one partition with one batch
//! just under 1 MiB, and 16 partitions with one batch just under 64 KiB each (what a
//! producer spreading keys over 16 partitions sends). Batch sizes stay under 1 MiB so
//! they pass the default `message.max.bytes` (1,048,588), as a real producer's must.
//!
//! Records are opaque bytes inside a valid v2 header and CRC
//! (`strom_storage::testing::batch_of`): the broker never looks past the batch header,
//! so their content does not change what is measured.
//!
//! Timings are wall-clock time by default. With `STROM_BENCH_CLOCK=cpu` they are the
//! CPU time of the whole process (every thread: the tokio blocking pool included)
//! instead, so criterion's throughput reads directly as bytes per CPU-second, the unit
//! of the performance targets, and stays honest on a machine shared with other work.
//!
//! Each bench binary uses a different part of this module.
#![allow(dead_code)]

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ApiKey, FetchRequest, ProduceRequest, RequestHeader, TopicName};
use kafka_protocol::protocol::{Encodable, StrBytes};
use strom_storage::testing::batch_of;
use strom_storage::{Clock, SystemClock};
use tempfile::TempDir;

/// Bytes per record.
pub const RECORD_SIZE: usize = 1024;
/// The topic every bench produces to and fetches from.
pub const TOPIC: &str = "bench";
/// Produce and Fetch versions librdkafka 2.x sends (the load generator's client):
/// neither is a flexible version, so lengths are fixed-width, not varints.
pub const PRODUCE_VERSION: i16 = 7;
pub const FETCH_VERSION: i16 = 11;
/// `MiB`, for sizes.
pub const MIB: u64 = 1024 * 1024;

/// How a request's ~1 MiB of records is spread.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// The bench id suffix.
    pub name: &'static str,
    pub partitions: i32,
    /// Records in each partition's one batch.
    pub records_per_batch: usize,
}

/// One partition, one batch of 1023 records (1,047,613 bytes, the most 1 KiB records
/// that fit 1 MiB).
pub const ONE_PARTITION: Shape = Shape {
    name: "1x1MiB",
    partitions: 1,
    records_per_batch: 1023,
};

/// 16 partitions, one batch of 63 records each (64,573 bytes; 1,033,168 in all).
pub const SIXTEEN_PARTITIONS: Shape = Shape {
    name: "16x64KiB",
    partitions: 16,
    records_per_batch: 63,
};

pub const SHAPES: [Shape; 2] = [ONE_PARTITION, SIXTEEN_PARTITIONS];

impl Shape {
    /// One partition's batch, stamped now (so retention would keep it).
    pub fn batch(&self) -> Bytes {
        batch_of(
            self.records_per_batch as i32,
            RECORD_SIZE,
            SystemClock.now_ms(),
        )
        .into()
    }

    /// Bytes of one partition's batch.
    pub fn batch_bytes(&self) -> u64 {
        (strom_storage::batch::HEADER_SIZE + self.records_per_batch * RECORD_SIZE) as u64
    }

    /// Record bytes per request: the throughput unit of every bench.
    pub fn request_bytes(&self) -> u64 {
        self.batch_bytes() * self.partitions as u64
    }
}

/// A request frame as `FrameReader::read_body` hands it on: header and body, without
/// the size prefix.
fn request_frame(api: ApiKey, version: i16, body: &impl Encodable) -> Bytes {
    let header = RequestHeader::default()
        .with_request_api_key(api as i16)
        .with_request_api_version(version)
        .with_correlation_id(1)
        .with_client_id(Some(StrBytes::from_static_str("strom-bench")));
    let mut buf = BytesMut::new();
    header
        .encode(&mut buf, api.request_header_version(version))
        .expect("encoding request header");
    body.encode(&mut buf, version)
        .expect("encoding request body");
    buf.freeze()
}

fn topic_name() -> TopicName {
    TopicName(StrBytes::from_static_str(TOPIC))
}

/// A Produce request (acks=-1) with `batch` for each partition of `shape`.
pub fn produce_frame(shape: &Shape, batch: &Bytes) -> Bytes {
    let partitions = (0..shape.partitions)
        .map(|index| {
            PartitionProduceData::default()
                .with_index(index)
                .with_records(Some(batch.clone()))
        })
        .collect();
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(topic_name())
                .with_partition_data(partitions),
        ]);
    request_frame(ApiKey::Produce, PRODUCE_VERSION, &request)
}

/// A Fetch request for every partition of `shape` at `offset`, allowing one batch per
/// partition, with librdkafka's other defaults (`fetch.wait.max.ms` 500,
/// `fetch.max.bytes` 50 MiB, read_uncommitted).
pub fn fetch_frame(shape: &Shape, offset: u64) -> Bytes {
    let partition_max_bytes = if shape.partitions == 1 {
        MIB as i32
    } else {
        64 * 1024
    };
    let partitions = (0..shape.partitions)
        .map(|index| {
            FetchPartition::default()
                .with_partition(index)
                .with_current_leader_epoch(-1)
                .with_fetch_offset(offset as i64)
                .with_log_start_offset(-1)
                .with_partition_max_bytes(partition_max_bytes)
        })
        .collect();
    let request = FetchRequest::default()
        .with_replica_id((-1).into())
        .with_max_wait_ms(500)
        .with_min_bytes(1)
        .with_max_bytes(50 * MIB as i32)
        .with_session_epoch(-1)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(topic_name())
                .with_partitions(partitions),
        ]);
    request_frame(ApiKey::Fetch, FETCH_VERSION, &request)
}

/// Whether criterion runs in test mode (`cargo test --benches`, or `--test`): each bench
/// runs once, so logs are kept small. Mirrors criterion's own rule.
pub fn test_mode() -> bool {
    let args: Vec<String> = std::env::args().collect();
    !args.iter().any(|a| a == "--bench") || args.iter().any(|a| a == "--test")
}

/// A fresh directory under `STROM_BENCH_DIR` (default: the system temp dir).
pub fn bench_dir() -> TempDir {
    let parent = std::env::var_os("STROM_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    tempfile::tempdir_in(parent).expect("creating bench directory")
}

/// Whether timings are process CPU time (`STROM_BENCH_CLOCK=cpu`) or wall-clock time.
pub fn cpu_clock() -> bool {
    static CPU: OnceLock<bool> = OnceLock::new();
    *CPU.get_or_init(|| match std::env::var("STROM_BENCH_CLOCK").as_deref() {
        Ok("cpu") => true,
        Ok("wall") | Err(_) => false,
        Ok(other) => panic!("STROM_BENCH_CLOCK={other}: expected cpu or wall"),
    })
}

/// Measures a timed region on the clock [`cpu_clock`] picks.
pub struct Stopwatch {
    wall: Instant,
    cpu: Duration,
}

impl Stopwatch {
    pub fn start() -> Self {
        Stopwatch {
            cpu: if cpu_clock() {
                process_cpu_time()
            } else {
                Duration::ZERO
            },
            wall: Instant::now(),
        }
    }

    pub fn elapsed(&self) -> Duration {
        if cpu_clock() {
            process_cpu_time().saturating_sub(self.cpu)
        } else {
            self.wall.elapsed()
        }
    }
}

/// Runs `f` `iters` times and returns the time taken, for `Bencher::iter_custom`. Each
/// result is dropped inside the timed region, as the broker drops it.
pub fn time<T>(iters: u64, mut f: impl FnMut() -> T) -> Duration {
    let watch = Stopwatch::start();
    for _ in 0..iters {
        black_box(f());
    }
    watch.elapsed()
}

/// CPU time used so far by every thread of this process. `std` has no such clock, and
/// `/proc/self/task/*/schedstat` lags by up to a scheduler tick for running threads;
/// `clock_gettime` brings the caller's own time up to date.
#[allow(unsafe_code)]
fn process_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call, and
    // CLOCK_PROCESS_CPUTIME_ID is a clock every Linux kernel provides.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_PROCESS_CPUTIME_ID)");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}
