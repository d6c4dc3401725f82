//! The wire shapes both sides rely on: which fields a client leaves out,
//! which unknown fields the server refuses, and the answers' JSON.

use serde_json::{json, Value};
use time::macros::datetime;

use super::*;
use crate::datetime::Rfc3339Time;
use crate::hash::Sha256Hex;
use crate::trust::{NamespaceName, Revocation, RevokedSubject};

#[test]
fn a_clients_request_leaves_out_what_it_does_not_give_and_the_server_reads_it() {
    let req: AddKey<Value, &str> = AddKey {
        key: None,
        public_key_pem: Some("PEM".into()),
        id: None,
        not_before: None,
        not_after: Some("2030-01-01T00:00:00Z"),
        description: None,
        layout_root: false,
    };
    let sent = serde_json::to_value(&req).unwrap();
    assert_eq!(
        sent,
        json!({"public_key_pem": "PEM", "not_after": "2030-01-01T00:00:00Z"})
    );
    let read: AddKey = serde_json::from_value(sent).unwrap();
    assert_eq!(
        read.not_after.map(Rfc3339Time::time),
        Some(datetime!(2030-01-01 00:00 UTC))
    );
    assert!(!read.layout_root);
    let marked: AddKey =
        serde_json::from_value(json!({"public_key_pem": "PEM", "layout_root": true})).unwrap();
    assert!(marked.layout_root);

    let create: CreateNamespace<String, String> = CreateNamespace {
        name: "team-a".into(),
        scopes: vec!["r.io/a/**".into()],
        maintainers: vec![],
        allow_overlap: false,
    };
    let sent = serde_json::to_value(&create).unwrap();
    assert_eq!(
        sent,
        json!({"name": "team-a", "scopes": ["r.io/a/**"], "maintainers": []})
    );
    let read: CreateNamespace = serde_json::from_value(sent).unwrap();
    assert_eq!(read.name.as_str(), "team-a");
    assert!(!read.allow_overlap);
}

#[test]
fn requests_refuse_unknown_fields() {
    fn refuses<T: serde::de::DeserializeOwned>(body: Value) {
        let mut with_x = body.clone();
        with_x["x"] = json!(1);
        assert!(serde_json::from_value::<T>(body.clone()).is_ok(), "{body}");
        let e = serde_json::from_value::<T>(with_x).err().unwrap();
        assert!(e.to_string().contains("unknown field `x`"), "{e}");
    }
    refuses::<CreateNamespace>(json!({"name": "a", "scopes": ["r/**"]}));
    refuses::<SetThreshold>(json!({"threshold": 1}));
    refuses::<AddScopes>(json!({"scopes": ["r/**"]}));
    refuses::<AddKey>(json!({"public_key_pem": "PEM"}));
    refuses::<RevokeNamespaceKey>(json!({"key_id": "k", "reason": "r"}));
    refuses::<AddRevocation>(json!({"reason": "r"}));
    refuses::<CreateToken>(json!({"kind": "org-admin"}));
    refuses::<PutRoot>(json!({"pem": "p"}));
    refuses::<AuditQuery>(json!({}));
}

#[test]
fn a_bad_time_is_refused_with_policys_message() {
    let e = serde_json::from_value::<RevokeNamespaceKey>(
        json!({"key_id": "k", "reason": "r", "revoked_at": "yesterday"}),
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("`yesterday` is not an RFC 3339 time"),
        "{e}"
    );
}

#[test]
fn answers_with_a_flattened_document_are_one_object() {
    let revocation = Revocation {
        subject: RevokedSubject::Key(Sha256Hex::parse(&"a".repeat(64)).unwrap()),
        revoked_at: datetime!(2030-01-01 00:00 UTC),
        reason: "lost".into(),
    };
    let listing = Listing {
        namespace: "team-a".into(),
        sub_delegation: None,
        key_id: "k1".into(),
    };
    let added = RevocationAdded {
        revocation: revocation.clone(),
        named_as: Some(listing.clone()),
        listed_in: vec![listing],
    };
    assert_eq!(
        serde_json::to_value(&added).unwrap(),
        json!({
            "subject": {"spki_sha256": "a".repeat(64)},
            "revoked_at": "2030-01-01T00:00:00Z",
            "reason": "lost",
            "named_as": {"namespace": "team-a", "key_id": "k1"},
            "listed_in": [{"namespace": "team-a", "key_id": "k1"}],
        })
    );
    let own = NamespaceKeyRevoked {
        revocation,
        namespace: NamespaceName::parse("team-a").unwrap(),
        key_id: crate::ids::KeyId::new("k1"),
        listed_in: vec![],
    };
    let v = serde_json::to_value(&own).unwrap();
    assert_eq!(v["namespace"], "team-a");
    assert_eq!(v["subject"]["spki_sha256"], "a".repeat(64));
}

#[test]
fn resolve_and_audit_check_answers_keep_their_shapes() {
    let peer = Resolved::Peer {
        peer: "p".into(),
        url: "https://p.example".into(),
    };
    assert_eq!(
        serde_json::to_value(&peer).unwrap(),
        json!({"kind": "peer", "peer": "p", "url": "https://p.example"})
    );
    let broken: AuditVerification =
        serde_json::from_value(json!({"ok": false, "first_bad_seq": 3, "reason": "bad"})).unwrap();
    assert!(matches!(broken, AuditVerification::Broken(_)));
    let mismatch: AuditVerification = serde_json::from_value(json!({
        "ok": false, "first_bad_seq": 3, "reason": "bad", "published_in": "published in timestamp v2",
        "head_seq": 3, "expected": "e", "found": null
    }))
    .unwrap();
    assert!(matches!(mismatch, AuditVerification::HeadMismatch(_)));
    let intact: AuditVerification = serde_json::from_value(json!({
        "ok": true, "records": 4, "hash": "h", "published_heads": 1, "published_head": null
    }))
    .unwrap();
    assert!(matches!(intact, AuditVerification::Intact(_)));
}
