#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

//! Durability of `keyshare-server serve` under SIGKILL.
//!
//! A burst of concurrent admin writes (8 threads, each creating namespaces
//! and adding a key to each) runs against the real binary; every write the
//! server acknowledged (a complete 2xx answer) is recorded, and the server
//! is killed with SIGKILL in the middle of the burst, with requests still in
//! flight. `serve` is then restarted on the same data directory and must
//! show:
//!
//! (a) every acknowledged change, through the admin API;
//! (b) a consistent, verifiable repository: keyshare's own TUF client
//!     ([`Updater`], pinned to `1.root.json`) refreshes over HTTP, and every
//!     namespace listed in the index shards `org/namespaces/<xx>.json` has a hash-verified
//!     `namespaces/<ns>/trust.json` that parses, lists the acknowledged
//!     keys, and agrees with the admin API;
//! (c) an intact audit chain (`GET /api/v1/audit/verify`);
//! (d) new writes accepted, with versions continuing (one publish, one
//!     timestamp version).
//!
//! The kill happens at three points (after 3, 20 and 45 acknowledged
//! writes), each round building on the previous one; after the last restart
//! python-tuf's `ngclient.Updater` must accept the repository too.
//!
//! Needs a Python with `tuf` 7.x: `KEYSHARE_PYTHON`, or `target/pyenv` made
//! by `scripts/test`. Missing Python is a test failure, not a skip.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use keyshare_policy::client::{self, Config, Lookup, Request, Response, Updater};
use keyshare_policy::trust::{
    is_index_path, shard_path, NamespaceName, NamespaceTrust, Namespaces,
};
use keyshare_server::store::namespace_shard;
use serde_json::{json, Value};

/// The longest any single wait in this test may take.
use crate::bin_common;

use bin_common::{keyshare, python, run_within};

/// Runs a command to completion, bounded by this file's deadline.
fn run(cmd: Command) -> Output {
    run_within(cmd, DEADLINE)
}

const DEADLINE: Duration = Duration::from_secs(20);
/// Socket timeouts of the small HTTP client.
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// Writer threads in each burst.
const THREADS: usize = 8;
/// Most namespaces one thread creates in one burst (a bound, in case the
/// kill never comes).
const PER_THREAD: usize = 40;
/// After how many acknowledged writes each round kills the server.
const KILL_AFTER: [usize; 3] = [3, 20, 45];

/// `init` into `dir`; returns the org-admin token.
fn init(dir: &Path) -> String {
    bin_common::parse_init(&run(keyshare(&[
        "init",
        "--data-dir",
        dir.to_str().unwrap(),
    ])))
    .token
}

/// A running `serve`; killed on drop if still running.
struct Server {
    child: Child,
    addr: String,
    log: PathBuf,
}

impl Server {
    fn start(dir: &Path, round: usize) -> Self {
        let log = dir.with_extension(format!("serve-{round}.log"));
        let mut child = keyshare(&[
            "serve",
            "--data-dir",
            dir.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ])
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
            addr: String::new(),
            log,
        };
        let line = rx
            .recv_timeout(DEADLINE)
            .unwrap_or_else(|_| panic!("serve printed no address; log: {}", server.log_text()));
        server.addr = line
            .strip_prefix("listening on http://")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        server
    }

    fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A request that must get an answer.
    fn request(&self, method: &str, path: &str, token: Option<&str>) -> (u16, Vec<u8>) {
        http(&self.addr, method, path, token, None)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}; log: {}", self.log_text()))
    }

    /// A JSON answer with the expected status.
    fn json(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<&Value>,
        status: u16,
    ) -> Value {
        let (got, bytes) = http(&self.addr, method, path, Some(token), body)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}; log: {}", self.log_text()));
        let text = String::from_utf8_lossy(&bytes);
        assert_eq!(got, status, "{method} {path}: {text}");
        serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{method} {path}: {e}: {text}"))
    }

    fn timestamp_version(&self) -> u64 {
        let (status, bytes) = self.request("GET", "/metadata/timestamp.json", None);
        assert_eq!(status, 200);
        let ts: Value = serde_json::from_slice(&bytes).unwrap();
        ts["signed"]["version"].as_u64().unwrap()
    }

    /// SIGKILL (what `Child::kill` sends on Unix), then a bounded wait.
    fn kill(mut self) {
        self.child.kill().unwrap();
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(!status.success(), "serve exited normally: {status}");
                return;
            }
            assert!(started.elapsed() < DEADLINE, "serve survived SIGKILL");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Why a request got no answer.
