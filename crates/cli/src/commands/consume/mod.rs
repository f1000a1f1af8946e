//! `strom consume TOPIC`: reads records and prints them, like kcat -C or Kafka's
//! console consumer.
//!
//! Without `--group` every partition (or those of `--partition`) is read from the start
//! option, by default the end of the log. With `--group` the consumer joins a classic
//! consumer group, reads what the group assigns it from the committed offsets (the
//! start option only applies where nothing is committed), commits every few seconds and
//! on exit. A position that falls out of the log is reset like Kafka's
//! `auto.offset.reset`: to the beginning with `--from-beginning`, else to the end.
//!
//! Ctrl-C and SIGTERM stop cleanly: fetching stops, the group's positions (next offset
//! to read) are committed, the member leaves, the exit status is 0.

mod fetcher;
mod format;
mod member;
mod printer;
mod shutdown;
mod start;

use anyhow::bail;
use clap::Args;

use super::{ClientOpts, block_on};
use crate::client::group_member::Membership;
use crate::client::{Cluster, TopicInfo};
use crate::output::OutputFormat;
use fetcher::{Fetched, Fetcher};
use format::{DEFAULT_TEMPLATE, Template};
use member::GroupSession;
use printer::{Printer, Style};
use shutdown::Shutdown;
use start::{StartOffset, parse_timestamp};

/// Arguments of `strom consume`.
#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
pub struct ConsumeArgs {
    /// Topic to read
    topic: String,

    /// Start at the beginning of each partition (with --group: of those without a
    /// committed offset)
    #[arg(long, conflicts_with_all = ["offset", "from_timestamp"])]
    from_beginning: bool,

    /// Start offset: beginning, end, N, or -N (N records before the end)
    #[arg(
        short = 'o',
        long,
        value_name = "OFFSET",
        allow_hyphen_values = true,
        value_parser = StartOffset::parse,
        conflicts_with = "from_timestamp"
    )]
    offset: Option<StartOffset>,

    /// Start at the first record at or after this time: ms since the epoch, RFC 3339
    /// (2024-05-01T12:00:00Z) or local date-time (2024-05-01 12:00)
    #[arg(long, value_name = "TIME", value_parser = parse_timestamp)]
    from_timestamp: Option<i64>,

    /// Partitions to read (repeatable or comma-separated; default all)
    #[arg(
        short = 'p',
        long = "partition",
        value_name = "N",
        value_delimiter = ',',
        conflicts_with = "group"
    )]
    partitions: Vec<i32>,

    /// Consume as a member of this consumer group, committing offsets
    #[arg(short = 'g', long, value_name = "GROUP")]
    group: Option<String>,

    /// Exit after this many records
    #[arg(short = 'n', long, value_name = "N")]
    count: Option<u64>,

    /// Exit once every partition has been read to its end
    #[arg(short = 'e', long = "exit")]
    exit_at_end: bool,

    /// Output template: %k key, %v or %s value, %p partition, %o offset, %t timestamp
    /// (ms), %T topic, %h headers, %K/%S key/value length, %%, \n \t \\; a template
    /// without \n gets one appended, so `-f '%k:%v'` prints a line per record
    /// [default: %v\n]
    #[arg(short = 'f', long, value_name = "TEMPLATE")]
    format: Option<String>,

    #[command(flatten)]
    client: ClientOpts,
}

const AFTER_HELP: &str = "\
Without --group, reading starts at the end of each partition unless --from-beginning,
--offset or --from-timestamp says otherwise. With --group, partitions start at the
group's committed offsets; the start options apply only where nothing is committed.
Positions are committed every 5 s and on exit (Ctrl-C or SIGTERM included).
A position outside the log (deleted or not yet written) moves to the beginning with
--from-beginning and to the end otherwise, like Kafka's auto.offset.reset.";

pub fn run(args: ConsumeArgs) -> anyhow::Result<()> {
    block_on(consume(args))
}

