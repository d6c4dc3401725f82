//! Authentication and authorization over every admin endpoint, table-driven
//! over `Endpoint::ALL` (the list the routes are registered from), with an
//! independent statement of the matrix of docs/server.md.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use crate::http_common;

use actix_web::http::{Method, StatusCode};
use serde_json::{json, Value};

use http_common::{ca_pem, ed25519_key, request, send, Fixture, NOW};
use keyshare_policy::trust::{Revocation, RevokedSubject};
use keyshare_server::http::Endpoint;
use keyshare_server::publisher::Change;
use keyshare_server::store::TokenKind;

/// Who may call an endpoint, restated from docs/server.md (not derived from
/// the server's own table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// Read calls: org admins and every maintainer.
    Read,
    /// Keys, identities, sub-delegations, threshold of namespace `a`:
    /// org admins and maintainers of `a`.
    NamespaceA,
    /// Org admins only.
    OrgAdmin,
}

fn class(e: Endpoint) -> Class {
    use Endpoint as E;
    match e {
        E::ListNamespaces
        | E::ShowNamespace
        | E::ListRevocations
        | E::ListPeers
        | E::ListRoots
        | E::ListTsas
        | E::Resolve => Class::Read,
        E::SetThreshold
        | E::AddKey
        | E::RemoveKey
        | E::AddIdentity
        | E::RemoveIdentity
        | E::AddSubDelegation
        | E::RemoveSubDelegation
        | E::RevokeNamespaceKey => Class::NamespaceA,
        E::CreateNamespace
        | E::DeleteNamespace
        | E::AddScopes
        | E::RemoveNamespaceRevocation
        | E::AddRevocation
        | E::PutPeer
        | E::RemovePeer
        | E::PutRoot
        | E::RemoveRoot
        | E::PutTsa
        | E::RemoveTsa
        | E::CreateToken
        | E::ListTokens
        | E::RevokeToken
        | E::ListAudit
        | E::VerifyAudit
        | E::SubmitRoot
        | E::Export => Class::OrgAdmin,
    }
}

/// A valid request for each endpoint against the populated fixture. Calls
/// in `Endpoint::ALL` order all succeed for an org admin.
fn sample(e: Endpoint, victim_token: &str, f: &Fixture) -> (Method, String, Option<Value>) {
    use Endpoint as E;
    let (method, template) = e.route();
    let (path, body) = match e {
        E::CreateNamespace => (
            template.to_owned(),
            Some(json!({"name": "new-ns", "scopes": ["r.io/new/**"], "maintainers": ["x@acme"]})),
        ),
        E::ListNamespaces
        | E::ListRevocations
        | E::ListPeers
        | E::ListRoots
        | E::ListTsas
        | E::ListTokens => (template.to_owned(), None),
        E::ShowNamespace => (template.replace("{ns}", "a"), None),
        E::DeleteNamespace => (template.replace("{ns}", "gone"), None),
        E::SetThreshold => (template.replace("{ns}", "a"), Some(json!({"threshold": 2}))),
        E::AddScopes => (
            template.replace("{ns}", "a"),
            Some(json!({"scopes": ["r.io/a-extra/**"]})),
        ),
        E::AddKey => (
            template.replace("{ns}", "a"),
            Some(json!({"key": ed25519_key(), "id": "k2", "description": "second"})),
        ),
        E::RemoveKey => (
            template.replace("{ns}", "a").replace("{key_id}", "k1"),
            None,
        ),
        E::AddIdentity => (
            template.replace("{ns}", "a"),
            Some(json!({"name": "id2", "ca_certs": [ca_pem("ca two")], "subject": "CN=team-a"})),
        ),
        E::RemoveIdentity => (template.replace("{ns}", "a").replace("{name}", "id1"), None),
        E::AddSubDelegation => (
            template.replace("{ns}", "a"),
            Some(json!({
                "name": "sd2", "scopes": ["r.io/a/nightly/**"], "threshold": 1,
                "keys": [{"id": "n1", "key": ed25519_key()}]
            })),
        ),
        E::RemoveSubDelegation => (template.replace("{ns}", "a").replace("{name}", "sd1"), None),
        E::RevokeNamespaceKey => (
            template.replace("{ns}", "a"),
            Some(json!({"key_id": "k4", "reason": "laptop stolen"})),
        ),
        E::RemoveNamespaceRevocation => {
            let revoked = f
                .publisher
                .read(|s| s.namespace_revocations("a"))
                .unwrap()
                .into_iter()
                .find(|r| r.key_id.as_deref() == Some("k3"))
                .unwrap();
            let RevokedSubject::Key(fp) = revoked.revocation.subject else {
                panic!("a namespace revokes keys only")
            };
            (
                template
                    .replace("{ns}", "a")
                    .replace("{spki_sha256}", fp.as_str()),
                None,
            )
        }
        E::AddRevocation => (
            template.to_owned(),
            Some(json!({"spki_sha256": "ab".repeat(32), "reason": "laptop lost"})),
        ),
        E::PutPeer => (
            template.replace("{name}", "p2"),
            Some(json!({
                "patterns": ["docker.io/**"], "url": "https://peer.example",
                "root": {"sha256": "ab".repeat(32)}
            })),
        ),
        E::RemovePeer => (template.replace("{name}", "p1"), None),
        E::PutRoot => (
            template.replace("{name}", "r2"),
            Some(json!({"pem": ca_pem("root two")})),
        ),
        E::RemoveRoot => (template.replace("{name}", "r1"), None),
        E::PutTsa => (
            template.replace("{name}", "t2"),
            Some(json!({"certificate": ca_pem("tsa ca two"), "description": "second"})),
        ),
        E::RemoveTsa => (template.replace("{name}", "t1"), None),
        E::CreateToken => (
            template.to_owned(),
            Some(json!({"kind": "maintainer", "namespace": "a", "description": "team a"})),
        ),
        E::RevokeToken => (template.replace("{id}", victim_token), None),
        E::ListAudit => (format!("{template}?after=0&limit=10"), None),
        E::VerifyAudit => (template.to_owned(), None),
        E::Resolve => (format!("{template}?artifact=r.io/a/app"), None),
        E::SubmitRoot => (template.to_owned(), Some(f.next_root_signed())),
        E::Export => (template.to_owned(), Some(json!({"valid_for": "2d"}))),
    };
    (method, path, body)
}

