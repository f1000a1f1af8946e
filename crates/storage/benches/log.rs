//! Storage benchmarks; the figures and how they were taken are in `BENCHMARKS.md`.
//!
//! - `append`: 1 MiB of 1 KiB records per append (as 64 batches of 16 records, like a
//!   librdkafka Produce request, and as one batch of 1024 records) next to a plain
//!   `write` of the same bytes to a file in the same directory. The ratio of the two is
//!   the figure.
//! - `read`: sequential 1 MiB `Log::read`s walking a 256 MiB log, next to a plain `pread`
//!   of the same bytes of the segment file into a reused buffer.
//! - `recovery`: opening a 256 MiB log after an unclean shutdown, which CRC-checks every
//!   batch, next to the CRC check alone over the same bytes in memory.
//!
//! All data stays in the page cache: these measure CPU and copy costs, not the disk.
//! Run with `cargo bench -p strom-storage --bench log`. `cargo test --benches` runs each
//! bench once on small data. `STROM_BENCH_DIR` picks where the files go (default: the
//! system temp dir).

use std::fs::{self, File, OpenOptions};
use std::hint::black_box;
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use strom_storage::batch::HEADER_SIZE;
use strom_storage::testing::batch_of;
use strom_storage::{
    BatchHeader, CHECKPOINT_FILE, CLEAN_SHUTDOWN_FILE, Clock, Log, LogConfig, LogSegment,
    SystemClock,
};
use tempfile::TempDir;

const MIB: u64 = 1024 * 1024;
/// Records per append: 1 MiB of 1 KiB records.
const RECORD_SIZE: usize = 1024;
const RECORDS_PER_APPEND: usize = 1024;
/// Records per batch in the Produce-request-like append (64 batches of 16 KiB).
const RECORDS_PER_BATCH: usize = 16;
/// `max_bytes` of each read.
const READ_BYTES: usize = MIB as usize;

/// Whether criterion runs in test mode (`cargo test --benches`, or `--test`): each bench
/// runs once, so the data is kept small. Mirrors criterion's own rule.
fn test_mode() -> bool {
    let args: Vec<String> = std::env::args().collect();
    !args.iter().any(|a| a == "--bench") || args.iter().any(|a| a == "--test")
}

/// Size of the logs the read and recovery benches use.
fn log_bytes() -> u64 {
    if test_mode() { 4 * MIB } else { 256 * MIB }
}

/// How many bytes the append benches write before starting over, to bound disk use: one
/// default segment (1 GiB), so the log creates a new segment (and its index files) as
/// often as a real one does. Starting over happens just before the log would roll.
fn append_reset_bytes() -> u64 {
    if test_mode() {
        4 * MIB
    } else {
        LogConfig::default().segment_bytes
    }
}

