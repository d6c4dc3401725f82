//! Admin writes per second and publish latency of `keyshare-server serve`
//! with many namespaces.
//!
//! `cargo bench -p keyshare-server --bench admin_writes [-- --namespaces
//! 1000,10000 --writes 200 --create auto|http|inprocess --create-budget 600
//! --batch 1000 --bins 256|1024|4096 --store sqlite|postgres --servers 1
//! --clients 1]`
//!
//! `--servers 2` (PostgreSQL only): the writes go through two `serve`
//! processes on the one database, each with its own copy of the data
//! directory (the same online keys), client `i` talking to server
//! `i mod 2`. The same run also measures one SQLite server and one
//! PostgreSQL server with the same clients, so the rows compare. With one
//! client the writes alternate between the servers: each write then finds
//! the repository moved by the other server and catches up first, the
//! worst case of a round-robin load balancer. `--clients C` writes from C
//! threads at once (each its own keep-alive connection), which lets one
//! server's group commit and the database's lock share the work.
//!
//! `--store postgres`: the repository's store is a database of a throwaway
//! PostgreSQL cluster with PostgreSQL's durable settings
//! (`keyshare_testkit::postgres::Cluster::durable`: `fsync=on`,
//! `synchronous_commit=on`, as SQLite's `synchronous=FULL`), on a Unix
//! socket on the same machine; `store.url` is written into `keyshare.toml`
//! before `init`. Store sizes are then `pg_database_size`.
//! (or `bench/server-write`). For each namespace count it:
//!
//! 1. inits a fresh repository in a temporary directory with the release
//!    `keyshare-server` binary and starts `serve` on a loopback port;
//! 2. creates the namespaces one by one, each one full publish, and reports
//!    namespace creates/s. `http` creates all of them with
//!    `POST /api/v1/namespaces`; `inprocess` stops the server and calls
//!    `Publisher::apply_batch` in this process (`--batch` creates per
//!    publish, default 1,000; no HTTP); `auto` (the default) starts over HTTP and, when the
//!    projection (per-create time grows linearly with the namespace count)
//!    says all of them would take longer than `--create-budget` seconds,
//!    switches to in-process for the rest. Which path made how many is
//!    printed;
//! 3. restarts `serve` and times `--writes` sequential "add a key to an
//!    existing namespace" requests (`POST /api/v1/namespaces/{ns}/keys`,
//!    each one full publish) over one keep-alive connection with a minimal
//!    HTTP/1.1 client (no curl, no per-request process), and reports
//!    writes/s, p50/p90/p99/max latency, and the server's own mean publish
//!    time from `/metrics` (`keyshare_publish_seconds_total` /
//!    `keyshare_publish_total` over the write phase);
//! 4. reports the store's size (database + WAL) after the creates and after
//!    the writes, with the default retention (`store.keep_superseded`, 1 h:
//!    everything superseded during the run is still kept), and the bytes of
//!    published files left once everything superseded has aged out (the
//!    steady-state size: roots plus the current version of every file).
//!
//! There is no installable peer that does the same thing (one signed TUF
//! publish per admin write, durable before the answer), so there is no
//! ratio; the output says so. Output: a table, then one JSON line per
//! namespace count.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::panic,
    unreachable_pub
)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::num::NonZeroU32;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use common::arg;
use keyshare_policy::pattern::ArtifactPattern;
use keyshare_policy::trust::{NamespaceEntry, NamespaceName};
use keyshare_server::config::{Config, Flags};
use keyshare_server::publisher::{Batched, Change, Publisher};
use keyshare_server::store::Store;
use time::OffsetDateTime;

const BIN: &str = env!("CARGO_BIN_EXE_keyshare-server");

fn ns_name(i: usize) -> String {
    format!("ns-{i:05}")
}

// ---- a minimal keep-alive HTTP/1.1 client ----

struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    host: String,
}

impl Conn {
    fn connect(addr: &str) -> Self {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_nodelay(true).unwrap();
        Self {
            reader: BufReader::new(stream.try_clone().unwrap()),
            writer: stream,
            host: addr.to_owned(),
        }
    }

