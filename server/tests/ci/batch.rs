//! `Publisher::apply_batch`: several changes, one transaction, one
//! publish, one audit record each; a refused change fails alone.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use keyshare_policy::sign::{InMemorySigner, Signer};
use keyshare_policy::trust::{NamespaceEntry, SignerRef, TrustedKey};
use keyshare_server::http::ApiError;
use keyshare_server::publisher::{Batched, Change, Publisher};

use crate::ci_common::{create_namespaces, job_key, trust_set};
use crate::http_common::{ns_name, Fixture, NOW};

fn add(ns: &str, key: &keyshare_policy::sign::InMemorySigner) -> Batched {
    Batched {
        actor: format!("test:{ns}"),
        change: Change::AddKey {
            namespace: ns_name(ns),
            key: TrustedKey {
                id: key.key_id().clone(),
                key: key.public_key().clone(),
                not_before: None,
                not_after: None,
                ephemeral: false,
                description: None,
                principal: None,
                layout_root: false,
            },
        },
        context: json!({ "identity": "job" }),
    }
}

#[test]
fn a_batch_is_one_publish_and_refused_changes_fail_alone() {
    let f = Fixture::new();
    create_namespaces(&f.publisher, &["team-a", "team-b"]);
    let (k1, k2, k3) = (job_key(), job_key(), job_key());
    let publishes = f.publisher.metrics().publishes;
    let head = f.publisher.read(|s| s.audit_head()).unwrap();
    let results = f
        .publisher
        .apply_batch(
            vec![
                add("team-a", &k1),
                add("nowhere", &k2),
                add("team-a", &k1),
                add("team-b", &k3),
                Batched {
                    actor: "test".into(),
                    change: Change::CreateNamespace {
                        entry: NamespaceEntry {
                            name: ns_name("team-c"),
                            scopes: vec![],
                            maintainers: vec![],
                        },
                        threshold: NonZeroU32::MIN,
                        allow_overlap: false,
                    },
                    context: serde_json::Value::Null,
                },
                Batched {
                    actor: "test".into(),
                    change: Change::DeleteNamespace {
                        namespace: ns_name("team-b"),
                    },
                    context: serde_json::Value::Null,
                },
            ],
            NOW,
        )
        .unwrap();
    let statuses: Vec<Option<u16>> = results
        .iter()
        .map(|r| {
            r.as_ref()
                .err()
                .map(|e| ApiError::from(e).status().as_u16())
        })
        .collect();
    assert_eq!(
        statuses,
        [None, Some(404), Some(409), None, Some(400), Some(400)]
    );
    assert_eq!(
        f.publisher.metrics().publishes,
        publishes + 1,
        "one publish"
    );
    let ok: Vec<_> = results.iter().flatten().collect();
    assert_eq!(ok[0].timestamp_version, ok[1].timestamp_version);
    assert_ne!(ok[0].audit_seq, ok[1].audit_seq);

    // One audit record per published change, with the change's context.
    let records = f
        .publisher
        .read(|s| s.audit_records(head.records, 100))
        .unwrap();
    assert_eq!(records.len(), 2, "{records:?}");
    assert_eq!(records[0].actor, "test:team-a");
    assert_eq!(records[1].actor, "test:team-b");
    assert_eq!(records[0].details["context"]["identity"], "job");
    assert!(f.publisher.read(|s| s.verify_audit_chain()).is_ok());

    let set = trust_set(&f.publisher, NOW, &["team-a", "team-b"]);
    for (key, artifact) in [
        (&k1, "registry.acme.io/team-a/x"),
        (&k3, "registry.acme.io/team-b/x"),
    ] {
        let d = set.decide(
            artifact,
            &[SignerRef::KeyId(key.key_id().clone())],
            NOW,
            NOW,
        );
        assert!(d.is_trusted(), "{d}");
    }
}

#[test]
fn namespaces_created_in_a_batch_are_published_with_their_keys() {
    let f = Fixture::new();
    let publishes = f.publisher.metrics().publishes;
    let keys: Vec<_> = (0..3).map(|_| job_key()).collect();
    let mut batch = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        let name = format!("bulk-{i}");
        batch.push(Batched {
            actor: "test".into(),
            change: Change::CreateNamespace {
                entry: NamespaceEntry {
                    name: ns_name(&name),
                    scopes: vec![keyshare_policy::pattern::ArtifactPattern::parse(&format!(
                        "registry.acme.io/{name}/**"
                    ))
                    .unwrap()],
                    maintainers: vec![],
                },
                threshold: NonZeroU32::MIN,
                allow_overlap: false,
            },
            context: serde_json::Value::Null,
        });
        batch.push(add(&name, key));
    }
    let results = f.publisher.apply_batch(batch, NOW).unwrap();
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(f.publisher.metrics().publishes, publishes + 1);
    let set = trust_set(&f.publisher, NOW, &["bulk-0", "bulk-1", "bulk-2"]);
    for (i, key) in keys.iter().enumerate() {
        let d = set.decide(
            &format!("registry.acme.io/bulk-{i}/app"),
            &[SignerRef::KeyId(key.key_id().clone())],
            NOW,
            NOW,
        );
        assert!(d.is_trusted(), "{d}");
    }
}

