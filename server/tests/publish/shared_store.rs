//! Two publishers on one PostgreSQL database (two servers sharing a
//! store): each catches up with what the other published before it signs,
//! so the repository never forks, and a server that only reads follows the
//! store's newest timestamp and never goes back.
//!
//! Skipped (with a line on stderr) where PostgreSQL is missing and
//! `KEYSHARE_TEST_POSTGRES=skip` allows it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::Arc;
use std::time::Duration;

use keyshare_policy::client::{Config, Updater};
use keyshare_policy::metadata::{Root, Signed};
use keyshare_policy::repo::{Options, SharedSigner};
use keyshare_policy::sign::{sign, to_bytes};
use keyshare_server::publisher::{Batched, OnlineKeys, Publisher};
use keyshare_server::store::{PostgresUrl, PublishListener, Store, PUBLISHED_CHANNEL};
use keyshare_testkit::postgres::Cluster;
use keyshare_testkit::signer;

use super::publisher::{create, now};
use super::root_submit::set_root_keys;

/// Two publishers on one fresh database, with the same online keys.
struct Pair {
    a: Arc<Publisher>,
    b: Arc<Publisher>,
    url: String,
    keys: OnlineKeys,
    /// The key root version 1 lists (threshold 1).
    root_key: SharedSigner,
    pinned_root: Vec<u8>,
}

fn open(url: &str) -> Store {
    Store::open_postgres(&PostgresUrl::parse(url).unwrap()).unwrap()
}

fn pair() -> Option<Pair> {
    let cluster = Cluster::shared()?;
    let (_, url) = cluster.database();
    let keys = OnlineKeys {
        targets: signer(),
        snapshot: signer(),
        timestamp: signer(),
        namespaces: signer(),
    };
    let root_key = signer();
    let a = Publisher::init(
        open(&url),
        keys.clone(),
        std::slice::from_ref(&root_key),
        1,
        Options::default(),
        now(),
    )
    .unwrap();
    let b = Publisher::open(open(&url), keys.clone(), Options::default()).unwrap();
    let pinned_root = a.file("metadata/1.root.json").unwrap().bytes.to_vec();
    Some(Pair {
        a: Arc::new(a),
        b: Arc::new(b),
        url,
        keys,
        root_key,
        pinned_root,
    })
}

impl Pair {
    /// Every timestamp version the store recorded, oldest first.
    fn recorded_versions(&self) -> Vec<u64> {
        open(&self.url)
            .published_history("metadata/timestamp.json")
            .unwrap()
            .iter()
            .map(|f| f.version.unwrap())
            .collect()
    }

    /// A TUF client's refresh from `publisher`'s served files (policy's
    /// client, from the pinned root): the timestamp version it trusts and
    /// the paths top-level targets lists.
    fn client_refresh(&self, publisher: &Publisher) -> (u64, Vec<String>) {
        let mut updater = Updater::new(&self.pinned_root, now(), Config::default()).unwrap();
        updater
            .refresh_with(|request| {
                publisher
                    .file(&format!("metadata/{}", request.remote_name()))
                    .map(|f| f.bytes.to_vec())
                    .into()
            })
            .unwrap();
        let version = updater.trusted().timestamp().unwrap().version;
        let listed = updater
            .trusted()
            .targets("targets")
            .unwrap()
            .targets
            .keys()
            .cloned()
            .collect();
        (version, listed)
    }

    fn served_timestamp(publisher: &Publisher) -> u64 {
        publisher.metrics().versions["timestamp"]
    }
}

/// Writes alternate between the two publishers: without catching up, the
/// second would sign timestamp version N+1 again on top of its stale
/// repository (and the store refuse it); with it, every write publishes and
/// the recorded timestamps are 1, 2, 3, ... with no version twice.
#[test]
fn alternating_writes_through_two_publishers_publish_one_chain() {
    let Some(p) = pair() else { return };
    for i in 0..6 {
        let publisher = if i % 2 == 0 { &p.a } else { &p.b };
        let applied = publisher
            .apply(
                "admin",
                create(&format!("alt-{i}"), &format!("alt{i}/**")),
                now(),
            )
            .unwrap_or_else(|e| panic!("write {i}: {e}"));
        assert_eq!(applied.timestamp_version, i + 2, "write {i}");
    }
    assert_eq!(p.recorded_versions(), (1..=7).collect::<Vec<u64>>());
    // The last writer serves everything; the other follows the store.
    let (version, _) = p.client_refresh(&p.b);
    assert_eq!(version, 7);
    assert_eq!(Pair::served_timestamp(&p.a), 6, "a has not looked yet");
    assert_eq!(p.a.follow_store().unwrap(), Some(7));
    assert_eq!(p.client_refresh(&p.a).0, 7);
    assert!(p.a.verify_audit().is_ok());
}

