//! Running the `strom` client commands against a test broker.
//!
//! [`Strom`] builds one invocation: arguments, stdin, environment; [`Strom::run`]
//! returns what it printed and its exit status, killing it after a timeout.
//! `--brokers` is passed through `STROM_BROKERS` so the arguments under test stay
//! exactly what a user types.

use std::io::{Read, Write};
use std::process::{Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::{Broker, HARNESS_ENV, LOG_TAIL_LINES, strom_bin};

/// Default limit on one `strom` client command.
pub const CLI_TIMEOUT: Duration = Duration::from_secs(60);

/// What one `strom` invocation printed.
#[derive(Debug)]
pub struct StromOutput {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

/// One `strom` invocation being built.
pub struct Strom<'a> {
    broker: Option<&'a Broker>,
    brokers: Option<String>,
    args: Vec<String>,
    stdin: Vec<u8>,
    env: Vec<(String, String)>,
    timeout: Duration,
}

/// `strom args...` against `broker` (via `STROM_BROKERS`).
pub fn strom<'a>(broker: &'a Broker, args: &[&str]) -> Strom<'a> {
    Strom {
        broker: Some(broker),
        brokers: Some(broker.bootstrap()),
        args: args.iter().map(|s| s.to_string()).collect(),
        stdin: Vec::new(),
        env: Vec::new(),
        timeout: CLI_TIMEOUT,
    }
}

/// `strom args...` with no broker configured (STROM_BROKERS unset).
pub fn strom_alone(args: &[&str]) -> Strom<'static> {
    Strom {
        broker: None,
        brokers: None,
        args: args.iter().map(|s| s.to_string()).collect(),
        stdin: Vec::new(),
        env: Vec::new(),
        timeout: CLI_TIMEOUT,
    }
}

impl<'a> Strom<'a> {
    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.stdin = bytes.into();
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    fn describe(&self) -> String {
        format!("strom {}", self.args.join(" "))
    }

    /// Runs the command to completion (or kills it after the timeout and panics).
    pub fn run(self) -> StromOutput {
        let mut cmd = Command::new(strom_bin());
        cmd.args(&self.args);
        cmd.env_remove("STROM_BROKERS");
        for var in HARNESS_ENV {
            cmd.env_remove(var);
        }
        cmd.env_remove("RUST_BACKTRACE");
        if let Some(brokers) = &self.brokers {
            cmd.env("STROM_BROKERS", brokers);
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let start = Instant::now();
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {}: {e}", strom_bin()));
        let mut stdin = child.stdin.take().expect("piped stdin");
        let input = self.stdin.clone();
        let writer = thread::spawn(move || {
            // A command that exits without reading all of stdin is not an error here.
            let _ = stdin.write_all(&input);
        });
        let mut out = child.stdout.take().expect("piped stdout");
        let mut err = child.stderr.take().expect("piped stderr");
        let out_reader = thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = out.read_to_end(&mut buf);
            buf
        });
        let err_reader = thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = err.read_to_end(&mut buf);
            buf
        });
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait for strom") {
                break status;
            }
            if start.elapsed() > self.timeout {
                let _ = child.kill();
                let _ = child.wait();
                let stderr = err_reader.join().unwrap_or_default();
                panic!(
                    "`{}` did not finish within {:?}\nstderr: {}{}",
                    self.describe(),
                    self.timeout,
                    String::from_utf8_lossy(&stderr),
                    self.broker_tail()
                );
            }
            thread::sleep(Duration::from_millis(10));
        };
        let _ = writer.join();
        let stdout = out_reader.join().unwrap_or_default();
        let stderr = err_reader.join().unwrap_or_default();
        StromOutput {
            status,
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
            elapsed: start.elapsed(),
        }
    }

    fn broker_tail(&self) -> String {
        match self.broker {
            Some(b) => format!(
                "\n---- broker log tail ----\n{}",
                b.log_tail(LOG_TAIL_LINES)
            ),
            None => String::new(),
        }
    }

    /// Runs the command, requires exit status 0, returns stdout.
    pub fn ok(self) -> String {
        let what = self.describe();
        let tail = self.broker_tail();
        let out = self.run();
        assert!(
            out.status.success(),
            "`{what}` failed with {}\nstdout: {}\nstderr: {}{tail}",
            out.status,
            out.stdout,
            out.stderr
        );
        out.stdout
    }

    /// Runs the command, requires a non-zero exit and a one-line `error: ...` on
    /// stderr with no backtrace; returns that line.
    pub fn fails(self) -> String {
        let what = self.describe();
        let out = self.run();
        assert!(
            !out.status.success(),
            "`{what}` should have failed\nstdout: {}\nstderr: {}",
            out.stdout,
            out.stderr
        );
        let lines: Vec<&str> = out.stderr.lines().filter(|l| !l.is_empty()).collect();
        assert_eq!(
            lines.len(),
            1,
            "`{what}`: expected one error line, got:\n{}",
            out.stderr
        );
        assert!(
            lines[0].starts_with("error: "),
            "`{what}`: error line should start with `error: `: {}",
            out.stderr
        );
        assert!(
            !out.stderr.contains("backtrace") && !out.stderr.contains("panicked"),
            "`{what}`: {}",
            out.stderr
        );
        lines[0].to_string()
    }
}
