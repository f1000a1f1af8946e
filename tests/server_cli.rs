//! End-to-end tests of `strom serve`'s command line: configuration errors exit at once
//! with a message naming the setting, and environment variables configure the broker.
//!
//! Declared as a `[[test]]` of `strom-cli` (crates/cli/Cargo.toml).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Kills the child on drop, so a failing test never leaves a broker running.
struct Killer(Child);

impl Drop for Killer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_strom"));
    cmd.arg("serve").args(args).stdin(Stdio::null());
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("STROM_") {
            cmd.env_remove(key);
        }
    }
    cmd.envs(env.iter().copied());
    cmd
}

/// Runs a `strom serve` that is expected to fail at startup.
fn failing(args: &[&str], env: &[(&str, &str)]) -> Output {
    let dir = tempfile::tempdir().expect("temp dir");
    let data_dir = dir.path().join("data");
    let mut cmd = serve(args, env);
    cmd.arg("--data-dir")
        .arg(&data_dir)
        .arg("--listen")
        .arg("127.0.0.1:0")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().expect("try_wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("strom serve should exit promptly on a config error");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // The process has exited; this only collects its (small) output.
    let out = child.wait_with_output().expect("output");
    assert!(!out.status.success(), "expected failure: {out:?}");
    out
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn unknown_file_key_is_named() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("strom.toml");
    std::fs::write(&file, "\"log.retention.msec\" = 5\n").expect("write config");
    let out = failing(&["--config", file.to_str().expect("utf-8 path")], &[]);
    assert!(
        stderr(&out).contains("log.retention.msec"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn bad_override_and_bad_env_are_named() {
    let out = failing(&["-o", "num.partitions=0"], &[]);
    assert!(stderr(&out).contains("num.partitions"), "{}", stderr(&out));
    let out = failing(&[], &[("STROM_LOG_RETENTION_MS", "soon")]);
    assert!(
        stderr(&out).contains("STROM_LOG_RETENTION_MS"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn environment_configures_listen_and_advertise() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut cmd = serve(
        &[],
        &[
            ("STROM_LISTEN", "127.0.0.1:0"),
            ("STROM_ADVERTISE", "broker.test:9999"),
            ("STROM_NODE_ID", "42"),
            ("STROM_DATA_DIR", dir.path().to_str().expect("utf-8 path")),
            ("RUST_LOG", "info"),
        ],
    );
    cmd.stdout(Stdio::null()).stderr(Stdio::piped());
    let mut child = Killer(cmd.spawn().expect("spawn"));
    let stderr = child.0.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("strom listening") {
                let _ = tx.send(line);
            }
        }
    });
    let line = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("broker announced its address");
    assert!(line.contains("address=127.0.0.1:"), "{line}");
    assert!(line.contains("advertised=broker.test:9999"), "{line}");
    assert!(line.contains("node_id=42"), "{line}");
}
