//! CPU time and memory of a process, from /proc, and a sampler thread that
//! tracks the peak RSS of the broker while a run goes on.
//!
//! CPU time comes from `/proc/PID/stat` (utime + stime, in clock ticks);
//! memory from `/proc/PID/status` (VmRSS now, VmHWM the kernel's own
//! high-water mark since the process started).

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use anyhow::{Context, Result, anyhow};

/// CPU ticks a process has used, split as the kernel reports them.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CpuTicks {
    pub utime: u64,
    pub stime: u64,
}

impl CpuTicks {
    pub fn total(&self) -> u64 {
        self.utime + self.stime
    }
}

/// Parses utime and stime out of a `/proc/PID/stat` line.
///
/// The second field (comm) is in parentheses and may itself contain spaces
/// and parentheses, so fields are counted from the *last* `)`: after it
/// come field 3 (state) onwards, and utime/stime are fields 14 and 15.
pub fn parse_stat(line: &str) -> Result<CpuTicks> {
    let close = line
        .rfind(')')
        .ok_or_else(|| anyhow!("no ')' in stat line"))?;
    let rest: Vec<&str> = line[close + 1..].split_whitespace().collect();
    let field = |n: usize| -> Result<u64> {
        let s = rest
            .get(n - 3)
            .ok_or_else(|| anyhow!("stat line has no field {n}"))?;
        s.parse().with_context(|| format!("stat field {n} {s:?}"))
    };
    Ok(CpuTicks {
        utime: field(14)?,
        stime: field(15)?,
    })
}

/// Memory figures from `/proc/PID/status`, in KiB.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Memory {
    pub rss_kib: u64,
    pub hwm_kib: u64,
}

/// Parses VmRSS and VmHWM (`VmRSS:\t  1234 kB`) out of `/proc/PID/status`.
/// A missing line (a kernel thread, a zombie) reads as 0.
pub fn parse_status(text: &str) -> Memory {
    let kib = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    Memory {
        rss_kib: kib("VmRSS:"),
        hwm_kib: kib("VmHWM:"),
    }
}

/// Which process to read: a pid, or this process.
#[derive(Clone, Copy, Debug)]
pub enum Target {
    Pid(u32),
    SelfProcess,
}

impl Target {
    fn path(&self, file: &str) -> String {
        match self {
            Target::Pid(pid) => format!("/proc/{pid}/{file}"),
            Target::SelfProcess => format!("/proc/self/{file}"),
        }
    }

    pub fn cpu(&self) -> Result<CpuTicks> {
        let path = self.path("stat");
        let line = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
        parse_stat(&line).with_context(|| format!("parsing {path}"))
    }

    pub fn memory(&self) -> Result<Memory> {
        let path = self.path("status");
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
        Ok(parse_status(&text))
    }
}

/// Clock ticks per second for `/proc/PID/stat`. `sysconf(_SC_CLK_TCK)`
/// needs libc and unsafe code (denied in this workspace), so ask
/// `getconf` once; it is 100 on every Linux x86_64 and arm64 kernel, which
/// is also the fallback.
pub fn clock_ticks_per_sec() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .filter(|&t| t > 0)
        .unwrap_or(100)
}

/// CPU seconds and memory of one process over a run.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Usage {
    pub cpu_s: f64,
    pub user_s: f64,
    pub system_s: f64,
    /// Highest VmRSS seen by the sampler (every 50 ms) and at the ends.
    pub peak_rss_mib: f64,
    /// VmRSS at the end of the run.
    pub end_rss_mib: f64,
    /// The kernel's VmHWM at the end: the peak since the process started,
    /// which may predate this run.
    pub hwm_mib: f64,
}

/// Watches a process from `start` to `finish`.
pub struct Sampler {
    target: Target,
    ticks_per_sec: u64,
    start: CpuTicks,
    peak_rss_kib: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Sampler {
    /// Reads the starting CPU time and, for another process, starts a
    /// thread polling its RSS every 50 ms (our own peak is VmHWM).
    pub fn start(target: Target, ticks_per_sec: u64) -> Result<Sampler> {
        let start = target.cpu()?;
        let peak_rss_kib = Arc::new(AtomicU64::new(target.memory()?.rss_kib));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = match target {
            Target::SelfProcess => None,
            Target::Pid(_) => {
                let (peak, stop) = (peak_rss_kib.clone(), stop.clone());
                Some(thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        if let Ok(m) = target.memory() {
                            peak.fetch_max(m.rss_kib, Ordering::Relaxed);
                        }
                        thread::sleep(Duration::from_millis(50));
                    }
                }))
            }
        };
        Ok(Sampler {
            target,
            ticks_per_sec,
            start,
            peak_rss_kib,
            stop,
            thread,
        })
    }

    /// Stops the sampler and returns what the process used since `start`.
    pub fn finish(mut self) -> Result<Usage> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let end = self.target.cpu()?;
        let mem = self.target.memory()?;
        let peak = self.peak_rss_kib.load(Ordering::Relaxed).max(mem.rss_kib);
        let peak = match self.target {
            Target::SelfProcess => peak.max(mem.hwm_kib),
            Target::Pid(_) => peak,
        };
        let secs = |ticks: u64| ticks as f64 / self.ticks_per_sec as f64;
        let mib = |kib: u64| kib as f64 / 1024.0;
        Ok(Usage {
            cpu_s: secs(end.total().saturating_sub(self.start.total())),
            user_s: secs(end.utime.saturating_sub(self.start.utime)),
            system_s: secs(end.stime.saturating_sub(self.start.stime)),
            peak_rss_mib: mib(peak),
            end_rss_mib: mib(mem.rss_kib),
            hwm_mib: mib(mem.hwm_kib),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // A real line from a broker, with a comm that has spaces and parens.
    const STAT: &str = "4242 (strom (w) x) S 1 4242 4242 0 -1 4194560 12345 0 0 0 \
        1534 287 0 0 20 0 9 0 123456 1234567890 23456 18446744073709551615 \
        1 1 0 0 0 0 0 4096 17642 0 0 0 17 1 0 0 0 0 0";

    #[test]
    fn parses_utime_and_stime() {
        let t = parse_stat(STAT).expect("parses");
        assert_eq!(
            t,
            CpuTicks {
                utime: 1534,
                stime: 287
            }
        );
        assert_eq!(t.total(), 1821);
    }

    #[test]
    fn rejects_truncated_stat() {
        assert!(parse_stat("4242 (strom) S 1 2 3").is_err());
        assert!(parse_stat("garbage").is_err());
    }

    #[test]
    fn parses_status_memory() {
        let text = "Name:\tstrom\nVmPeak:\t  900000 kB\nVmHWM:\t   81234 kB\n\
                    VmRSS:\t   70000 kB\nThreads:\t9\n";
        assert_eq!(
            parse_status(text),
            Memory {
                rss_kib: 70000,
                hwm_kib: 81234
            }
        );
        assert_eq!(parse_status("Name:\tkthreadd\n"), Memory::default());
    }

    #[test]
    fn reads_own_process() {
        let t = Target::SelfProcess;
        t.cpu().expect("own stat");
        assert!(t.memory().expect("own status").rss_kib > 0);
        assert!(clock_ticks_per_sec() > 0);
    }
}
