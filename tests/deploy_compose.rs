//! The container deployment (issue 5): `deploy/build-image.sh` builds the
//! `FROM scratch` image offline, `deploy/docker-compose.yml` runs it, and
//! kcat on the host produces and consumes through the published port.
//!
//! One test, in phases, each command bounded by a timeout:
//!
//! 1. build the image with the script (a static release build of `strom`:
//!    minutes the first time, seconds when nothing changed);
//! 2. `up` a compose project of its own (unique project name, free host
//!    port, advertised as `127.0.0.1:PORT`), wait until the broker answers
//!    Metadata with that advertised address, produce records with kcat and
//!    consume them back exactly (partition, offset, key, value); the
//!    healthcheck must report `healthy`;
//! 3. `stop` (SIGTERM: the broker must exit 0 after a clean shutdown) and
//!    `start`: the records are still there, and more can be appended;
//! 4. `down` without `-v` and `up` again, which makes a new container on the
//!    same named volume: every record is still there;
//! 5. `down -v`, which must leave no volume behind.
//!
//! A guard runs `down -v` whatever happens (and prints the broker's log if
//! the test failed). Docker, a compose (`docker compose`, else
//! `docker-compose`) and kcat must be usable: a missing one fails the test,
//! unless `STROM_ALLOW_MISSING_CLIENTS=1` (never set in CI) turns that into
//! a printed skip.

#[path = "support/mod.rs"]
mod support;

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail, ensure};

/// The image the script builds and the compose file runs.
const IMAGE: &str = "strom:dev";
/// The whole image build, including a cold static release build of `strom`.
const BUILD_TIMEOUT: Duration = Duration::from_secs(40 * 60);
/// One docker or compose command (`up`, `stop`, `down`, `inspect`, ...).
const DOCKER_TIMEOUT: Duration = Duration::from_secs(120);
/// One kcat run.
const KCAT_TIMEOUT: Duration = Duration::from_secs(60);
/// From `up`/`start` until the broker answers Metadata.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Until the compose healthcheck reports `healthy` (interval 10 s).
const HEALTHY_TIMEOUT: Duration = Duration::from_secs(60);
/// The topic the test writes; created by kcat's produce (auto-creation).
const TOPIC: &str = "deploy-compose";

/// What a command printed.
struct Ran {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

/// Run `cmd` (in its own process group) with `stdin`, killing the group
/// after `timeout`. Fails on a timeout or a non-zero exit, with the output.
fn run(cmd: &mut Command, stdin: Option<&[u8]>, timeout: Duration) -> anyhow::Result<Ran> {
    let ran = run_status(cmd, stdin, timeout)?;
    ensure!(
        ran.status.success(),
        "`{cmd:?}` failed with {}\n---- stdout ----\n{}\n---- stderr ----\n{}",
        ran.status,
        tail(&ran.stdout, 60),
        tail(&ran.stderr, 60)
    );
    Ok(ran)
}

/// Like [`run`], but a non-zero exit is returned, not an error.
fn run_status(cmd: &mut Command, stdin: Option<&[u8]>, timeout: Duration) -> anyhow::Result<Ran> {
    cmd.process_group(0)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot run `{cmd:?}`"))?;
    let pgid = child.id();
    let writer = child.stdin.take().map(|mut pipe| {
        let data = stdin.unwrap_or_default().to_vec();
        thread::spawn(move || {
            let _ = pipe.write_all(&data);
        })
    });
    let out = reader(child.stdout.take().expect("piped stdout"));
    let err = reader(child.stderr.take().expect("piped stderr"));
    let status = wait_timeout(&mut child, timeout);
    // Whatever happened, leave nothing of the group running.
    kill_group(pgid);
    let status = match status {
        Some(status) => status,
        None => {
            let _ = child.kill();
            let _ = child.wait();
            let stdout = out.join().unwrap_or_default();
            let stderr = err.join().unwrap_or_default();
            bail!(
                "`{cmd:?}` timed out after {timeout:?} and was killed\n\
                 ---- stdout ----\n{}\n---- stderr ----\n{}",
                tail(&stdout, 60),
                tail(&stderr, 60)
            );
        }
    };
    if let Some(writer) = writer {
        let _ = writer.join();
    }
    Ok(Ran {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    })
}

fn reader<R: Read + Send + 'static>(mut r: R) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(50)),
            _ => return None,
        }
    }
}

/// SIGKILL a process group through kill(1) (`std` can only kill a child).
fn kill_group(pgid: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{pgid}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// The last `n` lines of `text`.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let skip = lines.len().saturating_sub(n);
    let mut out = String::new();
    if skip > 0 {
        let _ = writeln!(out, "[... {skip} earlier lines ...]");
    }
    for line in &lines[skip..] {
        let _ = writeln!(out, "{line}");
    }
    out
}

