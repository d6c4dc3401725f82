//! CI delegations end to end, in process: a local OIDC issuer, the CI
//! endpoints, the published trust documents read as a TUF client reads
//! them, and the trust decision on the delegated key.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::print_stdout,
    clippy::print_stderr
)]

use crate::ci_common;
use crate::http_common;

use std::sync::atomic::Ordering;

use actix_web::http::{Method, StatusCode};
use serde_json::{json, Value};
use time::Duration;

use keyshare_policy::keys::Scheme;
use keyshare_policy::sign::{InMemorySigner, Signer};
use keyshare_policy::trust::{Decision, Reason, SignerRef};
use keyshare_server::store::TokenKind;

use ci_common::{base64url, delegation_body, job_key, sign_with, trust_set, CiFixture};
use http_common::{request, send, Answer, NOW};

const TEAM_A_ARTIFACT: &str = "registry.acme.io/team-a/app";
const TEAM_B_ARTIFACT: &str = "registry.acme.io/team-b/app";

/// A fresh nonce from the app.
macro_rules! nonce {
    ($app:expr) => {{
        let a = send(
            $app,
            request(Method::POST, "/api/v1/ci/nonce", None, None).to_request(),
        )
        .await;
        assert_eq!(a.status, StatusCode::CREATED, "{:?}", a.body);
        a.json()["nonce"].as_str().unwrap().to_owned()
    }};
}

/// A fresh nonce, then a delegation request for `key` in `ns` with `token`.
macro_rules! delegate {
    ($app:expr, $token:expr, $ns:expr, $key:expr) => {{
        let n = nonce!($app);
        send(
            $app,
            delegate_req($token, &delegation_body(&n, $ns, $key)).to_request(),
        )
        .await
    }};
}

fn delegate_req(token: &str, body: &Value) -> actix_web::test::TestRequest {
    request(
        Method::POST,
        "/api/v1/ci/delegations",
        Some(token),
        Some(body),
    )
}

fn assert_refused(a: &Answer, status: StatusCode, code: &str) {
    assert_eq!(a.status, status, "{}", String::from_utf8_lossy(&a.body));
    let (got, message) = a.error();
    assert_eq!(got, code, "{message}");
}

