//! RFC 3161 timestamp tokens issued per second, and their latency, with 1
//! and 16 concurrent clients over HTTP; and, as a peer figure, the same
//! number of replies made by `openssl ts -reply` with the same key and
//! certificate.
//!
//! `cargo bench -p keyshare-server --bench timestamps [-- --clients 1,16
//! --requests 2000 --openssl 2000]` (or `bench/timestamps`). It:
//!
//! 1. creates a repository in a temporary directory (SQLite on disk,
//!    `synchronous=FULL`) and the TSA as `init` makes it (ECDSA P-256 key
//!    file, TSA CA, TSA certificate), rate limit off;
//! 2. serves it with `http::run` on a loopback port;
//! 3. for each client count, sends `--requests` `TimeStampReq`s (SHA-256
//!    imprint, a nonce, certReq true; made by `openssl ts -query` before the
//!    clock starts) spread over the clients, each a thread with one
//!    keep-alive connection, and reports tokens/s and p50/p99/max latency;
//!    every token is signed and recorded in the store (one transaction,
//!    fsync'd, each);
//! 4. runs `openssl ts -reply` `--openssl` times (default: `--requests`;
//!    one process per reply,
//!    as a shell script would) with the same key, certificate and a
//!    request, and prints the rate and the ratio (0 skips it).
//!
//! Output: a table, then one JSON line per run.

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

use std::io::Read;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use serde_json::json;
use time::OffsetDateTime;

use common::{arg, percentile, publisher, Served};
use keyshare_server::config::TsaConfig;
use keyshare_server::http::AppState;
use keyshare_server::store::Store;
use keyshare_server::tsa::{setup, Tsa};

