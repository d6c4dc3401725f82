//! The published layout: trust documents listed directly in their hashed
//! bin, a snapshot whose size does not grow with the namespaces, the bin
//! count chosen at init, and the one-publish migration of a repository
//! whose bins delegate to namespace roles.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;
use std::num::NonZeroU32;

use keyshare_policy::keys::Scheme;
use keyshare_policy::metadata::{Envelope, Snapshot, Targets};
use keyshare_policy::repo::Options;
use keyshare_policy::sign::{InMemorySigner, Signer};
use keyshare_policy::trust::{namespace_bins_of, shard_path};
use keyshare_server::publisher::{Batched, Change, PublishError, Publisher};
use keyshare_server::store::Store;
use keyshare_testkit::legacy::{into_namespace_roles, LegacyKeys};
use keyshare_testkit::{ns, signer};
use time::Duration;

use super::publisher::{create, metadata_roles, now, trusted_key, Fixture};

/// The current snapshot's entries and its size in bytes.
fn snapshot(publisher: &Publisher) -> (BTreeMap<String, u64>, usize) {
    let ts = publisher.file("metadata/timestamp.json").unwrap();
    let ts: serde_json::Value = serde_json::from_slice(&ts.bytes).unwrap();
    let v = ts["signed"]["meta"]["snapshot.json"]["version"]
        .as_u64()
        .unwrap();
    let bytes = publisher
        .file(&format!("metadata/{v}.snapshot.json"))
        .unwrap()
        .bytes
        .to_vec();
    let snap = Envelope::<Snapshot>::parse("snapshot", &bytes).unwrap();
    let meta = snap
        .signed
        .meta
        .iter()
        .map(|(k, m)| (k.clone(), m.version))
        .collect();
    (meta, bytes.len())
}

/// The current version of `role`, parsed.
fn role(publisher: &Publisher, role: &str) -> Targets {
    let (meta, _) = snapshot(publisher);
    let v = meta[&format!("{role}.json")];
    let bytes = publisher
        .file(&format!("metadata/{v}.{role}.json"))
        .unwrap()
        .bytes
        .to_vec();
    Envelope::<Targets>::parse(role, &bytes).unwrap().signed
}

fn create_batch(publisher: &Publisher, names: impl Iterator<Item = String>) {
    let changes: Vec<Batched> = names
        .map(|n| Batched {
            actor: "admin".into(),
            change: create(&n, &format!("r.io/{n}/**")),
            context: serde_json::Value::Null,
        })
        .collect();
    for r in publisher.apply_batch(changes, now()).unwrap() {
        r.unwrap();
    }
}

#[test]
fn the_snapshot_of_a_fresh_repository_does_not_grow_with_the_namespaces() {
    let f = Fixture::new();
    create_batch(&f.publisher, (0..10).map(|i| format!("team-{i}")));
    let (at_10, bytes_10) = snapshot(&f.publisher);
    for chunk in 0..2 {
        create_batch(
            &f.publisher,
            (10 + chunk * 495..10 + (chunk + 1) * 495).map(|i| format!("team-{i}")),
        );
    }
    assert_eq!(f.client_index(now()).namespaces.len(), 1000);
    let (at_1000, bytes_1000) = snapshot(&f.publisher);
    // targets and the 256 bins, nothing per namespace.
    assert_eq!(at_10.len(), 257, "{:?}", at_10.keys());
    assert_eq!(at_1000.len(), at_10.len());
    assert!(at_1000
        .keys()
        .all(|k| k == "targets.json" || (k.starts_with("bins-") && k.len() == 12)));
    // Only version numbers may grow a digit; a role per namespace would add
    // about 30 bytes each (29,700 bytes here).
    assert!(
        bytes_1000 <= bytes_10 + 257,
        "snapshot grew from {bytes_10} to {bytes_1000} bytes"
    );
    // And every document is found through its bin.
    let docs = f.client_fetch(
        now(),
        &[
            "namespaces/team-0/trust.json",
            "namespaces/team-999/trust.json",
        ],
    );
    assert!(docs.iter().all(Option::is_some));
}

