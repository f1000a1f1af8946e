//! `strom-perf baseline`: what the machine can do with the same bytes,
//! so every broker figure can be read as a fraction of a ceiling:
//! - loopback TCP: one thread writes `--chunk-size` writes, another reads;
//! - a file: the same writes into a file in `--dir`, then fsync (the
//!   figures with and without the fsync);
//! - librdkafka against its in-process mock cluster with the same produce
//!   options: the client's own ceiling.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use serde::Serialize;

use crate::cli::{BaselineCmd, Load};
use crate::cost::Cost;
use crate::payload::Payloads;
use crate::report::{Report, cost_lines};

#[derive(Debug, Serialize)]
pub struct Rate {
    pub bytes: u64,
    pub elapsed_s: f64,
    pub mb_per_s: f64,
}

impl Rate {
    fn new(bytes: u64, elapsed_s: f64) -> Rate {
        let mb_per_s = if elapsed_s > 0.0 {
            bytes as f64 / elapsed_s / 1e6
        } else {
            0.0
        };
        Rate {
            bytes,
            elapsed_s,
            mb_per_s,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Baseline {
    pub mode: &'static str,
    pub bytes: u64,
    pub chunk_size: usize,
    pub tcp_loopback: Rate,
    pub tcp_cost: Cost,
    /// write() of every chunk, no fsync: page-cache speed.
    pub file_write: Rate,
    /// The same plus one fsync at the end.
    pub file_write_fsync: Rate,
    pub mock: Option<Report>,
}

impl Baseline {
    pub fn human(&self) -> String {
        let mut s = format!(
            "== strom-perf baseline: {:.1} MB in {} KiB writes\n",
            self.bytes as f64 / 1e6,
            self.chunk_size / 1024
        );
        for (name, r) in [
            ("loopback TCP      ", &self.tcp_loopback),
            ("file write        ", &self.file_write),
            ("file write + fsync", &self.file_write_fsync),
        ] {
            s += &format!("   {name}: {:.1} MB/s ({:.2} s)\n", r.mb_per_s, r.elapsed_s);
        }
        s += "   (TCP run) ";
        s += cost_lines(&self.tcp_cost).trim_start();
        if let Some(m) = &self.mock {
            s += &m.human();
        }
        s
    }
}

pub fn run(cmd: &BaselineCmd) -> Result<Baseline> {
    if cmd.chunk_size == 0 {
        bail!("--chunk-size must be positive");
    }
    let count = match (cmd.load.count, cmd.load.duration) {
        (Some(c), _) => c,
        (None, None) => Load::DEFAULT_COUNT,
        (None, Some(_)) => bail!("baseline needs --count (the bytes to move), not --duration"),
    };
    let bytes = count * cmd.load.record_size as u64;
    // The same kind of content as the records, so nothing is special-cased.
    let chunk = Payloads::new(cmd.chunk_size, 1);
    let chunk = chunk.get(0);

    let meter = crate::cost::Meter::start(&Default::default())?;
    let tcp_loopback = tcp(chunk, bytes)?;
    let tcp_cost = meter.finish(bytes)?;
    let (file_write, file_write_fsync) = file(chunk, bytes, &cmd.dir)?;
    let mock = if cmd.no_mock {
        None
    } else {
        Some(super::produce::run_mock(
            &cmd.load,
            &cmd.topic,
            &cmd.properties,
        )?)
    };
    Ok(Baseline {
        mode: "baseline",
        bytes,
        chunk_size: cmd.chunk_size,
        tcp_loopback,
        tcp_cost,
        file_write,
        file_write_fsync,
        mock,
    })
}

/// Writes `bytes` through a loopback connection; timed until the reader
/// has them all.
fn tcp(chunk: &[u8], bytes: u64) -> Result<Rate> {
    let listener = TcpListener::bind("127.0.0.1:0").context("binding loopback")?;
    let addr = listener.local_addr()?;
    let chunk_len = chunk.len();
    let reader = thread::spawn(move || -> Result<u64> {
        let (mut conn, _) = listener.accept()?;
        let mut buf = vec![0u8; chunk_len];
        let mut got = 0u64;
        loop {
            match conn.read(&mut buf)? {
                0 => return Ok(got),
                n => got += n as u64,
            }
        }
    });
    let start = Instant::now();
    let mut conn = TcpStream::connect(addr).context("connecting over loopback")?;
    write_all_of(&mut conn, chunk, bytes)?;
    drop(conn);
    let got = reader
        .join()
        .map_err(|_| anyhow!("the TCP reader panicked"))??;
    let elapsed = start.elapsed().as_secs_f64();
    if got != bytes {
        bail!("TCP reader got {got} of {bytes} bytes");
    }
    Ok(Rate::new(bytes, elapsed))
}

/// Writes `bytes` to a new file in `dir`: (without fsync, with fsync).
fn file(chunk: &[u8], bytes: u64, dir: &std::path::Path) -> Result<(Rate, Rate)> {
    let path = dir.join(format!("strom-perf-baseline-{}.bin", std::process::id()));
    let result = (|| {
        let start = Instant::now();
        let mut f = File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        write_all_of(&mut f, chunk, bytes)?;
        let written = start.elapsed().as_secs_f64();
        f.sync_all().context("fsync")?;
        let synced = start.elapsed().as_secs_f64();
        Ok((Rate::new(bytes, written), Rate::new(bytes, synced)))
    })();
    // Remove the file whatever happened; it can be gigabytes.
    let _ = fs::remove_file(&path);
    result
}

/// Writes `chunk` repeatedly until `bytes` are out (the last one partial).
fn write_all_of(w: &mut impl Write, chunk: &[u8], bytes: u64) -> Result<()> {
    let mut left = bytes;
    while left > 0 {
        let n = (chunk.len() as u64).min(left) as usize;
        w.write_all(&chunk[..n])?;
        left -= n as u64;
    }
    w.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_exactly_the_bytes() {
        let mut v = Vec::new();
        write_all_of(&mut v, &[1, 2, 3], 8).expect("write");
        assert_eq!(v, [1, 2, 3, 1, 2, 3, 1, 2]);
    }

    #[test]
    fn tcp_and_file_move_the_bytes() {
        // Small sizes: checks the plumbing, not the speed.
        let chunk = vec![7u8; 4096];
        assert_eq!(tcp(&chunk, 100_000).expect("tcp").bytes, 100_000);
        let dir = std::env::temp_dir();
        let (a, b) = file(&chunk, 10_000, &dir).expect("file");
        assert_eq!((a.bytes, b.bytes), (10_000, 10_000));
    }
}
