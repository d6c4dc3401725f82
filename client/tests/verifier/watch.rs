//! `keyshare watch` as a process: it sees each publish (namespaces,
//! revocations, peers), re-exports and runs its command, keeps going
//! through a server restart, polls a static mirror, refuses what a
//! malicious server announces or serves, and stops cleanly on SIGTERM.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use serde_json::Value;
use time::OffsetDateTime;

use crate::common::{new_key, Canned, Client, Reply, Server};

/// Longest a test waits for the watcher to report a publish.
const SEE_WITHIN: Duration = Duration::from_secs(15);

/// A running `keyshare watch --output json`.
struct Watcher {
    child: Child,
    lines: mpsc::Receiver<Value>,
    errors: mpsc::Receiver<String>,
}

impl Watcher {
    fn start(client: &Client, extra: &[&str]) -> Self {
        let cache = client.cache();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_keyshare"));
        cmd.args(["watch", "--output", "json", "--cache-dir"])
            .arg(&cache)
            .args(extra);
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("KEYSHARE_") {
                cmd.env_remove(&name);
            }
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
                if tx.send(value).is_err() {
                    return;
                }
            }
        });
        let (tx, errors) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Self {
            child,
            lines,
            errors,
        }
    }

    /// The next state line, within [`SEE_WITHIN`].
    fn next(&self) -> Value {
        self.lines
            .recv_timeout(SEE_WITHIN)
            .unwrap_or_else(|_| panic!("no state line within {SEE_WITHIN:?}"))
    }

    /// Asserts no state line comes for `d`.
    fn quiet_for(&self, d: Duration) {
        if let Ok(line) = self.lines.recv_timeout(d) {
            panic!("unexpected state line: {line}");
        }
    }

    /// The next stderr line that contains `text`, within [`SEE_WITHIN`].
    fn warned(&self, text: &str) -> String {
        let deadline = Instant::now() + SEE_WITHIN;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.errors.recv_timeout(left) {
                Ok(line) if line.contains(text) => return line,
                Ok(_) => {}
                Err(_) => panic!("no warning with `{text}` within {SEE_WITHIN:?}"),
            }
        }
    }

    /// SIGTERM, then the exit status (within 10 s).
    fn terminate(mut self) -> ExitStatus {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "watch did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn names(v: &Value, field: &str) -> Vec<String> {
    v[field]
        .as_array()
        .unwrap_or_else(|| panic!("no {field} in {v}"))
        .iter()
        .map(|n| n.as_str().unwrap().to_owned())
        .collect()
}

fn version(v: &Value) -> u64 {
    v["timestamp_version"].as_u64().unwrap()
}

#[test]
fn a_watcher_sees_each_publish_re_exports_runs_its_command_and_stops_on_sigterm() {
    let server = Server::start();
    server.create_namespace("team-a", &["registry.acme.io/team-a/**"], 1);
    let client = Client::new();
    client.init(&server.url, &server.root1_sha256());
    let pem_dir = client.dir.path().join("pem");
    let log = client.dir.path().join("versions");
    let exec = format!("echo $KEYSHARE_TIMESTAMP_VERSION >> {}", log.display());
    let watcher = Watcher::start(
        &client,
        &[
            "--export",
            "pem",
            pem_dir.to_str().unwrap(),
            "--exec",
            &exec,
        ],
    );
    let first = watcher.next();
    assert_eq!(first["first"], true, "{first}");

    server.create_namespace("team-c", &["registry.acme.io/team-c/**"], 1);
    let seen = watcher.next();
    assert_eq!(names(&seen, "namespaces_added"), ["team-c"], "{seen}");
    assert!(version(&seen) > version(&first));

    let (key, pem) = new_key();
    server.add_key("team-a", "k1", &key, None);
    let seen = watcher.next();
    assert_eq!(names(&seen, "namespaces_changed"), ["team-a"], "{seen}");
    assert!(
        std::fs::read_dir(pem_dir.join("team-a")).unwrap().count() > 0,
        "the PEM export has team-a's key"
    );

    server.revoke("k1", OffsetDateTime::now_utc());
    let seen = watcher.next();
    assert_eq!(seen["revocations"], true, "{seen}");
    let last_version = version(&seen);

    let other = Server::start();
    server.put_peer("partner", "partner.io/**", &other.url, &other.root1());
    let seen = watcher.next();
    assert_eq!(seen["peers"], true, "{seen}");

    // The command ran once per state, in order.
    let versions: Vec<u64> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    assert_eq!(versions.len(), 5, "{versions:?}");
    assert!(versions.windows(2).all(|w| w[0] < w[1]), "{versions:?}");
    assert!(versions.contains(&last_version));

    let status = watcher.terminate();
    assert!(status.success(), "{status:?}");
    // The cache it leaves is whole: the revocation decides offline.
    let key_file = client.write("k1.pem", &pem);
    let (code, decision) = client.decide_json(
        "registry.acme.io/team-a/app",
        &["--key", key_file.to_str().unwrap()],
    );
    assert_eq!(code, 1, "{decision}");
    assert!(decision.to_string().contains("revoked"), "{decision}");
}

