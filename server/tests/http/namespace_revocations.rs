//! A namespace revoking its own keys over the admin API
//! (`POST /api/v1/namespaces/{ns}/revocations`): a maintainer ends trust in
//! a stolen key of their namespace without an org admin, past signatures
//! keep their trust, and the revocation counts in that namespace only.
//! Tried by insiders: a maintainer of team-a cannot revoke in team-b, cannot
//! touch team-b's decisions by revoking a key team-b also lists, cannot
//! undo the revocation by listing the key again, and cannot withdraw it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::num::NonZeroU32;

use actix_web::http::{Method, StatusCode};
use openssl::bn::BigNumContext;
use openssl::ec::{EcGroup, EcKey, PointConversionForm};
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use serde_json::{json, Value};
use time::Duration;

use keyshare_policy::keys::{public_key_fingerprint, Key, Scheme};
use keyshare_policy::metadata::KeyId;
use keyshare_policy::pattern::ArtifactPattern;
use keyshare_policy::trust::{
    Decision, NamespaceEntry, NamespaceTrust, Reason, Sha256Hex, SignerRef, TrustFormat, TrustSet,
};
use keyshare_server::publisher::Change;

use crate::http_common::*;

fn p256() -> PKey<Private> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap()
}

fn pem(key: &PKey<Private>) -> String {
    String::from_utf8(key.public_key_to_pem().unwrap()).unwrap()
}

/// The same public key with its EC point compressed: other bytes, same key.
fn compressed_pem(key: &PKey<Private>) -> String {
    let ec = key.ec_key().unwrap();
    let mut ctx = BigNumContext::new().unwrap();
    let point = ec
        .public_key()
        .to_bytes(ec.group(), PointConversionForm::COMPRESSED, &mut ctx)
        .unwrap();
    let mut der = hex::decode("3039301306072a8648ce3d020106082a8648ce3d030107032200").unwrap();
    der.extend_from_slice(&point);
    let public = PKey::public_key_from_der(&der).unwrap();
    String::from_utf8(public.public_key_to_pem().unwrap()).unwrap()
}

/// The key as a TUF key object.
fn tuf_key(key: &PKey<Private>) -> Key {
    let public = PKey::public_key_from_pem(pem(key).as_bytes()).unwrap();
    Key::from_public(Scheme::EcdsaP256Sha256, &public).unwrap()
}

fn fingerprint(key: &PKey<Private>) -> Sha256Hex {
    public_key_fingerprint(key).unwrap()
}

/// What verifiers get from the published repository.
fn published_trust(f: &Fixture) -> TrustSet {
    let root = f
        .publisher
        .file("metadata/1.root.json")
        .unwrap()
        .bytes
        .to_vec();
    let fetch = |path: &str| f.publisher.file(path).map(|file| file.bytes.to_vec());
    keyshare_testkit::read_trust_set(&root, NOW, &fetch).unwrap()
}

/// The published `namespaces/<ns>/trust.json`, as a verifier parses it.
fn published_document(f: &Fixture, ns: &str) -> NamespaceTrust {
    published_trust(f).document(ns).unwrap().clone()
}

fn decide(f: &Fixture, artifact: &str, id: &str, signed_at: time::OffsetDateTime) -> Decision {
    published_trust(f).decide(
        artifact,
        &[SignerRef::KeyId(KeyId::new(id))],
        signed_at,
        NOW,
    )
}

