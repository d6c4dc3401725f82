//! The publisher: each change is one verifiable publish; a failed change
//! publishes nothing; a restart continues where the repository left off.
//! Every check reads the repository the way a TUF client does.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::num::NonZeroU32;

use keyshare_policy::client::{verify_target, Config, Lookup, Updater};
use keyshare_policy::keys::Scheme;
use keyshare_policy::metadata::KeyId;
use keyshare_policy::pattern::ArtifactPattern;
use keyshare_policy::repo::Options;
use keyshare_policy::sign::{InMemorySigner, Signer};
use keyshare_policy::trust::{
    is_index_path, shard_path, NamespaceEntry, NamespaceTrust, Namespaces, Peers, Revocation,
    Revocations, RevokedSubject, Sha256Hex, SignerRef, TrustSet, TrustedKey, NAMESPACES_PATH,
    PEERS_PATH, REVOCATIONS_PATH,
};
use keyshare_server::http::ApiError;
use keyshare_server::publisher::{Change, OnlineKeys, PublishError, Publisher};
use keyshare_server::store::Store;
use keyshare_testkit::{ns, signer};
use time::{Duration, OffsetDateTime};

pub(super) fn now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_900_000_000).unwrap()
}

/// The HTTP status the API answers `e` with (the status table in
/// `http/error.rs`).
fn status(e: &PublishError) -> u16 {
    ApiError::from(e).status().as_u16()
}

pub(super) struct Fixture {
    pub(super) dir: tempfile::TempDir,
    pub(super) keys: OnlineKeys,
    pub(super) publisher: Publisher,
    pub(super) pinned_root: Vec<u8>,
}

impl Fixture {
    pub(super) fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let keys = OnlineKeys {
            targets: signer(),
            snapshot: signer(),
            timestamp: signer(),
            namespaces: signer(),
        };
        let store = Store::open(dir.path().join("keyshare.db")).unwrap();
        let publisher = Publisher::init(
            store,
            keys.clone(),
            &[signer()],
            1,
            Options::default(),
            now(),
        )
        .unwrap();
        let pinned_root = publisher
            .file("metadata/1.root.json")
            .unwrap()
            .bytes
            .to_vec();
        Self {
            dir,
            keys,
            publisher,
            pinned_root,
        }
    }

    pub(super) fn reopen(self) -> Self {
        let Self {
            dir,
            keys,
            publisher,
            pinned_root,
        } = self;
        drop(publisher);
        let store = Store::open(dir.path().join("keyshare.db")).unwrap();
        let publisher = Publisher::open(store, keys.clone(), Options::default()).unwrap();
        Self {
            dir,
            keys,
            publisher,
            pinned_root,
        }
    }

    /// A client refresh from the published files, then every target asked
    /// for, verified; `None` when the target is not in the repository.
    pub(super) fn client_fetch(&self, at: OffsetDateTime, paths: &[&str]) -> Vec<Option<Vec<u8>>> {
        let mut updater = Updater::new(&self.pinned_root, at, Config::default()).unwrap();
        let fetch = |request: &keyshare_policy::client::Request| {
            if request.is_local() {
                None.into()
            } else {
                self.publisher
                    .file(&format!("metadata/{}", request.remote_name()))
                    .map(|f| f.bytes.to_vec())
                    .into()
            }
        };
        updater.refresh_with(fetch).unwrap();
        paths
            .iter()
            .map(
                |path| match updater.find_target_with(path, fetch).unwrap() {
                    Lookup::Found { target_file, .. } => {
                        let name = updater.target_remote_name(path, &target_file);
                        let bytes = self
                            .publisher
                            .file(&format!("targets/{name}"))
                            .unwrap()
                            .bytes
                            .to_vec();
                        verify_target(&target_file, path, &bytes).unwrap();
                        Some(bytes)
                    }
                    Lookup::NotFound => None,
                },
            )
            .collect()
    }

    /// The namespace index as a reader loads it: every index shard the
    /// top-level targets role lists, fetched and verified, then merged.
    pub(super) fn client_index(&self, at: OffsetDateTime) -> Namespaces {
        let mut updater = Updater::new(&self.pinned_root, at, Config::default()).unwrap();
        updater
            .refresh_with(|request| {
                self.publisher
                    .file(&format!("metadata/{}", request.remote_name()))
                    .map(|f| f.bytes.to_vec())
                    .into()
            })
            .unwrap();
        let paths: Vec<String> = updater
            .trusted()
            .targets("targets")
            .unwrap()
            .targets
            .keys()
            .filter(|p| is_index_path(p))
            .cloned()
            .collect();
        assert!(
            !paths.iter().any(|p| p == NAMESPACES_PATH),
            "the single index is not published"
        );
        let refs: Vec<&str> = paths.iter().map(String::as_str).collect();
        let docs = self.client_fetch(at, &refs);
        Namespaces::merge(
            paths
                .iter()
                .zip(docs)
                .map(|(p, d)| (p.as_str(), Namespaces::from_slice(&d.unwrap()).unwrap())),
        )
        .unwrap()
    }

    pub(super) fn timestamp_version(&self) -> u64 {
        self.publisher.metrics().versions["timestamp"]
    }
}

