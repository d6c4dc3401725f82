#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

//! Two `keyshare-server serve` processes on one PostgreSQL database (the
//! test binary's throwaway cluster), each with its own data directory and
//! the same online keys: writes through both publish one repository (no
//! timestamp version twice, no gap), each serves what the other published,
//! python-tuf and policy's TUF client refresh from either; a server killed
//! (SIGKILL) in the middle of a burst leaves every answered write published
//! once and every other one absent or fully published; a server that loses
//! its database answers 503 to writes and goes on serving reads.
//!
//! Skipped (a line on stderr) only where PostgreSQL is missing and
//! `KEYSHARE_TEST_POSTGRES=skip` allows it.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use keyshare_policy::client::{Config, Updater};
use keyshare_policy::keys::Scheme;
use keyshare_policy::sign::{InMemorySigner, Signer};
use keyshare_server::ci::proof_message;
use keyshare_server::store::{AuditRecord, PostgresUrl, Store};
use keyshare_testkit::postgres::Cluster;

use super::server::{http, tuf_key, updater, Server, DEADLINE, ORG_TARGETS};
use crate::bin_common::{keyshare, parse_init, run_within};

/// Two servers on one fresh database.
struct Pair {
    _tmp: tempfile::TempDir,
    servers: Vec<Server>,
    token: String,
    root: PathBuf,
    url: String,
    name: String,
}

fn start(dir: &Path, url: &str) -> Server {
    Server::start_with(dir, &[("KEYSHARE_STORE_URL", url)])
}

impl Pair {
    /// `init` on the database from data directory `a`; `b` a copy of it
    /// (the same online keys, CI secret and configuration); `count` servers.
    fn new(count: usize) -> Option<Self> {
        Self::with_config(count, "")
    }

    /// [`Self::new`] with `config` appended to `keyshare.toml` (every
    /// server's).
    fn with_config(count: usize, config: &str) -> Option<Self> {
        let cluster = Cluster::shared()?;
        let (name, url) = cluster.database();
        let tmp = tempfile::tempdir().unwrap();
        let a = tmp.path().join("a");
        let mut init = keyshare(&["init", "--data-dir", a.to_str().unwrap()]);
        init.env("KEYSHARE_STORE_URL", &url);
        let init = parse_init(&run_within(init, DEADLINE * 4));
        let toml = a.join("keyshare.toml");
        let mut text = fs::read_to_string(&toml).unwrap();
        text.push_str(config);
        fs::write(&toml, text).unwrap();
        let mut servers = vec![start(&a, &url)];
        for i in 1..count {
            let dir = tmp.path().join(format!("s{i}"));
            keyshare_testkit::copy_dir(&a, &dir);
            servers.push(start(&dir, &url));
        }
        let root = tmp.path().join("1.root.json");
        let (status, bytes) = servers[0].request("GET", "/metadata/1.root.json", None, None);
        assert_eq!(status, 200);
        fs::write(&root, bytes).unwrap();
        Some(Self {
            _tmp: tmp,
            servers,
            token: init.token,
            root,
            url,
            name,
        })
    }

    fn store(&self) -> Store {
        Store::open_postgres(&PostgresUrl::parse(&self.url).unwrap()).unwrap()
    }

    /// The versions recorded at `path` (every timestamp, or the snapshots),
    /// oldest first.
    fn recorded(&self, lineage_of: &str) -> Vec<u64> {
        let store = self.store();
        let mut versions: Vec<u64> = if lineage_of == "timestamp" {
            store
                .published_history("metadata/timestamp.json")
                .unwrap()
                .iter()
                .map(|f| f.version.unwrap())
                .collect()
        } else {
            let top: u64 = self.recorded("timestamp").last().copied().unwrap();
            (1..=top + 1)
                .filter(|v| {
                    store
                        .latest_published(&format!("metadata/{v}.snapshot.json"))
                        .unwrap()
                        .is_some()
                })
                .collect()
        };
        versions.dedup();
        versions
    }

