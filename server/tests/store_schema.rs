//! Opening, migrations, settings, restart and backup.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod store_support;

use keyshare_server::store::{Error, Store, SCHEMA_VERSION};
use store_support::*;

const TABLES: &[&str] = &[
    "namespaces",
    "keys",
    "identities",
    "sub_delegations",
    "revocations",
    "peers",
    "org_roots",
    "tokens",
    "token_namespaces",
    "published_files",
    "audit_log",
];

#[test]
fn open_on_an_empty_file_creates_every_table_at_the_current_version() {
    let s = Scratch::new();
    let store = s.open();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    let conn = rusqlite::Connection::open(&s.path).unwrap();
    for table in TABLES {
        let n: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = ?1",
                [table],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, 1, "table {table}");
    }
    let versions: i64 = conn
        .query_row("SELECT count(*) FROM schema_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(versions, SCHEMA_VERSION);
}

#[test]
fn reopening_applies_nothing_twice() {
    let s = Scratch::new();
    drop(s.open());
    drop(s.open());
    let store = s.open();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    assert_eq!(count(&s.path, "schema_version"), SCHEMA_VERSION);
}

#[test]
fn database_from_a_newer_schema_is_refused_naming_both_versions() {
    let s = Scratch::new();
    drop(s.open());
    let conn = rusqlite::Connection::open(&s.path).unwrap();
    conn.execute(
        "INSERT INTO schema_version (version, applied_at) VALUES (?1, '2030-01-01T00:00:00Z')",
        [SCHEMA_VERSION + 1],
    )
    .unwrap();
    drop(conn);
    match Store::open(&s.path) {
        Err(Error::SchemaTooNew { found, supported }) => {
            assert_eq!(found, SCHEMA_VERSION + 1);
            assert_eq!(supported, SCHEMA_VERSION);
        }
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
    let message = Store::open(&s.path).unwrap_err().to_string();
    assert!(message.contains("newer"), "{message}");
}

#[test]
fn connection_runs_with_wal_full_sync_and_foreign_keys() {
    let s = Scratch::new();
    let mut store = s.open();
    // Observe the settings through the store's own connection: a foreign key
    // violation must be refused, and the file must be in WAL mode.
    let conn = rusqlite::Connection::open(&s.path).unwrap();
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    assert_not_found(
        store.transaction_at(T0, |tx| tx.add_key(&ns("nobody"), &trusted_key())),
        "namespace",
    );
    // foreign_keys=ON on the store's connection: deleting a namespace
    // cascades to its keys instead of leaving orphans.
    store
        .transaction_at(T0, |tx| {
            tx.create_namespace(&entry("team-a", &["a/**"]), nz(1))?;
            tx.add_key(&ns("team-a"), &trusted_key())?;
            tx.delete_namespace("team-a")
        })
        .unwrap();
    assert_eq!(count(&s.path, "keys"), 0);
}

#[test]
fn everything_written_survives_drop_and_reopen() {
    let s = Scratch::new();
    let key = trusted_key();
    let secret = {
        let mut store = s.open();
        store
            .transaction_at(T0, |tx| {
                tx.create_namespace(&entry("team-a", &["registry.acme.io/team-a/**"]), nz(1))?;
                tx.add_key(&ns("team-a"), &key)?;
                tx.add_revocation(&key_revocation(&key, "laptop stolen"), None)?;
                tx.put_peer(&peer("partner", "partner.example/**"))?;
                tx.put_org_root("corp-root", &ca_pem("Corp Root"))?;
                let t = tx.create_token(
                    &keyshare_server::store::TokenKind::Maintainer(ns("team-a")),
                    Some("team a"),
                )?;
                tx.append_audit(
                    "admin",
                    "namespace.create",
                    "team-a",
                    &serde_json::json!({}),
                )?;
                let files = repository().commit(T0).unwrap();
                tx.record_published(&files)?;
                Ok::<_, Error>(t.secret)
            })
            .unwrap()
    };
    let store = s.open();
    assert_eq!(store.namespaces().unwrap().len(), 1);
    assert_eq!(store.keys("team-a").unwrap()[0].key, key);
    assert_eq!(store.revocations().unwrap().len(), 1);
    assert_eq!(store.peers().unwrap().len(), 1);
    assert_eq!(store.org_roots().unwrap().len(), 1);
    assert!(store.token_by_secret(secret.expose()).unwrap().is_some());
    assert_eq!(store.verify_audit_chain().unwrap().records, 1);
    assert!(store
        .latest_published("metadata/timestamp.json")
        .unwrap()
        .is_some());
    assert_eq!(
        store.namespace_document("team-a").unwrap().keys,
        vec![key.clone()]
    );
}

#[test]
fn backup_into_writes_a_copy_that_opens_with_the_same_content() {
    let s = Scratch::new();
    let mut store = s.open();
    store
        .transaction_at(T0, |tx| {
            tx.create_namespace(&entry("team-a", &["a/**"]), nz(1))?;
            tx.append_audit(
                "admin",
                "namespace.create",
                "team-a",
                &serde_json::json!({"n": 1}),
            )
        })
        .unwrap();
    let copy = s.dir.path().join("backup.db");
    store.backup_into(&copy).unwrap();
    let restored = Store::open(&copy).unwrap();
    assert_eq!(restored.namespaces().unwrap(), store.namespaces().unwrap());
    assert_eq!(
        restored.verify_audit_chain().unwrap(),
        store.verify_audit_chain().unwrap()
    );
}