pub(super) fn create(name: &str, scope: &str) -> Change {
    Change::CreateNamespace {
        entry: NamespaceEntry {
            name: ns(name),
            scopes: vec![ArtifactPattern::parse(scope).unwrap()],
            maintainers: vec![format!("{name}@acme.example")],
        },
        threshold: NonZeroU32::MIN,
        allow_overlap: false,
    }
}

pub(super) fn trusted_key(signer: &InMemorySigner) -> TrustedKey {
    TrustedKey {
        id: signer.key_id().clone(),
        key: signer.public_key().clone(),
        not_before: None,
        not_after: None,
        ephemeral: false,
        description: Some("release key".into()),
        principal: None,
        layout_root: false,
    }
}

#[test]
fn init_publishes_a_repository_a_client_follows() {
    let f = Fixture::new();
    let docs = f.client_fetch(now(), &[REVOCATIONS_PATH, PEERS_PATH]);
    assert!(f.client_index(now()).namespaces.is_empty());
    Revocations::from_slice(docs[0].as_ref().unwrap()).unwrap();
    Peers::from_slice(docs[1].as_ref().unwrap()).unwrap();
    let audit = f.publisher.read(|s| s.audit_records(0, 10)).unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].action, "repository.init");
}

#[test]
fn init_refuses_a_store_that_already_holds_a_repository() {
    let f = Fixture::new();
    drop(f.publisher);
    let store = Store::open(f.dir.path().join("keyshare.db")).unwrap();
    let err = Publisher::init(
        store,
        f.keys.clone(),
        &[signer()],
        1,
        Options::default(),
        now(),
    )
    .unwrap_err();
    assert_eq!(status(&err), 409, "{err}");
}

#[test]
fn namespace_and_key_changes_are_published_and_decided_on() {
    let f = Fixture::new();
    let team_key = InMemorySigner::generate(Scheme::EcdsaP256Sha256).unwrap();
    let v0 = f.timestamp_version();
    let applied = f
        .publisher
        .apply(
            "token:admin",
            create("team-a", "registry.acme.io/team-a/**"),
            now(),
        )
        .unwrap();
    assert_eq!(applied.timestamp_version, v0 + 1);
    let bin = keyshare_policy::trust::namespace_bins(vec![], NonZeroU32::MIN)
        .role_for_target("namespaces/team-a/trust.json");
    assert!(
        applied
            .files
            .iter()
            .any(|p| p.ends_with(&format!(".{bin}.json"))),
        "{:?}",
        applied.files
    );
    assert!(
        !applied.files.iter().any(|p| p.ends_with(".team-a.json")),
        "no namespace role: {:?}",
        applied.files
    );
    f.publisher
        .apply(
            "token:admin",
            Change::AddKey {
                namespace: ns("team-a"),
                key: trusted_key(&team_key),
            },
            now(),
        )
        .unwrap();

    let docs = f.client_fetch(now(), &["namespaces/team-a/trust.json"]);
    let index = f.client_index(now());
    let doc =
        NamespaceTrust::from_target("namespaces/team-a/trust.json", docs[0].as_ref().unwrap())
            .unwrap();
    assert_eq!(doc.keys.len(), 1);
    let set = TrustSet::new(index, vec![doc], Revocations::default(), Peers::default()).unwrap();
    let signer = [SignerRef::KeyId(team_key.key_id().clone())];
    let decision = set.decide("registry.acme.io/team-a/app", &signer, now(), now());
    assert!(decision.is_trusted(), "{decision:?}");
    let outside = set.decide("registry.acme.io/team-b/app", &signer, now(), now());
    assert!(!outside.is_trusted(), "{outside:?}");

    // Superseded versions are still served (from the store).
    let first = f.publisher.file("metadata/1.snapshot.json").unwrap();
    assert!(first.immutable);
    assert!(String::from_utf8_lossy(&first.bytes).contains("\"version\":1"));

    let audit = f.publisher.read(|s| s.audit_records(0, 10)).unwrap();
    let actions: Vec<&str> = audit.iter().map(|r| r.action.as_str()).collect();
    assert_eq!(actions, ["repository.init", "namespace.create", "key.add"]);
    assert_eq!(audit[2].actor, "token:admin");
    f.publisher.read(|s| s.verify_audit_chain()).unwrap();
}