/// Namespaces `a`, `b` and `gone`; in `a` keys `k1`, `k3` (revoked by
/// the namespace) and `k4`, identity `id1` and sub-delegation `sd1`; peer
/// `p1`; root `r1`; a token to revoke.
/// Returns the fixture and the id of that token.
fn populated() -> (Fixture, String) {
    let f = Fixture::new();
    let apply = |change: Change| {
        f.publisher.apply("test", change, NOW).unwrap();
    };
    for (name, scope) in [
        ("a", "r.io/a/**"),
        ("b", "r.io/b/**"),
        ("gone", "r.io/gone/**"),
    ] {
        apply(Change::CreateNamespace {
            entry: serde_json::from_value(json!({"name": name, "scopes": [scope]})).unwrap(),
            threshold: std::num::NonZeroU32::MIN,
            allow_overlap: false,
        });
    }
    let a = http_common::ns_name("a");
    apply(Change::AddKey {
        namespace: a.clone(),
        key: serde_json::from_value(json!({"id": "k1", "key": ed25519_key()})).unwrap(),
    });
    for id in ["k3", "k4"] {
        apply(Change::AddKey {
            namespace: a.clone(),
            key: serde_json::from_value(json!({"id": id, "key": ed25519_key()})).unwrap(),
        });
    }
    let k3 = f.publisher.read(|s| s.key("a", "k3")).unwrap().key;
    apply(Change::RevokeNamespaceKey {
        namespace: a.clone(),
        revocation: Revocation {
            subject: RevokedSubject::Key(k3.key.fingerprint(&k3.id).unwrap()),
            revoked_at: NOW,
            reason: "test".into(),
        },
        key_id: Some(k3.id),
    });
    apply(Change::AddIdentity {
        namespace: a.clone(),
        identity: serde_json::from_value(
            json!({"name": "id1", "ca_certs": [ca_pem("ca one")], "subject": "CN=team-a"}),
        )
        .unwrap(),
    });
    apply(Change::AddSubDelegation {
        namespace: a,
        sub_delegation: serde_json::from_value(json!({
            "name": "sd1", "scopes": ["r.io/a/sub/**"], "threshold": 1,
            "keys": [{"id": "s1", "key": ed25519_key()}]
        }))
        .unwrap(),
    });
    apply(Change::PutPeer {
        peer: serde_json::from_value(json!({
            "name": "p1", "patterns": ["quay.io/**"], "url": "https://p1.example",
            "root": {"sha256": "cd".repeat(32)}, "terminating": true
        }))
        .unwrap(),
    });
    apply(Change::PutOrgRoot {
        name: "r1".into(),
        pem: ca_pem("root one"),
    });
    apply(Change::PutTsa {
        tsa: serde_json::from_value(json!({"name": "t1", "certificate": ca_pem("tsa ca one")}))
            .unwrap(),
    });
    let victim = f
        .publisher
        .create_token("test", TokenKind::OrgAdmin, None, NOW)
        .unwrap()
        .token
        .id;
    (f, victim)
}