/// Creates namespaces `registry.acme.io/<name>/**` (as an org admin would).
fn create_namespaces(f: &Fixture, names: &[&str]) {
    for name in names {
        f.publisher
            .apply(
                "token:admin",
                Change::CreateNamespace {
                    entry: NamespaceEntry {
                        name: ns_name(name),
                        scopes: vec![ArtifactPattern::parse(&format!(
                            "registry.acme.io/{name}/**"
                        ))
                        .unwrap()],
                        maintainers: vec![],
                    },
                    threshold: NonZeroU32::MIN,
                    allow_overlap: false,
                },
                NOW,
            )
            .unwrap();
    }
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

#[actix_web::test]
async fn a_maintainer_revokes_a_stolen_key_of_their_namespace_and_past_signatures_stay_trusted() {
    let f = Fixture::new();
    let app = app!(f);
    create_namespaces(&f, &["team-a", "team-b"]);
    let maintainer = f.maintainer("team-a");
    let (stolen, spare) = (p256(), p256());
    for (id, key) in [("laptop", &stolen), ("spare", &spare)] {
        let (status, _) = call!(
            app,
            Method::POST,
            "/api/v1/namespaces/team-a/keys",
            &maintainer,
            json!({"public_key_pem": pem(key), "id": id})
        );
        assert_eq!(status, StatusCode::CREATED);
    }
    let revoked_at = NOW - Duration::hours(1);
    let (head, version) = f.published_state();
    let (status, v) = call!(
        app,
        Method::POST,
        "/api/v1/namespaces/team-a/revocations",
        &maintainer,
        json!({"key_id": "laptop", "reason": "laptop stolen", "revoked_at": rfc3339(revoked_at)})
    );
    assert_eq!(status, StatusCode::CREATED, "{v}");
    assert_eq!(v["subject"]["spki_sha256"], fingerprint(&stolen).as_str());
    assert_eq!(v["namespace"], "team-a");
    assert_eq!(v["key_id"], "laptop");
    assert_eq!(v["revoked_at"], rfc3339(revoked_at));
    assert_eq!(
        v["listed_in"],
        json!([{"namespace": "team-a", "key_id": "laptop"}])
    );
    // One publish, one audit record naming the maintainer's token.
    let (head_after, version_after) = f.published_state();
    assert_eq!(head_after.records, head.records + 1);
    assert!(version_after > version);
    let record = f
        .publisher
        .read(|s| s.audit_records(head.records, 10))
        .unwrap()
        .pop()
        .unwrap();
    assert_eq!(record.action, "namespace_revocation.add");
    assert!(record.actor.starts_with("token:tok-"), "{}", record.actor);
    assert_eq!(
        record.subject,
        format!(
            "team-a/key with SPKI SHA-256 {}",
            fingerprint(&stolen).as_str()
        )
    );
    assert_eq!(record.details["reason"], "laptop stolen");

    // The key stays listed; its earlier signatures keep their trust, later
    // ones are refused, naming the namespace's revocation.
    let doc = published_document(&f, "team-a");
    assert_eq!(doc.format, TrustFormat::V2);
    assert_eq!(doc.keys.len(), 2);
    assert_eq!(doc.revocations.len(), 1);
    let app_name = "registry.acme.io/team-a/app";
    assert!(decide(&f, app_name, "laptop", revoked_at - Duration::seconds(1)).is_trusted());
    match decide(&f, app_name, "laptop", NOW) {
        Decision::Untrusted {
            reason: Reason::RevokedInNamespace { namespace, key, .. },
        } => {
            assert_eq!(namespace.as_str(), "team-a");
            assert_eq!(key, fingerprint(&stolen));
        }
        other => panic!("{other}"),
    }
    assert!(decide(&f, app_name, "spare", NOW).is_trusted());
    // Other namespaces' documents stay in the format every verifier reads.
    assert_eq!(published_document(&f, "team-b").format, TrustFormat::V1);
}

#[actix_web::test]
async fn namespace_revocation_a_maintainer_of_team_a_cannot_revoke_in_team_b() {
    let f = Fixture::new();
    let app = app!(f);
    create_namespaces(&f, &["team-a", "team-b"]);
    let key = p256();
    let (status, _) = call!(
        app,
        Method::POST,
        "/api/v1/namespaces/team-b/keys",
        &f.admin.clone(),
        json!({"public_key_pem": pem(&key), "id": "b-release"})
    );
    assert_eq!(status, StatusCode::CREATED);
    let maintainer_a = f.maintainer("team-a");
    let before = f.published_state();
    let (status, v) = call!(
        app,
        Method::POST,
        "/api/v1/namespaces/team-b/revocations",
        &maintainer_a,
        json!({"key_id": "b-release", "reason": "forged"})
    );
    assert_eq!(status, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(v["error"]["code"], "forbidden");
    assert_eq!(
        f.published_state(),
        before,
        "a refused revocation published"
    );
    assert!(decide(&f, "registry.acme.io/team-b/app", "b-release", NOW).is_trusted());
}

#[actix_web::test]
async fn namespace_revocation_a_maintainer_cannot_affect_team_b_by_revoking_a_key_team_b_also_lists(
) {
    let f = Fixture::new();
    let app = app!(f);
    let admin = f.admin.clone();
    create_namespaces(&f, &["team-a", "team-b"]);
    let b = p256();
    let (status, _) = call!(
        app,
        Method::POST,
        "/api/v1/namespaces/team-b/keys",
        &admin,
        json!({"public_key_pem": pem(&b), "id": "b-release"})
    );
    assert_eq!(status, StatusCode::CREATED);
    // team-b's key is public: team-a's maintainer lists it in team-a, under
    // team-b's own id, and revokes it there, back-dated ten years.
    let maintainer_a = f.maintainer("team-a");
    let (status, _) = call!(
        app,
        Method::POST,
        "/api/v1/namespaces/team-a/keys",
        &maintainer_a,
        json!({"public_key_pem": pem(&b), "id": "b-release"})
    );
    assert_eq!(status, StatusCode::CREATED);
    let (status, v) = call!(
        app,
        Method::POST,
        "/api/v1/namespaces/team-a/revocations",
        &maintainer_a,
        json!({
            "key_id": "b-release",
            "reason": "forged",
            "revoked_at": rfc3339(NOW - Duration::days(3650))
        })
    );
    assert_eq!(status, StatusCode::CREATED, "{v}");
    // team-b's artifacts: as trusted as before, whenever signed.
    for signed_at in [NOW - Duration::days(1), NOW] {
        assert_eq!(
            decide(&f, "registry.acme.io/team-b/app", "b-release", signed_at),
            published_trust(&f).decide(
                "registry.acme.io/team-b/app",
                &[SignerRef::PublicKey(tuf_key(&b))],
                signed_at,
                NOW
            )
        );
        assert!(
            decide(&f, "registry.acme.io/team-b/app", "b-release", signed_at).is_trusted(),
            "team-a's revocation reached team-b"
        );
    }
    // team-b's document carries no revocation; the organization's neither.
    assert!(published_document(&f, "team-b").revocations.is_empty());
    assert!(published_trust(&f).revocations().is_empty());
    // team-b can still list the key anywhere in its own namespace.
    let (status, v) = call!(
        app,
        Method::POST,
        "/api/v1/namespaces/team-b/sub-delegations",
        &admin,
        json!({
            "name": "nightly", "scopes": ["registry.acme.io/team-b/nightly/**"], "threshold": 1,
            "keys": [{"id": "b-nightly", "key": serde_json::to_value(tuf_key(&b)).unwrap()}]
        })
    );
    assert_eq!(status, StatusCode::CREATED, "{v}");
    // team-b's view of its key shows no revocation.
    let (_, view) = call!(
        app,
        Method::GET,
        "/api/v1/namespaces/team-b",
        &admin,
        Value::Null
    );
    assert_eq!(view["keys"][0]["state"], "active", "{view}");
    assert_eq!(view["keys"][0]["revocation"], Value::Null);
}

#[actix_web::test]
async fn namespace_revocation_cannot_be_undone_by_relisting_the_key_in_that_namespace() {
    let f = Fixture::new();
    let app = app!(f);
    create_namespaces(&f, &["team-a"]);
    let maintainer = f.maintainer("team-a");
    let k = p256();
    let (status, _) = call!(
        app,
        Method::POST,
        "/api/v1/namespaces/team-a/keys",
        &maintainer,
        json!({"public_key_pem": pem(&k), "id": "laptop"})
    );
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = call!(
        app,
        Method::POST,
        "/api/v1/namespaces/team-a/revocations",
        &maintainer,
        json!({"key_id": "laptop", "reason": "laptop stolen"})
    );
    assert_eq!(status, StatusCode::CREATED);
    // While listed: under another id it is the same key (409), and
    // revoking it twice is refused too.
    let (status, v) = call!(
        app,
        Method::POST,
        "/api/v1/namespaces/team-a/keys",
        &maintainer,
        json!({"public_key_pem": pem(&k), "id": "laptop-2"})
    );
    assert_eq!(status, StatusCode::CONFLICT, "{v}");
    let (status, v) = call!(
        app,
        Method::POST,
        "/api/v1/namespaces/team-a/revocations",
        &maintainer,
        json!({"key_id": "laptop", "reason": "again"})
    );
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("already_exists")),
        "{v}"
    );
    // Removed, then listed again: every way is refused, naming the revocation.
    let (status, _) = call!(
        app,
        Method::DELETE,
        "/api/v1/namespaces/team-a/keys/laptop",
        &maintainer,
        Value::Null
    );
    assert_eq!(status, StatusCode::NO_CONTENT);
    let key_object = serde_json::to_value(tuf_key(&k)).unwrap();
    let before = f.published_state();
    let attempts = [
        (
            "/api/v1/namespaces/team-a/keys",
            json!({"public_key_pem": pem(&k), "id": "laptop"}),
        ),
        (
            "/api/v1/namespaces/team-a/keys",
            json!({"public_key_pem": pem(&k), "id": "new-id"}),
        ),
        (
            "/api/v1/namespaces/team-a/keys",
            json!({"public_key_pem": compressed_pem(&k), "id": "compressed"}),
        ),
        (
            "/api/v1/namespaces/team-a/keys",
            json!({"key": key_object, "id": "tuf-object"}),
        ),
        (
            "/api/v1/namespaces/team-a/sub-delegations",
            json!({
                "name": "nightly", "scopes": ["registry.acme.io/team-a/nightly/**"],
                "threshold": 1, "keys": [{"id": "nightly-bot", "key": key_object}]
            }),
        ),
    ];
    for (uri, body) in attempts {
        let (status, v) = call!(app, Method::POST, uri, &maintainer, body.clone());
        assert_eq!(status, StatusCode::CONFLICT, "{body}: {v}");
        assert_eq!(v["error"]["code"], "revoked", "{v}");
        let message = v["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("revoked in namespace `team-a`") && message.contains("laptop stolen"),
            "{message}"
        );
    }
    assert_eq!(f.published_state(), before, "a refused listing published");
}

