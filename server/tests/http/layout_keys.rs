//! Layout-root keys through the admin API: `layout_root: true` on
//! `POST /api/v1/namespaces/{ns}/keys` publishes the namespace's document
//! as `keyshare.trust/v3` with the key marked; every other document keeps
//! the format (and bytes) older verifiers read; the mark changes no trust
//! decision.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::num::NonZeroU32;

use actix_web::http::{Method, StatusCode};
use openssl::ec::{EcGroup, EcKey};
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use serde_json::json;

use keyshare_policy::metadata::KeyId;
use keyshare_policy::pattern::ArtifactPattern;
use keyshare_policy::trust::{NamespaceEntry, NamespaceTrust, SignerRef, TrustFormat, TrustSet};
use keyshare_server::publisher::Change;

use crate::http_common::*;

fn p256() -> PKey<Private> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap()
}

fn pem(key: &PKey<Private>) -> String {
    String::from_utf8(key.public_key_to_pem().unwrap()).unwrap()
}

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

fn published_document(f: &Fixture, ns: &str) -> NamespaceTrust {
    published_trust(f).document(ns).unwrap().clone()
}

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
async fn a_maintainer_marks_a_layout_root_key_and_only_that_document_becomes_v3() {
    let f = Fixture::new();
    let app = app!(f);
    create_namespaces(&f, &["team-a", "team-b"]);
    let maintainer = f.maintainer("team-a");
    let (root, plain) = (p256(), p256());
    let (status, v) = call!(
        app,
        Method::POST,
        "/api/v1/namespaces/team-a/keys",
        &maintainer,
        json!({"public_key_pem": pem(&root), "id": "layout-root", "layout_root": true})
    );
    assert_eq!(status, StatusCode::CREATED, "{v}");
    assert_eq!(v["layout_root"], true);
    let (status, v) = call!(
        app,
        Method::POST,
        "/api/v1/namespaces/team-a/keys",
        &maintainer,
        json!({"public_key_pem": pem(&plain), "id": "plain"})
    );
    assert_eq!(status, StatusCode::CREATED, "{v}");
    assert!(v.get("layout_root").is_none(), "{v}");
    let maintainer_b = f.maintainer("team-b");
    let (status, _) = call!(
        app,
        Method::POST,
        "/api/v1/namespaces/team-b/keys",
        &maintainer_b,
        json!({"public_key_pem": pem(&p256()), "id": "b"})
    );
    assert_eq!(status, StatusCode::CREATED);

    let doc = published_document(&f, "team-a");
    assert_eq!(doc.format, TrustFormat::V3);
    let marked: Vec<(&str, bool)> = doc
        .keys
        .iter()
        .map(|k| (k.id.as_str(), k.layout_root))
        .collect();
    assert_eq!(marked, [("layout-root", true), ("plain", false)]);
    // The other namespace's document is unchanged: v1, no such field.
    let b = published_document(&f, "team-b");
    assert_eq!(b.format, TrustFormat::V1);
    assert!(!String::from_utf8(b.to_vec().unwrap())
        .unwrap()
        .contains("layout_root"));
    // The mark changes no decision: both keys sign the namespace's
    // artifacts as before.
    let set = published_trust(&f);
    for id in ["layout-root", "plain"] {
        assert!(set
            .decide(
                "registry.acme.io/team-a/app",
                &[SignerRef::KeyId(KeyId::new(id))],
                NOW,
                NOW,
            )
            .is_trusted());
    }
    // Removing the key brings the document back to v1.
    let (status, _) = call!(
        app,
        Method::DELETE,
        "/api/v1/namespaces/team-a/keys/layout-root",
        &maintainer,
        serde_json::Value::Null
    );
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(published_document(&f, "team-a").format, TrustFormat::V1);
}