#[actix_web::test]
async fn missing_malformed_unknown_and_revoked_tokens_get_401_on_every_endpoint() {
    let (f, victim) = populated();
    let app = app!(f);
    let revoked = f.revoked_token();
    let before = f.published_state();
    let bad_headers: [(&str, Option<String>); 6] = [
        ("missing", None),
        (
            "unknown",
            Some(
                "Bearer ks_0000000000000000000000000000000000000000000000000000000000000000".into(),
            ),
        ),
        ("revoked", Some(format!("Bearer {revoked}"))),
        ("basic", Some(format!("Basic {}", f.admin))),
        ("empty", Some("Bearer ".into())),
        ("no scheme", Some(f.admin.clone())),
    ];
    for e in Endpoint::ALL {
        let (method, uri, body) = sample(e, &victim, &f);
        for (label, header) in &bad_headers {
            let mut req = request(method.clone(), &uri, None, body.as_ref());
            if let Some(h) = header {
                req = req.insert_header(("Authorization", h.clone()));
            }
            let answer = send(&app, req.to_request()).await;
            assert_eq!(
                answer.status,
                StatusCode::UNAUTHORIZED,
                "{e:?} with {label} token"
            );
            assert_eq!(answer.header("www-authenticate"), Some("Bearer"), "{e:?}");
            assert_eq!(answer.error().0, "unauthorized", "{e:?}");
            assert!(!answer.error().1.contains(&f.admin), "secret echoed");
        }
    }
    assert_eq!(
        f.published_state(),
        before,
        "a refused request changed the store"
    );
}

#[actix_web::test]
async fn ci_tokens_get_403_on_every_admin_endpoint() {
    let (f, victim) = populated();
    let app = app!(f);
    let ci = f.ci("a");
    let before = f.published_state();
    for e in Endpoint::ALL {
        let (method, uri, body) = sample(e, &victim, &f);
        let answer = send(
            &app,
            request(method, &uri, Some(&ci), body.as_ref()).to_request(),
        )
        .await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{e:?}");
        assert_eq!(answer.error().0, "forbidden", "{e:?}");
    }
    assert_eq!(f.published_state(), before);
}

#[actix_web::test]
async fn maintainer_of_another_namespace_gets_403_on_writes_and_org_calls() {
    let (f, victim) = populated();
    let app = app!(f);
    let maintainer_b = f.maintainer("b");
    let before = f.published_state();
    for e in Endpoint::ALL {
        let (method, uri, body) = sample(e, &victim, &f);
        let answer = send(
            &app,
            request(method, &uri, Some(&maintainer_b), body.as_ref()).to_request(),
        )
        .await;
        match class(e) {
            Class::Read => assert!(answer.status.is_success(), "{e:?}: {answer:?}"),
            Class::NamespaceA | Class::OrgAdmin => {
                assert_eq!(answer.status, StatusCode::FORBIDDEN, "{e:?}: {answer:?}");
                assert_eq!(answer.error().0, "forbidden");
            }
        }
    }
    assert_eq!(
        f.published_state(),
        before,
        "a refused request changed the store"
    );
}

#[actix_web::test]
async fn maintainer_of_the_namespace_may_change_it_but_nothing_else() {
    let (f, victim) = populated();
    let app = app!(f);
    let maintainer_a = f.maintainer("a");
    for e in Endpoint::ALL {
        let (method, uri, body) = sample(e, &victim, &f);
        let before = f.published_state();
        let answer = send(
            &app,
            request(method, &uri, Some(&maintainer_a), body.as_ref()).to_request(),
        )
        .await;
        match class(e) {
            Class::Read | Class::NamespaceA => {
                assert!(answer.status.is_success(), "{e:?}: {answer:?}");
            }
            Class::OrgAdmin => {
                assert_eq!(answer.status, StatusCode::FORBIDDEN, "{e:?}: {answer:?}");
                assert_eq!(f.published_state(), before, "{e:?} changed the store");
            }
        }
    }
}

