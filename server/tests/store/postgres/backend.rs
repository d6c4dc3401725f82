//! What only a PostgreSQL store has to show: its schema and its version,
//! the database's own refusals (the same as SQLite's triggers), writers in
//! several processes taking turns, and a clear error for a database that
//! cannot be reached.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::mpsc;
use std::time::Duration;

use super::support::*;
use keyshare_policy::repo::File;
use keyshare_server::store::{Error, PostgresUrl, Store, SCHEMA_VERSION};

/// The tests below need the cluster; without it (skipped) they have
/// nothing to test.
fn pg() -> Option<Scratch> {
    let s = Scratch::new();
    s.name.is_some().then_some(s)
}

#[test]
fn a_new_database_is_made_at_the_current_schema_version_and_a_newer_one_is_refused() {
    let Some(s) = pg() else { return };
    let store = s.open();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    assert!(store.is_postgres());
    drop(store);
    // Opening again changes nothing.
    assert_eq!(s.open().schema_version().unwrap(), SCHEMA_VERSION);
    assert_eq!(count(&s.path, "schema_version"), 1);
    s.client()
        .execute(
            "INSERT INTO schema_version (version, applied_at) VALUES ($1, '2030-01-01T00:00:00Z')",
            &[&(SCHEMA_VERSION + 1)],
        )
        .unwrap();
    let url = PostgresUrl::parse(s.url()).unwrap();
    match Store::open_postgres(&url) {
        Err(Error::SchemaTooNew { found, supported }) => {
            assert_eq!((found, supported), (SCHEMA_VERSION + 1, SCHEMA_VERSION));
        }
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
}

#[test]
fn the_audit_log_cannot_be_updated_deleted_or_truncated() {
    let Some(s) = pg() else { return };
    let mut store = s.open();
    store
        .transaction_at(T0, |tx| {
            tx.append_audit("admin", "test.one", "x", &serde_json::json!({}))
        })
        .unwrap();
    let mut c = s.client();
    for sql in [
        "UPDATE audit_log SET actor = 'mallory'",
        "DELETE FROM audit_log",
        "TRUNCATE audit_log",
    ] {
        let e = c.batch_execute(sql).unwrap_err();
        let e = e.as_db_error().unwrap().message().to_owned();
        assert!(e.contains("append-only"), "{sql}: {e}");
    }
    assert_eq!(store.verify_audit_chain().unwrap().records, 1);
}

#[test]
fn published_rows_cannot_be_changed_and_only_superseded_ones_deleted() {
    let Some(s) = pg() else { return };
    let mut store = s.open();
    let mut repo = repository();
    let first = repo.commit(T0).unwrap();
    store
        .transaction_at(T0, |tx| tx.record_published(&first))
        .unwrap();
    let mut c = s.client();
    let refused = |c: &mut postgres::Client, sql: &str| -> String {
        let e = c.batch_execute(sql).unwrap_err();
        e.as_db_error().unwrap().message().to_owned()
    };
    assert!(refused(&mut c, "UPDATE published_files SET bytes = '\\x00'").contains("immutable"));
    assert!(refused(&mut c, "UPDATE published_files SET lineage = 'x'").contains("immutable"));
    assert!(refused(&mut c, "DELETE FROM published_files").contains("never deleted"));
    // Refused by the trigger, or before it by the reference from
    // `published_superseded`: either way nothing goes.
    let truncate = refused(&mut c, "TRUNCATE published_files");
    assert!(
        truncate.contains("immutable") || truncate.contains("foreign key"),
        "{truncate}"
    );
    // Even a root marked superseded stays.
    c.batch_execute(
        "INSERT INTO published_superseded (id, superseded_at)
         SELECT id, '2000-01-01T00:00:00Z' FROM published_files WHERE role = 'root'",
    )
    .unwrap();
    assert!(
        refused(&mut c, "DELETE FROM published_files WHERE role = 'root'")
            .contains("root versions")
    );
    assert_eq!(count(&s.path, "published_files"), first.len() as i64);

    // A superseded version goes with the pruning, a current one stays.
    repo.set_target("targets", "org/peers.json", b"{}", None)
        .unwrap();
    let second = repo.commit(T0 + time::Duration::minutes(1)).unwrap();
    store
        .transaction_at(T0, |tx| tx.record_published(&second))
        .unwrap();
    let pruned = store
        .transaction_at(T0 + time::Duration::days(1), |tx| {
            tx.prune_superseded(T0 + time::Duration::days(1), None)
        })
        .unwrap();
    assert!(pruned > 0);
    let ts = store.published_file("metadata/timestamp.json").unwrap();
    assert_eq!(ts.version, Some(2));
    assert_eq!(
        store
            .published_history("metadata/timestamp.json")
            .unwrap()
            .len(),
        1
    );
    assert!(store.published_file("metadata/1.root.json").is_ok());
}

/// Two stores on one database (two servers) publish the same next
/// timestamp version at once: the second waits for the first's write lock,
/// then sees its version and is refused. Without the lock both would read
/// version 1 and both record a version 2: a forked repository.
#[test]
fn two_stores_on_one_database_never_both_publish_the_next_version() {
    let Some(s) = pg() else { return };
    let mut repo = repository();
    let first = repo.commit(T0).unwrap();
    s.open()
        .transaction_at(T0, |tx| tx.record_published(&first))
        .unwrap();
    repo.set_target("targets", "org/peers.json", b"{}", None)
        .unwrap();
    let next: Vec<File> = repo
        .commit(T0 + time::Duration::minutes(1))
        .unwrap()
        .into_iter()
        .filter(|f| !f.immutable)
        .collect();
    assert_eq!(next.len(), 1, "the timestamp");

    let mut second = open_at(&s.path);
    let (recorded, wait_for_record) = mpsc::channel();
    let first_writer = {
        let path = s.path.clone();
        let next = next.clone();
        std::thread::spawn(move || {
            let mut store = open_at(&path);
            store.transaction_at(T0, |tx| {
                tx.record_published(&next)?;
                recorded.send(()).unwrap();
                // Still inside the transaction: the other store waits.
                std::thread::sleep(Duration::from_millis(500));
                Ok::<_, Error>(())
            })
        })
    };
    wait_for_record.recv().unwrap();
    let started = std::time::Instant::now();
    let r = second.transaction_at(T0, |tx| tx.record_published(&next));
    first_writer.join().unwrap().unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "the second writer did not wait for the first"
    );
    match r {
        Err(Error::Invalid { message, .. }) => assert!(message.contains("not newer"), "{message}"),
        other => panic!("expected Invalid (not newer), got {other:?}"),
    }
    assert_eq!(
        second
            .published_history("metadata/timestamp.json")
            .unwrap()
            .len(),
        2
    );
}

