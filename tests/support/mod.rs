//! Shared helpers for the end-to-end tests in `tests/`.
//!
//! Include from a test file (declared as a `[[test]]` of `strom-cli`, so that
//! `CARGO_BIN_EXE_strom` is set) with:
//!
//! ```ignore
//! #[path = "support/mod.rs"]
//! mod support;
//! ```
//!
//! Only `std` is used, so a test target needs no extra dev-dependencies.
//!
//! - [`Broker`]: a `strom serve` process on a free 127.0.0.1 port with its own
//!   temporary data directory and log file; killed when dropped.
//! - [`run_client`] / [`Broker::run_client`]: run an external client program
//!   with a hard timeout; on failure, panic with its output and the broker
//!   log tail.
//! - [`require_client`]: a missing client tool fails the test, unless
//!   `STROM_ALLOW_MISSING_CLIENTS=1` is set, when the test prints a skip
//!   message and returns early. CI never sets it.

// Each test file uses a different subset of these helpers.
#![allow(dead_code)]

pub mod cli;
pub mod groups;
pub mod hostile;
pub mod records;
pub mod wire;

use std::cell::Cell;
use std::ffi::OsStr;
use std::fmt::Write as _;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long [`Broker::start`] waits for the port to accept connections.
pub const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long [`Broker::stop`] waits after SIGTERM before SIGKILL.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// Lines of the broker log shown in failure messages.
pub const LOG_TAIL_LINES: usize = 80;

/// Set to `1` to turn a missing client tool into a skip (never in CI).
pub const ALLOW_MISSING_ENV: &str = "STROM_ALLOW_MISSING_CLIENTS";
/// Set to `1` to keep brokers' temporary directories after the test.
pub const KEEP_DIRS_ENV: &str = "STROM_KEEP_TEST_DIRS";

/// Environment variables of the test harness and client programs; removed
/// from the broker's environment (the broker reads `STROM_*` as config).
pub const HARNESS_ENV: &[&str] = &[
    ALLOW_MISSING_ENV,
    KEEP_DIRS_ENV,
    TEST_BIN_ENV,
    "STROM_ROUNDTRIP_ARGS",
    "STROM_CLIENT_TIMEOUT",
    "STROM_PYTHON",
    "STROM_SARAMA_DEBUG",
    "STROM_BROKERS",
    "STROM_CRASH_SEED",
    "STROM_LOAD_SECS",
];

/// Set to a path to test that `strom` binary instead of the one Cargo built (for a
/// target directory shared by several work trees, where `target/debug/strom` may be
/// another tree's build by the time the tests run).
pub const TEST_BIN_ENV: &str = "STROM_TEST_BIN";

/// The `strom` binary under test.
pub fn strom_bin() -> String {
    std::env::var(TEST_BIN_ENV).unwrap_or_else(|_| env!("CARGO_BIN_EXE_strom").to_string())
}

/// The workspace root (the folder holding `tests/`).
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    // Test targets live in crates/cli; the workspace root is two levels up.
    let root = manifest.join("../..");
    root.canonicalize().unwrap_or(root)
}

/// `tests/clients/`: the real-client programs.
pub fn clients_dir() -> PathBuf {
    workspace_root().join("tests").join("clients")
}

/// A fresh, empty directory under Cargo's per-target temp dir
/// (`target/tmp`). The caller removes it.
pub fn fresh_temp_dir(prefix: &str) -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = base.join(format!("{prefix}-{}-{n}-{nanos:08x}", std::process::id()));
        match fs::create_dir_all(&base).and_then(|_| fs::create_dir(&dir)) {
            Ok(()) => return dir,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => panic!("cannot create temp dir {}: {e}", dir.display()),
        }
    }
}

