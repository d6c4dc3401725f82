#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

//! `POST /api/v1/export`: the bundle for an org admin, JSON errors for bad
//! windows and bodies (who may call it is in http_auth.rs).

use actix_web::http::{Method, StatusCode};
use serde_json::json;

use crate::http_common::{request, send, Fixture, NOW};
use keyshare_airgap::{open_bundle, Anchor};

#[actix_web::test]
async fn org_admin_gets_a_bundle_that_verifies_against_the_pinned_root() {
    let f = Fixture::new();
    let app = app!(f);
    let answer = send(
        &app,
        request(Method::POST, "/api/v1/export", Some(&f.admin), None).to_request(),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        answer.header("content-type"),
        Some("application/octet-stream")
    );
    let root = f.publisher.file("metadata/1.root.json").unwrap();
    let verified = open_bundle(
        std::sync::Arc::new(answer.body.to_vec()),
        Anchor {
            pinned_root: &root.bytes,
            previous: None,
        },
        NOW,
        &mut |_, _| {},
    )
    .unwrap();
    // The default window: airgap.valid_for (7 days).
    assert_eq!(verified.expires(), NOW + time::Duration::days(7));
    let audit = f.publisher.read(|s| s.audit_records(0, 1000)).unwrap();
    let last = audit.last().unwrap();
    assert_eq!(last.action, "airgap.export");
    assert!(last.actor.starts_with("token:"), "{}", last.actor);
}

#[actix_web::test]
async fn bad_windows_and_bodies_are_400_and_publish_nothing() {
    let f = Fixture::new();
    let app = app!(f);
    let before = f.published_state();
    for (body, field) in [
        (json!({"valid_for": "31d"}), "valid_for"),
        (json!({"valid_for": "0s"}), "valid_for"),
        (json!({"valid_for": "tomorrow"}), "valid_for"),
        (json!({"valid_for": 30}), "valid_for"),
        (json!({"window": "1d"}), "window"),
    ] {
        let answer = send(
            &app,
            request(Method::POST, "/api/v1/export", Some(&f.admin), Some(&body)).to_request(),
        )
        .await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{body}: {answer:?}");
        let (code, message) = answer.error();
        assert_eq!(code, "invalid");
        assert!(message.contains(field), "{body}: {message}");
    }
    assert_eq!(f.published_state(), before);
}
