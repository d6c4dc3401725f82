//! Trust documents built from the store parse with the policy parsers,
//! hold what was stored, and drive the trust decision.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use super::support::*;
use keyshare_policy::trust::{
    CaCert, NamespaceTrust, Namespaces, Peers, Reason, Revocations, SignerRef, SubDelegation,
    SubjectName, TrustSet, X509Identity,
};
use keyshare_server::store::{Error, Store};
use time::macros::datetime;

struct Fixture {
    /// Keeps the temporary directory alive.
    _scratch: Scratch,
    store: Store,
    release: keyshare_policy::trust::TrustedKey,
    ci: keyshare_policy::trust::TrustedKey,
    revoked: keyshare_policy::trust::TrustedKey,
}

fn fixture() -> Fixture {
    let scratch = Scratch::new();
    let mut store = scratch.open();
    let mut release = trusted_key();
    release.description = Some("release signing".into());
    release.not_before = Some(datetime!(2025-01-01 00:00:00 UTC));
    let mut ci = trusted_key();
    ci.ephemeral = true;
    ci.not_after = Some(datetime!(2026-01-02 03:14:05 UTC));
    let revoked = trusted_key();
    let (r, c, v) = (release.clone(), ci.clone(), revoked.clone());
    store
        .transaction_at(T0, |tx| {
            tx.create_namespace(&entry("team-a", &["registry.acme.io/team-a/**"]), nz(1))?;
            tx.create_namespace(&entry("team-b", &["registry.acme.io/team-b/**"]), nz(1))?;
            tx.add_key(&ns("team-a"), &r)?;
            tx.add_key(&ns("team-a"), &c)?;
            tx.add_key(&ns("team-b"), &v)?;
            tx.add_identity(
                &ns("team-a"),
                &X509Identity {
                    name: "team-a-ca".into(),
                    ca_certs: vec![CaCert::parse(&ca_pem("Team A CA")).unwrap()],
                    subject: SubjectName::parse("CN=team-a").unwrap(),
                    not_before: None,
                    not_after: None,
                },
            )?;
            tx.add_sub_delegation(
                &ns("team-a"),
                &SubDelegation {
                    name: "nightly".into(),
                    scopes: vec![pattern("registry.acme.io/team-a/nightly/**")],
                    threshold: nz(1),
                    keys: vec![trusted_key()],
                },
            )?;
            tx.add_revocation(&key_revocation(&v, "key leaked"), None)?;
            tx.put_peer(&peer("partner", "partner.example/**"))?;
            Ok::<_, Error>(())
        })
        .unwrap();
    Fixture {
        _scratch: scratch,
        store,
        release,
        ci,
        revoked,
    }
}

#[test]
fn namespace_document_parses_from_its_target_path_and_lists_what_was_stored() {
    let f = fixture();
    let doc = f.store.namespace_document("team-a").unwrap();
    let bytes = doc.to_vec().unwrap();
    let parsed = NamespaceTrust::from_target("namespaces/team-a/trust.json", &bytes).unwrap();
    assert_eq!(parsed, doc);
    assert_eq!(parsed.namespace.as_str(), "team-a");
    assert_eq!(parsed.threshold, nz(1));
    let mut expected = vec![f.release.clone(), f.ci.clone()];
    expected.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(parsed.keys, expected);
    assert_eq!(parsed.identities.len(), 1);
    assert_eq!(parsed.identities[0].name, "team-a-ca");
    assert_eq!(parsed.sub_delegations.len(), 1);
    assert_eq!(parsed.sub_delegations[0].name, "nightly");
    // The document carries no scopes: those are the organization's.
    let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert!(json.get("scopes").is_none());
}

#[test]
fn namespaces_index_revocations_and_peers_parse_and_hold_the_store() {
    let f = fixture();
    let index =
        Namespaces::from_slice(&f.store.namespaces_index().unwrap().to_vec().unwrap()).unwrap();
    let names: Vec<_> = index.namespaces.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["team-a", "team-b"]);
    assert_eq!(
        index.get("team-a").unwrap().scopes[0].as_str(),
        "registry.acme.io/team-a/**"
    );
    assert_eq!(
        index.get("team-a").unwrap().maintainers,
        ["team-a-owners@acme.example"]
    );

    let revocations =
        Revocations::from_slice(&f.store.revocations_document().unwrap().to_vec().unwrap())
            .unwrap();
    assert_eq!(
        revocations.revocations,
        vec![key_revocation(&f.revoked, "key leaked")]
    );

    let peers = Peers::from_slice(&f.store.peers_document().unwrap().to_vec().unwrap()).unwrap();
    assert_eq!(peers.peers, vec![peer("partner", "partner.example/**")]);
}