/// Concurrent writes (single changes and group commits) through both
/// publishers at once: every one is published exactly once, in one
/// chain a TUF client verifies from either.
#[test]
fn concurrent_writes_and_batches_through_two_publishers_never_fork() {
    let Some(p) = pair() else { return };
    let per_thread = 8;
    let threads: Vec<_> = [("a", p.a.clone()), ("b", p.b.clone())]
        .into_iter()
        .map(|(name, publisher)| {
            std::thread::spawn(move || {
                let mut versions = Vec::new();
                for i in 0..per_thread {
                    if i % 4 == 3 {
                        // A group commit of two changes.
                        let batch = (0..2)
                            .map(|j| Batched {
                                actor: format!("ci-{name}"),
                                change: create(
                                    &format!("{name}-{i}-{j}"),
                                    &format!("{name}{i}{j}/**"),
                                ),
                                context: serde_json::Value::Null,
                            })
                            .collect();
                        for r in publisher.apply_batch(batch, now()).unwrap() {
                            versions.push(r.unwrap().timestamp_version);
                        }
                    } else {
                        let applied = publisher
                            .apply(
                                "admin",
                                create(&format!("{name}-{i}"), &format!("{name}{i}/**")),
                                now(),
                            )
                            .unwrap();
                        versions.push(applied.timestamp_version);
                    }
                }
                versions
            })
        })
        .collect();
    let mut answered: Vec<u64> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    answered.sort_unstable();
    // 6 single writes and 2 batches of two a thread: 8 publishes each.
    let publishes = 2 * per_thread;
    let recorded = p.recorded_versions();
    assert_eq!(recorded, (1..=publishes + 1).collect::<Vec<u64>>());
    // A batch's changes share their publish's version; all else is unique.
    answered.dedup();
    assert_eq!(answered, (2..=publishes + 1).collect::<Vec<u64>>());
    p.a.follow_store().unwrap();
    p.b.follow_store().unwrap();
    let from_a = p.client_refresh(&p.a);
    let from_b = p.client_refresh(&p.b);
    assert_eq!(from_a, from_b);
    assert_eq!(from_a.0, publishes + 1);
    let namespaces = open(&p.url).namespaces().unwrap();
    assert_eq!(namespaces.len(), 2 * (6 + 2 * 2));
    assert!(p.b.verify_audit().is_ok());
}

/// A publisher that only reads follows the store forward and never back:
/// `follow_store` moves it to the newest published timestamp, and does
/// nothing when the store holds the same version. A publisher opened on
/// the store later starts from the newest state too.
#[test]
fn a_reader_follows_the_newest_timestamp_and_never_goes_back() {
    let Some(p) = pair() else { return };
    p.a.apply("admin", create("first", "first/**"), now())
        .unwrap();
    let before = p.b.file("metadata/timestamp.json").unwrap();
    assert_eq!(Pair::served_timestamp(&p.b), 1);
    assert_eq!(p.b.follow_store().unwrap(), Some(2));
    let after = p.b.file("metadata/timestamp.json").unwrap();
    assert_ne!(before.etag, after.etag);
    assert_eq!(
        after.bytes,
        p.a.file("metadata/timestamp.json").unwrap().bytes
    );
    assert_eq!(p.b.follow_store().unwrap(), None);
    assert_eq!(Pair::served_timestamp(&p.b), 2);
    let third = Publisher::open(open(&p.url), p.keys.clone(), Options::default()).unwrap();
    assert_eq!(Pair::served_timestamp(&third), 2);
    assert_eq!(third.follow_store().unwrap(), None);
}

