//! A verifier's refresh plus 1,000 decisions over HTTP, side by side with
//! python-tuf's `ngclient.Updater` doing the same refresh and lookups.
//!
//! `cargo bench -p keyshare-client --bench verify [-- --namespaces N
//! --decides D --rounds R]` (or `bench/verify`, which also sets up
//! python-tuf). Builds a repository with N namespaces (default 10,000),
//! each listing one Ed25519 key, with the server's own publisher
//! (`keyshare_server::publisher::Publisher`, batches of 500 namespaces per
//! publish, so the layout is exactly what a server publishes), writes its current files
//! as `keyshare-server publish --to` does, serves that tree with a plain
//! static file server (`--server nginx`, the default: nginx with 2 workers
//! and keep-alive, as `bench/server-read` runs it; `--server python`:
//! Python's `http.server`, where keyshare keeps 4 requests in flight by
//! default since its listen backlog of 5 drops the connections of a client
//! that keeps more), and times, per round, from an
//! empty cache (both clients against the same server in the same run):
//!
//! * keyshare: `init` (root file) + `refresh` (TUF workflow, every
//!   delegated role, every trust document downloaded and verified, cache
//!   written), then D `decide` calls on the loaded state
//!   (`Verifier::decide_in`, artifacts of random namespaces, signed by the
//!   namespace's key);
//! * python-tuf (`bench/python_tuf_updater.py`): `Updater.refresh()`, the
//!   index documents and every `namespaces/<ns>/trust.json` through
//!   `get_targetinfo` + `download_target`, then D `get_targetinfo` lookups.
//!
//! Prints both, the ratio python-tuf/keyshare, and one JSON line. Median
//! of the rounds (default 3; `--python-rounds 0` runs keyshare alone, for
//! profiling). `--concurrency N`: keyshare's requests in
//! flight (default: the verifier's default with nginx, 4 with Python).

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

use std::net::{TcpListener, TcpStream};
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use time::OffsetDateTime;

use keyshare_client::blocking::Verifier;
use keyshare_client::{Options, RootPin};
use keyshare_policy::keys::{Key, Scheme};
use keyshare_policy::metadata::KeyId;
use keyshare_policy::pattern::ArtifactPattern;
use keyshare_policy::repo::SharedSigner;
use keyshare_policy::sign::InMemorySigner;
use keyshare_policy::trust::{NamespaceEntry, NamespaceName, SignerRef, TrustedKey};
use keyshare_server::publisher::{Batched, Change, OnlineKeys, Publisher};
use keyshare_server::store::Store;

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map_or(default, |v| v.parse().expect("a number"))
}

fn arg_str(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map_or_else(|| default.to_owned(), Clone::clone)
}

fn signer() -> SharedSigner {
    Arc::new(InMemorySigner::generate(Scheme::Ed25519).unwrap())
}

fn ns_name(i: usize) -> String {
    format!("ns-{i:05}")
}

/// Builds the repository and writes its files under `out`.
fn build(namespaces: usize, data: &Path, out: &Path) -> Vec<u8> {
    let now = OffsetDateTime::now_utc();
    let store = Store::open(data.join("keyshare.db")).unwrap();
    let keys = OnlineKeys {
        targets: signer(),
        snapshot: signer(),
        timestamp: signer(),
        namespaces: signer(),
    };
    let publisher = Publisher::init(
        store,
        keys,
        &[signer()],
        1,
        keyshare_policy::repo::Options::default(),
        now,
    )
    .unwrap();
    let started = Instant::now();
    // Loaded in batches (`Publisher::apply_batch`, one publish per batch
    // of namespaces and their keys): the same layout as one publish per
    // change, built in a fraction of the time.
    let mut batch = Vec::new();
    let flush = |batch: &mut Vec<Batched>| {
        for result in publisher.apply_batch(std::mem::take(batch), now).unwrap() {
            result.unwrap();
        }
    };
    for i in 0..namespaces {
        let name = NamespaceName::parse(&ns_name(i)).unwrap();
        let entry = NamespaceEntry {
            name: name.clone(),
            scopes: vec![
                ArtifactPattern::parse(&format!("registry.acme.io/{}/**", ns_name(i))).unwrap(),
            ],
            maintainers: vec![],
        };
        batch.push(Batched {
            actor: "bench".into(),
            change: Change::CreateNamespace {
                entry,
                threshold: NonZeroU32::MIN,
                allow_overlap: false,
            },
            context: serde_json::Value::Null,
        });
        let private = openssl::pkey::PKey::generate_ed25519().unwrap();
        let public =
            openssl::pkey::PKey::public_key_from_der(&private.public_key_to_der().unwrap())
                .unwrap();
        let key = Key::from_public(Scheme::Ed25519, &public).unwrap();
        batch.push(Batched {
            actor: "bench".into(),
            change: Change::AddKey {
                namespace: name,
                key: TrustedKey {
                    id: KeyId::new(format!("key-{i}")),
                    key,
                    not_before: None,
                    not_after: None,
                    ephemeral: false,
                    description: None,
                    principal: None,
                    layout_root: false,
                },
            },
            context: serde_json::Value::Null,
        });
        if (i + 1) % 500 == 0 {
            flush(&mut batch);
            eprintln!(
                "built {} namespaces in {:.1} s",
                i + 1,
                started.elapsed().as_secs_f64()
            );
        }
    }
    flush(&mut batch);
    // What `keyshare-server publish --to` writes: the current files,
    // timestamp last.
    let mut files = publisher.current_files().unwrap();
    files.sort_by_key(|f| !f.immutable);
    for f in &files {
        let path = out.join(&f.path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &f.bytes).unwrap();
    }
    std::fs::read(out.join("metadata/1.root.json")).unwrap()
}

