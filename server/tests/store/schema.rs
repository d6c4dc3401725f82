//! Opening, migrations, settings, restart and backup.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use super::support::*;
use keyshare_server::store::{Error, Store, SCHEMA_VERSION};

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

fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn with_suffix(path: &std::path::Path, suffix: &str) -> std::path::PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    name.into()
}

#[test]
fn a_new_store_and_its_wal_and_shm_files_are_readable_by_their_owner_only() {
    let s = Scratch::new();
    let mut store = s.open();
    store
        .transaction_at(T0, |tx| {
            tx.create_namespace(&entry("team-a", &["a/**"]), nz(1))
        })
        .unwrap();
    // The store's connection is open and has written: the WAL and the
    // shared-memory index exist now.
    for suffix in ["", "-wal", "-shm"] {
        let file = with_suffix(&s.path, suffix);
        assert_eq!(mode(&file), 0o600, "{}", file.display());
    }
}

#[test]
fn an_existing_store_readable_by_others_is_made_private_when_opened() {
    use std::os::unix::fs::PermissionsExt;
    let s = Scratch::new();
    drop(s.open());
    // As an earlier build (or a careless copy) left it.
    std::fs::set_permissions(&s.path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let store = s.open();
    assert_eq!(mode(&s.path), 0o600);
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
}

#[test]
fn open_existing_reads_without_creating_or_migrating_and_refuses_another_schema() {
    let s = Scratch::new();
    // No database: nothing is created.
    assert!(matches!(
        Store::open_existing(&s.path),
        Err(Error::Sqlite(_))
    ));
    assert!(!s.path.exists());

    let mut writer = s.open();
    writer
        .transaction_at(T0, |tx| {
            tx.create_namespace(&entry("team-a", &["a/**"]), nz(1))
        })
        .unwrap();
    let reader = Store::open_existing(&s.path).unwrap();
    assert_eq!(reader.namespaces().unwrap().len(), 1);

    // A schema this build would migrate is left to the writer.
    let conn = rusqlite::Connection::open(&s.path).unwrap();
    conn.execute(
        "DELETE FROM schema_version WHERE version = ?1",
        [SCHEMA_VERSION],
    )
    .unwrap();
    let older = Store::open_existing(&s.path).unwrap_err().to_string();
    assert!(
        older.contains(&format!("version {} is older", SCHEMA_VERSION - 1)),
        "{older}"
    );
    assert_eq!(count(&s.path, "schema_version"), SCHEMA_VERSION - 1);
    conn.execute(
        "INSERT INTO schema_version (version, applied_at) VALUES (?1, '2030-01-01T00:00:00Z'), (?2, '2030-01-01T00:00:00Z')",
        [SCHEMA_VERSION, SCHEMA_VERSION + 1],
    )
    .unwrap();
    assert!(matches!(
        Store::open_existing(&s.path),
        Err(Error::SchemaTooNew { found, .. }) if found == SCHEMA_VERSION + 1
    ));
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