async fn consume(args: ConsumeArgs) -> anyhow::Result<()> {
    let style = match (args.client.output, &args.format) {
        (OutputFormat::Json, Some(_)) => bail!("--format and --output json cannot be combined"),
        (OutputFormat::Json, None) => Style::Json,
        (OutputFormat::Table, template) => Style::Template(Template::parse(
            template.as_deref().unwrap_or(DEFAULT_TEMPLATE),
        )?),
    };
    let start = if args.from_beginning {
        StartOffset::Earliest
    } else if let Some(offset) = args.offset {
        offset
    } else if let Some(ms) = args.from_timestamp {
        StartOffset::Timestamp(ms)
    } else {
        StartOffset::Latest
    };
    let mut shutdown = Shutdown::install()?;
    let mut cluster = args.client.connect().await?;
    let topic = cluster.topic(&args.topic).await?;
    let mut consumer = Consumer {
        topic: topic.name.clone(),
        fetcher: Fetcher::new(&topic, start.reset(), args.client.timeouts().request),
        printer: Printer::new(style, &topic.name),
        session: None,
        start,
        remaining: args.count,
        exit_at_end: args.exit_at_end,
    };
    if let Some(group) = &args.group {
        let timeout = args.client.timeouts().request;
        consumer.session = Some(GroupSession::new(group, &topic.name, timeout));
    } else {
        let partitions = select_partitions(&topic, &args.partitions)?;
        let positions = start::resolve(&mut cluster, &topic, &partitions, start).await?;
        consumer.fetcher.assign(positions);
    }
    let result = consumer.run(&mut cluster, &mut shutdown).await;
    consumer.finish(&mut cluster, result).await
}

/// The partitions of `--partition`, checked against the topic; all when none given.
fn select_partitions(topic: &TopicInfo, wanted: &[i32]) -> anyhow::Result<Vec<i32>> {
    let all: Vec<i32> = topic.partitions.iter().map(|p| p.partition).collect();
    if wanted.is_empty() {
        return Ok(all);
    }
    let mut selected = Vec::new();
    for &p in wanted {
        if !all.contains(&p) {
            let last = all.len().saturating_sub(1);
            bail!(
                "unknown partition: {}-{p} (partitions are 0 to {last})",
                topic.name
            );
        }
        if !selected.contains(&p) {
            selected.push(p);
        }
    }
    Ok(selected)
}

/// The state of one `strom consume` run.
struct Consumer {
    topic: String,
    fetcher: Fetcher,
    printer: Printer,
    session: Option<GroupSession>,
    start: StartOffset,
    /// Records still to print with `--count`.
    remaining: Option<u64>,
    exit_at_end: bool,
}

impl Consumer {
    /// Fetches and prints until a stop condition: a signal, `--count` reached, the end
    /// with `--exit`, or stdout closed.
    async fn run(&mut self, cluster: &mut Cluster, shutdown: &mut Shutdown) -> anyhow::Result<()> {
        let mut joined = false;
        loop {
            if self.remaining == Some(0) || self.printer.closed() {
                return Ok(());
            }
            if let Some(session) = self.session.as_mut() {
                let mut membership = if joined {
                    session.tick(cluster).await?
                } else {
                    Membership::Rejoin
                };
                if membership == Membership::Stable && session.commit_due() {
                    membership = session
                        .auto_commit(cluster, &self.fetcher.positions())
                        .await?;
                }
                if membership == Membership::Rejoin {
                    if joined {
                        // Eager rebalance: hand over what was consumed before the
                        // partitions are revoked. Refused if the group already moved on.
                        session.commit(cluster, &self.fetcher.positions()).await?;
                    }
                    // No partitions are owned while rejoining.
                    self.fetcher.assign(Default::default());
                    let Some(positions) = shutdown.unless(session.join(cluster, self.start)).await
                    else {
                        session.abandon(cluster);
                        return Ok(());
                    };
                    let positions = positions?;
                    joined = true;
                    let topic = cluster.topic(&self.topic).await?;
                    self.fetcher.update_metadata(&topic);
                    self.fetcher.assign(positions);
                }
            }
            if self.exit_at_end && self.fetcher.at_end() {
                return Ok(());
            }
            let Some(fetched) = shutdown.unless(self.fetcher.fetch(cluster)).await else {
                self.fetcher.abandon(cluster);
                return Ok(());
            };
            for partition in fetched? {
                self.print(partition)?;
            }
            self.printer.flush()?;
        }
    }

    /// Prints the records of one partition (up to `--count`) and moves its position.
    fn print(&mut self, fetched: Fetched) -> anyhow::Result<()> {
        for record in &fetched.records {
            if self.remaining == Some(0) || self.printer.closed() {
                return Ok(());
            }
            self.printer.record(fetched.partition, record)?;
            self.fetcher.advance(fetched.partition, record.offset + 1);
            if let Some(n) = self.remaining.as_mut() {
                *n -= 1;
            }
        }
        // Every record was printed: skip past trailing control batches too.
        if let Some(next) = fetched.next_offset {
            self.fetcher.advance(fetched.partition, next);
        }
        Ok(())
    }

    /// Flushes output and, in a group, commits and leaves, also after an error (whose
    /// records were printed, so their positions are consumed).
    async fn finish(
        &mut self,
        cluster: &mut Cluster,
        result: anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let flushed = self.printer.flush();
        let closed = match self.session.as_mut() {
            Some(session) => session.close(cluster, &self.fetcher.positions()).await,
            None => Ok(()),
        };
        result.and(flushed).and(closed)
    }
}
