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
use std::sync::Arc;

use keyshare_policy::client::{verify_target, Config, Lookup, Updater};
use keyshare_policy::keys::Scheme;
use keyshare_policy::metadata::KeyId;
use keyshare_policy::pattern::ArtifactPattern;
use keyshare_policy::repo::{Options, SharedSigner};
use keyshare_policy::sign::{InMemorySigner, Signer};
use keyshare_policy::trust::{
    NamespaceEntry, NamespaceName, NamespaceTrust, Namespaces, Peers, Revocation, Revocations,
    RevokedSubject, SignerRef, TrustSet, TrustedKey, NAMESPACES_PATH, PEERS_PATH, REVOCATIONS_PATH,
};
use keyshare_server::publisher::{Change, OnlineKeys, PublishError, Publisher};
use keyshare_server::store::Store;
use time::{Duration, OffsetDateTime};

fn now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_900_000_000).unwrap()
}

fn signer() -> SharedSigner {
    Arc::new(InMemorySigner::generate(Scheme::Ed25519).unwrap())
}

struct Fixture {
    dir: tempfile::TempDir,
    keys: OnlineKeys,
    publisher: Publisher,
    pinned_root: Vec<u8>,
}

impl Fixture {
    fn new() -> Self {
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

    fn reopen(self) -> Self {
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
    fn client_fetch(&self, at: OffsetDateTime, paths: &[&str]) -> Vec<Option<Vec<u8>>> {
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

    fn timestamp_version(&self) -> u64 {
        self.publisher.metrics().versions["timestamp"]
    }
}

fn ns(name: &str) -> NamespaceName {
    NamespaceName::parse(name).unwrap()
}

fn create(name: &str, scope: &str) -> Change {
    Change::CreateNamespace {
        entry: NamespaceEntry {
            name: ns(name),
            scopes: vec![ArtifactPattern::parse(scope).unwrap()],
            maintainers: vec![format!("{name}@acme.example")],
        },
        threshold: NonZeroU32::MIN,
    }
}

fn trusted_key(signer: &InMemorySigner) -> TrustedKey {
    TrustedKey {
        id: signer.key_id().clone(),
        key: signer.public_key().clone(),
        not_before: None,
        not_after: None,
        ephemeral: false,
        description: Some("release key".into()),
    }
}

#[test]
fn init_publishes_a_repository_a_client_follows() {
    let f = Fixture::new();
    let docs = f.client_fetch(now(), &[NAMESPACES_PATH, REVOCATIONS_PATH, PEERS_PATH]);
    let index = Namespaces::from_slice(docs[0].as_ref().unwrap()).unwrap();
    assert!(index.namespaces.is_empty());
    Revocations::from_slice(docs[1].as_ref().unwrap()).unwrap();
    Peers::from_slice(docs[2].as_ref().unwrap()).unwrap();
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
    assert_eq!(err.status(), 409, "{err}");
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
    assert!(
        applied.files.iter().any(|p| p.ends_with(".team-a.json")),
        "{:?}",
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

    let docs = f.client_fetch(now(), &[NAMESPACES_PATH, "namespaces/team-a/trust.json"]);
    let index = Namespaces::from_slice(docs[0].as_ref().unwrap()).unwrap();
    let doc =
        NamespaceTrust::from_target("namespaces/team-a/trust.json", docs[1].as_ref().unwrap())
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
    assert_eq!(err.status(), 409, "{err}");
    let missing = Change::RemoveKey {
        namespace: ns("team-z"),
        key_id: KeyId::new("nope"),
    };
    assert_eq!(
        f.publisher
            .apply("admin", missing, now())
            .unwrap_err()
            .status(),
        404
    );
    // Refused when the rebuilt document is checked: threshold above the keys
    // listed. The store accepted the row inside the transaction, so this
    // fails after the change was applied and the repository was staged.
    let too_high = Change::SetThreshold {
        namespace: ns("team-a"),
        threshold: NonZeroU32::new(3).unwrap(),
    };
    let err = f.publisher.apply("admin", too_high, now()).unwrap_err();
    assert!(matches!(err, PublishError::Store(_)), "{err:?}");
    assert_eq!(err.status(), 400, "{err}");

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
    let docs = f.client_fetch(now(), &[NAMESPACES_PATH, "namespaces/team-a/trust.json"]);
    assert!(Namespaces::from_slice(docs[0].as_ref().unwrap())
        .unwrap()
        .namespaces
        .is_empty());
    assert_eq!(
        docs[1], None,
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
                    subject: RevokedSubject::KeyId(KeyId::new("leaked")),
                    revoked_at: now(),
                    reason: "leaked in a build log".into(),
                },
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
    let docs = f.client_fetch(later + Duration::hours(10), &[NAMESPACES_PATH]);
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
            .any(|p| p.starts_with("targets/org/") && p.ends_with(".namespaces.json")),
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