/// Docker's daemon answers.
fn docker_usable() -> Result<(), String> {
    let mut cmd = Command::new("docker");
    cmd.args(["info", "--format", "{{.ServerVersion}}"]);
    match run(&mut cmd, None, Duration::from_secs(30)) {
        Ok(ran) => {
            println!("docker daemon {}", ran.stdout.trim());
            Ok(())
        }
        Err(e) => Err(format!("{e:#}")),
    }
}

/// A missing tool fails the test, unless `STROM_ALLOW_MISSING_CLIENTS=1`
/// (never set in CI), when it prints a skip and returns `false`.
fn require(what: &str, check: Result<(), String>) -> bool {
    match check {
        Ok(()) => true,
        Err(why) if support::missing_clients_allowed() => {
            println!(
                "SKIP deploy test: {what}: {why} ({}=1)",
                support::ALLOW_MISSING_ENV
            );
            false
        }
        Err(why) => panic!(
            "{what} is needed by this test and is not usable: {why}\n\
             The deploy test builds the image and runs it with compose and kcat; CI has \
             docker and docker-compose, and `bash .ci/run` installs kcat. Set {}=1 to \
             skip it locally.",
            support::ALLOW_MISSING_ENV
        ),
    }
}

/// `docker compose` (the v2 plugin) if it works, else `docker-compose` (v1).
fn find_compose() -> Result<Vec<String>, String> {
    let candidates: [&[&str]; 2] = [&["docker", "compose"], &["docker-compose"]];
    for argv in candidates {
        let mut cmd = Command::new(argv[0]);
        cmd.args(&argv[1..]).arg("version");
        if let Ok(ran) = run(&mut cmd, None, Duration::from_secs(30)) {
            let version = ran.stdout.lines().next().unwrap_or_default().to_string();
            println!("compose: `{}` ({version})", argv.join(" "));
            return Ok(argv.iter().map(|s| s.to_string()).collect());
        }
    }
    Err("neither `docker compose` nor `docker-compose` works".to_string())
}

/// One compose project running deploy/docker-compose.yml; `down -v` on drop.
struct Project {
    compose: Vec<String>,
    file: PathBuf,
    name: String,
    port: u16,
    /// Set when the test passed: the drop does not print the broker log.
    passed: bool,
    down: bool,
}

impl Project {
    fn new(compose: Vec<String>, port: u16) -> Project {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        Project {
            compose,
            file: support::workspace_root().join("deploy/docker-compose.yml"),
            name: format!("stromdeploytest-{}-{nanos:08x}", std::process::id()),
            port,
            passed: false,
            down: false,
        }
    }

    fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `compose -f FILE -p NAME ARGS...` with the file's variables set.
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.compose[0]);
        cmd.args(&self.compose[1..])
            .arg("-f")
            .arg(&self.file)
            .args(["-p", &self.name])
            .args(args)
            .env("STROM_IMAGE", IMAGE)
            .env("STROM_PORT", self.port.to_string())
            .env("STROM_ADVERTISE", self.bootstrap())
            .env("RUST_LOG", "info");
        cmd
    }

    fn run(&self, args: &[&str]) -> anyhow::Result<Ran> {
        run(&mut self.command(args), None, DOCKER_TIMEOUT)
    }

    /// The id of the broker's container (also when stopped).
    fn container(&self) -> anyhow::Result<String> {
        let ran = self.run(&["ps", "-q", "strom"])?;
        let id = ran.stdout.trim().to_string();
        ensure!(
            !id.is_empty(),
            "compose lists no container for service strom"
        );
        Ok(id)
    }

    /// `docker inspect -f FORMAT` of the broker's container.
    fn inspect(&self, container: &str, format: &str) -> anyhow::Result<String> {
        let mut cmd = Command::new("docker");
        cmd.args(["inspect", "-f", format, container]);
        Ok(run(&mut cmd, None, DOCKER_TIMEOUT)?
            .stdout
            .trim()
            .to_string())
    }

    fn logs(&self) -> String {
        match self.run(&["logs", "--no-color", "--tail", "150"]) {
            Ok(ran) => ran.stdout + &ran.stderr,
            Err(e) => format!("(cannot get the logs: {e:#})"),
        }
    }

    /// Wait until the broker answers Metadata through the published port and
    /// advertises the address the host reaches it on. (The port accepts TCP
    /// as soon as docker publishes it, broker or not, so a connect proves
    /// nothing.)
    fn wait_ready(&self, container: &str) -> anyhow::Result<()> {
        let start = Instant::now();
        let want = format!("broker 1 at {}", self.bootstrap());
        let mut last = String::new();
        while start.elapsed() < READY_TIMEOUT {
            let state = self.inspect(container, "{{.State.Status}}")?;
            ensure!(
                state == "running" || state == "created" || state == "restarting",
                "the broker's container is {state}"
            );
            let mut cmd = Command::new("kcat");
            cmd.args(["-b", &self.bootstrap(), "-L", "-m", "5"]);
            match run_status(&mut cmd, None, KCAT_TIMEOUT) {
                Ok(ran) if ran.status.success() && ran.stdout.contains(&want) => {
                    println!("broker answers after {:.1?}", start.elapsed());
                    return Ok(());
                }
                Ok(ran) => last = format!("{}{}", ran.stdout, ran.stderr),
                Err(e) => last = format!("{e:#}"),
            }
            thread::sleep(Duration::from_millis(500));
        }
        bail!(
            "the broker did not answer Metadata advertising {} within {READY_TIMEOUT:?}; \
             last kcat -L:\n{}",
            self.bootstrap(),
            tail(&last, 30)
        )
    }

    fn wait_healthy(&self, container: &str) -> anyhow::Result<()> {
        let start = Instant::now();
        let mut status = String::new();
        while start.elapsed() < HEALTHY_TIMEOUT {
            status = self.inspect(container, "{{.State.Health.Status}}")?;
            if status == "healthy" {
                println!("healthcheck: healthy after {:.1?}", start.elapsed());
                return Ok(());
            }
            thread::sleep(Duration::from_secs(1));
        }
        let log = self.inspect(container, "{{json .State.Health}}")?;
        bail!("healthcheck still {status} after {HEALTHY_TIMEOUT:?}: {log}")
    }

    fn down(&mut self) -> anyhow::Result<()> {
        self.run(&["down", "-v", "--remove-orphans", "-t", "30"])?;
        self.down = true;
        Ok(())
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        if !self.passed {
            eprintln!(
                "---- compose project {} (host port {}) logs ----\n{}",
                self.name,
                self.port,
                self.logs()
            );
        }
        if self.down {
            return;
        }
        if let Err(e) = self.down() {
            eprintln!("cleaning up compose project {} failed: {e:#}", self.name);
        }
    }
}

/// `count` records `key-N:value N ...` (kcat -K: input) and what kcat prints
/// for them with `-f '%p/%o %k=%s\n'`, offsets from `first`.
fn records(first: usize, count: usize, tag: &str) -> (String, String) {
    let mut input = String::new();
    let mut shown = String::new();
    for i in first..first + count {
        let value = format!("value {i} from the {tag} {}", "x".repeat(i % 50));
        let _ = writeln!(input, "key-{i:04}:{value}");
        let _ = writeln!(shown, "0/{i} key-{i:04}={value}");
    }
    (input, shown)
}

fn produce(project: &Project, input: &str, codec: &str) -> anyhow::Result<()> {
    let mut cmd = Command::new("kcat");
    cmd.args(["-b", &project.bootstrap(), "-P", "-t", TOPIC, "-p", "0"])
        .args(["-K", ":", "-z", codec, "-X", "acks=all"]);
    run(&mut cmd, Some(input.as_bytes()), KCAT_TIMEOUT)?;
    Ok(())
}

/// Consume the whole partition and compare with `expected`, line for line.
fn check_consume(project: &Project, expected: &str, when: &str) -> anyhow::Result<()> {
    let count = expected.lines().count().to_string();
    let mut cmd = Command::new("kcat");
    cmd.args(["-b", &project.bootstrap(), "-C", "-t", TOPIC, "-p", "0"])
        .args(["-o", "beginning", "-e", "-c", &count, "-q"])
        .args(["-f", "%p/%o %k=%s\\n"]);
    let ran = run(&mut cmd, None, KCAT_TIMEOUT)?;
    if ran.stdout != expected {
        let got: Vec<&str> = ran.stdout.lines().collect();
        let want: Vec<&str> = expected.lines().collect();
        let first_diff = got
            .iter()
            .zip(&want)
            .position(|(g, w)| g != w)
            .unwrap_or(got.len().min(want.len()));
        bail!(
            "{when}: consumed {} records, expected {}; first difference at line {first_diff}:\n  \
             got:      {:?}\n  expected: {:?}\n---- kcat stderr ----\n{}",
            got.len(),
            want.len(),
            got.get(first_diff),
            want.get(first_diff),
            tail(&ran.stderr, 20)
        );
    }
    println!("{when}: consumed all {count} records back exactly");
    Ok(())
}