/// A directory from [`fresh_temp_dir`] that is removed when dropped, unless
/// the thread is panicking (kept for inspection; its path is printed) or
/// `STROM_KEEP_TEST_DIRS=1`.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new(prefix: &str) -> TempDir {
        TempDir {
            path: fresh_temp_dir(prefix),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let keep = std::env::var(KEEP_DIRS_ENV).is_ok_and(|v| v == "1");
        if thread::panicking() {
            eprintln!("kept temp dir {}", self.path.display());
        } else if !keep {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

/// A port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local_addr").port()
}

/// The last `n` lines of a text file (lossy UTF-8); empty if unreadable.
pub fn file_tail(path: &Path, n: usize) -> String {
    let mut bytes = Vec::new();
    if File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .is_err()
    {
        return String::new();
    }
    tail_lines(&String::from_utf8_lossy(&bytes), n)
}

fn tail_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let skip = lines.len().saturating_sub(n);
    let mut out = String::new();
    if skip > 0 {
        let _ = writeln!(out, "[... {skip} earlier lines not shown ...]");
    }
    for line in &lines[skip..] {
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Send a signal to a process (or, with a negative id, a process group)
/// through `kill(1)`: `std` itself can only SIGKILL its own children.
fn send_signal(signal: &str, id: i64) -> bool {
    Command::new("kill")
        .arg(format!("-{signal}"))
        .arg("--")
        .arg(id.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Wait for `child` to exit, up to `timeout`.
fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() >= deadline => return None,
            Ok(None) => thread::sleep(Duration::from_millis(20)),
            Err(_) => return None,
        }
    }
}

/// Options for [`Broker`]; `Broker::builder().node_id(1).start()`.
#[derive(Debug, Clone, Default)]
pub struct BrokerBuilder {
    node_id: Option<u32>,
    extra_args: Vec<String>,
    env: Vec<(String, String)>,
    data_dir: Option<PathBuf>,
    wrapper: Vec<String>,
}

impl BrokerBuilder {
    /// Pass `--node-id N` (by default the flag is not passed).
    pub fn node_id(mut self, id: u32) -> Self {
        self.node_id = Some(id);
        self
    }

    /// An extra argument after the standard `serve` flags.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.extra_args.push(arg.into());
        self
    }

    /// Use `dir` (created if missing) as the data directory instead of `data/` in the
    /// broker's temp dir, e.g. a small filesystem the test mounted. The caller owns it.
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = Some(dir.into());
        self
    }

    /// An environment variable for the broker process.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Run the broker under another program: `program args... strom serve ...` (for
    /// example strace). [`Broker::pid`] is then the wrapper's process id, and
    /// [`Broker::kill`] SIGKILLs the wrapper only: the caller must end the broker
    /// itself.
    pub fn wrapper(mut self, program: impl Into<String>, args: &[&str]) -> Self {
        self.wrapper = std::iter::once(program.into())
            .chain(args.iter().map(|a| a.to_string()))
            .collect();
        self
    }

    pub fn start(self) -> Broker {
        Broker::start_with(self)
    }
}

/// A running `strom serve` on 127.0.0.1 with a private data directory.
///
/// stdout and stderr go to `broker.log` in the broker's temp dir, so that
/// failures can show them ([`Broker::log_tail`]). Dropping the `Broker`
/// SIGKILLs the process; the temp dir is removed unless the test is
/// panicking (then its path and the log tail are printed) or
/// `STROM_KEEP_TEST_DIRS=1`.
#[derive(Debug)]
pub struct Broker {
    opts: BrokerBuilder,
    port: u16,
    child: Option<Child>,
    root: TempDir,
    data_dir: PathBuf,
    log_path: PathBuf,
    starts: usize,
    // Set once a failure message has shown the log tail, so Drop does not
    // print it a second time.
    log_shown: Cell<bool>,
}

impl Broker {
    /// Start a broker on a free port with a fresh data dir; waits (bounded
    /// by [`READY_TIMEOUT`]) until the port accepts TCP connections.
    pub fn start() -> Broker {
        Broker::start_with(BrokerBuilder::default())
    }

    pub fn builder() -> BrokerBuilder {
        BrokerBuilder::default()
    }

    fn start_with(opts: BrokerBuilder) -> Broker {
        let root = TempDir::new("strom-broker");
        let data_dir = opts
            .data_dir
            .clone()
            .unwrap_or_else(|| root.path().join("data"));
        fs::create_dir_all(&data_dir).expect("create broker data dir");
        let log_path = root.path().join("broker.log");
        let mut broker = Broker {
            opts,
            port: 0,
            child: None,
            root,
            data_dir,
            log_path,
            starts: 0,
            log_shown: Cell::new(false),
        };
        // The free port can be taken between probing and binding; retry a
        // few times with a new port if the broker dies saying so.
        let mut attempt = 0;
        loop {
            attempt += 1;
            broker.port = free_port();
            match broker.spawn_and_wait() {
                Ok(()) => return broker,
                Err(e) if attempt < 3 && e.contains("in use") => continue,
                Err(e) => panic!("{e}"),
            }
        }
    }

