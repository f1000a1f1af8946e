//! Turning closed batches into v2 record batches with kafka-protocol's encoder.
//!
//! Uncompressed batches are encoded inline: that is a copy and a CRC-32C, cheaper than
//! a hand-off. Compression costs far more CPU than everything else a producer does
//! (gzip is zlib's default level; lz4 uses its fast mode, see [`lz4_fast`]), so compressed
//! batches go to a few worker threads while the main thread keeps reading and sending.
//! Batches come out in the order they closed, which keeps each partition's order.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::{Arc, Mutex, mpsc};
use std::thread;

use anyhow::{Context, anyhow};
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions};
use tokio::sync::oneshot;

/// Encoded batches are written into one buffer that is split off per batch; it grows
/// by at least this much at a time, so allocations are per several batches.
const OUT_BUFFER: usize = 4 << 20;

/// One encoded record batch for one partition.
#[derive(Debug)]
pub struct Batch {
    pub partition: usize,
    pub records: Bytes,
    pub count: u32,
    /// When a retriable error first failed this batch; retries stop `--timeout` later.
    pub first_failure: Option<std::time::Instant>,
}

type Encoded = anyhow::Result<(Bytes, Vec<Record>)>;

struct Job {
    records: Vec<Record>,
    len: usize,
    size_hint: usize,
    done: oneshot::Sender<Encoded>,
}

enum Pending {
    Done(Batch),
    Running {
        partition: usize,
        count: u32,
        result: oneshot::Receiver<Encoded>,
    },
}

/// Encodes batches in close order.
pub struct Encoder {
    compression: Compression,
    out: BytesMut,
    pending: VecDeque<Pending>,
    running: usize,
    workers: usize,
    jobs: Option<mpsc::Sender<Job>>,
    /// Record slot vectors back from workers, for the next batch of any partition.
    spare: Vec<Vec<Record>>,
}

impl Encoder {
    pub fn new(compression: Compression) -> Encoder {
        let workers = thread::available_parallelism().map_or(2, |n| n.get());
        Encoder {
            compression,
            out: BytesMut::new(),
            pending: VecDeque::new(),
            running: 0,
            workers,
            jobs: None,
            spare: Vec::new(),
        }
    }

    /// Encodes `slots[..len]` as one batch of `partition`. `size_hint` is its
    /// uncompressed size. `slots` may be swapped for another vector of slots (the records
    /// went to a worker); either way the caller fills it from slot 0 again.
    pub fn encode(
        &mut self,
        partition: usize,
        slots: &mut Vec<Record>,
        len: usize,
        size_hint: usize,
    ) -> anyhow::Result<()> {
        let count = len as u32;
        if self.compression == Compression::None {
            if self.out.capacity() < size_hint {
                self.out.reserve(size_hint.max(OUT_BUFFER));
            }
            encode_into(&mut self.out, &mut slots[..len], self.compression)?;
            self.pending.push_back(Pending::Done(Batch {
                partition,
                records: self.out.split().freeze(),
                count,
                first_failure: None,
            }));
            return Ok(());
        }
        let records = std::mem::replace(slots, self.spare.pop().unwrap_or_default());
        let (done, result) = oneshot::channel();
        self.workers()?
            .send(Job {
                records,
                len,
                size_hint,
                done,
            })
            .map_err(|_| anyhow!("the compression threads stopped"))?;
        self.running += 1;
        self.pending.push_back(Pending::Running {
            partition,
            count,
            result,
        });
        Ok(())
    }

    /// Starts the worker threads on first use.
    fn workers(&mut self) -> anyhow::Result<&mpsc::Sender<Job>> {
        if self.jobs.is_none() {
            let (tx, rx) = mpsc::channel::<Job>();
            let rx = Arc::new(Mutex::new(rx));
            for i in 0..self.workers {
                let rx = Arc::clone(&rx);
                let compression = self.compression;
                thread::Builder::new()
                    .name(format!("strom-compress-{i}"))
                    .spawn(move || work(&rx, compression))
                    .context("cannot start a compression thread")?;
            }
            self.jobs = Some(tx);
        }
        self.jobs
            .as_ref()
            .ok_or_else(|| anyhow!("no compression threads"))
    }

