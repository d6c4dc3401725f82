//! The audit log is append-only and hash-chained: tampering is detected and located.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use super::support::*;
use keyshare_server::store::{AuditHead, Error, Store};
use serde_json::json;

/// A store with five audit records, written in three transactions.
fn five_records(s: &Scratch) -> Store {
    let mut store = s.open();
    store
        .transaction_at(T0, |tx| {
            tx.append_audit(
                "admin",
                "namespace.create",
                "team-a",
                &json!({"scopes": ["a/**"]}),
            )?;
            tx.append_audit(
                "admin",
                "token.create",
                "tok-1",
                &json!({"kind": "maintainer"}),
            )
        })
        .unwrap();
    store
        .transaction_at(T0 + time::Duration::minutes(1), |tx| {
            tx.append_audit(
                "tok-1",
                "key.add",
                "team-a",
                &json!({"key_id": "k1", "n": 1}),
            )
        })
        .unwrap();
    store
        .transaction_at(T0 + time::Duration::minutes(2), |tx| {
            tx.append_audit("tok-1", "key.remove", "team-a", &json!({"key_id": "k1"}))?;
            tx.append_audit("admin", "revocation.add", "k1", &json!({"reason": "left"}))
        })
        .unwrap();
    store
}

/// A raw connection with the append-only triggers dropped, as an attacker
/// with write access to the file could do.
fn tamper(s: &Scratch) -> Raw {
    let conn = raw(s);
    conn.allow_audit_log_changes();
    conn
}

fn broken_at(store: &Store) -> (i64, String) {
    match store.verify_audit_chain() {
        Err(Error::AuditChain { seq, reason }) => (seq, reason),
        other => panic!("expected AuditChain, got {other:?}"),
    }
}

#[test]
fn intact_chain_verifies_and_links_each_record_to_the_previous() {
    let s = Scratch::new();
    let store = five_records(&s);
    let head = store.verify_audit_chain().unwrap();
    assert_eq!(head.records, 5);
    assert_eq!(store.audit_head().unwrap(), head);
    let records = store.audit_records(0, 100).unwrap();
    assert_eq!(records.len(), 5);
    assert_eq!(records[0].prev_hash, "0".repeat(64));
    for pair in records.windows(2) {
        assert_eq!(pair[1].prev_hash, pair[0].hash);
        assert_eq!(pair[1].seq, pair[0].seq + 1);
    }
    assert_eq!(records[4].hash, head.hash);
    assert_eq!(records[2].details, json!({"key_id": "k1", "n": 1}));
    assert_eq!(records[2].time, T0 + time::Duration::minutes(1));
    assert_eq!(store.audit_records(3, 1).unwrap()[0].seq, 4);
}

#[test]
fn empty_log_verifies_with_a_zero_head() {
    let s = Scratch::new();
    let store = s.open();
    assert_eq!(
        store.verify_audit_chain().unwrap(),
        AuditHead {
            records: 0,
            hash: "0".repeat(64)
        }
    );
}

#[test]
fn plain_update_or_delete_of_an_audit_record_is_refused_by_the_database() {
    let s = Scratch::new();
    drop(five_records(&s));
    let conn = raw(&s);
    let update = conn.execute("UPDATE audit_log SET actor = 'mallory' WHERE seq = 2", []);
    assert!(update.unwrap_err().to_string().contains("append-only"));
    let delete = conn.execute("DELETE FROM audit_log WHERE seq = 2", []);
    assert!(delete.unwrap_err().to_string().contains("append-only"));
}

#[test]
fn edited_details_are_detected_at_that_record() {
    let s = Scratch::new();
    let store = five_records(&s);
    tamper(&s)
        .execute(
            r#"UPDATE audit_log SET details = '{"key_id":"k2","n":1}' WHERE seq = 3"#,
            [],
        )
        .unwrap();
    let (seq, reason) = broken_at(&store);
    assert_eq!(seq, 3);
    assert!(reason.contains("hash"), "{reason}");
}

/// The record hash as documented in docs/operations/store.md.
fn documented_hash(r: &keyshare_server::store::AuditRecord, time: &str) -> String {
    let tuple = json!([
        "keyshare.audit/v1",
        r.seq,
        time,
        r.actor,
        r.action,
        r.subject,
        r.details,
        r.prev_hash
    ]);
    let bytes = keyshare_policy::cjson::to_canonical(&tuple, "test").unwrap();
    keyshare_policy::hash::sha256_hex(&bytes)
}

