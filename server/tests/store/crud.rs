//! Every create/read/update/delete path, with duplicates and missing things.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use super::support::*;
use keyshare_policy::trust::{
    CaCert, NamespaceName, RevokedSubject, Sha256Hex, SubDelegation, SubjectName, X509Identity,
};
use keyshare_server::store::{Error, Store};
use time::macros::datetime;

fn with_namespace(s: &Scratch, name: &str, scope: &str) -> Store {
    let mut store = s.open();
    store
        .transaction_at(T0, |tx| tx.create_namespace(&entry(name, &[scope]), nz(1)))
        .unwrap();
    store
}

#[test]
fn namespace_create_show_list_update_delete() {
    let s = Scratch::new();
    let mut store = with_namespace(&s, "team-b", "b/**");
    store
        .transaction_at(T0, |tx| {
            tx.create_namespace(&entry("team-a", &["a/**", "x/*"]), nz(2))
        })
        .unwrap();
    let a = store.namespace("team-a").unwrap();
    assert_eq!(a.entry, entry("team-a", &["a/**", "x/*"]));
    assert_eq!(a.threshold, nz(2));
    assert_eq!(a.created_at, T0);
    let names: Vec<_> = store
        .namespaces()
        .unwrap()
        .into_iter()
        .map(|n| n.entry.name.to_string())
        .collect();
    assert_eq!(names, ["team-a", "team-b"]);

    let mut changed = entry("team-a", &["a/**"]);
    changed.maintainers = vec!["new-owner@acme.example".into()];
    store
        .transaction_at(T0, |tx| tx.update_namespace(&changed, nz(1)))
        .unwrap();
    let a = store.namespace("team-a").unwrap();
    assert_eq!(a.entry, changed);
    assert_eq!(a.threshold, nz(1));

    store
        .transaction_at(T0, |tx| tx.delete_namespace("team-a"))
        .unwrap();
    assert_not_found(store.namespace("team-a"), "namespace");
    assert_eq!(store.namespaces().unwrap().len(), 1);
}

#[test]
fn namespace_duplicate_name_is_already_exists_and_missing_is_not_found() {
    let s = Scratch::new();
    let mut store = with_namespace(&s, "team-a", "a/**");
    assert_exists(
        store.transaction_at(T0, |tx| {
            tx.create_namespace(&entry("team-a", &["other/**"]), nz(1))
        }),
        "namespace",
    );
    assert_not_found(store.namespace("team-z"), "namespace");
    assert_not_found(
        store.transaction_at(T0, |tx| {
            tx.update_namespace(&entry("team-z", &["z/**"]), nz(1))
        }),
        "namespace",
    );
    assert_not_found(
        store.transaction_at(T0, |tx| tx.delete_namespace("team-z")),
        "namespace",
    );
}

