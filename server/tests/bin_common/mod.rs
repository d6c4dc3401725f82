//! Helpers shared by the tests that run the `keyshare-server` binary.

#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

#[allow(unused_imports)] // not every test binary that includes this module uses it
pub use keyshare_testkit::python;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_keyshare-server");

/// A command with a clean environment for the settings the binary reads.
pub fn keyshare(args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("KEYSHARE_") {
            cmd.env_remove(&name);
        }
    }
    cmd.env("KEYSHARE_LOG", "info,actix_server=warn");
    cmd
}

/// Runs a command to completion, failing the test after `deadline`.
pub fn run_within(mut cmd: Command, deadline: Duration) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if started.elapsed() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "{cmd:?} did not finish in time; stderr: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Asserts the binary failed the way it should on bad input: exit 1, one
/// `error: ...` line on stderr, no panic; returns that line.
pub fn assert_one_line_error(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "stderr: {err}");
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{err}"
    );
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "not one line: {err}");
    assert!(lines[0].starts_with("error: "), "{err}");
    lines[0].to_owned()
}

/// What `keyshare-server init` printed: the org-admin token (shown once)
/// and the SHA-256 of root v1.
pub struct Initialized {
    pub token: String,
    pub root_sha256: String,
}

/// Checks that `init` succeeded and reads the token and root hash it printed.
pub fn parse_init(out: &Output) -> Initialized {
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "init failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = text.lines().collect();
    let root_sha256 = lines
        .iter()
        .find_map(|l| l.strip_prefix("root sha256: "))
        .expect("a root sha256 line")
        .to_owned();
    let notice = lines
        .iter()
        .position(|l| l.contains("will not be shown again"))
        .expect("a line saying the token will not be shown again");
    let token = lines[notice + 1].trim().to_owned();
    assert!(!token.is_empty(), "empty token line");
    Initialized { token, root_sha256 }
}