#[test]
fn refused_changes_publish_nothing() {
    let f = Fixture::new();
    let team_key = InMemorySigner::generate(Scheme::Ed25519).unwrap();
    f.publisher
        .apply(
            "admin",
            create("team-a", "registry.acme.io/team-a/**"),
            now(),
        )
        .unwrap();
    let add = Change::AddKey {
        namespace: ns("team-a"),
        key: trusted_key(&team_key),
    };
    f.publisher.apply("admin", add.clone(), now()).unwrap();
    let before = (
        f.timestamp_version(),
        f.publisher.read(|s| s.audit_head()).unwrap(),
        f.publisher.file("metadata/timestamp.json").unwrap(),
    );

    // Refused by the store: a duplicate, a missing namespace.
    let err = f.publisher.apply("admin", add, now()).unwrap_err();
    assert_eq!(status(&err), 409, "{err}");
    let missing = Change::RemoveKey {
        namespace: ns("team-z"),
        key_id: KeyId::new("nope"),
    };
    assert_eq!(
        status(&f.publisher.apply("admin", missing, now()).unwrap_err()),
        404
    );
    // Refused after the store applied it: a threshold above the keys listed
    // (checked for changes people make). The store accepted the row inside
    // the transaction, so this fails after the change was applied.
    let too_high = Change::SetThreshold {
        namespace: ns("team-a"),
        threshold: NonZeroU32::new(3).unwrap(),
    };
    let err = f.publisher.apply("admin", too_high, now()).unwrap_err();
    assert!(matches!(err, PublishError::Store(_)), "{err:?}");
    assert_eq!(status(&err), 400, "{err}");

    let after = (
        f.timestamp_version(),
        f.publisher.read(|s| s.audit_head()).unwrap(),
        f.publisher.file("metadata/timestamp.json").unwrap(),
    );
    assert_eq!(before, after);
    assert_eq!(
        f.publisher
            .read(|s| s.namespace("team-a"))
            .unwrap()
            .threshold
            .get(),
        1
    );

    // And the next change publishes the very next versions.
    f.publisher
        .apply(
            "admin",
            create("team-b", "registry.acme.io/team-b/**"),
            now(),
        )
        .unwrap();
    assert_eq!(f.timestamp_version(), before.0 + 1);
    let docs = f.client_fetch(
        now(),
        &[
            "namespaces/team-a/trust.json",
            "namespaces/team-b/trust.json",
        ],
    );
    assert!(docs.iter().all(Option::is_some));
}

#[test]
fn restart_continues_the_published_versions() {
    let f = Fixture::new();
    f.publisher
        .apply(
            "admin",
            create("team-a", "registry.acme.io/team-a/**"),
            now(),
        )
        .unwrap();
    let versions = f.publisher.metrics().versions;
    let f = f.reopen();
    assert_eq!(f.publisher.metrics().versions, versions);
    f.publisher
        .apply(
            "admin",
            create("team-b", "registry.acme.io/team-b/**"),
            now(),
        )
        .unwrap();
    assert_eq!(f.timestamp_version(), versions["timestamp"] + 1);
    let docs = f.client_fetch(
        now(),
        &[
            "namespaces/team-a/trust.json",
            "namespaces/team-b/trust.json",
        ],
    );
    assert!(docs.iter().all(Option::is_some));
}