#[test]
fn namespace_scope_already_granted_elsewhere_is_invalid() {
    let s = Scratch::new();
    let mut store = with_namespace(&s, "team-a", "a/**");
    match store.transaction_at(T0, |tx| {
        tx.create_namespace(&entry("team-b", &["b/**", "a/**"]), nz(1))
    }) {
        Err(Error::Invalid { field, message }) => {
            assert_eq!(field, "scopes");
            assert!(message.contains("team-a"), "{message}");
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
    assert_eq!(store.namespaces().unwrap().len(), 1);
}

#[test]
fn key_add_show_list_remove_and_errors() {
    let s = Scratch::new();
    let mut store = with_namespace(&s, "team-a", "a/**");
    let mut k1 = trusted_key();
    k1.not_before = Some(datetime!(2026-01-01 00:00:00 UTC));
    k1.not_after = Some(datetime!(2027-01-01 00:00:00.5 UTC));
    k1.description = Some("release key".into());
    let k2 = trusted_key();
    store
        .transaction_at(T0, |tx| {
            tx.add_key(&ns("team-a"), &k1)?;
            tx.add_key(&ns("team-a"), &k2)
        })
        .unwrap();
    let shown = store.key("team-a", k1.id.as_str()).unwrap();
    assert_eq!(shown.key, k1);
    assert_eq!(shown.added_at, T0);
    let mut ids: Vec<_> = vec![k1.id.clone(), k2.id.clone()];
    ids.sort();
    let listed: Vec<_> = store
        .keys("team-a")
        .unwrap()
        .into_iter()
        .map(|k| k.key.id)
        .collect();
    assert_eq!(listed, ids);

    assert_exists(
        store.transaction_at(T0, |tx| tx.add_key(&ns("team-a"), &k1)),
        "key",
    );
    assert_not_found(
        store.transaction_at(T0, |tx| tx.add_key(&ns("team-z"), &k1)),
        "namespace",
    );
    assert_not_found(store.keys("team-z"), "namespace");
    assert_not_found(store.key("team-a", "nope"), "key");

    store
        .transaction_at(T0, |tx| tx.remove_key("team-a", k1.id.as_str()))
        .unwrap();
    assert_not_found(store.key("team-a", k1.id.as_str()), "key");
    assert_not_found(
        store.transaction_at(T0, |tx| tx.remove_key("team-a", k1.id.as_str())),
        "key",
    );
    assert_not_found(
        store.transaction_at(T0, |tx| tx.remove_key("team-z", k2.id.as_str())),
        "namespace",
    );
}

#[test]
fn expired_ephemeral_keys_are_swept_and_others_kept() {
    let s = Scratch::new();
    let mut store = with_namespace(&s, "team-a", "a/**");
    let mut expired = trusted_key();
    expired.ephemeral = true;
    expired.not_after = Some(datetime!(2026-01-02 03:00:00 UTC));
    let mut live = trusted_key();
    live.ephemeral = true;
    live.not_after = Some(datetime!(2026-01-02 03:10:00 UTC));
    let mut long_lived = trusted_key();
    long_lived.not_after = Some(datetime!(2026-01-01 00:00:00 UTC));
    store
        .transaction_at(T0, |tx| {
            tx.add_key(&ns("team-a"), &expired)?;
            tx.add_key(&ns("team-a"), &live)?;
            tx.add_key(&ns("team-a"), &long_lived)
        })
        .unwrap();
    let removed = store
        .transaction_at(T0, |tx| tx.remove_expired_ephemeral_keys(T0))
        .unwrap();
    assert_eq!(removed, vec![("team-a".to_owned(), expired.id.to_string())]);
    assert_eq!(store.keys("team-a").unwrap().len(), 2);
}

#[test]
fn identity_add_list_remove_and_errors() {
    let s = Scratch::new();
    let mut store = with_namespace(&s, "team-a", "a/**");
    let identity = X509Identity {
        name: "ci-ca".into(),
        ca_certs: vec![CaCert::parse(&ca_pem("Team A CI CA")).unwrap()],
        subject: SubjectName::parse("O=acme, CN=team-a").unwrap(),
        not_before: None,
        not_after: Some(datetime!(2027-01-01 00:00:00 UTC)),
    };
    store
        .transaction_at(T0, |tx| tx.add_identity(&ns("team-a"), &identity))
        .unwrap();
    let listed = store.identities("team-a").unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].identity, identity);
    assert_exists(
        store.transaction_at(T0, |tx| tx.add_identity(&ns("team-a"), &identity)),
        "identity",
    );
    assert_not_found(
        store.transaction_at(T0, |tx| tx.add_identity(&ns("team-z"), &identity)),
        "namespace",
    );
    store
        .transaction_at(T0, |tx| tx.remove_identity("team-a", "ci-ca"))
        .unwrap();
    assert!(store.identities("team-a").unwrap().is_empty());
    assert_not_found(
        store.transaction_at(T0, |tx| tx.remove_identity("team-a", "ci-ca")),
        "identity",
    );
}

