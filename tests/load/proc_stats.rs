//! What a process costs, read from Linux's `/proc/PID`: resident memory, open file
//! descriptors and CPU time, sampled on a thread while a load test runs.

use std::fmt::Write as _;
use std::fs;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// One reading of a process.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// Seconds since sampling started.
    pub at_s: f64,
    /// `VmRSS`, KiB.
    pub rss_kib: u64,
    /// Of which anonymous memory (heap, stacks) and file pages (the mapped indexes),
    /// KiB: `RssAnon` and `RssFile`.
    pub anon_kib: u64,
    pub file_kib: u64,
    /// Entries of `/proc/PID/fd`.
    pub fds: u64,
    /// User plus system CPU time, seconds.
    pub cpu_s: f64,
    /// The load generator's request count at the time (for the table).
    pub requests: u64,
}

/// Reads one sample of `pid`; `None` once the process is gone.
pub fn sample(pid: u32, at_s: f64, requests: u64) -> Option<Sample> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    };
    let rss_kib = field("VmRSS:")?;
    let fds = fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64;
    Some(Sample {
        at_s,
        rss_kib,
        anon_kib: field("RssAnon:").unwrap_or(0),
        file_kib: field("RssFile:").unwrap_or(0),
        fds,
        cpu_s: cpu_seconds(pid)?,
        requests,
    })
}

/// utime + stime of `pid`, from `/proc/PID/stat` (fields 14 and 15, in clock ticks).
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count the
    // fields after its closing parenthesis, which starts at field 3.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    let ticks = rustix::param::clock_ticks_per_second().max(1);
    Some((utime + stime) as f64 / ticks as f64)
}

/// The soft and hard "Max open files" of `pid`, from `/proc/PID/limits` (`None` =
/// unlimited).
pub fn open_file_limits(pid: u32) -> Option<(Option<u64>, Option<u64>)> {
    let limits = fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let mut values = line["Max open files".len()..].split_whitespace();
    let parse = |v: &str| (v != "unlimited").then(|| v.parse().ok()).flatten();
    Some((parse(values.next()?), parse(values.next()?)))
}

/// Samples `pid` every `every` on a thread until [`Sampler::finish`].
pub struct Sampler {
    stop: Arc<AtomicBool>,
    thread: thread::JoinHandle<Vec<Sample>>,
}

impl Sampler {
    /// Starts sampling now; `requests` is read into each sample.
    pub fn start(pid: u32, every: Duration, requests: Arc<AtomicU64>) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let stop_flag = stop.clone();
        let thread = thread::spawn(move || {
            let started = Instant::now();
            let mut samples = Vec::new();
            let mut next = started;
            loop {
                let at = started.elapsed().as_secs_f64();
                if let Some(s) = sample(pid, at, requests.load(Ordering::Relaxed)) {
                    samples.push(s);
                }
                next += every;
                // Short sleeps, so that finishing does not wait out a whole period.
                while Instant::now() < next {
                    if stop_flag.load(Ordering::Relaxed) {
                        return samples;
                    }
                    thread::sleep(Duration::from_millis(100));
                }
            }
        });
        Sampler { stop, thread }
    }

    /// Stops sampling and returns the samples, oldest first.
    pub fn finish(self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("sampler thread")
    }
}

/// The samples as a table, one line each.
pub fn table(samples: &[Sample]) -> String {
    let mut out =
        String::from("    t(s)   RSS(MiB)  anon(MiB)  file(MiB)    fds   CPU(s)   requests\n");
    for s in samples {
        let _ = writeln!(
            out,
            "{:>8.1} {:>10.1} {:>10.1} {:>10.1} {:>6} {:>8.2} {:>10}",
            s.at_s,
            s.rss_kib as f64 / 1024.0,
            s.anon_kib as f64 / 1024.0,
            s.file_kib as f64 / 1024.0,
            s.fds,
            s.cpu_s,
            s.requests
        );
    }
    out
}

/// Mean resident memory of `samples`, KiB.
pub fn mean_rss_kib(samples: &[Sample]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    samples.iter().map(|s| s.rss_kib as f64).sum::<f64>() / samples.len() as f64
}
