//! Helpers shared by the trust tests (`mod support;` of `main.rs`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::num::NonZeroU32;

use keyshare_policy::keys::Scheme;
use keyshare_policy::metadata::KeyId;
use keyshare_policy::pattern::ArtifactPattern;
use keyshare_policy::sign::{InMemorySigner, Signer};
use keyshare_policy::trust::{
    Decision, NamespaceEntry, NamespaceName, NamespaceTrust, Namespaces, NamespacesFormat, Peers,
    Reason, Revocations, SignerRef, TrustFormat, TrustSet, TrustedKey,
};
use keyshare_policy::Error;
use time::OffsetDateTime;

/// A fresh Ed25519 signer.
pub(crate) fn signer() -> InMemorySigner {
    InMemorySigner::generate(Scheme::Ed25519).unwrap()
}

/// A key entry for `s` under its conventional id, no window.
pub(crate) fn key(s: &InMemorySigner) -> TrustedKey {
    TrustedKey {
        id: s.key_id().clone(),
        key: s.public_key().clone(),
        not_before: None,
        not_after: None,
        ephemeral: false,
        description: None,
        principal: None,
        layout_root: false,
    }
}

pub(crate) fn pattern(p: &str) -> ArtifactPattern {
    ArtifactPattern::parse(p).unwrap()
}

pub(crate) fn nz(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap()
}

/// A namespace as the tests build it: what the organization grants it
/// (`org/namespaces.json`) and what the team publishes (`trust.json`).
#[derive(Clone, Debug)]
pub(crate) struct Ns {
    pub(crate) entry: NamespaceEntry,
    pub(crate) doc: NamespaceTrust,
}

/// A namespace granted `scopes` whose document lists keys only.
pub(crate) fn namespace(name: &str, scopes: &[&str], threshold: u32, keys: Vec<TrustedKey>) -> Ns {
    Ns {
        entry: entry(name, scopes),
        doc: document(name, threshold, keys),
    }
}

/// The organization's entry for a namespace, with one maintainer.
pub(crate) fn entry(name: &str, scopes: &[&str]) -> NamespaceEntry {
    NamespaceEntry {
        name: ns_name(name),
        scopes: scopes.iter().map(|s| pattern(s)).collect(),
        maintainers: vec![format!("{name}-owners@acme.example")],
    }
}

/// A namespace's trust document with keys only.
pub(crate) fn document(name: &str, threshold: u32, keys: Vec<TrustedKey>) -> NamespaceTrust {
    NamespaceTrust {
        format: TrustFormat::V1,
        namespace: ns_name(name),
        threshold: nz(threshold),
        keys,
        identities: vec![],
        sub_delegations: vec![],
        revocations: vec![],
    }
}

/// `org/namespaces.json` listing `entries`.
pub(crate) fn index(entries: Vec<NamespaceEntry>) -> Namespaces {
    Namespaces {
        format: NamespacesFormat,
        namespaces: entries,
    }
}

/// The index and the documents of `namespaces`.
pub(crate) fn split(namespaces: Vec<Ns>) -> (Namespaces, Vec<NamespaceTrust>) {
    let (entries, docs) = namespaces.into_iter().map(|n| (n.entry, n.doc)).unzip();
    (index(entries), docs)
}

pub(crate) fn ns_name(name: &str) -> NamespaceName {
    NamespaceName::parse(name).unwrap()
}

pub(crate) fn set(namespaces: Vec<Ns>) -> TrustSet {
    set_with(namespaces, Revocations::default(), Peers::default())
}

pub(crate) fn set_with(namespaces: Vec<Ns>, revocations: Revocations, peers: Peers) -> TrustSet {
    let (index, docs) = split(namespaces);
    TrustSet::new(index, docs, revocations, peers).unwrap()
}

pub(crate) fn by_id(s: &InMemorySigner) -> SignerRef {
    SignerRef::KeyId(s.key_id().clone())
}

pub(crate) fn id(s: &InMemorySigner) -> KeyId {
    s.key_id().clone()
}

/// A fixed "current" time for tests: 2030-06-01T12:00:00Z.
pub(crate) fn now() -> OffsetDateTime {
    time::macros::datetime!(2030-06-01 12:00 UTC)
}

pub(crate) fn secs(n: i64) -> time::Duration {
    time::Duration::seconds(n)
}

/// The reason of an untrusted decision, or a panic naming the decision.
pub(crate) fn reason(d: Decision) -> Reason {
    match d {
        Decision::Untrusted { reason } => reason,
        other => panic!("expected an untrusted decision, got {other}"),
    }
}

/// The `(what, path)` of a malformed-document error, or a panic naming the error.
pub(crate) fn malformed(r: Result<impl std::fmt::Debug, Error>) -> (String, String) {
    match r {
        Err(Error::Malformed { what, path, .. }) => (what, path),
        other => panic!("expected a malformed-document error, got {other:?}"),
    }
}