/// A static file server on a free loopback port; killed on drop.
struct Static {
    child: Child,
    url: String,
    name: &'static str,
}

impl Drop for Static {
    fn drop(&mut self) {
        // nginx's master stops its workers on SIGTERM; SIGKILL would leave
        // them running, orphaned, on the port.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_for(child: &mut Child, port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited: {status}");
        }
        assert!(Instant::now() < deadline, "{what} did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `python -m http.server` serving `dir` (as before nginx was the default:
/// its default HTTP/1.0; with `--protocol HTTP/1.1` each keep-alive answer
/// waited ~40 ms for a delayed ACK, headers and body being separate sends).
fn serve_python(python: &Path, dir: &Path) -> Static {
    let port = free_port();
    let mut child = Command::new(python)
        .args([
            "-m",
            "http.server",
            "--bind",
            "127.0.0.1",
            &port.to_string(),
            "--directory",
        ])
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(&mut child, port, "http.server");
    Static {
        child,
        url: format!("http://127.0.0.1:{port}"),
        name: "python http.server",
    }
}

/// nginx serving `dir`, configured as `bench/server-read` does (2
/// workers, keep-alive, no access log, sendfile), with its files in `work`.
fn serve_nginx(dir: &Path, work: &Path) -> Static {
    let nginx = ["nginx", "/usr/sbin/nginx"]
        .into_iter()
        .find(|n| Command::new(n).arg("-v").output().is_ok())
        .expect("nginx not found: bench/verify installs nginx-light, or give --server python");
    let port = free_port();
    std::fs::create_dir_all(work).unwrap();
    // As root, nginx's workers would run as `nobody`, who cannot read the
    // temporary directory: keep them root (what bench/server-read does).
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    let w = work.display();
    let conf = format!(
        "daemon off;\n\
         worker_processes 2;\n\
         {user}\
         pid {w}/nginx.pid;\n\
         error_log {w}/error.log warn;\n\
         events {{ worker_connections 1024; }}\n\
         http {{\n\
         access_log off;\n\
         sendfile on;\n\
         tcp_nopush on;\n\
         keepalive_requests 1000000;\n\
         types {{ application/json json; application/x-pem-file pem; }}\n\
         default_type application/octet-stream;\n\
         client_body_temp_path {w}/body;\n\
         proxy_temp_path {w}/proxy;\n\
         fastcgi_temp_path {w}/fastcgi;\n\
         uwsgi_temp_path {w}/uwsgi;\n\
         scgi_temp_path {w}/scgi;\n\
         server {{\n\
         listen 127.0.0.1:{port};\n\
         root {dir};\n\
         location = /metadata/timestamp.json {{ add_header Cache-Control no-cache; }}\n\
         }}\n\
         }}\n",
        user = if root { "user root;\n" } else { "" },
        dir = dir.display(),
    );
    let conf_path = work.join("nginx.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let mut child = Command::new(nginx)
        .arg("-p")
        .arg(work)
        .arg("-c")
        .arg(&conf_path)
        .arg("-e")
        .arg(work.join("error.log"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(&mut child, port, "nginx");
    Static {
        child,
        url: format!("http://127.0.0.1:{port}"),
        name: "nginx",
    }
}

fn python() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("KEYSHARE_PYTHON").map(PathBuf::from),
        Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/pyenv/bin/python")),
    ];
    candidates.into_iter().flatten().find(|p| {
        Command::new(p)
            .args(["-c", "import tuf"])
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// A small deterministic generator for the artifacts decided.
fn picks(n: usize, count: usize) -> Vec<usize> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..count)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % n as u64) as usize
        })
        .collect()
}

fn main() {
    let namespaces = arg("--namespaces", 10_000);
    let decides = arg("--decides", 1_000);
    let rounds = arg("--rounds", 3).max(1);
    // 0: keyshare only (for profiling the verifier).
    let python_rounds = arg("--python-rounds", rounds);
    let server_kind = arg_str("--server", "nginx");
    // Python's http.server takes 4 requests in flight (a listen backlog of
    // 5); nginx takes the verifier's default.
    let default_concurrency = match server_kind.as_str() {
        "python" => 4,
        _ => Options::new("").concurrency,
    };
    let concurrency = arg("--concurrency", default_concurrency);
    let Some(python) = python() else {
        eprintln!("python-tuf not found: set KEYSHARE_PYTHON or run scripts/test once");
        std::process::exit(1);
    };
    let tmp = tempfile::tempdir().unwrap();
    let (data, tree) = (tmp.path().join("data"), tmp.path().join("tree"));
    std::fs::create_dir_all(&data).unwrap();
    eprintln!("building a repository with {namespaces} namespaces (500 namespaces per publish)...");
    let started = Instant::now();
    let root = build(namespaces, &data, &tree);
    eprintln!("built in {:.1} s", started.elapsed().as_secs_f64());
    let server = match server_kind.as_str() {
        "nginx" => serve_nginx(&tree, &tmp.path().join("nginx")),
        "python" => serve_python(&python, &tree),
        other => panic!("--server {other}: nginx or python"),
    };
    eprintln!(
        "serving with {} at {}, keyshare with {concurrency} requests in flight",
        server.name, server.url
    );
    let picked = picks(namespaces, decides);

    let mut ks_refresh = Vec::new();
    let mut ks_decide = Vec::new();
    for round in 0..rounds {
        let cache = tmp.path().join(format!("ks-cache-{round}"));
        let mut options = Options::new(&cache);
        options.concurrency = concurrency;
        let verifier = Verifier::new(options).unwrap();
        let t0 = Instant::now();
        verifier
            .init(&server.url, RootPin::File(root.clone()), false)
            .unwrap();
        let state = verifier.refresh().unwrap();
        let t1 = Instant::now();
        let now = OffsetDateTime::now_utc();
        let mut trusted = 0;
        for &i in &picked {
            let artifact = format!("registry.acme.io/{}/app", ns_name(i));
            let signer = [SignerRef::KeyId(KeyId::new(format!("key-{i}")))];
            if verifier
                .decide_in(&state, &artifact, &signer, now)
                .unwrap()
                .is_trusted()
            {
                trusted += 1;
            }
        }
        let t2 = Instant::now();
        assert_eq!(trusted, decides, "every decision should be trusted");
        assert_eq!(state.trust_set.namespaces().count(), namespaces);
        eprintln!(
            "keyshare round {round}: refresh {:.3} s",
            (t1 - t0).as_secs_f64()
        );
        ks_refresh.push((t1 - t0).as_secs_f64());
        ks_decide.push((t2 - t1).as_secs_f64());
    }

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/python_tuf_updater.py");
    let mut py_refresh = Vec::new();
    let mut py_lookup = Vec::new();
    for round in 0..python_rounds {
        let work = tmp.path().join(format!("py-{round}"));
        let out = Command::new(&python)
            .arg(&script)
            .arg(&server.url)
            .arg(tree.join("metadata/1.root.json"))
            .arg(&work)
            .args(["--lookups", &decides.to_string()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "python-tuf failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let line: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(line["trust_documents"].as_u64(), Some(namespaces as u64));
        py_refresh.push(line["refresh_seconds"].as_f64().unwrap());
        py_lookup.push(line["lookup_seconds"].as_f64().unwrap());
    }
    let server_name = server.name;
    drop(server);

    let (kr, kd) = (median(ks_refresh), median(ks_decide));
    if py_refresh.is_empty() {
        println!(
            "{namespaces} namespaces over HTTP ({server_name}, keyshare {concurrency} requests in flight), median of {rounds}:\n  \
             refresh + every trust document: keyshare {kr:.2} s; {decides} decisions: {:.1} ms (python-tuf not run)",
            kd * 1e3
        );
        return;
    }
    let (pr, pl) = (median(py_refresh), median(py_lookup));
    println!(
        "{namespaces} namespaces over HTTP ({server_name}, keyshare {concurrency} requests in flight), median of {rounds}:\n  \
         refresh + every trust document: keyshare {:.2} s, python-tuf {:.2} s (python-tuf/keyshare = {:.2}x)\n  \
         {decides} decisions: keyshare {:.1} ms ({:.1} µs each), python-tuf get_targetinfo {:.1} ms\n  \
         total: keyshare {:.2} s, python-tuf {:.2} s (python-tuf/keyshare = {:.2}x)",
        kr,
        pr,
        pr / kr,
        kd * 1e3,
        kd * 1e6 / decides as f64,
        pl * 1e3,
        kr + kd,
        pr + pl,
        (pr + pl) / (kr + kd)
    );
    println!(
        "{}",
        serde_json::json!({
            "bench": "verify",
            "server": server_name,
            "concurrency": concurrency,
            "namespaces": namespaces,
            "decides": decides,
            "rounds": rounds,
            "keyshare_refresh_seconds": kr,
            "keyshare_decide_seconds": kd,
            "python_tuf_refresh_seconds": pr,
            "python_tuf_lookup_seconds": pl,
            "ratio_total": (pr + pl) / (kr + kd),
        })
    );
}