    /// `127.0.0.1:PORT`, for clients' bootstrap configuration.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The broker's temp dir (holds `data/` and `broker.log`).
    pub fn dir(&self) -> &Path {
        self.root.path()
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The process id of the running broker.
    ///
    /// # Panics
    /// If the broker is not running (after `stop`/`kill`).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("broker is not running").id()
    }

    /// Whether the process is still alive (has not exited).
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// The last `n` lines of the broker's log (all restarts).
    pub fn log_tail(&self, n: usize) -> String {
        file_tail(&self.log_path, n)
    }

    /// Graceful stop: SIGTERM, wait up to [`STOP_TIMEOUT`], then SIGKILL.
    /// Returns the exit status (None if it was not running). A broker that
    /// needed SIGKILL is reported on stderr but does not fail here; tests
    /// that require a clean shutdown should check the status.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        send_signal("TERM", i64::from(child.id()));
        if let Some(status) = wait_timeout(&mut child, STOP_TIMEOUT) {
            return Some(status);
        }
        eprintln!(
            "strom broker pid {} ignored SIGTERM for {:?}; sending SIGKILL",
            child.id(),
            STOP_TIMEOUT
        );
        let _ = child.kill();
        child.wait().ok()
    }

    /// Crash: SIGKILL and reap. Returns the exit status (None if it was not
    /// running).
    pub fn kill(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        let _ = child.kill();
        child.wait().ok()
    }

    /// Stop (gracefully, see [`Broker::stop`]) if running, then start again
    /// with the same data dir and port, and wait until it accepts
    /// connections. Use [`Broker::kill`] first to restart after a crash.
    pub fn restart(&mut self) {
        self.stop();
        if let Err(e) = self.spawn_and_wait() {
            panic!("{e}");
        }
    }

    /// Run an external client against this broker; see [`run_client`].
    pub fn run_client<S: AsRef<OsStr>>(
        &self,
        program: impl AsRef<OsStr>,
        args: &[S],
        env: &[(&str, &str)],
        timeout: Duration,
    ) -> ClientOutput {
        run_client_inner(program.as_ref(), args, env, timeout, None, Some(self))
    }

    fn spawn_and_wait(&mut self) -> Result<(), String> {
        self.starts += 1;
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .map_err(|e| format!("open {}: {e}", self.log_path.display()))?;
        let listen = self.bootstrap();
        let mut cmd = match self.opts.wrapper.split_first() {
            Some((program, args)) => {
                let mut cmd = Command::new(program);
                cmd.args(args).arg(strom_bin());
                cmd
            }
            None => Command::new(strom_bin()),
        };
        cmd.arg("serve")
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--listen")
            .arg(&listen)
            .arg("--advertise")
            .arg(&listen);
        if let Some(id) = self.opts.node_id {
            cmd.arg("--node-id").arg(id.to_string());
        }
        cmd.args(&self.opts.extra_args);
        for (k, v) in &self.opts.env {
            cmd.env(k, v);
        }
        // The harness's own STROM_* variables are not broker configuration.
        for var in HARNESS_ENV {
            cmd.env_remove(var);
        }
        cmd.env("RUST_BACKTRACE", "1");
        let _ = writeln!(
            log,
            "===== start #{} of strom serve on {listen}: {cmd:?} =====",
            self.starts
        );
        let err_log = log
            .try_clone()
            .map_err(|e| format!("clone log handle: {e}"))?;
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err_log));
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot spawn {}: {e}", strom_bin()))?;
        self.child = Some(child);

        let deadline = Instant::now() + READY_TIMEOUT;
        let addr = self.addr();
        loop {
            let exited = match self.child.as_mut() {
                Some(child) => child.try_wait().ok().flatten(),
                None => None,
            };
            if let Some(status) = exited {
                self.child = None;
                return Err(format!(
                    "strom serve on {listen} exited during startup with {status}\n\
                     ---- broker log ({}) ----\n{}",
                    self.log_path.display(),
                    self.log_tail(LOG_TAIL_LINES)
                ));
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                self.kill();
                return Err(format!(
                    "strom serve did not accept connections on {listen} within {READY_TIMEOUT:?}\n\
                     ---- broker log ({}) ----\n{}",
                    self.log_path.display(),
                    self.log_tail(LOG_TAIL_LINES)
                ));
            }
            thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
        if thread::panicking() && !self.log_shown.get() {
            eprintln!(
                "---- strom broker on 127.0.0.1:{} log tail ({}) ----\n{}",
                self.port,
                self.log_path.display(),
                self.log_tail(LOG_TAIL_LINES)
            );
        }
        // `self.root` (a TempDir) is removed after this, or kept if panicking.
    }
}