/// After a restart the cache holds the metadata; a current trust document
/// is read from the store once and then kept in memory, an older one is
/// read from the store each time and not kept, and the next root (which
/// every client asks for) is known absent without a read.
#[test]
fn a_current_trust_document_read_after_a_restart_is_kept_an_older_one_is_not() {
    let f = Fixture::new();
    let doc_of = |applied: &keyshare_server::publisher::Applied| -> String {
        applied
            .files
            .iter()
            .find(|p| p.starts_with("targets/namespaces/team-a/"))
            .unwrap()
            .clone()
    };
    let first = doc_of(
        &f.publisher
            .apply(
                "admin",
                create("team-a", "registry.acme.io/team-a/**"),
                now(),
            )
            .unwrap(),
    );
    let signer = InMemorySigner::generate(Scheme::Ed25519).unwrap();
    let second = doc_of(
        &f.publisher
            .apply(
                "admin",
                Change::AddKey {
                    namespace: ns("team-a"),
                    key: trusted_key(&signer),
                },
                now(),
            )
            .unwrap(),
    );
    assert_ne!(first, second);
    let f = f.reopen();
    assert!(f.publisher.cached_file(&second).is_none());
    assert!(f.publisher.cached_file("metadata/1.root.json").is_some());
    let read = f.publisher.file(&second).unwrap();
    assert_eq!(f.publisher.cached_file(&second).unwrap().bytes, read.bytes);
    let old = f.publisher.file(&first).unwrap();
    assert_ne!(old.bytes, read.bytes);
    assert!(f.publisher.cached_file(&first).is_none());
    // Still the current one that is kept.
    assert!(f.publisher.cached_file(&second).is_some());
    // The next root is absent, the current one is served (that the next
    // one is answered from memory, without the store's lock, is
    // `http::read::a_flood_of_reads_missing_the_cache_takes_few_turns_at_the_store`).
    assert!(f.publisher.file("metadata/2.root.json").is_none());
    assert!(f.publisher.file("metadata/1.root.json").is_some());
}

#[test]
fn deleted_namespace_disappears_and_can_be_created_again() {
    let f = Fixture::new();
    f.publisher
        .apply(
            "admin",
            create("team-a", "registry.acme.io/team-a/**"),
            now(),
        )
        .unwrap();
    f.publisher
        .apply(
            "admin",
            Change::DeleteNamespace {
                namespace: ns("team-a"),
            },
            now(),
        )
        .unwrap();
    let docs = f.client_fetch(now(), &["namespaces/team-a/trust.json"]);
    assert!(f.client_index(now()).namespaces.is_empty());
    assert_eq!(
        docs[0], None,
        "an undelegated namespace's document is not reachable"
    );
    f.publisher
        .apply(
            "admin",
            create("team-a", "registry.acme.io/team-a/**"),
            now(),
        )
        .unwrap();
    let docs = f.client_fetch(now(), &["namespaces/team-a/trust.json"]);
    assert!(docs[0].is_some());
}

#[test]
fn revocations_and_peers_are_published() {
    let f = Fixture::new();
    f.publisher
        .apply(
            "admin",
            Change::AddRevocation {
                revocation: Revocation {
                    subject: RevokedSubject::Key(Sha256Hex::of(b"some key material")),
                    revoked_at: now(),
                    reason: "leaked in a build log".into(),
                },
                listed_as: None,
            },
            now(),
        )
        .unwrap();
    let docs = f.client_fetch(now(), &[REVOCATIONS_PATH]);
    let revocations = Revocations::from_slice(docs[0].as_ref().unwrap()).unwrap();
    assert_eq!(revocations.revocations.len(), 1);
    assert_eq!(revocations.revocations[0].reason, "leaked in a build log");
}

#[test]
fn expiring_metadata_is_resigned_before_it_expires() {
    let f = Fixture::new();
    let v = f.timestamp_version();
    assert!(f
        .publisher
        .refresh_expiring(Duration::hours(6), now())
        .unwrap()
        .is_empty());
    let later = now() + Duration::hours(20);
    let files = f
        .publisher
        .refresh_expiring(Duration::hours(6), later)
        .unwrap();
    assert!(
        files.contains(&"metadata/timestamp.json".to_owned()),
        "{files:?}"
    );
    assert_eq!(f.timestamp_version(), v + 1);
    // A client a day and a half later still gets fresh metadata.
    let docs = f.client_fetch(later + Duration::hours(10), &[PEERS_PATH]);
    assert!(docs[0].is_some());
}