    /// Encoded batches, in close order. Waits for workers when `all`, or when more
    /// batches are being compressed than there are workers to keep busy (which holds
    /// reading back to the speed of compression).
    pub async fn finished(&mut self, all: bool) -> anyhow::Result<Vec<Batch>> {
        let mut out = Vec::new();
        while let Some(front) = self.pending.front_mut() {
            let result = match front {
                Pending::Done(_) => None,
                Pending::Running { result, .. } => {
                    let wait = all || self.running > 2 * self.workers;
                    match result.try_recv() {
                        Ok(encoded) => Some(encoded),
                        Err(oneshot::error::TryRecvError::Empty) if wait => Some(
                            result
                                .await
                                .map_err(|_| anyhow!("a compression thread failed"))?,
                        ),
                        Err(oneshot::error::TryRecvError::Empty) => break,
                        Err(oneshot::error::TryRecvError::Closed) => {
                            return Err(anyhow!("a compression thread failed"));
                        }
                    }
                }
            };
            let Some(pending) = self.pending.pop_front() else {
                break;
            };
            match (pending, result) {
                (Pending::Done(batch), _) => out.push(batch),
                (
                    Pending::Running {
                        partition, count, ..
                    },
                    Some(encoded),
                ) => {
                    self.running -= 1;
                    let (records, slots) = encoded?;
                    self.spare.push(slots);
                    out.push(Batch {
                        partition,
                        records,
                        count,
                        first_failure: None,
                    });
                }
                (Pending::Running { .. }, None) => {
                    return Err(anyhow!("a compression result went missing"));
                }
            }
        }
        Ok(out)
    }
}

/// A worker: encodes jobs until the encoder is dropped.
fn work(jobs: &Mutex<mpsc::Receiver<Job>>, compression: Compression) {
    loop {
        let job = match jobs.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok(mut job) = job else {
            return;
        };
        let mut buf = BytesMut::with_capacity(job.size_hint / 2 + 1024);
        let result = encode_into(&mut buf, &mut job.records[..job.len], compression)
            .map(|()| (buf.freeze(), job.records));
        // The producer may have stopped on an error; nobody to tell then.
        let _ = job.done.send(result);
    }
}

/// Appends one record batch holding `records`, then lets go of the records' keys and
/// values (the input chunks they point into).
fn encode_into(
    buf: &mut BytesMut,
    records: &mut [Record],
    compression: Compression,
) -> anyhow::Result<()> {
    let options = RecordEncodeOptions {
        version: 2,
        compression,
    };
    if compression == Compression::Lz4 {
        // kafka-protocol's lz4 uses compression level 4, which selects LZ4's slow
        // high-compression mode (about 50 MB/s here); librdkafka and the Java client use
        // the fast mode, which is what a producer wants.
        RecordBatchEncoder::encode_with_custom_compression(buf, &*records, &options, Some(lz4_fast))
    } else {
        RecordBatchEncoder::encode(buf, &*records, &options)
    }
    .context("cannot encode a record batch")?;
    for record in records {
        record.key = None;
        record.value = None;
    }
    Ok(())
}

/// Kafka's lz4 framing (the LZ4 frame format, independent blocks) at the fast level.
fn lz4_fast(
    records: &mut BytesMut,
    out: &mut BytesMut,
    _compression: Compression,
) -> anyhow::Result<()> {
    let mut encoder = lz4::EncoderBuilder::new()
        .level(0)
        .block_mode(lz4::BlockMode::Independent)
        .build(out.writer())
        .context("cannot start lz4 compression")?;
    encoder
        .write_all(records)
        .context("cannot compress with lz4")?;
    let (_, result) = encoder.finish();
    result.context("cannot finish lz4 compression")
}