#[actix_web::test]
async fn matching_job_gets_a_delegation_trusted_for_its_namespace_only() {
    let fx = CiFixture::new();
    let app = app!(fx.f);
    let key = job_key();
    let a = delegate!(&app, &fx.issuer.token(), "team-a", &key);
    assert_eq!(
        a.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&a.body)
    );
    let d = a.json();
    assert_eq!(d["namespace"], "team-a");
    assert_eq!(d["key_id"], key.key_id().as_str());
    assert_eq!(d["id"], format!("team-a.{}", key.key_id()));
    let not_after = time::OffsetDateTime::parse(
        d["not_after"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert_eq!(not_after, NOW + Duration::minutes(10), "the default ttl");
    assert!(d["certificate_chain_pem"].is_null(), "no CA configured");

    // The versions named are the ones published.
    let metrics = fx.f.publisher.metrics();
    assert_eq!(d["timestamp_version"], metrics.versions["timestamp"]);
    // The namespace version is the version of the bin listing team-a's
    // trust document, and that version lists the key.
    let ns_version = d["namespace_version"].as_u64().unwrap();
    let bin =
        fx.f.publisher
            .trust_role(&keyshare_policy::trust::NamespaceName::parse("team-a").unwrap());
    let listing =
        fx.f.publisher
            .file(&format!("metadata/{ns_version}.{bin}.json"))
            .unwrap();
    let listing: serde_json::Value = serde_json::from_slice(&listing.bytes).unwrap();
    assert!(listing["signed"]["targets"]
        .get("namespaces/team-a/trust.json")
        .is_some());

    let set = trust_set(&fx.f.publisher, NOW, &["team-a", "team-b"]);
    let signer = [SignerRef::KeyId(key.key_id().clone())];
    let decision = set.decide(TEAM_A_ARTIFACT, &signer, NOW, NOW);
    assert!(decision.is_trusted(), "{decision}");
    let other = set.decide(TEAM_B_ARTIFACT, &signer, NOW, NOW);
    assert!(!other.is_trusted(), "{other}");

    // The audit record names the identity and claims, never the token.
    let records = fx.f.publisher.read(|s| s.audit_records(0, 1000)).unwrap();
    let record = records
        .iter()
        .rev()
        .find(|r| r.action == "key.add")
        .unwrap();
    assert_eq!(
        record.actor,
        format!("oidc:{}#repo:acme/app:ref:refs/heads/main", fx.issuer.url)
    );
    assert_eq!(
        record.details["context"]["claims"]["repository"],
        "acme/app"
    );
    let text = format!("{records:?}");
    assert!(!text.contains("eyJ"), "a JWT reached the audit log");
}

#[actix_web::test]
async fn es256_tokens_and_ci_tokens_work_and_other_tokens_do_not() {
    let fx = CiFixture::new();
    let app = app!(fx.f);
    let token = fx.issuer.sign(&fx.issuer.claims(), "ES256");
    let a = delegate!(&app, &token, "team-a", &job_key());
    assert_eq!(
        a.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&a.body)
    );

    // A scoped CI token: its namespaces, and only those.
    let ci = fx.f.ci("team-b");
    let a = delegate!(&app, &ci, "team-b", &job_key());
    assert_eq!(
        a.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&a.body)
    );
    let a = delegate!(&app, &ci, "team-a", &job_key());
    assert_refused(&a, StatusCode::FORBIDDEN, "namespace_not_allowed");

    // A maintainer token is not a CI credential.
    let m = fx.f.maintainer("team-a");
    let a = delegate!(&app, &m, "team-a", &job_key());
    assert_refused(&a, StatusCode::FORBIDDEN, "forbidden");
}