    /// Waits until every living server serves the same timestamp, the
    /// store's newest; returns its version.
    fn converge(&self, living: &[&Server]) -> u64 {
        let newest = *self.recorded("timestamp").last().unwrap();
        let started = Instant::now();
        loop {
            let served: Vec<u64> = living.iter().map(|s| s.timestamp_version()).collect();
            if served.iter().all(|v| *v == newest) {
                return newest;
            }
            assert!(
                started.elapsed() < DEADLINE,
                "servers serve {served:?}, the store holds {newest}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// One HTTP request that may fail (a server killed under it): `None` when
/// the connection failed or no complete answer came.
fn try_http(addr: &str, method: &str, path: &str, token: &str, body: &Value) -> Option<u16> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(DEADLINE)).ok()?;
    let body = serde_json::to_vec(body).unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Authorization: Bearer {token}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).ok()?;
    stream.write_all(&body).ok()?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw);
    text.split_whitespace().nth(1)?.parse().ok()
}

/// Creates namespace `name` through `server` (201 expected).
fn create_namespace(server: &Server, token: &str, name: &str) {
    server.json(
        "POST",
        "/api/v1/namespaces",
        Some(token),
        Some(&create_body(name)),
        201,
    );
}

fn create_body(name: &str) -> Value {
    json!({
        "name": name,
        "scopes": [format!("registry.acme.io/{name}/**")],
        "maintainers": ["alice@acme.io"],
    })
}

fn shard_of(name: &str) -> String {
    let name = keyshare_policy::trust::NamespaceName::parse(name).unwrap();
    keyshare_policy::trust::shard_path(keyshare_server::store::namespace_shard(&name))
}

/// The `field` values of `list` (an array of objects) in each of
/// `documents`, target files python-tuf's `Updater` downloads from
/// `server` after refreshing from the pinned root (with the org documents).
fn published_values(
    pair: &Pair,
    server: &Server,
    documents: &BTreeSet<String>,
    list: &str,
    field: &str,
) -> BTreeSet<String> {
    let mut targets: Vec<&str> = documents.iter().map(String::as_str).collect();
    targets.extend(ORG_TARGETS);
    let got = updater(&server.base, &pair.root, &targets)
        .unwrap_or_else(|e| panic!("python-tuf from {}: {e}", server.base));
    let mut found = BTreeSet::new();
    for document in documents {
        let doc: Value = serde_json::from_str(&got[document]).unwrap();
        for item in doc[list].as_array().unwrap() {
            found.insert(item[field].as_str().unwrap().to_owned());
        }
    }
    found
}

/// The namespaces python-tuf finds published by `server`, from the index
/// shard of every name in `names` (each must be published).
fn published_namespaces(
    pair: &Pair,
    server: &Server,
    names: &BTreeSet<String>,
) -> BTreeSet<String> {
    let shards = names.iter().map(|n| shard_of(n)).collect();
    published_values(pair, server, &shards, "namespaces", "name")
}

/// policy's TUF client, from the pinned root, over HTTP from `server`: the
/// timestamp and snapshot versions it trusts.
fn policy_refresh(pair: &Pair, server: &Server) -> (u64, u64) {
    let root = fs::read(&pair.root).unwrap();
    let mut updater =
        Updater::new(&root, time::OffsetDateTime::now_utc(), Config::default()).unwrap();
    updater
        .refresh_with(|request| {
            let (status, bytes) = server.request(
                "GET",
                &format!("/metadata/{}", request.remote_name()),
                None,
                None,
            );
            (status == 200).then_some(bytes).into()
        })
        .unwrap_or_else(|e| panic!("policy's client from {}: {e}", server.base));
    let trusted = updater.trusted();
    (
        trusted.timestamp().unwrap().version,
        trusted.snapshot().unwrap().version,
    )
}

/// The store's namespaces.
fn stored_namespaces(pair: &Pair) -> BTreeSet<String> {
    pair.store()
        .namespaces()
        .unwrap()
        .into_iter()
        .map(|n| n.entry.name.to_string())
        .collect()
}

/// Every audit record, oldest first.
fn audit(pair: &Pair) -> Vec<AuditRecord> {
    let mut all = Vec::new();
    loop {
        let after = all.last().map_or(0, |r: &AuditRecord| r.seq);
        let records = pair.store().audit_records(after, 500).unwrap();
        if records.is_empty() {
            return all;
        }
        all.extend(records);
    }
}

/// How many `namespace.create` audit records name each namespace.
fn creations(pair: &Pair) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for r in audit(pair)
        .into_iter()
        .filter(|r| r.action == "namespace.create")
    {
        *counts.entry(r.subject).or_default() += 1;
    }
    counts
}

