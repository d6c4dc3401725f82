//! Token expiry and last use, filtered audit listings, and what the admin
//! API refuses before storing: private keys next to certificates, times
//! and names with parser internals in the message.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::{Arc, Mutex};

use actix_web::http::{Method, StatusCode};
use serde_json::{json, Value};
use time::{Duration, OffsetDateTime};

use crate::http_common::{ca_pem, ed25519_key, ns_name, request, send, Fixture, NOW};
use keyshare_policy::keys::Scheme;
use keyshare_policy::metadata::KeyId;
use keyshare_policy::sign::{InMemorySigner, Signer};
use keyshare_policy::trust::TrustedKey;
use keyshare_server::publisher::Change;
use keyshare_server::store::{AuditFilter, Store, TokenKind};

/// A fixture whose clock the test moves.
fn fixture_with_clock() -> (Fixture, Arc<Mutex<OffsetDateTime>>) {
    let mut f = Fixture::new();
    let now = Arc::new(Mutex::new(NOW));
    let clock = now.clone();
    f.state.clock = Arc::new(move || *clock.lock().unwrap());
    (f, now)
}

/// The stored token with this id.
fn stored_token(f: &Fixture, id: &str) -> keyshare_server::store::Token {
    f.publisher.read(|s| s.token(id)).unwrap()
}