#[actix_web::test]
async fn each_bad_request_is_refused_naming_the_reason_and_publishes_nothing() {
    let fx = CiFixture::new();
    let app = app!(fx.f);
    let before = fx.f.published_state();
    let body = |n: &str| delegation_body(n, "team-a", &job_key());

    let mut cases: Vec<(&str, String, StatusCode, &str)> = Vec::new();
    let mut claims = fx.issuer.claims();
    claims["aud"] = json!("https://someone-else");
    cases.push((
        "wrong audience",
        fx.issuer.sign(&claims, "RS256"),
        StatusCode::UNAUTHORIZED,
        "wrong_audience",
    ));
    let mut claims = fx.issuer.claims();
    claims["iss"] = json!("https://token.actions.githubusercontent.com");
    cases.push((
        "wrong issuer",
        fx.issuer.sign(&claims, "RS256"),
        StatusCode::UNAUTHORIZED,
        "wrong_issuer",
    ));
    let mut claims = fx.issuer.claims();
    claims["exp"] = json!(NOW.unix_timestamp() - 120);
    cases.push((
        "expired",
        fx.issuer.sign(&claims, "RS256"),
        StatusCode::UNAUTHORIZED,
        "expired_token",
    ));
    // Signed by another key under the issuer's key id.
    let forged = sign_with(&fx.issuer.claims(), "RS256", "rsa-1", &ci_common::rsa_pem());
    cases.push((
        "bad signature",
        forged,
        StatusCode::UNAUTHORIZED,
        "bad_signature",
    ));
    // alg none, and HS256 keyed with the issuer's public key (a classic).
    let claims_b64 = |v: &Value| base64url(serde_json::to_string(v).unwrap().as_bytes());
    let none = format!(
        "{}.{}.",
        base64url(br#"{"alg":"none","typ":"JWT"}"#),
        claims_b64(&fx.issuer.claims())
    );
    cases.push(("alg none", none, StatusCode::UNAUTHORIZED, "bad_signature"));
    let hs = format!(
        "{}.{}.{}",
        base64url(br#"{"alg":"HS256","typ":"JWT","kid":"rsa-1"}"#),
        claims_b64(&fx.issuer.claims()),
        base64url(b"mac")
    );
    cases.push(("alg HS256", hs, StatusCode::UNAUTHORIZED, "bad_signature"));
    let mut claims = fx.issuer.claims();
    claims["ref"] = json!("refs/heads/feature");
    cases.push((
        "unmatched claims",
        fx.issuer.sign(&claims, "RS256"),
        StatusCode::FORBIDDEN,
        "unmatched_claims",
    ));
    cases.push((
        "not a JWT",
        "abc.def".into(),
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    ));

    for (what, token, status, code) in cases {
        let n = nonce!(&app);
        let a = send(&app, delegate_req(&token, &body(&n)).to_request()).await;
        assert_eq!(
            a.status,
            status,
            "{what}: {}",
            String::from_utf8_lossy(&a.body)
        );
        assert_eq!(a.error().0, code, "{what}: {}", a.error().1);
    }

    // Namespace the rules do not grant.
    let a = delegate!(&app, &fx.issuer.token(), "team-b", &job_key());
    assert_refused(&a, StatusCode::FORBIDDEN, "namespace_not_allowed");

    // Proof of possession: by another key, for another namespace, over another nonce.
    let key = job_key();
    let n = nonce!(&app);
    let mut b = delegation_body(&n, "team-a", &job_key());
    b["public_key_pem"] = json!(ci_common::public_pem(&key));
    let a = send(&app, delegate_req(&fx.issuer.token(), &b).to_request()).await;
    assert_refused(&a, StatusCode::BAD_REQUEST, "bad_proof_of_possession");
    let n = nonce!(&app);
    let mut b = delegation_body(&n, "team-b", &key);
    b["namespace"] = json!("team-a");
    let a = send(&app, delegate_req(&fx.issuer.token(), &b).to_request()).await;
    assert_refused(&a, StatusCode::BAD_REQUEST, "bad_proof_of_possession");
    let n = nonce!(&app);
    let other = nonce!(&app);
    let mut b = delegation_body(&other, "team-a", &key);
    b["nonce"] = json!(n);
    let a = send(&app, delegate_req(&fx.issuer.token(), &b).to_request()).await;
    assert_refused(&a, StatusCode::BAD_REQUEST, "bad_proof_of_possession");

    // A nonce the server never issued.
    let a = send(
        &app,
        delegate_req(&fx.issuer.token(), &body("00ff")).to_request(),
    )
    .await;
    assert_refused(&a, StatusCode::BAD_REQUEST, "bad_nonce");
    assert_eq!(
        fx.f.published_state(),
        before,
        "a refused request published"
    );

    // Replays: the same token twice (same jti), a token without jti twice,
    // and a nonce used twice.
    let token = fx.issuer.token();
    let n = nonce!(&app);
    let a = send(&app, delegate_req(&token, &body(&n)).to_request()).await;
    assert_eq!(a.status, StatusCode::CREATED);
    let n = nonce!(&app);
    let a = send(&app, delegate_req(&token, &body(&n)).to_request()).await;
    assert_refused(&a, StatusCode::UNAUTHORIZED, "replay");
    let mut claims = fx.issuer.claims();
    claims.as_object_mut().unwrap().remove("jti");
    let no_jti = fx.issuer.sign(&claims, "ES256");
    let n = nonce!(&app);
    assert_eq!(
        send(&app, delegate_req(&no_jti, &body(&n)).to_request())
            .await
            .status,
        StatusCode::CREATED
    );
    let n = nonce!(&app);
    let a = send(&app, delegate_req(&no_jti, &body(&n)).to_request()).await;
    assert_refused(&a, StatusCode::UNAUTHORIZED, "replay");
    let n = nonce!(&app);
    let k = job_key();
    let a = send(
        &app,
        delegate_req(&fx.issuer.token(), &delegation_body(&n, "team-a", &k)).to_request(),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED);
    let a = send(
        &app,
        delegate_req(
            &fx.issuer.token(),
            &delegation_body(&n, "team-a", &job_key()),
        )
        .to_request(),
    )
    .await;
    assert_refused(&a, StatusCode::BAD_REQUEST, "bad_nonce");

    // No credential at all; a malformed body.
    let n = nonce!(&app);
    let a = send(
        &app,
        request(
            Method::POST,
            "/api/v1/ci/delegations",
            None,
            Some(&body(&n)),
        )
        .to_request(),
    )
    .await;
    assert_refused(&a, StatusCode::UNAUTHORIZED, "unauthorized");
    let a = send(
        &app,
        delegate_req(&fx.issuer.token(), &json!({"namespace": "team-a"})).to_request(),
    )
    .await;
    assert_refused(&a, StatusCode::BAD_REQUEST, "invalid");
}

#[actix_web::test]
async fn requests_over_the_rate_limit_are_refused_per_identity() {
    let fx = CiFixture::with(|c| c.rate_limit = 2);
    let app = app!(fx.f);
    for _ in 0..2 {
        let a = delegate!(&app, &fx.issuer.token(), "team-a", &job_key());
        assert_eq!(a.status, StatusCode::CREATED);
    }
    let a = delegate!(&app, &fx.issuer.token(), "team-a", &job_key());
    assert_refused(&a, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    // Another identity is not affected.
    let ci = fx.f.ci("team-a");
    let a = delegate!(&app, &ci, "team-a", &job_key());
    assert_eq!(a.status, StatusCode::CREATED);
}

#[actix_web::test]
async fn a_delegation_is_trusted_until_not_after_and_swept_afterwards() {
    let fx = CiFixture::new();
    let app = app!(fx.f);
    let key = job_key();
    let n = nonce!(&app);
    let mut body = delegation_body(&n, "team-a", &key);
    body["ttl_seconds"] = json!(120);
    let a = send(&app, delegate_req(&fx.issuer.token(), &body).to_request()).await;
    assert_eq!(a.status, StatusCode::CREATED);
    let not_after = NOW + Duration::seconds(120);
    assert_eq!(
        a.json()["not_after"],
        not_after
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    );
    let signer = [SignerRef::KeyId(key.key_id().clone())];
    let set = trust_set(&fx.f.publisher, NOW, &["team-a"]);
    let just_before = not_after - Duration::seconds(1);
    assert!(set
        .decide(TEAM_A_ARTIFACT, &signer, NOW, just_before)
        .is_trusted());
    match set.decide(TEAM_A_ARTIFACT, &signer, NOW, not_after) {
        Decision::Untrusted {
            reason: Reason::EphemeralExpired { .. },
        } => {}
        other => panic!("{other}"),
    }

    // A sweep before not_after removes nothing and publishes nothing.
    let publishes = fx.f.publisher.metrics().publishes;
    assert_eq!(fx.f.publisher.sweep_ephemeral(just_before).unwrap(), 0);
    assert_eq!(fx.f.publisher.metrics().publishes, publishes);
    // At not_after it is removed and the namespace republished.
    assert_eq!(fx.f.publisher.sweep_ephemeral(not_after).unwrap(), 1);
    let set = trust_set(&fx.f.publisher, not_after, &["team-a"]);
    let doc = set.namespaces().next().unwrap();
    assert!(
        doc.keys.iter().all(|k| k.id != *key.key_id()),
        "still listed"
    );
    match set.decide(TEAM_A_ARTIFACT, &signer, NOW, just_before) {
        Decision::Untrusted { .. } => {}
        other => panic!("{other}"),
    }
}

#[actix_web::test]
async fn a_longer_ttl_than_allowed_is_cut_to_the_maximum() {
    let fx = CiFixture::with(|c| c.max_ttl = Duration::minutes(30));
    let app = app!(fx.f);
    let n = nonce!(&app);
    let mut body = delegation_body(&n, "team-a", &job_key());
    body["ttl_seconds"] = json!(86_400);
    let a = send(&app, delegate_req(&fx.issuer.token(), &body).to_request()).await;
    assert_eq!(a.status, StatusCode::CREATED);
    let rfc = |t: time::OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    assert_eq!(a.json()["not_after"], rfc(NOW + Duration::minutes(30)));
    let n = nonce!(&app);
    let mut body = delegation_body(&n, "team-a", &job_key());
    body["ttl_seconds"] = json!(0);
    let a = send(&app, delegate_req(&fx.issuer.token(), &body).to_request()).await;
    assert_refused(&a, StatusCode::BAD_REQUEST, "invalid");
}

#[actix_web::test]
async fn the_sweeper_task_removes_expired_delegations_on_its_own() {
    let fx = CiFixture::new();
    let app = app!(fx.f);
    let key = job_key();
    let a = delegate!(&app, &fx.issuer.token(), "team-a", &key);
    assert_eq!(a.status, StatusCode::CREATED);
    let listed = |fx: &CiFixture| {
        fx.f.publisher
            .read(|s| s.keys("team-a"))
            .unwrap()
            .iter()
            .any(|k| k.key.id == *key.key_id())
    };
    assert!(listed(&fx));
    fx.clock.set(NOW + Duration::minutes(11));
    // A short interval; the test waits on the store, not on a duration.
    let task = actix_web::rt::spawn(keyshare_server::ci::sweeper::run(
        fx.f.publisher.clone(),
        fx.clock.clock(),
        std::time::Duration::from_millis(10),
    ));
    for _ in 0..1000 {
        if !listed(&fx) {
            break;
        }
        actix_web::rt::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    task.abort();
    assert!(!listed(&fx), "the sweeper did not remove the expired key");
    let set = trust_set(&fx.f.publisher, NOW + Duration::minutes(11), &["team-a"]);
    assert!(set.namespaces().next().unwrap().keys.is_empty());
}

/// A CI token scoped to many namespaces: each request asks the store about
/// the one namespace it names (the last of thirteen works as well as the
/// first), a namespace outside the scope is refused, and the refusal names
/// a bounded sample of the scope rather than every namespace it covers.
#[actix_web::test]
async fn a_ci_token_with_a_wide_scope_is_checked_namespace_by_namespace() {
    let fx = CiFixture::new();
    let app = app!(fx.f);
    let extra: Vec<String> = (0..12).map(|i| format!("wide-{i:02}")).collect();
    let extra_refs: Vec<&str> = extra.iter().map(String::as_str).collect();
    ci_common::create_namespaces(&fx.f.publisher, &extra_refs);
    let mut scope = vec![http_common::ns_name("team-b")];
    scope.extend(extra.iter().map(|n| http_common::ns_name(n)));
    let ci = fx.f.token(TokenKind::Ci(scope));

    for ns in ["team-b", "wide-00", "wide-11"] {
        let a = delegate!(&app, &ci, ns, &job_key());
        assert_eq!(
            a.status,
            StatusCode::CREATED,
            "{ns}: {}",
            String::from_utf8_lossy(&a.body)
        );
    }
    let before = fx.f.published_state();
    let a = delegate!(&app, &ci, "team-a", &job_key());
    assert_refused(&a, StatusCode::FORBIDDEN, "namespace_not_allowed");
    let message = a.error().1;
    assert!(message.contains("`team-b`"), "{message}");
    assert!(message.contains("and 3 more"), "{message}");
    assert!(!message.contains("`wide-11`"), "{message}");
    assert!(message.ends_with("but not for `team-a`"), "{message}");
    assert_eq!(
        fx.f.published_state(),
        before,
        "a refusal publishes nothing"
    );
}

#[actix_web::test]
async fn a_delegation_can_be_ended_early_by_its_job() {
    let fx = CiFixture::new();
    let app = app!(fx.f);
    let key = job_key();
    let token = fx.issuer.token();
    let a = delegate!(&app, &token, "team-a", &key);
    let id = a.json()["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/ci/delegations/{id}");
    // Another namespace's CI token may not end it.
    let other = fx.f.ci("team-b");
    let a = send(
        &app,
        request(Method::DELETE, &path, Some(&other), None).to_request(),
    )
    .await;
    assert_refused(&a, StatusCode::FORBIDDEN, "namespace_not_allowed");
    // Nor may another identity allowed in the same namespace.
    let same_ns = fx.f.ci("team-a");
    let a = send(
        &app,
        request(Method::DELETE, &path, Some(&same_ns), None).to_request(),
    )
    .await;
    assert_refused(&a, StatusCode::FORBIDDEN, "forbidden");
    let a = send(
        &app,
        request(Method::DELETE, &path, Some(&token), None).to_request(),
    )
    .await;
    assert_eq!(
        a.status,
        StatusCode::NO_CONTENT,
        "{}",
        String::from_utf8_lossy(&a.body)
    );
    let set = trust_set(&fx.f.publisher, NOW, &["team-a"]);
    assert!(!set
        .decide(
            TEAM_A_ARTIFACT,
            &[SignerRef::KeyId(key.key_id().clone())],
            NOW,
            NOW
        )
        .is_trusted());
    let a = send(
        &app,
        request(Method::DELETE, &path, Some(&token), None).to_request(),
    )
    .await;
    assert_refused(&a, StatusCode::NOT_FOUND, "not_found");
}

#[actix_web::test]
async fn without_a_ci_section_the_endpoints_say_so() {
    let f = http_common::Fixture::new();
    let app = app!(f);
    let a = send(
        &app,
        request(Method::POST, "/api/v1/ci/nonce", None, None).to_request(),
    )
    .await;
    assert_refused(&a, StatusCode::NOT_FOUND, "ci_not_configured");
}

#[actix_web::test]
async fn an_unknown_kid_refetches_the_issuer_keys_at_most_once_per_interval() {
    let fx = CiFixture::new();
    let app = app!(fx.f);
    let a = delegate!(&app, &fx.issuer.token(), "team-a", &job_key());
    assert_eq!(a.status, StatusCode::CREATED);
    assert_eq!(
        fx.issuer.fetches.load(Ordering::SeqCst),
        1,
        "fetched on first use"
    );
    // A token under a key id the issuer does not publish (a rotated-in key
    // the cache lacks, or a forgery): refused; no refetch within a minute.
    let stranger = sign_with(&fx.issuer.claims(), "RS256", "rsa-2", &ci_common::rsa_pem());
    for _ in 0..3 {
        let a = delegate!(&app, &stranger, "team-a", &job_key());
        assert_refused(&a, StatusCode::UNAUTHORIZED, "bad_signature");
    }
    assert_eq!(fx.issuer.fetches.load(Ordering::SeqCst), 1);
    // Later, an unknown kid fetches the key set again (once).
    fx.clock.set(NOW + Duration::minutes(2));
    let mut claims = fx.issuer.claims();
    claims["exp"] = json!((NOW + Duration::minutes(10)).unix_timestamp());
    let stranger = sign_with(&claims, "RS256", "rsa-2", &ci_common::rsa_pem());
    let a = delegate!(&app, &stranger, "team-a", &job_key());
    assert_refused(&a, StatusCode::UNAUTHORIZED, "bad_signature");
    assert_eq!(fx.issuer.fetches.load(Ordering::SeqCst), 2);
}

#[actix_web::test]
async fn a_static_jwks_file_works_without_network_to_the_issuer() {
    let issuer = ci_common::Issuer::start();
    let url = "https://issuer.offline.example".to_owned();
    let fx = CiFixture::with(|c| {
        c.issuers[0].url.clone_from(&url);
        c.issuers[0].jwks_file = Some("issuer-jwks.json".into());
        c.rules[0].issuer.clone_from(&url);
    });
    std::fs::write(
        fx.f.dir.path().join("issuer-jwks.json"),
        issuer.jwks().to_string(),
    )
    .unwrap();
    let app = app!(fx.f);
    let mut claims = issuer.claims();
    claims["iss"] = json!(url);
    let n = nonce!(&app);
    let a = send(
        &app,
        delegate_req(
            &issuer.sign(&claims, "ES256"),
            &delegation_body(&n, "team-a", &job_key()),
        )
        .to_request(),
    )
    .await;
    assert_eq!(
        a.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&a.body)
    );
    assert_eq!(issuer.fetches.load(Ordering::SeqCst), 0);
}

#[test]
fn ecdsa_and_rsa_job_keys_are_accepted_too() {
    // The proof is checked in the key's own TUF scheme.
    for scheme in [Scheme::EcdsaP256Sha256, Scheme::RsaPssSha256] {
        let key = InMemorySigner::generate(scheme).unwrap();
        let body = delegation_body("n", "team-a", &key);
        let parsed =
            keyshare_server::ci::key_from_pem(body["public_key_pem"].as_str().unwrap()).unwrap();
        let proof = hex::decode(body["proof"].as_str().unwrap()).unwrap();
        let message = keyshare_server::ci::proof_message("n", "team-a", key.key_id().as_str());
        assert_eq!(parsed.key_id().unwrap(), *key.key_id());
        assert!(parsed.verify(key.key_id(), &message, &proof).unwrap());
    }
}

/// The trusted top-level targets and snapshot of what the publisher
/// serves now, as an evidence anchor.
fn evidence_anchor(
    publisher: &keyshare_server::publisher::Publisher,
) -> keyshare_policy::evidence::EvidenceAnchor {
    use keyshare_policy::metadata::{Envelope, Snapshot, Targets, Timestamp};
    let file = |path: &str| publisher.file(path).unwrap().bytes.to_vec();
    let timestamp =
        Envelope::<Timestamp>::parse("timestamp", &file("metadata/timestamp.json")).unwrap();
    let snapshot = Envelope::<Snapshot>::parse(
        "snapshot",
        &file(&format!(
            "metadata/{}.snapshot.json",
            timestamp.signed.snapshot_meta().version
        )),
    )
    .unwrap()
    .signed;
    let targets = Envelope::<Targets>::parse(
        "targets",
        &file(&format!(
            "metadata/{}.targets.json",
            snapshot.role_meta("targets").unwrap().version
        )),
    )
    .unwrap()
    .signed;
    keyshare_policy::evidence::EvidenceAnchor::new(&targets, &snapshot)
}

#[actix_web::test]
async fn a_ci_keys_evidence_is_served_to_anyone_and_proves_the_delegation_after_the_sweep() {
    let fx = CiFixture::new();
    let app = app!(fx.f);
    let key = job_key();
    let a = delegate!(&app, &fx.issuer.token(), "team-a", &key);
    assert_eq!(a.status, StatusCode::CREATED, "{:?}", a.body);
    let fingerprint = key.public_key().fingerprint(key.key_id()).unwrap();

    // No credential needed: it is published data.
    let path = format!("/api/v1/ci/evidence/{fingerprint}");
    let a = send(&app, request(Method::GET, &path, None, None).to_request()).await;
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
    let answer: keyshare_policy::api::ci::EvidenceAnswer = serde_json::from_slice(&a.body).unwrap();
    assert_eq!(answer.evidence.len(), 1);
    let evidence = answer.evidence.into_iter().next().unwrap();
    assert_eq!(evidence.namespace.as_str(), "team-a");
    let checked = evidence_anchor(&fx.f.publisher).check(&evidence).unwrap();
    assert!(checked
        .document
        .keys
        .iter()
        .any(|k| k.ephemeral && k.id == *key.key_id()));

    // The sweep removes the key; the evidence still checks against the
    // newer state and proves the window to a stamped signature.
    fx.f.publisher
        .sweep_ephemeral(NOW + Duration::hours(1))
        .unwrap();
    let a = send(&app, request(Method::GET, &path, None, None).to_request()).await;
    assert_refused(&a, StatusCode::NOT_FOUND, "not_found");
    let later = NOW + Duration::hours(2);
    let set = trust_set(&fx.f.publisher, later, &["team-a"]);
    let signer = [SignerRef::PublicKey(key.public_key().clone())];
    let signed_at = NOW + Duration::minutes(1);
    assert!(!set
        .decide_attested(TEAM_A_ARTIFACT, &signer, signed_at, later)
        .is_trusted());
    let checked = evidence_anchor(&fx.f.publisher).check(&evidence).unwrap();
    let d = set.decide_attested_with_history(
        TEAM_A_ARTIFACT,
        &signer,
        signed_at,
        later,
        &checked.document,
    );
    assert!(d.is_trusted(), "{d}");
    // Not for another namespace's artifacts, not outside the window.
    assert!(!set
        .decide_attested_with_history(
            TEAM_B_ARTIFACT,
            &signer,
            signed_at,
            later,
            &checked.document
        )
        .is_trusted());
    assert!(!set
        .decide_attested_with_history(
            TEAM_A_ARTIFACT,
            &signer,
            NOW + Duration::minutes(11),
            later,
            &checked.document
        )
        .is_trusted());
}

#[actix_web::test]
async fn evidence_is_refused_for_long_lived_keys_unknown_keys_and_bad_fingerprints() {
    let fx = CiFixture::new();
    let app = app!(fx.f);
    let long_lived = job_key();
    fx.f.publisher
        .apply(
            "test",
            keyshare_server::publisher::Change::AddKey {
                namespace: keyshare_policy::trust::NamespaceName::parse("team-a").unwrap(),
                key: keyshare_policy::trust::TrustedKey {
                    id: long_lived.key_id().clone(),
                    key: long_lived.public_key().clone(),
                    not_before: None,
                    not_after: None,
                    ephemeral: false,
                    description: None,
                    principal: None,
                    layout_root: false,
                },
            },
            NOW,
        )
        .unwrap();
    for key in [&long_lived, &job_key()] {
        let fingerprint = key.public_key().fingerprint(key.key_id()).unwrap();
        let path = format!("/api/v1/ci/evidence/{fingerprint}");
        let a = send(&app, request(Method::GET, &path, None, None).to_request()).await;
        assert_refused(&a, StatusCode::NOT_FOUND, "not_found");
    }
    for bad in ["abc", &"G".repeat(64), &"A".repeat(64)] {
        let path = format!("/api/v1/ci/evidence/{bad}");
        let a = send(&app, request(Method::GET, &path, None, None).to_request()).await;
        assert_refused(&a, StatusCode::BAD_REQUEST, "invalid");
    }
    let a = send(
        &app,
        request(Method::POST, "/api/v1/ci/evidence/abc", None, None).to_request(),
    )
    .await;
    assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[actix_web::test]
async fn evidence_requests_are_limited_per_client_address() {
    let fx = CiFixture::new();
    let app = app!(fx.f);
    let path = format!("/api/v1/ci/evidence/{}", "0".repeat(64));
    for _ in 0..keyshare_server::http::EVIDENCE_RATE_LIMIT {
        let a = send(&app, request(Method::GET, &path, None, None).to_request()).await;
        assert_refused(&a, StatusCode::NOT_FOUND, "not_found");
    }
    let a = send(&app, request(Method::GET, &path, None, None).to_request()).await;
    assert_refused(&a, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
}
