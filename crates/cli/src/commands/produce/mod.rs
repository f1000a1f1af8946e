//! `strom produce TOPIC`: records from stdin or `--file`, one per line, produced the
//! way a Kafka client does it.
//!
//! The pipeline, on one thread but for input reading and compression:
//!
//! - [`input`]: a thread reads big chunks ending at line boundaries;
//! - here: lines become records (zero-copy slices of the chunk), split into key and
//!   value on `--key-separator`;
//! - [`partitioner`]: the Java client's default partitioner (murmur2 for keys, sticky
//!   for null keys) or `--partition`;
//! - [`accumulator`]: one open record batch per partition, closed at `--batch-size`,
//!   after `--linger-ms` or at the end;
//! - [`encoder`]: closed batches to v2 record batches, compressed on worker threads;
//! - [`sender`]: batches to leaders, several partitions per Produce request, up to
//!   `--max-in-flight` requests pipelined per broker, every response checked;
//! - [`report`]: progress bar and summaries.
//!
//! A line without the separator is a record with a null key and the whole line as its
//! value, as kcat's `-K` does; `k:` gives an empty value and `:v` an empty (not null)
//! key. An empty line is a record with an empty value (kafka-console-producer's
//! behaviour; kcat skips empty lines).

mod accumulator;
mod encoder;
mod input;
mod partitioner;
mod report;
mod sender;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use bytes::Bytes;
use clap::{Args, ValueEnum};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;
use tokio::sync::mpsc::error::TryRecvError;

use self::accumulator::{Accumulator, AccumulatorConfig, Headers};
use self::input::{KeySeparator, Source, next_line};
use self::partitioner::Partitioner;
use self::report::{Progress, Summary};
use self::sender::{Sender, SenderConfig};
use super::{ClientOpts, block_on};
use crate::output::{OutputFormat, print_json};

/// Arguments of `strom produce`.
#[derive(Debug, Args)]
pub struct ProduceArgs {
    /// Topic to produce to (it must exist)
    topic: String,

    /// Read records from this file instead of stdin
    #[arg(short = 'f', long, value_name = "PATH")]
    file: Option<PathBuf>,

    /// Split each line into key and value at the first SEP; a line without SEP has a
    /// null key
    #[arg(short = 'K', long, value_name = "SEP")]
    key_separator: Option<String>,

    /// A header for every record; repeatable. KEY without `=` gives a null value
    #[arg(short = 'H', long = "header", value_name = "KEY=VALUE", value_parser = parse_header)]
    headers: Vec<(String, Option<String>)>,

    /// Send every record to this partition, instead of partitioning by key (murmur2,
    /// as Java clients) or sticky partitioning for records without a key
    #[arg(short = 'p', long, value_name = "N", value_parser = clap::value_parser!(i32).range(0..))]
    partition: Option<i32>,

    /// Acknowledgements to wait for: 0 (none), 1 (leader), all or -1 (all in-sync
    /// replicas)
    #[arg(long, default_value = "all", value_parser = parse_acks, allow_hyphen_values = true)]
    acks: Acks,

    /// Compression of record batches
    #[arg(short = 'z', long, value_enum, default_value_t = Codec::None)]
    compression: Codec,

    /// How long a batch may wait for more records before it is sent
    #[arg(long, default_value_t = 5, value_name = "MS")]
    linger_ms: u64,

    /// Largest record batch per partition, in bytes before compression (a larger
    /// record gets a batch of its own)
    #[arg(long, default_value_t = 1 << 20, value_name = "BYTES",
          value_parser = clap::value_parser!(u32).range(1..))]
    batch_size: u32,

    /// Largest Produce request, in bytes of record batches (a larger batch is sent on
    /// its own)
    #[arg(long, default_value_t = 8 << 20, value_name = "BYTES",
          value_parser = clap::value_parser!(u32).range(1..))]
    max_request_size: u32,

    /// Produce requests sent to a broker before waiting for the first response
    #[arg(long, default_value_t = 5, value_name = "N",
          value_parser = clap::value_parser!(u16).range(1..))]
    max_in_flight: u16,

    /// Timestamp of every record, in ms since the epoch (default: the time it was read)
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(i64).range(0..))]
    timestamp: Option<i64>,

    /// Print a summary line on stderr even when it is not a terminal
    #[arg(short = 'v', long)]
    verbose: bool,

    #[command(flatten)]
    client: ClientOpts,
}