/// A write refused after catching up (a namespace another server created
/// meanwhile) still leaves the server serving what it caught up with: the
/// refusal does not keep its cache behind its repository.
#[test]
fn a_refused_write_after_catching_up_serves_the_newer_repository() {
    let Some(p) = pair() else { return };
    p.a.apply("admin", create("taken", "taken/**"), now())
        .unwrap();
    assert_eq!(Pair::served_timestamp(&p.b), 1);
    let refused = p.b.apply("admin", create("taken", "taken/**"), now());
    assert!(refused.is_err(), "{refused:?}");
    assert_eq!(Pair::served_timestamp(&p.b), 2);
    assert_eq!(
        p.b.file("metadata/timestamp.json").unwrap().bytes,
        p.a.file("metadata/timestamp.json").unwrap().bytes
    );
    assert_eq!(p.client_refresh(&p.b).0, 2);
    // And the next write through it is version 3.
    let applied =
        p.b.apply("admin", create("next", "next/**"), now())
            .unwrap();
    assert_eq!(applied.timestamp_version, 3);
    assert_eq!(p.recorded_versions(), vec![1, 2, 3]);
}

/// A root ceremony's next root submitted to a server whose copy of the
/// root is behind (another server published root 2): it is checked
/// against the newest root in the store, after catching up, so root 3
/// (signed by root 2's keys) is accepted there, and a second, different
/// root 2 (which the stale copy, root 1, would have let through its
/// checks) is refused and changes nothing.
#[test]
fn a_root_submitted_to_a_server_behind_is_checked_against_the_newest_root() {
    let Some(p) = pair() else { return };
    let v1: Signed<Root> = serde_json::from_slice(&p.pinned_root).unwrap();
    let next = |from: &Root, version: u64, key: &SharedSigner, signers: &[&SharedSigner]| {
        let mut root = from.clone();
        root.version = version;
        set_root_keys(&mut root, std::slice::from_ref(key), 1);
        let signers: Vec<&dyn keyshare_policy::sign::Signer> =
            signers.iter().map(|s| s.as_ref() as _).collect();
        (
            root.clone(),
            to_bytes(&sign(root, &signers).unwrap()).unwrap(),
        )
    };
    let (k2, k3, other) = (signer(), signer(), signer());
    let (v2, v2_bytes) = next(&v1.signed, 2, &k2, &[&p.root_key, &k2]);
    p.a.submit_root("admin", &v2_bytes, now()).unwrap();
    // b has not published since: its copy is root 1. A different root 2,
    // signed by root 1's key and its own, is refused.
    let (_, forked) = next(&v1.signed, 2, &other, &[&p.root_key, &other]);
    let refused = p.b.submit_root("admin", &forked, now()).unwrap_err();
    assert!(refused.to_string().contains("version"), "{refused}");
    assert_eq!(p.recorded_versions(), vec![1, 2]);
    assert_eq!(
        &*p.b.file("metadata/2.root.json").unwrap().bytes,
        &v2_bytes[..]
    );
    // Root 3, signed by root 2's key and its own, is accepted through b.
    let (_, v3_bytes) = next(&v2, 3, &k3, &[&k2, &k3]);
    let applied = p.b.submit_root("admin", &v3_bytes, now()).unwrap();
    assert!(applied.files.contains(&"metadata/3.root.json".to_owned()));
    assert_eq!(p.recorded_versions(), vec![1, 2, 3]);
    // A client that pinned root 1 follows 1 -> 2 -> 3 from either server
    // (a once it has followed the store, as `serve` does every second).
    assert_eq!(p.a.follow_store().unwrap(), Some(3));
    for server in [&p.a, &p.b] {
        assert_eq!(p.client_refresh(server).0, 3);
        assert_eq!(
            &*server.file("metadata/3.root.json").unwrap().bytes,
            &v3_bytes[..]
        );
    }
}

