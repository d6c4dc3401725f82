#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

//! The `keyshare-server` binary as a process: `init`, `serve` (HTTP on a
//! free loopback port, graceful stop on SIGTERM, restart) and `publish`,
//! with python-tuf's `ngclient.Updater` as the client that must accept what
//! the server publishes, before and after admin changes.
//!
//! Needs a Python with `tuf` 7.x: `KEYSHARE_PYTHON`, or `target/pyenv`
//! made by `scripts/test`. Missing Python is a test failure, not a skip.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::bin_common;

use bin_common::{assert_one_line_error, keyshare, python, run_within};

/// Runs a command to completion, bounded by this file's deadline.
fn run(cmd: Command) -> Output {
    run_within(cmd, DEADLINE * 4)
}

/// The longest any single wait in these tests may take.
pub(super) const DEADLINE: Duration = Duration::from_secs(30);

fn interop_script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(name)
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).unwrap()
}

/// `init` into `dir`; returns the org-admin token and the root hash line.
fn init(dir: &Path) -> (String, String) {
    let init = bin_common::parse_init(&run(keyshare(&[
        "init",
        "--data-dir",
        dir.to_str().unwrap(),
    ])));
    (init.token, init.root_sha256)
}

/// A running `serve`; killed on drop if still running.
pub(super) struct Server {
    pub(super) child: Child,
    pub(super) base: String,
    pub(super) addr: String,
    pub(super) log: PathBuf,
}

impl Server {
    fn start(dir: &Path) -> Self {
        Self::start_with(dir, &[])
    }

    pub(super) fn start_with(dir: &Path, env: &[(&str, &str)]) -> Self {
        let mut cmd = keyshare(&[
            "serve",
            "--data-dir",
            dir.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ]);
        for (k, v) in env {
            cmd.env(k, v);
        }
        Self::spawn(dir, cmd)
    }

    /// Starts `cmd`, a `serve` of `dir`.
    fn spawn(dir: &Path, mut cmd: Command) -> Self {
        let log = dir.with_extension(format!("serve-{}.log", unique()));
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut server = Self {
            child,
            base: String::new(),
            addr: String::new(),
            log,
        };
        let line = rx.recv_timeout(DEADLINE).unwrap_or_else(|_| {
            panic!(
                "serve printed no address; log: {}",
                fs::read_to_string(&server.log).unwrap_or_default()
            )
        });
        let addr = line
            .strip_prefix("listening on http://")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        server.base = format!("http://{addr}");
        server.addr = addr;
        server
    }

    pub(super) fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> (u16, Vec<u8>) {
        http(&self.addr, method, path, token, body)
    }

