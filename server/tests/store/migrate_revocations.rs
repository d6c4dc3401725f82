//! A store written before revocations named key material (schema 2,
//! `revocations.key_id`) migrates: each id is resolved to the key material
//! listed under it *before* the revocation was recorded, never to a key
//! someone listed under the revoked id afterwards, and the repository then
//! publishes `keyshare.revocations/v2`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use serde_json::json;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

use super::support::*;
use keyshare_policy::keys::Scheme;
use keyshare_policy::metadata::KeyId;
use keyshare_policy::repo::Options;
use keyshare_policy::sign::{InMemorySigner, Signer};
use keyshare_policy::trust::{Revocations, RevokedSubject, SignerRef, TrustedKey};
use keyshare_server::publisher::{Change, OnlineKeys, Publisher};
use keyshare_server::store::{Store, SCHEMA_VERSION};
use keyshare_testkit::signer;

const T0: OffsetDateTime = datetime!(2030-01-01 00:00 UTC);

fn listed(id: &str, key: &InMemorySigner) -> TrustedKey {
    TrustedKey {
        id: KeyId::new(id),
        key: key.public_key().clone(),
        not_before: None,
        not_after: None,
        ephemeral: false,
        description: None,
        principal: None,
        layout_root: false,
    }
}

/// Turns a current store back into schema 2 (undoing versions 11 to 3) with
/// `revocations` rows by key id.
fn downgrade_to_schema_2(path: &std::path::Path, by_id: &[(&str, OffsetDateTime)]) {
    downgrade_published_files_to_schema_10(path);
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch(
        "ALTER TABLE keys DROP COLUMN layout_root;
         DROP TABLE timestamps;
         DROP TABLE tsas;
         DROP TABLE namespace_revocations;
         DROP TABLE audit_namespaces;
         DROP INDEX audit_log_by_action;
         DROP INDEX audit_log_by_actor;
         DROP INDEX audit_log_by_time;
         ALTER TABLE tokens DROP COLUMN expires_at;
         ALTER TABLE tokens DROP COLUMN last_used_at;
         DROP TABLE ci_delegations;
         DROP TABLE ci_used;
         ALTER TABLE keys DROP COLUMN principal;
         DROP INDEX keys_by_spki;
         ALTER TABLE keys DROP COLUMN spki_sha256;
         DROP TABLE revocations;
         DROP TABLE revocations_unresolved;
         CREATE TABLE revocations (
             id                 INTEGER PRIMARY KEY,
             key_id             TEXT UNIQUE,
             certificate_sha256 TEXT UNIQUE,
             revoked_at         TEXT NOT NULL,
             reason             TEXT NOT NULL,
             recorded_at        TEXT NOT NULL,
             CHECK ((key_id IS NULL) <> (certificate_sha256 IS NULL))
         ) STRICT;
         DELETE FROM schema_version WHERE version > 2;",
    )
    .unwrap();
    let text = |t: OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    for (id, recorded) in by_id {
        conn.execute(
            "INSERT INTO revocations (key_id, revoked_at, reason, recorded_at) VALUES (?1, ?2, ?3, ?4)",
            (id, text(*recorded - Duration::days(1)), "retired", text(*recorded)),
        )
        .unwrap();
    }
}

