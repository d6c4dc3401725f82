//! CI delegations issued per second, and their latency, with 1, 16 and 64
//! concurrent clients.
//!
//! `cargo bench -p keyshare-server --bench ci_delegations [-- --namespaces
//! 100 --clients 1,16,64 --requests 400 --batch-wait-ms 0]` (or
//! `bench/ci-delegations`). It:
//!
//! 1. creates a repository in a temporary directory (SQLite on disk,
//!    `synchronous=FULL`, in-memory Ed25519 online keys) with
//!    `--namespaces` namespaces, in process, 500 per publish (untimed);
//! 2. serves it with `http::run` on a loopback port with `[ci]` enabled (rate
//!    limit lifted) and one CI token covering every namespace;
//! 3. for each client count, runs `--requests` delegations spread over the
//!    clients, each client a thread with one keep-alive connection doing
//!    `POST /api/v1/ci/nonce` then `POST /api/v1/ci/delegations` for a
//!    fresh Ed25519 key (made, with its PEM, before the clock starts) in
//!    the next namespace (round robin), and reports
//!    delegations/s, p50/p99/max latency of the pair, and publishes per
//!    delegation (group commit).
//!
//! Before the clock starts, the seeding's write-ahead log is checkpointed
//! (as a server's store is at start) and every client makes one delegation
//! (warm-up: it opens the connection, and the server's first burst pays
//! its one-time costs: the token's namespaces read, blocking threads
//! made). The slowest warm-up delegation is reported apart (`first ms`),
//! so the cold start stays visible without being most of a short run's
//! slowest 1 %.
//!
//! The credential is a CI token: an OIDC ID token adds one RS256 or ES256
//! verification per request. Output: a table, then one JSON line per
//! client count.

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

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use time::OffsetDateTime;

use common::{arg, checkpoint, percentile, publisher, Served};
use keyshare_policy::keys::Scheme;
use keyshare_policy::pattern::ArtifactPattern;
use keyshare_policy::sign::{InMemorySigner, Signer};
use keyshare_policy::trust::{NamespaceEntry, NamespaceName};
use keyshare_server::ci::{proof_message, CiConfig, CiService};
use keyshare_server::http::AppState;
use keyshare_server::publisher::{Batched, Change};
use keyshare_server::store::TokenKind;