/// A failed statement inside a transaction whose closure goes on and
/// returns `Ok` is not committed as if nothing happened: PostgreSQL
/// ignores everything after it, so the commit fails.
#[test]
fn a_transaction_that_failed_inside_is_not_reported_committed() {
    let Some(s) = pg() else { return };
    let mut store = s.open();
    store
        .transaction_at(T0, |tx| {
            tx.create_namespace(&entry("team-a", &["a/**"]), nz(1))
        })
        .unwrap();
    let r = store.transaction_at(T0, |tx| {
        let again = tx.create_namespace(&entry("team-a", &["b/**"]), nz(1));
        assert_exists(again, "namespace");
        Ok::<_, Error>(())
    });
    assert!(r.is_err(), "{r:?}");
    // The store is usable after it, and a savepoint lets a change fail alone.
    store
        .transaction_at(T0, |tx| {
            let again = tx.savepoint(|tx| tx.create_namespace(&entry("team-a", &["b/**"]), nz(1)));
            assert_exists(again, "namespace");
            tx.create_namespace(&entry("team-c", &["c/**"]), nz(1))
        })
        .unwrap();
    assert_eq!(store.namespaces().unwrap().len(), 2);
}

#[test]
fn an_unreachable_database_is_one_clear_line_without_the_password() {
    let url = PostgresUrl::parse(
        "postgres://keyshare:s3cret@%2Fnonexistent%2Fkeyshare-socket/keyshare?connect_timeout=2",
    )
    .unwrap();
    let e = Store::open_postgres(&url).unwrap_err().to_string();
    assert!(
        e.starts_with(
            "cannot connect to the PostgreSQL store postgres://keyshare@%2Fnonexistent%2Fkeyshare-socket:5432/keyshare: "
        ),
        "{e}"
    );
    assert!(!e.contains("s3cret"), "{e}");
    assert!(!e.contains('\n'), "{e}");
}