    /// One request; returns the status and the body. Assumes the server
    /// answers with a Content-Length (actix does for these routes).
    fn request(
        &mut self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> (u16, Vec<u8>) {
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\n", self.host);
        if let Some(t) = token {
            req.push_str(&format!("Authorization: Bearer {t}\r\n"));
        }
        let body = body.unwrap_or("");
        if method != "GET" {
            req.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                body.len()
            ));
        }
        req.push_str("\r\n");
        req.push_str(body);
        self.writer.write_all(req.as_bytes()).unwrap();

        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .unwrap_or_else(|| panic!("bad status line {line:?}"))
            .parse()
            .unwrap();
        let mut length = 0usize;
        loop {
            line.clear();
            self.reader.read_line(&mut line).unwrap();
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse().unwrap();
                }
            }
        }
        let mut out = vec![0; length];
        self.reader.read_exact(&mut out).unwrap();
        (status, out)
    }
}

// ---- the server process ----

struct Server {
    child: Child,
    addr: String,
}

impl Server {
    fn start(dir: &Path) -> Self {
        let mut child = Command::new(BIN)
            .args(["serve", "--data-dir"])
            .arg(dir)
            .args(["--listen", "127.0.0.1:0"])
            .env("KEYSHARE_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening on http://")
            .unwrap_or_else(|| panic!("unexpected first line from serve: {line:?}"))
            .to_owned();
        Self { child, addr }
    }

    /// Peak resident memory of the server process so far, MiB (Linux).
    fn peak_rss_mib(&self) -> f64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("VmHWM:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            })
            .map_or(0.0, |kb| kb / 1024.0)
    }