    /// GET a JSON answer, asserting the status.
    pub(super) fn json(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
        status: u16,
    ) -> Value {
        let (got, bytes) = self.request(method, path, token, body);
        let text = String::from_utf8_lossy(&bytes);
        assert_eq!(got, status, "{method} {path}: {text}");
        if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|e| panic!("{method} {path}: {e}: {text}"))
        }
    }

    pub(super) fn timestamp_version(&self) -> u64 {
        let ts = self.json("GET", "/metadata/timestamp.json", None, None, 200);
        ts["signed"]["version"].as_u64().unwrap()
    }

    /// Sends SIGTERM and waits (bounded) for the process to exit.
    pub(super) fn terminate(self) -> (ExitStatus, String) {
        self.signal("-TERM")
    }

    /// Sends `signal` (`-TERM`, `-INT`) and waits (bounded) for the process
    /// to exit.
    fn signal(mut self, signal: &str) -> (ExitStatus, String) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args([signal, &pid]).status().unwrap();
        assert!(sent.success());
        let started = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                started.elapsed() < DEADLINE,
                "serve did not exit after SIGTERM; log: {}",
                fs::read_to_string(&self.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        (status, fs::read_to_string(&self.log).unwrap_or_default())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn unique() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// A minimal HTTP/1.1 client (one request per connection), bounded by
/// timeouts.
pub(super) fn http(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> (u16, Vec<u8>) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    stream.set_write_timeout(Some(DEADLINE)).unwrap();
    let body = body
        .map(|b| serde_json::to_vec(b).unwrap())
        .unwrap_or_default();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(token) = token {
        req.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    if !body.is_empty() || matches!(method, "POST" | "PUT") {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).unwrap();
    stream.write_all(&body).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete HTTP response");
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut payload = raw[split + 4..].to_vec();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status code");
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        payload = dechunk(&payload);
    }
    (status, payload)
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let end = data.windows(2).position(|w| w == b"\r\n").unwrap();
        let size_text = String::from_utf8_lossy(&data[..end]).to_string();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16).unwrap();
        data = &data[end + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

/// A fresh Ed25519 public key as a TUF key object.
pub(super) fn tuf_key() -> Value {
    let key = openssl::pkey::PKey::generate_ed25519().unwrap();
    let public = key.raw_public_key().unwrap();
    json!({"keytype": "ed25519", "scheme": "ed25519", "keyval": {"public": hex::encode(public)}})
}

/// Creates `team-a`, adds a key and revokes it, over HTTP. Returns the key
/// id and the fingerprint the revocation names the key by.
fn make_changes(server: &Server, token: &str) -> (String, String) {
    server.json(
        "POST",
        "/api/v1/namespaces",
        Some(token),
        Some(&json!({"name": "team-a", "scopes": ["registry.acme.io/team-a/**"], "maintainers": ["alice@acme.io"]})),
        201,
    );
    let key = server.json(
        "POST",
        "/api/v1/namespaces/team-a/keys",
        Some(token),
        Some(&json!({"key": tuf_key(), "description": "release signer"})),
        201,
    );
    let key_id = key["id"].as_str().unwrap().to_owned();
    let revocation = server.json(
        "POST",
        "/api/v1/revocations",
        Some(token),
        Some(&json!({"key_id": key_id, "reason": "laptop lost"})),
        201,
    );
    assert_eq!(
        revocation["named_as"]["key_id"],
        key_id.as_str(),
        "{revocation}"
    );
    let fingerprint = revocation["subject"]["spki_sha256"]
        .as_str()
        .unwrap()
        .to_owned();
    (key_id, fingerprint)
}

/// Runs `updater_against_server.py`; returns the targets it downloaded,
/// and under `x-keyshare-audit` the audit head python-tuf kept from the
/// verified timestamp (JSON).
pub(super) fn updater(
    base: &str,
    root: &Path,
    targets: &[&str],
) -> Result<BTreeMap<String, String>, String> {
    let out_dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(python());
    cmd.arg(interop_script("tests/interop/updater_against_server.py"))
        .arg("--out")
        .arg(out_dir.path())
        .arg(base)
        .arg(root)
        .args(targets);
    let out = run(cmd);
    if !out.status.success() {
        return Err(format!("{}{}", stdout(&out), stderr(&out)));
    }
    Ok(targets
        .iter()
        .chain(&["x-keyshare-audit"])
        .map(|t| {
            let file = if *t == "x-keyshare-audit" {
                "x-keyshare-audit.json"
            } else {
                t
            };
            let text = fs::read_to_string(out_dir.path().join(file)).unwrap();
            ((*t).to_owned(), text)
        })
        .collect())
}

pub(super) const ORG_TARGETS: [&str; 2] = ["org/revocations.json", "org/peers.json"];

/// The index shard that lists namespace `team-a`.
fn team_a_shard() -> String {
    let name = keyshare_policy::trust::NamespaceName::parse("team-a").unwrap();
    keyshare_policy::trust::shard_path(keyshare_server::store::namespace_shard(&name))
}

fn all_targets() -> Vec<String> {
    vec![
        team_a_shard(),
        "org/revocations.json".into(),
        "org/peers.json".into(),
        "namespaces/team-a/trust.json".into(),
    ]
}

#[test]
fn init_creates_the_layout_private_keys_and_a_token_shown_once_that_works() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let out = run(keyshare(&["init", "--data-dir", dir.to_str().unwrap()]));
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let (token, hash) = {
        let lines: Vec<&str> = text.lines().collect();
        let at = lines
            .iter()
            .position(|l| l.contains("will not be shown again"))
            .unwrap();
        let hash = lines
            .iter()
            .find_map(|l| l.strip_prefix("root sha256: "))
            .unwrap();
        (lines[at + 1].to_owned(), hash.to_owned())
    };
    assert_eq!(text.matches(&token).count(), 1, "the token is printed once");
    assert!(!stderr(&out).contains(&token));

    assert!(dir.join("keyshare.toml").is_file());
    assert!(dir.join("keyshare.db").is_file());
    for key in ["root", "targets", "snapshot", "timestamp", "namespaces"] {
        let path = dir.join(format!("keys/{key}.pem"));
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", path.display());
        let pem = fs::read_to_string(&path).unwrap();
        assert!(
            pem.starts_with("-----BEGIN PRIVATE KEY-----"),
            "{}",
            path.display()
        );
        assert!(
            !text.contains(pem.lines().nth(1).unwrap()),
            "key material printed"
        );
    }

    let server = Server::start(&dir);
    let (_, root) = server.request("GET", "/metadata/1.root.json", None, None);
    assert_eq!(
        hex::encode(openssl::sha::sha256(&root)),
        hash,
        "the pinned root hash"
    );
    assert_eq!(
        server.request("GET", "/api/v1/namespaces", None, None).0,
        401
    );
    assert_eq!(
        server
            .request("GET", "/api/v1/namespaces", Some("ks_not-a-token"), None)
            .0,
        401
    );
    server.json("GET", "/api/v1/namespaces", Some(&token), None, 200);
    let (status, log) = server.signal("-INT");
    assert_eq!(status.code(), Some(0), "{log}");
    assert!(log.contains("signal=\"SIGINT\""), "{log}");
    assert!(!log.contains(&token), "the token was logged");

    // A second init refuses, with one line, and changes nothing.
    let before = fs::read(dir.join("keys/targets.pem")).unwrap();
    let again = run(keyshare(&["init", "--data-dir", dir.to_str().unwrap()]));
    let line = assert_one_line_error(&again);
    assert!(line.contains("already holds a repository"), "{line}");
    assert!(again.stdout.is_empty());
    assert_eq!(fs::read(dir.join("keys/targets.pem")).unwrap(), before);
}

#[test]
fn serve_refuses_bad_setups_with_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let d = dir.to_str().unwrap();

    let missing = run(keyshare(&[
        "serve",
        "--data-dir",
        d,
        "--listen",
        "127.0.0.1:0",
    ]));
    let line = assert_one_line_error(&missing);
    assert!(line.contains("run `keyshare-server init"), "{line}");

    init(&dir);
    let mut tls = keyshare(&["serve", "--data-dir", d, "--listen", "127.0.0.1:0"]);
    tls.env("KEYSHARE_TLS_CERT", "cert.pem")
        .env("KEYSHARE_TLS_KEY", "key.pem");
    let line = assert_one_line_error(&run(tls));
    assert!(line.contains("cannot read tls.cert cert.pem"), "{line}");

    let mut bad = keyshare(&["serve", "--data-dir", d, "--listen", "127.0.0.1:0"]);
    bad.env("KEYSHARE_EXPIRY_SNAPSHOT", "soon");
    let line = assert_one_line_error(&run(bad));
    assert!(
        line.contains("expiry.snapshot") && line.contains("KEYSHARE_EXPIRY_SNAPSHOT"),
        "{line}"
    );

    let config = dir.join("keyshare.toml");
    let original = fs::read_to_string(&config).unwrap();
    fs::write(
        &config,
        original.replace("[log]\n", "[log]\ncolour = \"red\"\n"),
    )
    .unwrap();
    let line = assert_one_line_error(&run(keyshare(&["serve", "--data-dir", d])));
    assert!(line.contains("unknown key `log.colour`"), "{line}");
    fs::write(&config, format!("surprise = 1\n{original}")).unwrap();
    let line = assert_one_line_error(&run(keyshare(&["serve", "--data-dir", d])));
    assert!(line.contains("unknown key `surprise`"), "{line}");
    fs::write(&config, original).unwrap();

    let key = dir.join("keys/timestamp.pem");
    fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
    let line = assert_one_line_error(&run(keyshare(&[
        "serve",
        "--data-dir",
        d,
        "--listen",
        "127.0.0.1:0",
    ])));
    assert!(
        line.contains("timestamp.pem") && line.contains("chmod 600"),
        "{line}"
    );
    assert!(!line.contains("PRIVATE KEY"), "{line}");
}