#[test]
fn expired_ephemeral_keys_are_swept_and_republished() {
    let f = Fixture::new();
    f.publisher
        .apply(
            "admin",
            create("team-a", "registry.acme.io/team-a/**"),
            now(),
        )
        .unwrap();
    let ci = InMemorySigner::generate(Scheme::Ed25519).unwrap();
    let mut key = trusted_key(&ci);
    key.ephemeral = true;
    key.not_after = Some(now() + Duration::minutes(10));
    f.publisher
        .apply(
            "ci",
            Change::AddKey {
                namespace: ns("team-a"),
                key,
            },
            now(),
        )
        .unwrap();
    assert_eq!(
        f.publisher
            .sweep_ephemeral(now() + Duration::minutes(5))
            .unwrap(),
        0
    );
    assert_eq!(
        f.publisher
            .sweep_ephemeral(now() + Duration::minutes(11))
            .unwrap(),
        1
    );
    let docs = f.client_fetch(
        now() + Duration::minutes(11),
        &["namespaces/team-a/trust.json"],
    );
    let doc =
        NamespaceTrust::from_target("namespaces/team-a/trust.json", docs[0].as_ref().unwrap())
            .unwrap();
    assert!(doc.keys.is_empty());
    let audit = f.publisher.read(|s| s.audit_records(0, 10)).unwrap();
    assert_eq!(audit.last().unwrap().action, "ci.sweep");
}

#[test]
fn current_files_hold_every_metadata_and_target_file() {
    let f = Fixture::new();
    f.publisher
        .apply(
            "admin",
            create("team-a", "registry.acme.io/team-a/**"),
            now(),
        )
        .unwrap();
    let files = f.publisher.current_files().unwrap();
    let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
    for want in [
        "metadata/1.root.json",
        "metadata/timestamp.json",
        "metadata/2.targets.json",
        "metadata/1.bins-00.json",
    ] {
        assert!(paths.contains(&want), "{want} missing from {paths:?}");
    }
    assert!(
        paths
            .iter()
            .any(|p| p.starts_with("targets/namespaces/team-a/")),
        "{paths:?}"
    );
    assert!(
        paths
            .iter()
            .any(|p| p.starts_with("targets/org/namespaces/") && p.ends_with(".json")),
        "{paths:?}"
    );
    for file in &files {
        assert_eq!(
            f.publisher.file(&file.path).map(|c| c.bytes.to_vec()),
            Some(file.bytes.to_vec()),
            "{}",
            file.path
        );
    }
}

/// Metadata file names of a publish, without versions, sorted.
pub(super) fn metadata_roles(files: &[String]) -> Vec<String> {
    let mut roles: Vec<String> = files
        .iter()
        .filter_map(|p| p.strip_prefix("metadata/"))
        .map(|p| {
            p.split_once('.')
                .filter(|(v, _)| v.bytes().all(|b| b.is_ascii_digit()))
                .map_or(p, |(_, rest)| rest)
                .to_owned()
        })
        .collect();
    roles.sort();
    roles
}

