//! Trusted timestamp authorities over the admin API: an org admin lists a
//! TSA (its CA, or its own certificate) and it is published in
//! `org/tsas.json`; a private key, a certificate that is neither a CA nor a
//! TSA certificate, and garbage are refused with one line naming the field;
//! maintainers cannot touch the list.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use actix_web::http::{Method, StatusCode};
use serde_json::{json, Value};

use keyshare_policy::hash::sha256_hex;
use keyshare_policy::trust::Tsas;
use keyshare_testkit::CertBuilder;

use crate::http_common::*;

/// `org/tsas.json` as published (under its consistent-snapshot name).
fn published(f: &Fixture) -> Option<Tsas> {
    let doc = f.publisher.read(|s| s.tsas_document()).unwrap();
    let bytes = doc.to_vec().unwrap();
    let file = f
        .publisher
        .file(&format!("targets/org/{}.tsas.json", sha256_hex(&bytes)))?;
    Some(Tsas::from_slice(&file.bytes).unwrap())
}

#[actix_web::test]
async fn an_org_admin_lists_a_tsa_and_it_is_published_in_org_tsas_json() {
    let f = Fixture::new();
    let app = app!(f);
    let ca = ca_pem("acme TSA CA");
    let (status, v) = call!(
        app,
        Method::PUT,
        "/api/v1/tsas/acme-tsa",
        &f.admin,
        json!({"certificate": ca, "description": "the server's own"})
    );
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["name"], "acme-tsa");
    assert!(
        v["subject"].as_str().unwrap().contains("acme TSA CA"),
        "{v}"
    );
    let doc = published(&f).expect("org/tsas.json is published");
    assert_eq!(doc.tsas.len(), 1);
    assert_eq!(doc.tsas[0].name, "acme-tsa");
    assert_eq!(doc.tsas[0].certificate.pem(), ca);
    assert_eq!(doc.tsas[0].description.as_deref(), Some("the server's own"));

    let (status, v) = call!(app, Method::GET, "/api/v1/tsas", &f.admin, Value::Null);
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["tsas"][0]["name"], "acme-tsa");

    // The same certificate under a second name is refused.
    let (status, v) = call!(
        app,
        Method::PUT,
        "/api/v1/tsas/again",
        &f.admin,
        json!({"certificate": ca})
    );
    assert_eq!(status, StatusCode::CONFLICT, "{v}");

    let (status, _) = call!(
        app,
        Method::DELETE,
        "/api/v1/tsas/acme-tsa",
        &f.admin,
        Value::Null
    );
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(published(&f).expect("republished").tsas.is_empty());
    let (status, _) = call!(
        app,
        Method::DELETE,
        "/api/v1/tsas/acme-tsa",
        &f.admin,
        Value::Null
    );
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[actix_web::test]
async fn a_private_key_a_plain_leaf_and_garbage_are_refused_naming_the_certificate() {
    let f = Fixture::new();
    let app = app!(f);
    let leaf = CertBuilder::new("not a TSA").build();
    let with_key = format!("{}{}", ca_pem("ca"), leaf.key_pem());
    for (what, pem, says) in [
        ("private key", leaf.key_pem(), "private key"),
        ("certificate and key", with_key, "private key"),
        (
            "plain leaf",
            leaf.pem(),
            "neither a CA certificate nor a TSA certificate",
        ),
        ("garbage", "hello".to_owned(), "PEM certificate"),
    ] {
        let (status, v) = call!(
            app,
            Method::PUT,
            "/api/v1/tsas/t",
            &f.admin,
            json!({"certificate": pem})
        );
        assert_eq!(status, StatusCode::BAD_REQUEST, "{what}: {v}");
        let message = v["error"]["message"].as_str().unwrap();
        assert!(message.contains("certificate"), "{what}: {message}");
        assert!(message.contains(says), "{what}: {message}");
        assert!(!message.contains('\n'), "{what}: one line: {message}");
    }
    assert!(published(&f).is_none(), "nothing was published");
}

#[actix_web::test]
async fn a_maintainer_cannot_add_or_remove_a_tsa() {
    let f = Fixture::new();
    let app = app!(f);
    let (status, _) = call!(
        app,
        Method::PUT,
        "/api/v1/tsas/t1",
        &f.admin,
        json!({"certificate": ca_pem("tsa")})
    );
    assert_eq!(status, StatusCode::OK);
    let maintainer = {
        let (s, _) = call!(
            app,
            Method::POST,
            "/api/v1/namespaces",
            &f.admin,
            json!({"name": "a", "scopes": ["r.io/a/**"]})
        );
        assert_eq!(s, StatusCode::CREATED);
        f.maintainer("a")
    };
    let (status, _) = call!(
        app,
        Method::PUT,
        "/api/v1/tsas/mine",
        &maintainer,
        json!({"certificate": ca_pem("my tsa")})
    );
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = call!(
        app,
        Method::DELETE,
        "/api/v1/tsas/t1",
        &maintainer,
        Value::Null
    );
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(published(&f).unwrap().tsas.len(), 1);
}