/// `--acks`: Kafka's wire value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Acks(i16);

fn parse_acks(s: &str) -> Result<Acks, String> {
    match s {
        "0" => Ok(Acks(0)),
        "1" => Ok(Acks(1)),
        "all" | "-1" => Ok(Acks(-1)),
        _ => Err("expected 0, 1, all or -1".into()),
    }
}

impl Acks {
    fn name(self) -> &'static str {
        match self.0 {
            0 => "0",
            1 => "1",
            _ => "all",
        }
    }
}

/// `--compression`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Codec {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Codec {
    fn compression(self) -> Compression {
        match self {
            Codec::None => Compression::None,
            Codec::Gzip => Compression::Gzip,
            Codec::Snappy => Compression::Snappy,
            Codec::Lz4 => Compression::Lz4,
            Codec::Zstd => Compression::Zstd,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Codec::None => "none",
            Codec::Gzip => "gzip",
            Codec::Snappy => "snappy",
            Codec::Lz4 => "lz4",
            Codec::Zstd => "zstd",
        }
    }
}

fn parse_header(s: &str) -> Result<(String, Option<String>), String> {
    let (key, value) = match s.split_once('=') {
        Some((k, v)) => (k, Some(v.to_string())),
        None => (s, None),
    };
    if key.is_empty() {
        return Err("a header needs a name: KEY=VALUE".into());
    }
    Ok((key.to_string(), value))
}

/// `--header`s as records hold them. A name given twice is refused: Kafka allows it,
/// but kafka-protocol's records keep headers by name and would keep only one.
fn record_headers(headers: &[(String, Option<String>)]) -> anyhow::Result<Headers> {
    let mut out = Headers::new();
    for (key, value) in headers {
        let previous = out.insert(
            StrBytes::from_string(key.clone()),
            value.as_ref().map(|v| Bytes::copy_from_slice(v.as_bytes())),
        );
        if previous.is_some() {
            bail!("--header {key} is given twice");
        }
    }
    Ok(out)
}

pub fn run(args: ProduceArgs) -> anyhow::Result<()> {
    block_on(produce(args))
}