/// One chain: every timestamp version recorded once, 1, 2, 3, ... with no
/// gap, the same for snapshots; the audit chain verifies against the heads
/// the published timestamps carry, on every living server.
fn assert_one_chain(pair: &Pair, living: &[&Server]) {
    let timestamps = pair.recorded("timestamp");
    let top = *timestamps.last().unwrap();
    assert_eq!(timestamps, (1..=top).collect::<Vec<u64>>(), "timestamps");
    let snapshots = pair.recorded("snapshot");
    let snapshot_top = *snapshots.last().unwrap();
    assert_eq!(
        snapshots,
        (1..=snapshot_top).collect::<Vec<u64>>(),
        "snapshots"
    );
    for server in living {
        let verify = server.json("GET", "/api/v1/audit/verify", Some(&pair.token), None, 200);
        assert_eq!(verify["ok"], true, "{verify}");
    }
}

#[test]
fn two_servers_publish_one_repository_without_forking() {
    let Some(pair) = Pair::new(2) else { return };
    let per_thread = 5;
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let addr = pair.servers[t % 2].addr.clone();
            let token = pair.token.clone();
            std::thread::spawn(move || {
                let mut created = Vec::new();
                for i in 0..per_thread {
                    let name = format!("team-{t}-{i}");
                    let status = try_http(
                        &addr,
                        "POST",
                        "/api/v1/namespaces",
                        &token,
                        &create_body(&name),
                    );
                    assert_eq!(status, Some(201), "{name} through {addr}");
                    let key = json!({"key": tuf_key(), "description": "release"});
                    let path = format!("/api/v1/namespaces/{name}/keys");
                    assert_eq!(try_http(&addr, "POST", &path, &token, &key), Some(201));
                    created.push(name);
                }
                created
            })
        })
        .collect();
    let names: BTreeSet<String> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    assert_eq!(names.len(), 4 * per_thread);

    let living: Vec<&Server> = pair.servers.iter().collect();
    let version = pair.converge(&living);
    assert!(version > 2 * names.len() as u64, "one publish a write");
    assert_one_chain(&pair, &living);
    assert_eq!(stored_namespaces(&pair), names);
    for server in &living {
        assert_eq!(published_namespaces(&pair, server, &names), names);
        assert_eq!(policy_refresh(&pair, server).0, version);
    }
    // The same bytes from both: one repository.
    let a = pair.servers[0].request("GET", "/metadata/timestamp.json", None, None);
    let b = pair.servers[1].request("GET", "/metadata/timestamp.json", None, None);
    assert_eq!(a, b);
    assert!(creations(&pair).values().all(|n| *n == 1));
}

/// A CI delegation asked of `server`: a nonce from `nonce_from`, a fresh
/// Ed25519 key proving possession over it, for `ttl_seconds`. Returns the
/// status, the answer and the nonce.
fn delegate(
    nonce_from: &str,
    server: &str,
    ci_token: &str,
    namespace: &str,
    ttl_seconds: u64,
) -> (u16, Value, String) {
    let (status, bytes) = http(nonce_from, "POST", "/api/v1/ci/nonce", None, None);
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&bytes));
    let nonce: Value = serde_json::from_slice(&bytes).unwrap();
    let nonce = nonce["nonce"].as_str().unwrap().to_owned();
    let (status, answer) = delegate_with(server, ci_token, namespace, &nonce, ttl_seconds);
    (status, answer, nonce)
}

/// [`delegate`] with a given nonce.
fn delegate_with(
    server: &str,
    ci_token: &str,
    namespace: &str,
    nonce: &str,
    ttl_seconds: u64,
) -> (u16, Value) {
    let key = InMemorySigner::generate(Scheme::Ed25519).unwrap();
    let pem = key
        .public_key()
        .openssl_key(key.key_id())
        .unwrap()
        .public_key_to_pem()
        .unwrap();
    let proof = key
        .sign(&proof_message(nonce, namespace, key.key_id().as_str()))
        .unwrap();
    let body = json!({
        "namespace": namespace,
        "public_key_pem": String::from_utf8(pem).unwrap(),
        "nonce": nonce,
        "proof": hex::encode(proof),
        "ttl_seconds": ttl_seconds,
    });
    let (status, bytes) = http(
        server,
        "POST",
        "/api/v1/ci/delegations",
        Some(ci_token),
        Some(&body),
    );
    let text = String::from_utf8_lossy(&bytes);
    let answer = serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{e}: {text}"));
    (status, answer)
}

