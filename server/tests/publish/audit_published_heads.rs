//! Every kind of publish signs a timestamp whose audit chain head
//! (`x-keyshare-audit`) is the store's chain head at that point, its own
//! audit record(s) included; and the server's audit check uses only heads
//! whose timestamp the timestamp key signed. (The rewrite attacks
//! themselves, over HTTP and through the CLI, are in
//! `client/tests/audit_heads.rs`.)

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::num::NonZeroU32;

use time::Duration;

use crate::http_common::{ns_name, Fixture, NOW};
use keyshare_policy::audit::Head;
use keyshare_policy::keys::Scheme;
use keyshare_policy::metadata::{Envelope, KeyId, Timestamp};
use keyshare_policy::pattern::ArtifactPattern;
use keyshare_policy::sign::{sign, to_bytes, InMemorySigner, Signer};
use keyshare_policy::trust::{NamespaceEntry, TrustedKey};
use keyshare_policy::verify::Authority;
use keyshare_server::publisher::{Batched, Change};

/// The head the bytes of a timestamp carry, after checking its signature
/// with the timestamp key of the current root.
fn head_in(f: &Fixture, bytes: &[u8]) -> (Head, u64) {
    let envelope = Envelope::<Timestamp>::parse("timestamp", bytes).unwrap();
    let root = f.current_root();
    Authority::from_root(&root.signed, "timestamp")
        .unwrap()
        .check("timestamp", &envelope)
        .unwrap();
    let version = envelope.signed.version;
    (
        Head::from_timestamp(&envelope.signed).unwrap().unwrap(),
        version,
    )
}

/// The head the served timestamp carries.
fn published(f: &Fixture) -> (Head, u64) {
    head_in(
        f,
        &f.publisher.file("metadata/timestamp.json").unwrap().bytes,
    )
}

/// The store's chain head now.
fn store_head(f: &Fixture) -> Head {
    let head = f.publisher.read(|s| s.verify_audit_chain()).unwrap();
    Head::new(u64::try_from(head.records).unwrap(), &head.hash).unwrap()
}

fn last_actions(f: &Fixture, n: usize) -> Vec<String> {
    let records = f.publisher.read(|s| s.audit_records(0, 10_000)).unwrap();
    records[records.len() - n..]
        .iter()
        .map(|r| r.action.clone())
        .collect()
}

/// After a publish: a new timestamp whose head is the store's head, the
/// last records being this publish's; and the server's check agrees.
fn assert_signed_head(f: &Fixture, before: u64, actions: &[&str]) {
    let (head, version) = published(f);
    assert!(version > before, "no new timestamp for {actions:?}");
    assert_eq!(head, store_head(f), "{actions:?}");
    assert_eq!(last_actions(f, actions.len()), actions);
    let verified = f.publisher.verify_audit().unwrap();
    let current = verified.published.unwrap();
    assert_eq!((current.head, current.timestamp_version), (head, version));
}

fn create(name: &str) -> Change {
    Change::CreateNamespace {
        entry: NamespaceEntry {
            name: ns_name(name),
            scopes: vec![ArtifactPattern::parse(&format!("registry.acme.io/{name}/**")).unwrap()],
            maintainers: vec![],
        },
        threshold: NonZeroU32::MIN,
        allow_overlap: false,
    }
}

fn key(ephemeral: bool, not_after: Option<time::OffsetDateTime>) -> TrustedKey {
    let s = InMemorySigner::generate(Scheme::Ed25519).unwrap();
    TrustedKey {
        id: KeyId::new(s.key_id().as_str()),
        key: s.public_key().clone(),
        not_before: None,
        not_after,
        ephemeral,
        description: None,
        principal: None,
        layout_root: false,
    }
}