fn main() {
    let namespaces: usize = arg("--namespaces").map_or(100, |v| v.parse().unwrap());
    let clients: Vec<usize> = arg("--clients")
        .unwrap_or_else(|| "1,16,64".into())
        .split(',')
        .map(|c| c.trim().parse().unwrap())
        .collect();
    let requests: usize = arg("--requests").map_or(400, |v| v.parse().unwrap());
    let batch_wait_ms: u64 = arg("--batch-wait-ms").map_or(0, |v| v.parse().unwrap());
    let batch_max: Option<usize> = arg("--batch-max").map(|v| v.parse().unwrap());

    let dir = tempfile::tempdir().unwrap();
    let now = OffsetDateTime::now_utc();
    let publisher = Arc::new(publisher(dir.path(), now));
    let setup = Instant::now();
    let names: Vec<String> = (0..namespaces).map(|i| format!("ns-{i:05}")).collect();
    // Created in batches of 500 (one publish each, `Publisher::apply_batch`).
    for chunk in names.chunks(500) {
        let batch = chunk
            .iter()
            .map(|name| Batched {
                actor: "bench".into(),
                change: Change::CreateNamespace {
                    entry: NamespaceEntry {
                        name: NamespaceName::parse(name).unwrap(),
                        scopes: vec![ArtifactPattern::parse(&format!(
                            "registry.acme.io/{name}/**"
                        ))
                        .unwrap()],
                        maintainers: vec![],
                    },
                    threshold: NonZeroU32::MIN,
                    allow_overlap: false,
                },
                context: Value::Null,
            })
            .collect();
        for result in publisher
            .apply_batch(batch, OffsetDateTime::now_utc())
            .unwrap()
        {
            result.unwrap();
        }
    }
    checkpoint(dir.path());
    eprintln!(
        "bench/ci-delegations: {namespaces} namespaces created in {:.1} s",
        setup.elapsed().as_secs_f64()
    );
    let token = publisher
        .create_token(
            "bench",
            TokenKind::Ci(
                names
                    .iter()
                    .map(|n| NamespaceName::parse(n).unwrap())
                    .collect(),
            ),
            None,
            now,
        )
        .unwrap()
        .secret
        .expose()
        .to_owned();
    let mut state = AppState::new(publisher.clone());
    let config = CiConfig {
        rate_limit: u32::MAX,
        batch_wait_ms,
        ..CiConfig::default()
    };
    let config = CiConfig {
        batch_max: batch_max.unwrap_or(config.batch_max),
        ..config
    };
    state.ci = Some(Arc::new(
        CiService::new(
            config,
            dir.path(),
            None,
            publisher.clone(),
            state.clock.clone(),
        )
        .unwrap(),
    ));
    let served = Served::start(state);
    let base = served.base.clone();

    println!(
        "{:>8} {:>8} {:>14} {:>10} {:>10} {:>10} {:>10} {:>18} {:>16}",
        "clients",
        "requests",
        "delegations/s",
        "p50 ms",
        "p99 ms",
        "max ms",
        "first ms",
        "publishes/deleg.",
        "publishing %"
    );
    let next = Arc::new(AtomicUsize::new(0));
    let mut lines = Vec::new();
    for &c in &clients {
        let barrier = Arc::new(Barrier::new(c + 1));
        let per_client = requests.div_ceil(c);
        let threads: Vec<_> = (0..c)
            .map(|_| {
                let (base, token, names, next, barrier) = (
                    base.clone(),
                    token.clone(),
                    names.clone(),
                    next.clone(),
                    barrier.clone(),
                );
                std::thread::spawn(move || {
                    let agent = ureq::AgentBuilder::new().build();
                    // Keys (and their PEM) are made before the clock starts,
                    // one more for the warm-up.
                    let mut keys: Vec<(InMemorySigner, String)> = (0..=per_client)
                        .map(|_| {
                            let key = InMemorySigner::generate(Scheme::Ed25519).unwrap();
                            let pem = key
                                .public_key()
                                .openssl_key(key.key_id())
                                .unwrap()
                                .public_key_to_pem()
                                .unwrap();
                            (key, String::from_utf8(pem).unwrap())
                        })
                        .collect();
                    let delegate = |(key, pem): (InMemorySigner, String)| {
                        let ns = &names[next.fetch_add(1, Ordering::Relaxed) % names.len()];
                        let started = Instant::now();
                        let nonce: Value = agent
                            .post(&format!("{base}/api/v1/ci/nonce"))
                            .call()
                            .unwrap()
                            .into_json()
                            .unwrap();
                        let nonce = nonce["nonce"].as_str().unwrap();
                        let proof = key
                            .sign(&proof_message(nonce, ns, key.key_id().as_str()))
                            .unwrap();
                        agent
                            .post(&format!("{base}/api/v1/ci/delegations"))
                            .set("Authorization", &format!("Bearer {token}"))
                            .send_json(json!({
                                "namespace": ns,
                                "public_key_pem": pem,
                                "nonce": nonce,
                                "proof": hex::encode(proof),
                            }))
                            .unwrap();
                        started.elapsed()
                    };
                    // Every client is ready before the warm-up, so that it
                    // measures the server's first burst, not the clients'
                    // key making.
                    barrier.wait();
                    let first = delegate(keys.pop().unwrap());
                    barrier.wait();
                    let latencies: Vec<Duration> = keys.into_iter().map(delegate).collect();
                    (first, latencies)
                })
            })
            .collect();
        barrier.wait();
        // Every client has made its warm-up delegation.
        barrier.wait();
        let before = publisher.metrics();
        let started = Instant::now();
        let mut first = Duration::ZERO;
        let mut latencies: Vec<Duration> = Vec::with_capacity(per_client * c);
        for thread in threads {
            let (warm_up, timed) = thread.join().unwrap();
            first = first.max(warm_up);
            latencies.extend(timed);
        }
        let elapsed = started.elapsed().as_secs_f64();
        latencies.sort();
        let n = latencies.len();
        let after = publisher.metrics();
        let publishes = after.publishes - before.publishes;
        // How much of the run the publishing thread spent publishing.
        let busy = (after.publish_seconds_total - before.publish_seconds_total) / elapsed;
        let rate = n as f64 / elapsed;
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let (p50, p99, max) = (
            ms(percentile(&latencies, 0.50)),
            ms(percentile(&latencies, 0.99)),
            ms(latencies.last().copied().unwrap_or_default()),
        );
        let first = ms(first);
        let per = publishes as f64 / n as f64;
        println!(
            "{c:>8} {n:>8} {rate:>14.1} {p50:>10.2} {p99:>10.2} {max:>10.2} {first:>10.2} {per:>18.3} {:>16.0}",
            busy * 100.0
        );
        lines.push(json!({
            "bench": "ci-delegations", "namespaces": namespaces, "clients": c,
            "requests": n, "delegations_per_second": rate, "p50_ms": p50, "p99_ms": p99,
            "max_ms": max, "warm_up_max_ms": first, "publishes": publishes,
            "batch_wait_ms": batch_wait_ms, "publishing_busy": busy,
        }));
    }
    for l in lines {
        println!("{l}");
    }
    served.stop();
}