#[test]
fn a_batch_with_nothing_publishable_publishes_nothing() {
    let f = Fixture::new();
    let before = f.published_state();
    let results = f
        .publisher
        .apply_batch(vec![add("nowhere", &job_key())], NOW)
        .unwrap();
    assert_eq!(
        ApiError::from(results[0].as_ref().unwrap_err())
            .status()
            .as_u16(),
        404
    );
    assert_eq!(f.published_state(), before);
}

/// The file of the role that lists `ns`'s trust document (its hashed bin,
/// `metadata/<V>.<bin>.json`) among `files`, and the trust document that
/// role lists, as published.
fn published_document(f: &Fixture, files: &[String], ns: &str) -> String {
    let bin = f.publisher.trust_role(&ns_name(ns));
    let role = files
        .iter()
        .find(|p| p.starts_with("metadata/") && p.ends_with(&format!(".{bin}.json")))
        .unwrap_or_else(|| panic!("no role {bin} of {ns} in {files:?}"));
    let role: serde_json::Value =
        serde_json::from_slice(&f.publisher.file(role).unwrap().bytes).unwrap();
    let path = format!("namespaces/{ns}/trust.json");
    let sha = role["signed"]["targets"][&path]["hashes"]["sha256"]
        .as_str()
        .unwrap();
    let doc = f
        .publisher
        .file(&format!("targets/namespaces/{ns}/{sha}.trust.json"))
        .unwrap();
    String::from_utf8(doc.bytes.to_vec()).unwrap()
}

#[test]
fn concurrent_submissions_share_publishes_and_a_refused_one_fails_alone() {
    use keyshare_server::ci::batch::Batcher;

    const JOBS: usize = 32;
    let f = Fixture::new();
    create_namespaces(&f.publisher, &["team-a", "team-b"]);
    // No wait: batches form only from what arrives while a publish runs.
    let clock: keyshare_server::clock::Clock = Arc::new(|| NOW);
    let batcher =
        Arc::new(Batcher::start(f.publisher.clone(), clock, Duration::ZERO, 512).unwrap());
    let keys: Vec<_> = (0..JOBS).map(|_| job_key()).collect();
    let publishes = f.publisher.metrics().publishes;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let results = runtime.block_on(async {
        let tasks: Vec<_> = keys
            .iter()
            .enumerate()
            .map(|(i, key)| {
                // Every fifth names a namespace that does not exist.
                let ns = match i % 5 {
                    4 => "nowhere",
                    n if n % 2 == 0 => "team-a",
                    _ => "team-b",
                };
                let (batcher, change, publisher) =
                    (batcher.clone(), add(ns, key), f.publisher.clone());
                tokio::spawn(async move {
                    let result = batcher.submit(change).await;
                    // What the read API serves when the answer arrives.
                    (ns, result, served(&publisher))
                })
            })
            .collect();
        let mut results = Vec::new();
        for t in tasks {
            results.push(t.await.unwrap());
        }
        results
    });
    let publishes = f.publisher.metrics().publishes - publishes;
    assert!(
        publishes < JOBS as u64 / 2,
        "{JOBS} concurrent changes took {publishes} publishes"
    );
    for ((ns, result, served), key) in results.iter().zip(&keys) {
        if *ns == "nowhere" {
            let e = result.as_ref().unwrap_err();
            assert_eq!(ApiError::from(e).status().as_u16(), 404, "{e}");
            continue;
        }
        // Granted only once published: the read API already serves the
        // timestamp its answer names (the batch was synced and served
        // before it was answered), and the document of the role version
        // its answer names lists the key.
        let applied = result.as_ref().unwrap();
        assert!(
            *served >= applied.timestamp_version,
            "answered with timestamp {} while version {served} was served",
            applied.timestamp_version
        );
        let doc = published_document(&f, &applied.files, ns);
        assert!(doc.contains(key.key_id().as_str()), "{ns}: {doc}");
    }
    let set = trust_set(&f.publisher, NOW, &["team-a", "team-b"]);
    for ((ns, result, _), key) in results.iter().zip(&keys) {
        let d = set.decide(
            &format!("registry.acme.io/{ns}/x"),
            &[SignerRef::KeyId(key.key_id().clone())],
            NOW,
            NOW,
        );
        assert_eq!(d.is_trusted(), result.is_ok(), "{ns}: {d}");
    }
}

/// The timestamp version the read API serves.
fn served(publisher: &Publisher) -> u64 {
    publisher.metrics().versions["timestamp"]
}