#[test]
fn python_tuf_updater_follows_admin_changes_made_over_http() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let (token, hash) = init(&dir);
    let server = Server::start(&dir);
    let root = tmp.path().join("1.root.json");
    let (_, bytes) = server.request("GET", "/metadata/1.root.json", None, None);
    assert_eq!(hex::encode(openssl::sha::sha256(&bytes)), hash);
    fs::write(&root, bytes).unwrap();

    updater(&server.base, &root, &ORG_TARGETS).unwrap();
    let shard = team_a_shard();
    let no_shard = updater(&server.base, &root, &[&shard]).unwrap_err();
    assert!(
        no_shard.contains("no such target"),
        "an empty shard is not published: {no_shard}"
    );
    let missing = updater(&server.base, &root, &["namespaces/team-a/trust.json"]).unwrap_err();
    assert!(missing.contains("no such target"), "{missing}");

    let version = server.timestamp_version();
    let (key_id, fingerprint) = make_changes(&server, &token);
    assert_eq!(
        server.timestamp_version(),
        version + 3,
        "one publish per change"
    );

    let all = all_targets();
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    let after = updater(&server.base, &root, &all).unwrap();
    let namespaces: Value = serde_json::from_str(&after[&shard]).unwrap();
    assert_eq!(
        namespaces["namespaces"][0]["name"], "team-a",
        "{namespaces}"
    );
    assert!(
        after["namespaces/team-a/trust.json"].contains(&key_id),
        "{after:?}"
    );
    assert!(
        after["org/revocations.json"].contains(&fingerprint),
        "{after:?}"
    );
    assert!(
        after["org/revocations.json"].contains("laptop lost"),
        "{after:?}"
    );
    // python-tuf keeps the audit head in the timestamp it verified.
    let (_, verify) = server.request("GET", "/api/v1/audit/verify", Some(&token), None);
    let verify: Value = serde_json::from_slice(&verify).unwrap();
    let kept: Value = serde_json::from_str(&after["x-keyshare-audit"]).unwrap();
    assert_eq!(kept["seq"], verify["published_head"]["seq"], "{verify}");
    assert_eq!(kept["hash"], verify["published_head"]["hash"], "{verify}");
    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");
}

