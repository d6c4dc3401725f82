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
        keyshare_testkit::fixture::sigterm_and_wait(
            &mut self.child,
            Duration::from_secs(10),
            "watch",
        )
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

/// Waits (at most [`SEE_WITHIN`]) until the cache in `origin` holds the
/// state of timestamp `v`, written behind it: the last audit head its
/// `state.json` records names that timestamp (or a later one).
fn wait_for_cache_write(origin: &std::path::Path, v: u64) {
    let deadline = Instant::now() + SEE_WITHIN;
    loop {
        let written = std::fs::read(origin.join("state.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .and_then(|state| {
                state["audit_heads"]
                    .as_array()
                    .and_then(|heads| heads.last())
                    .and_then(|head| head["timestamp_version"].as_u64())
            });
        if written.is_some_and(|w| w >= v) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the cache was not written for timestamp {v} within {SEE_WITHIN:?} (it holds {written:?})"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
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
fn a_cache_put_back_to_an_older_state_with_a_replaying_server_does_not_take_the_watcher_back() {
    let server = Server::start();
    let relay = mirror(&server);
    let client = Client::new();
    client.init(&relay.url, &server.root1_sha256());
    // Polled every 6 s: each state's cache is written (2 s behind it)
    // well before the next refresh.
    let watcher = Watcher::start(&client, &["--poll-interval", "6s"]);
    let first = watcher.next();
    let origin = client.cache().join("origin");
    wait_for_cache_write(&origin, version(&first));
    let saved = client.dir.path().join("origin-then");
    let copied = Command::new("cp")
        .arg("-a")
        .arg(&origin)
        .arg(&saved)
        .status()
        .unwrap();
    assert!(copied.success());
    let old_timestamp = server.file("metadata/timestamp.json").unwrap();

    server.create_namespace("team-n", &["registry.acme.io/n/**"], 1);
    let seen = watcher.next();
    assert!(version(&seen) > version(&first));
    wait_for_cache_write(&origin, version(&seen));

    // Someone on the host puts the older cache back, and the relay replays
    // the older timestamp: the next refresh, against that cache, checks;
    // but the watcher holds a newer state and keeps it.
    std::fs::remove_dir_all(&origin).unwrap();
    std::fs::rename(&saved, &origin).unwrap();
    relay.set("metadata/timestamp.json", Reply::Bytes(old_timestamp));
    let line = watcher.warned("keeping the last good state");
    assert!(line.contains("rollback"), "{line}");
    watcher.quiet_for(Duration::from_secs(2));
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

/// One HTTP/1.1 request over the Unix socket at `socket`: status and JSON
/// body.
fn ask(socket: &std::path::Path, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
    use std::io::{Read, Write};
    let mut stream = std::os::unix::net::UnixStream::connect(socket).unwrap();
    let body = body.unwrap_or("");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (head, rest) = answer.split_once("\r\n\r\n").unwrap();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    // The body may be chunked: take the JSON object inside.
    let start = rest.find('{').unwrap_or(0);
    let end = rest.rfind('}').map_or(rest.len(), |e| e + 1);
    let json = serde_json::from_str(&rest[start..end])
        .unwrap_or_else(|e| panic!("not JSON ({e}): {answer}"));
    (status, json)
}

#[test]
fn the_decision_endpoint_answers_from_the_fresh_state_and_refuses_private_keys() {
    let server = Server::start();
    server.create_namespace("team-a", &["registry.acme.io/team-a/**"], 1);
    let (key, pem) = new_key();
    server.add_key("team-a", "k1", &key, None);
    let client = Client::new();
    client.init(&server.url, &server.root1_sha256());
    let socket = client.dir.path().join("decide.sock");
    let listen = format!("unix:{}", socket.display());
    let watcher = Watcher::start(&client, &["--listen", &listen]);
    watcher.next();

    let query =
        serde_json::json!({"artifact": "registry.acme.io/team-a/app", "keys": [pem]}).to_string();
    let (status, answer) = ask(&socket, "POST", "/v1/decide", Some(&query));
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["trusted"], true, "{answer}");
    let (status, state) = ask(&socket, "GET", "/v1/state", None);
    assert_eq!(status, 200);
    assert_eq!(state["timestamp_version"], answer["timestamp_version"]);

    // Revoked: the very next answer after the watcher saw it says so.
    server.revoke("k1", OffsetDateTime::now_utc());
    let seen = watcher.next();
    assert_eq!(seen["revocations"], true, "{seen}");
    let (status, answer) = ask(&socket, "POST", "/v1/decide", Some(&query));
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["trusted"], false, "{answer}");
    assert_eq!(answer["reason"], "revoked", "{answer}");

    // A private key is refused and never echoed.
    let private = String::from_utf8(
        openssl::pkey::PKey::generate_ed25519()
            .unwrap()
            .private_key_to_pem_pkcs8()
            .unwrap(),
    )
    .unwrap();
    let body = serde_json::json!({"artifact": "registry.acme.io/team-a/app", "keys": [private]})
        .to_string();
    let (status, answer) = ask(&socket, "POST", "/v1/decide", Some(&body));
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("private key"),
        "{answer}"
    );
    let secret_line = private.lines().nth(1).unwrap();
    assert!(!answer.to_string().contains(secret_line));

    // Bad input: one JSON error each.
    for (body, what) in [
        ("{", "the request body"),
        (r#"{"artifact": "x"}"#, "name a signer"),
        (
            r#"{"artifact": "x", "key_ids": ["a"], "extra": 1}"#,
            "the request body",
        ),
        (
            r#"{"artifact": "x", "key_ids": ["a"], "signed_at": "yesterday"}"#,
            "signed_at",
        ),
    ] {
        let (status, answer) = ask(&socket, "POST", "/v1/decide", Some(body));
        assert_eq!(status, 400, "{body}: {answer}");
        assert!(
            answer["error"]["message"].as_str().unwrap().contains(what),
            "{answer}"
        );
    }
    let (status, _) = ask(&socket, "GET", "/nowhere", None);
    assert_eq!(status, 404);

    let status = watcher.terminate();
    assert!(status.success(), "{status:?}");
    assert!(!socket.exists(), "the socket is removed on exit");
}

#[test]
fn the_decision_endpoint_listens_on_loopback_or_a_unix_socket_only() {
    let server = Server::start();
    let client = Client::new();
    client.init(&server.url, &server.root1_sha256());
    let run = client.run(&["watch", "--listen", "0.0.0.0:8440"]);
    let line = run.assert_error_line(1);
    assert!(line.contains("loopback"), "{line}");
}