/// What the read API serves: the timestamp's bytes and version, and
/// whether a key is in the namespace's published trust document.
fn serves_key(f: &Fixture, ns: &str, key: &InMemorySigner) -> bool {
    let set = trust_set(&f.publisher, NOW, &[ns]);
    set.decide(
        &format!("registry.acme.io/{ns}/x"),
        &[SignerRef::KeyId(key.key_id().clone())],
        NOW,
        NOW,
    )
    .is_trusted()
}

#[test]
fn a_batch_committed_before_its_sync_is_served_only_once_synced() {
    let f = Fixture::new();
    create_namespaces(&f.publisher, &["team-a"]);
    let before = served(&f.publisher);
    let timestamp = f.publisher.file("metadata/timestamp.json").unwrap();
    let mut watch = f.publisher.timestamp_watch();
    watch.mark_unchanged();
    let key = job_key();
    let (results, held) = f
        .publisher
        .apply_batch_deferred(vec![add("team-a", &key)], NOW)
        .unwrap();
    let applied = results[0].as_ref().unwrap();
    assert_eq!(applied.timestamp_version, before + 1);
    // Committed, not yet synced: the read API serves what it served, no
    // waiter wakes, and the new files are not handed out from memory.
    assert_eq!(served(&f.publisher), before);
    assert_eq!(
        f.publisher.file("metadata/timestamp.json").unwrap(),
        timestamp
    );
    assert!(!watch.has_changed().unwrap());
    let snapshot = format!("metadata/{}.snapshot.json", before + 1);
    assert!(f.publisher.cached_file(&snapshot).is_none());
    // Not from the store either, asked by its exact name.
    assert!(f.publisher.file(&snapshot).is_none());
    assert!(!serves_key(&f, "team-a", &key));

    let held = held.expect("a committed batch is held");
    f.publisher.serve(held).unwrap();
    assert_eq!(served(&f.publisher), before + 1);
    assert!(watch.has_changed().unwrap());
    assert!(f.publisher.cached_file(&snapshot).is_some());
    assert!(f.publisher.file(&snapshot).is_some());
    assert!(serves_key(&f, "team-a", &key));
    // Serving it again changes nothing.
    f.publisher.serve(held).unwrap();
    assert_eq!(served(&f.publisher), before + 1);
}

#[test]
fn a_publish_synced_at_commit_serves_the_held_batches_before_it_in_order() {
    let f = Fixture::new();
    create_namespaces(&f.publisher, &["team-a", "team-b"]);
    let before = served(&f.publisher);
    let (k1, k2, k3) = (job_key(), job_key(), job_key());
    let (_, first) = f
        .publisher
        .apply_batch_deferred(vec![add("team-a", &k1)], NOW)
        .unwrap();
    let (_, second) = f
        .publisher
        .apply_batch_deferred(vec![add("team-b", &k2)], NOW)
        .unwrap();
    assert_eq!(served(&f.publisher), before);
    // An ordinary publish syncs at commit, and with it both batches.
    let results = f
        .publisher
        .apply_batch(vec![add("team-a", &k3)], NOW)
        .unwrap();
    assert_eq!(results[0].as_ref().unwrap().timestamp_version, before + 3);
    assert_eq!(served(&f.publisher), before + 3);
    for (ns, key) in [("team-a", &k1), ("team-b", &k2), ("team-a", &k3)] {
        assert!(serves_key(&f, ns, key), "{ns}");
    }
    // The held ones were served on the way: serving them is a no-op that
    // never goes back.
    f.publisher.serve(first.unwrap()).unwrap();
    f.publisher.serve(second.unwrap()).unwrap();
    assert_eq!(served(&f.publisher), before + 3);
}

#[test]
fn a_failed_publish_after_a_held_batch_serves_it_and_publishing_goes_on() {
    let f = Fixture::new();
    create_namespaces(&f.publisher, &["team-a"]);
    let before = served(&f.publisher);
    let key = job_key();
    let (_, held) = f
        .publisher
        .apply_batch_deferred(vec![add("team-a", &key)], NOW)
        .unwrap();
    // A publish that fails inside its transaction rebuilds the repository
    // from the store, which holds the batch: synced and served first, so
    // nothing unsynced is served and nothing is lost.
    let refused = f
        .publisher
        .apply("test", add("nowhere", &job_key()).change, NOW);
    assert_eq!(ApiError::from(&refused.unwrap_err()).status().as_u16(), 404);
    assert_eq!(served(&f.publisher), before + 1);
    assert!(serves_key(&f, "team-a", &key));
    f.publisher.serve(held.unwrap()).unwrap();
    let next = f
        .publisher
        .apply_batch(vec![add("team-a", &job_key())], NOW)
        .unwrap();
    assert_eq!(next[0].as_ref().unwrap().timestamp_version, before + 2);
    assert_eq!(served(&f.publisher), before + 2);
}