    /// SIGTERM, then wait (graceful stop).
    fn stop(mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

/// Free space of the file system holding `path`, MiB (`df -Pk`).
fn free_mib(path: &Path) -> Option<f64> {
    let out = Command::new("df").arg("-Pk").arg(path).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let kb: f64 = text
        .lines()
        .nth(1)?
        .split_whitespace()
        .nth(3)?
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

/// The store of `dir` as its configuration says (SQLite file or
/// `store.url`).
fn open_store(dir: &Path) -> Store {
    let config = Config::load(dir, &Flags::default()).unwrap();
    match &config.store_url {
        Some(url) => {
            Store::open_postgres(&keyshare_server::store::PostgresUrl::parse(url.expose()).unwrap())
                .unwrap()
        }
        None => Store::open(dir.join(keyshare_server::data_dir::DB_NAME)).unwrap(),
    }
}

/// A plain client on the PostgreSQL store of `dir`, if it has one.
fn postgres_client(dir: &Path) -> Option<postgres::Client> {
    let config = Config::load(dir, &Flags::default()).unwrap();
    config
        .store_url
        .map(|url| postgres::Client::connect(url.expose(), postgres::NoTls).unwrap())
}

/// Size of the store (database + WAL; PostgreSQL: the database), MiB.
fn store_mib(dir: &Path) -> f64 {
    if let Some(mut client) = postgres_client(dir) {
        let bytes: i64 = client
            .query_one("SELECT pg_database_size(current_database())", &[])
            .unwrap()
            .get(0);
        return bytes as f64 / (1024.0 * 1024.0);
    }
    ["", "-wal"]
        .iter()
        .filter_map(|suffix| {
            std::fs::metadata(dir.join(format!("{}{suffix}", keyshare_server::data_dir::DB_NAME)))
                .ok()
        })
        .map(|m| m.len() as f64)
        .sum::<f64>()
        / (1024.0 * 1024.0)
}

/// Prunes, as the server would once the retention period has passed with
/// no new writes, everything superseded; returns the bytes of published
/// files left, MiB (roots and the current version of every file).
fn steady_state_mib(dir: &Path) -> f64 {
    let config = Config::load(dir, &Flags::default()).unwrap();
    let keys = keyshare_server::keys::load(&dir.join(keyshare_server::data_dir::KEYS_DIR)).unwrap();
    let store = open_store(dir);
    let mut publisher = Publisher::open(store, keys, config.repo_options()).unwrap();
    publisher.set_retention(config.keep_superseded);
    let later = OffsetDateTime::now_utc()
        + config.keep_superseded.unwrap_or(time::Duration::ZERO)
        + time::Duration::minutes(1);
    publisher.prune(later).unwrap();
    drop(publisher);
    if let Some(mut client) = postgres_client(dir) {
        let bytes: i64 = client
            .query_one(
                "SELECT sum(length(bytes))::bigint FROM published_files",
                &[],
            )
            .unwrap()
            .get(0);
        return bytes as f64 / (1024.0 * 1024.0);
    }
    let conn = rusqlite::Connection::open(dir.join(keyshare_server::data_dir::DB_NAME)).unwrap();
    let bytes: i64 = conn
        .query_row("SELECT sum(length(bytes)) FROM published_files", [], |r| {
            r.get(0)
        })
        .unwrap();
    bytes as f64 / (1024.0 * 1024.0)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn mean(xs: &[f64]) -> f64 {
    xs.iter().sum::<f64>() / xs.len().max(1) as f64
}

fn create_body(name: &str) -> String {
    format!(
        r#"{{"name": "{name}", "scopes": ["registry.example/{name}/**"], "maintainers": ["bench@example"]}}"#
    )
}

/// Projected seconds to create namespaces `done..n`, assuming the time per
/// create grows linearly with the count (fitted on the first and the last
/// `w` creates so far).
fn projected_remaining(lat: &[f64], n: usize) -> f64 {
    let done = lat.len();
    let w = (done / 4).clamp(1, 200);
    let a = mean(&lat[..w]);
    let b = mean(&lat[done - w..]);
    let (ia, ib) = (w as f64 / 2.0, done as f64 - w as f64 / 2.0);
    let slope = if ib > ia {
        ((b - a) / (ib - ia)).max(0.0)
    } else {
        0.0
    };
    let rest = (n - done) as f64;
    rest * (b + slope * ((n + done) as f64 / 2.0 - ib))
}

struct Created {
    http: usize,
    http_seconds: f64,
    inprocess: usize,
    inprocess_seconds: f64,
    /// Mean seconds of the last 100 creates (how slow a create is at n).
    last_mean: f64,
    projected_http_total: Option<f64>,
    /// HTTP only: peak memory of the server that made them, MiB.
    http_server_rss: f64,
}

fn create_namespaces(dir: &Path, token: &str, n: usize, mode: &str, budget: f64) -> Created {
    let mut lat = Vec::with_capacity(n);
    let mut created = Created {
        http: 0,
        http_seconds: 0.0,
        inprocess: 0,
        inprocess_seconds: 0.0,
        last_mean: 0.0,
        projected_http_total: None,
        http_server_rss: 0.0,
    };
    if mode != "inprocess" {
        let server = Server::start(dir);
        let mut conn = Conn::connect(&server.addr);
        let started = Instant::now();
        let mut next_check = 10.0;
        while lat.len() < n {
            let name = ns_name(lat.len() + 1);
            let t = Instant::now();
            let (status, body) = conn.request(
                "POST",
                "/api/v1/namespaces",
                Some(token),
                Some(&create_body(&name)),
            );
            lat.push(t.elapsed().as_secs_f64());
            assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
            let elapsed = started.elapsed().as_secs_f64();
            if mode == "auto" && elapsed >= next_check {
                next_check += 10.0;
                let total = elapsed + projected_remaining(&lat, n);
                eprintln!(
                    "  {} of {n} namespaces over HTTP in {elapsed:.0} s; all {n} projected at {total:.0} s",
                    lat.len()
                );
                if total > budget {
                    created.projected_http_total = Some(total);
                    eprintln!(
                        "  projected {total:.0} s > budget {budget:.0} s: creating the rest in-process (Publisher::apply_batch)"
                    );
                    break;
                }
            }
        }
        created.http = lat.len();
        created.http_seconds = started.elapsed().as_secs_f64();
        created.http_server_rss = server.peak_rss_mib();
        server.stop();
    }
    if lat.len() < n {
        let open = || {
            let config = Config::load(dir, &Flags::default()).unwrap();
            let keys = keyshare_server::keys::load(&dir.join(keyshare_server::data_dir::KEYS_DIR))
                .unwrap();
            let store = open_store(dir);
            Publisher::open(store, keys, config.repo_options()).unwrap()
        };
        let publisher = open();
        let started = Instant::now();
        let first = lat.len();
        // In batches (`Publisher::apply_batch`, `--batch` creates per
        // publish): one publish per namespace would re-sign snapshot and
        // timestamp n times for nothing but seeding.
        let batch = arg("--batch").map_or(1000, |v| v.parse().expect("--batch: a number"));
        while lat.len() < n {
            let names: Vec<String> = (lat.len() + 1..=(lat.len() + batch).min(n))
                .map(ns_name)
                .collect();
            let changes: Vec<Batched> = names
                .iter()
                .map(|name| Batched {
                    actor: "bench".into(),
                    change: Change::CreateNamespace {
                        entry: NamespaceEntry {
                            name: NamespaceName::parse(name).unwrap(),
                            scopes: vec![ArtifactPattern::parse(&format!(
                                "registry.example/{name}/**"
                            ))
                            .unwrap()],
                            maintainers: vec!["bench@example".into()],
                        },
                        threshold: NonZeroU32::MIN,
                        allow_overlap: false,
                    },
                    context: serde_json::Value::Null,
                })
                .collect();
            let t = Instant::now();
            for result in publisher
                .apply_batch(changes, OffsetDateTime::now_utc())
                .unwrap()
            {
                result.unwrap();
            }
            let each = t.elapsed().as_secs_f64() / names.len() as f64;
            lat.extend(std::iter::repeat_n(each, names.len()));
            eprintln!(
                "  {} of {n} namespaces ({:.0} s in-process so far, {batch} per publish)",
                lat.len(),
                started.elapsed().as_secs_f64()
            );
        }
        created.inprocess = n - first;
        created.inprocess_seconds = started.elapsed().as_secs_f64();
    }
    created.last_mean = mean(&lat[lat.len().saturating_sub(100)..]);
    created
}

/// Ed25519 public keys (hex), made up front so the timed loop only talks
/// to the server.
fn public_keys(count: usize) -> Vec<String> {
    (0..count)
        .map(|_| {
            let key = openssl::pkey::PKey::generate_ed25519().unwrap();
            hex::encode(key.raw_public_key().unwrap())
        })
        .collect()
}

/// Sizes of the current snapshot and top-level targets, and how many
/// roles the snapshot lists (what must not grow with the namespaces; its
/// bytes also hold each role's version number, whose digits depend on how
/// many publishes there were).
fn metadata_sizes(conn: &mut Conn) -> (usize, usize, usize) {
    let (_, ts) = conn.request("GET", "/metadata/timestamp.json", None, None);
    let ts: serde_json::Value = serde_json::from_slice(&ts).unwrap();
    let sv = ts["signed"]["meta"]["snapshot.json"]["version"]
        .as_u64()
        .unwrap();
    let (_, snap) = conn.request("GET", &format!("/metadata/{sv}.snapshot.json"), None, None);
    let snap_json: serde_json::Value = serde_json::from_slice(&snap).unwrap();
    let tv = snap_json["signed"]["meta"]["targets.json"]["version"]
        .as_u64()
        .unwrap();
    let entries = snap_json["signed"]["meta"]
        .as_object()
        .map_or(0, serde_json::Map::len);
    let (_, targets) = conn.request("GET", &format!("/metadata/{tv}.targets.json"), None, None);
    (snap.len(), targets.len(), entries)
}

/// What the timed writes measured.
struct Writes {
    /// Seconds per write, sorted.
    latencies: Vec<f64>,
    wall: f64,
    /// Publishes and their seconds, summed over the servers' `/metrics`.
    publishes: f64,
    publish_seconds: f64,
    peak_rss_mib: f64,
}

/// `writes` "add a key" requests, each one full publish, from `clients`
/// threads (client `i` on `servers[i % servers.len()]`, one keep-alive
/// connection each), over a fixed stride of the `n` namespaces.
fn timed_writes(
    servers: &[Server],
    token: &str,
    n: usize,
    writes: usize,
    clients: usize,
) -> Writes {
    let scrape = || -> Vec<String> {
        servers
            .iter()
            .map(|s| {
                let (_, m) = Conn::connect(&s.addr).request("GET", "/metrics", None, None);
                String::from_utf8(m).unwrap()
            })
            .collect()
    };
    let sum = |texts: &[String], name: &str| texts.iter().map(|t| metric(t, name)).sum::<f64>();
    let before = scrape();
    let keys = public_keys(writes);
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(clients + 1));
    let threads: Vec<_> = (0..clients)
        .map(|c| {
            let addr = servers[c % servers.len()].addr.clone();
            let token = token.to_owned();
            let mine: Vec<(usize, String)> = keys
                .iter()
                .enumerate()
                .skip(c)
                .step_by(clients)
                .map(|(i, k)| (i, k.clone()))
                .collect();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let mut conn = Conn::connect(&addr);
                barrier.wait();
                let mut lat = Vec::with_capacity(mine.len());
                for (i, public) in mine {
                    // A fixed stride over the namespaces (coprime with most n).
                    let ns = ns_name((i * 7919) % n + 1);
                    let body = format!(
                        r#"{{"key": {{"keytype": "ed25519", "scheme": "ed25519", "keyval": {{"public": "{public}"}}}}}}"#
                    );
                    let t = Instant::now();
                    let (status, resp) = conn.request(
                        "POST",
                        &format!("/api/v1/namespaces/{ns}/keys"),
                        Some(&token),
                        Some(&body),
                    );
                    lat.push(t.elapsed().as_secs_f64());
                    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&resp));
                }
                lat
            })
        })
        .collect();
    barrier.wait();
    let started = Instant::now();
    let mut latencies: Vec<f64> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    let wall = started.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    let after = scrape();
    Writes {
        latencies,
        wall,
        publishes: sum(&after, "keyshare_publish_total") - sum(&before, "keyshare_publish_total"),
        publish_seconds: sum(&after, "keyshare_publish_seconds_total")
            - sum(&before, "keyshare_publish_seconds_total"),
        peak_rss_mib: servers.iter().map(Server::peak_rss_mib).fold(0.0, f64::max),
    }
}