/// A SQLite store copied into an empty PostgreSQL one: every record, file
/// and audit record the same, the chain verified, and the copy goes on
/// where the source stopped (ids, sequence numbers, versions).
#[test]
fn a_sqlite_store_copied_into_postgres_is_the_same_store_and_goes_on() {
    let Some(s) = pg() else { return };
    let sqlite = crate::support::Scratch::new();
    let mut source = sqlite.open();
    let key = trusted_key();
    let mut repo = repository();
    let first = repo.commit(T0).unwrap();
    let tokens = source
        .transaction_at(T0, |tx| {
            tx.create_namespace(&entry("team-a", &["a/**"]), nz(1))?;
            tx.create_namespace(&entry("team-b", &["b/**"]), nz(2))?;
            tx.add_key(&ns("team-a"), &key)?;
            tx.put_peer(&peer("partner", "partner.example/**"))?;
            tx.add_revocation(&key_revocation(&trusted_key(), "lost"), None)?;
            tx.record_published(&first)?;
            tx.append_audit(
                "admin",
                "namespace.create",
                "team-a",
                &serde_json::json!({}),
            )?;
            Ok::<_, Error>(vec![
                tx.create_token(&keyshare_server::store::TokenKind::OrgAdmin, Some("admin"))?,
                tx.create_token(
                    &keyshare_server::store::TokenKind::Maintainer(ns("team-b")),
                    None,
                )?,
            ])
        })
        .unwrap();
    repo.set_target("targets", "org/peers.json", b"{}", None)
        .unwrap();
    let second = repo.commit(T0 + time::Duration::minutes(1)).unwrap();
    source
        .transaction_at(T0, |tx| {
            tx.record_published(&second)?;
            tx.append_audit("admin", "peer.put", "partner", &serde_json::json!({"n": 2}))
        })
        .unwrap();

    let mut dest = s.open();
    let report = source.copy_into(&mut dest).unwrap();
    assert_eq!(report.audit_head, source.verify_audit_chain().unwrap());
    assert_eq!(dest.verify_audit_chain().unwrap(), report.audit_head);
    assert_eq!(dest.namespaces().unwrap(), source.namespaces().unwrap());
    assert_eq!(dest.keys("team-a").unwrap(), source.keys("team-a").unwrap());
    assert_eq!(dest.peers().unwrap(), source.peers().unwrap());
    assert_eq!(dest.revocations().unwrap(), source.revocations().unwrap());
    assert_eq!(dest.tokens().unwrap(), source.tokens().unwrap());
    assert_eq!(
        dest.token_by_secret(tokens[1].secret.expose()).unwrap(),
        source.token_by_secret(tokens[1].secret.expose()).unwrap()
    );
    assert_eq!(
        dest.audit_records(0, 100).unwrap(),
        source.audit_records(0, 100).unwrap()
    );
    assert_eq!(
        dest.namespace_document_bytes("team-b").unwrap(),
        source.namespace_document_bytes("team-b").unwrap()
    );
    for path in [
        "metadata/timestamp.json",
        "metadata/1.root.json",
        "metadata/2.snapshot.json",
    ] {
        assert_eq!(
            dest.published_history(path).unwrap(),
            source.published_history(path).unwrap(),
            "{path}"
        );
    }
    assert_eq!(
        dest.last_published().unwrap(),
        source.last_published().unwrap()
    );

    // A copy goes only into an empty store.
    let mut again = s.open();
    match source.copy_into(&mut again) {
        Err(Error::Invalid { message, .. }) => assert!(message.contains("not empty"), "{message}"),
        other => panic!("expected Invalid (not empty), got {other:?}"),
    }

    // The copy goes on: new ids after the copied ones, the next audit
    // sequence number, the next timestamp version.
    repo.set_target("targets", "org/peers.json", b"{\"x\": 1}", None)
        .unwrap();
    let third = repo.commit(T0 + time::Duration::minutes(2)).unwrap();
    let record = dest
        .transaction_at(T0, |tx| {
            tx.record_published(&third)?;
            tx.add_revocation(&key_revocation(&trusted_key(), "stolen"), None)?;
            tx.append_audit("admin", "test.after", "copy", &serde_json::json!({}))
        })
        .unwrap();
    assert_eq!(record.seq, report.audit_head.records + 1);
    assert_eq!(
        dest.published_file("metadata/timestamp.json")
            .unwrap()
            .version,
        Some(3)
    );
    assert_eq!(dest.revocations().unwrap().len(), 2);
    dest.verify_audit_chain().unwrap();
}

/// The database ends the store's session (a restart, an administrator):
/// the transaction that finds the connection lost fails, and the store
/// connects again for the next one.
#[test]
fn a_lost_connection_is_made_again_for_the_next_transaction() {
    let Some(s) = pg() else { return };
    let mut store = s.open();
    store
        .transaction_at(T0, |tx| {
            tx.create_namespace(&entry("team-a", &["a/**"]), nz(1))
        })
        .unwrap();
    let ended: i64 = s
        .client()
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(ended, 1, "the store's one session");
    let mut attempts = 0;
    loop {
        attempts += 1;
        let r = store.transaction_at(T0, |tx| {
            tx.create_namespace(&entry("team-b", &["b/**"]), nz(1))
        });
        match r {
            Ok(()) => break,
            Err(e) if attempts == 1 => {
                assert!(matches!(e, Error::Postgres(_)), "{e:?}");
            }
            Err(e) => panic!("the store did not connect again: {e:?}"),
        }
    }
    assert_eq!(store.namespaces().unwrap().len(), 2);
}