#[test]
fn a_namespace_change_resigns_its_bin_shard_snapshot_and_timestamp_only() {
    let f = Fixture::new();
    let bins = keyshare_policy::trust::namespace_bins(vec![], NonZeroU32::MIN);
    let bin = keyshare_policy::trust::namespace_bin(&bins, &ns("team-a"));
    let bin_role = bins.bin_name(bin);
    assert_eq!(
        bin_role,
        bins.role_for_target("namespaces/team-a/trust.json")
    );
    let created = f
        .publisher
        .apply(
            "admin",
            create("team-a", "registry.acme.io/team-a/**"),
            now(),
        )
        .unwrap();
    assert_eq!(
        metadata_roles(&created.files),
        [
            format!("{bin_role}.json"),
            "snapshot.json".into(),
            "targets.json".into(),
            "timestamp.json".into(),
        ]
    );
    let shard = shard_path(keyshare_server::store::namespace_shard(&ns("team-a")));
    let shard_dir = shard.rsplit_once('/').unwrap().0;
    let shard_name = shard.rsplit_once('/').unwrap().1;
    assert!(
        created
            .files
            .iter()
            .any(|p| p.starts_with(&format!("targets/{shard_dir}/")) && p.ends_with(shard_name)),
        "{:?}",
        created.files
    );

    // A second namespace in another bin: the first bin is not re-signed.
    let other = (0..100)
        .map(|i| format!("team-{i}"))
        .find(|n| keyshare_policy::trust::namespace_bin(&bins, &ns(n)) != bin)
        .unwrap();
    let created = f
        .publisher
        .apply("admin", create(&other, &format!("r.io/{other}/**")), now())
        .unwrap();
    assert!(
        !created.files.iter().any(|p| p.contains(bin_role.as_str())),
        "{:?}",
        created.files
    );

    // A key: the namespace's bin, snapshot, timestamp.
    let key = InMemorySigner::generate(Scheme::Ed25519).unwrap();
    let added = f
        .publisher
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
            format!("{bin_role}.json"),
            "snapshot.json".into(),
            "timestamp.json".into()
        ]
    );

    // A delete: the bin, targets (the shard is gone), snapshot, timestamp.
    let deleted = f
        .publisher
        .apply(
            "admin",
            Change::DeleteNamespace {
                namespace: ns("team-a"),
            },
            now(),
        )
        .unwrap();
    assert_eq!(
        metadata_roles(&deleted.files),
        [
            format!("{bin_role}.json"),
            "snapshot.json".into(),
            "targets.json".into(),
            "timestamp.json".into(),
        ]
    );
    let index = f.client_index(now());
    let names: Vec<&str> = index.namespaces.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, [other.as_str()]);
}

#[test]
fn superseded_versions_are_pruned_after_the_retention_and_the_rest_verifies() {
    let mut f = Fixture::new();
    f.publisher.set_retention(Some(Duration::hours(1)));
    for name in ["team-a", "team-b"] {
        f.publisher
            .apply("admin", create(name, &format!("r.io/{name}/**")), now())
            .unwrap();
    }
    let later = now() + Duration::minutes(30);
    let key = InMemorySigner::generate(Scheme::Ed25519).unwrap();
    let add = |at| {
        f.publisher
            .apply(
                "admin",
                Change::RemoveKey {
                    namespace: ns("team-a"),
                    key_id: key.key_id().clone(),
                },
                at,
            )
            .ok();
        f.publisher
            .apply(
                "admin",
                Change::AddKey {
                    namespace: ns("team-a"),
                    key: trusted_key(&key),
                },
                at,
            )
            .unwrap()
    };
    add(later);
    // Superseded 30 minutes ago: still served to clients mid-refresh.
    assert!(f.publisher.file("metadata/1.snapshot.json").is_some());
    let much_later = now() + Duration::hours(3);
    add(much_later);
    assert!(
        f.publisher.file("metadata/1.snapshot.json").is_none(),
        "superseded 3 hours ago: pruned"
    );
    assert!(f.publisher.file("metadata/1.root.json").is_some());
    // Every current file is still there, and a client verifies all of it.
    for file in f.publisher.current_files().unwrap() {
        assert!(f.publisher.file(&file.path).is_some(), "{}", file.path);
    }
    let docs = f.client_fetch(
        much_later,
        &[
            "namespaces/team-a/trust.json",
            "namespaces/team-b/trust.json",
            PEERS_PATH,
            REVOCATIONS_PATH,
        ],
    );
    assert!(docs.iter().all(Option::is_some));
    assert_eq!(f.client_index(much_later).namespaces.len(), 2);
    // And the server restarts from what is left.
    let versions = f.publisher.metrics().versions;
    let f = f.reopen();
    assert_eq!(f.publisher.metrics().versions, versions);
    // With no more writes, pruning on its own drops what the last publish
    // superseded, and the repository still verifies.
    let idle = much_later + Duration::hours(2);
    assert!(f.publisher.prune(idle).unwrap() > 0);
    assert_eq!(f.publisher.prune(idle).unwrap(), 0);
    let docs = f.client_fetch(idle, &["namespaces/team-a/trust.json"]);
    assert!(docs[0].is_some());
}