#[derive(Debug)]
enum HttpError {
    /// No connection (the server is gone, or not there yet).
    Connect(io::Error),
    /// Connected, but the request or its answer broke off: a request that
    /// was in flight.
    Broken(String),
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Connect(e) => write!(f, "cannot connect: {e}"),
            Self::Broken(e) => write!(f, "request broke off: {e}"),
        }
    }
}

/// A minimal HTTP/1.1 client, one request per connection, bounded by
/// socket timeouts. An answer counts only if it is complete (the whole
/// head, and the whole body by `Content-Length` or chunking).
fn http(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> Result<(u16, Vec<u8>), HttpError> {
    let mut stream = TcpStream::connect(addr).map_err(HttpError::Connect)?;
    let broken = |e: io::Error| HttpError::Broken(e.to_string());
    stream.set_read_timeout(Some(IO_TIMEOUT)).map_err(broken)?;
    stream.set_write_timeout(Some(IO_TIMEOUT)).map_err(broken)?;
    let body = body
        .map(|b| serde_json::to_vec(b).unwrap())
        .unwrap_or_default();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(token) = token {
        req.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    if matches!(method, "POST" | "PUT") {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).map_err(broken)?;
    stream.write_all(&body).map_err(broken)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).map_err(broken)?;
    parse_response(&raw).ok_or_else(|| {
        HttpError::Broken(format!(
            "incomplete answer ({} bytes): {:?}",
            raw.len(),
            String::from_utf8_lossy(&raw[..raw.len().min(200)])
        ))
    })
}

/// Status and body of a complete HTTP/1.1 response, or `None`.
fn parse_response(raw: &[u8]) -> Option<(u16, Vec<u8>)> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let payload = &raw[split + 4..];
    let status: u16 = head.split_whitespace().nth(1)?.parse().ok()?;
    let header = |name: &str| {
        head.lines()
            .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_owned()))
    };
    if header("transfer-encoding:").is_some_and(|v| v.contains("chunked")) {
        return dechunk(payload).map(|b| (status, b));
    }
    match header("content-length:") {
        Some(n) => {
            let n: usize = n.parse().ok()?;
            (payload.len() == n).then(|| (status, payload.to_vec()))
        }
        None => Some((status, payload.to_vec())),
    }
}

fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let end = data.windows(2).position(|w| w == b"\r\n")?;
        let size_text = String::from_utf8_lossy(&data[..end]).to_string();
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        data = data.get(end + 2..)?;
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(data.get(..size)?);
        data = data.get(size + 2..)?;
    }
}

/// A fresh Ed25519 public key as a TUF key object.
fn tuf_key() -> Value {
    let key = openssl::pkey::PKey::generate_ed25519().unwrap();
    let public = key.raw_public_key().unwrap();
    json!({"keytype": "ed25519", "scheme": "ed25519", "keyval": {"public": hex::encode(public)}})
}

fn create_namespace_body(name: &str) -> Value {
    json!({"name": name, "scopes": [format!("registry.acme.io/{name}/**")], "maintainers": ["ops@acme.io"]})
}

/// What the server acknowledged: namespaces, and the keys added to each.
#[derive(Debug, Default)]
struct Acked {
    namespaces: BTreeMap<String, BTreeSet<String>>,
    /// Acknowledged writes (each one publish).
    writes: usize,
}