#[actix_web::test]
async fn a_maintainer_cannot_withdraw_a_namespace_revocation_an_org_admin_can() {
    let f = Fixture::new();
    let app = app!(f);
    create_namespaces(&f, &["team-a"]);
    let maintainer = f.maintainer("team-a");
    let k = p256();
    let (status, _) = call!(
        app,
        Method::POST,
        "/api/v1/namespaces/team-a/keys",
        &maintainer,
        json!({"public_key_pem": pem(&k), "id": "laptop"})
    );
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = call!(
        app,
        Method::POST,
        "/api/v1/namespaces/team-a/revocations",
        &maintainer,
        json!({"key_id": "laptop", "reason": "laptop stolen"})
    );
    assert_eq!(status, StatusCode::CREATED);
    let uri = format!(
        "/api/v1/namespaces/team-a/revocations/{}",
        fingerprint(&k).as_str()
    );
    let before = f.published_state();
    let (status, v) = call!(app, Method::DELETE, &uri, &maintainer, Value::Null);
    assert_eq!(status, StatusCode::FORBIDDEN, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("withdraw a revocation"),
        "{v}"
    );
    assert_eq!(f.published_state(), before);
    assert!(!decide(&f, "registry.acme.io/team-a/app", "laptop", NOW).is_trusted());

    // An org admin corrects a mistake: audited, published, trusted again.
    let (status, _) = call!(app, Method::DELETE, &uri, &f.admin.clone(), Value::Null);
    assert_eq!(status, StatusCode::NO_CONTENT);
    let record = f
        .publisher
        .read(|s| s.audit_records(before.0.records, 10))
        .unwrap()
        .pop()
        .unwrap();
    assert_eq!(record.action, "namespace_revocation.remove");
    assert_eq!(record.details["reason"], "laptop stolen");
    assert_eq!(record.details["key_id"], "laptop");
    let doc = published_document(&f, "team-a");
    assert_eq!((doc.format, doc.revocations.len()), (TrustFormat::V1, 0));
    assert!(decide(&f, "registry.acme.io/team-a/app", "laptop", NOW).is_trusted());
    // Withdrawing what is not there is 404.
    let (status, _) = call!(app, Method::DELETE, &uri, &f.admin.clone(), Value::Null);
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[actix_web::test]
async fn bad_namespace_revocation_requests_are_refused_naming_the_problem() {
    let f = Fixture::new();
    let app = app!(f);
    create_namespaces(&f, &["team-a"]);
    let maintainer = f.maintainer("team-a");
    let k = p256();
    let (status, _) = call!(
        app,
        Method::POST,
        "/api/v1/namespaces/team-a/keys",
        &maintainer,
        json!({"public_key_pem": pem(&k), "id": "k1"})
    );
    assert_eq!(status, StatusCode::CREATED);
    let before = f.published_state();
    let post = "/api/v1/namespaces/team-a/revocations";
    // (body, status, code, what the message names)
    let table = [
        (
            json!({"key_id": "nope", "reason": "x"}),
            StatusCode::NOT_FOUND,
            "not_found",
            "no key `nope`",
        ),
        (
            json!({"key_id": "k1"}),
            StatusCode::BAD_REQUEST,
            "invalid",
            "reason",
        ),
        (
            json!({"key_id": "k1", "reason": " "}),
            StatusCode::BAD_REQUEST,
            "invalid",
            "reason",
        ),
        (
            json!({"key_id": "k1", "reason": "x".repeat(201)}),
            StatusCode::BAD_REQUEST,
            "invalid",
            "reason",
        ),
        (
            json!({"reason": "x"}),
            StatusCode::BAD_REQUEST,
            "invalid",
            "key_id",
        ),
        (
            json!({"key_id": "k1", "reason": "x", "revoked_at": "yesterday"}),
            StatusCode::BAD_REQUEST,
            "invalid",
            "revoked_at",
        ),
        (
            json!({"key_id": "k1", "reason": "x", "spki_sha256": "ab".repeat(32)}),
            StatusCode::BAD_REQUEST,
            "invalid",
            "spki_sha256",
        ),
    ];
    for (body, status, code, names) in table {
        let (got, v) = call!(app, Method::POST, post, &maintainer, body.clone());
        assert_eq!(got, status, "{body}: {v}");
        assert_eq!(v["error"]["code"], code, "{body}: {v}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains(names),
            "{body}: {v}"
        );
    }
    let admin = f.admin.clone();
    for (uri, status) in [
        (
            "/api/v1/namespaces/team-z/revocations/".to_owned() + &"ab".repeat(32),
            StatusCode::NOT_FOUND,
        ),
        (
            "/api/v1/namespaces/team-a/revocations/not-a-fingerprint".to_owned(),
            StatusCode::NOT_FOUND,
        ),
        (
            "/api/v1/namespaces/team-a/revocations/".to_owned() + &"ab".repeat(32),
            StatusCode::NOT_FOUND,
        ),
    ] {
        let (got, v) = call!(app, Method::DELETE, &uri, &admin, Value::Null);
        assert_eq!(got, status, "{uri}: {v}");
    }
    let (got, v) = call!(
        app,
        Method::POST,
        "/api/v1/namespaces/team-z/revocations",
        &admin,
        json!({"key_id": "k1", "reason": "x"})
    );
    assert_eq!(got, StatusCode::NOT_FOUND, "{v}");
    assert_eq!(f.published_state(), before, "a refused request published");
}
