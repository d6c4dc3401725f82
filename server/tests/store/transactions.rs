//! One logical change is one transaction: a failure anywhere writes nothing.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::panic::{catch_unwind, AssertUnwindSafe};

use super::support::*;
use keyshare_server::store::{Error, TokenKind};

const TABLES: &[&str] = &[
    "namespaces",
    "keys",
    "revocations",
    "peers",
    "tokens",
    "token_namespaces",
    "published_files",
    "audit_log",
];

fn counts(path: &std::path::Path) -> Vec<i64> {
    TABLES.iter().map(|t| count(path, t)).collect()
}

/// A publisher's own error type: signing failed after the change was applied.
#[derive(Debug)]
enum PublishError {
    Store(Error),
    Signing(&'static str),
}

impl From<Error> for PublishError {
    fn from(e: Error) -> Self {
        Self::Store(e)
    }
}

#[test]
fn failing_closure_leaves_nothing_written() {
    let s = Scratch::new();
    let mut store = s.open();
    store
        .transaction_at(T0, |tx| {
            tx.create_namespace(&entry("team-a", &["a/**"]), nz(1))?;
            tx.append_audit(
                "admin",
                "namespace.create",
                "team-a",
                &serde_json::json!({}),
            )
        })
        .unwrap();
    let before = counts(&s.path);

    let key = trusted_key();
    let result = store.transaction_at(T0, |tx| {
        tx.create_namespace(&entry("team-b", &["b/**"]), nz(1))?;
        tx.add_key(&ns("team-a"), &key)?;
        tx.add_revocation(&key_revocation(&trusted_key(), "leaked"), None)?;
        tx.put_peer(&peer("partner", "p/**"))?;
        tx.create_token(&TokenKind::OrgAdmin, None)?;
        tx.record_published(&repository().commit(T0).unwrap())?;
        tx.append_audit(
            "admin",
            "key.add",
            "team-a",
            &serde_json::json!({"key": key.id}),
        )?;
        // Inside the transaction, the writes are visible.
        assert_eq!(tx.keys("team-a")?.len(), 1);
        // Then a store error: the key is already there.
        tx.add_key(&ns("team-a"), &key)
    });
    assert!(matches!(result, Err(Error::AlreadyExists { .. })));
    assert_eq!(counts(&s.path), before);
    assert!(store.keys("team-a").unwrap().is_empty());
    assert_not_found(store.namespace("team-b"), "namespace");
}

#[test]
fn failure_of_the_callers_own_error_type_rolls_back() {
    let s = Scratch::new();
    let mut store = s.open();
    let before = counts(&s.path);
    let result: Result<(), PublishError> = store.transaction_at(T0, |tx| {
        tx.create_namespace(&entry("team-a", &["a/**"]), nz(1))?;
        tx.append_audit(
            "admin",
            "namespace.create",
            "team-a",
            &serde_json::json!({}),
        )?;
        Err(PublishError::Signing("HSM unavailable"))
    });
    assert!(matches!(
        result,
        Err(PublishError::Signing("HSM unavailable"))
    ));
    assert_eq!(counts(&s.path), before);
    // And a store error converts into the caller's type.
    let result: Result<(), PublishError> =
        store.transaction_at(T0, |tx| Ok(tx.delete_namespace("nope").map(|_| ())?));
    assert!(matches!(
        result,
        Err(PublishError::Store(Error::NotFound { .. }))
    ));
}

#[test]
fn panicking_closure_leaves_nothing_written_and_the_store_usable() {
    let s = Scratch::new();
    let mut store = s.open();
    let before = counts(&s.path);
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let _ = store.transaction_at(T0, |tx| {
            tx.create_namespace(&entry("team-a", &["a/**"]), nz(1))?;
            if tx.namespaces()?.len() == 1 {
                panic!("publisher bug");
            }
            Ok::<_, Error>(())
        });
    }));
    assert!(outcome.is_err());
    assert_eq!(counts(&s.path), before);
    store
        .transaction_at(T0, |tx| {
            tx.create_namespace(&entry("team-a", &["a/**"]), nz(1))
        })
        .unwrap();
    assert_eq!(store.namespaces().unwrap().len(), 1);
}

#[test]
fn committed_transaction_is_visible_to_another_connection_and_uses_one_time() {
    let s = Scratch::new();
    let mut store = s.open();
    let reader = s.open();
    let audit = store
        .transaction_at(T0, |tx| {
            assert_eq!(tx.now(), T0);
            tx.create_namespace(&entry("team-a", &["a/**"]), nz(1))?;
            tx.append_audit(
                "admin",
                "namespace.create",
                "team-a",
                &serde_json::json!({}),
            )
        })
        .unwrap();
    assert_eq!(audit.time, T0);
    assert_eq!(reader.namespace("team-a").unwrap().created_at, T0);
}

#[test]
fn transaction_without_a_given_time_stamps_now_in_whole_seconds() {
    let s = Scratch::new();
    let mut store = s.open();
    let before = time::OffsetDateTime::now_utc();
    let record = store
        .transaction(|tx| tx.append_audit("admin", "x", "y", &serde_json::json!(null)))
        .unwrap();
    assert_eq!(record.time.nanosecond(), 0);
    assert!((record.time - before).whole_seconds().abs() <= 2);
}

#[test]
fn concurrent_writers_on_separate_connections_keep_one_unbroken_audit_chain() {
    let s = Scratch::new();
    drop(s.open());
    let writers: Vec<_> = (0..3)
        .map(|w| {
            let path = s.path.clone();
            std::thread::spawn(move || {
                let mut store = open_at(&path);
                for i in 0..15 {
                    store
                        .transaction_at(T0, |tx| {
                            tx.append_audit(
                                &format!("writer-{w}"),
                                "test.write",
                                &i.to_string(),
                                &serde_json::json!({"w": w, "i": i}),
                            )
                        })
                        .unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    let store = s.open();
    assert_eq!(store.verify_audit_chain().unwrap().records, 45);
}
