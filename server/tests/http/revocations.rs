//! Revocations over the admin API, tried by insiders: a maintainer of one
//! namespace holding an ordinary token cannot get another team's key
//! revoked, and nobody can make a revoked key trusted again by listing it
//! anew — under another id, in another encoding, namespace or
//! sub-delegation, or inside a CA certificate.

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

use keyshare_policy::keys::public_key_fingerprint;
use keyshare_policy::metadata::KeyId;
use keyshare_policy::pattern::ArtifactPattern;
use keyshare_policy::trust::NamespaceEntry;
use keyshare_policy::trust::{Decision, Reason, RevokedSubject, SignerRef, TrustSet};
use keyshare_server::publisher::Change;
use keyshare_server::store::TokenKind;

use crate::http_common::*;

/// A P-256 key pair.
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

fn fingerprint(key: &PKey<Private>) -> String {
    public_key_fingerprint(key).unwrap().to_string()
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

fn decide(f: &Fixture, artifact: &str, id: &str) -> Decision {
    published_trust(f).decide(artifact, &[SignerRef::KeyId(KeyId::new(id))], NOW, NOW)
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

#[actix_web::test]
async fn forged_revocation_a_maintainer_cannot_point_a_revoked_id_at_another_teams_key() {
    let f = Fixture::new();
    let app = app!(f);
    let admin = f.admin.clone();
    create_namespaces(&f, &["team-a", "team-b"]);
    let (retired, b) = (p256(), p256());
    // Years ago team-a's key `retired` was retired and revoked; the entry was cleaned up.
    let (status, _) = call!(
        app,
        Method::POST,
        "/api/v1/namespaces/team-a/keys",
        &admin,
        json!({"public_key_pem": pem(&retired), "id": "retired"})
    );
    assert_eq!(status, StatusCode::CREATED);
    let (status, v) = call!(
        app,
        Method::POST,
        "/api/v1/revocations",
        &admin,
        json!({"key_id": "retired", "namespace": "team-a", "reason": "retired",
               "revoked_at": "2027-01-01T00:00:00Z"})
    );
    assert_eq!(status, StatusCode::CREATED, "{v}");
    assert_eq!(v["subject"]["spki_sha256"], fingerprint(&retired), "{v}");
    let (status, _) = call!(
        app,
        Method::DELETE,
        "/api/v1/namespaces/team-a/keys/retired",
        &admin,
        Value::Null
    );
    assert_eq!(status, StatusCode::NO_CONTENT);
    // team-b lists its release key.
    let (status, _) = call!(
        app,
        Method::POST,
        "/api/v1/namespaces/team-b/keys",
        &admin,
        json!({"public_key_pem": pem(&b), "id": "b-release"})
    );
    assert_eq!(status, StatusCode::CREATED);
    let artifact = "registry.acme.io/team-b/app";
    assert!(decide(&f, artifact, "b-release").is_trusted());
    let revocations_before = f.publisher.read(|s| s.revocations_document()).unwrap();

    // The attack: team-a's maintainer lists team-b's (public) key in team-a
    // under the revoked id. Listing a public key is allowed ...
    let maintainer = f.maintainer("team-a");
    let (status, v) = call!(
        app,
        Method::POST,
        "/api/v1/namespaces/team-a/keys",
        &maintainer,
        json!({"public_key_pem": pem(&b), "id": "retired"})
    );
    assert_eq!(status, StatusCode::CREATED, "{v}");
    // ... but it revokes nothing: revocations name key material.
    assert_eq!(
        f.publisher.read(|s| s.revocations_document()).unwrap(),
        revocations_before
    );
    let d = decide(&f, artifact, "b-release");
    assert!(d.is_trusted(), "{d}");
    // The retired key itself stays revoked under any id.
    let (status, v) = call!(
        app,
        Method::POST,
        "/api/v1/namespaces/team-a/keys",
        &maintainer,
        json!({"public_key_pem": pem(&retired), "id": "fresh-name"})
    );
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("revoked")),
        "{v}"
    );
}

