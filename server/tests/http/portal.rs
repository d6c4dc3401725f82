//! The portal (`/ui/`), from the attacker's side: cookie flags, headers on
//! every page, CSRF (no token, wrong token, cross-site origin: refused,
//! nothing changes), a maintainer kept to their own namespace and away
//! from organization pages and actions, escaping, sign-in refusals and
//! their rate limit, sign-out, expiry and revocation ending sessions, and
//! the token never echoed.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use actix_web::http::{Method, StatusCode};
use actix_web::test::TestRequest;
use serde_json::json;

use crate::http_common::{self, public_pem, send, Answer, Fixture, NOW};
use keyshare_server::http::portal::{Portal, SessionLimits, CSP};
use keyshare_server::publisher::Change;
use keyshare_server::store::TokenKind;

/// Namespaces `a` (key `k1`) and `b` (key `secret-b-key`, described
/// `b-only-description`).
fn populated() -> Fixture {
    let f = Fixture::new();
    let apply = |change: Change| {
        f.publisher.apply("test", change, NOW).unwrap();
    };
    for (name, scope) in [("a", "r.io/a/**"), ("b", "r.io/b/**")] {
        apply(Change::CreateNamespace {
            entry: serde_json::from_value(json!({"name": name, "scopes": [scope]})).unwrap(),
            threshold: std::num::NonZeroU32::MIN,
            allow_overlap: false,
        });
    }
    apply(Change::AddKey {
        namespace: http_common::ns_name("a"),
        key: serde_json::from_value(json!({"id": "k1", "key": http_common::ed25519_key()}))
            .unwrap(),
    });
    apply(Change::AddKey {
        namespace: http_common::ns_name("b"),
        key: serde_json::from_value(json!({
            "id": "secret-b-key", "key": http_common::ed25519_key(),
            "description": "b-only-description"
        }))
        .unwrap(),
    });
    f
}

/// A form's fields.
type Fields<'a> = Vec<(&'a str, &'a str)>;

fn text(a: &Answer) -> String {
    String::from_utf8_lossy(&a.body).into_owned()
}

/// `name=value` pairs as a form body.
fn form_body(fields: &[(&str, &str)]) -> String {
    serde_urlencoded::to_string(fields).unwrap()
}

fn get(uri: &str, cookie: Option<&str>) -> TestRequest {
    let mut r = TestRequest::get().uri(uri);
    if let Some(c) = cookie {
        r = r.insert_header(("Cookie", c.to_owned()));
    }
    r
}

fn post(uri: &str, cookie: Option<&str>, fields: &[(&str, &str)]) -> TestRequest {
    let mut r = TestRequest::default()
        .method(Method::POST)
        .uri(uri)
        .insert_header(("Content-Type", "application/x-www-form-urlencoded"))
        .insert_header(("Host", "localhost:8439"))
        .set_payload(form_body(fields));
    if let Some(c) = cookie {
        r = r.insert_header(("Cookie", c.to_owned()));
    }
    r
}

/// Signs in with `token`: the answer and the `name=value` of the cookie.
macro_rules! sign_in {
    ($app:expr, $token:expr) => {{
        let answer = send(
            &$app,
            post("/ui/sign-in", None, &[("token", $token)])
                .insert_header(("Origin", "http://localhost:8439"))
                .insert_header(("Sec-Fetch-Site", "same-origin"))
                .to_request(),
        )
        .await;
        assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", text(&answer));
        let cookie = answer
            .header("set-cookie")
            .expect("a session cookie")
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        (answer, cookie)
    }};
}

/// The CSRF token of the forms of a page.
fn csrf_of(page: &Answer) -> String {
    let body = text(page);
    let at = body
        .find(r#"name="csrf" value=""#)
        .unwrap_or_else(|| panic!("no CSRF field in {body}"));
    let rest = &body[at + r#"name="csrf" value=""#.len()..];
    rest[..rest.find('"').unwrap()].to_owned()
}

macro_rules! csrf {
    ($app:expr, $cookie:expr) => {{
        let page = send(&$app, get("/ui/", Some(&$cookie)).to_request()).await;
        assert_eq!(page.status, StatusCode::OK, "{}", text(&page));
        csrf_of(&page)
    }};
}

fn namespaces(f: &Fixture) -> Vec<String> {
    f.publisher
        .read(|s| s.namespaces())
        .unwrap()
        .into_iter()
        .map(|r| r.entry.name.to_string())
        .collect()
}

fn assert_security_headers(uri: &str, a: &Answer) {
    assert_eq!(a.header("content-security-policy"), Some(CSP), "{uri}");
    assert_eq!(a.header("x-content-type-options"), Some("nosniff"), "{uri}");
    assert_eq!(a.header("referrer-policy"), Some("no-referrer"), "{uri}");
    assert_eq!(a.header("x-frame-options"), Some("DENY"), "{uri}");
    assert!(a.body.len() < 200 * 1024, "{uri}: {} bytes", a.body.len());
}

#[actix_web::test]
async fn the_session_cookie_is_httponly_samesite_strict_and_scoped_to_ui() {
    let f = populated();
    let app = app!(f);
    let (answer, cookie) = sign_in!(app, &f.admin);
    let set = answer.header("set-cookie").unwrap();
    assert!(set.contains("; HttpOnly"), "{set}");
    assert!(set.contains("; SameSite=Strict"), "{set}");
    assert!(set.contains("; Path=/ui/"), "{set}");
    assert!(!set.contains("Secure"), "plain HTTP: {set}");
    assert!(!set.contains(&f.admin), "{set}");
    assert_eq!(answer.header("location"), Some("/ui/"));
    let id = cookie.strip_prefix("ks_portal=").unwrap();
    assert_eq!(id.len(), 64, "256 bits, hex");
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));

    // Over TLS the cookie is Secure too.
    let mut tls = populated();
    tls.state.portal = Arc::new(Portal::new(SessionLimits::default(), true));
    let app = app!(tls);
    let answer = send(
        &app,
        post("/ui/sign-in", None, &[("token", &tls.admin)])
            .insert_header(("Origin", "https://localhost:8439"))
            .to_request(),
    )
    .await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", text(&answer));
    assert!(answer.header("set-cookie").unwrap().contains("; Secure"));
}

#[actix_web::test]
async fn every_page_has_the_csp_and_security_headers_and_no_token() {
    let f = populated();
    let maintainer = f.maintainer("a");
    let app = app!(f);
    let (_, cookie) = sign_in!(app, &f.admin);
    let pages = [
        "/ui/",
        "/ui/namespaces",
        "/ui/namespaces/a",
        "/ui/namespaces/b",
        "/ui/tokens",
        "/ui/revocations",
        "/ui/audit",
        "/ui/who-can-sign",
        "/ui/ci",
        "/ui/peers",
        "/ui/simulate",
        "/ui/no-such-page",
        "/ui/namespaces/nope",
    ];
    for uri in pages {
        let a = send(&app, get(uri, Some(&cookie)).to_request()).await;
        assert_security_headers(uri, &a);
        assert_eq!(a.header("cache-control"), Some("no-store"), "{uri}");
        assert!(
            a.header("content-type").unwrap().starts_with("text/html"),
            "{uri}"
        );
        let body = text(&a);
        assert!(!body.contains(&f.admin), "{uri} shows the token");
        assert!(!body.contains(&maintainer), "{uri} shows a token");
        if uri.contains("no") {
            assert_eq!(a.status, StatusCode::NOT_FOUND, "{uri}");
        } else {
            assert_eq!(a.status, StatusCode::OK, "{uri}: {body}");
        }
    }
    // Signed out, sign-in page and redirects too.
    for uri in ["/ui/sign-in", "/ui/", "/ui/tokens"] {
        let a = send(&app, get(uri, None).to_request()).await;
        assert_security_headers(uri, &a);
    }
    // The assets: hashed names, same headers, cached for good.
    let page = send(&app, get("/ui/sign-in", None).to_request()).await;
    let body = text(&page);
    for ext in [".css", ".js"] {
        let end = body.find(ext).unwrap() + ext.len();
        let start = body[..end].rfind("/ui/assets/").unwrap();
        let uri = &body[start..end];
        let a = send(&app, get(uri, None).to_request()).await;
        assert_eq!(a.status, StatusCode::OK, "{uri}");
        assert_security_headers(uri, &a);
        assert!(a.header("cache-control").unwrap().contains("immutable"));
    }
    let a = send(&app, get("/ui/assets/portal.css", None).to_request()).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
}

#[actix_web::test]
async fn pages_need_a_session() {
    let f = populated();
    let app = app!(f);
    for uri in ["/ui/", "/ui/namespaces/a", "/ui/tokens", "/ui/audit"] {
        let a = send(&app, get(uri, None).to_request()).await;
        assert_eq!(a.status, StatusCode::SEE_OTHER, "{uri}");
        assert_eq!(a.header("location"), Some("/ui/sign-in"));
        // A made-up session is no session.
        let forged = format!("ks_portal={}", "ab".repeat(32));
        let a = send(&app, get(uri, Some(&forged)).to_request()).await;
        assert_eq!(a.status, StatusCode::SEE_OTHER, "{uri}");
    }
    // A bearer token is not a session either.
    let a = send(
        &app,
        get("/ui/tokens", None)
            .insert_header(("Authorization", format!("Bearer {}", f.admin)))
            .to_request(),
    )
    .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    let before = f.published_state();
    let a = send(
        &app,
        post(
            "/ui/namespaces",
            None,
            &[("name", "evil"), ("scopes", "r.io/evil/**")],
        )
        .to_request(),
    )
    .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    assert_eq!(f.published_state(), before);
}