#[test]
fn every_publish_kind_signs_the_chain_head_including_its_own_records() {
    let f = Fixture::new();

    // init: the first timestamp carries record 1, `repository.init`. The
    // fixture's admin token was created after it: tokens publish nothing,
    // so its record is covered by the next publish.
    let (head, v) = published(&f);
    let records = f.publisher.read(|s| s.audit_records(0, 10)).unwrap();
    assert_eq!(records[0].action, "repository.init");
    assert_eq!(head, Head::new(1, &records[0].hash).unwrap());
    assert_eq!(records[1].action, "token.create");

    // An admin change.
    f.publisher.apply("admin", create("team-a"), NOW).unwrap();
    assert_signed_head(&f, v, &["namespace.create"]);

    // A batch: one record per change, all under one head.
    let (_, v) = published(&f);
    let results = f
        .publisher
        .apply_batch(
            vec![
                Batched {
                    actor: "ci-1".into(),
                    change: Change::AddKey {
                        namespace: ns_name("team-a"),
                        key: key(true, Some(NOW + Duration::minutes(10))),
                    },
                    context: serde_json::Value::Null,
                },
                Batched {
                    actor: "ci-2".into(),
                    change: Change::AddKey {
                        namespace: ns_name("team-a"),
                        key: key(false, None),
                    },
                    context: serde_json::Value::Null,
                },
            ],
            NOW,
        )
        .unwrap();
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_signed_head(&f, v, &["key.add", "key.add"]);

    // The sweep of an expired ephemeral key.
    let (_, v) = published(&f);
    let later = NOW + Duration::minutes(11);
    assert_eq!(f.publisher.sweep_ephemeral(later).unwrap(), 1);
    assert_signed_head(&f, v, &["ci.sweep"]);

    // Re-signing.
    let (_, v) = published(&f);
    let files = f
        .publisher
        .refresh_expiring(Duration::days(400), later)
        .unwrap();
    assert!(files.contains(&"metadata/timestamp.json".to_owned()));
    assert_signed_head(&f, v, &["metadata.resign"]);

    // A root submitted from a ceremony.
    let (_, v) = published(&f);
    let body = serde_json::to_vec(&f.next_root_signed()).unwrap();
    f.publisher.submit_root("admin", &body, later).unwrap();
    assert_signed_head(&f, v, &["root.rotate"]);

    // An air-gap bundle edition: the online timestamp published with it
    // carries the export record; the edition carries the head as it was
    // when the edition was signed, just before that record.
    let (_, v) = published(&f);
    let edition = f
        .publisher
        .sign_bundle_edition("admin", later + Duration::days(7), later)
        .unwrap();
    assert_signed_head(&f, v, &["airgap.export"]);
    let (edition_head, edition_version) = head_in(&f, &edition.timestamp);
    let (online, online_version) = published(&f);
    assert_eq!(edition_version + 1, online_version);
    assert_eq!(edition_head.seq + 1, online.seq);
    let records = f.publisher.read(|s| s.audit_records(0, 10_000)).unwrap();
    let seq = usize::try_from(edition_head.seq).unwrap();
    assert_eq!(edition_head.hash, records[seq - 1].hash);
}

#[test]
fn a_head_in_a_timestamp_the_database_writer_forged_is_not_evidence() {
    let f = Fixture::new();
    f.publisher.apply("admin", create("team-a"), NOW).unwrap();
    f.publisher.apply("admin", create("team-b"), NOW).unwrap();
    let genuine = f.publisher.verify_audit().unwrap();

    // The writer adds a timestamp row signed with a key of their own,
    // carrying a head that contradicts the log. It is no evidence of what
    // the server signed: the check neither fails on it nor counts it.
    // (Forged heads could only ever add contradictions; what hides a
    // rewrite is the absence of a genuine head, which the writer cannot
    // remove from the timestamp the server holds and serves.)
    let (published_head, version) = published(&f);
    let bytes = f
        .publisher
        .file("metadata/timestamp.json")
        .unwrap()
        .bytes
        .clone();
    let mut forged: Envelope<Timestamp> = Envelope::parse("timestamp", &bytes).unwrap();
    forged.signed.version = version + 100;
    forged.signed.unrecognized = Head::new(published_head.seq, &"ee".repeat(32))
        .unwrap()
        .timestamp_fields();
    let writer = InMemorySigner::generate(Scheme::Ed25519).unwrap();
    let forged = to_bytes(&sign(forged.signed, &[&writer as &dyn Signer]).unwrap()).unwrap();
    let conn = rusqlite::Connection::open(f.dir.path().join("keyshare.db")).unwrap();
    conn.execute(
        "INSERT INTO published_files (path, role, version, bytes, sha256, immutable, created_at, \
         lineage) VALUES ('metadata/timestamp.json', 'timestamp', ?1, ?2, ?3, 0, \
         '2030-01-01T12:00:00Z', 'metadata/timestamp.json')",
        (
            i64::try_from(version + 100).unwrap(),
            &forged,
            keyshare_policy::hash::sha256_hex(&forged),
        ),
    )
    .unwrap();
    drop(conn);
    let newest = f
        .publisher
        .read(|s| s.latest_published("metadata/timestamp.json"))
        .unwrap()
        .unwrap();
    assert_eq!(newest.bytes, forged);
    let after = f.publisher.verify_audit().unwrap();
    assert_eq!(after.heads_checked, genuine.heads_checked);
    assert_eq!(after.head, genuine.head);
}