/// What a client program printed, from [`run_client`].
#[derive(Debug)]
pub struct ClientOutput {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

/// Run `program args...` with extra `env`, killing it (and everything it
/// started: it runs in its own process group) after `timeout`.
///
/// On timeout or a non-zero exit, panics with the command line, its stdout
/// and stderr (tails) and, if given, the broker's log tail. On success,
/// prints the client's stdout (the programs in tests/clients print one
/// summary line per codec) and returns the output.
pub fn run_client<S: AsRef<OsStr>>(
    program: impl AsRef<OsStr>,
    args: &[S],
    env: &[(&str, &str)],
    timeout: Duration,
    broker: Option<&Broker>,
) -> ClientOutput {
    run_client_inner(program.as_ref(), args, env, timeout, None, broker)
}

/// Like [`run_client`] with a working directory.
pub fn run_client_in<S: AsRef<OsStr>>(
    dir: &Path,
    program: impl AsRef<OsStr>,
    args: &[S],
    env: &[(&str, &str)],
    timeout: Duration,
    broker: Option<&Broker>,
) -> ClientOutput {
    run_client_inner(program.as_ref(), args, env, timeout, Some(dir), broker)
}

fn run_client_inner<S: AsRef<OsStr>>(
    program: &OsStr,
    args: &[S],
    env: &[(&str, &str)],
    timeout: Duration,
    dir: Option<&Path>,
    broker: Option<&Broker>,
) -> ClientOutput {
    let mut cmd = Command::new(program);
    cmd.args(args.iter().map(AsRef::as_ref));
    for (k, v) in env {
        cmd.env(k, v);
    }
    if let Some(dir) = dir {
        cmd.current_dir(dir);
    }
    // Own process group, so a timeout kills a script's children too (and
    // they stop holding our pipes open).
    cmd.process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let line = command_line(program, args, env);
    let start = Instant::now();
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run client `{line}`: {e}"));
    let pgid = i64::from(child.id());
    let out_reader = spawn_reader(child.stdout.take().expect("piped stdout"));
    let err_reader = spawn_reader(child.stderr.take().expect("piped stderr"));

    let status = wait_timeout(&mut child, timeout);
    let timed_out = status.is_none();
    // Whatever the outcome, leave no stragglers from the client's group.
    send_signal("KILL", -pgid);
    let status = match status {
        Some(s) => s,
        None => {
            let _ = child.kill();
            child.wait().expect("wait for killed client")
        }
    };
    let stdout = out_reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    let elapsed = start.elapsed();

    if timed_out || !status.success() {
        let what = if timed_out {
            format!("timed out after {timeout:?} and was killed")
        } else {
            format!("failed with {status} after {elapsed:.1?}")
        };
        let mut msg = format!("client `{line}` {what}\n");
        let _ = write!(
            msg,
            "---- client stdout ----\n{}---- client stderr ----\n{}",
            tail_lines(&stdout, 100),
            tail_lines(&stderr, 150)
        );
        if let Some(b) = broker {
            b.log_shown.set(true);
            let _ = write!(
                msg,
                "---- broker log tail ({}) ----\n{}",
                b.log_path().display(),
                b.log_tail(LOG_TAIL_LINES)
            );
        }
        panic!("{msg}");
    }
    print!("{stdout}");
    let _ = std::io::stdout().flush();
    ClientOutput {
        status,
        stdout,
        stderr,
        elapsed,
    }
}

fn spawn_reader<R: Read + Send + 'static>(mut r: R) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

fn command_line<S: AsRef<OsStr>>(program: &OsStr, args: &[S], env: &[(&str, &str)]) -> String {
    let mut s = String::new();
    for (k, v) in env {
        let _ = write!(s, "{k}={v} ");
    }
    s.push_str(&program.to_string_lossy());
    for a in args {
        s.push(' ');
        s.push_str(&a.as_ref().to_string_lossy());
    }
    s
}

/// Whether missing client tools should skip tests instead of failing them.
pub fn missing_clients_allowed() -> bool {
    std::env::var(ALLOW_MISSING_ENV).is_ok_and(|v| v == "1")
}

/// Check that a client tool is usable. `Ok(())` → run the test. A failed
/// check panics (the default, and what CI gets), unless
/// `STROM_ALLOW_MISSING_CLIENTS=1`, when it prints a skip message and
/// returns `false`:
///
/// ```ignore
/// if !support::require_client("kcat", support::find_program("kcat").map(drop)) {
///     return;
/// }
/// ```
#[must_use]
pub fn require_client(what: &str, check: Result<(), String>) -> bool {
    match check {
        Ok(()) => true,
        Err(why) if missing_clients_allowed() => {
            eprintln!("SKIP {what}: {why} ({ALLOW_MISSING_ENV}=1)");
            println!("SKIP {what}: {why} ({ALLOW_MISSING_ENV}=1)");
            false
        }
        Err(why) => panic!(
            "client {what} is not available: {why}. `bash .ci/run` installs every \
             client; set {ALLOW_MISSING_ENV}=1 to skip such tests locally"
        ),
    }
}

/// Find `name` on PATH (like `command -v`).
pub fn find_program(name: &str) -> Result<PathBuf, String> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let candidate = dir.join(name);
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    Err(format!("`{name}` is not on PATH"))
}