#[actix_web::test]
async fn changes_without_the_csrf_token_or_from_another_site_are_refused() {
    let f = populated();
    let app = app!(f);
    let (_, cookie) = sign_in!(app, &f.admin);
    let token = csrf!(app, cookie);
    let before = f.published_state();
    let fields = |csrf: &'static str| {
        vec![
            ("name", "forged"),
            ("scopes", "r.io/forged/**"),
            ("csrf", csrf),
        ]
    };
    let wrong = "0".repeat(token.len());
    let wrong: &'static str = Box::leak(wrong.into_boxed_str());
    let tok: &'static str = Box::leak(token.clone().into_boxed_str());
    let short: &'static str = Box::leak(token[..10].to_owned().into_boxed_str());
    let cases: Vec<(&str, TestRequest)> = vec![
        (
            "no token",
            post("/ui/namespaces", Some(&cookie), &fields("")[..2]),
        ),
        (
            "empty token",
            post("/ui/namespaces", Some(&cookie), &fields("")),
        ),
        (
            "wrong token",
            post("/ui/namespaces", Some(&cookie), &fields(wrong)),
        ),
        (
            "a prefix of the token",
            post("/ui/namespaces", Some(&cookie), &fields(short)),
        ),
        (
            "cross-site origin",
            post("/ui/namespaces", Some(&cookie), &fields(tok))
                .insert_header(("Origin", "https://evil.example")),
        ),
        (
            "same host, other scheme",
            post("/ui/namespaces", Some(&cookie), &fields(tok))
                .insert_header(("Origin", "https://localhost:8439")),
        ),
        (
            "Sec-Fetch-Site cross-site",
            post("/ui/namespaces", Some(&cookie), &fields(tok))
                .insert_header(("Sec-Fetch-Site", "cross-site")),
        ),
        (
            "Origin null without Sec-Fetch-Site",
            post("/ui/namespaces", Some(&cookie), &fields(tok)).insert_header(("Origin", "null")),
        ),
        (
            "Origin null, Sec-Fetch-Site cross-site",
            post("/ui/namespaces", Some(&cookie), &fields(tok))
                .insert_header(("Origin", "null"))
                .insert_header(("Sec-Fetch-Site", "cross-site")),
        ),
        (
            "Sec-Fetch-Site same-site",
            post("/ui/namespaces", Some(&cookie), &fields(tok))
                .insert_header(("Sec-Fetch-Site", "same-site")),
        ),
    ];
    for (what, req) in cases {
        let a = send(&app, req.to_request()).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{what}: {}", text(&a));
        assert_eq!(f.published_state(), before, "{what} changed something");
        assert!(!namespaces(&f).contains(&"forged".to_owned()), "{what}");
    }
    // Another session's token is a wrong token.
    let (_, other) = sign_in!(app, &f.admin);
    let other_token = csrf!(app, other);
    assert_ne!(other_token, token);
    let other_token: &'static str = Box::leak(other_token.into_boxed_str());
    let a = send(
        &app,
        post("/ui/namespaces", Some(&cookie), &fields(other_token)).to_request(),
    )
    .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert_eq!(f.published_state(), before);
    // Sign-out is a change too.
    let a = send(&app, post("/ui/sign-out", Some(&cookie), &[]).to_request()).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    // With the token, from the portal's origin: done.
    let a = send(
        &app,
        post("/ui/namespaces", Some(&cookie), &fields(tok))
            .insert_header(("Origin", "http://localhost:8439"))
            .insert_header(("Sec-Fetch-Site", "same-origin"))
            .to_request(),
    )
    .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", text(&a));
    assert!(namespaces(&f).contains(&"forged".to_owned()));
}

#[actix_web::test]
async fn a_maintainer_sees_and_reaches_only_their_namespace_and_no_org_action() {
    let f = populated();
    let maintainer = f.maintainer("a");
    let app = app!(f);
    let (_, cookie) = sign_in!(app, &maintainer);
    let token = csrf!(app, cookie);
    // Their own namespace.
    let a = send(&app, get("/ui/namespaces/a", Some(&cookie)).to_request()).await;
    assert_eq!(a.status, StatusCode::OK);
    for uri in ["/ui/", "/ui/namespaces", "/ui/who-can-sign", "/ui/simulate"] {
        let a = send(&app, get(uri, Some(&cookie)).to_request()).await;
        assert_eq!(a.status, StatusCode::OK, "{uri}");
        let body = text(&a);
        for leak in [
            "r.io/b/",
            "secret-b-key",
            "b-only-description",
            "/ui/namespaces/b",
        ] {
            assert!(!body.contains(leak), "{uri} shows {leak}");
        }
        // The navigation offers no organization page.
        for org in [
            "/ui/tokens",
            "/ui/audit",
            "/ui/revocations\"",
            "/ui/peers",
            "/ui/ci\"",
        ] {
            assert!(!body.contains(org), "{uri} links {org}");
        }
    }
    // Another namespace, existing or not: the same 404, nothing of it.
    let b = send(&app, get("/ui/namespaces/b", Some(&cookie)).to_request()).await;
    let nope = send(&app, get("/ui/namespaces/zz", Some(&cookie)).to_request()).await;
    assert_eq!(b.status, StatusCode::NOT_FOUND);
    assert_eq!(nope.status, StatusCode::NOT_FOUND);
    assert!(!text(&b).contains("secret-b-key"));
    // Organization pages.
    for uri in [
        "/ui/tokens",
        "/ui/revocations",
        "/ui/audit",
        "/ui/peers",
        "/ui/ci",
    ] {
        let a = send(&app, get(uri, Some(&cookie)).to_request()).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{uri}");
    }
    // Every change outside their namespace, with a valid CSRF token.
    let pem = public_pem("ed25519");
    let fingerprint = "ab".repeat(32);
    let victim = f.token(TokenKind::OrgAdmin);
    let victim_id = f
        .publisher
        .read(|s| s.tokens())
        .unwrap()
        .last()
        .unwrap()
        .id
        .clone();
    // A peer and a root certificate for the removals to aim at.
    f.publisher
        .apply(
            "test",
            Change::PutPeer {
                peer: serde_json::from_value(json!({
                    "name": "partner", "patterns": ["d.io/**"],
                    "url": "https://keyshare.partner.example/",
                    "root": {"sha256": "cd".repeat(32)}, "terminating": false
                }))
                .unwrap(),
            },
            NOW,
        )
        .unwrap();
    f.publisher
        .apply(
            "test",
            Change::PutOrgRoot {
                name: "org-ca".into(),
                pem: http_common::ca_pem("Org CA"),
            },
            NOW,
        )
        .unwrap();
    // An identity and a sub-delegation of b's for the removals to aim at.
    f.publisher
        .apply(
            "test",
            Change::AddIdentity {
                namespace: http_common::ns_name("b"),
                identity: serde_json::from_value(json!({
                    "name": "b-build", "ca_certs": [http_common::ca_pem("B CA")],
                    "subject": "CN=build"
                }))
                .unwrap(),
            },
            NOW,
        )
        .unwrap();
    f.publisher
        .apply(
            "test",
            Change::AddSubDelegation {
                namespace: http_common::ns_name("b"),
                sub_delegation: serde_json::from_value(json!({
                    "name": "b-release", "scopes": ["r.io/b/release/**"],
                    "keys": [{"id": "r1", "key": http_common::ed25519_key()}], "threshold": 1
                }))
                .unwrap(),
            },
            NOW,
        )
        .unwrap();
    f.publisher
        .apply(
            "test",
            Change::PutTsa {
                tsa: keyshare_policy::trust::TrustedTsa {
                    name: "org-tsa".into(),
                    certificate: keyshare_policy::trust::check_tsa_certificate(
                        &http_common::ca_pem("Org TSA CA"),
                    )
                    .unwrap(),
                    description: None,
                },
            },
            NOW,
        )
        .unwrap();
    let evil_ca = http_common::ca_pem("Evil CA");
    let before = f.published_state();
    let posts: Vec<(&str, Fields<'_>, StatusCode)> = vec![
        (
            "/ui/namespaces/b/keys",
            vec![("public_key_pem", &pem), ("id", "evil")],
            StatusCode::NOT_FOUND,
        ),
        (
            "/ui/namespaces/b/keys/remove",
            vec![("key_id", "secret-b-key")],
            StatusCode::NOT_FOUND,
        ),
        (
            "/ui/namespaces/b/revocations",
            vec![("key_id", "secret-b-key"), ("reason", "evil")],
            StatusCode::NOT_FOUND,
        ),
        (
            "/ui/namespaces/b/threshold",
            vec![("threshold", "2")],
            StatusCode::NOT_FOUND,
        ),
        (
            "/ui/namespaces/b/scopes",
            vec![("scopes", "r.io/evil/**")],
            StatusCode::NOT_FOUND,
        ),
        (
            "/ui/namespaces",
            vec![("name", "evil"), ("scopes", "r.io/evil/**")],
            StatusCode::FORBIDDEN,
        ),
        (
            "/ui/tokens",
            vec![("kind", "org-admin")],
            StatusCode::FORBIDDEN,
        ),
        (
            "/ui/tokens/revoke",
            vec![("id", &victim_id)],
            StatusCode::FORBIDDEN,
        ),
        (
            "/ui/namespaces/b/identities",
            vec![
                ("name", "evil"),
                ("ca_certs", &evil_ca),
                ("subject", "CN=evil"),
            ],
            StatusCode::NOT_FOUND,
        ),
        (
            "/ui/namespaces/b/identities/remove",
            vec![("name", "b-build")],
            StatusCode::NOT_FOUND,
        ),
        (
            "/ui/namespaces/b/sub-delegations",
            vec![
                ("name", "evil"),
                ("scopes", "r.io/b/evil/**"),
                ("keys", &pem),
                ("threshold", "1"),
            ],
            StatusCode::NOT_FOUND,
        ),
        (
            "/ui/namespaces/b/sub-delegations/remove",
            vec![("name", "b-release")],
            StatusCode::NOT_FOUND,
        ),
        (
            "/ui/revocations",
            vec![("spki_sha256", &fingerprint), ("reason", "evil")],
            StatusCode::FORBIDDEN,
        ),
        (
            "/ui/peers",
            vec![
                ("name", "evil"),
                ("url", "https://evil.example/"),
                ("patterns", "r.io/a/**"),
                ("root.sha256", &fingerprint),
                ("terminating", "on"),
            ],
            StatusCode::FORBIDDEN,
        ),
        (
            "/ui/peers/remove",
            vec![("name", "partner")],
            StatusCode::FORBIDDEN,
        ),
        (
            "/ui/roots",
            vec![("name", "evil"), ("pem", &evil_ca)],
            StatusCode::FORBIDDEN,
        ),
        (
            "/ui/roots/remove",
            vec![("name", "org-ca")],
            StatusCode::FORBIDDEN,
        ),
        (
            "/ui/tsas",
            vec![("name", "evil"), ("certificate", &evil_ca)],
            StatusCode::FORBIDDEN,
        ),
        (
            "/ui/tsas/remove",
            vec![("name", "org-tsa")],
            StatusCode::FORBIDDEN,
        ),
    ];
    for (uri, mut fields, status) in posts {
        fields.push(("csrf", &token));
        let a = send(&app, post(uri, Some(&cookie), &fields).to_request()).await;
        assert_eq!(a.status, status, "{uri}: {}", text(&a));
        assert!(!text(&a).contains("secret-b-key"), "{uri}");
        assert_eq!(f.published_state(), before, "{uri} changed something");
    }
    assert!(f
        .publisher
        .read(|s| s.token(&victim_id))
        .unwrap()
        .is_active());
    assert_eq!(f.publisher.read(|s| s.identities("b")).unwrap().len(), 1);
    assert_eq!(f.publisher.read(|s| s.tsas()).unwrap().len(), 1);
    assert_eq!(f.publisher.read(|s| s.peers()).unwrap().len(), 1);
    assert_eq!(f.publisher.read(|s| s.org_roots()).unwrap().len(), 1);
    assert_eq!(
        f.publisher.read(|s| s.sub_delegations("b")).unwrap().len(),
        1
    );
    drop(victim);
    // Their own namespace they can change.
    let a = send(
        &app,
        post(
            "/ui/namespaces/a/keys",
            Some(&cookie),
            &[("public_key_pem", &pem), ("id", "mine"), ("csrf", &token)],
        )
        .to_request(),
    )
    .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", text(&a));
    assert!(f
        .publisher
        .read(|s| s.keys("a"))
        .unwrap()
        .iter()
        .any(|k| k.key.id.as_str() == "mine"));
}