fn bench_dir() -> TempDir {
    let parent = std::env::var_os("STROM_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    tempfile::tempdir_in(parent).expect("creating bench directory")
}

fn clock() -> Arc<dyn Clock> {
    Arc::new(SystemClock)
}

/// 1 MiB of 1 KiB records as `RECORDS_PER_APPEND / records_per_batch` valid v2 batches
/// back to back.
fn produce_request(records_per_batch: usize) -> Bytes {
    let now = SystemClock.now_ms();
    let batch = batch_of(records_per_batch as i32, RECORD_SIZE, now);
    assert_eq!(batch.len(), HEADER_SIZE + records_per_batch * RECORD_SIZE);
    batch.repeat(RECORDS_PER_APPEND / records_per_batch).into()
}

/// Where an append bench writes; `reset` empties it without timing.
trait Sink {
    fn write(&mut self, data: &Bytes);
    fn reset(&mut self);
}

struct LogSink(Log);

impl Sink for LogSink {
    fn write(&mut self, data: &Bytes) {
        black_box(self.0.append(data.clone(), 0).expect("append"));
    }

    fn reset(&mut self) {
        self.0.truncate_fully_and_start_at(0).expect("truncate");
    }
}

struct FileSink {
    file: File,
    path: PathBuf,
}

impl Sink for FileSink {
    fn write(&mut self, data: &Bytes) {
        self.file.write_all(data).expect("write");
    }

    fn reset(&mut self) {
        self.file.set_len(0).expect("truncate");
        self.file.seek(SeekFrom::Start(0)).expect("seek");
    }
}

impl Drop for FileSink {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// Writes `data` once per iteration, starting the sink over every `reset_every` bytes;
/// only the writes are timed.
struct Appender<S> {
    sink: S,
    data: Bytes,
    written: u64,
    reset_every: u64,
}

impl<S: Sink> Appender<S> {
    fn new(sink: S, data: Bytes) -> Self {
        Appender {
            sink,
            data,
            written: 0,
            reset_every: append_reset_bytes(),
        }
    }

    fn run(&mut self, iters: u64) -> Duration {
        let len = self.data.len() as u64;
        let mut timed = Duration::ZERO;
        let mut done = 0;
        while done < iters {
            if self.written + len > self.reset_every {
                self.sink.reset();
                self.written = 0;
            }
            let n = ((self.reset_every - self.written) / len).clamp(1, iters - done);
            let start = Instant::now();
            for _ in 0..n {
                self.sink.write(&self.data);
            }
            timed += start.elapsed();
            self.written += n * len;
            done += n;
        }
        timed
    }
}

fn append(c: &mut Criterion) {
    let dir = bench_dir();
    let request = produce_request(RECORDS_PER_BATCH);
    let single = produce_request(RECORDS_PER_APPEND);

    let mut group = c.benchmark_group("append");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(8))
        .sample_size(50)
        .throughput(Throughput::Bytes(request.len() as u64));

    let mut plain = None;
    group.bench_function("plain_write", |b| {
        let a = plain.get_or_insert_with(|| {
            let path = dir.path().join("plain-write.bin");
            let file = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&path)
                .expect("creating plain file");
            Appender::new(FileSink { file, path }, request.clone())
        });
        b.iter_custom(|iters| a.run(iters));
    });
    drop(plain);

    let log_sink = |name: &str| {
        let log = Log::open(&dir.path().join(name), LogConfig::default(), clock());
        LogSink(log.expect("opening log"))
    };
    let mut log = None;
    group.bench_function("log_64_batches", |b| {
        let a = log.get_or_insert_with(|| Appender::new(log_sink("batches-64"), request.clone()));
        b.iter_custom(|iters| a.run(iters));
    });
    drop(log);

    group.throughput(Throughput::Bytes(single.len() as u64));
    let mut log = None;
    group.bench_function("log_1_batch", |b| {
        let a = log.get_or_insert_with(|| Appender::new(log_sink("batches-1"), single.clone()));
        b.iter_custom(|iters| a.run(iters));
    });
    drop(log);
    group.finish();
}

/// Batches per Produce-request-like append.
const BATCHES_PER_REQUEST: u64 = (RECORDS_PER_APPEND / RECORDS_PER_BATCH) as u64;

/// Size of one batch of the Produce-request-like appends.
const BATCH_SIZE: u64 = (HEADER_SIZE + RECORDS_PER_BATCH * RECORD_SIZE) as u64;

/// How many whole Produce-request-like appends fit in `log_bytes()`.
fn appends_per_log() -> u64 {
    log_bytes() / (BATCHES_PER_REQUEST * BATCH_SIZE)
}

/// A log of `appends_per_log()` Produce-request-like appends, all in one segment.
fn filled_log(dir: &Path) -> Log {
    let mut log = Log::open(dir, LogConfig::default(), clock()).expect("opening log");
    let request = produce_request(RECORDS_PER_BATCH);
    for _ in 0..appends_per_log() {
        log.append(request.clone(), 0).expect("append");
    }
    assert_eq!(log.segment_count(), 1);
    assert_eq!(log.size_bytes(), appends_per_log() * request.len() as u64);
    log
}

/// Batches each 1 MiB read returns: the whole ones that fit.
const BATCHES_PER_READ: u64 = READ_BYTES as u64 / BATCH_SIZE;

/// Bytes each read returns.
const BYTES_PER_READ: u64 = BATCHES_PER_READ * BATCH_SIZE;

/// Walks a filled log with 1 MiB reads that each return the same number of whole
/// batches, wrapping around before a read would come up short.
struct Reader {
    _dir: TempDir,
    log: Log,
    /// The segment file, opened separately for the plain `pread` baseline.
    segment: File,
    total_batches: u64,
    /// Index of the next batch to read.
    next: u64,
    buf: Vec<u8>,
}

impl Reader {
    fn new() -> Self {
        let dir = bench_dir();
        let log = filled_log(dir.path());
        let segment = File::open(LogSegment::log_path_for(dir.path(), 0)).expect("segment");
        Reader {
            _dir: dir,
            log,
            segment,
            total_batches: appends_per_log() * BATCHES_PER_REQUEST,
            next: 0,
            buf: vec![0; READ_BYTES],
        }
    }