async fn produce(args: ProduceArgs) -> anyhow::Result<()> {
    let headers = record_headers(&args.headers)?;
    let separator = match args.key_separator.as_deref() {
        Some(sep) => Some(KeySeparator::new(sep).context("--key-separator must not be empty")?),
        None => None,
    };
    let source = args.file.clone().map_or(Source::Stdin, Source::File);
    let (mut chunks, input_size) = input::spawn(&source)?;

    let mut cluster = args.client.connect().await?;
    let topic = cluster.topic(&args.topic).await?;
    let partitions = topic.partitions.len();
    if partitions == 0 {
        bail!("topic {} has no partitions", args.topic);
    }
    let mut leaders = vec![-1; partitions];
    for p in &topic.partitions {
        if let Some(leader) = usize::try_from(p.partition)
            .ok()
            .and_then(|i| leaders.get_mut(i))
        {
            *leader = p.leader;
        }
    }
    let fixed = match args.partition.map(|p| p as usize) {
        Some(p) if p >= partitions => bail!(
            "partition {p} does not exist: topic {} has {partitions} partition{}",
            args.topic,
            if partitions == 1 { "" } else { "s" }
        ),
        fixed => fixed,
    };
    let mut partitioner = Partitioner::new(partitions, fixed);
    let mut acc = Accumulator::new(AccumulatorConfig {
        partitions,
        batch_size: args.batch_size as usize,
        linger: Duration::from_millis(args.linger_ms),
        compression: args.compression.compression(),
        headers,
    });
    let mut sender = Sender::new(SenderConfig {
        topic: args.topic.clone(),
        topic_id: topic.topic_id,
        leaders,
        acks: args.acks.0,
        timeout: args.client.timeouts().request,
        max_request_size: args.max_request_size as usize,
        max_in_flight: usize::from(args.max_in_flight),
    });
    let terminal = std::io::stderr().is_terminal();
    let progress = Progress::new(terminal, input_size);

    let start = Instant::now();
    let mut input_bytes = 0u64;
    let mut records = 0u64;
    loop {
        let chunk = match chunks.try_recv() {
            Ok(chunk) => chunk,
            Err(TryRecvError::Disconnected) => break,
            Err(TryRecvError::Empty) => {
                // Input is slower than sending: settle what is due, then wait.
                acc.close_expired(Instant::now())?;
                sender.enqueue_all(acc.closed(true).await?);
                sender.dispatch(&mut cluster, false).await?;
                if sender.has_in_flight() {
                    sender.receive_one(&mut cluster).await?;
                    progress.update(input_bytes, sender.stats.records);
                    continue;
                }
                let deadline = [acc.next_deadline(), sender.retry_deadline()]
                    .into_iter()
                    .flatten()
                    .min();
                let next = match deadline {
                    Some(deadline) => tokio::select! {
                        chunk = chunks.recv() => chunk,
                        () = tokio::time::sleep_until(deadline.into()) => continue,
                    },
                    None => chunks.recv().await,
                };
                match next {
                    Some(chunk) => chunk,
                    None => break,
                }
            }
        };
        let chunk = chunk.with_context(|| match &source {
            Source::Stdin => "cannot read stdin".to_string(),
            Source::File(path) => format!("cannot read {}", path.display()),
        })?;
        input_bytes += chunk.len() as u64;
        records += produce_lines(
            &chunk,
            separator.as_ref(),
            args.timestamp,
            &mut partitioner,
            &mut acc,
        )?;
        let now = Instant::now();
        if acc.next_deadline().is_some_and(|d| d <= now) {
            acc.close_expired(now)?;
        }
        sender.enqueue_all(acc.closed(false).await?);
        sender.dispatch(&mut cluster, false).await?;
        progress.update(input_bytes, sender.stats.records);
    }
    acc.close_all()?;
    sender.enqueue_all(acc.closed(true).await?);
    sender.drain(&mut cluster).await?;
    progress.update(input_bytes, sender.stats.records);
    progress.finish();
    if sender.stats.records != records {
        bail!(
            "only {} of {records} records were acknowledged",
            sender.stats.records
        );
    }
    report(&args, &sender, input_bytes, start.elapsed(), terminal)
}

/// Cuts one chunk into records and hands them to the accumulator. Returns how many.
fn produce_lines(
    chunk: &Bytes,
    separator: Option<&KeySeparator>,
    timestamp: Option<i64>,
    partitioner: &mut Partitioner,
    acc: &mut Accumulator,
) -> anyhow::Result<u64> {
    let now = Instant::now();
    // One clock reading per chunk: its lines arrived together.
    let timestamp = timestamp.unwrap_or_else(now_ms);
    let data: &[u8] = chunk;
    let mut pos = 0;
    let mut records = 0;
    while let Some((end, next)) = next_line(data, pos) {
        let line = &data[pos..end];
        let (key, value) = match separator.and_then(|sep| sep.find(line)) {
            Some((at, len)) => (
                Some(chunk.slice(pos..pos + at)),
                chunk.slice(pos + at + len..end),
            ),
            None => (None, chunk.slice(pos..end)),
        };
        let partition = partitioner.partition(key.as_deref());
        if acc.append(partition, key, value, timestamp, now)? {
            partitioner.batch_closed(partition);
        }
        records += 1;
        pos = next;
    }
    Ok(records)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn report(
    args: &ProduceArgs,
    sender: &Sender,
    input_bytes: u64,
    elapsed: Duration,
    terminal: bool,
) -> anyhow::Result<()> {
    let summary = Summary::new(
        &args.topic,
        &sender.stats,
        input_bytes,
        elapsed,
        args.acks.name(),
        args.compression.name(),
    );
    if args.verbose || terminal {
        eprintln!("{}", summary.line());
    }
    match args.client.output {
        OutputFormat::Json => print_json(&summary),
        OutputFormat::Table => Ok(()),
    }
}