#[test]
fn the_bin_count_is_chosen_at_init_and_read_back_from_the_published_targets() {
    let dir = tempfile::tempdir().unwrap();
    let keys = keyshare_server::publisher::OnlineKeys {
        targets: signer(),
        snapshot: signer(),
        timestamp: signer(),
        namespaces: signer(),
    };
    let db = dir.path().join("keyshare.db");
    let refused = Publisher::init_with_bins(
        Store::open(dir.path().join("other.db")).unwrap(),
        keys.clone(),
        &[signer()],
        1,
        Options::default(),
        9,
        now(),
    )
    .unwrap_err();
    assert!(matches!(refused, PublishError::Layout(_)), "{refused}");
    let publisher = Publisher::init_with_bins(
        Store::open(&db).unwrap(),
        keys.clone(),
        &[signer()],
        1,
        Options::default(),
        10,
        now(),
    )
    .unwrap();
    assert_eq!(publisher.bin_count(), 1024);
    let (meta, _) = snapshot(&publisher);
    assert_eq!(meta.len(), 1025);
    assert!(meta.contains_key("bins-000.json") && meta.contains_key("bins-3ff.json"));
    let published = role(&publisher, "targets");
    let succinct = published.delegations.unwrap().succinct_roles.unwrap();
    assert_eq!(
        (succinct.bit_length, succinct.name_prefix.as_str()),
        (10, "bins")
    );

    let created = publisher
        .apply("admin", create("team-a", "r.io/team-a/**"), now())
        .unwrap();
    let bins = namespace_bins_of(10, vec![], NonZeroU32::MIN);
    let bin = bins.role_for_target("namespaces/team-a/trust.json");
    assert_eq!(publisher.trust_role(&ns("team-a")), bin);
    assert_eq!(
        metadata_roles(&created.files),
        [
            format!("{bin}.json"),
            "snapshot.json".into(),
            "targets.json".into(),
            "timestamp.json".into()
        ]
    );
    assert!(role(&publisher, bin.as_str())
        .targets
        .contains_key("namespaces/team-a/trust.json"));
    // The index shards stay 256, two hex digits.
    let shard = shard_path(keyshare_server::store::namespace_shard(&ns("team-a")));
    assert_eq!(shard.len(), "org/namespaces/xx.json".len());
    assert!(role(&publisher, "targets").targets.contains_key(&shard));

    // After a restart the count comes from the published targets.
    drop(publisher);
    let publisher = Publisher::open(Store::open(&db).unwrap(), keys, Options::default()).unwrap();
    assert_eq!(publisher.bin_count(), 1024);
    let key = InMemorySigner::generate(Scheme::Ed25519).unwrap();
    let added = publisher
        .apply(
            "admin",
            Change::AddKey {
                namespace: ns("team-a"),
                key: trusted_key(&key),
            },
            now(),
        )
        .unwrap();
    assert_eq!(
        metadata_roles(&added.files),
        [
            format!("{bin}.json"),
            "snapshot.json".into(),
            "timestamp.json".into()
        ]
    );
}

/// A repository as earlier versions published it: `names` created (each
/// with a key), then every trust document moved to a namespace role
/// delegated from its bin and signed by the namespaces key. The publisher
/// is opened on it but has not published since.
fn legacy_fixture(names: &[&str]) -> Fixture {
    let f = Fixture::new();
    for name in names {
        f.publisher
            .apply("admin", create(name, &format!("r.io/{name}/**")), now())
            .unwrap();
        let key = InMemorySigner::generate(Scheme::Ed25519).unwrap();
        f.publisher
            .apply(
                "admin",
                Change::AddKey {
                    namespace: ns(name),
                    key: trusted_key(&key),
                },
                now(),
            )
            .unwrap();
    }
    let Fixture {
        dir,
        keys,
        publisher,
        pinned_root,
    } = f;
    drop(publisher);
    let mut store = Store::open(dir.path().join("keyshare.db")).unwrap();
    let last = store.last_published().unwrap().unwrap();
    let legacy = LegacyKeys {
        targets: keys.targets.clone(),
        snapshot: keys.snapshot.clone(),
        timestamp: keys.timestamp.clone(),
        namespaces: keys.namespaces.clone(),
    };
    let files = into_namespace_roles(&last.as_published(), &legacy, now());
    store
        .transaction_at(now(), |tx| tx.record_published(&files))
        .unwrap();
    drop(store);
    let store = Store::open(dir.path().join("keyshare.db")).unwrap();
    let publisher = Publisher::open(store, keys.clone(), Options::default()).unwrap();
    Fixture {
        dir,
        keys,
        publisher,
        pinned_root,
    }
}

const NAMES: [&str; 3] = ["team-a", "team-b", "team-c"];

fn trust_paths() -> Vec<String> {
    NAMES
        .iter()
        .map(|n| format!("namespaces/{n}/trust.json"))
        .collect()
}