    /// The batch index to read from, wrapping so that every read is a full one.
    fn advance(&mut self) -> u64 {
        if self.next + BATCHES_PER_READ > self.total_batches {
            self.next = 0;
        }
        let at = self.next;
        self.next += BATCHES_PER_READ;
        at
    }

    fn log_read(&mut self, iters: u64) -> Duration {
        let expected = BYTES_PER_READ as usize;
        let start = Instant::now();
        for _ in 0..iters {
            let offset = self.advance() * RECORDS_PER_BATCH as u64;
            let bytes = self.log.read(offset, READ_BYTES).expect("read");
            assert_eq!(bytes.len(), expected, "read at offset {offset}");
            black_box(bytes);
        }
        start.elapsed()
    }

    fn plain_pread(&mut self, iters: u64) -> Duration {
        let len = BYTES_PER_READ as usize;
        let start = Instant::now();
        for _ in 0..iters {
            let position = self.advance() * BATCH_SIZE;
            self.segment
                .read_exact_at(&mut self.buf[..len], position)
                .expect("pread");
            black_box(&self.buf);
        }
        start.elapsed()
    }
}

fn read(c: &mut Criterion) {
    let mut group = c.benchmark_group("read");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .sample_size(50)
        .throughput(Throughput::Bytes(BYTES_PER_READ));
    // Built on first use (outside the timed part), so a filter that skips the group
    // skips building the log too.
    let mut reader = None;
    group.bench_function("log_read", |b| {
        let r = reader.get_or_insert_with(Reader::new);
        b.iter_custom(|iters| r.log_read(iters));
    });
    group.bench_function("plain_pread", |b| {
        let r = reader.get_or_insert_with(Reader::new);
        b.iter_custom(|iters| r.plain_pread(iters));
    });
    drop(reader);
    group.finish();
}

/// A filled log that is reopened as after a crash: with neither the clean-shutdown
/// marker nor a checkpoint, so each open validates every batch.
struct CrashedLog {
    dir: TempDir,
}

impl CrashedLog {
    fn new() -> Self {
        let dir = bench_dir();
        let log = filled_log(dir.path());
        // A clean close fsyncs the data once, so no open below pays for writing it back.
        log.close().expect("close");
        CrashedLog { dir }
    }

    fn segment_path(&self) -> PathBuf {
        LogSegment::log_path_for(self.dir.path(), 0)
    }

    fn forget_shutdown(&self) {
        for name in [CHECKPOINT_FILE, CLEAN_SHUTDOWN_FILE] {
            match fs::remove_file(self.dir.path().join(name)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => panic!("{name}: {e}"),
                _ => {}
            }
        }
    }

    fn open_unclean(&self, iters: u64) -> Duration {
        let size = appends_per_log() * BATCHES_PER_REQUEST * BATCH_SIZE;
        let mut timed = Duration::ZERO;
        for _ in 0..iters {
            self.forget_shutdown();
            let start = Instant::now();
            let (log, report) =
                Log::open_with_report(self.dir.path(), LogConfig::default(), clock())
                    .expect("open");
            timed += start.elapsed();
            assert!(!report.clean_shutdown);
            assert_eq!(report.recovered.len(), 1);
            assert_eq!(report.recovered[0].valid_bytes, size);
            assert_eq!(report.truncated_bytes(), 0);
            // Dropped without close: the next open is unclean again.
            drop(log);
        }
        timed
    }
}

fn recovery(c: &mut Criterion) {
    let mut group = c.benchmark_group("recovery");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(8))
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .throughput(Throughput::Bytes(
            appends_per_log() * BATCHES_PER_REQUEST * BATCH_SIZE,
        ));
    let mut crashed = None;
    group.bench_function("open_unclean", |b| {
        let log = crashed.get_or_insert_with(CrashedLog::new);
        b.iter_custom(|iters| log.open_unclean(iters));
    });

    // The floor under recovery: parse and CRC-check the same batches, already in memory.
    let mut data = None;
    group.bench_function("crc32c_in_memory", |b| {
        let data: &Vec<u8> = data.get_or_insert_with(|| {
            let log = crashed.get_or_insert_with(CrashedLog::new);
            fs::read(log.segment_path()).expect("reading segment")
        });
        b.iter(|| {
            let mut pos = 0;
            while pos < data.len() {
                let header = BatchHeader::parse_and_validate(&data[pos..]).expect("valid");
                pos += header.total_size();
            }
            black_box(pos)
        });
    });
    drop(crashed);
    drop(data);
    group.finish();
}

criterion_group!(benches, append, read, recovery);
criterion_main!(benches);