#[test]
fn record_hash_is_sha256_of_the_documented_canonical_tuple() {
    let s = Scratch::new();
    let store = five_records(&s);
    for r in store.audit_records(0, 10).unwrap() {
        let time = r
            .time
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap();
        assert_eq!(documented_hash(&r, &time), r.hash, "seq {}", r.seq);
    }
}

#[test]
fn edited_record_with_a_valid_new_hash_is_caught_by_the_next_link() {
    let s = Scratch::new();
    let store = five_records(&s);
    let mut forged = store.audit_records(1, 1).unwrap().remove(0);
    assert_eq!(forged.seq, 2);
    forged.actor = "mallory".into();
    let time = "2026-01-02T03:04:05Z";
    let hash = documented_hash(&forged, time);
    tamper(&s)
        .execute(
            "UPDATE audit_log SET actor = 'mallory', hash = ?1 WHERE seq = 2",
            [&hash],
        )
        .unwrap();
    let (seq, reason) = broken_at(&store);
    assert_eq!(seq, 3);
    assert!(reason.contains("prev_hash"), "{reason}");
}

#[test]
fn deleted_middle_record_is_detected_at_its_sequence_number() {
    let s = Scratch::new();
    let store = five_records(&s);
    tamper(&s)
        .execute("DELETE FROM audit_log WHERE seq = 3", [])
        .unwrap();
    let (seq, reason) = broken_at(&store);
    assert_eq!(seq, 3);
    assert!(reason.contains("missing"), "{reason}");
}

#[test]
fn deleted_first_record_is_detected_at_one() {
    let s = Scratch::new();
    let store = five_records(&s);
    tamper(&s)
        .execute("DELETE FROM audit_log WHERE seq = 1", [])
        .unwrap();
    assert_eq!(broken_at(&store).0, 1);
}

#[test]
fn swapped_records_are_detected_at_the_first_of_them() {
    let s = Scratch::new();
    let store = five_records(&s);
    let conn = tamper(&s);
    conn.execute_batch(
        "UPDATE audit_log SET seq = -1 WHERE seq = 2;
         UPDATE audit_log SET seq = 2 WHERE seq = 4;
         UPDATE audit_log SET seq = 4 WHERE seq = -1;",
    )
    .unwrap();
    assert_eq!(broken_at(&store).0, 2);
}

#[test]
fn renumbered_records_after_a_deletion_are_detected() {
    let s = Scratch::new();
    let store = five_records(&s);
    // Delete record 3 and close the gap: 4 -> 3, 5 -> 4.
    tamper(&s)
        .execute_batch(
            "DELETE FROM audit_log WHERE seq = 3;
             UPDATE audit_log SET seq = 3 WHERE seq = 4;
             UPDATE audit_log SET seq = 4 WHERE seq = 5;",
        )
        .unwrap();
    assert_eq!(broken_at(&store).0, 3);
}

#[test]
fn truncating_the_end_is_only_seen_by_comparing_the_head() {
    let s = Scratch::new();
    let store = five_records(&s);
    let head = store.verify_audit_chain().unwrap();
    tamper(&s)
        .execute("DELETE FROM audit_log WHERE seq = 5", [])
        .unwrap();
    let after = store.verify_audit_chain().unwrap();
    assert_eq!(after.records, 4);
    assert_ne!(after, head, "a head kept elsewhere reveals the truncation");
}

#[test]
fn appending_continues_the_chain_across_reopen() {
    let s = Scratch::new();
    let head = five_records(&s).verify_audit_chain().unwrap();
    let mut store = s.open();
    let record = store
        .transaction_at(T0, |tx| {
            tx.append_audit("admin", "peer.put", "partner", &json!([1, "two"]))
        })
        .unwrap();
    assert_eq!(record.seq, 6);
    assert_eq!(record.prev_hash, head.hash);
    assert_eq!(store.verify_audit_chain().unwrap().records, 6);
}

#[test]
fn audit_details_with_floats_or_empty_actor_are_invalid_and_write_nothing() {
    let s = Scratch::new();
    let mut store = s.open();
    match store.transaction_at(T0, |tx| {
        tx.append_audit("admin", "x", "y", &json!({"ratio": 0.5}))
    }) {
        Err(Error::Invalid { field, .. }) => assert_eq!(field, "details"),
        other => panic!("expected Invalid details, got {other:?}"),
    }
    match store.transaction_at(T0, |tx| tx.append_audit(" ", "x", "y", &json!({}))) {
        Err(Error::Invalid { field, .. }) => assert_eq!(field, "actor"),
        other => panic!("expected Invalid actor, got {other:?}"),
    }
    assert_eq!(count(&s.path, "audit_log"), 0);
}
