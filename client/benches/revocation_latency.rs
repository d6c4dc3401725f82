//! How long a revocation takes to reach watching verifiers.
//!
//! `cargo bench -p keyshare-client --bench revocation_latency [--
//! --watchers N --idle M]` (or `bench/revocation-latency`, which builds the
//! server first). Starts a real `keyshare-server serve` (release build, a
//! process of its own, embedded defaults, `limits.max_waiters` raised to
//! fit), creates namespace `team-a` with one key through the admin API,
//! then runs N watchers as tasks of this process (a 2-thread tokio
//! runtime), each a whole verifier with its own cache directory running
//! `keyshare_client::watch::watch` (the loop of `keyshare watch`: the
//! server's long poll, then the TUF workflow on each publish). With
//! `--idle M`, M more connections sit in the long poll doing nothing else
//! (re-asking when answered). Once every watcher trusts the key and every
//! waiter waits (`/metrics`), and the watchers' caches are written, it
//! revokes the key with one
//! `POST /api/v1/revocations` and measures, from the admin's 201, when
//! each watcher's decision turns untrusted.
//!
//! `--servers 2`: the store is a PostgreSQL database (a throwaway cluster,
//! `keyshare_testkit::postgres::Cluster::durable`) shared by two `serve`
//! processes, each with its own copy of the data directory; the admin
//! writes through the first and every watcher and idle waiter waits on
//! the second, so the latency includes the second server learning of the
//! first one's publish (`NOTIFY`, docs/operations/ha.md). `--store
//! postgres` runs one server on such a database.
//!
//! Prints a table and one JSON line: `watchers`, `idle`, `servers`, `p50_ms`,
//! `p99_ms`, `max_ms`, `server_rss_mib` (the server's resident memory with
//! everyone connected, before the revocation) and `cpu_ms_per_watcher`
//! (this process's CPU time from the 201 to the last watcher's report,
//! divided by the watchers: the verifiers' work per change, a figure that
//! other load on the machine does not move much).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::print_stdout,
    clippy::print_stderr
)]

/// The allocator the binaries use, so the code measured runs as it does
/// there.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::json;
use time::OffsetDateTime;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};

use keyshare_client::admin::{
    AdminClient, KeyMaterial, NewKey, NewNamespace, NewRevocation, RevokedSubject,
};
use keyshare_client::fetch::BlockingClient;
use keyshare_client::watch::{watch, Event, WatchOptions};
use keyshare_client::{Options, RootPin, Verifier};
use keyshare_policy::keys::Scheme;
use keyshare_policy::sign::{InMemorySigner, Signer};
use keyshare_policy::trust::SignerRef;

const ARTIFACT: &str = "registry.acme.io/team-a/app";

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// `keyshare-server serve` in a process of its own; killed when dropped.
struct ServerProcess {
    child: Child,
    url: String,
    token: String,
    /// The temporary directory of the data directories (held by the last).
    _dir: Option<tempfile::TempDir>,
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn server_bin() -> PathBuf {
    std::env::var_os("KEYSHARE_SERVER_BIN").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/release/keyshare-server"),
        PathBuf::from,
    )
}