/// A publish through one server wakes a listener of the other's at its
/// commit (`NOTIFY` in the publishing transaction); a write that is
/// refused, and so rolled back, wakes nothing.
#[test]
fn a_publish_wakes_the_other_servers_listener_and_a_refused_write_does_not() {
    let Some(p) = pair() else { return };
    let mut listener = PublishListener::connect(&PostgresUrl::parse(&p.url).unwrap()).unwrap();
    assert!(!listener.wait(Duration::from_millis(300)).unwrap());
    p.a.apply("admin", create("one", "one/**"), now()).unwrap();
    // Woken by the notification, not by the end of the wait.
    assert!(listener.wait(Duration::from_secs(60)).unwrap());
    assert_eq!(p.b.follow_store().unwrap(), Some(2));
    // Three publishes before the next wait: one wake takes them all.
    for name in ["two", "three", "four"] {
        p.a.apply("admin", create(name, &format!("{name}/**")), now())
            .unwrap();
    }
    assert!(listener.wait(Duration::from_secs(60)).unwrap());
    assert!(!listener.wait(Duration::from_millis(300)).unwrap());
    // Refused (the name is taken): rolled back, nothing notified.
    assert!(p.a.apply("admin", create("one", "one/**"), now()).is_err());
    assert!(!listener.wait(Duration::from_millis(500)).unwrap());
    assert_eq!(p.b.follow_store().unwrap(), Some(5));
    // Its connection ended by the database: an error, not a quiet wait.
    let mut admin = postgres::Client::connect(&p.url, postgres::NoTls).unwrap();
    let ended = admin
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE query = $1 AND datname = current_database() AND pid <> pg_backend_pid()",
            &[&format!("LISTEN {PUBLISHED_CHANNEL}")],
        )
        .unwrap();
    assert_eq!(ended.len(), 1);
    let lost = listener.wait(Duration::from_secs(60)).unwrap_err();
    assert!(lost.is_unavailable(), "{lost}");
}

/// The database goes back in time under a running server (a restore from
/// an older backup): the server refuses to publish on top of it, again
/// and again, rather than sign a second timestamp with a version it
/// already served; it goes on serving the newer repository and does not
/// follow the store back.
#[test]
fn a_store_rolled_back_under_a_server_is_refused_not_signed_over() {
    let Some(cluster) = Cluster::shared() else {
        return;
    };
    let (name, url) = cluster.database();
    let keys = OnlineKeys {
        targets: signer(),
        snapshot: signer(),
        timestamp: signer(),
        namespaces: signer(),
    };
    let a = Publisher::init(open(&url), keys, &[signer()], 1, Options::default(), now()).unwrap();
    let mut admin = postgres::Client::connect(&cluster.url("postgres"), postgres::NoTls).unwrap();
    // Drops every connection to `db` (a's included), then runs `sql`.
    let mut without_connections = |db: &str, sql: &str| {
        let started = std::time::Instant::now();
        loop {
            admin
                .execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
                    &[&db],
                )
                .unwrap();
            match admin.batch_execute(sql) {
                Ok(()) => return,
                Err(e) => assert!(started.elapsed().as_secs() < 30, "{sql}: {e}"),
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    };
    // The backup: the database at version 1.
    let backup = format!("{name}_backup");
    without_connections(&name, &format!("CREATE DATABASE {backup} TEMPLATE {name}"));
    // The first transaction after the connection was dropped fails (the
    // store connects again for the next one).
    assert!(a.follow_store().is_err());
    a.apply("admin", create("after-backup", "after/**"), now())
        .unwrap();
    let served = a.file("metadata/timestamp.json").unwrap();
    assert_eq!(Pair::served_timestamp(&a), 2);
    // The restore, under the running server.
    without_connections(
        &name,
        &format!("ALTER DATABASE {name} RENAME TO {name}_old"),
    );
    without_connections(
        &backup,
        &format!("ALTER DATABASE {backup} RENAME TO {name}"),
    );

    assert!(a.follow_store().is_err(), "the dropped connection");
    for attempt in 0..2 {
        let refused = a.apply("admin", create("over", "over/**"), now());
        let message = format!("{:?}", refused.expect_err("refused"));
        assert!(
            message.contains("back in time"),
            "attempt {attempt}: {message}"
        );
    }
    assert_eq!(a.follow_store().unwrap(), None);
    assert_eq!(a.file("metadata/timestamp.json").unwrap(), served);
    let recorded: Vec<u64> = open(&url)
        .published_history("metadata/timestamp.json")
        .unwrap()
        .iter()
        .map(|f| f.version.unwrap())
        .collect();
    assert_eq!(recorded, vec![1], "nothing signed over the restored store");
}