/// The Python interpreter for client programs: `$STROM_PYTHON` or `python3`.
pub fn python() -> String {
    std::env::var("STROM_PYTHON").unwrap_or_else(|_| "python3".to_string())
}

/// Check that `python3 -c "import MODULE"` works.
pub fn python_module(module: &str) -> Result<(), String> {
    let py = python();
    let out = Command::new(&py)
        .args(["-c", &format!("import {module}")])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {py}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "python module `{module}` is not importable by {py}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// GOPATH holding Debian's packaged Go sources (`golang-*-dev` packages).
pub const DEBIAN_GOPATH: &str = "/usr/share/gocode";

/// Build the Go `main` package in `pkg_dir` into `out` OFFLINE, in GOPATH
/// mode against Debian's packaged sources:
/// `GO111MODULE=off GOPATH=/usr/share/gocode GOPROXY=off GOFLAGS= go build`.
/// The build cache is kept in `target/tmp/go-build-cache` so reruns are
/// fast. Panics with go's output if the build fails.
pub fn go_build_offline(pkg_dir: &Path, out: &Path, ldflags: &str) {
    let cache = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("go-build-cache");
    let mut args = vec!["build".to_string(), "-o".to_string()];
    args.push(out.to_string_lossy().into_owned());
    if !ldflags.is_empty() {
        args.push("-ldflags".to_string());
        args.push(ldflags.to_string());
    }
    args.push(".".to_string());
    let cache_s = cache.to_string_lossy().into_owned();
    let env = [
        ("GO111MODULE", "off"),
        ("GOPATH", DEBIAN_GOPATH),
        ("GOPROXY", "off"),
        ("GOFLAGS", ""),
        ("GOCACHE", cache_s.as_str()),
        // DataDog/zstd (via sarama) calls a deprecated libzstd function.
        ("CGO_CFLAGS", "-O2 -g -Wno-deprecated-declarations"),
    ];
    run_client_in(pkg_dir, "go", &args, &env, Duration::from_secs(300), None);
}

/// The installed version of a Debian package, if any.
pub fn debian_package_version(package: &str) -> Option<String> {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f=${Version}", package])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let v = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !v.is_empty()).then_some(v)
}