/// `servers` processes of `keyshare-server serve` on one repository: one
/// on a SQLite store, or several on one PostgreSQL database.
fn start_servers(max_waiters: usize, servers: usize, postgres: bool) -> Vec<ServerProcess> {
    let bin = server_bin();
    assert!(
        bin.exists(),
        "{} is missing: cargo build --release -p keyshare-server (bench/revocation-latency does)",
        bin.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    if postgres {
        let (_, url) = keyshare_testkit::postgres::Cluster::durable().database();
        std::fs::create_dir(&data).unwrap();
        std::fs::write(
            data.join("keyshare.toml"),
            format!("[store]\nurl = \"{url}\"\n"),
        )
        .unwrap();
    }
    let out = Command::new(&bin)
        .args(["init", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(out.status.success(), "init: {out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let token = lines
        .iter()
        .position(|l| l.contains("will not be shown again"))
        .and_then(|i| lines.get(i + 1))
        .expect("init prints the org-admin token")
        .trim()
        .to_owned();
    let mut running = Vec::new();
    for i in 0..servers {
        let data = if i == 0 {
            data.clone()
        } else {
            let copy = dir.path().join(format!("data-{i}"));
            keyshare_testkit::copy_dir(&data, &copy);
            copy
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = std::fs::File::create(dir.path().join(format!("serve-{i}.log"))).unwrap();
        let child = Command::new(&bin)
            .args(["serve", "--data-dir"])
            .arg(&data)
            .env("KEYSHARE_LISTEN", format!("127.0.0.1:{port}"))
            .env("KEYSHARE_MAX_WAITERS", max_waiters.to_string())
            .env("KEYSHARE_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "the server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        running.push(ServerProcess {
            child,
            url,
            token: token.clone(),
            _dir: None,
        });
    }
    // Removed with the last server dropped (a vector drops in order).
    if let Some(last) = running.last_mut() {
        last._dir = Some(dir);
    }
    running
}

fn get(url: &str) -> (u16, Vec<u8>) {
    let http = BlockingClient::for_server(None).unwrap();
    http.send(http.client().get(url), 16 << 20).unwrap()
}

fn waiters(url: &str) -> u64 {
    let (_, body) = get(&format!("{url}/metrics"));
    String::from_utf8(body)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("keyshare_read_waiters "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// CPU time (user and system) this process has used so far.
fn cpu_used() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // After the command name in parentheses: utime and stime are the 12th
    // and 13th fields, in clock ticks (100 a second on Linux).
    let ticks: u64 = stat
        .rsplit_once(')')
        .map(|(_, rest)| {
            rest.split_whitespace()
                .skip(11)
                .take(2)
                .filter_map(|t| t.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// One connection that sits in the long poll, re-asking with the `ETag`
/// it was last answered with.
async fn idle_waiter(addr: String, mut etag: String) {
    let Ok(stream) = tokio::net::TcpStream::connect(&addr).await else {
        return;
    };
    let (read, mut write) = stream.into_split();
    let mut read = tokio::io::BufReader::new(read);
    loop {
        let request = format!(
            "GET /metadata/timestamp.json HTTP/1.1\r\nHost: {addr}\r\nIf-None-Match: {etag}\r\nPrefer: wait=60\r\n\r\n"
        );
        if write.write_all(request.as_bytes()).await.is_err() {
            return;
        }
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            match read.read_line(&mut line).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            let lower = line.to_ascii_lowercase();
            if let Some(v) = lower.strip_prefix("content-length:") {
                length = v.trim().parse().unwrap_or(0);
            } else if lower.starts_with("etag:") {
                etag = line[5..].trim().to_owned();
            }
        }
        let mut body = vec![0u8; length];
        if read.read_exact(&mut body).await.is_err() {
            return;
        }
    }
}

fn main() {
    let watchers: usize = arg("--watchers").map_or(1000, |n| n.parse().unwrap());
    let idle: usize = arg("--idle").map_or(0, |n| n.parse().unwrap());
    let servers: usize = arg("--servers").map_or(1, |n| n.parse().unwrap());
    assert!(
        (1..=2).contains(&servers),
        "--servers: 1, or 2 (on one PostgreSQL database)"
    );
    let postgres = servers > 1 || arg("--store").as_deref() == Some("postgres");
    let running = start_servers(watchers + idle + 100, servers, postgres);
    // The admin writes through the first; everyone watches the last.
    let (server, watched) = (&running[0], &running[servers - 1]);
    let admin = AdminClient::new(&server.url, &server.token).unwrap();
    admin
        .create_namespace(&NewNamespace {
            name: "team-a".into(),
            scopes: vec!["registry.acme.io/team-a/**".into()],
            maintainers: vec![],
            allow_overlap: false,
        })
        .unwrap();
    let key = InMemorySigner::generate(Scheme::Ed25519).unwrap();
    admin
        .add_key(
            "team-a",
            &NewKey {
                key: KeyMaterial::Tuf(serde_json::to_value(key.public_key()).unwrap()),
                id: Some("k1".into()),
                not_before: None,
                not_after: None,
                description: None,
                layout_root: false,
            },
        )
        .unwrap();
    let (status, root) = get(&format!("{}/metadata/1.root.json", watched.url));
    assert_eq!(status, 200);

    // The watchers run on two threads, each a current-thread runtime (the
    // machine has two cores), as many verifiers in one process would.
    let base = tempfile::tempdir().unwrap();
    let (ready_tx, ready) = mpsc::channel::<usize>();
    let (seen_tx, seen) = mpsc::channel::<Instant>();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let started = Instant::now();
    let mut threads = Vec::new();
    for t in 0..2 {
        let mine: Vec<usize> = (t..watchers).step_by(2).collect();
        let (base, url, root) = (base.path().to_owned(), watched.url.clone(), root.clone());
        let public = key.public_key().clone();
        let (ready_tx, seen_tx) = (ready_tx.clone(), seen_tx.clone());
        let stop_rx = stop_rx.clone();
        threads.push(std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let local = tokio::task::LocalSet::new();
            for i in mine {
                let dir = base.join(format!("w{i}"));
                let (url, root, public) = (url.clone(), root.clone(), public.clone());
                let (ready_tx, seen_tx) = (ready_tx.clone(), seen_tx.clone());
                let mut stop = stop_rx.clone();
                local.spawn_local(async move {
                    let mut options = Options::new(dir);
                    options.threads = 1;
                    options.concurrency = 4;
                    let verifier = Verifier::new(options).unwrap();
                    verifier
                        .init(&url, RootPin::File(root), false)
                        .await
                        .unwrap();
                    let signer = [SignerRef::PublicKey(public)];
                    let mut was_trusted = false;
                    let mut reported = false;
                    let report = move |event: Event<'_>| {
                        if let Event::State { state, .. } = event {
                            let now = OffsetDateTime::now_utc();
                            let trusted = state
                                .trust_set
                                .decide(ARTIFACT, &signer, now, now)
                                .is_trusted();
                            if trusted && !was_trusted {
                                was_trusted = true;
                                let _ = ready_tx.send(i);
                            } else if !trusted && was_trusted && !reported {
                                reported = true;
                                let _ = seen_tx.send(Instant::now());
                            }
                        }
                    };
                    let options = WatchOptions {
                        wait: Duration::from_secs(55),
                        ..WatchOptions::default()
                    };
                    watch(&verifier, &options, report, async move {
                        let _ = stop.wait_for(|s| *s).await;
                    })
                    .await;
                });
            }
            let mut stop = stop_rx;
            rt.block_on(local.run_until(async move {
                let _ = stop.wait_for(|s| *s).await;
            }));
        }));
    }
    let idle_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    for _ in 0..watchers {
        ready
            .recv_timeout(Duration::from_secs(300))
            .expect("every watcher trusts the key");
    }
    eprintln!(
        "{watchers} watchers ready in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    if idle > 0 {
        // keyshare-server's ETag: the quoted SHA-256 of the file.
        let (_, timestamp) = get(&format!("{}/metadata/timestamp.json", watched.url));
        let etag = format!("\"{}\"", keyshare_policy::hash::sha256_hex(&timestamp));
        let addr = watched.url.trim_start_matches("http://").to_owned();
        for _ in 0..idle {
            idle_rt.spawn(idle_waiter(addr.clone(), etag.clone()));
        }
    }
    let everyone = (watchers + idle) as u64;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let n = waiters(&watched.url);
        if n >= everyone {
            break;
        }
        assert!(Instant::now() < deadline, "only {n} of {everyone} waiting");
        std::thread::sleep(Duration::from_millis(200));
    }
    let all_waiting = Instant::now();
    // Every watcher wrote its cache behind its first state
    // (`WatchOptions::write_behind`): the revocation meets settled
    // verifiers, as it would on machines of their own.
    std::thread::sleep(WatchOptions::default().write_behind + Duration::from_secs(1));
    // Writing a thousand caches can take longer than that on two cores:
    // wait until this process is quiet (under 5 % of a core for half a
    // second), so the revocation does not meet the tail of the writes.
    loop {
        let before = cpu_used();
        std::thread::sleep(Duration::from_millis(500));
        if cpu_used().saturating_sub(before) < Duration::from_millis(25)
            || all_waiting.elapsed() > Duration::from_secs(60)
        {
            break;
        }
    }
    eprintln!(
        "settled {:.1} s after every watcher was waiting",
        all_waiting.elapsed().as_secs_f64()
    );
    let rss = rss_mib(watched.child.id());
    // `--hold SECS`: a pause before the revocation (to attach a profiler
    // to this process or the server's, whose pids are printed).
    if let Some(hold) = arg("--hold") {
        eprintln!(
            "holding {hold} s: bench pid {}, server pid {}",
            std::process::id(),
            watched.child.id()
        );
        std::thread::sleep(Duration::from_secs(hold.parse().unwrap()));
    }

    // A new connection: the setup's may have been closed while idle.
    let admin = AdminClient::new(&server.url, &server.token).unwrap();
    admin
        .add_revocation(&NewRevocation {
            subject: RevokedSubject::KeyId {
                namespace: Some("team-a".into()),
                id: "k1".into(),
            },
            reason: "bench".into(),
            revoked_at: None,
        })
        .unwrap();
    let t0 = Instant::now();
    let cpu0 = cpu_used();
    let mut latencies = Vec::with_capacity(watchers);
    let deadline = Instant::now() + Duration::from_secs(60);
    for _ in 0..watchers {
        let left = deadline.saturating_duration_since(Instant::now());
        match seen.recv_timeout(left) {
            Ok(at) => latencies.push(at.saturating_duration_since(t0)),
            Err(_) => break,
        }
    }
    // The watchers' CPU from the 201 to the last one's report (the
    // verifiers' work per change, whatever else the machine runs).
    let cpu = cpu_used().saturating_sub(cpu0);
    let _ = stop_tx.send(true);
    for t in threads {
        let _ = t.join();
    }
    idle_rt.shutdown_timeout(Duration::from_secs(5));
    assert_eq!(
        latencies.len(),
        watchers,
        "only {} of {watchers} watchers saw the revocation within 60 s",
        latencies.len()
    );
    latencies.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let (p50, p99, max) = (
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
        *latencies.last().unwrap(),
    );
    println!("revocation latency, admin's 201 → each watcher's decision untrusted");
    let cpu_per_watcher = ms(cpu) / watchers as f64;
    println!("watchers  idle waiters  servers  p50 ms  p99 ms  max ms  server RSS MiB  CPU ms per watcher");
    println!(
        "{watchers:>8}  {idle:>12}  {servers:>7}  {:>6.0}  {:>6.0}  {:>6.0}  {rss:>14.1}  {cpu_per_watcher:>18.2}",
        ms(p50),
        ms(p99),
        ms(max)
    );
    println!(
        "{}",
        json!({
            "bench": "revocation-latency",
            "watchers": watchers,
            "idle": idle,
            "servers": servers,
            "store": if postgres { "postgres" } else { "sqlite" },
            "p50_ms": (ms(p50) * 10.0).round() / 10.0,
            "p99_ms": (ms(p99) * 10.0).round() / 10.0,
            "max_ms": (ms(max) * 10.0).round() / 10.0,
            "server_rss_mib": (rss * 10.0).round() / 10.0,
            "cpu_ms_per_watcher": (cpu_per_watcher * 100.0).round() / 100.0,
        })
    );
}