#[actix_web::test]
async fn a_description_with_markup_renders_escaped() {
    let f = populated();
    let app = app!(f);
    let (_, cookie) = sign_in!(app, &f.admin);
    let token = csrf!(app, cookie);
    let evil = r#"<script>alert(1)</script><img src=x onerror=alert(2)>"#;
    let a = send(
        &app,
        post(
            "/ui/namespaces/a/keys",
            Some(&cookie),
            &[
                ("public_key_pem", &public_pem("ed25519")),
                ("id", "xss"),
                ("description", evil),
                ("csrf", &token),
            ],
        )
        .to_request(),
    )
    .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", text(&a));
    let page = send(&app, get("/ui/namespaces/a", Some(&cookie)).to_request()).await;
    let body = text(&page);
    assert!(!body.contains("<script>alert"), "{body}");
    assert!(!body.contains("<img src=x"), "{body}");
    assert!(
        body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{body}"
    );
    // A refused form shows the value back, escaped too.
    let a = send(
        &app,
        post(
            "/ui/namespaces/a/keys",
            Some(&cookie),
            &[
                ("public_key_pem", "not a key"),
                ("id", "\"><script>alert(3)</script>"),
                ("csrf", &token),
            ],
        )
        .to_request(),
    )
    .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    let body = text(&a);
    assert!(!body.contains("<script>alert(3)"), "{body}");
    // ... with the error next to the field it names.
    assert!(
        body.contains(r#"id="add-key-public_key_pem-error""#),
        "{body}"
    );
}

#[actix_web::test]
async fn bad_tokens_do_not_sign_in_and_failures_are_rate_limited() {
    let f = populated();
    let ci = f.ci("a");
    let revoked = f.revoked_token();
    let app = app!(f);
    for bad in ["ks_nope", "", "a b", &revoked, &ci] {
        let a = send(
            &app,
            post("/ui/sign-in", None, &[("token", bad)]).to_request(),
        )
        .await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{bad}");
        assert!(a.header("set-cookie").is_none(), "{bad}");
        assert!(bad.is_empty() || !text(&a).contains(bad), "{bad} echoed");
    }
    // Sign-in from another site is refused before the token is looked at.
    let a = send(
        &app,
        post("/ui/sign-in", None, &[("token", &f.admin)])
            .insert_header(("Origin", "https://evil.example"))
            .to_request(),
    )
    .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert!(a.header("set-cookie").is_none());
    // Ten failures in five minutes: then even a good token waits.
    for _ in 0..5 {
        let a = send(
            &app,
            post("/ui/sign-in", None, &[("token", "ks_x")]).to_request(),
        )
        .await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    }
    let a = send(
        &app,
        post("/ui/sign-in", None, &[("token", &f.admin)]).to_request(),
    )
    .await;
    assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS, "{}", text(&a));
    assert!(a.header("set-cookie").is_none());
}

#[actix_web::test]
async fn sign_out_idle_and_absolute_expiry_end_the_session() {
    let mut f = populated();
    let offset = Arc::new(AtomicI64::new(0));
    let o = offset.clone();
    f.state.clock = Arc::new(move || NOW + time::Duration::seconds(o.load(Ordering::SeqCst)));
    let app = app!(f);
    let at = |secs: i64| offset.store(secs, Ordering::SeqCst);

    // Sign-out.
    let (_, cookie) = sign_in!(app, &f.admin);
    let token = csrf!(app, cookie);
    let a = send(
        &app,
        post("/ui/sign-out", Some(&cookie), &[("csrf", &token)]).to_request(),
    )
    .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    assert!(a.header("set-cookie").unwrap().contains("Max-Age=0"));
    let a = send(&app, get("/ui/", Some(&cookie)).to_request()).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    assert_eq!(a.header("location"), Some("/ui/sign-in"));
    // The old session's forms do nothing either.
    let before = f.published_state();
    let a = send(
        &app,
        post(
            "/ui/namespaces",
            Some(&cookie),
            &[
                ("name", "late"),
                ("scopes", "r.io/late/**"),
                ("csrf", &token),
            ],
        )
        .to_request(),
    )
    .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    assert_eq!(f.published_state(), before);

    // Idle: 30 minutes.
    let (_, cookie) = sign_in!(app, &f.admin);
    at(29 * 60);
    let a = send(&app, get("/ui/", Some(&cookie)).to_request()).await;
    assert_eq!(a.status, StatusCode::OK);
    at(29 * 60 + 30 * 60);
    let a = send(&app, get("/ui/", Some(&cookie)).to_request()).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);

    // Absolute: 12 hours, however busy.
    at(0);
    let (_, cookie) = sign_in!(app, &f.admin);
    let mut t = 0;
    while t + 20 * 60 < 12 * 3600 {
        t += 20 * 60;
        at(t);
        let a = send(&app, get("/ui/", Some(&cookie)).to_request()).await;
        assert_eq!(a.status, StatusCode::OK, "at {t} s");
    }
    at(12 * 3600);
    let a = send(&app, get("/ui/", Some(&cookie)).to_request()).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
}

#[actix_web::test]
async fn a_revoked_token_ends_its_sessions() {
    let f = populated();
    let maintainer = f.maintainer("a");
    let app = app!(f);
    let (_, cookie) = sign_in!(app, &maintainer);
    let token = csrf!(app, cookie);
    let id = f
        .publisher
        .read(|s| s.tokens())
        .unwrap()
        .last()
        .unwrap()
        .id
        .clone();
    // Revoked through the API, not the portal.
    f.publisher.revoke_token("test", &id, NOW).unwrap();
    let a = send(&app, get("/ui/namespaces/a", Some(&cookie)).to_request()).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    assert_eq!(a.header("location"), Some("/ui/sign-in"));
    let before = f.published_state();
    let a = send(
        &app,
        post(
            "/ui/namespaces/a/keys",
            Some(&cookie),
            &[("public_key_pem", &public_pem("ed25519")), ("csrf", &token)],
        )
        .to_request(),
    )
    .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    assert_eq!(f.published_state(), before);
}