#[test]
fn empty_store_builds_empty_org_documents() {
    let s = Scratch::new();
    let store = s.open();
    assert!(store.namespaces_index().unwrap().namespaces.is_empty());
    assert!(store.revocations_document().unwrap().revocations.is_empty());
    assert!(store.peers_document().unwrap().peers.is_empty());
}

#[test]
fn documents_from_the_store_drive_the_trust_decision() {
    let f = fixture();
    let set = TrustSet::new(
        f.store.namespaces_index().unwrap(),
        vec![
            f.store.namespace_document("team-a").unwrap(),
            f.store.namespace_document("team-b").unwrap(),
        ],
        f.store.revocations_document().unwrap(),
        f.store.peers_document().unwrap(),
    )
    .unwrap();
    let now = T0;
    let trusted = set.decide(
        "registry.acme.io/team-a/app",
        &[SignerRef::KeyId(f.release.id.clone())],
        now,
        now,
    );
    assert!(trusted.is_trusted(), "{trusted:?}");
    let revoked = set.decide(
        "registry.acme.io/team-b/app",
        &[SignerRef::KeyId(f.revoked.id.clone())],
        now,
        now,
    );
    assert!(
        matches!(
            revoked,
            keyshare_policy::trust::Decision::Untrusted {
                reason: Reason::Revoked { .. }
            }
        ),
        "{revoked:?}"
    );
    // The CI key is ephemeral: trusted before its not_after, not after.
    let ci = |at| {
        set.decide(
            "registry.acme.io/team-a/app",
            &[SignerRef::KeyId(f.ci.id.clone())],
            T0,
            at,
        )
    };
    assert!(ci(T0).is_trusted());
    assert!(!ci(T0 + time::Duration::minutes(11)).is_trusted());
}

#[test]
fn namespace_whose_threshold_exceeds_its_keys_is_built_as_it_is() {
    // The expiry sweep can leave a namespace so: the document says it, and
    // verifiers decide that nobody meets the threshold.
    let f = fixture();
    let mut store = f.store;
    store
        .transaction_at(T0, |tx| {
            tx.create_namespace(&entry("team-c", &["c/**"]), nz(2))
        })
        .unwrap();
    store
        .transaction_at(T0, |tx| tx.add_key(&ns("team-c"), &trusted_key()))
        .unwrap();
    let doc = store.namespace_document("team-c").unwrap();
    assert_eq!(doc.threshold.get(), 2);
    assert_eq!(doc.keys.len(), 1);
    assert_not_found(store.namespace_document("team-z"), "namespace");
}

#[test]
fn a_document_that_cannot_be_built_is_an_error_naming_its_path() {
    let f = fixture();
    let mut store = f.store;
    let mut key = trusted_key();
    key.description = Some("two\nlines".into());
    store
        .transaction_at(T0, |tx| tx.add_key(&ns("team-a"), &key))
        .unwrap();
    match store.namespace_document("team-a") {
        Err(Error::Document { path, source }) => {
            assert_eq!(path, "namespaces/team-a/trust.json");
            assert!(source.to_string().contains("description"), "{source}");
        }
        other => panic!("expected Document error, got {other:?}"),
    }
    // The index is still fine: keys are not part of it.
    assert_eq!(store.namespaces_index().unwrap().namespaces.len(), 2);
}

#[test]
fn documents_built_inside_a_transaction_see_its_uncommitted_change() {
    let f = fixture();
    let mut store = f.store;
    let extra = trusted_key();
    let result: Result<(), Error> = store.transaction_at(T0, |tx| {
        tx.add_key(&ns("team-a"), &extra)?;
        let doc = tx.namespace_document("team-a")?;
        assert!(doc.keys.iter().any(|k| k.id == extra.id));
        Err(Error::Invalid {
            field: "test".into(),
            message: "publish failed".into(),
        })
    });
    assert!(result.is_err());
    let doc = store.namespace_document("team-a").unwrap();
    assert!(!doc.keys.iter().any(|k| k.id == extra.id));
}
