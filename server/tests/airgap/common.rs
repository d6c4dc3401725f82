//! Helpers shared by the air-gap tests: an origin publisher with
//! namespaces, keys, a revocation and a peer; bundles; and a TrustSet built
//! by running policy's TUF client over any source of repository files.

#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::num::NonZeroU32;

use keyshare_policy::keys::Scheme;
use keyshare_policy::pattern::ArtifactPattern;
use keyshare_policy::repo::Options;
use keyshare_policy::sign::{InMemorySigner, Signer};
use keyshare_policy::trust::{Decision, NamespaceEntry, SignerRef, TrustSet, TrustedKey};
use keyshare_server::airgap::export;
use keyshare_server::publisher::{Change, OnlineKeys, Publisher};
use keyshare_server::store::Store;
use serde_json::json;
use time::{Duration, OffsetDateTime};

use keyshare_testkit::ns;
pub use keyshare_testkit::signer;

/// An origin: a publisher in a temporary directory, with its pinned root.
pub struct Origin {
    pub dir: tempfile::TempDir,
    pub publisher: Publisher,
    pub pinned_root: Vec<u8>,
    /// Keys listed in namespaces: `team-a`'s (trusted) and `team-b`'s
    /// (revoked).
    pub team_a_key: InMemorySigner,
    pub team_b_key: InMemorySigner,
    pub now: OffsetDateTime,
    /// The online keys.
    pub keys: OnlineKeys,
}