#[actix_web::test]
async fn admin_flow_changes_go_through_the_api_checks_and_are_audited() {
    let f = populated();
    let app = app!(f);
    let (_, cookie) = sign_in!(app, &f.admin);
    let token = csrf!(app, cookie);
    // A refused create names its field (the API's check of scopes).
    let a = send(
        &app,
        post(
            "/ui/namespaces",
            Some(&cookie),
            &[("name", "c"), ("scopes", "r.io/a/**"), ("csrf", &token)],
        )
        .to_request(),
    )
    .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", text(&a));
    assert!(
        text(&a).contains(r#"id="create-namespace-scopes-error""#),
        "{}",
        text(&a)
    );
    // A maintainer token: the secret shown once, on the answer only.
    let a = send(
        &app,
        post(
            "/ui/tokens",
            Some(&cookie),
            &[
                ("kind", "maintainer"),
                ("namespace", "a"),
                ("description", "team a"),
                ("csrf", &token),
            ],
        )
        .to_request(),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", text(&a));
    let body = text(&a);
    let at = body.find(r#"id="new-secret" readonly value=""#).unwrap();
    let rest = &body[at + r#"id="new-secret" readonly value=""#.len()..];
    let secret = &rest[..rest.find('"').unwrap()];
    assert!(secret.starts_with("ks_"), "{secret}");
    let list = send(&app, get("/ui/tokens", Some(&cookie)).to_request()).await;
    assert!(!text(&list).contains(secret));
    // Revoke a key with a reason, then the audit log shows both changes.
    let a = send(
        &app,
        post(
            "/ui/namespaces/a/revocations",
            Some(&cookie),
            &[
                ("key_id", "k1"),
                ("reason", "laptop lost"),
                ("csrf", &token),
            ],
        )
        .to_request(),
    )
    .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", text(&a));
    let audit = text(&send(&app, get("/ui/audit", Some(&cookie)).to_request()).await);
    assert!(audit.contains("token.create"), "{audit}");
    assert!(audit.contains("The audit chain verifies"), "{audit}");
    let ns = text(&send(&app, get("/ui/namespaces/a", Some(&cookie)).to_request()).await);
    assert!(ns.contains("laptop lost"));
}

/// A simulator case: artifact, signer text, key id, the signers a
/// verifier is given.
type SimCase<'a> = (
    &'a str,
    Option<&'a str>,
    Option<&'a str>,
    Vec<keyshare_policy::trust::SignerRef>,
);

/// `s` as maud writes text: `&`, `<`, `>`, `"` escaped.
fn escaped(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[actix_web::test]
async fn the_simulator_decides_as_a_verifier_of_the_published_repository() {
    use keyshare_policy::datetime::rfc3339;
    use keyshare_policy::keys::Key;
    use keyshare_policy::metadata::KeyId;
    use keyshare_policy::trust::SignerRef;

    let f = populated();
    let key = http_common::ed25519_key();
    f.publisher
        .apply(
            "test",
            Change::AddKey {
                namespace: http_common::ns_name("a"),
                key: serde_json::from_value(json!({"id": "sim", "key": key})).unwrap(),
            },
            NOW,
        )
        .unwrap();
    let maintainer = f.maintainer("b");
    let app = app!(f);
    // What a verifier pinned to the first root decides, from the files
    // the server publishes.
    let root = f
        .publisher
        .file("metadata/1.root.json")
        .unwrap()
        .bytes
        .to_vec();
    let set = keyshare_testkit::read_trust_set(&root, NOW, &|p| {
        f.publisher.file(p).map(|file| file.bytes.to_vec())
    })
    .unwrap();
    let tuf: Key = serde_json::from_value(key.clone()).unwrap();
    let key_text = key.to_string();
    let when = rfc3339(NOW);
    let cases: [SimCase<'_>; 5] = [
        (
            "r.io/a/app",
            Some(&key_text),
            None,
            vec![SignerRef::PublicKey(tuf.clone())],
        ),
        (
            "r.io/b/app",
            Some(&key_text),
            None,
            vec![SignerRef::PublicKey(tuf.clone())],
        ),
        (
            "x.io/nobody",
            Some(&key_text),
            None,
            vec![SignerRef::PublicKey(tuf.clone())],
        ),
        (
            "r.io/a/app",
            None,
            Some("sim"),
            vec![SignerRef::KeyId(KeyId::new("sim"))],
        ),
        (
            "r.io/a/app",
            None,
            Some("nope"),
            vec![SignerRef::KeyId(KeyId::new("nope"))],
        ),
    ];
    // An org admin and a maintainer of another namespace get the same answers.
    for token in [f.admin.clone(), maintainer] {
        let (_, cookie) = sign_in!(app, &token);
        let csrf = csrf!(app, cookie);
        for (artifact, signer, key_id, signers) in &cases {
            let expected = format!("{artifact}: {}", set.decide(artifact, signers, NOW, NOW));
            let mut fields = vec![
                ("artifact", *artifact),
                ("signed_at", when.as_str()),
                ("csrf", csrf.as_str()),
            ];
            if let Some(s) = signer {
                fields.push(("signer", s));
            }
            if let Some(k) = key_id {
                fields.push(("key_id", k));
            }
            let a = send(
                &app,
                post("/ui/simulate", Some(&cookie), &fields).to_request(),
            )
            .await;
            assert_eq!(a.status, StatusCode::OK, "{}", text(&a));
            assert!(
                text(&a).contains(&escaped(&expected)),
                "{expected}\n{}",
                text(&a)
            );
        }
        // A private key is refused and not echoed.
        let private = String::from_utf8(
            openssl::pkey::PKey::generate_ed25519()
                .unwrap()
                .private_key_to_pem_pkcs8()
                .unwrap(),
        )
        .unwrap();
        let a = send(
            &app,
            post(
                "/ui/simulate",
                Some(&cookie),
                &[
                    ("artifact", "r.io/a/app"),
                    ("signer", &private),
                    ("csrf", &csrf),
                ],
            )
            .to_request(),
        )
        .await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST);
        assert!(!text(&a).contains("PRIVATE KEY-----\n"), "{}", text(&a));
    }
}

#[actix_web::test]
async fn many_namespaces_are_paged_and_pages_stay_small() {
    let f = Fixture::new();
    for i in 0..230 {
        f.publisher
            .apply(
                "test",
                Change::CreateNamespace {
                    entry: serde_json::from_value(
                        json!({"name": format!("n{i:03}"), "scopes": [format!("r.io/n{i:03}/**")]}),
                    )
                    .unwrap(),
                    threshold: std::num::NonZeroU32::MIN,
                    allow_overlap: false,
                },
                NOW,
            )
            .unwrap();
    }
    let app = app!(f);
    let (_, cookie) = sign_in!(app, &f.admin);
    let first = send(&app, get("/ui/namespaces", Some(&cookie)).to_request()).await;
    let body = text(&first);
    assert!(body.contains(">n199<") && !body.contains(">n200<"));
    assert!(
        body.contains(r#"href="/ui/namespaces?after=n199""#),
        "{body}"
    );
    let second = send(
        &app,
        get("/ui/namespaces?after=n199", Some(&cookie)).to_request(),
    )
    .await;
    let body = text(&second);
    assert!(body.contains(">n229<") && !body.contains(">n199<"));
    assert!(!body.contains("Next page"));
    for uri in [
        "/ui/",
        "/ui/namespaces",
        "/ui/who-can-sign",
        "/ui/ci",
        "/ui/audit",
    ] {
        let a = send(&app, get(uri, Some(&cookie)).to_request()).await;
        assert_eq!(a.status, StatusCode::OK, "{uri}");
        assert!(a.body.len() < 200 * 1024, "{uri}: {} bytes", a.body.len());
    }
}

#[actix_web::test]
async fn live_ci_delegations_are_listed_with_their_time_left() {
    let f = populated();
    for (id, until) in [
        ("ci-live", "2030-01-01T12:30:00Z"),
        ("ci-ended", "2030-01-01T11:00:00Z"),
    ] {
        f.publisher
            .apply(
                "test",
                Change::AddKey {
                    namespace: http_common::ns_name("a"),
                    key: serde_json::from_value(json!({
                        "id": id, "key": http_common::ed25519_key(), "ephemeral": true,
                        "not_before": "2030-01-01T10:00:00Z", "not_after": until,
                    }))
                    .unwrap(),
                },
                NOW,
            )
            .unwrap();
    }
    let maintainer = f.maintainer("a");
    let app = app!(f);
    let (_, cookie) = sign_in!(app, &f.admin);
    let a = send(&app, get("/ui/ci", Some(&cookie)).to_request()).await;
    let body = text(&a);
    assert!(body.contains("ci-live"), "{body}");
    assert!(body.contains("30m 0s"), "time left: {body}");
    assert!(!body.contains("ci-ended"), "{body}");
    // Organization-wide: not a maintainer's page.
    let (_, cookie) = sign_in!(app, &maintainer);
    let a = send(&app, get("/ui/ci", Some(&cookie)).to_request()).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert!(!text(&a).contains("ci-live"));
}

/// Posts the simulator's form; the answer.
macro_rules! simulate {
    ($app:expr, $cookie:expr, $csrf:expr, $artifact:expr, $key_id:expr) => {
        send(
            &$app,
            post(
                "/ui/simulate",
                Some(&$cookie),
                &[
                    ("artifact", $artifact),
                    ("key_id", $key_id),
                    ("csrf", $csrf.as_str()),
                ],
            )
            .to_request(),
        )
        .await
    };
}

#[actix_web::test]
async fn many_simulations_cost_one_verification_and_a_publish_is_seen_next() {
    let mut f = populated();
    let offset = Arc::new(AtomicI64::new(0));
    let o = offset.clone();
    f.state.clock = Arc::new(move || NOW + time::Duration::seconds(o.load(Ordering::SeqCst)));
    let maintainer = f.maintainer("b");
    let app = app!(f);
    let portal = f.state.portal.clone();
    assert_eq!(portal.simulator_builds(), 0);

    // An attacker with a maintainer's token, several sessions, many
    // decisions: the published repository is verified once.
    let mut sessions = Vec::new();
    for _ in 0..3 {
        let (_, cookie) = sign_in!(app, &maintainer);
        let csrf = csrf!(app, cookie);
        sessions.push((cookie, csrf));
    }
    for (cookie, csrf) in &sessions {
        for _ in 0..20 {
            let a = simulate!(app, cookie, csrf, "r.io/a/app", "k1");
            assert_eq!(a.status, StatusCode::OK, "{}", text(&a));
            assert!(text(&a).contains("r.io/a/app: trusted"), "{}", text(&a));
        }
    }
    assert_eq!(portal.simulator_builds(), 1, "60 decisions, one build");

    // A publish (the key removed): the next decision sees it, after one
    // more build.
    f.publisher
        .apply(
            "test",
            Change::RemoveKey {
                namespace: http_common::ns_name("a"),
                key_id: keyshare_policy::metadata::KeyId::new("k1"),
            },
            NOW,
        )
        .unwrap();
    offset.store(61, Ordering::SeqCst);
    // Many decisions at once after the publish: one build among them.
    let answers = futures_util::future::join_all(sessions.iter().flat_map(|(cookie, csrf)| {
        (0..5).map(|_| {
            send(
                &app,
                post(
                    "/ui/simulate",
                    Some(cookie),
                    &[
                        ("artifact", "r.io/a/app"),
                        ("key_id", "k1"),
                        ("csrf", csrf.as_str()),
                    ],
                )
                .to_request(),
            )
        })
    }))
    .await;
    for a in &answers {
        assert_eq!(a.status, StatusCode::OK, "{}", text(a));
        assert!(!text(a).contains("r.io/a/app: trusted"), "{}", text(a));
        assert!(text(a).contains("key_not_listed"), "{}", text(a));
    }
    assert_eq!(portal.simulator_builds(), 2);
}

#[actix_web::test]
async fn simulations_are_rate_limited_per_session() {
    let mut f = populated();
    let offset = Arc::new(AtomicI64::new(0));
    let o = offset.clone();
    f.state.clock = Arc::new(move || NOW + time::Duration::seconds(o.load(Ordering::SeqCst)));
    let app = app!(f);
    let (_, cookie) = sign_in!(app, &f.admin);
    let csrf = csrf!(app, cookie);
    let limit = keyshare_server::http::portal::SIMULATIONS;
    for _ in 0..limit {
        let a = simulate!(app, cookie, csrf, "r.io/a/app", "k1");
        assert_eq!(a.status, StatusCode::OK, "{}", text(&a));
    }
    let a = simulate!(app, cookie, csrf, "r.io/a/app", "k1");
    assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS, "{}", text(&a));
    assert!(!text(&a).contains("r.io/a/app: trusted"), "{}", text(&a));
    // Another session of the same token is not held back by this one.
    let (_, other) = sign_in!(app, &f.admin);
    let other_csrf = csrf!(app, other);
    let a = simulate!(app, other, other_csrf, "r.io/a/app", "k1");
    assert_eq!(a.status, StatusCode::OK, "{}", text(&a));
    // The window slides.
    offset.store(
        keyshare_server::http::portal::SIMULATIONS_WINDOW.whole_seconds(),
        Ordering::SeqCst,
    );
    let a = simulate!(app, cookie, csrf, "r.io/a/app", "k1");
    assert_eq!(a.status, StatusCode::OK, "{}", text(&a));
}

#[actix_web::test]
async fn views_over_every_namespace_see_past_the_first_page() {
    let f = Fixture::new();
    let apply = |change: Change| f.publisher.apply("test", change, NOW).unwrap();
    for i in 0..230 {
        apply(Change::CreateNamespace {
            entry: serde_json::from_value(
                json!({"name": format!("n{i:03}"), "scopes": [format!("r.io/n{i:03}/**")]}),
            )
            .unwrap(),
            threshold: std::num::NonZeroU32::MIN,
            allow_overlap: false,
        });
    }
    // Past the first 200 by name: a key expiring tomorrow, a CI key.
    apply(Change::AddKey {
        namespace: http_common::ns_name("n210"),
        key: serde_json::from_value(json!({
            "id": "late-expiring", "key": http_common::ed25519_key(),
            "not_after": "2030-01-02T12:00:00Z",
        }))
        .unwrap(),
    });
    for ns in ["n005", "n225"] {
        apply(Change::AddKey {
            namespace: http_common::ns_name(ns),
            key: serde_json::from_value(json!({
                "id": format!("ci-{ns}"), "key": http_common::ed25519_key(), "ephemeral": true,
                "not_before": "2030-01-01T10:00:00Z", "not_after": "2030-01-01T12:30:00Z",
            }))
            .unwrap(),
        });
    }
    let app = app!(f);
    let (_, cookie) = sign_in!(app, &f.admin);
    let page = |uri: &'static str| {
        let app = &app;
        let cookie = &cookie;
        async move {
            let a = send(app, get(uri, Some(cookie)).to_request()).await;
            assert_eq!(a.status, StatusCode::OK, "{uri}");
            assert!(a.body.len() < 200 * 1024, "{uri}: {} bytes", a.body.len());
            text(&a)
        }
    };

    // The overview counts every namespace and key.
    let body = page("/ui/").await;
    assert!(body.contains("<strong>230</strong>namespaces"), "{body}");
    assert!(body.contains("<strong>3</strong>keys"), "{body}");
    assert!(body.contains("late-expiring"), "{body}");

    // Who can sign what: pages of 100 namespaces, linked.
    let first = page("/ui/who-can-sign").await;
    assert!(first.contains("r.io/n099/**") && !first.contains("r.io/n100/**"));
    assert!(
        first.contains(r#"href="/ui/who-can-sign?after=n099""#),
        "{first}"
    );
    let second = page("/ui/who-can-sign?after=n099").await;
    assert!(second.contains("r.io/n100/**") && second.contains("r.io/n199/**"));
    assert!(!second.contains("r.io/n099/**") && !second.contains("r.io/n200/**"));
    assert!(second.contains(r#"href="/ui/who-can-sign?after=n199""#));
    assert!(second.contains(r#"href="/ui/who-can-sign""#));
    let third = page("/ui/who-can-sign?after=n199").await;
    assert!(third.contains("r.io/n229/**") && third.contains("late-expiring"));
    assert!(!third.contains("Next page"), "{third}");

    // CI delegations: every namespace's.
    let ci = page("/ui/ci").await;
    assert!(ci.contains("ci-n005") && ci.contains("ci-n225"), "{ci}");
    assert!(!ci.contains("Next page"));
}

#[actix_web::test]
async fn ci_delegations_are_paged() {
    let f = populated();
    for (ns, n) in [("a", 150), ("b", 60)] {
        for i in 0..n {
            f.publisher
                .apply(
                    "test",
                    Change::AddKey {
                        namespace: http_common::ns_name(ns),
                        key: serde_json::from_value(json!({
                            "id": format!("ci-{ns}-{i:03}"), "key": http_common::ed25519_key(),
                            "ephemeral": true,
                            "not_before": "2030-01-01T10:00:00Z", "not_after": "2030-01-01T12:30:00Z",
                        }))
                        .unwrap(),
                    },
                    NOW,
                )
                .unwrap();
        }
    }
    let app = app!(f);
    let (_, cookie) = sign_in!(app, &f.admin);
    let first = text(&send(&app, get("/ui/ci", Some(&cookie)).to_request()).await);
    assert!(
        first.contains("ci-a-149") && first.contains("ci-b-049"),
        "{first}"
    );
    assert!(!first.contains("ci-b-050"), "{first}");
    assert!(
        first.contains(r#"href="/ui/ci?after=b%2Fci-b-049""#),
        "{first}"
    );
    let second = text(
        &send(
            &app,
            get("/ui/ci?after=b%2Fci-b-049", Some(&cookie)).to_request(),
        )
        .await,
    );
    assert!(second.contains("ci-b-050") && second.contains("ci-b-059"));
    assert!(!second.contains("ci-b-049") && !second.contains("ci-a-"));
    assert!(!second.contains("Next page"), "{second}");
}

#[actix_web::test]
async fn the_simulator_decides_for_x509_certificates_as_a_verifier() {
    use keyshare_policy::trust::SignerRef;
    use keyshare_testkit::CertBuilder;

    let f = populated();
    let (from, to) = (
        NOW.unix_timestamp() - 86_400,
        NOW.unix_timestamp() + 365 * 86_400,
    );
    let ca = CertBuilder::new("Team A CA")
        .ca()
        .valid_unix(from, to)
        .build();
    let other_ca = CertBuilder::new("Other CA")
        .ca()
        .valid_unix(from, to)
        .build();
    f.publisher
        .apply(
            "test",
            Change::AddIdentity {
                namespace: http_common::ns_name("a"),
                identity: serde_json::from_value(
                    json!({"name": "builders", "ca_certs": [ca.pem()], "subject": "CN=builder"}),
                )
                .unwrap(),
            },
            NOW,
        )
        .unwrap();
    let leaf = |cn: &str, issuer| {
        CertBuilder::new(cn)
            .serial(7)
            .valid_unix(from, to)
            .issued_by(issuer)
            .build()
    };
    let good = leaf("builder", &ca);
    let wrong_subject = leaf("intruder", &ca);
    let foreign = leaf("builder", &other_ca);
    let chain = |leaf: &keyshare_testkit::Cert, ca: &keyshare_testkit::Cert| {
        (
            format!("{}{}", leaf.pem(), ca.pem()),
            vec![leaf.cert.to_der().unwrap(), ca.cert.to_der().unwrap()],
        )
    };
    let cases = [
        ("r.io/a/app", chain(&good, &ca), "trusted"),
        ("r.io/a/app", chain(&wrong_subject, &ca), "subject_mismatch"),
        (
            "r.io/a/app",
            chain(&foreign, &other_ca),
            "chain_not_trusted",
        ),
        ("r.io/b/app", chain(&good, &ca), ""),
    ];
    let maintainer = f.maintainer("b");
    let app = app!(f);
    let root = f
        .publisher
        .file("metadata/1.root.json")
        .unwrap()
        .bytes
        .to_vec();
    let set = keyshare_testkit::read_trust_set(&root, NOW, &|p| {
        f.publisher.file(p).map(|file| file.bytes.to_vec())
    })
    .unwrap();
    let (_, cookie) = sign_in!(app, &maintainer);
    let csrf = csrf!(app, cookie);
    for (artifact, (pem, der), code) in &cases {
        let expected = format!(
            "{artifact}: {}",
            set.decide(artifact, &[SignerRef::CertChain(der.clone())], NOW, NOW)
        );
        let a = send(
            &app,
            post(
                "/ui/simulate",
                Some(&cookie),
                &[
                    ("artifact", *artifact),
                    ("signer", pem.as_str()),
                    ("signed_at", "2030-01-01T12:00:00Z"),
                    ("csrf", csrf.as_str()),
                ],
            )
            .to_request(),
        )
        .await;
        assert_eq!(a.status, StatusCode::OK, "{}", text(&a));
        let body = text(&a);
        assert!(body.contains(&escaped(&expected)), "{expected}\n{body}");
        if *code == "trusted" {
            assert!(body.contains(&format!("{artifact}: trusted")), "{body}");
        } else if !code.is_empty() {
            assert!(
                body.contains(&format!("<code>{code}</code>")),
                "{code}\n{body}"
            );
        }
    }
}

#[actix_web::test]
async fn the_threshold_form_is_the_apis_and_refusals_change_nothing() {
    let f = populated();
    let maintainer_a = f.maintainer("a");
    let maintainer_b = f.maintainer("b");
    let app = app!(f);
    let threshold = |ns: &str| {
        f.publisher
            .read(|s| s.namespace(ns))
            .unwrap()
            .threshold
            .get()
    };
    let (_, cookie_b) = sign_in!(app, &maintainer_b);
    let csrf_b = csrf!(app, cookie_b);
    let (_, cookie) = sign_in!(app, &maintainer_a);
    let csrf = csrf!(app, cookie);
    let before = f.published_state();

    // No CSRF token, another session's: 403.
    for token in ["", csrf_b.as_str()] {
        let a = send(
            &app,
            post(
                "/ui/namespaces/a/threshold",
                Some(&cookie),
                &[("threshold", "2"), ("csrf", token)],
            )
            .to_request(),
        )
        .await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", text(&a));
    }
    // A maintainer of another namespace, with their own valid token: 404.
    let a = send(
        &app,
        post(
            "/ui/namespaces/a/threshold",
            Some(&cookie_b),
            &[("threshold", "2"), ("csrf", &csrf_b)],
        )
        .to_request(),
    )
    .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND, "{}", text(&a));
    // Bad values: 400, the message at the field, the value echoed as text.
    for (value, message) in [
        ("0", "threshold"),
        ("two", "must be a whole number"),
        ("<b>9", "must be a whole number"),
        ("2", "more than the 1 distinct keys"),
    ] {
        let a = send(
            &app,
            post(
                "/ui/namespaces/a/threshold",
                Some(&cookie),
                &[("threshold", value), ("csrf", &csrf)],
            )
            .to_request(),
        )
        .await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{value}: {}", text(&a));
        let body = text(&a);
        assert!(body.contains(r#"id="set-threshold-threshold""#), "{body}");
        assert!(
            body.contains(r#"aria-invalid="true""#)
                && body.contains(r#"id="set-threshold-threshold-error""#),
            "{value}: {body}"
        );
        assert!(body.contains(message), "{value}: {body}");
        assert!(!body.contains("<b>9"), "{body}");
    }
    assert_eq!(f.published_state(), before, "a refusal changed something");
    assert_eq!(threshold("a"), 1);

    // Accepted once there are two keys: the same change the API makes.
    f.publisher
        .apply(
            "test",
            Change::AddKey {
                namespace: http_common::ns_name("a"),
                key: serde_json::from_value(json!({"id": "k2", "key": http_common::ed25519_key()}))
                    .unwrap(),
            },
            NOW,
        )
        .unwrap();
    let a = send(
        &app,
        post(
            "/ui/namespaces/a/threshold",
            Some(&cookie),
            &[("threshold", "2"), ("csrf", &csrf)],
        )
        .to_request(),
    )
    .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", text(&a));
    assert_eq!(
        a.header("location"),
        Some("/ui/namespaces/a?done=threshold-set")
    );
    assert_eq!(threshold("a"), 2);
    assert_eq!(threshold("b"), 1);
}

#[actix_web::test]
async fn the_scopes_form_is_the_apis_and_refusals_change_nothing() {
    let f = populated();
    let maintainer_a = f.maintainer("a");
    let maintainer_b = f.maintainer("b");
    let app = app!(f);
    let scopes = |ns: &str| {
        f.publisher
            .read(|s| s.namespace(ns))
            .unwrap()
            .entry
            .scopes
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
    };
    let (_, admin) = sign_in!(app, &f.admin);
    let admin_csrf = csrf!(app, admin);
    let before = f.published_state();
    let post_scopes = |cookie: &str, fields: &[(&str, &str)]| {
        post("/ui/namespaces/a/scopes", Some(cookie), fields).to_request()
    };

    // No CSRF token: 403.
    let a = send(&app, post_scopes(&admin, &[("scopes", "r.io/a2/**")])).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", text(&a));
    // A maintainer may not widen even their own namespace (the API's
    // matrix), and gets no form for it; another namespace's: 404.
    let (_, cookie_a) = sign_in!(app, &maintainer_a);
    let csrf_a = csrf!(app, cookie_a);
    let page = text(&send(&app, get("/ui/namespaces/a", Some(&cookie_a)).to_request()).await);
    assert!(!page.contains("/ui/namespaces/a/scopes"), "{page}");
    let a = send(
        &app,
        post_scopes(&cookie_a, &[("scopes", "r.io/a2/**"), ("csrf", &csrf_a)]),
    )
    .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", text(&a));
    let (_, cookie_b) = sign_in!(app, &maintainer_b);
    let csrf_b = csrf!(app, cookie_b);
    let a = send(
        &app,
        post_scopes(&cookie_b, &[("scopes", "r.io/a2/**"), ("csrf", &csrf_b)]),
    )
    .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND, "{}", text(&a));
    // Bad input from an org admin: 4xx, the message at the field.
    for (value, status, message) in [
        ("", StatusCode::BAD_REQUEST, "missing field"),
        ("r.io/a/**", StatusCode::BAD_REQUEST, "already a scope"),
        ("not a pattern[", StatusCode::BAD_REQUEST, ""),
    ] {
        let a = send(
            &app,
            post_scopes(&admin, &[("scopes", value), ("csrf", &admin_csrf)]),
        )
        .await;
        assert_eq!(a.status, status, "{value}: {}", text(&a));
        let body = text(&a);
        assert!(
            body.contains(r#"id="add-scopes-scopes-error""#),
            "{value}: {body}"
        );
        assert!(body.contains(message), "{value}: {body}");
    }
    // Overlapping another namespace's scope: 409, above the form.
    let a = send(
        &app,
        post_scopes(&admin, &[("scopes", "r.io/b/x/**"), ("csrf", &admin_csrf)]),
    )
    .await;
    assert_eq!(a.status, StatusCode::CONFLICT, "{}", text(&a));
    assert!(text(&a).contains("r.io/b/**"), "{}", text(&a));
    assert_eq!(f.published_state(), before, "a refusal changed something");
    assert_eq!(scopes("a"), ["r.io/a/**"]);

    // Accepted.
    let a = send(
        &app,
        post_scopes(
            &admin,
            &[
                ("scopes", "r.io/a2/**\r\nr.io/a3/**"),
                ("csrf", &admin_csrf),
            ],
        ),
    )
    .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", text(&a));
    assert_eq!(
        a.header("location"),
        Some("/ui/namespaces/a?done=scopes-added")
    );
    assert_eq!(scopes("a"), ["r.io/a/**", "r.io/a2/**", "r.io/a3/**"]);
}

/// A form's fields, owned.
type OwnedFields = Vec<(&'static str, String)>;

/// The peers of the store: name, URL and pinned root as JSON.
fn peers_of(f: &Fixture) -> Vec<(String, String, serde_json::Value)> {
    f.publisher
        .read(|s| s.peers())
        .unwrap()
        .into_iter()
        .map(|p| {
            (
                p.peer.name.clone(),
                p.peer.url.to_string(),
                serde_json::to_value(&p.peer.root).unwrap(),
            )
        })
        .collect()
}

fn roots_of(f: &Fixture) -> Vec<String> {
    f.publisher
        .read(|s| s.org_roots())
        .unwrap()
        .into_iter()
        .map(|r| r.name)
        .collect()
}

#[actix_web::test]
async fn the_peer_root_and_tsa_forms_are_the_apis_and_refusals_change_nothing() {
    let f = populated();
    let app = app!(f);
    let (_, cookie) = sign_in!(app, &f.admin);
    let token = csrf!(app, cookie);
    let sha = "ab".repeat(32);
    let peer = |name: &'static str, url: &'static str| -> OwnedFields {
        vec![
            ("name", name.to_owned()),
            ("url", url.to_owned()),
            ("patterns", "d.io/**\n\n  e.io/team/**  \n".to_owned()),
        ]
    };
    let submit = |uri: &'static str, fields: OwnedFields| {
        let mut fields: Vec<(&str, &str)> = fields.iter().map(|(n, v)| (*n, v.as_str())).collect();
        fields.push(("csrf", &token));
        post(uri, Some(&cookie), &fields).to_request()
    };

    // Refused: each names its field on the page, and nothing is published.
    let before = f.published_state();
    let with = |mut fields: OwnedFields, more: &[(&'static str, &str)]| {
        fields.extend(more.iter().map(|(n, v)| (*n, (*v).to_owned())));
        fields
    };
    let refusals: Vec<(&str, &str, OwnedFields, &str)> = vec![
        (
            "/ui/peers",
            "a loopback URL",
            with(peer("p", "https://127.0.0.1/"), &[("root.sha256", &sha)]),
            "put-peer-url-error",
        ),
        (
            "/ui/peers",
            "plain http",
            with(
                peer("p", "http://keyshare.partner.example/"),
                &[("root.sha256", &sha)],
            ),
            "put-peer-url-error",
        ),
        (
            "/ui/peers",
            "no root pinned",
            peer("p", "https://keyshare.partner.example/"),
            "put-peer-root.sha256-error",
        ),
        (
            "/ui/peers",
            "a hash and key ids both",
            with(
                peer("p", "https://keyshare.partner.example/"),
                &[
                    ("root.sha256", &sha),
                    ("root.keyids", "k1"),
                    ("root.threshold", "1"),
                ],
            ),
            "put-peer-root.sha256-error",
        ),
        (
            "/ui/peers",
            "a threshold above the keys",
            with(
                peer("p", "https://keyshare.partner.example/"),
                &[("root.keyids", "k1\nk2"), ("root.threshold", "3")],
            ),
            "put-peer-root.sha256-error",
        ),
        (
            "/ui/peers",
            "a name with a control character",
            with(
                peer("bell\u{7}name", "https://keyshare.partner.example/"),
                &[("root.sha256", &sha)],
            ),
            "put-peer-name-error",
        ),
        (
            "/ui/roots",
            "not a certificate",
            vec![
                ("name", "r".into()),
                (
                    "pem",
                    "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".into(),
                ),
            ],
            "put-root-pem-error",
        ),
        (
            "/ui/roots",
            "no name",
            vec![("pem", http_common::ca_pem("Org CA"))],
            "put-root-name-error",
        ),
        (
            "/ui/tsas",
            "not a certificate",
            vec![("name", "t".into()), ("certificate", "hello".into())],
            "put-tsa-certificate-error",
        ),
        (
            "/ui/tsas",
            "a description over the limit",
            vec![
                ("name", "t".into()),
                ("certificate", http_common::ca_pem("TSA CA")),
                ("description", "x".repeat(5000)),
            ],
            "put-tsa-description-error",
        ),
    ];
    for (uri, what, fields, error_id) in refusals {
        let a = send(&app, submit(uri, fields)).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{what}: {}", text(&a));
        assert!(
            text(&a).contains(&format!(r#"id="{error_id}""#)),
            "{what}: no {error_id} in {}",
            text(&a)
        );
        assert_eq!(f.published_state(), before, "{what} changed something");
    }
    assert!(peers_of(&f).is_empty());
    assert!(roots_of(&f).is_empty());
    assert!(f.publisher.read(|s| s.tsas()).unwrap().is_empty());

    // A private key where the root certificate goes: refused, never echoed.
    let private = String::from_utf8(
        openssl::pkey::PKey::generate_ed25519()
            .unwrap()
            .private_key_to_pem_pkcs8()
            .unwrap(),
    )
    .unwrap();
    let a = send(
        &app,
        submit(
            "/ui/roots",
            vec![("name", "r".into()), ("pem", private.clone())],
        ),
    )
    .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", text(&a));
    assert!(
        text(&a).contains(r#"id="put-root-pem-error""#),
        "{}",
        text(&a)
    );
    assert!(!text(&a).contains("PRIVATE KEY"), "{}", text(&a));
    let secret_line = private.lines().nth(1).unwrap();
    assert!(!text(&a).contains(secret_line));
    let a = send(
        &app,
        submit(
            "/ui/tsas",
            vec![("name", "t".into()), ("certificate", private.clone())],
        ),
    )
    .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", text(&a));
    assert!(
        text(&a).contains(r#"id="put-tsa-certificate-error""#),
        "{}",
        text(&a)
    );
    assert!(!text(&a).contains("PRIVATE KEY"), "{}", text(&a));
    assert!(!text(&a).contains(secret_line));
    assert_eq!(f.published_state(), before);

    // Accepted: published as the API publishes it.
    let a = send(
        &app,
        submit(
            "/ui/peers",
            with(
                peer("partner", "https://keyshare.partner.example/"),
                &[("root.sha256", &sha)],
            ),
        ),
    )
    .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", text(&a));
    assert_eq!(a.header("location"), Some("/ui/peers?done=peer-saved"));
    let a = send(
        &app,
        submit(
            "/ui/peers",
            with(
                peer("other", "https://keyshare.other.example/"),
                &[
                    ("root.keyids", "k1\nk2"),
                    ("root.threshold", "2"),
                    ("terminating", "on"),
                ],
            ),
        ),
    )
    .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", text(&a));
    assert_eq!(
        peers_of(&f),
        vec![
            (
                "other".to_owned(),
                "https://keyshare.other.example/".to_owned(),
                json!({"keyids": ["k1", "k2"], "threshold": 2})
            ),
            (
                "partner".to_owned(),
                "https://keyshare.partner.example/".to_owned(),
                json!({"sha256": sha})
            ),
        ]
    );
    let listed = send(
        &app,
        http_common::request(Method::GET, "/api/v1/peers", Some(&f.admin), None).to_request(),
    )
    .await;
    let listed = listed.json();
    assert_eq!(
        listed["peers"][1]["patterns"],
        json!(["d.io/**", "e.io/team/**"])
    );
    assert_eq!(listed["peers"][0]["terminating"], json!(true));
    assert_eq!(listed["peers"][1]["terminating"], json!(false));
    let a = send(
        &app,
        submit(
            "/ui/roots",
            vec![
                ("name", "org-ca".into()),
                ("pem", http_common::ca_pem("Org CA")),
            ],
        ),
    )
    .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", text(&a));
    assert_eq!(roots_of(&f), vec!["org-ca".to_owned()]);
    let tsa_ca = http_common::ca_pem("Org TSA CA");
    let a = send(
        &app,
        submit(
            "/ui/tsas",
            vec![
                ("name", "org-tsa".into()),
                ("certificate", tsa_ca.clone()),
                ("description", "the build farm's".into()),
            ],
        ),
    )
    .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", text(&a));
    let tsas = f.publisher.read(|s| s.tsas()).unwrap();
    assert_eq!(tsas.len(), 1);
    assert_eq!(tsas[0].tsa.name, "org-tsa");
    assert_eq!(tsas[0].tsa.certificate.pem().trim(), tsa_ca.trim());
    assert_eq!(tsas[0].tsa.description.as_deref(), Some("the build farm's"));
    let page = text(
        &send(
            &app,
            get("/ui/peers?done=root-saved", Some(&cookie)).to_request(),
        )
        .await,
    );
    assert!(page.contains("Root certificate saved."), "{page}");
    assert!(page.contains("keyshare.partner.example"), "{page}");
    assert!(page.contains("2 of root keys k1, k2"), "{page}");

    // Without the session's anti-forgery token: refused, nothing removed.
    let before = f.published_state();
    for (uri, name) in [
        ("/ui/peers/remove", "partner"),
        ("/ui/roots/remove", "org-ca"),
        ("/ui/tsas/remove", "org-tsa"),
    ] {
        let a = send(
            &app,
            post(uri, Some(&cookie), &[("name", name)]).to_request(),
        )
        .await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{uri}: {}", text(&a));
    }
    assert_eq!(f.published_state(), before);

    // Removed, each audited as its API call is; an unknown name is 404.
    let a = send(
        &app,
        submit("/ui/peers/remove", vec![("name", "partner".into())]),
    )
    .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", text(&a));
    let a = send(
        &app,
        submit("/ui/roots/remove", vec![("name", "org-ca".into())]),
    )
    .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", text(&a));
    let a = send(
        &app,
        submit("/ui/tsas/remove", vec![("name", "org-tsa".into())]),
    )
    .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", text(&a));
    assert_eq!(peers_of(&f).len(), 1);
    assert!(roots_of(&f).is_empty());
    assert!(f.publisher.read(|s| s.tsas()).unwrap().is_empty());
    let before = f.published_state();
    let a = send(
        &app,
        submit("/ui/peers/remove", vec![("name", "nobody".into())]),
    )
    .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND, "{}", text(&a));
    assert!(text(&a).contains("nobody"), "{}", text(&a));
    assert_eq!(f.published_state(), before);
    let audit = send(
        &app,
        http_common::request(Method::GET, "/api/v1/audit", Some(&f.admin), None).to_request(),
    )
    .await;
    let actions: Vec<String> = audit.json()["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap().to_owned())
        .collect();
    for action in [
        "peer.create",
        "peer.remove",
        "root_cert.create",
        "root_cert.remove",
        "tsa.create",
        "tsa.remove",
    ] {
        assert!(
            actions.iter().any(|a| a == action),
            "{action} not in {actions:?}"
        );
    }
}

#[actix_web::test]
async fn the_identity_and_sub_delegation_forms_are_the_apis_for_a_maintainer_of_the_namespace() {
    let f = populated();
    let maintainer = f.maintainer("a");
    let app = app!(f);
    let (_, cookie) = sign_in!(app, &maintainer);
    let token = csrf!(app, cookie);
    let submit = |uri: &str, fields: &[(&str, &str)]| {
        let mut fields: Vec<(&str, &str)> = fields.to_vec();
        fields.push(("csrf", token.as_str()));
        post(uri, Some(&cookie), &fields).to_request()
    };
    let root_ca = http_common::ca_pem("Team A Root");
    let issuing_ca = http_common::ca_pem("Team A Issuing");
    let two_cas = format!("the root:\n{root_ca}\nand the issuing CA:\n{issuing_ca}");
    let (k1, k2) = (public_pem("ed25519"), public_pem("p256"));
    let two_keys = format!("{k1}\n{k2}");
    let private = String::from_utf8(
        openssl::pkey::PKey::generate_ed25519()
            .unwrap()
            .private_key_to_pem_pkcs8()
            .unwrap(),
    )
    .unwrap();
    let with_private = format!("{root_ca}\n{private}");
    let key_and_private = format!("{k1}\n{private}");
    let same_ca_twice = format!("{root_ca}{root_ca}");

    // Refused: each names its field, nothing is published, and a private
    // key is never shown back.
    let before = f.published_state();
    let identity = "/ui/namespaces/a/identities";
    let sub = "/ui/namespaces/a/sub-delegations";
    let refusals: Vec<(&str, &str, Fields<'_>, &str)> = vec![
        (
            identity,
            "a private key among the CA certificates",
            vec![
                ("name", "build"),
                ("ca_certs", &with_private),
                ("subject", "CN=build"),
            ],
            "add-identity-ca_certs-error",
        ),
        (
            identity,
            "the same CA twice",
            vec![
                ("name", "build"),
                ("ca_certs", &same_ca_twice),
                ("subject", "CN=build"),
            ],
            "add-identity-ca_certs-error",
        ),
        (
            identity,
            "no certificate",
            vec![
                ("name", "build"),
                ("ca_certs", "just words"),
                ("subject", "CN=build"),
            ],
            "add-identity-ca_certs-error",
        ),
        (
            identity,
            "a subject that is no ATTRIBUTE=value list",
            vec![
                ("name", "build"),
                ("ca_certs", &root_ca),
                ("subject", "team a"),
            ],
            "add-identity-subject-error",
        ),
        (
            sub,
            "a threshold above the keys",
            vec![
                ("name", "release"),
                ("scopes", "r.io/a/release/**"),
                ("keys", &two_keys),
                ("threshold", "3"),
            ],
            "add-sub-delegation-threshold-error",
        ),
        (
            sub,
            "a private key among the public keys",
            vec![
                ("name", "release"),
                ("scopes", "r.io/a/release/**"),
                ("keys", &key_and_private),
                ("threshold", "1"),
            ],
            "add-sub-delegation-keys-error",
        ),
        (
            sub,
            "a certificate where a public key goes",
            vec![
                ("name", "release"),
                ("scopes", "r.io/a/release/**"),
                ("keys", &root_ca),
                ("threshold", "1"),
            ],
            "add-sub-delegation-keys-error",
        ),
        (
            sub,
            "no scope",
            vec![("name", "release"), ("keys", &k1), ("threshold", "1")],
            "add-sub-delegation-scopes-error",
        ),
    ];
    for (uri, what, fields, error_id) in refusals {
        let a = send(&app, submit(uri, &fields)).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{what}: {}", text(&a));
        let body = text(&a);
        assert!(
            body.contains(&format!(r#"id="{error_id}""#)),
            "{what}: no {error_id} in {body}"
        );
        assert!(!body.contains("PRIVATE KEY"), "{what}: {body}");
        assert!(!body.contains(private.lines().nth(1).unwrap()), "{what}");
        assert_eq!(f.published_state(), before, "{what} changed something");
    }
    assert!(f.publisher.read(|s| s.identities("a")).unwrap().is_empty());
    assert!(f
        .publisher
        .read(|s| s.sub_delegations("a"))
        .unwrap()
        .is_empty());

    // Accepted: listed as the API lists them.
    let a = send(
        &app,
        submit(
            identity,
            &[
                ("name", "build"),
                ("ca_certs", &two_cas),
                ("subject", "O=acme, CN=build"),
                ("not_after", "2040-01-01T00:00:00Z"),
            ],
        ),
    )
    .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", text(&a));
    assert_eq!(
        a.header("location"),
        Some("/ui/namespaces/a?done=identity-added")
    );
    let listed = f.publisher.read(|s| s.identities("a")).unwrap();
    assert_eq!(listed.len(), 1);
    let listed = serde_json::to_value(&listed[0].identity).unwrap();
    assert_eq!(listed["name"], json!("build"));
    assert_eq!(listed["subject"], json!("O=acme, CN=build"));
    assert_eq!(listed["not_after"], json!("2040-01-01T00:00:00Z"));
    let cas: Vec<String> = serde_json::from_value(listed["ca_certs"].clone()).unwrap();
    assert_eq!(cas.len(), 2);
    assert_eq!(cas[0].trim(), root_ca.trim());
    assert_eq!(cas[1].trim(), issuing_ca.trim());

    let a = send(
        &app,
        submit(
            sub,
            &[
                ("name", "release"),
                ("scopes", "r.io/a/release/**"),
                ("keys", &two_keys),
                ("threshold", "2"),
            ],
        ),
    )
    .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", text(&a));
    let subs = f.publisher.read(|s| s.sub_delegations("a")).unwrap();
    assert_eq!(subs.len(), 1);
    let listed = &subs[0].sub_delegation;
    assert_eq!(listed.threshold.get(), 2);
    let ids: Vec<String> = listed.keys.iter().map(|k| k.id.to_string()).collect();
    let expected: Vec<String> = [&k1, &k2]
        .iter()
        .map(|pem| {
            keyshare_policy::keys::Key::from_spki_pem(pem)
                .unwrap()
                .key_id()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(ids, expected);
    let page = text(&send(&app, get("/ui/namespaces/a", Some(&cookie)).to_request()).await);
    assert!(page.contains("release — threshold 2"), "{page}");
    assert!(page.contains("Remove identity build"), "{page}");

    // Removed through the forms; an unknown name is 404 and changes nothing.
    let before = f.published_state();
    let a = send(
        &app,
        submit("/ui/namespaces/a/identities/remove", &[("name", "nobody")]),
    )
    .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND, "{}", text(&a));
    assert_eq!(f.published_state(), before);
    let a = send(
        &app,
        submit("/ui/namespaces/a/identities/remove", &[("name", "build")]),
    )
    .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", text(&a));
    let a = send(
        &app,
        submit(
            "/ui/namespaces/a/sub-delegations/remove",
            &[("name", "release")],
        ),
    )
    .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", text(&a));
    assert!(f.publisher.read(|s| s.identities("a")).unwrap().is_empty());
    assert!(f
        .publisher
        .read(|s| s.sub_delegations("a"))
        .unwrap()
        .is_empty());
}