/// How one burst went.
#[derive(Debug, Default)]
struct BurstResult {
    acked: Acked,
    /// Requests that broke off when the server died (in flight at the kill).
    in_flight: usize,
    /// Anything unexpected while the server was up (non-2xx answers).
    problems: Vec<String>,
}

/// `THREADS` writers, each creating `ns-<round>-<thread>-<i>` and adding a
/// key to it, until a request fails.
struct Burst {
    threads: Vec<JoinHandle<()>>,
    writes: Arc<AtomicUsize>,
    result: Arc<Mutex<BurstResult>>,
    stop: Arc<AtomicBool>,
}

impl Burst {
    fn start(addr: &str, token: &str, round: usize) -> Self {
        let writes = Arc::new(AtomicUsize::new(0));
        let result = Arc::new(Mutex::new(BurstResult::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..THREADS)
            .map(|t| {
                let (addr, token) = (addr.to_owned(), token.to_owned());
                let (writes, result, stop) = (writes.clone(), result.clone(), stop.clone());
                std::thread::spawn(move || {
                    let ended = |e: HttpError| {
                        let mut r = result.lock().unwrap();
                        match e {
                            HttpError::Broken(_) => r.in_flight += 1,
                            HttpError::Connect(_) => {}
                        }
                    };
                    let post = |path: &str, body: &Value| {
                        http(&addr, "POST", path, Some(&token), Some(body))
                    };
                    for i in 0..PER_THREAD {
                        if stop.load(Ordering::SeqCst) {
                            return;
                        }
                        let name = format!("ns-{round}-{t}-{i}");
                        match post("/api/v1/namespaces", &create_namespace_body(&name)) {
                            Ok((201, _)) => {
                                let mut r = result.lock().unwrap();
                                r.acked.namespaces.insert(name.clone(), BTreeSet::new());
                                r.acked.writes += 1;
                                writes.fetch_add(1, Ordering::SeqCst);
                            }
                            Ok((status, body)) => {
                                result.lock().unwrap().problems.push(format!(
                                    "create {name}: {status} {}",
                                    String::from_utf8_lossy(&body)
                                ));
                                return;
                            }
                            Err(e) => return ended(e),
                        }
                        let path = format!("/api/v1/namespaces/{name}/keys");
                        match post(&path, &json!({"key": tuf_key(), "description": "burst"})) {
                            Ok((201, body)) => {
                                let key: Value = serde_json::from_slice(&body).unwrap();
                                let id = key["id"].as_str().unwrap().to_owned();
                                let mut r = result.lock().unwrap();
                                r.acked.namespaces.get_mut(&name).unwrap().insert(id);
                                r.acked.writes += 1;
                                writes.fetch_add(1, Ordering::SeqCst);
                            }
                            Ok((status, body)) => {
                                result.lock().unwrap().problems.push(format!(
                                    "add key to {name}: {status} {}",
                                    String::from_utf8_lossy(&body)
                                ));
                                return;
                            }
                            Err(e) => return ended(e),
                        }
                    }
                })
            })
            .collect();
        Self {
            threads,
            writes,
            result,
            stop,
        }
    }

    /// Waits (bounded) until `n` writes were acknowledged.
    fn wait_for(&self, n: usize, server: &Server) {
        let started = Instant::now();
        while self.writes.load(Ordering::SeqCst) < n {
            assert!(
                started.elapsed() < DEADLINE,
                "only {} of {n} writes acknowledged in time; problems: {:?}; log: {}",
                self.writes.load(Ordering::SeqCst),
                self.result.lock().unwrap().problems,
                server.log_text()
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Joins the writers (each ends at its first failed request, which the
    /// socket timeouts bound).
    fn finish(self) -> BurstResult {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads {
            t.join().unwrap();
        }
        Arc::try_unwrap(self.result).unwrap().into_inner().unwrap()
    }
}

/// GETs `metadata/<name>` for the TUF client: 200 is the bytes, 404 is
/// "not found", anything else fails the test.
fn fetch_metadata(server: &Server, request: &Request) -> Response {
    if request.is_local() {
        // A fresh client: nothing cached.
        return Response::NotFound;
    }
    let path = format!("/metadata/{}", request.remote_name());
    match server.request("GET", &path, None) {
        (200, bytes) => Response::Bytes(bytes),
        (404, _) => Response::NotFound,
        (status, body) => panic!("GET {path}: {status} {}", String::from_utf8_lossy(&body)),
    }
}

/// Refreshes a fresh [`Updater`] pinned to `root`, then downloads and
/// verifies the namespace index shards and every namespace's trust document.
/// Returns the namespaces with the key ids their trust documents list.
fn verify_repository(server: &Server, root: &[u8]) -> BTreeMap<String, BTreeSet<String>> {
    let now = time::OffsetDateTime::now_utc();
    let mut updater = Updater::new(root, now, Config::default()).unwrap();
    updater
        .refresh_with(|r| fetch_metadata(server, r))
        .unwrap_or_else(|e| panic!("refresh failed: {e}"));
    // The index, as a reader loads it: every shard top-level targets lists.
    let shards: Vec<String> = updater
        .trusted()
        .targets("targets")
        .unwrap()
        .targets
        .keys()
        .filter(|p| is_index_path(p))
        .cloned()
        .collect();
    let mut target = |path: &str| -> Vec<u8> {
        let lookup = updater
            .find_target_with(path, |r| fetch_metadata(server, r))
            .unwrap_or_else(|e| panic!("looking up {path}: {e}"));
        let Lookup::Found { target_file, .. } = lookup else {
            panic!("{path} is not in the repository");
        };
        let remote = updater.target_remote_name(path, &target_file);
        let (status, bytes) = server.request("GET", &format!("/targets/{remote}"), None);
        assert_eq!(status, 200, "GET /targets/{remote}");
        client::verify_target(&target_file, path, &bytes).unwrap_or_else(|e| panic!("{path}: {e}"));
        bytes
    };
    let shards: Vec<(String, Namespaces)> = shards
        .into_iter()
        .map(|p| {
            let doc = Namespaces::from_slice(&target(&p)).unwrap();
            (p, doc)
        })
        .collect();
    let namespaces =
        Namespaces::merge(shards.iter().map(|(p, d)| (p.as_str(), d.clone()))).unwrap();
    let mut published = BTreeMap::new();
    for entry in &namespaces.namespaces {
        let path = entry.name.target_path();
        let trust = NamespaceTrust::from_target(&path, &target(&path))
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        let keys = trust.keys.iter().map(|k| k.id.to_string()).collect();
        published.insert(entry.name.to_string(), keys);
    }
    published
}

/// Checks (a), (b) and (c) on a restarted server against everything
/// acknowledged so far.
fn check_restarted(server: &Server, token: &str, root: &[u8], acked: &Acked) {
    // (a) every acknowledged namespace and key, through the admin API.
    for (ns, keys) in &acked.namespaces {
        let detail = server.json("GET", &format!("/api/v1/namespaces/{ns}"), token, None, 200);
        let listed: BTreeSet<String> = detail["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["id"].as_str().unwrap().to_owned())
            .collect();
        assert!(
            keys.is_subset(&listed),
            "{ns}: acknowledged keys {keys:?} missing, listed {listed:?}"
        );
    }
    let list = server.json("GET", "/api/v1/namespaces", token, None, 200);
    let stored: BTreeSet<String> = list["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap().to_owned())
        .collect();

    // (b) the published repository verifies and says what the store says.
    let published = verify_repository(server, root);
    assert_eq!(
        published.keys().cloned().collect::<BTreeSet<_>>(),
        stored,
        "the published index and the admin API disagree"
    );
    for (ns, keys) in &acked.namespaces {
        let in_trust = published
            .get(ns)
            .unwrap_or_else(|| panic!("acknowledged namespace {ns} is not published"));
        assert!(
            keys.is_subset(in_trust),
            "{ns}: acknowledged keys {keys:?} not all in trust.json {in_trust:?}"
        );
    }

    // (c) the audit chain.
    let audit = server.json("GET", "/api/v1/audit/verify", token, None, 200);
    assert_eq!(audit["ok"], true, "{audit}");
    let records = audit["records"].as_u64().unwrap();
    assert!(
        records >= acked.writes as u64,
        "{records} audit records for {} acknowledged writes",
        acked.writes
    );
}

/// Runs `updater_against_server.py` (python-tuf) against the server.
fn python_tuf_accepts(server: &Server, root: &Path, targets: &[String]) {
    let out_dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(python());
    cmd.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/updater_against_server.py"))
        .arg("--out")
        .arg(out_dir.path())
        .arg(format!("http://{}", server.addr))
        .arg(root)
        .args(targets);
    let out = run(cmd);
    assert!(
        out.status.success(),
        "python-tuf refused the repository after the restarts:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn acknowledged_writes_survive_sigkill_mid_burst_and_the_repository_verifies() {
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let token = init(&dir);
    let mut acked = Acked::default();
    let mut in_flight = 0;
    let mut root = Vec::new();

    for (round, kill_after) in KILL_AFTER.into_iter().enumerate() {
        let server = Server::start(&dir, round);
        if round == 0 {
            let (status, bytes) = server.request("GET", "/metadata/1.root.json", None);
            assert_eq!(status, 200);
            root = bytes;
        }
        let burst = Burst::start(&server.addr, &token, round);
        burst.wait_for(kill_after, &server);
        server.kill();
        let result = burst.finish();
        assert!(result.problems.is_empty(), "{:?}", result.problems);
        assert!(result.acked.writes >= kill_after, "{result:?}");
        in_flight += result.in_flight;
        acked.writes += result.acked.writes;
        acked.namespaces.extend(result.acked.namespaces);

        // Restart on the same data directory.
        let server = Server::start(&dir, round + 10);
        check_restarted(&server, &token, &root, &acked);

        // (d) writes go on, and versions continue: init published
        // timestamp 1, and every acknowledged write was one publish.
        let version = server.timestamp_version();
        assert!(
            version > acked.writes as u64,
            "timestamp version {version} after {} acknowledged writes",
            acked.writes
        );
        let name = format!("after-{round}");
        server.json(
            "POST",
            "/api/v1/namespaces",
            &token,
            Some(&create_namespace_body(&name)),
            201,
        );
        assert_eq!(server.timestamp_version(), version + 1);
        acked.namespaces.insert(name, BTreeSet::new());
        acked.writes += 1;

        if round + 1 == KILL_AFTER.len() {
            // The state after the new write verifies too, and python-tuf
            // (the reference client) accepts the repository.
            check_restarted(&server, &token, &root, &acked);
            let root_file = tmp.path().join("1.root.json");
            fs::write(&root_file, &root).unwrap();
            let first = acked.namespaces.keys().next().unwrap();
            let first_shard = namespace_shard(&NamespaceName::parse(first).unwrap());
            let mut targets = vec!["org/peers.json".to_owned(), shard_path(first_shard)];
            targets.extend(
                acked
                    .namespaces
                    .iter()
                    .filter(|(_, keys)| !keys.is_empty())
                    .take(6)
                    .map(|(ns, _)| format!("namespaces/{ns}/trust.json")),
            );
            python_tuf_accepts(&server, &root_file, &targets);
        }
        server.kill();
    }
    assert!(
        in_flight > 0,
        "no request was in flight at any of the kills: the test did not test a crash mid-burst"
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "took {:?}",
        started.elapsed()
    );
}