#[test]
fn publish_writes_a_tree_python_tuf_accepts_and_twice_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let (token, _) = init(&dir);
    let server = Server::start(&dir);
    let (key_id, _) = make_changes(&server, &token);
    let served_timestamp = server
        .request("GET", "/metadata/timestamp.json", None, None)
        .1;

    // Publishing while the server runs reads the same store.
    let out = tmp.path().join("site");
    let o = out.to_str().unwrap();
    let d = dir.to_str().unwrap();
    let first = run(keyshare(&["publish", "--data-dir", d, "--to", o]));
    assert!(first.status.success(), "{}", stderr(&first));
    assert_eq!(
        fs::read(out.join("metadata/timestamp.json")).unwrap(),
        served_timestamp
    );
    let tree = read_tree(&out);
    assert!(
        tree.keys()
            .any(|p| p.starts_with("targets/namespaces/team-a/")),
        "{:?}",
        tree.keys()
    );
    assert!(
        !tree.keys().any(|p| p.contains(".tmp-")),
        "{:?}",
        tree.keys()
    );

    let mut check = Command::new(python());
    check
        .arg(interop_script("../policy/tests/interop/check_repo.py"))
        .arg(&out)
        .args(all_targets());
    let checked = run(check);
    assert!(
        checked.status.success(),
        "check_repo.py failed:\n{}{}",
        stdout(&checked),
        stderr(&checked)
    );
    let trust = tree
        .iter()
        .find(|(p, _)| p.starts_with("targets/namespaces/team-a/") && p.ends_with(".trust.json"))
        .unwrap();
    assert!(String::from_utf8_lossy(trust.1).contains(&key_id));

    let second = run(keyshare(&["publish", "--data-dir", d, "--to", o]));
    assert!(second.status.success(), "{}", stderr(&second));
    assert!(
        stdout(&second).contains(" 0 file(s) written"),
        "{}",
        stdout(&second)
    );
    assert_eq!(read_tree(&out), tree, "a second publish changed the tree");
    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");
}

fn read_tree(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                files.insert(rel, fs::read(&path).unwrap());
            }
        }
    }
    files
}

#[test]
fn restart_keeps_state_and_versions_and_sigterm_exits_zero() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let (token, _) = init(&dir);

    let server = Server::start(&dir);
    let (_, fingerprint) = make_changes(&server, &token);
    let version = server.timestamp_version();
    let timestamp = server
        .request("GET", "/metadata/timestamp.json", None, None)
        .1;
    let namespace = server.json("GET", "/api/v1/namespaces/team-a", Some(&token), None, 200);
    let started = Instant::now();
    let (status, log) = server.terminate();
    assert_eq!(status.code(), Some(0), "{log}");
    assert!(
        !log.contains("did not stop in time"),
        "the server did not stop by itself within the grace period; log: {log}"
    );
    assert!(started.elapsed() < Duration::from_secs(10), "{log}");

    let server = Server::start(&dir);
    assert_eq!(server.timestamp_version(), version);
    assert_eq!(
        server
            .request("GET", "/metadata/timestamp.json", None, None)
            .1,
        timestamp,
        "a restart re-signed metadata that was not expiring"
    );
    assert_eq!(
        server.json("GET", "/api/v1/namespaces/team-a", Some(&token), None, 200),
        namespace
    );
    let revocations = server.json("GET", "/api/v1/revocations", Some(&token), None, 200);
    assert!(
        revocations.to_string().contains(&fingerprint),
        "{revocations}"
    );
    server.json(
        "POST",
        "/api/v1/namespaces",
        Some(&token),
        Some(&json!({"name": "team-b", "scopes": ["registry.acme.io/team-b/**"]})),
        201,
    );
    assert_eq!(server.timestamp_version(), version + 1);
    let (status, log) = server.terminate();
    assert_eq!(status.code(), Some(0), "{log}");
}