#[test]
fn a_repository_with_namespace_roles_migrates_in_one_audited_publish_clients_follow() {
    let f = legacy_fixture(&NAMES);
    let paths = trust_paths();
    let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
    // The earlier layout: a role per namespace, delegated from its bin.
    let (before, _) = snapshot(&f.publisher);
    for name in NAMES {
        assert!(before.contains_key(&format!("{name}.json")), "{before:?}");
    }
    let docs_before = f.client_fetch(now(), &paths);
    assert!(docs_before.iter().all(Option::is_some));
    let ts_before = f.timestamp_version();

    let later = now() + Duration::minutes(5);
    let migrated = f.publisher.migrate_layout(later).unwrap().unwrap();
    assert_eq!(migrated.timestamp_version, ts_before + 1, "one publish");
    // It re-signed the bins that delegated, snapshot and timestamp only.
    let bins = namespace_bins_of(8, vec![], NonZeroU32::MIN);
    let mut expected: Vec<String> = NAMES
        .iter()
        .map(|n| {
            format!(
                "{}.json",
                bins.role_for_target(&format!("namespaces/{n}/trust.json"))
            )
        })
        .collect();
    expected.extend(["snapshot.json".into(), "timestamp.json".into()]);
    expected.sort();
    expected.dedup();
    assert_eq!(metadata_roles(&migrated.files), expected);
    // Audited as its own record.
    let records = f.publisher.read(|s| s.audit_records(0, 1000)).unwrap();
    let record = records.last().unwrap();
    assert_eq!(
        (record.actor.as_str(), record.action.as_str()),
        ("system", "repository.migrate")
    );
    assert_eq!(record.seq, migrated.audit_seq);
    assert_eq!(record.details["roles_undelegated"], 3);
    assert_eq!(record.details["trust_documents_moved"], 3);

    // The snapshot keeps every entry it had (TUF §5.5.5); the namespace
    // roles stay at their last version, frozen.
    let (after, _) = snapshot(&f.publisher);
    for (name, version) in &before {
        let now_at = after.get(name).copied();
        assert!(now_at >= Some(*version), "{name}: {version} -> {now_at:?}");
    }
    for name in NAMES {
        let entry = format!("{name}.json");
        assert_eq!(after[&entry], before[&entry], "{name} was re-signed");
    }
    // The bins list the documents and delegate to nobody.
    for name in NAMES {
        let path = format!("namespaces/{name}/trust.json");
        let bin = role(&f.publisher, bins.role_for_target(&path).as_str());
        assert!(bin.targets.contains_key(&path), "{name}");
        assert!(
            bin.delegations
                .as_ref()
                .is_none_or(|d| d.roles.iter().flatten().next().is_none()),
            "{name}: still delegated"
        );
    }
    // Clients get the same documents.
    assert_eq!(f.client_fetch(later, &paths), docs_before);
    assert!(f.publisher.migrate_layout(later).unwrap().is_none());

    // The expiry sweep re-signs the bins, never the frozen roles.
    let much_later = now() + Duration::days(89);
    let resigned = f
        .publisher
        .refresh_expiring(Duration::days(7), much_later)
        .unwrap();
    let resigned = metadata_roles(&resigned);
    assert!(
        resigned.iter().any(|r| r.starts_with("bins-")),
        "{resigned:?}"
    );
    for name in NAMES {
        assert!(!resigned.contains(&format!("{name}.json")), "{resigned:?}");
    }
    assert_eq!(f.client_fetch(much_later, &paths), docs_before);

    // A restart finds nothing to migrate; changes go to the bins; a
    // deleted namespace's document leaves its bin.
    let f = f.reopen();
    assert!(f.publisher.migrate_layout(much_later).unwrap().is_none());
    let key = InMemorySigner::generate(Scheme::Ed25519).unwrap();
    let added = f
        .publisher
        .apply(
            "admin",
            Change::AddKey {
                namespace: ns("team-a"),
                key: trusted_key(&key),
            },
            much_later,
        )
        .unwrap();
    let bin_a = bins.role_for_target("namespaces/team-a/trust.json");
    assert_eq!(
        metadata_roles(&added.files),
        [
            format!("{bin_a}.json"),
            "snapshot.json".into(),
            "timestamp.json".into()
        ]
    );
    let doc = f.client_fetch(much_later, &["namespaces/team-a/trust.json"]);
    assert!(String::from_utf8_lossy(doc[0].as_ref().unwrap()).contains(key.key_id().as_str()));
    f.publisher
        .apply(
            "admin",
            Change::DeleteNamespace {
                namespace: ns("team-b"),
            },
            much_later,
        )
        .unwrap();
    let gone = f.client_fetch(much_later, &["namespaces/team-b/trust.json"]);
    assert!(gone[0].is_none());
}

#[test]
fn without_an_explicit_migration_the_next_publish_migrates_first() {
    let f = legacy_fixture(&NAMES);
    let before = f.timestamp_version();
    let key = InMemorySigner::generate(Scheme::Ed25519).unwrap();
    let applied = f
        .publisher
        .apply(
            "admin",
            Change::AddKey {
                namespace: ns("team-c"),
                key: trusted_key(&key),
            },
            now(),
        )
        .unwrap();
    // Two publishes: the migration, then the change.
    assert_eq!(applied.timestamp_version, before + 2);
    let records = f.publisher.read(|s| s.audit_records(0, 1000)).unwrap();
    let actions: Vec<&str> = records
        .iter()
        .rev()
        .take(2)
        .map(|r| r.action.as_str())
        .collect();
    assert_eq!(actions, ["key.add", "repository.migrate"]);
    let bin_c = namespace_bins_of(8, vec![], NonZeroU32::MIN)
        .role_for_target("namespaces/team-c/trust.json");
    assert_eq!(
        metadata_roles(&applied.files),
        [
            format!("{bin_c}.json"),
            "snapshot.json".into(),
            "timestamp.json".into()
        ]
    );
    let doc = f.client_fetch(now(), &["namespaces/team-c/trust.json"]);
    assert!(String::from_utf8_lossy(doc[0].as_ref().unwrap()).contains(key.key_id().as_str()));
    // The audit chain still agrees with every published timestamp.
    f.publisher.verify_audit().unwrap();
}