#[test]
fn revocations_by_key_id_migrate_to_the_material_listed_before_them_not_after() {
    let s = Scratch::new();
    let keys = OnlineKeys {
        targets: signer(),
        snapshot: signer(),
        timestamp: signer(),
        namespaces: signer(),
    };
    let (retired, b) = (
        InMemorySigner::generate(Scheme::EcdsaP256Sha256).unwrap(),
        InMemorySigner::generate(Scheme::Ed25519).unwrap(),
    );
    let revoked_at_record;
    {
        let root = signer();
        let publisher = Publisher::init(
            s.open(),
            keys.clone(),
            std::slice::from_ref(&root),
            1,
            Options::default(),
            T0,
        )
        .unwrap();
        let apply = |change, at| publisher.apply("admin", change, at).unwrap();
        for name in ["team-a", "team-b"] {
            apply(
                Change::CreateNamespace {
                    entry: entry(name, &[&format!("registry.acme.io/{name}/**")]),
                    threshold: nz(1),
                    allow_overlap: false,
                },
                T0,
            );
        }
        apply(
            Change::AddKey {
                namespace: ns("team-a"),
                key: listed("retired", &retired),
            },
            T0 + Duration::hours(1),
        );
        apply(
            Change::AddKey {
                namespace: ns("team-b"),
                key: listed("b-release", &b),
            },
            T0 + Duration::hours(1),
        );
        // How the old server recorded a revocation by id.
        revoked_at_record = T0 + Duration::hours(2);
        let mut store = Store::open(&s.path).unwrap();
        store
            .transaction_at(revoked_at_record, |tx| {
                tx.append_audit(
                    "token:admin",
                    "revocation.add",
                    "key retired",
                    &json!({ "revoked_at": "2029-12-31T02:00:00Z", "reason": "retired" }),
                )
                .map(|_| ())
            })
            .unwrap();
        drop(store);
        // Clean-up, then the attack: team-b's key listed in team-a under the
        // revoked id, after the revocation.
        apply(
            Change::RemoveKey {
                namespace: ns("team-a"),
                key_id: KeyId::new("retired"),
            },
            T0 + Duration::hours(3),
        );
        apply(
            Change::AddKey {
                namespace: ns("team-a"),
                key: listed("retired", &b),
            },
            T0 + Duration::hours(4),
        );
    }
    downgrade_to_schema_2(
        &s.path,
        &[
            ("retired", revoked_at_record),
            ("never-listed", revoked_at_record),
        ],
    );

    let store = s.open();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    let revocations = store.revocations().unwrap();
    assert_eq!(revocations.len(), 1, "{revocations:?}");
    let fingerprint = retired.public_key().fingerprint(retired.key_id()).unwrap();
    assert_eq!(
        revocations[0].revocation.subject,
        RevokedSubject::Key(fingerprint.clone())
    );
    let note = revocations[0].listed_as.as_ref().unwrap();
    assert_eq!(
        (note.namespace.as_str(), note.key_id.as_str()),
        ("team-a", "retired")
    );
    // The id that named nothing is kept aside, not published.
    let conn = rusqlite::Connection::open(&s.path).unwrap();
    let unresolved: String = conn
        .query_row("SELECT key_id FROM revocations_unresolved", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(unresolved, "never-listed");
    // The listed keys got their fingerprints.
    let missing: i64 = conn
        .query_row(
            "SELECT count(*) FROM keys WHERE spki_sha256 IS NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(missing, 0);

    // The repository publishes the new shape, and verifiers decide by it.
    let now = T0 + Duration::hours(5);
    let publisher = Publisher::open(store, keys, Options::default()).unwrap();
    let published = publisher.republish_outdated(now).unwrap();
    assert!(
        published.iter().any(|p| p.contains("revocations.json")),
        "{published:?}"
    );
    assert_eq!(
        publisher.republish_outdated(now).unwrap(),
        Vec::<String>::new()
    );
    let root = publisher
        .file("metadata/1.root.json")
        .unwrap()
        .bytes
        .to_vec();
    let fetch = |path: &str| publisher.file(path).map(|f| f.bytes.to_vec());
    let set = keyshare_testkit::read_trust_set(&root, now, &fetch).unwrap();
    assert_eq!(set.revocations().len(), 1);
    for (artifact, id) in [
        ("registry.acme.io/team-b/app", "b-release"),
        ("registry.acme.io/team-a/app", "retired"),
    ] {
        let d = set.decide(artifact, &[SignerRef::KeyId(KeyId::new(id))], now, now);
        assert!(d.is_trusted(), "{artifact}: {d}");
    }
    let current = publisher.read(|s| s.revocations_document()).unwrap();
    let doc = Revocations::from_slice(&current.to_vec().unwrap()).unwrap();
    assert_eq!(doc.revocations[0].subject, RevokedSubject::Key(fingerprint));
}