#[test]
fn serve_re_signs_a_timestamp_that_expires_within_resign_before() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    init(&dir);
    // init signed timestamp v1 for 1 day, and v2 when it listed its own
    // TSA in org/tsas.json; with a 2-day horizon v2 is due at once, and the
    // new one (3 days) is not due again.
    let server = Server::start_with(
        &dir,
        &[
            ("KEYSHARE_EXPIRY_TIMESTAMP", "3d"),
            ("KEYSHARE_EXPIRY_RESIGN_BEFORE", "2d"),
        ],
    );
    let started = Instant::now();
    while server.timestamp_version() < 3 {
        assert!(
            started.elapsed() < DEADLINE,
            "timestamp not re-signed; log: {}",
            fs::read_to_string(&server.log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(server.timestamp_version(), 3);
    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");
    assert!(log.contains("re-signed expiring metadata"), "{log}");
}

/// `keyshare-server ARGS` run under `umask 022`, as on most machines: a
/// file or directory made without care is then readable by others (0644,
/// 0755). `exec` keeps the pid.
fn keyshare_umask_022(args: &[&str]) -> Command {
    let base = keyshare(args);
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("umask 022 && exec \"$@\"")
        .arg("sh")
        .arg(base.get_program())
        .args(base.get_args());
    for (name, value) in base.get_envs() {
        match value {
            Some(value) => cmd.env(name, value),
            None => cmd.env_remove(name),
        };
    }
    cmd
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn two_processes_writing_one_store_the_second_writer_refuses_naming_the_running_server() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let d = dir.to_str().unwrap();
    let (token, _) = init(&dir);
    let server = Server::start(&dir);
    let holder = format!(
        "error: {d} is in use by keyshare-server serve (pid {}, listening on {})",
        server.child.id(),
        server.base
    );
    server.json(
        "POST",
        "/api/v1/namespaces",
        Some(&token),
        Some(&json!({"name": "team-a", "scopes": ["registry.acme.io/team-a/**"]})),
        201,
    );
    let before = server.timestamp_version();
    let served = server
        .request("GET", "/metadata/timestamp.json", None, None)
        .1;

    // An export from the command line would publish versions the server
    // publishes too: it refuses, and says how to export instead.
    let bundle = tmp.path().join("site.bundle");
    let b = bundle.to_str().unwrap();
    let line = assert_one_line_error(&run(keyshare(&["export", "--data-dir", d, "--out", b])));
    assert!(line.starts_with(&format!("{holder}; ")), "{line}");
    assert!(line.contains("POST /api/v1/export"), "{line}");
    assert!(!bundle.exists());
    // A second server on the same store.
    let line = assert_one_line_error(&run(keyshare(&[
        "serve",
        "--data-dir",
        d,
        "--listen",
        "127.0.0.1:0",
    ])));
    assert!(line.starts_with(&format!("{holder}; ")), "{line}");
    // init on the directory in use.
    let again = run(keyshare(&["init", "--data-dir", d]));
    let line = assert_one_line_error(&again);
    assert!(line.starts_with(&format!("{holder}; ")), "{line}");
    assert!(again.stdout.is_empty());
    // publish --to reads next to the server and writes nothing to the store.
    let site = tmp.path().join("site");
    let published = run(keyshare(&[
        "publish",
        "--data-dir",
        d,
        "--to",
        site.to_str().unwrap(),
    ]));
    assert!(published.status.success(), "{}", stderr(&published));
    assert_eq!(
        fs::read(site.join("metadata/timestamp.json")).unwrap(),
        served
    );

    // None of them changed what the server serves, and every write of the
    // server's own succeeds, with versions continuing.
    assert_eq!(
        server
            .request("GET", "/metadata/timestamp.json", None, None)
            .1,
        served
    );
    server.json(
        "POST",
        "/api/v1/namespaces",
        Some(&token),
        Some(&json!({"name": "team-b", "scopes": ["registry.acme.io/team-b/**"]})),
        201,
    );
    assert_eq!(server.timestamp_version(), before + 1);
    let (status, body) = server.request("POST", "/api/v1/export", Some(&token), None);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert!(body.starts_with(b"keyshare-bundle/v1\n"));
    // The export published (the bundle edition's versions are skipped
    // online); the next change is the next version.
    let exported = server.timestamp_version();
    assert!(exported > before + 2, "{exported}");
    server.json(
        "POST",
        "/api/v1/namespaces",
        Some(&token),
        Some(&json!({"name": "team-c", "scopes": ["registry.acme.io/team-c/**"]})),
        201,
    );
    assert_eq!(server.timestamp_version(), exported + 1);
    let verified = server.json("GET", "/api/v1/audit/verify", Some(&token), None, 200);
    assert_eq!(verified["ok"], true, "{verified}");
    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");
    assert!(!log.contains(" ERROR "), "{log}");

    // Once the server has stopped, the directory is free again.
    let out = run(keyshare(&["export", "--data-dir", d, "--out", b]));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(bundle.is_file());
    let server = Server::start(&dir);
    assert!(server.timestamp_version() > exported + 1);
    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");
}

#[test]
fn plain_http_on_a_non_loopback_address_is_warned_about_at_start() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    init(&dir);
    const WARNING: &str = "serving plain HTTP on a non-loopback address";

    let local = Server::start(&dir);
    let (status, log) = local.terminate();
    assert!(status.success(), "{log}");
    assert!(!log.contains(WARNING), "{log}");

    let everywhere = Server::spawn(
        &dir,
        keyshare(&[
            "serve",
            "--data-dir",
            dir.to_str().unwrap(),
            "--listen",
            "0.0.0.0:0",
        ]),
    );
    assert!(
        everywhere.addr.starts_with("0.0.0.0:"),
        "{}",
        everywhere.addr
    );
    let log = fs::read_to_string(&everywhere.log).unwrap();
    let warning = log
        .lines()
        .find(|l| l.contains(WARNING))
        .unwrap_or_else(|| {
            panic!("no warning in the log: {log}");
        });
    assert!(warning.contains(" WARN "), "{warning}");
    assert!(warning.contains("tls.cert"), "{warning}");
    let (status, log) = everywhere.terminate();
    assert!(status.success(), "{log}");
}

/// A data directory made beforehand with mode 0755 (as `mkdir` makes it),
/// holding the ceremony's online keys and a `keyshare.toml` naming them,
/// and root v1 from the ceremony (threshold 1 of one root key, which stays
/// offline).
fn ceremony_dir(dir: &Path) -> PathBuf {
    use keyshare_policy::keys::Scheme;
    use keyshare_policy::repo::{build_root, RoleSpec, SharedSigner};
    use keyshare_policy::sign::{sign, to_bytes, InMemorySigner, Signer};

    let signer = || -> SharedSigner {
        std::sync::Arc::new(InMemorySigner::generate(Scheme::Ed25519).unwrap())
    };
    fs::create_dir_all(dir.join("online")).unwrap();
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).unwrap();
    let mut toml = String::from("[keys]\n");
    let mut specs = Vec::new();
    for role in ["targets", "snapshot", "timestamp"] {
        let key = std::sync::Arc::new(InMemorySigner::generate(Scheme::Ed25519).unwrap());
        let path = dir.join(format!("online/{role}.pem"));
        fs::write(&path, key.to_pkcs8_pem().unwrap()).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        toml.push_str(&format!("{role} = \"file:online/{role}.pem\"\n"));
        specs.push(RoleSpec::from_signers(&[key as SharedSigner], 1).unwrap());
    }
    fs::write(dir.join("keyshare.toml"), toml).unwrap();
    let root_key = signer();
    let root = build_root(
        1,
        time::OffsetDateTime::now_utc() + time::Duration::days(365),
        [
            (
                "root",
                &RoleSpec::from_signers(std::slice::from_ref(&root_key), 1).unwrap(),
            ),
            ("targets", &specs[0]),
            ("snapshot", &specs[1]),
            ("timestamp", &specs[2]),
        ],
    )
    .unwrap();
    let signed = sign(root, &[root_key.as_ref() as &dyn Signer]).unwrap();
    let path = dir.with_extension("1.root.json");
    fs::write(&path, to_bytes(&signed).unwrap()).unwrap();
    path
}