#[actix_web::test]
async fn org_admin_succeeds_on_every_endpoint_and_writes_are_published_and_audited() {
    let (f, victim) = populated();
    let app = app!(f);
    for e in Endpoint::ALL {
        let (method, uri, body) = sample(e, &victim, &f);
        let (head, version) = f.published_state();
        let answer = send(
            &app,
            request(method.clone(), &uri, Some(&f.admin), body.as_ref()).to_request(),
        )
        .await;
        assert!(answer.status.is_success(), "{e:?}: {answer:?}");
        let expected = match method.as_str() {
            _ if e == Endpoint::Export => StatusCode::OK,
            "POST" if e != Endpoint::CreateToken => StatusCode::CREATED,
            "POST" => StatusCode::CREATED,
            "DELETE" => StatusCode::NO_CONTENT,
            _ => StatusCode::OK,
        };
        assert_eq!(answer.status, expected, "{e:?}");
        if e == Endpoint::Export {
            assert!(answer.body.starts_with(keyshare_airgap::MAGIC), "{e:?}");
        } else if answer.status != StatusCode::NO_CONTENT {
            let _ = answer.json();
        }
        let (head_after, version_after) = f.published_state();
        match method.as_str() {
            "GET" => assert_eq!(
                (head_after.records, version_after),
                (head.records, version),
                "{e:?}"
            ),
            _ => {
                // One audit record per write; trust changes also publish.
                assert_eq!(head_after.records, head.records + 1, "{e:?}");
                let publishes = !matches!(e, Endpoint::CreateToken | Endpoint::RevokeToken);
                assert_eq!(version_after > version, publishes, "{e:?}");
            }
        }
    }
    // The audit records name the caller's token.
    let audit = send(
        &app,
        request(
            Method::GET,
            "/api/v1/audit?after=0&limit=1000",
            Some(&f.admin),
            None,
        )
        .to_request(),
    )
    .await
    .json();
    let actors: Vec<&str> = audit["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["actor"].as_str())
        .collect();
    assert!(
        actors.iter().any(|a| a.starts_with("token:tok-")),
        "{actors:?}"
    );
}

#[actix_web::test]
async fn created_tokens_work_once_and_stop_working_when_revoked() {
    let f = Fixture::new();
    let app = app!(f);
    let created = send(
        &app,
        request(
            Method::POST,
            "/api/v1/tokens",
            Some(&f.admin),
            Some(&json!({"kind": "org-admin"})),
        )
        .to_request(),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED);
    let v = created.json();
    let (id, secret) = (
        v["id"].as_str().unwrap().to_owned(),
        v["secret"].as_str().unwrap().to_owned(),
    );
    let list = send(
        &app,
        request(Method::GET, "/api/v1/tokens", Some(&secret), None).to_request(),
    )
    .await;
    assert_eq!(list.status, StatusCode::OK);
    assert!(
        !String::from_utf8_lossy(&list.body).contains(&secret),
        "a listing shows a secret"
    );
    let revoke = send(
        &app,
        request(
            Method::DELETE,
            &format!("/api/v1/tokens/{id}"),
            Some(&f.admin),
            None,
        )
        .to_request(),
    )
    .await;
    assert_eq!(revoke.status, StatusCode::NO_CONTENT);
    let after = send(
        &app,
        request(Method::GET, "/api/v1/tokens", Some(&secret), None).to_request(),
    )
    .await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED);
}

#[actix_web::test]
async fn authentication_and_authorization_answer_before_input_is_looked_at() {
    let (f, _) = populated();
    let app = app!(f);
    let maintainer_b = f.maintainer("b");
    for (uri, method) in [
        ("/api/v1/audit?limit=abc", Method::GET),
        ("/api/v1/resolve?nothing=1", Method::GET),
        ("/api/v1/namespaces/a/keys", Method::POST),
        ("/api/v1/namespaces", Method::POST),
    ] {
        for (token, status) in [
            (None, StatusCode::UNAUTHORIZED),
            (Some(maintainer_b.as_str()), StatusCode::FORBIDDEN),
            (Some(f.admin.as_str()), StatusCode::BAD_REQUEST),
        ] {
            let mut req = request(method.clone(), uri, token, None)
                .insert_header(("Content-Type", "application/json"))
                .set_payload("{not json");
            if method == Method::GET {
                req = req.set_payload("");
            }
            let answer = send(&app, req.to_request()).await;
            let want = if uri.contains("resolve") && status == StatusCode::FORBIDDEN {
                // Resolve is a read call: maintainers may make it.
                StatusCode::BAD_REQUEST
            } else {
                status
            };
            assert_eq!(answer.status, want, "{method} {uri}: {answer:?}");
            let _ = answer.error();
        }
    }
}
