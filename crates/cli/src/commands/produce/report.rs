//! What `strom produce` tells its user: a progress bar on stderr while a terminal
//! watches, a one-line summary on stderr (terminal or `--verbose`), and with
//! `--output json` a summary on stdout for scripts. Piped runs print nothing on success.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use super::sender::SendStats;

/// The progress bar, or nothing when stderr is not a terminal.
pub struct Progress(Option<ProgressBar>);

impl Progress {
    /// A bar over `total` input bytes when the size is known, else a spinner.
    pub fn new(enabled: bool, total: Option<u64>) -> Progress {
        if !enabled {
            return Progress(None);
        }
        let (bar, template) = match total {
            Some(total) => (
                ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr()),
                "{spinner} [{elapsed_precise}] {wide_bar} {binary_bytes}/{binary_total_bytes} \
                 {binary_bytes_per_sec} {msg}",
            ),
            None => (
                ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()),
                "{spinner} [{elapsed_precise}] {binary_bytes} {binary_bytes_per_sec} {msg}",
            ),
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style);
        }
        bar.enable_steady_tick(Duration::from_millis(200));
        Progress(Some(bar))
    }

    /// Input bytes taken in so far, and records acknowledged.
    pub fn update(&self, input_bytes: u64, records: u64) {
        if let Some(bar) = &self.0 {
            bar.set_position(input_bytes);
            bar.set_message(format!("{records} records"));
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}

/// The JSON summary.
#[derive(Debug, Serialize)]
pub struct Summary {
    pub topic: String,
    /// Records acknowledged (with acks=0: sent).
    pub records: u64,
    /// Input bytes read, newlines included.
    pub input_bytes: u64,
    /// Record batch bytes sent, after compression.
    pub batch_bytes: u64,
    pub batches: u64,
    pub requests: u64,
    pub acks: String,
    pub compression: String,
    pub elapsed_secs: f64,
    /// Input megabytes (10^6 bytes) per second.
    pub mb_per_sec: f64,
    pub partitions: Vec<PartitionSummary>,
}

#[derive(Debug, Serialize)]
pub struct PartitionSummary {
    pub partition: usize,
    pub records: u64,
    /// First and last offset written; absent with acks=0.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_offset: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_offset: Option<i64>,
}

impl Summary {
    pub fn new(
        topic: &str,
        stats: &SendStats,
        input_bytes: u64,
        elapsed: Duration,
        acks: &str,
        compression: &str,
    ) -> Summary {
        let secs = elapsed.as_secs_f64();
        Summary {
            topic: topic.to_string(),
            records: stats.records,
            input_bytes,
            batch_bytes: stats.batch_bytes,
            batches: stats.batches,
            requests: stats.requests,
            acks: acks.to_string(),
            compression: compression.to_string(),
            elapsed_secs: round3(secs),
            mb_per_sec: round3(if secs > 0.0 {
                input_bytes as f64 / 1e6 / secs
            } else {
                0.0
            }),
            partitions: stats
                .partitions
                .iter()
                .enumerate()
                .filter(|(_, p)| p.records > 0)
                .map(|(partition, p)| PartitionSummary {
                    partition,
                    records: p.records,
                    first_offset: p.offsets.map(|o| o.0),
                    last_offset: p.offsets.map(|o| o.1),
                })
                .collect(),
        }
    }

    /// One line for people, e.g.
    /// `produced 1000 records (1.02 MB) to orders in 0.53 s, 1.92 MB/s`.
    pub fn line(&self) -> String {
        let verb = if self.acks == "0" {
            "sent (acks=0)"
        } else {
            "produced"
        };
        format!(
            "{verb} {} record{} ({:.2} MB) to {} in {:.2} s, {:.1} MB/s",
            self.records,
            if self.records == 1 { "" } else { "s" },
            self.input_bytes as f64 / 1e6,
            self.topic,
            self.elapsed_secs,
            self.mb_per_sec
        )
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}