#[test]
fn the_data_directory_is_0700_and_the_store_0600_on_every_path_that_creates_them() {
    let tmp = tempfile::tempdir().unwrap();
    let private = |dir: &Path| {
        assert_eq!(mode(dir), 0o700, "{}", dir.display());
        for name in ["keyshare.db", "keyshare.db-wal", "keyshare.db-shm"] {
            let file = dir.join(name);
            if name == "keyshare.db" || file.exists() {
                assert_eq!(mode(&file), 0o600, "{}", file.display());
            }
        }
    };

    // init, into a new directory and into one made beforehand with 0755.
    let fresh = tmp.path().join("fresh");
    let fresh_init = bin_common::parse_init(&run(keyshare_umask_022(&[
        "init",
        "--data-dir",
        fresh.to_str().unwrap(),
    ])));
    private(&fresh);
    let made = tmp.path().join("made");
    fs::create_dir(&made).unwrap();
    fs::set_permissions(&made, fs::Permissions::from_mode(0o755)).unwrap();
    bin_common::parse_init(&run(keyshare_umask_022(&[
        "init",
        "--data-dir",
        made.to_str().unwrap(),
    ])));
    private(&made);

    // init --root, the ceremony's path: the operator made the directory.
    let ceremony = tmp.path().join("ceremony");
    let root = ceremony_dir(&ceremony);
    assert_eq!(mode(&ceremony), 0o755);
    // A refused init leaves the directory as it found it, mode included.
    let junk = tmp.path().join("junk.json");
    fs::write(&junk, b"{\"signed\": 1}").unwrap();
    assert_one_line_error(&run(keyshare_umask_022(&[
        "init",
        "--data-dir",
        ceremony.to_str().unwrap(),
        "--root",
        junk.to_str().unwrap(),
    ])));
    assert_eq!(mode(&ceremony), 0o755);
    assert!(!ceremony.join("keyshare.lock").exists());
    assert!(!ceremony.join("keyshare.db").exists());
    bin_common::parse_init(&run(keyshare_umask_022(&[
        "init",
        "--data-dir",
        ceremony.to_str().unwrap(),
        "--root",
        root.to_str().unwrap(),
    ])));
    private(&ceremony);

    // init --replica into a directory made with 0755.
    let replica = tmp.path().join("replica");
    fs::create_dir(&replica).unwrap();
    fs::set_permissions(&replica, fs::Permissions::from_mode(0o755)).unwrap();
    let out = run(keyshare_umask_022(&[
        "init",
        "--replica",
        "--data-dir",
        replica.to_str().unwrap(),
        "--root",
        root.to_str().unwrap(),
    ]));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(mode(&replica), 0o700);
    assert_eq!(mode(&replica.join("replica")), 0o700);
    assert_eq!(mode(&replica.join("replica/pinned-root.json")), 0o600);

    // serve, writing: the WAL, its index and the lock file are private too.
    let server = Server::spawn(
        &fresh,
        keyshare_umask_022(&[
            "serve",
            "--data-dir",
            fresh.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ]),
    );
    server.json(
        "POST",
        "/api/v1/namespaces",
        Some(&fresh_init.token),
        Some(&json!({"name": "team-a", "scopes": ["registry.acme.io/team-a/**"]})),
        201,
    );
    assert!(fresh.join("keyshare.db-wal").exists());
    assert!(fresh.join("keyshare.db-shm").exists());
    private(&fresh);
    assert_eq!(mode(&fresh.join("keyshare.lock")), 0o600);
    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");
}