#[actix_web::test]
async fn revocation_undone_by_relisting_every_way_of_listing_the_key_again_is_refused() {
    let f = Fixture::new();
    let app = app!(f);
    let admin = f.admin.clone();
    create_namespaces(&f, &["team-b", "team-c", "team-d"]);
    let b = p256();
    let maintainer_d = f.maintainer("team-d");
    let maintainer_b = f.maintainer("team-b");
    let maintainer_c = f.maintainer("team-c");
    let (status, _) = call!(
        app,
        Method::POST,
        "/api/v1/namespaces/team-b/keys",
        &maintainer_b,
        json!({"public_key_pem": pem(&b), "id": "b-release"})
    );
    assert_eq!(status, StatusCode::CREATED);
    // team-c borrowed team-b's key before it was revoked.
    let (status, _) = call!(
        app,
        Method::POST,
        "/api/v1/namespaces/team-c/keys",
        &maintainer_c,
        json!({"public_key_pem": pem(&b), "id": "borrowed"})
    );
    assert_eq!(status, StatusCode::CREATED);

    // The org revokes team-b's `b-release`: the answer says where the key is listed.
    let (status, v) = call!(
        app,
        Method::POST,
        "/api/v1/revocations",
        &admin,
        json!({"key_id": "b-release", "reason": "laptop stolen"})
    );
    assert_eq!(status, StatusCode::CREATED, "{v}");
    assert_eq!(v["subject"]["spki_sha256"], fingerprint(&b));
    let places: Vec<&str> = v["listed_in"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["namespace"].as_str().unwrap())
        .collect();
    assert_eq!(places, ["team-b", "team-c"], "{v}");

    // Routine clean-up, then every way of listing the same key again.
    let (status, _) = call!(
        app,
        Method::DELETE,
        "/api/v1/namespaces/team-b/keys/b-release",
        &maintainer_b,
        Value::Null
    );
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (head, version) = f.published_state();
    let attempts = [
        (
            "team-b",
            &maintainer_b,
            "/api/v1/namespaces/team-b/keys",
            json!({"public_key_pem": pem(&b), "id": "b-release-2"}),
        ),
        (
            "team-b",
            &maintainer_b,
            "/api/v1/namespaces/team-b/keys",
            json!({"public_key_pem": compressed_pem(&b), "id": "b-release-3"}),
        ),
        (
            "team-b",
            &maintainer_b,
            "/api/v1/namespaces/team-b/keys",
            json!({"public_key_pem": pem(&b), "id": "b-release"}),
        ),
        (
            "team-b",
            &maintainer_b,
            "/api/v1/namespaces/team-b/sub-delegations",
            json!({"name": "nightly", "scopes": ["registry.acme.io/team-b/nightly/**"], "threshold": 1,
                   "keys": [{"id": "nightly", "key": {"keytype": "ecdsa", "scheme": "ecdsa-sha2-nistp256",
                                                      "keyval": {"public": compressed_pem(&b)}}}]}),
        ),
        (
            "team-d",
            &maintainer_d,
            "/api/v1/namespaces/team-d/keys",
            json!({"public_key_pem": pem(&b), "id": "another"}),
        ),
    ];
    for (ns, token, uri, body) in attempts {
        let (status, v) = call!(app, Method::POST, uri, token, body.clone());
        assert_eq!(status, StatusCode::CONFLICT, "{ns} {body}: {v}");
        assert_eq!(v["error"]["code"], "revoked", "{v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("laptop stolen"),
            "{v}"
        );
    }
    assert_eq!(
        f.published_state(),
        (head, version),
        "a refused listing publishes nothing"
    );

    // A CA certificate carrying the revoked key cannot become an identity either.
    let ca = keyshare_testkit::CertBuilder::new("stolen-key CA")
        .ca()
        .build_with_key(b.clone());
    let (status, v) = call!(
        app,
        Method::POST,
        "/api/v1/namespaces/team-b/identities",
        &maintainer_b,
        json!({"name": "sneaky", "ca_certs": [ca.pem()], "subject": "CN=x"})
    );
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("revoked")),
        "{v}"
    );

    // What stayed listed from before (team-c's `borrowed`) decides revoked.
    match decide(&f, "registry.acme.io/team-c/app", "borrowed") {
        Decision::Untrusted {
            reason:
                Reason::Revoked {
                    subject: RevokedSubject::Key(h),
                    ..
                },
        } => {
            assert_eq!(h.as_str(), fingerprint(&b));
        }
        other => panic!("{other}"),
    }
}

#[actix_web::test]
async fn a_key_id_naming_different_keys_must_be_disambiguated_and_an_unknown_id_is_not_found() {
    let f = Fixture::new();
    let app = app!(f);
    let admin = f.admin.clone();
    create_namespaces(&f, &["team-a", "team-b"]);
    for ns in ["team-a", "team-b"] {
        let (status, _) = call!(
            app,
            Method::POST,
            &format!("/api/v1/namespaces/{ns}/keys"),
            &admin,
            json!({"public_key_pem": public_pem("ed25519"), "id": "release"})
        );
        assert_eq!(status, StatusCode::CREATED);
    }
    let (head, version) = f.published_state();
    let (status, v) = call!(
        app,
        Method::POST,
        "/api/v1/revocations",
        &admin,
        json!({"key_id": "release", "reason": "x"})
    );
    assert_eq!(status, StatusCode::CONFLICT, "{v}");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("team-a") && message.contains("team-b") && message.contains("namespace"),
        "{message}"
    );
    let (status, v) = call!(
        app,
        Method::POST,
        "/api/v1/revocations",
        &admin,
        json!({"key_id": "nobody", "reason": "x"})
    );
    assert_eq!(status, StatusCode::NOT_FOUND, "{v}");
    assert_eq!(f.published_state(), (head, version));
    // Naming the namespace revokes exactly that key.
    let (status, v) = call!(
        app,
        Method::POST,
        "/api/v1/revocations",
        &admin,
        json!({"key_id": "release", "namespace": "team-b", "reason": "x"})
    );
    assert_eq!(status, StatusCode::CREATED, "{v}");
    assert!(decide(&f, "registry.acme.io/team-a/app", "release").is_trusted());
    assert!(!decide(&f, "registry.acme.io/team-b/app", "release").is_trusted());
    // A maintainer may not revoke at all.
    let maintainer = f.token(TokenKind::Maintainer(ns_name("team-a")));
    let (status, _) = call!(
        app,
        Method::POST,
        "/api/v1/revocations",
        &maintainer,
        json!({"key_id": "release", "namespace": "team-a", "reason": "x"})
    );
    assert_eq!(status, StatusCode::FORBIDDEN);
}