/// Run `up -d` on a free port, retrying with another port if the one picked
/// was taken meanwhile.
fn up(compose: &[String]) -> anyhow::Result<Project> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut project = Project::new(compose.to_vec(), support::free_port());
        match project.run(&["up", "-d", "--no-build"]) {
            Ok(_) => return Ok(project),
            Err(e) if attempt < 3 && format!("{e:#}").contains("already") => {
                eprintln!("host port {} was taken; retrying: {e:#}", project.port);
                project.passed = true; // Nothing worth showing.
            }
            Err(e) => return Err(e.context("compose up")),
        }
    }
}

fn build_image() -> anyhow::Result<()> {
    let root = support::workspace_root();
    let log = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("deploy-build-image.log");
    println!(
        "building {IMAGE} with deploy/build-image.sh (a static release build: minutes \
         the first time; log in {})",
        log.display()
    );
    let start = Instant::now();
    let mut cmd = Command::new("bash");
    cmd.arg(root.join("deploy/build-image.sh"))
        .current_dir(&root)
        .env("STROM_IMAGE", IMAGE)
        .env("CARGO", env!("CARGO"));
    let result = run(&mut cmd, None, BUILD_TIMEOUT);
    if let Ok(ran) = &result {
        std::fs::write(&log, format!("{}{}", ran.stdout, ran.stderr))?;
        // The script's own step lines (`==> ...`) and the binary's details.
        for line in ran
            .stdout
            .lines()
            .filter(|l| l.starts_with("==> ") || l.starts_with("binary:") || l.starts_with("ldd:"))
        {
            println!("  {line}");
        }
    }
    result.context("deploy/build-image.sh")?;
    println!("image built in {:.1?}", start.elapsed());
    Ok(())
}

#[test]
fn compose_broker_roundtrip_and_restart() -> anyhow::Result<()> {
    let test_start = Instant::now();
    if !require("docker", docker_usable()) {
        return Ok(());
    }
    let compose = find_compose();
    if !require("docker compose / docker-compose", compose.clone().map(drop)) {
        return Ok(());
    }
    let compose = compose.expect("checked");
    if !require("kcat", support::find_program("kcat").map(drop)) {
        return Ok(());
    }

    // 1. The image, offline.
    build_image()?;

    // 2. Up, produce, consume.
    let phase = Instant::now();
    let mut project = up(&compose)?;
    println!(
        "compose project {} up on host port {}",
        project.name, project.port
    );
    let first = project.container()?;
    project.wait_ready(&first)?;
    let (input, mut expected) = records(0, 200, "first container");
    produce(&project, &input, "lz4")?;
    check_consume(&project, &expected, "after produce")?;
    project.wait_healthy(&first)?;
    println!("up + produce + consume: {:.1?}", phase.elapsed());

    // 3. Stop (a clean SIGTERM shutdown) and start the same container.
    let phase = Instant::now();
    project.run(&["stop", "-t", "30"])?;
    let exit = project.inspect(&first, "{{.State.ExitCode}}")?;
    ensure!(
        exit == "0",
        "the broker exited with {exit} on `compose stop` (SIGTERM), not 0"
    );
    ensure!(
        project.logs().contains("strom stopped"),
        "the broker's log has no `strom stopped` after `compose stop`"
    );
    project.run(&["start"])?;
    project.wait_ready(&first)?;
    check_consume(&project, &expected, "after stop/start")?;
    let (more, shown) = records(200, 100, "restarted container");
    produce(&project, &more, "gzip")?;
    expected.push_str(&shown);
    check_consume(&project, &expected, "after stop/start and another produce")?;
    println!("stop + start: {:.1?}", phase.elapsed());

    // 4. A new container on the same named volume.
    let phase = Instant::now();
    project.run(&["down", "-t", "30"])?;
    project.run(&["up", "-d", "--no-build"])?;
    let second = project.container()?;
    ensure!(second != first, "`down` + `up` kept container {first}");
    project.wait_ready(&second)?;
    check_consume(&project, &expected, "in a new container on the same volume")?;
    println!("down + up (new container): {:.1?}", phase.elapsed());

    // 5. down -v removes the volume.
    project.down()?;
    let mut cmd = Command::new("docker");
    cmd.args([
        "volume",
        "ls",
        "-q",
        "--filter",
        &format!("name={}_", project.name),
    ]);
    let left = run(&mut cmd, None, DOCKER_TIMEOUT)?.stdout;
    ensure!(
        left.trim().is_empty(),
        "`down -v` left volumes: {}",
        left.trim()
    );
    project.passed = true;
    println!("deploy test passed in {:.1?}", test_start.elapsed());
    Ok(())
}