#[test]
fn init_bins_chooses_the_bin_count_and_refuses_other_counts() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let d = dir.to_str().unwrap();
    let line = assert_one_line_error(&run(keyshare(&["init", "--bins", "512", "--data-dir", d])));
    assert!(
        line.contains("--bins 512") && line.contains("256, 1024 or 4096"),
        "{line}"
    );
    assert!(!dir.join("keyshare.db").exists(), "nothing was created");

    let out = run(keyshare(&["init", "--bins", "1024", "--data-dir", d]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The published targets records the count; serve reads it back.
    let server = Server::start(&dir);
    let ts: Value = serde_json::from_slice(
        &server
            .request("GET", "/metadata/timestamp.json", None, None)
            .1,
    )
    .unwrap();
    let sv = &ts["signed"]["meta"]["snapshot.json"]["version"];
    let (_, snapshot) = server.request("GET", &format!("/metadata/{sv}.snapshot.json"), None, None);
    let snapshot: Value = serde_json::from_slice(&snapshot).unwrap();
    let meta = snapshot["signed"]["meta"].as_object().unwrap();
    assert_eq!(meta.len(), 1025, "targets and 1,024 bins");
    assert!(meta.contains_key("bins-000.json") && meta.contains_key("bins-3ff.json"));
    let tv = &meta["targets.json"]["version"];
    let (_, targets) = server.request("GET", &format!("/metadata/{tv}.targets.json"), None, None);
    let targets: Value = serde_json::from_slice(&targets).unwrap();
    let succinct = &targets["signed"]["delegations"]["succinct_roles"];
    assert_eq!(succinct["bit_length"], 10, "{succinct}");
    assert_eq!(succinct["name_prefix"], "bins", "{succinct}");
    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");
}

/// `POST path` with a binary body (one request per connection).
fn post_bytes(addr: &str, path: &str, content_type: &str, body: &[u8]) -> (u16, Vec<u8>) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete HTTP response");
    let status = String::from_utf8_lossy(&raw[..split])
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status code");
    (status, raw[split + 4..].to_vec())
}

/// `openssl ts -verify -data DATA -in REPLY -CAfile CA -untrusted TSA`.
fn openssl_ts_verify(data: &Path, reply: &Path, dir: &Path) -> Output {
    let mut cmd = Command::new("openssl");
    cmd.args(["ts", "-verify", "-data"])
        .arg(data)
        .arg("-in")
        .arg(reply)
        .arg("-CAfile")
        .arg(dir.join("tsa/ca.pem"))
        .arg("-untrusted")
        .arg(dir.join("tsa/tsa.pem"));
    run(cmd)
}

/// The timestamp authority out of the box: `init`, `serve`, a request made
/// by `openssl ts -query` answered with a token `openssl ts -verify`
/// accepts against `tsa/ca.pem`. A data directory made before the TSA
/// (no `tsa/`, no TSA keys) gets them at the first `serve`, audited.
#[test]
fn the_timestamp_authority_answers_after_init_and_after_an_upgrade() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let (token, _) = init(&dir);
    let data = tmp.path().join("artifact.bin");
    fs::write(&data, b"an artifact\n").unwrap();
    let query = tmp.path().join("q.tsq");
    let mut cmd = Command::new("openssl");
    cmd.args(["ts", "-query", "-sha256", "-data"])
        .arg(&data)
        .arg("-out")
        .arg(&query);
    assert!(run(cmd).status.success());
    let query = fs::read(&query).unwrap();
    let stamp = |server: &Server, name: &str| {
        let (status, body) = post_bytes(
            &server.addr,
            "/api/v1/timestamp",
            "application/timestamp-query",
            &query,
        );
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let reply = tmp.path().join(name);
        fs::write(&reply, body).unwrap();
        let out = openssl_ts_verify(&data, &reply, &dir);
        assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    };
    let server = Server::start(&dir);
    stamp(&server, "first.tsr");
    drop(server);

    // As a data directory from before the TSA.
    fs::remove_dir_all(dir.join("tsa")).unwrap();
    fs::remove_file(dir.join("keys/tsa.pem")).unwrap();
    fs::remove_file(dir.join("keys/tsa-ca.pem")).unwrap();
    let server = Server::start(&dir);
    stamp(&server, "second.tsr");
    let (status, body) =
        server.request("GET", "/api/v1/audit?action=tsa.setup", Some(&token), None);
    assert_eq!(status, 200);
    let v: Value = serde_json::from_slice(&body).unwrap();
    let records = v["records"].as_array().unwrap_or_else(|| panic!("{v}"));
    assert_eq!(records.len(), 2, "init's and the first start's: {v}");
}

