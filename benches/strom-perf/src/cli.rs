//! Command-line arguments: one subcommand per mode, with the produce
//! options shared by `produce`, `e2e` and `baseline`.

use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::rate::RateSpec;

#[derive(Parser, Debug)]
#[command(
    name = "strom-perf",
    version,
    about = "Load generator for Strom (or any Kafka broker), on librdkafka",
    long_about = "Load generator for Strom (or any Kafka broker), on librdkafka.\n\n\
        Prints records/s, MB/s (decimal), latency percentiles and, with \
        --broker-pid or --broker-port, the broker's CPU-seconds per GB moved \
        and its peak RSS. --json prints one JSON object instead."
)]
pub struct Cli {
    #[command(subcommand)]
    pub mode: Mode,
    /// Print one JSON object on stdout instead of the human summary.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum Mode {
    /// Produce records as fast as possible (or at --rate); produce-to-ack latency.
    Produce(ProduceCmd),
    /// Consume a topic from the beginning, by assignment or as a group.
    Consume(ConsumeCmd),
    /// Produce at a fixed rate and consume at once; end-to-end latency.
    E2e(E2eCmd),
    /// The machine's ceilings for the same bytes: loopback TCP, a file, and
    /// the same produce load against librdkafka's in-process mock cluster.
    Baseline(BaselineCmd),
}

/// Where to connect.
#[derive(Args, Debug, Clone)]
pub struct Conn {
    /// Bootstrap servers.
    #[arg(long, short = 'b', default_value = "127.0.0.1:9092")]
    pub brokers: String,
    /// Topic to produce to / consume from.
    #[arg(long, short = 't', default_value = "perf")]
    pub topic: String,
    /// Extra librdkafka property (repeatable), applied last: -X fetch.wait.max.ms=10
    #[arg(short = 'X', long = "property", value_name = "KEY=VALUE")]
    pub properties: Vec<String>,
}

/// Which broker process to measure.
#[derive(Args, Debug, Clone, Default)]
pub struct Watch {
    /// Sample this process's CPU time and RSS from /proc during the run.
    #[arg(long)]
    pub broker_pid: Option<u32>,
    /// Find the broker's pid as the process listening on this TCP port.
    #[arg(long, conflicts_with = "broker_pid")]
    pub broker_port: Option<u16>,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Compression {
    pub fn as_str(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

/// The produce load.
#[derive(Args, Debug, Clone)]
pub struct Load {
    /// Payload bytes per record (no key).
    #[arg(long, short = 's', default_value_t = 1024)]
    pub record_size: usize,
    /// Records to produce in total (default 1,000,000 unless --duration).
    #[arg(long, short = 'n')]
    pub count: Option<u64>,
    /// Produce for this long instead: 30, 30s, 500ms, 2m.
    #[arg(long, short = 'd', value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Target rate, over all producers: records/s (20000, 20k) or bytes
    /// (50MB/s, 1GiB/s); unlimited by default (e2e: 50MB/s).
    #[arg(long, short = 'r')]
    pub rate: Option<RateSpec>,
    /// acks: 0, 1, all (= -1).
    #[arg(long, short = 'a', default_value = "1", value_parser = ["0", "1", "all", "-1"])]
    pub acks: String,
    /// compression.codec.
    #[arg(long, short = 'z', value_enum, default_value_t = Compression::None)]
    pub compression: Compression,
    /// linger.ms: how long librdkafka waits to fill a batch.
    #[arg(long, default_value_t = 5)]
    pub linger_ms: u64,
    /// batch.size: the most bytes in one partition's batch (librdkafka's
    /// default; it also caps at message.max.bytes, 1,000,000).
    #[arg(long, default_value_t = 1_000_000)]
    pub batch_size: u64,
    /// Partitions of the topic when it has to be created (records are
    /// spread by librdkafka's sticky partitioner, no key).
    #[arg(long, short = 'p', default_value_t = 1)]
    pub partitions: i32,
    /// Independent producer instances, each on its own thread (the rate
    /// and count are split between them).
    #[arg(long, default_value_t = 1)]
    pub producers: usize,
    /// enable.idempotence=true (needs acks=all).
    #[arg(long)]
    pub idempotence: bool,
}

impl Load {
    /// Total records when neither --count nor --duration was given.
    pub const DEFAULT_COUNT: u64 = 1_000_000;
}

#[derive(Args, Debug)]
pub struct ProduceCmd {
    #[command(flatten)]
    pub conn: Conn,
    #[command(flatten)]
    pub load: Load,
    #[command(flatten)]
    pub watch: Watch,
    /// Produce to librdkafka's in-process mock cluster instead of --brokers.
    #[arg(long)]
    pub mock: bool,
}

#[derive(Args, Debug)]
pub struct ConsumeCmd {
    #[command(flatten)]
    pub conn: Conn,
    #[command(flatten)]
    pub watch: Watch,
    /// Consume as this consumer group (subscribe; committed offsets, else
    /// earliest). Without it: assign every partition from the beginning and
    /// stop when all reach the end.
    #[arg(long, short = 'g')]
    pub group: Option<String>,
    /// Stop after this many records.
    #[arg(long, short = 'n')]
    pub count: Option<u64>,
    /// Stop when no record arrived for this long (after the first).
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub idle: Duration,
    /// Give up when the first record takes longer than this.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub start_timeout: Duration,
}

#[derive(Args, Debug)]
pub struct E2eCmd {
    #[command(flatten)]
    pub conn: Conn,
    #[command(flatten)]
    pub load: Load,
    #[command(flatten)]
    pub watch: Watch,
    /// After the producers finish, wait at most this long for the rest.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub drain_timeout: Duration,
}

#[derive(Args, Debug)]
pub struct BaselineCmd {
    /// Produce options for the mock-cluster run; the TCP and file runs move
    /// the same number of bytes (record size × count).
    #[command(flatten)]
    pub load: Load,
    /// Topic name used on the mock cluster.
    #[arg(long, short = 't', default_value = "perf")]
    pub topic: String,
    /// Extra librdkafka property for the mock-cluster producer (repeatable).
    #[arg(short = 'X', long = "property", value_name = "KEY=VALUE")]
    pub properties: Vec<String>,
    /// Size of each write() for the TCP and file runs.
    #[arg(long, default_value_t = 1 << 20)]
    pub chunk_size: usize,
    /// Directory for the file run (its file is removed afterwards).
    #[arg(long, default_value = "/tmp")]
    pub dir: std::path::PathBuf,
    /// Skip the mock-cluster run.
    #[arg(long)]
    pub no_mock: bool,
}

/// `30`, `30s`, `250ms`, `2m`, `1.5s`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let (num, scale) = if let Some(n) = t.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60.0)
    } else {
        (t, 1.0)
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("bad duration {s:?}: expected e.g. 30s, 500ms, 2m"))?;
    Duration::try_from_secs_f64(v * scale).map_err(|e| format!("bad duration {s:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn documented_command_line_parses() {
        let cli = Cli::try_parse_from([
            "strom-perf",
            "produce",
            "--brokers",
            "127.0.0.1:9092",
            "--topic",
            "perf",
            "--record-size",
            "1024",
            "--count",
            "1000000",
        ])
        .expect("parses");
        let Mode::Produce(p) = cli.mode else {
            panic!("not produce")
        };
        assert_eq!(p.load.count, Some(1_000_000));
        assert_eq!(p.load.acks, "1");
        assert_eq!(p.load.rate, None);
    }
}