#[actix_web::test]
async fn a_token_past_its_expiry_is_refused_with_401_naming_the_expiry() {
    let (f, now) = fixture_with_clock();
    let app = app!(f);
    let created = send(
        &app,
        request(
            Method::POST,
            "/api/v1/tokens",
            Some(&f.admin),
            Some(&json!({"kind": "org-admin", "expires_in": 3600})),
        )
        .to_request(),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{created:?}");
    let v = created.json();
    assert_eq!(v["expires_at"], "2030-01-01T13:00:00Z");
    assert_eq!(v["state"], "active");
    let secret = v["secret"].as_str().unwrap().to_owned();
    let id = v["id"].as_str().unwrap().to_owned();

    let list = |token: String| request(Method::GET, "/api/v1/namespaces", Some(&token), None);
    let a = send(&app, list(secret.clone()).to_request()).await;
    assert_eq!(a.status, StatusCode::OK);

    // One second before the expiry it works; at the expiry it does not.
    *now.lock().unwrap() = NOW + Duration::seconds(3599);
    assert_eq!(
        send(&app, list(secret.clone()).to_request()).await.status,
        StatusCode::OK
    );
    *now.lock().unwrap() = NOW + Duration::hours(1);
    let a = send(&app, list(secret.clone()).to_request()).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    let (code, message) = a.error();
    assert_eq!(code, "unauthorized");
    assert!(
        message.contains(&format!("token `{id}` expired at 2030-01-01T13:00:00Z")),
        "{message}"
    );
    assert!(!message.contains(&secret));
    // Every kind of endpoint refuses it, writes included, and nothing is written.
    let before = f.publisher.read(Store::audit_head).unwrap();
    let a = send(
        &app,
        request(
            Method::POST,
            "/api/v1/namespaces",
            Some(&secret),
            Some(&json!({"name": "team-x", "scopes": ["registry.acme.io/x/**"]})),
        )
        .to_request(),
    )
    .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(f.publisher.read(Store::audit_head).unwrap(), before);

    // The listing shows it expired.
    let tokens = send(
        &app,
        request(Method::GET, "/api/v1/tokens", Some(&f.admin), None).to_request(),
    )
    .await
    .json();
    let t = tokens["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == id.as_str())
        .unwrap()
        .clone();
    assert_eq!(t["state"], "expired");
    assert_eq!(t["expires_at"], "2030-01-01T13:00:00Z");
    // Last accepted one second before its expiry.
    assert_eq!(t["last_used_at"], "2030-01-01T12:59:59Z");
    assert!(t.get("secret").is_none());
}

#[actix_web::test]
async fn an_expiry_given_as_a_time_is_kept_and_the_token_works_until_then() {
    let (f, now) = fixture_with_clock();
    let app = app!(f);
    let v = send(
        &app,
        request(
            Method::POST,
            "/api/v1/tokens",
            Some(&f.admin),
            Some(&json!({"kind": "org-admin", "expires_at": "2030-01-02T00:00:00+02:00"})),
        )
        .to_request(),
    )
    .await
    .json();
    assert_eq!(v["expires_at"], "2030-01-01T22:00:00Z");
    let stored = stored_token(&f, v["id"].as_str().unwrap());
    assert_eq!(
        stored.expires_at,
        Some(time::macros::datetime!(2030-01-01 22:00 UTC))
    );
    *now.lock().unwrap() = NOW + Duration::hours(10);
    let secret = v["secret"].as_str().unwrap();
    let a = send(
        &app,
        request(Method::GET, "/api/v1/peers", Some(secret), None).to_request(),
    )
    .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{a:?}");
}

#[actix_web::test]
async fn bad_expiries_are_refused_naming_the_field_and_create_no_token() {
    let f = Fixture::new();
    let app = app!(f);
    let cases: [(Value, &str, &str); 6] = [
        (json!({"expires_in": 0}), "expires_in", "from 1 to"),
        (
            json!({"expires_in": 315_360_001u64}),
            "expires_in",
            "from 1 to",
        ),
        (
            json!({"expires_in": 60, "expires_at": "2030-02-01T00:00:00Z"}),
            "expires_in",
            "not both",
        ),
        (
            json!({"expires_at": "2029-12-31T00:00:00Z"}),
            "expires_at",
            "is not in the future",
        ),
        (
            json!({"expires_at": "2041-01-01T00:00:00Z"}),
            "expires_at",
            "at most ten years",
        ),
        (
            json!({"expires_at": "2030-02-01"}),
            "expires_at",
            "`2030-02-01` is not an RFC 3339 time: expected e.g. 2030-01-01T00:00:00Z",
        ),
    ];
    let before = f.publisher.read(Store::tokens).unwrap().len();
    for (extra, field, says) in cases {
        let mut body = json!({"kind": "org-admin"});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let a = send(
            &app,
            request(Method::POST, "/api/v1/tokens", Some(&f.admin), Some(&body)).to_request(),
        )
        .await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{body}: {a:?}");
        let (code, message) = a.error();
        assert_eq!(code, "invalid", "{body}");
        assert!(
            message.starts_with(&format!("{field}: ")),
            "{body}: {message}"
        );
        assert!(message.contains(says), "{body}: {message}");
        assert!(!message.contains("line 1 column"), "{body}: {message}");
        assert!(!message.contains("component"), "{body}: {message}");
    }
    assert_eq!(f.publisher.read(Store::tokens).unwrap().len(), before);
}

#[actix_web::test]
async fn last_use_is_recorded_at_most_once_a_minute_per_token() {
    let (f, now) = fixture_with_clock();
    let app = app!(f);
    let secret = f.token(TokenKind::OrgAdmin);
    let id = f
        .publisher
        .read(Store::tokens)
        .unwrap()
        .last()
        .unwrap()
        .id
        .clone();
    assert_eq!(stored_token(&f, &id).last_used_at, None);
    let get = || request(Method::GET, "/api/v1/namespaces", Some(&secret), None);

    for _ in 0..20 {
        assert_eq!(send(&app, get().to_request()).await.status, StatusCode::OK);
    }
    assert_eq!(stored_token(&f, &id).last_used_at, Some(NOW));

    // Within the minute: many reads, no write.
    *now.lock().unwrap() = NOW + Duration::seconds(59);
    for _ in 0..20 {
        assert_eq!(send(&app, get().to_request()).await.status, StatusCode::OK);
    }
    assert_eq!(stored_token(&f, &id).last_used_at, Some(NOW));

    // A minute on: one write.
    *now.lock().unwrap() = NOW + Duration::seconds(61);
    send(&app, get().to_request()).await;
    assert_eq!(
        stored_token(&f, &id).last_used_at,
        Some(NOW + Duration::seconds(61))
    );

    // A refused request is no use.
    let other = f.revoked_token();
    let a = send(
        &app,
        request(Method::GET, "/api/v1/namespaces", Some(&other), None).to_request(),
    )
    .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    let revoked = f
        .publisher
        .read(Store::tokens)
        .unwrap()
        .into_iter()
        .find(|t| !t.is_active())
        .unwrap();
    assert_eq!(revoked.last_used_at, None);
    // Recording a use is not audited.
    let actions: Vec<String> = f
        .publisher
        .read(|s| s.audit_records(0, 1000))
        .unwrap()
        .into_iter()
        .map(|r| r.action)
        .collect();
    assert!(actions.iter().all(|a| a != "token.use"), "{actions:?}");
}

fn key(ephemeral: bool, not_after: Option<OffsetDateTime>) -> TrustedKey {
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

fn create_namespace(f: &Fixture, name: &str) {
    f.publisher
        .apply(
            "token:tok-setup",
            Change::CreateNamespace {
                entry: keyshare_policy::trust::NamespaceEntry {
                    name: ns_name(name),
                    scopes: vec![keyshare_policy::pattern::ArtifactPattern::parse(&format!(
                        "registry.acme.io/{name}/**"
                    ))
                    .unwrap()],
                    maintainers: vec![],
                },
                threshold: std::num::NonZeroU32::MIN,
                allow_overlap: false,
            },
            NOW,
        )
        .unwrap();
}

#[actix_web::test]
async fn the_ci_sweep_record_names_every_key_it_removed() {
    let f = Fixture::new();
    create_namespace(&f, "team-a");
    create_namespace(&f, "team-b");
    let soon = Some(NOW + Duration::minutes(10));
    let (a1, a2, b1) = (key(true, soon), key(true, soon), key(true, soon));
    let long_lived = key(false, None);
    for (ns, k) in [
        ("team-a", &a1),
        ("team-a", &a2),
        ("team-b", &b1),
        ("team-b", &long_lived),
    ] {
        f.publisher
            .apply(
                "ci",
                Change::AddKey {
                    namespace: ns_name(ns),
                    key: k.clone(),
                },
                NOW,
            )
            .unwrap();
    }
    let later = NOW + Duration::minutes(11);
    assert_eq!(f.publisher.sweep_ephemeral(later).unwrap(), 3);
    let sweep = f
        .publisher
        .read(|s| {
            s.audit_query(&AuditFilter {
                action: Some("ci.sweep".into()),
                limit: 10,
                ..AuditFilter::default()
            })
        })
        .unwrap();
    assert_eq!(sweep.len(), 1);
    let mut removed: Vec<(String, String)> = sweep[0].details["removed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["namespace"].as_str().unwrap().to_owned(),
                r["key_id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    removed.sort();
    let mut expected = vec![
        ("team-a".to_owned(), a1.id.as_str().to_owned()),
        ("team-a".to_owned(), a2.id.as_str().to_owned()),
        ("team-b".to_owned(), b1.id.as_str().to_owned()),
    ];
    expected.sort();
    assert_eq!(removed, expected);
    assert!(sweep[0].details["files"].as_array().is_some());

    // The sweep is found by either namespace over the API.
    let app = app!(f);
    for ns in ["team-a", "team-b"] {
        let v = send(
            &app,
            request(
                Method::GET,
                &format!("/api/v1/audit?namespace={ns}&action=ci.sweep"),
                Some(&f.admin),
                None,
            )
            .to_request(),
        )
        .await
        .json();
        assert_eq!(v["records"].as_array().unwrap().len(), 1, "{ns}: {v}");
    }
}

/// Writes a small history: namespaces team-a and team-b, keys, a
/// revocation, a token, by two actors.
async fn history(f: &Fixture) -> Vec<Value> {
    let app = app!(f);
    let other = f.token(TokenKind::OrgAdmin);
    let post = |token: &str, uri: &str, body: Value| {
        request(Method::POST, uri, Some(token), Some(&body)).to_request()
    };
    for (token, uri, body) in [
        (
            f.admin.as_str(),
            "/api/v1/namespaces",
            json!({"name": "team-a", "scopes": ["registry.acme.io/team-a/**"]}),
        ),
        (
            other.as_str(),
            "/api/v1/namespaces",
            json!({"name": "team-b", "scopes": ["registry.acme.io/team-b/**"]}),
        ),
        (
            f.admin.as_str(),
            "/api/v1/namespaces/team-a/keys",
            json!({"key": ed25519_key(), "id": "a-1"}),
        ),
        (
            other.as_str(),
            "/api/v1/namespaces/team-b/keys",
            json!({"key": ed25519_key(), "id": "b-1"}),
        ),
        (
            f.admin.as_str(),
            "/api/v1/revocations",
            json!({"key_id": "a-1", "reason": "laptop lost"}),
        ),
        (
            f.admin.as_str(),
            "/api/v1/tokens",
            json!({"kind": "maintainer", "namespace": "team-b"}),
        ),
    ] {
        let a = send(&app, post(token, uri, body)).await;
        assert!(a.status.is_success(), "{uri}: {a:?}");
    }
    let all = send(
        &app,
        request(
            Method::GET,
            "/api/v1/audit?limit=1000",
            Some(&f.admin),
            None,
        )
        .to_request(),
    )
    .await
    .json();
    all["records"].as_array().unwrap().clone()
}

fn seqs(v: &Value) -> Vec<i64> {
    v["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["seq"].as_i64().unwrap())
        .collect()
}

#[actix_web::test]
async fn audit_listings_filter_by_action_actor_namespace_and_time_newest_first() {
    let f = Fixture::new();
    let all = history(&f).await;
    let app = app!(f);
    let get = |q: &str| {
        request(
            Method::GET,
            &format!("/api/v1/audit?{q}"),
            Some(&f.admin),
            None,
        )
        .to_request()
    };
    let expect = |pred: &dyn Fn(&Value) -> bool, newest_first: bool| -> Vec<i64> {
        let mut s: Vec<i64> = all
            .iter()
            .filter(|r| pred(r))
            .map(|r| r["seq"].as_i64().unwrap())
            .collect();
        if newest_first {
            s.reverse();
        }
        s
    };
    let admin_actor = all
        .iter()
        .find(|r| r["action"] == "namespace.create" && r["subject"] == "team-a")
        .unwrap()["actor"]
        .as_str()
        .unwrap()
        .to_owned();

    let v = send(&app, get("action=key.add")).await.json();
    assert_eq!(seqs(&v), expect(&|r| r["action"] == "key.add", false));
    assert_eq!(seqs(&v).len(), 2);

    let v = send(&app, get("action=key.*&order=desc")).await.json();
    assert_eq!(
        seqs(&v),
        expect(&|r| r["action"].as_str().unwrap().starts_with("key."), true)
    );

    let v = send(&app, get(&format!("actor={admin_actor}")))
        .await
        .json();
    assert_eq!(
        seqs(&v),
        expect(&|r| r["actor"] == admin_actor.as_str(), false)
    );

    // team-a: its creation, its key, the revocation of a key listed in it.
    let v = send(&app, get("namespace=team-a")).await.json();
    let actions: Vec<&str> = v["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["namespace.create", "key.add", "revocation.add"]);
    // team-b: its creation, its key, the maintainer token of it.
    let v = send(&app, get("namespace=team-b&order=desc")).await.json();
    let actions: Vec<&str> = v["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["token.create", "key.add", "namespace.create"]);

    // Newest first, paged with `before`.
    let newest = send(&app, get("order=desc&limit=2")).await.json();
    let last = all.last().unwrap()["seq"].as_i64().unwrap();
    assert_eq!(seqs(&newest), [last, last - 1]);
    let next = send(
        &app,
        get(&format!("order=desc&limit=2&before={}", last - 1)),
    )
    .await
    .json();
    assert_eq!(seqs(&next), [last - 2, last - 3]);

    // Time: everything was written at NOW; nothing since a second later.
    let v = send(&app, get("since=2030-01-01T12:00:00Z")).await.json();
    assert_eq!(seqs(&v).len(), all.len());
    let v = send(&app, get("since=2030-01-01T12:00:01Z")).await.json();
    assert!(seqs(&v).is_empty(), "{v}");
    // Filters combine.
    let v = send(&app, get("namespace=team-a&action=key.add"))
        .await
        .json();
    assert_eq!(v["records"].as_array().unwrap().len(), 1);
    assert_eq!(v["records"][0]["subject"], "team-a/a-1");
}

#[actix_web::test]
async fn bad_audit_queries_are_refused_naming_the_parameter() {
    let f = Fixture::new();
    let app = app!(f);
    let cases = [
        ("order=sideways", "order", "`asc`"),
        (
            "since=yesterday",
            "since",
            "expected e.g. 2030-01-01T00:00:00Z",
        ),
        ("action=key.*x", "action", "prefix ending in `.*`"),
        ("action=KEY.ADD", "action", "expected an action"),
        ("namespace=Team_A", "namespace", "not a namespace name"),
        ("limit=0", "limit", "at least 1"),
        ("before=0", "before", "at least 1"),
    ];
    for (q, field, says) in cases {
        let a = send(
            &app,
            request(
                Method::GET,
                &format!("/api/v1/audit?{q}"),
                Some(&f.admin),
                None,
            )
            .to_request(),
        )
        .await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{q}: {a:?}");
        let (code, message) = a.error();
        assert_eq!(code, "invalid", "{q}");
        assert!(message.starts_with(&format!("{field}: ")), "{q}: {message}");
        assert!(message.contains(says), "{q}: {message}");
    }
    // A page is capped, whatever is asked.
    for i in 0..3 {
        create_namespace(&f, &format!("n-{i}"));
    }
    let v = send(
        &app,
        request(
            Method::GET,
            "/api/v1/audit?limit=4000000000",
            Some(&f.admin),
            None,
        )
        .to_request(),
    )
    .await;
    assert_eq!(v.status, StatusCode::OK);
}

#[actix_web::test]
async fn a_namespace_filter_finds_records_written_before_the_index_existed() {
    let f = Fixture::new();
    history(&f).await;
    let path = f.publisher.read(|s| s.path().to_owned());
    // Take the database back to before the audit index (version 5, so
    // versions 11, 10, 9, 8, 7 and 6 undone), as a store written by an
    // older build, and open it again.
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(keyshare_testkit::legacy::UNDO_SCHEMA_11)
            .unwrap();
        conn.execute_batch(
            "ALTER TABLE keys DROP COLUMN layout_root;
             DROP TABLE timestamps;
             DROP TABLE tsas;
             DROP TABLE namespace_revocations;
             DROP TABLE audit_namespaces;
             DROP INDEX audit_log_by_action;
             DROP INDEX audit_log_by_actor;
             DROP INDEX audit_log_by_time;
             DELETE FROM schema_version WHERE version >= 6;",
        )
        .unwrap();
    }
    let store = Store::open(&path).unwrap();
    let found = store
        .audit_query(&AuditFilter {
            namespace: Some("team-a".into()),
            limit: 100,
            ..AuditFilter::default()
        })
        .unwrap();
    let actions: Vec<&str> = found.iter().map(|r| r.action.as_str()).collect();
    assert_eq!(actions, ["namespace.create", "key.add", "revocation.add"]);
}

#[actix_web::test]
async fn a_private_key_next_to_a_certificate_is_refused_and_never_stored() {
    let f = Fixture::new();
    create_namespace(&f, "team-a");
    let app = app!(f);
    let key = openssl::pkey::PKey::generate_ed25519().unwrap();
    let key_pem = String::from_utf8(key.private_key_to_pem_pkcs8().unwrap()).unwrap();
    let marker = key_pem.lines().nth(1).unwrap().to_owned();
    let with_key = format!("{}{key_pem}", ca_pem("acme CA"));
    let cases = [
        (
            Method::POST,
            "/api/v1/namespaces/team-a/identities",
            json!({"name": "release", "ca_certs": [ca_pem("other CA"), with_key], "subject": "C=US, ST=WA, O=acme"}),
            "ca_certs[1]",
        ),
        (
            Method::PUT,
            "/api/v1/roots/acme",
            json!({"pem": with_key}),
            "pem",
        ),
    ];
    for (method, uri, body, field) in cases {
        let a = send(
            &app,
            request(method, uri, Some(&f.admin), Some(&body)).to_request(),
        )
        .await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{uri}: {a:?}");
        let (code, message) = a.error();
        assert_eq!(code, "invalid");
        assert_eq!(
            message,
            format!("{field}: holds a private key: send the certificate alone; nothing was stored")
        );
    }
    // Nothing of the key anywhere in the database (its file and its WAL).
    let path = f.publisher.read(|s| s.path().to_owned());
    for file in [path.clone(), path.with_extension("db-wal")] {
        let bytes = std::fs::read(&file).unwrap_or_default();
        assert!(
            !bytes.windows(marker.len()).any(|w| w == marker.as_bytes()),
            "{} holds the private key",
            file.display()
        );
    }
    assert!(f
        .publisher
        .read(|s| s.identities("team-a"))
        .unwrap()
        .is_empty());
    assert!(f.publisher.read(Store::org_roots).unwrap().is_empty());
}

#[actix_web::test]
async fn data_errors_name_the_field_without_the_parser_position() {
    let f = Fixture::new();
    create_namespace(&f, "team-a");
    let app = app!(f);
    let cases = [
        (
            "/api/v1/namespaces",
            json!({"name": "Team_B", "scopes": ["registry.acme.io/b/**"]}),
            "name: `Team_B` is not a namespace name",
        ),
        (
            "/api/v1/namespaces/team-a/keys",
            json!({"key": ed25519_key(), "not_after": "2030-01-01"}),
            "not_after: `2030-01-01` is not an RFC 3339 time: expected e.g. 2030-01-01T00:00:00Z",
        ),
        (
            "/api/v1/revocations",
            json!({"key_id": "x", "reason": "r", "revoked_at": "yesterday"}),
            "revoked_at: `yesterday` is not an RFC 3339 time: expected e.g. 2030-01-01T00:00:00Z",
        ),
    ];
    for (uri, body, says) in cases {
        let a = send(
            &app,
            request(Method::POST, uri, Some(&f.admin), Some(&body)).to_request(),
        )
        .await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{uri}: {a:?}");
        let (_, message) = a.error();
        assert!(message.starts_with(says), "{uri}: {message}");
        assert!(!message.contains(" at line "), "{uri}: {message}");
        assert!(!message.contains("component"), "{uri}: {message}");
    }
}