pub fn create(name: &str, scope: &str) -> Change {
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

pub fn add_key(namespace: &str, signer: &InMemorySigner) -> Change {
    Change::AddKey {
        namespace: ns(namespace),
        key: TrustedKey {
            id: signer.key_id().clone(),
            key: signer.public_key().clone(),
            not_before: None,
            not_after: None,
            ephemeral: false,
            description: None,
            principal: None,
            layout_root: false,
        },
    }
}

impl Origin {
    /// A repository with namespaces `team-a` and `team-b` (one key each),
    /// `team-b`'s key revoked, and a terminating peer for
    /// `registry.partner.example/**`.
    pub fn new(now: OffsetDateTime) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let keys = OnlineKeys {
            targets: signer(),
            snapshot: signer(),
            timestamp: signer(),
            namespaces: signer(),
        };
        let store = Store::open(dir.path().join("keyshare.db")).unwrap();
        let publisher =
            Publisher::init(store, keys.clone(), &[signer()], 1, Options::default(), now).unwrap();
        let pinned_root = publisher
            .file("metadata/1.root.json")
            .unwrap()
            .bytes
            .to_vec();
        let origin = Self {
            dir,
            publisher,
            pinned_root,
            team_a_key: InMemorySigner::generate(Scheme::Ed25519).unwrap(),
            team_b_key: InMemorySigner::generate(Scheme::EcdsaP256Sha256).unwrap(),
            now,
            keys,
        };
        origin.apply(create("team-a", "registry.acme.io/team-a/**"));
        origin.apply(create("team-b", "registry.acme.io/team-b/**"));
        origin.apply(add_key("team-a", &origin.team_a_key));
        origin.apply(add_key("team-b", &origin.team_b_key));
        origin.apply(Change::AddRevocation {
            revocation: serde_json::from_value(json!({
                "subject": {"spki_sha256": origin.team_b_key.public_key().fingerprint(origin.team_b_key.key_id()).unwrap()},
                "revoked_at": "2000-01-01T00:00:00Z",
                "reason": "laptop lost"
            }))
            .unwrap(),
            listed_as: None,
        });
        origin.apply(Change::PutPeer {
            peer: serde_json::from_value(json!({
                "name": "partner",
                "patterns": ["registry.partner.example/**"],
                "url": "https://keyshare.partner.example",
                "root": {"sha256": "0d5b3c7f9e2a41b6c8d0e1f2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6"},
                "terminating": true
            }))
            .unwrap(),
        });
        origin
    }

    /// The same origin rewritten into the layout of earlier versions (a
    /// role per namespace delegated from its bin,
    /// [`keyshare_testkit::legacy`]), its publisher reopened on it: the
    /// next publish migrates.
    pub fn into_legacy(self) -> Self {
        let Self {
            dir,
            publisher,
            pinned_root,
            team_a_key,
            team_b_key,
            now,
            keys,
        } = self;
        drop(publisher);
        let db = dir.path().join("keyshare.db");
        let mut store = Store::open(&db).unwrap();
        let last = store.last_published().unwrap().unwrap();
        let legacy = keyshare_testkit::legacy::LegacyKeys {
            targets: keys.targets.clone(),
            snapshot: keys.snapshot.clone(),
            timestamp: keys.timestamp.clone(),
            namespaces: keys.namespaces.clone(),
        };
        let files =
            keyshare_testkit::legacy::into_namespace_roles(&last.as_published(), &legacy, now);
        store
            .transaction_at(now, |tx| tx.record_published(&files))
            .unwrap();
        drop(store);
        let publisher =
            Publisher::open(Store::open(&db).unwrap(), keys.clone(), Options::default()).unwrap();
        Self {
            dir,
            publisher,
            pinned_root,
            team_a_key,
            team_b_key,
            now,
            keys,
        }
    }

    pub fn apply(&self, change: Change) {
        self.publisher
            .apply("token:test", change, self.now)
            .unwrap();
    }

    /// Adds `n` namespaces `bulk-<i>` with one key each (for bigger bundles).
    pub fn add_bulk(&self, n: usize) {
        for i in 0..n {
            let name = format!("bulk-{i}");
            self.apply(create(&name, &format!("registry.acme.io/{name}/**")));
            let key = InMemorySigner::generate(Scheme::Ed25519).unwrap();
            self.apply(add_key(&name, &key));
        }
    }

    /// A bundle of the current state valid for `valid_for`, exported at `at`.
    pub fn export(&self, valid_for: Duration, at: OffsetDateTime) -> Vec<u8> {
        let mut out = Vec::new();
        export(
            &self.publisher,
            "token:test",
            valid_for,
            at,
            &mut out,
            &mut |_, _| {},
        )
        .unwrap();
        out
    }

    /// The origin's files, as its read API serves them.
    pub fn fetch(&self) -> impl Fn(&str) -> Option<Vec<u8>> + '_ {
        |path| self.publisher.file(path).map(|f| f.bytes.to_vec())
    }
}

/// Runs policy's TUF client (pinned to `pinned_root`, at `now`) over the
/// files `fetch` gives by repository path, downloads every trust document
/// and builds the TrustSet from them.
pub fn trust_set(
    pinned_root: &[u8],
    now: OffsetDateTime,
    fetch: &dyn Fn(&str) -> Option<Vec<u8>>,
) -> keyshare_policy::Result<TrustSet> {
    keyshare_testkit::read_trust_set(pinned_root, now, fetch)
}

/// The decisions compared between origin and replica: trusted, revoked,
/// key not listed, peer, no namespace.
pub fn decisions(origin: &Origin, set: &TrustSet, at: OffsetDateTime) -> Vec<Decision> {
    let a = SignerRef::KeyId(origin.team_a_key.key_id().clone());
    let b = SignerRef::KeyId(origin.team_b_key.key_id().clone());
    let cases: [(&str, &SignerRef); 6] = [
        ("registry.acme.io/team-a/app", &a),
        ("registry.acme.io/team-b/app", &b),
        ("registry.acme.io/team-b/app", &a),
        ("registry.partner.example/x", &a),
        ("registry.other.example/x", &a),
        ("registry.acme.io/team-a/app", &b),
    ];
    cases
        .iter()
        .map(|(artifact, signer)| set.decide(artifact, std::slice::from_ref(*signer), at, at))
        .collect()
}
