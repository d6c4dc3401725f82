//! Bad input: every refusal is a 4xx JSON error naming the problem, never a
//! 5xx, and leaves the store and the published repository as they were.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use crate::http_common;

use actix_web::http::{Method, StatusCode};
use serde_json::{json, Value};

use http_common::{ca_pem, ed25519_key, public_pem, request, send, Fixture, NOW};
use keyshare_server::publisher::Change;

/// A request body: JSON, raw bytes (with a content type), or nothing.
enum B {
    Json(Value),
    Raw(&'static str, Vec<u8>),
    None,
}

struct Case {
    name: &'static str,
    method: Method,
    uri: String,
    body: B,
    status: StatusCode,
    /// Must appear in the error message (the field or the problem).
    mentions: &'static str,
}

fn case(
    name: &'static str,
    method: Method,
    uri: &str,
    body: B,
    status: u16,
    mentions: &'static str,
) -> Case {
    Case {
        name,
        method,
        uri: uri.to_owned(),
        body,
        status: StatusCode::from_u16(status).unwrap(),
        mentions,
    }
}

/// Namespace `a` (scope `r.io/a/**`) with key `k1` and identity `id1`,
/// revocation of `gone-key`; returns the fixture and the key of `k1`.
fn fixture() -> (Fixture, Value) {
    let f = Fixture::new();
    f.publisher
        .apply(
            "test",
            Change::CreateNamespace {
                entry: serde_json::from_value(json!({"name": "a", "scopes": ["r.io/a/**"]}))
                    .unwrap(),
                threshold: std::num::NonZeroU32::MIN,
                allow_overlap: false,
            },
            NOW,
        )
        .unwrap();
    let k1 = ed25519_key();
    f.publisher
        .apply(
            "test",
            Change::AddKey {
                namespace: http_common::ns_name("a"),
                key: serde_json::from_value(json!({"id": "k1", "key": k1})).unwrap(),
            },
            NOW,
        )
        .unwrap();
    f.publisher
        .apply(
            "test",
            Change::AddIdentity {
                namespace: http_common::ns_name("a"),
                identity: serde_json::from_value(
                    json!({"name": "id1", "ca_certs": [ca_pem("ca")], "subject": "CN=a"}),
                )
                .unwrap(),
            },
            NOW,
        )
        .unwrap();
    f.publisher
        .apply(
            "test",
            Change::AddRevocation {
                revocation: serde_json::from_value(json!({
                    "subject": {"spki_sha256": "c".repeat(64)}, "revoked_at": "2029-01-01T00:00:00Z", "reason": "lost"
                }))
                .unwrap(),
                listed_as: None,
            },
            NOW,
        )
        .unwrap();
    (f, k1)
}

fn cases(k1: &Value) -> Vec<Case> {
    use Method as M;
    let ns = "/api/v1/namespaces";
    let keys = "/api/v1/namespaces/a/keys";
    let ed = ed25519_key();
    vec![
        // Malformed JSON, wrong content, unknown fields.
        case(
            "truncated JSON",
            M::POST,
            ns,
            B::Raw("application/json", br#"{"name": "#.to_vec()),
            400,
            "not valid JSON",
        ),
        case(
            "not an object",
            M::POST,
            ns,
            B::Raw("application/json", b"[1, 2]".to_vec()),
            400,
            "invalid type",
        ),
        case(
            "trailing garbage",
            M::POST,
            ns,
            B::Raw(
                "application/json",
                br#"{"name":"x","scopes":["x/**"]} x"#.to_vec(),
            ),
            400,
            "not valid JSON",
        ),
        case(
            "empty body",
            M::POST,
            ns,
            B::Raw("application/json", Vec::new()),
            400,
            "not valid JSON",
        ),
        case(
            "text content type",
            M::POST,
            ns,
            B::Raw("text/plain", br#"{"name":"x","scopes":["x/**"]}"#.to_vec()),
            415,
            "JSON",
        ),
        case(
            "unknown field",
            M::POST,
            ns,
            B::Json(json!({"name": "x", "scopes": ["x/**"], "colour": "red"})),
            400,
            "colour",
        ),
        case(
            "unknown nested field",
            M::POST,
            keys,
            B::Json(
                json!({"key": {"keytype": "ed25519", "scheme": "ed25519", "keyval": {"public": ed["keyval"]["public"], "private": "x"}}}),
            ),
            400,
            "key.keyval.private",
        ),
        case(
            "unknown key field",
            M::POST,
            keys,
            B::Json(
                json!({"key": {"keytype": "ed25519", "scheme": "ed25519", "keyval": {"public": ed["keyval"]["public"]}, "x": 1}}),
            ),
            400,
            "key.x",
        ),
        case(
            "missing field",
            M::POST,
            ns,
            B::Json(json!({"name": "x"})),
            400,
            "scopes",
        ),
        case(
            "wrong type",
            M::PUT,
            "/api/v1/namespaces/a/threshold",
            B::Json(json!({"threshold": "two"})),
            400,
            "threshold",
        ),
        case(
            "zero threshold",
            M::PUT,
            "/api/v1/namespaces/a/threshold",
            B::Json(json!({"threshold": 0})),
            400,
            "threshold",
        ),
        case(
            "threshold above keys",
            M::PUT,
            "/api/v1/namespaces/a/threshold",
            B::Json(json!({"threshold": 5})),
            400,
            "threshold",
        ),
        // Names and patterns.
        case(
            "bad namespace name",
            M::POST,
            ns,
            B::Json(json!({"name": "Team_A", "scopes": ["x/**"]})),
            400,
            "name",
        ),
        case(
            "top-level role name",
            M::POST,
            ns,
            B::Json(json!({"name": "targets", "scopes": ["x/**"]})),
            400,
            "name",
        ),
        case(
            "empty scopes",
            M::POST,
            ns,
            B::Json(json!({"name": "x", "scopes": []})),
            400,
            "scopes",
        ),
        case(
            "empty pattern segment",
            M::POST,
            ns,
            B::Json(json!({"name": "x", "scopes": ["r.io//x"]})),
            400,
            "scopes[0]",
        ),
        case(
            "double star in a segment",
            M::POST,
            ns,
            B::Json(json!({"name": "x", "scopes": ["r.io/x**"]})),
            400,
            "scopes[0]",
        ),
        case(
            "unclosed class",
            M::PUT,
            "/api/v1/peers/p",
            B::Json(
                json!({"patterns": ["r.io/[x"], "url": "https://p.example", "root": {"sha256": "ab".repeat(32)}}),
            ),
            400,
            "patterns[0]",
        ),
        case(
            "duplicate scope",
            M::POST,
            ns,
            B::Json(json!({"name": "x", "scopes": ["x/**", "x/**"]})),
            400,
            "scopes[1]",
        ),
        case(
            "scope of another namespace",
            M::POST,
            ns,
            B::Json(json!({"name": "x", "scopes": ["r.io/a/**"]})),
            400,
            "r.io/a/**",
        ),
        case(
            "duplicate namespace",
            M::POST,
            ns,
            B::Json(json!({"name": "a", "scopes": ["other/**"]})),
            409,
            "`a`",
        ),
        // Key material.
        case(
            "key and pem both",
            M::POST,
            keys,
            B::Json(json!({"key": ed, "public_key_pem": public_pem("ed25519")})),
            400,
            "exactly one",
        ),
        case(
            "neither key nor pem",
            M::POST,
            keys,
            B::Json(json!({"id": "x"})),
            400,
            "exactly one",
        ),
        case(
            "ed25519 not hex",
            M::POST,
            keys,
            B::Json(
                json!({"key": {"keytype": "ed25519", "scheme": "ed25519", "keyval": {"public": "zz"}}}),
            ),
            400,
            "key.keyval.public",
        ),
        case(
            "ed25519 keytype with a PEM key",
            M::POST,
            keys,
            B::Json(
                json!({"key": {"keytype": "ed25519", "scheme": "ed25519", "keyval": {"public": public_pem("p256")}}}),
            ),
            400,
            "key.keyval.public",
        ),
        case(
            "ecdsa keytype with an RSA key",
            M::POST,
            keys,
            B::Json(
                json!({"key": {"keytype": "ecdsa", "scheme": "ecdsa-sha2-nistp256", "keyval": {"public": public_pem("rsa2048")}}}),
            ),
            400,
            "key.keyval.public",
        ),
        case(
            "unsupported keytype",
            M::POST,
            keys,
            B::Json(
                json!({"key": {"keytype": "dsa", "scheme": "dsa", "keyval": {"public": "00"}}}),
            ),
            400,
            "key.keytype",
        ),
        case(
            "pem not a key",
            M::POST,
            keys,
            B::Json(
                json!({"public_key_pem": "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"}),
            ),
            400,
            "public_key_pem",
        ),
        case(
            "pem is a certificate",
            M::POST,
            keys,
            B::Json(json!({"public_key_pem": ca_pem("x")})),
            400,
            "public_key_pem",
        ),
        case(
            "P-384 key",
            M::POST,
            keys,
            B::Json(json!({"public_key_pem": public_pem("p384")})),
            400,
            "P-256",
        ),
        case(
            "RSA 1024 key",
            M::POST,
            keys,
            B::Json(json!({"public_key_pem": public_pem("rsa1024")})),
            400,
            "public_key_pem: RSA key of 1024 bits is too small",
        ),
        case(
            "window backwards",
            M::POST,
            keys,
            B::Json(
                json!({"key": ed, "not_before": "2031-01-01T00:00:00Z", "not_after": "2030-01-01T00:00:00Z"}),
            ),
            400,
            "not_after",
        ),
        case(
            "bad time",
            M::POST,
            keys,
            B::Json(json!({"key": ed, "not_after": "tomorrow"})),
            400,
            "not_after",
        ),
        case(
            "duplicate key id",
            M::POST,
            keys,
            B::Json(json!({"key": ed, "id": "k1"})),
            409,
            "k1",
        ),
        case(
            "same key under another id",
            M::POST,
            keys,
            B::Json(json!({"key": k1, "id": "k9"})),
            409,
            "k1",
        ),
        case(
            "key in unknown namespace",
            M::POST,
            "/api/v1/namespaces/nope/keys",
            B::Json(json!({"key": ed})),
            404,
            "nope",
        ),
        // Identities and sub-delegations.
        case(
            "bad CA certificate",
            M::POST,
            "/api/v1/namespaces/a/identities",
            B::Json(json!({"name": "i", "ca_certs": ["not a cert"], "subject": "CN=a"})),
            400,
            "ca_certs[0]",
        ),
        case(
            "bad subject",
            M::POST,
            "/api/v1/namespaces/a/identities",
            B::Json(json!({"name": "i", "ca_certs": [ca_pem("c")], "subject": "XX=a"})),
            400,
            "subject",
        ),
        case(
            "no CA certificates",
            M::POST,
            "/api/v1/namespaces/a/identities",
            B::Json(json!({"name": "i", "ca_certs": [], "subject": "CN=a"})),
            400,
            "ca_certs",
        ),
        case(
            "duplicate identity",
            M::POST,
            "/api/v1/namespaces/a/identities",
            B::Json(json!({"name": "id1", "ca_certs": [ca_pem("c")], "subject": "CN=a"})),
            409,
            "id1",
        ),
        case(
            "sub-delegation threshold above keys",
            M::POST,
            "/api/v1/namespaces/a/sub-delegations",
            B::Json(
                json!({"name": "s", "scopes": ["r.io/a/s/**"], "threshold": 2, "keys": [{"id": "x", "key": ed}]}),
            ),
            400,
            "threshold",
        ),
        case(
            "sub-delegation layout-root key",
            M::POST,
            "/api/v1/namespaces/a/sub-delegations",
            B::Json(
                json!({"name": "s", "scopes": ["r.io/a/s/**"], "threshold": 1, "keys": [{"id": "x", "key": ed, "layout_root": true}]}),
            ),
            400,
            "keys[0].layout_root",
        ),
        case(
            "sub-delegation duplicate key",
            M::POST,
            "/api/v1/namespaces/a/sub-delegations",
            B::Json(
                json!({"name": "s", "scopes": ["r.io/a/s/**"], "threshold": 1, "keys": [{"id": "x", "key": ed}, {"id": "y", "key": ed}]}),
            ),
            400,
            "keys[1].key",
        ),
        case(
            "sub-delegation bad key",
            M::POST,
            "/api/v1/namespaces/a/sub-delegations",
            B::Json(
                json!({"name": "s", "scopes": ["r.io/a/s/**"], "threshold": 1, "keys": [{"id": "x", "key": {"keytype": "ed25519", "scheme": "ed25519", "keyval": {"public": "00"}}}]}),
            ),
            400,
            "keys[0].key.keyval.public",
        ),
        // Org documents.
        case(
            "revocation with two subjects",
            M::POST,
            "/api/v1/revocations",
            B::Json(json!({"key_id": "k", "certificate_sha256": "ab".repeat(32), "reason": "x"})),
            400,
            "exactly one",
        ),
        case(
            "revocation without reason",
            M::POST,
            "/api/v1/revocations",
            B::Json(json!({"key_id": "k", "reason": " "})),
            400,
            "reason",
        ),
        case(
            "revocation bad hash",
            M::POST,
            "/api/v1/revocations",
            B::Json(json!({"certificate_sha256": "ABC", "reason": "x"})),
            400,
            "certificate_sha256",
        ),
        case(
            "duplicate revocation",
            M::POST,
            "/api/v1/revocations",
            B::Json(json!({"spki_sha256": "c".repeat(64), "reason": "again"})),
            409,
            "already revoked",
        ),
        case(
            "peer over plain http",
            M::PUT,
            "/api/v1/peers/p",
            B::Json(
                json!({"patterns": ["d.io/**"], "url": "http://peer.example", "root": {"sha256": "ab".repeat(32)}}),
            ),
            400,
            "url",
        ),
        case(
            "peer root both forms",
            M::PUT,
            "/api/v1/peers/p",
            B::Json(
                json!({"patterns": ["d.io/**"], "url": "https://p.example", "root": {"sha256": "ab".repeat(32), "keyids": ["a"], "threshold": 1}}),
            ),
            400,
            "root",
        ),
        case(
            "root not a certificate",
            M::PUT,
            "/api/v1/roots/r",
            B::Json(json!({"pem": "hello"})),
            400,
            "pem",
        ),
        case(
            "root bad name",
            M::PUT,
            "/api/v1/roots/Bad_Name",
            B::Json(json!({"pem": ca_pem("r")})),
            400,
            "name",
        ),
        // Tokens, queries, routes.
        case(
            "unknown token kind",
            M::POST,
            "/api/v1/tokens",
            B::Json(json!({"kind": "root"})),
            400,
            "kind",
        ),
        case(
            "maintainer token without namespace",
            M::POST,
            "/api/v1/tokens",
            B::Json(json!({"kind": "maintainer"})),
            400,
            "kind",
        ),
        case(
            "token for unknown namespace",
            M::POST,
            "/api/v1/tokens",
            B::Json(json!({"kind": "maintainer", "namespace": "nope"})),
            404,
            "nope",
        ),
        case(
            "audit limit not a number",
            M::GET,
            "/api/v1/audit?limit=abc",
            B::None,
            400,
            "query",
        ),
        case(
            "audit unknown parameter",
            M::GET,
            "/api/v1/audit?colour=red",
            B::None,
            400,
            "colour",
        ),
        case(
            "resolve without artifact",
            M::GET,
            "/api/v1/resolve",
            B::None,
            400,
            "artifact",
        ),
        case(
            "resolve no match",
            M::GET,
            "/api/v1/resolve?artifact=quay.io/x",
            B::None,
            404,
            "quay.io/x",
        ),
        case(
            "unknown key",
            M::DELETE,
            "/api/v1/namespaces/a/keys/nope",
            B::None,
            404,
            "nope",
        ),
        case(
            "unknown namespace",
            M::GET,
            "/api/v1/namespaces/nope",
            B::None,
            404,
            "nope",
        ),
        case(
            "unknown token",
            M::DELETE,
            "/api/v1/tokens/tok-0000000000000000",
            B::None,
            404,
            "tok-0000000000000000",
        ),
        case(
            "unknown route",
            M::GET,
            "/api/v1/nothing",
            B::None,
            404,
            "/api/v1/nothing",
        ),
        case(
            "wrong method",
            M::PATCH,
            "/api/v1/namespaces",
            B::None,
            405,
            "PATCH",
        ),
    ]
}

#[actix_web::test]
async fn bad_input_is_a_4xx_json_error_naming_the_problem_and_changes_nothing() {
    let (f, k1) = fixture();
    let app = app!(f);
    let before = f.published_state();
    for c in cases(&k1) {
        let mut req = request(c.method.clone(), &c.uri, Some(&f.admin), None);
        match c.body {
            B::Json(v) => {
                req = req
                    .insert_header(("Content-Type", "application/json"))
                    .set_payload(serde_json::to_vec(&v).unwrap());
            }
            B::Raw(ct, bytes) => {
                req = req.insert_header(("Content-Type", ct)).set_payload(bytes);
            }
            B::None => {}
        }
        let answer = send(&app, req.to_request()).await;
        assert_eq!(
            answer.status,
            c.status,
            "{}: {}",
            c.name,
            String::from_utf8_lossy(&answer.body)
        );
        let (code, message) = answer.error();
        assert!(!code.is_empty());
        assert!(
            message.contains(c.mentions),
            "{}: message `{message}` does not mention `{}`",
            c.name,
            c.mentions
        );
        assert_eq!(f.published_state(), before, "{} changed the store", c.name);
    }
}

#[actix_web::test]
async fn oversized_bodies_are_413_json_for_everyone() {
    let f = Fixture::with_body_limit(1024);
    let app = app!(f);
    let before = f.published_state();
    let big = json!({"name": "x", "scopes": ["x/**"], "maintainers": ["m".repeat(4096)]});
    let answer = send(
        &app,
        request(
            Method::POST,
            "/api/v1/namespaces",
            Some(&f.admin),
            Some(&big),
        )
        .to_request(),
    )
    .await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
    let (code, message) = answer.error();
    assert_eq!(code, "body_too_large");
    assert!(message.contains("1024"), "{message}");
    // Without a token, authentication answers first.
    let anonymous = send(
        &app,
        request(Method::POST, "/api/v1/namespaces", None, Some(&big)).to_request(),
    )
    .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert_eq!(f.published_state(), before);
}

#[actix_web::test]
async fn keys_by_pem_get_the_scheme_of_their_type_and_the_conventional_id() {
    let (f, _) = fixture();
    let app = app!(f);
    for (kind, keytype, scheme) in [
        ("ed25519", "ed25519", "ed25519"),
        ("p256", "ecdsa", "ecdsa-sha2-nistp256"),
        ("rsa2048", "rsa", "rsassa-pss-sha256"),
    ] {
        let answer = send(
            &app,
            request(
                Method::POST,
                "/api/v1/namespaces/a/keys",
                Some(&f.admin),
                Some(&json!({"public_key_pem": public_pem(kind), "description": kind})),
            )
            .to_request(),
        )
        .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{kind}: {answer:?}");
        let v = answer.json();
        assert_eq!(v["key"]["keytype"], keytype);
        assert_eq!(v["key"]["scheme"], scheme);
        let key: keyshare_policy::keys::Key = serde_json::from_value(v["key"].clone()).unwrap();
        assert_eq!(v["id"], key.key_id().unwrap().as_str());
    }
    let shown = send(
        &app,
        request(Method::GET, "/api/v1/namespaces/a", Some(&f.admin), None).to_request(),
    )
    .await
    .json();
    assert_eq!(shown["keys"].as_array().unwrap().len(), 4);
}