#[test]
fn a_watcher_keeps_going_through_a_server_restart() {
    let mut server = Server::start();
    let client = Client::new();
    client.init(&server.url, &server.root1_sha256());
    let watcher = Watcher::start(&client, &[]);
    watcher.next();

    server.restart(Duration::from_secs(2));
    server.create_namespace("after-restart", &["registry.acme.io/r/**"], 1);
    let seen = watcher.next();
    assert_eq!(
        names(&seen, "namespaces_added"),
        ["after-restart"],
        "{seen}"
    );
}

/// A static server of `server`'s files with `ETag`s (a mirror: it answers
/// every request at once and knows nothing of `Prefer: wait`).
fn mirror(server: &Server) -> Canned {
    let publisher = server.publisher.clone();
    Canned::start(Arc::new(move |path| match publisher.file(path) {
        Some(f) => Reply::Tagged(f.bytes.to_vec(), f.etag.clone()),
        None => Reply::Status(404),
    }))
}

fn timestamp_requests(canned: &Canned) -> usize {
    canned
        .log
        .lock()
        .unwrap()
        .iter()
        .filter(|(path, _)| path == "metadata/timestamp.json")
        .count()
}

#[test]
fn a_static_mirror_is_polled_at_the_poll_interval() {
    let server = Server::start();
    let mirror = mirror(&server);
    let client = Client::new();
    client.init(&mirror.url, &server.root1_sha256());
    let watcher = Watcher::start(&client, &["--poll-interval", "1s"]);
    watcher.next();

    server.create_namespace("team-m", &["registry.acme.io/m/**"], 1);
    let seen = watcher.next();
    assert_eq!(names(&seen, "namespaces_added"), ["team-m"], "{seen}");

    // Polled, not hammered: about one wait and one refresh a second.
    let before = timestamp_requests(&mirror);
    std::thread::sleep(Duration::from_secs(3));
    let polls = timestamp_requests(&mirror) - before;
    assert!(
        (2..=10).contains(&polls),
        "{polls} timestamp requests in 3 s"
    );
}

#[test]
fn a_server_that_announces_publishes_it_did_not_make_or_rolls_back_is_refused() {
    let server = Server::start();
    let relay = mirror(&server);
    let client = Client::new();
    client.init(&relay.url, &server.root1_sha256());
    let watcher = Watcher::start(&client, &["--poll-interval", "2s"]);
    let first = watcher.next();
    let old_timestamp = server.file("metadata/timestamp.json").unwrap();

    // Every wait answered "changed" with the same timestamp: no new state,
    // and the watcher slows to the poll interval rather than spinning.
    relay.set(
        "metadata/timestamp.json",
        Reply::Bytes(old_timestamp.clone()),
    );
    let before = timestamp_requests(&relay);
    watcher.quiet_for(Duration::from_secs(4));
    let asked = timestamp_requests(&relay) - before;
    assert!(asked <= 16, "{asked} timestamp requests in 4 s");

    // A real publish, seen; then the relay serves the older timestamp
    // again: a rollback, refused, and the state stays the newer one.
    relay.clear();
    server.create_namespace("team-r", &["registry.acme.io/r/**"], 1);
    let seen = watcher.next();
    assert!(version(&seen) > version(&first));
    relay.set("metadata/timestamp.json", Reply::Bytes(old_timestamp));
    let line = watcher.warned("keeping the last good state");
    assert!(
        line.contains("rollback") || line.contains("version"),
        "{line}"
    );
    watcher.quiet_for(Duration::from_secs(1));
    let listed = client.run(&["list", "--output", "json"]);
    listed.assert_ok();
    assert!(listed.stdout.contains("team-r"), "{listed:?}");
}

#[test]
fn watch_refuses_an_uninitialised_cache_and_bad_exports_with_one_line() {
    let client = Client::new();
    let run = client.run(&["watch"]);
    let line = run.assert_error_line(1);
    assert!(line.contains("init"), "{line}");
    let run = client.run(&["watch", "--export", "svg", "/tmp/x"]);
    let line = run.assert_error_line(1);
    assert!(line.contains("notation") && line.contains("pem"), "{line}");
}