/// `init` and `serve` with `store.url`: the repository lives in the
/// PostgreSQL database (no `keyshare.db` in the data directory), survives a
/// restart, and SIGTERM stops the server cleanly (its PostgreSQL
/// connections closed off the async runtime).
#[test]
fn a_repository_in_postgres_is_served_changed_and_restarted() {
    let Some(cluster) = keyshare_testkit::postgres::Cluster::shared() else {
        return;
    };
    let (_, url) = cluster.database();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    fs::create_dir(&dir).unwrap();
    fs::write(
        dir.join("keyshare.toml"),
        format!("[store]\nurl = \"{url}\"\n"),
    )
    .unwrap();
    let (token, _) = init(&dir);
    assert!(
        !dir.join("keyshare.db").exists(),
        "the store is not the SQLite file"
    );

    let server = Server::start(&dir);
    make_changes(&server, &token);
    let version = server.timestamp_version();
    let (status, log) = server.terminate();
    assert_eq!(status.code(), Some(0), "{log}");
    assert!(!log.contains("panicked"), "{log}");

    let server = Server::start(&dir);
    assert_eq!(server.timestamp_version(), version);
    server.json(
        "POST",
        "/api/v1/namespaces",
        Some(&token),
        Some(&json!({"name": "team-b", "scopes": ["registry.acme.io/team-b/**"]})),
        201,
    );
    assert_eq!(server.timestamp_version(), version + 1);
    let (status, log) = server.terminate();
    assert_eq!(status.code(), Some(0), "{log}");
    assert!(!log.contains("panicked"), "{log}");

    let mut db = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let names: Vec<String> = db
        .query("SELECT name FROM namespaces ORDER BY name", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(names, ["team-a", "team-b"]);
    assert!(!dir.join("keyshare.db").exists());
}

/// A PostgreSQL store that cannot be reached: one line naming the
/// database, never its password.
#[test]
fn serve_with_an_unreachable_postgres_store_is_one_line_without_the_password() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    init(&dir);
    let mut cmd = keyshare(&[
        "serve",
        "--data-dir",
        dir.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);
    cmd.env(
        "KEYSHARE_STORE_URL",
        "postgres://keyshare:s3cret@127.0.0.1:1/keyshare?connect_timeout=5",
    );
    let line = assert_one_line_error(&run(cmd));
    assert!(
        line.starts_with(
            "error: cannot connect to the PostgreSQL store postgres://keyshare@127.0.0.1:1/keyshare: "
        ),
        "{line}"
    );
    assert!(!line.contains("s3cret"), "{line}");
}

/// `migrate-store`: a repository served from SQLite, copied into
/// PostgreSQL, then served from there with `store.url`: the same metadata,
/// the same state, and it goes on. A second copy into the same database,
/// or a copy while `serve` runs, is refused with one line.
#[test]
fn migrate_store_moves_a_served_repository_to_postgres() {
    let Some(cluster) = keyshare_testkit::postgres::Cluster::shared() else {
        return;
    };
    let (_, url) = cluster.database();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let d = dir.to_str().unwrap();
    let (token, _) = init(&dir);
    let server = Server::start(&dir);
    make_changes(&server, &token);
    let version = server.timestamp_version();
    let timestamp = server
        .request("GET", "/metadata/timestamp.json", None, None)
        .1;
    let namespace = server.json("GET", "/api/v1/namespaces/team-a", Some(&token), None, 200);

    let mut running = keyshare(&["migrate-store", "--data-dir", d]);
    running.env("KEYSHARE_MIGRATE_TO", &url);
    let line = assert_one_line_error(&run(running));
    assert!(line.contains("serve"), "{line}");
    let (status, log) = server.terminate();
    assert_eq!(status.code(), Some(0), "{log}");

    let mut migrate = keyshare(&["migrate-store", "--data-dir", d, "--output", "json"]);
    migrate.env("KEYSHARE_MIGRATE_TO", &url);
    let out = run(migrate);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        report["rows"]["published_files"].as_u64().unwrap() > 0,
        "{report}"
    );
    assert!(
        report["audit_head"]["records"].as_u64().unwrap() >= 3,
        "{report}"
    );
    let again = run(keyshare(&["migrate-store", "--data-dir", d, "--to", &url]));
    let line = assert_one_line_error(&again);
    assert!(line.contains("not empty"), "{line}");

    let config = fs::read_to_string(dir.join("keyshare.toml")).unwrap();
    let config = config.replacen("[store]\n", &format!("[store]\nurl = \"{url}\"\n"), 1);
    fs::write(dir.join("keyshare.toml"), config).unwrap();
    fs::remove_file(dir.join("keyshare.db")).unwrap();
    let server = Server::start(&dir);
    assert_eq!(
        server
            .request("GET", "/metadata/timestamp.json", None, None)
            .1,
        timestamp
    );
    assert_eq!(
        server.json("GET", "/api/v1/namespaces/team-a", Some(&token), None, 200),
        namespace
    );
    server.json(
        "POST",
        "/api/v1/namespaces",
        Some(&token),
        Some(&json!({"name": "team-b", "scopes": ["registry.acme.io/team-b/**"]})),
        201,
    );
    assert_eq!(server.timestamp_version(), version + 1);
    let (status, log) = server.terminate();
    assert_eq!(status.code(), Some(0), "{log}");
    assert!(!dir.join("keyshare.db").exists(), "served from PostgreSQL");
}