#[test]
fn sub_delegation_add_list_remove_and_errors() {
    let s = Scratch::new();
    let mut store = with_namespace(&s, "team-a", "a/**");
    let sub = SubDelegation {
        name: "nightly".into(),
        scopes: vec![pattern("a/nightly/**")],
        threshold: nz(1),
        keys: vec![trusted_key()],
    };
    store
        .transaction_at(T0, |tx| tx.add_sub_delegation(&ns("team-a"), &sub))
        .unwrap();
    let listed = store.sub_delegations("team-a").unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].sub_delegation, sub);
    assert_exists(
        store.transaction_at(T0, |tx| tx.add_sub_delegation(&ns("team-a"), &sub)),
        "sub-delegation",
    );
    assert_not_found(store.sub_delegations("team-z"), "namespace");
    store
        .transaction_at(T0, |tx| tx.remove_sub_delegation("team-a", "nightly"))
        .unwrap();
    assert_not_found(
        store.transaction_at(T0, |tx| tx.remove_sub_delegation("team-a", "nightly")),
        "sub-delegation",
    );
}

#[test]
fn deleting_a_namespace_removes_its_keys_identities_and_sub_delegations() {
    let s = Scratch::new();
    let mut store = with_namespace(&s, "team-a", "a/**");
    store
        .transaction_at(T0, |tx| {
            tx.add_key(&ns("team-a"), &trusted_key())?;
            tx.add_sub_delegation(
                &ns("team-a"),
                &SubDelegation {
                    name: "n".into(),
                    scopes: vec![pattern("a/n/**")],
                    threshold: nz(1),
                    keys: vec![trusted_key()],
                },
            )?;
            tx.add_identity(
                &ns("team-a"),
                &X509Identity {
                    name: "id".into(),
                    ca_certs: vec![CaCert::parse(&ca_pem("CA")).unwrap()],
                    subject: SubjectName::parse("CN=x").unwrap(),
                    not_before: None,
                    not_after: None,
                },
            )?;
            tx.delete_namespace("team-a")
        })
        .unwrap();
    for table in ["namespaces", "keys", "identities", "sub_delegations"] {
        assert_eq!(count(&s.path, table), 0, "{table}");
    }
    // The name can be used again, starting empty.
    store
        .transaction_at(T0, |tx| {
            tx.create_namespace(&entry("team-a", &["a/**"]), nz(1))
        })
        .unwrap();
    assert!(store.keys("team-a").unwrap().is_empty());
}

#[test]
fn revocation_add_list_remove_and_errors() {
    let s = Scratch::new();
    let mut store = s.open();
    let key = trusted_key();
    let cert = Sha256Hex::parse(&"b".repeat(64)).unwrap();
    let by_cert = keyshare_policy::trust::Revocation {
        subject: RevokedSubject::Certificate(cert.clone()),
        revoked_at: datetime!(2025-06-01 12:00:00 UTC),
        reason: "CA compromised".into(),
    };
    store
        .transaction_at(T0, |tx| {
            tx.add_revocation(&key_revocation(&key, "key leaked"), None)?;
            tx.add_revocation(&by_cert, None)
        })
        .unwrap();
    let listed = store.revocations().unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].revocation, key_revocation(&key, "key leaked"));
    assert_eq!(listed[1].revocation, by_cert);
    assert_eq!(listed[1].recorded_at, T0);

    assert_exists(
        store.transaction_at(T0, |tx| {
            tx.add_revocation(&key_revocation(&key, "again"), None)
        }),
        "revocation",
    );
    match store.transaction_at(T0, |tx| {
        tx.add_revocation(&key_revocation(&trusted_key(), " "), None)
    }) {
        Err(Error::Invalid { field, .. }) => assert_eq!(field, "reason"),
        other => panic!("expected Invalid reason, got {other:?}"),
    }
    store
        .transaction_at(T0, |tx| {
            tx.remove_revocation(&RevokedSubject::Certificate(cert.clone()))
        })
        .unwrap();
    assert_eq!(store.revocations().unwrap().len(), 1);
    assert_not_found(
        store.transaction_at(T0, |tx| {
            tx.remove_revocation(&RevokedSubject::Certificate(cert))
        }),
        "revocation",
    );
}