#[test]
fn a_store_in_the_earlier_layout_is_refused_with_one_clear_error() {
    // What the earlier server published: namespace roles delegated
    // directly from top-level targets, one org/namespaces.json.
    let dir = tempfile::tempdir().unwrap();
    let keys = OnlineKeys {
        targets: signer(),
        snapshot: signer(),
        timestamp: signer(),
        namespaces: signer(),
    };
    let mut repo = keyshare_policy::repo::Repository::create(
        &[signer()],
        1,
        [
            ("targets", vec![keys.targets.clone()]),
            ("snapshot", vec![keys.snapshot.clone()]),
            ("timestamp", vec![keys.timestamp.clone()]),
        ],
        Options::default(),
        now(),
    )
    .unwrap();
    let key = &keys.namespaces;
    repo.delegate(
        "targets",
        keyshare_policy::metadata::DelegatedRole {
            name: keyshare_policy::metadata::RoleName::new("team-a"),
            keyids: vec![key.key_id().clone()],
            threshold: NonZeroU32::MIN,
            terminating: true,
            paths: Some(vec![keyshare_policy::pattern::PathPattern::new(
                "namespaces/team-a/*",
            )]),
            path_hash_prefixes: None,
            unrecognized: keyshare_policy::metadata::Unrecognized::new(),
        },
        vec![(key.key_id().clone(), key.public_key().clone())],
        vec![key.clone()],
        now(),
    )
    .unwrap();
    let mut files = vec![repo
        .set_target("targets", NAMESPACES_PATH, b"{}", None)
        .unwrap()];
    files.extend(repo.commit(now()).unwrap());
    let mut store = Store::open(dir.path().join("keyshare.db")).unwrap();
    store
        .transaction_at(now(), |tx| tx.record_published(&files))
        .unwrap();

    let err = Publisher::open(store, keys, Options::default()).unwrap_err();
    assert!(matches!(err, PublishError::Layout(_)), "{err:?}");
    let message = err.to_string();
    assert!(!message.contains('\n'), "{message}");
    assert!(
        message.contains("earlier layout") && message.contains("keyshare-server init"),
        "{message}"
    );
}

#[test]
fn a_bin_signed_by_the_namespaces_key_is_refused() {
    // The bins decide which key signs which namespace: only the targets key
    // may sign them, so the namespaces key cannot re-assign a namespace.
    let f = Fixture::new();
    f.publisher
        .apply(
            "admin",
            create("team-a", "registry.acme.io/team-a/**"),
            now(),
        )
        .unwrap();
    let bins = keyshare_policy::trust::namespace_bins(vec![], NonZeroU32::MIN);
    let bin = bins.role_for_target("namespaces/team-a/trust.json");
    let targets_meta = f.publisher.file("metadata/2.targets.json").unwrap();
    let targets = keyshare_policy::metadata::Envelope::<keyshare_policy::metadata::Targets>::parse(
        "targets",
        &targets_meta.bytes,
    )
    .unwrap();
    let bin_meta = f.publisher.file(&format!("metadata/2.{bin}.json")).unwrap();
    let published: keyshare_policy::metadata::Signed<keyshare_policy::metadata::Targets> =
        serde_json::from_slice(&bin_meta.bytes).unwrap();
    let authority =
        keyshare_policy::verify::Authority::from_delegator(&targets.signed, bin.as_str()).unwrap();
    let check = |signed: &keyshare_policy::metadata::Signed<keyshare_policy::metadata::Targets>| {
        let bytes = keyshare_policy::sign::to_bytes(signed).unwrap();
        let env = keyshare_policy::metadata::Envelope::<keyshare_policy::metadata::Targets>::parse(
            bin.as_str(),
            &bytes,
        )
        .unwrap();
        authority.check(bin.as_str(), &env)
    };
    check(&published).unwrap();
    let forged =
        keyshare_policy::sign::sign(published.signed.clone(), &[f.keys.namespaces.as_ref()])
            .unwrap();
    let err = check(&forged).unwrap_err();
    assert!(
        matches!(err, keyshare_policy::Error::ThresholdNotMet { .. }),
        "{err}"
    );
}