fn main() {
    let sizes: Vec<usize> = arg("--namespaces")
        .unwrap_or_else(|| "1000,10000".into())
        .split(',')
        .map(|s| {
            s.trim()
                .parse()
                .expect("--namespaces: numbers, comma-separated")
        })
        .collect();
    let writes: usize = arg("--writes").map_or(200, |v| v.parse().expect("--writes: a number"));
    let mode = arg("--create").unwrap_or_else(|| "auto".into());
    assert!(
        ["auto", "http", "inprocess"].contains(&mode.as_str()),
        "--create: auto, http or inprocess"
    );
    let budget: f64 = arg("--create-budget").map_or(600.0, |v| v.parse().unwrap());
    let backend = arg("--store").unwrap_or_else(|| "sqlite".into());
    assert!(
        ["sqlite", "postgres"].contains(&backend.as_str()),
        "--store: sqlite or postgres"
    );
    let servers: usize = arg("--servers").map_or(1, |v| v.parse().expect("--servers: a number"));
    let clients: usize = arg("--clients").map_or(1, |v| v.parse().expect("--clients: a number"));
    assert!(
        servers >= 1 && clients >= 1,
        "--servers and --clients: at least 1"
    );
    assert!(
        servers == 1 || backend == "postgres",
        "--servers {servers}: several servers share a PostgreSQL store (--store postgres)"
    );
    // Several servers: one SQLite server and one PostgreSQL server too, in
    // the same run, for the ratios.
    let setups: Vec<(&str, usize)> = if servers > 1 {
        vec![("sqlite", 1), ("postgres", 1), ("postgres", servers)]
    } else {
        vec![(backend.as_str(), 1)]
    };

    let mut rows = Vec::new();
    let mut jsonl = Vec::new();
    for &(backend, servers) in &setups {
        for &n in &sizes {
            eprintln!(
                "admin_writes: {n} namespaces, {backend}, {servers} server(s), {clients} client(s)"
            );
            let tmp = tempfile::tempdir().unwrap();
            // Every publish stores a new snapshot (targets and the bins only,
            // a few KB) and re-signed bin; with the default retention (1 h) the
            // run keeps all of them: about n creates * 12 KB over HTTP.
            let store_estimate_mib = (n as f64) * 12.0 / 1024.0;
            if let Some(free) = free_mib(tmp.path()) {
                eprintln!(
                "  the store will take about {store_estimate_mib:.0} MiB; {free:.0} MiB free in {}",
                tmp.path().display()
            );
                if free < store_estimate_mib * 1.2 {
                    eprintln!("  warning: probably not enough free disk (set TMPDIR elsewhere)");
                }
            }
            let dir = tmp.path().join("data");
            if backend == "postgres" {
                let (_, url) = keyshare_testkit::postgres::Cluster::durable().database();
                std::fs::create_dir(&dir).unwrap();
                std::fs::write(
                    dir.join("keyshare.toml"),
                    format!("[store]\nurl = \"{url}\"\n"),
                )
                .unwrap();
            }
            let bins = arg("--bins").unwrap_or_else(|| "256".into());
            let out = Command::new(BIN)
                .args(["init", "--bins", &bins, "--data-dir"])
                .arg(&dir)
                .output()
                .unwrap();
            assert!(out.status.success(), "init failed");
            let token = String::from_utf8(out.stdout)
                .unwrap()
                .lines()
                .last()
                .unwrap()
                .trim()
                .to_owned();

            let created = create_namespaces(&dir, &token, n, &mode, budget);
            let creates_total = created.http + created.inprocess;
            let create_seconds = created.http_seconds + created.inprocess_seconds;
            let create_path = match (created.http, created.inprocess) {
                (_, 0) => "http".to_owned(),
                (0, _) => "inprocess".to_owned(),
                (h, i) => format!("http {h} + inprocess {i}"),
            };
            let db_mib = store_mib(&dir);
            eprintln!(
            "  created {creates_total} namespaces in {create_seconds:.1} s ({create_path}); last 100 took {:.1} ms each; store {db_mib:.0} MiB",
            created.last_mean * 1000.0
        );

            // The timed writes: one key into a spread of existing namespaces.
            let mut running = vec![Server::start(&dir)];
            for i in 1..servers {
                let other = tmp.path().join(format!("data-{i}"));
                keyshare_testkit::copy_dir(&dir, &other);
                running.push(Server::start(&other));
            }
            let (snapshot_bytes, targets_bytes, snapshot_entries) =
                metadata_sizes(&mut Conn::connect(&running[0].addr));
            let done = timed_writes(&running, &token, n, writes, clients);
            let server_rss = done.peak_rss_mib;
            for server in running {
                server.stop();
            }
            let store_mib_after_writes = store_mib(&dir);
            let steady_mib = steady_state_mib(&dir);

            let mean_publish_ms = done.publish_seconds / done.publishes.max(1.0) * 1000.0;
            let publishes = done.publishes;
            let sorted = done.latencies;
            let ms = |s: f64| s * 1000.0;
            let writes_per_s = writes as f64 / done.wall;
            let creates_per_s = creates_total as f64 / create_seconds;
            let (p50, p90, p99, max) = (
                ms(percentile(&sorted, 50.0)),
                ms(percentile(&sorted, 90.0)),
                ms(percentile(&sorted, 99.0)),
                ms(*sorted.last().unwrap_or(&0.0)),
            );
            rows.push(format!(
            "{backend:>8} {servers:>7} {clients:>7} {n:>10} {creates_per_s:>11.1} {:>26} {writes_per_s:>9.1} {p50:>8.1} {p90:>8.1} {p99:>8.1} {max:>8.1} {mean_publish_ms:>12.1} {targets_bytes:>10} {snapshot_bytes:>10} {snapshot_entries:>12} {store_mib_after_writes:>10.0} {steady_mib:>10.1}",
            create_path
        ));
            jsonl.push(serde_json::json!({
                "bench": "server-write",
                "namespaces": n,
                "create_path": create_path,
                "creates_http": created.http,
                "creates_http_seconds": created.http_seconds,
                "creates_inprocess": created.inprocess,
                "creates_inprocess_seconds": created.inprocess_seconds,
                "creates_per_s": creates_per_s,
                "create_last100_mean_ms": ms(created.last_mean),
                "projected_http_create_seconds": created.projected_http_total,
                "create_server_peak_rss_mib": created.http_server_rss,
                "store_mib_after_creates": db_mib,
                "store_mib_after_writes": store_mib_after_writes,
                "published_mib_steady_state": steady_mib,
                "writes": writes,
                "writes_per_s": writes_per_s,
                "write_p50_ms": p50,
                "write_p90_ms": p90,
                "write_p99_ms": p99,
                "write_max_ms": max,
                "publishes": publishes,
                "server_mean_publish_ms": mean_publish_ms,
                "snapshot_bytes": snapshot_bytes,
                "snapshot_entries": snapshot_entries,
                "targets_bytes": targets_bytes,
                "write_server_peak_rss_mib": server_rss,
                "store": backend,
                "servers": servers,
                "clients": clients,
                "peer": null,
            }));
        }
    }

    println!();
    println!(
        "admin writes: each is one full publish (sign changed roles + snapshot + timestamp, then a \
         durable commit: SQLite synchronous=FULL; PostgreSQL fsync and synchronous_commit on, Unix socket)"
    );
    println!(
        "{:>8} {:>7} {:>7} {:>10} {:>11} {:>26} {:>9} {:>8} {:>8} {:>8} {:>8} {:>12} {:>10} {:>10} {:>12} {:>10} {:>10}",
        "store",
        "servers",
        "clients",
        "namespaces",
        "creates/s",
        "created via",
        "writes/s",
        "p50_ms",
        "p90_ms",
        "p99_ms",
        "max_ms",
        "publish_ms",
        "targets_B",
        "snapshot_B",
        "snapshot_roles",
        "store_MiB",
        "steady_MiB"
    );
    for r in &rows {
        println!("{r}");
    }
    if setups.len() > 1 {
        // writes/s of every row against the SQLite row of the same count.
        for j in &jsonl {
            let base = jsonl
                .iter()
                .find(|b| b["store"] == "sqlite" && b["namespaces"] == j["namespaces"])
                .unwrap();
            let ratio = |k: &str| j[k].as_f64().unwrap() / base[k].as_f64().unwrap();
            println!(
                "{} x{} at {} namespaces / one SQLite server: writes/s {:.2}x, p50 {:.2}x, p99 {:.2}x",
                j["store"].as_str().unwrap(),
                j["servers"],
                j["namespaces"],
                ratio("writes_per_s"),
                ratio("write_p50_ms"),
                ratio("write_p99_ms"),
            );
        }
    }
    println!("(publish_ms: the server's mean from /metrics over the writes; targets_B, snapshot_B: sizes of the current top-level targets and snapshot; snapshot_roles: the roles the snapshot lists; store_MiB: database + WAL after the run, default retention; steady_MiB: published bytes left once everything superseded has aged out)");
    println!("peer: none. No installable server does the same work (one signed TUF publish per admin write, durable before the answer), so there is no ratio.");
    println!();
    for j in &jsonl {
        println!("{j}");
    }
}