#[test]
fn peer_put_replaces_show_list_remove_and_errors() {
    let s = Scratch::new();
    let mut store = s.open();
    let created = store
        .transaction_at(T0, |tx| tx.put_peer(&peer("partner", "partner.example/**")))
        .unwrap();
    assert!(created);
    let mut changed = peer("partner", "partner.example/images/**");
    changed.terminating = false;
    let later = datetime!(2026-02-01 00:00:00 UTC);
    let created = store
        .transaction_at(later, |tx| tx.put_peer(&changed))
        .unwrap();
    assert!(!created);
    let shown = store.peer("partner").unwrap();
    assert_eq!(shown.peer, changed);
    assert_eq!(shown.updated_at, later);
    store
        .transaction_at(T0, |tx| tx.put_peer(&peer("another", "another.example/**")))
        .unwrap();
    let names: Vec<_> = store
        .peers()
        .unwrap()
        .into_iter()
        .map(|p| p.peer.name)
        .collect();
    assert_eq!(names, ["another", "partner"]);
    store
        .transaction_at(T0, |tx| tx.remove_peer("partner"))
        .unwrap();
    assert_not_found(store.peer("partner"), "peer");
    assert_not_found(
        store.transaction_at(T0, |tx| tx.remove_peer("partner")),
        "peer",
    );
}

#[test]
fn org_root_put_replaces_show_list_remove_and_errors() {
    let s = Scratch::new();
    let mut store = s.open();
    let first = ca_pem("Corp Root 2025");
    let created = store
        .transaction_at(T0, |tx| tx.put_org_root("corp-root", &first))
        .unwrap();
    assert!(created);
    // Same name, new certificate: replaced.
    let pem = ca_pem("Corp Root");
    let created = store
        .transaction_at(T0, |tx| tx.put_org_root("corp-root", &pem))
        .unwrap();
    assert!(!created);
    let shown = store.org_root("corp-root").unwrap();
    assert_eq!(shown.pem, pem);
    assert_eq!(
        shown.sha256,
        CaCert::parse(&pem).unwrap().sha256().to_string()
    );
    assert_eq!(shown.target_path(), "org/roots/corp-root.pem");
    assert_eq!(store.org_roots().unwrap().len(), 1);

    assert_exists(
        store.transaction_at(T0, |tx| tx.put_org_root("same-cert", &pem)),
        "org root certificate",
    );
    for (name, pem, field) in [
        ("Bad Name", pem.as_str(), "name"),
        ("../x", pem.as_str(), "name"),
        ("garbage", "not a certificate", "pem"),
    ] {
        match store.transaction_at(T0, |tx| tx.put_org_root(name, pem)) {
            Err(Error::Invalid { field: f, .. }) => assert_eq!(f, field, "{name}"),
            other => panic!("expected Invalid {field}, got {other:?}"),
        }
    }
    store
        .transaction_at(T0, |tx| tx.remove_org_root("corp-root"))
        .unwrap();
    assert_not_found(store.org_root("corp-root"), "org root");
    assert_not_found(
        store.transaction_at(T0, |tx| tx.remove_org_root("corp-root")),
        "org root",
    );
}

#[test]
fn set_threshold_changes_only_the_threshold() {
    let s = Scratch::new();
    let mut store = with_namespace(&s, "team-a", "a/**");
    store
        .transaction_at(T0, |tx| tx.set_threshold("team-a", nz(3)))
        .unwrap();
    let a = store.namespace("team-a").unwrap();
    assert_eq!(a.threshold, nz(3));
    assert_eq!(a.entry, entry("team-a", &["a/**"]));
    assert_not_found(
        store.transaction_at(T0, |tx| tx.set_threshold("team-z", nz(1))),
        "namespace",
    );
}

#[test]
fn namespace_named_like_one_of_the_repositorys_roles_cannot_reach_the_store() {
    // The store takes a `NamespaceName`, which cannot hold a reserved name:
    // the top-level roles and the hashed-bin roles.
    for name in [
        "root",
        "targets",
        "snapshot",
        "timestamp",
        "bins-00",
        "bins-ff",
    ] {
        let e = NamespaceName::parse(name).unwrap_err();
        assert!(e.contains(&format!("`{name}` is reserved")), "{e}");
    }
}