/// The key ids listed in the trust documents of `namespaces` as
/// python-tuf downloads them from `server`.
fn published_keys(pair: &Pair, server: &Server, namespaces: &[&str]) -> BTreeSet<String> {
    let documents = namespaces
        .iter()
        .map(|ns| format!("namespaces/{ns}/trust.json"))
        .collect();
    published_values(pair, server, &documents, "keys", "id")
}

/// CI delegations and admin writes through two servers at once. A nonce
/// one server issued is good at the other, and once used at one it is
/// refused at both; every delegation answered 201 is published once, in
/// one chain python-tuf accepts from either server; both servers' sweepers
/// run on the same expired keys, and each is removed once, without a fork.
#[test]
fn ci_delegations_through_two_servers_are_published_once_and_nonces_hold_across_them() {
    let config = "\n[ci]\nrate_limit = 10000\nsweep_interval = \"1s\"\n";
    let Some(pair) = Pair::with_config(2, config) else {
        return;
    };
    let namespaces = ["team-0", "team-1"];
    for ns in namespaces {
        create_namespace(&pair.servers[0], &pair.token, ns);
    }
    let created = pair.servers[1].json(
        "POST",
        "/api/v1/tokens",
        Some(&pair.token),
        Some(&json!({"kind": "ci", "namespaces": namespaces, "description": "ci"})),
        201,
    );
    let ci_token = created["secret"].as_str().unwrap().to_owned();

    // Four CI jobs (nonce from one server, delegation from either, half
    // of them the other) and two admins, all at once. Every fifth
    // delegation lives 2 s, the others an hour.
    let per_job = 10;
    let jobs: Vec<_> = (0..4)
        .map(|t| {
            let addrs: Vec<String> = pair.servers.iter().map(|s| s.addr.clone()).collect();
            let ci_token = ci_token.clone();
            std::thread::spawn(move || {
                (0..per_job)
                    .map(|i| {
                        let ns = namespaces[(t + i) % 2];
                        let ttl = if i % 5 == 4 { 2 } else { 3600 };
                        let (status, answer, _) =
                            delegate(&addrs[t % 2], &addrs[(t + i) % 2], &ci_token, ns, ttl);
                        assert_eq!(status, 201, "{answer}");
                        let key_id = answer["key_id"].as_str().unwrap().to_owned();
                        (key_id, ttl)
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let admins: Vec<_> = (0..2)
        .map(|t| {
            let addr = pair.servers[t].addr.clone();
            let token = pair.token.clone();
            std::thread::spawn(move || {
                (0..5)
                    .map(|_| {
                        let path = format!("/api/v1/namespaces/{}/keys", namespaces[t]);
                        let key = json!({"key": tuf_key(), "description": "release"});
                        let (status, bytes) = http(&addr, "POST", &path, Some(&token), Some(&key));
                        assert_eq!(status, 201, "{}", String::from_utf8_lossy(&bytes));
                        let answer: Value = serde_json::from_slice(&bytes).unwrap();
                        answer["id"].as_str().unwrap().to_owned()
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let delegated: Vec<(String, u64)> = jobs.into_iter().flat_map(|j| j.join().unwrap()).collect();
    let admin_keys: BTreeSet<String> = admins.into_iter().flat_map(|a| a.join().unwrap()).collect();
    assert_eq!(delegated.len(), 4 * per_job);
    let (short, long): (Vec<_>, Vec<_>) = delegated.into_iter().partition(|(_, ttl)| *ttl == 2);
    let short: BTreeSet<String> = short.into_iter().map(|(k, _)| k).collect();
    let long: BTreeSet<String> = long.into_iter().map(|(k, _)| k).collect();
    assert_eq!((short.len(), long.len()), (8, 32), "every key distinct");

    // A nonce used at one server is used at both.
    let (status, answer, nonce) = delegate(
        &pair.servers[0].addr,
        &pair.servers[0].addr,
        &ci_token,
        "team-0",
        3600,
    );
    assert_eq!(status, 201, "{answer}");
    let mut long = long;
    long.insert(answer["key_id"].as_str().unwrap().to_owned());
    for server in &pair.servers {
        let (status, answer) = delegate_with(&server.addr, &ci_token, "team-1", &nonce, 3600);
        assert_eq!(status, 400, "{answer}");
        assert_eq!(answer["error"]["code"], "bad_nonce", "{answer}");
    }

    // Both sweepers see the short-lived keys expire; each key is removed
    // once, in one sweep, by whichever server took the lock first.
    let started = Instant::now();
    let removed_keys = || -> Vec<String> {
        audit(&pair)
            .into_iter()
            .filter(|r| r.action == "ci.sweep")
            .flat_map(|r| {
                r.details["removed"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|k| k["key_id"].as_str().unwrap().to_owned())
            })
            .collect()
    };
    let removed = loop {
        let removed = removed_keys();
        if removed.len() >= short.len() {
            break removed;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "swept {removed:?} of {short:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    std::thread::sleep(Duration::from_millis(2500)); // more sweeps by both
    let removed_again = removed_keys();
    assert_eq!(removed_again.len(), short.len(), "{removed_again:?}");
    assert_eq!(
        removed_again.into_iter().collect::<BTreeSet<_>>(),
        short,
        "{removed:?}"
    );

    let living: Vec<&Server> = pair.servers.iter().collect();
    pair.converge(&living);
    assert_one_chain(&pair, &living);
    let adds = audit(&pair)
        .into_iter()
        .filter(|r| r.action == "key.add")
        .count();
    assert_eq!(
        adds,
        long.len() + short.len() + admin_keys.len(),
        "one key.add a key"
    );
    for server in &living {
        let published = published_keys(&pair, server, &namespaces);
        let expected: BTreeSet<String> = long.union(&admin_keys).cloned().collect();
        assert_eq!(published, expected, "from {}", server.base);
    }
}

/// A server SIGKILLed in the middle of a burst of writes through both, at
/// several points: every write answered 201 is published exactly once,
/// every other one is absent or fully published, the survivor serves one
/// chain that python-tuf and policy's client accept, and goes on writing.
#[test]
fn a_server_killed_in_a_burst_leaves_every_answered_write_published_once() {
    for delay_ms in [150u64, 900, 2500] {
        let Some(mut pair) = Pair::new(2) else { return };
        let per_thread = 12;
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let addr = pair.servers[t % 2].addr.clone();
                let token = pair.token.clone();
                std::thread::spawn(move || {
                    (0..per_thread)
                        .map(|i| {
                            let name = format!("burst-{t}-{i}");
                            let status = try_http(
                                &addr,
                                "POST",
                                "/api/v1/namespaces",
                                &token,
                                &create_body(&name),
                            );
                            (name, status)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let mut killed = pair.servers.remove(0);
        killed.child.kill().unwrap(); // SIGKILL
        killed.child.wait().unwrap();
        let outcomes: Vec<(String, Option<u16>)> = threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        let answered: BTreeSet<String> = outcomes
            .iter()
            .filter(|(_, s)| *s == Some(201))
            .map(|(n, _)| n.clone())
            .collect();
        for (name, status) in &outcomes {
            assert!(
                matches!(status, None | Some(201)),
                "{name}: {status:?} (delay {delay_ms} ms)"
            );
        }
        let survivor = &pair.servers[0];
        let stored = stored_namespaces(&pair);
        assert!(
            answered.is_subset(&stored),
            "answered but not stored: {:?} (delay {delay_ms} ms)",
            answered.difference(&stored).collect::<Vec<_>>()
        );
        // Every stored namespace is published (a write is all or nothing),
        // and created once.
        pair.converge(&[survivor]);
        assert_eq!(published_namespaces(&pair, survivor, &stored), stored);
        assert!(creations(&pair).values().all(|n| *n == 1));
        assert_eq!(creations(&pair).len(), stored.len());
        assert_one_chain(&pair, &[survivor]);
        let version = survivor.timestamp_version();
        assert_eq!(policy_refresh(&pair, survivor).0, version);
        // The survivor goes on: the next write is the next version.
        create_namespace(survivor, &pair.token, "after-the-kill");
        assert_eq!(survivor.timestamp_version(), version + 1);
        assert_one_chain(&pair, &[survivor]);
        eprintln!(
            "kill after {delay_ms} ms: {} of {} writes answered 201, {} stored",
            answered.len(),
            outcomes.len(),
            stored.len()
        );
        drop(pair);
    }
}

/// A server whose database goes away answers 503 (with `Retry-After`) to
/// writes and changes nothing, serves the repository it holds to readers,
/// and publishes the next version once the database is back.
#[test]
fn a_server_that_loses_its_database_refuses_writes_and_serves_reads() {
    let Some(pair) = Pair::new(1) else { return };
    let server = &pair.servers[0];
    create_namespace(server, &pair.token, "before");
    let version = server.timestamp_version();
    let (_, timestamp) = server.request("GET", "/metadata/timestamp.json", None, None);
    let (_, root) = server.request("GET", "/metadata/1.root.json", None, None);

    let cluster = Cluster::shared().unwrap();
    let mut admin = postgres::Client::connect(&cluster.url("postgres"), postgres::NoTls).unwrap();
    let gone = format!("{}_gone", pair.name);
    let rename = |admin: &mut postgres::Client, from: &str, to: &str| {
        let started = Instant::now();
        loop {
            admin
                .execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
                    &[&from],
                )
                .unwrap();
            match admin.batch_execute(&format!("ALTER DATABASE {from} RENAME TO {to}")) {
                Ok(()) => return,
                Err(e) => assert!(started.elapsed() < DEADLINE, "rename: {e}"),
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    rename(&mut admin, &pair.name, &gone);

    for name in ["during-1", "during-2"] {
        let (status, body) = server.request(
            "POST",
            "/api/v1/namespaces",
            Some(&pair.token),
            Some(&create_body(name)),
        );
        let text = String::from_utf8_lossy(&body);
        assert_eq!(status, 503, "{text}");
        assert!(text.contains("store_unavailable"), "{text}");
        assert!(!text.contains("postgres://"), "{text}");
    }
    // Reads go on from the cache: the same timestamp, the root.
    std::thread::sleep(Duration::from_millis(1500)); // a follow tick or more
    assert_eq!(
        server.request("GET", "/metadata/timestamp.json", None, None),
        (200, timestamp)
    );
    assert_eq!(
        server.request("GET", "/metadata/1.root.json", None, None),
        (200, root)
    );

    rename(&mut admin, &gone, &pair.name);
    create_namespace(server, &pair.token, "after");
    assert_eq!(
        server.timestamp_version(),
        version + 1,
        "nothing published meanwhile"
    );
    let stored = stored_namespaces(&pair);
    assert!(!stored.contains("during-1") && !stored.contains("during-2"));
    assert_one_chain(&pair, &[server]);
}

/// One raw HTTP/1.1 exchange (`Connection: close`): the status, the head
/// and the body as text.
fn raw(addr: &str, request: &str) -> (u16, String, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).unwrap();
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, head.to_owned(), body.to_owned())
}

/// Every page of the portal answers on a PostgreSQL store: pages that read
/// the store do it off the async workers (PostgreSQL's synchronous client
/// panics on one, which would drop the connection and the worker).
#[test]
fn the_portal_answers_every_page_on_a_postgresql_store() {
    let Some(pair) = Pair::new(1) else { return };
    let server = &pair.servers[0];
    create_namespace(server, &pair.token, "team-a");
    let form = format!("token={}", pair.token);
    let (status, head, body) = raw(
        &server.addr,
        &format!(
            "POST /ui/sign-in HTTP/1.1\r\nHost: {addr}\r\nOrigin: http://{addr}\r\n\
             Sec-Fetch-Site: same-origin\r\nContent-Type: application/x-www-form-urlencoded\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{form}",
            form.len(),
            addr = server.addr,
        ),
    );
    assert_eq!(status, 303, "{head}\n{body}");
    let cookie = head
        .lines()
        .find_map(|l| {
            l.strip_prefix("set-cookie: ")
                .or_else(|| l.strip_prefix("Set-Cookie: "))
        })
        .and_then(|c| c.split(';').next())
        .unwrap()
        .to_owned();
    for page in [
        "/ui/",
        "/ui/namespaces",
        "/ui/namespaces/team-a",
        "/ui/who-can-sign",
        "/ui/revocations",
        "/ui/ci",
        "/ui/peers",
        "/ui/tokens",
        "/ui/audit",
        "/ui/simulate",
    ] {
        let (status, head, body) = raw(
            &server.addr,
            &format!(
                "GET {page} HTTP/1.1\r\nHost: {}\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n",
                server.addr
            ),
        );
        assert_eq!(status, 200, "{page}: {head}\n{body}");
        assert!(body.contains("</html>"), "{page}: {body}");
    }
    let log = fs::read_to_string(&server.log).unwrap();
    assert!(!log.contains("panicked"), "{log}");
}
