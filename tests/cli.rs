//! End-to-end tests of the `strom` binary's command line.
//!
//! Declared as a `[[test]]` target of `strom-cli` (see crates/cli/Cargo.toml)
//! so that Cargo builds the binary first and exposes its path.

use std::process::{Command, Output};

fn strom(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_strom"))
        .args(args)
        .output()
        .expect("failed to run the strom binary")
}

#[test]
fn version_prints_package_version() {
    let out = strom(&["version"]);
    assert!(out.status.success(), "strom version failed: {out:?}");
    let stdout = String::from_utf8(out.stdout).expect("stdout is UTF-8");
    assert_eq!(
        stdout.trim_end(),
        format!("strom {}", env!("CARGO_PKG_VERSION"))
    );
    assert!(out.stderr.is_empty(), "unexpected stderr: {:?}", out.stderr);
}

#[test]
fn unknown_subcommand_fails_with_short_error() {
    let out = strom(&["no-such-command"]);
    assert!(!out.status.success(), "expected failure: {out:?}");
    assert!(out.stdout.is_empty(), "unexpected stdout: {:?}", out.stdout);
    let stderr = String::from_utf8(out.stderr).expect("stderr is UTF-8");
    let first = stderr.lines().next().unwrap_or_default();
    assert!(first.starts_with("error:"), "stderr: {stderr}");
    assert!(first.contains("no-such-command"), "stderr: {stderr}");
    assert!(stderr.lines().count() <= 6, "error too long: {stderr}");
}

#[test]
fn help_lists_version_subcommand() {
    let out = strom(&["--help"]);
    assert!(out.status.success(), "strom --help failed: {out:?}");
    let stdout = String::from_utf8(out.stdout).expect("stdout is UTF-8");
    assert!(stdout.contains("Usage: strom"), "help: {stdout}");
    assert!(stdout.contains("version"), "help: {stdout}");
}