fn openssl(args: &[&str]) {
    let out = Command::new("openssl").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `openssl ts -query` requests (each with its own nonce).
fn queries(dir: &Path, n: usize) -> Vec<Vec<u8>> {
    let data = dir.join("artifact.bin");
    std::fs::write(&data, b"a release artifact\n").unwrap();
    (0..n.min(64))
        .map(|i| {
            let out = dir.join(format!("q{i}.tsq"));
            openssl(&[
                "ts",
                "-query",
                "-data",
                data.to_str().unwrap(),
                "-sha256",
                "-cert",
                "-out",
                out.to_str().unwrap(),
            ]);
            std::fs::read(out).unwrap()
        })
        .collect()
}

/// `openssl ts -reply` `n` times with the TSA's key and certificate;
/// returns replies per second.
fn openssl_replies(dir: &Path, n: usize, policy: &str) -> f64 {
    let conf = dir.join("tsa.cnf");
    let serial = dir.join("tsaserial");
    std::fs::write(&serial, "01\n").unwrap();
    let keys = dir.join("keys");
    let tsa = dir.join("tsa");
    std::fs::write(
        &conf,
        format!(
            "[tsa]\ndefault_tsa = k\n[k]\nserial = {}\nsigner_cert = {}\ncerts = {}\n\
             signer_key = {}\nsigner_digest = sha256\ndefault_policy = {policy}\n\
             digests = sha256, sha384, sha512\naccuracy = secs:1\ness_cert_id_alg = sha256\n",
            serial.display(),
            tsa.join("tsa.pem").display(),
            tsa.join("chain.pem").display(),
            keys.join("tsa.pem").display(),
        ),
    )
    .unwrap();
    let query = dir.join("q0.tsq");
    let out = dir.join("openssl.tsr");
    let started = Instant::now();
    for _ in 0..n {
        openssl(&[
            "ts",
            "-reply",
            "-config",
            conf.to_str().unwrap(),
            "-queryfile",
            query.to_str().unwrap(),
            "-out",
            out.to_str().unwrap(),
        ]);
    }
    n as f64 / started.elapsed().as_secs_f64()
}

fn main() {
    let clients: Vec<usize> = arg("--clients")
        .unwrap_or_else(|| "1,16".into())
        .split(',')
        .map(|c| c.trim().parse().unwrap())
        .collect();
    let requests: usize = arg("--requests").map_or(2000, |v| v.parse().unwrap());
    // As many openssl replies as tokens per run, unless told otherwise.
    let openssl_runs: usize = arg("--openssl").map_or(requests, |v| v.parse().unwrap());

    let dir = tempfile::tempdir().unwrap();
    let now = OffsetDateTime::now_utc();
    let publisher = Arc::new(publisher(dir.path(), now));
    let config = TsaConfig {
        rate_limit: 0,
        ..TsaConfig::default()
    };
    let (material, _) = setup::prepare(&config, None, dir.path(), now, true).unwrap();
    let tsa_store = Store::open(dir.path().join("keyshare.db")).unwrap();
    let mut state = AppState::new(publisher.clone());
    state.tsa = Some(Arc::new(Tsa::new(material, &config, tsa_store).unwrap()));
    let queries = Arc::new(queries(dir.path(), requests));

    let served = Served::start(state);
    let url = format!("{}/api/v1/timestamp", served.base);

    println!(
        "{:>8} {:>8} {:>12} {:>10} {:>10} {:>10}",
        "clients", "requests", "tokens/s", "p50 ms", "p99 ms", "max ms"
    );
    let mut lines = Vec::new();
    let mut best = 0.0f64;
    for &c in &clients {
        let barrier = Arc::new(Barrier::new(c + 1));
        let per_client = requests.div_ceil(c);
        let threads: Vec<_> = (0..c)
            .map(|t| {
                let (url, queries, barrier) = (url.clone(), queries.clone(), barrier.clone());
                std::thread::spawn(move || {
                    let agent = ureq::AgentBuilder::new().build();
                    barrier.wait();
                    let mut latencies = Vec::with_capacity(per_client);
                    for i in 0..per_client {
                        let q = &queries[(t * per_client + i) % queries.len()];
                        let started = Instant::now();
                        let answer = agent
                            .post(&url)
                            .set("Content-Type", "application/timestamp-query")
                            .send_bytes(q)
                            .unwrap();
                        let mut body = Vec::new();
                        answer.into_reader().read_to_end(&mut body).unwrap();
                        latencies.push(started.elapsed());
                        // status granted: 30 .. 30 03 02 01 00
                        assert!(body.len() > 500, "not a token: {} bytes", body.len());
                    }
                    latencies
                })
            })
            .collect();
        barrier.wait();
        let started = Instant::now();
        let mut latencies: Vec<Duration> = threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        let elapsed = started.elapsed().as_secs_f64();
        latencies.sort();
        let n = latencies.len();
        let rate = n as f64 / elapsed;
        best = best.max(rate);
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let (p50, p99, max) = (
            ms(percentile(&latencies, 0.50)),
            ms(percentile(&latencies, 0.99)),
            ms(latencies.last().copied().unwrap_or_default()),
        );
        println!("{c:>8} {n:>8} {rate:>12.1} {p50:>10.2} {p99:>10.2} {max:>10.2}");
        lines.push(json!({
            "bench": "timestamps", "clients": c, "requests": n, "tokens_per_second": rate,
            "p50_ms": p50, "p99_ms": p99, "max_ms": max,
        }));
    }
    let recorded = publisher.read(|s| s.timestamp_count()).unwrap();
    eprintln!("bench/timestamps: {recorded} tokens recorded in the store");
    if openssl_runs > 0 {
        let rate = openssl_replies(dir.path(), openssl_runs, &config.policy);
        println!(
            "openssl ts -reply: {openssl_runs} replies, {rate:.1} replies/s (one process each); \
             keyshare's best rate is {:.1}x that",
            best / rate
        );
        lines.push(json!({
            "bench": "timestamps-openssl-reply", "replies": openssl_runs,
            "replies_per_second": rate, "keyshare_ratio": best / rate,
        }));
    }
    for l in lines {
        println!("{l}");
    }
    served.stop();
}
