//! How keys stand in `GET /api/v1/namespaces/{ns}`: a revoked key must not
//! look active. Each key carries `state`, `expired`, `expires_soon` and the
//! `revocation` that applies to it (by the organization or by the
//! namespace, when and why, whether in effect yet); keys expiring within
//! `?expiring_within=` (default 30 days) are flagged.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use actix_web::http::{Method, StatusCode};
use serde_json::{json, Value};
use time::Duration;

use crate::http_common::*;

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// The key listed under `id` in a namespace view.
fn key<'a>(view: &'a Value, id: &str) -> &'a Value {
    view["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == id)
        .unwrap_or_else(|| panic!("no key {id} in {view}"))
}

#[actix_web::test]
async fn namespace_view_shows_revoked_keys_as_revoked_with_who_when_and_why() {
    let f = Fixture::new();
    let app = app!(f);
    let admin = f.admin.clone();
    let (status, v) = call!(
        app,
        Method::POST,
        "/api/v1/namespaces",
        &admin,
        json!({"name": "team-a", "scopes": ["registry.acme.io/team-a/**"]})
    );
    assert_eq!(status, StatusCode::CREATED, "{v}");
    let maintainer = f.maintainer("team-a");
    // (id, not_after)
    let keys = [
        ("org-revoked", None),
        ("ns-revoked", None),
        ("revoked-later", None),
        ("expiring", Some(NOW + Duration::days(10))),
        ("long-lived", Some(NOW + Duration::days(60))),
        ("no-expiry", None),
    ];
    for (id, not_after) in keys {
        let mut body = json!({"public_key_pem": public_pem("p256"), "id": id});
        if let Some(t) = not_after {
            body["not_after"] = json!(rfc3339(t));
        }
        let (status, v) = call!(
            app,
            Method::POST,
            "/api/v1/namespaces/team-a/keys",
            &maintainer,
            body
        );
        assert_eq!(status, StatusCode::CREATED, "{id}: {v}");
    }
    let org_at = NOW - Duration::hours(2);
    let (status, v) = call!(
        app,
        Method::POST,
        "/api/v1/revocations",
        &admin,
        json!({"key_id": "org-revoked", "namespace": "team-a", "reason": "key leaked", "revoked_at": rfc3339(org_at)})
    );
    assert_eq!(status, StatusCode::CREATED, "{v}");
    let ns_at = NOW - Duration::hours(1);
    for (id, at, reason) in [
        ("ns-revoked", ns_at, "laptop stolen"),
        ("revoked-later", NOW + Duration::days(1), "rotating out"),
    ] {
        let (status, v) = call!(
            app,
            Method::POST,
            "/api/v1/namespaces/team-a/revocations",
            &maintainer,
            json!({"key_id": id, "reason": reason, "revoked_at": rfc3339(at)})
        );
        assert_eq!(status, StatusCode::CREATED, "{id}: {v}");
    }

    let (status, view) = call!(
        app,
        Method::GET,
        "/api/v1/namespaces/team-a",
        &maintainer,
        Value::Null
    );
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["expiring_within_seconds"], 30 * 86_400);

    let k = key(&view, "org-revoked");
    assert_eq!(k["state"], "revoked", "{k}");
    assert_eq!(
        k["revocation"],
        json!({"by": "organization", "revoked_at": rfc3339(org_at), "reason": "key leaked", "in_effect": true})
    );
    let k = key(&view, "ns-revoked");
    assert_eq!(k["state"], "revoked", "{k}");
    assert_eq!(
        k["revocation"],
        json!({"by": "namespace", "revoked_at": rfc3339(ns_at), "reason": "laptop stolen", "in_effect": true})
    );
    // A revocation still to come is shown; the key is not revoked yet.
    let k = key(&view, "revoked-later");
    assert_eq!(k["state"], "active", "{k}");
    assert_eq!(k["revocation"]["in_effect"], false, "{k}");
    assert_eq!(k["revocation"]["reason"], "rotating out", "{k}");

    let k = key(&view, "expiring");
    assert_eq!(
        (&k["state"], &k["expires_soon"], &k["expired"]),
        (&json!("expires_soon"), &json!(true), &json!(false)),
        "{k}"
    );
    for id in ["long-lived", "no-expiry"] {
        let k = key(&view, id);
        assert_eq!(k["state"], "active", "{k}");
        assert_eq!(k["expires_soon"], false, "{k}");
        assert_eq!(k["revocation"], Value::Null, "{k}");
    }
    // The namespace's own revocations are listed with the view.
    let own: Vec<&str> = view["revocations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["key_id"].as_str().unwrap())
        .collect();
    assert_eq!(own.len(), 2, "{view}");
    assert!(
        own.contains(&"ns-revoked") && own.contains(&"revoked-later"),
        "{own:?}"
    );

    // The horizon is the caller's: 90 days flags the 60-day key, 1 day
    // flags nothing.
    let (status, view) = call!(
        app,
        Method::GET,
        "/api/v1/namespaces/team-a?expiring_within=90d",
        &maintainer,
        Value::Null
    );
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(key(&view, "long-lived")["state"], "expires_soon");
    assert_eq!(view["expiring_within_seconds"], 90 * 86_400);
    let (_, view) = call!(
        app,
        Method::GET,
        "/api/v1/namespaces/team-a?expiring_within=1d",
        &maintainer,
        Value::Null
    );
    assert_eq!(key(&view, "expiring")["state"], "active");
    // Revoked stays revoked whatever the horizon.
    assert_eq!(key(&view, "ns-revoked")["state"], "revoked");
}

#[actix_web::test]
async fn a_bad_expiring_within_is_refused_naming_the_parameter() {
    let f = Fixture::new();
    let app = app!(f);
    let admin = f.admin.clone();
    let (status, _) = call!(
        app,
        Method::POST,
        "/api/v1/namespaces",
        &admin,
        json!({"name": "team-a", "scopes": ["registry.acme.io/team-a/**"]})
    );
    assert_eq!(status, StatusCode::CREATED);
    // (query, what the message names)
    let table = [
        ("expiring_within=", "expiring_within"),
        ("expiring_within=soon", "expiring_within"),
        ("expiring_within=-1d", "expiring_within"),
        ("expiring_within=0s", "expiring_within"),
        ("expiring_within=99999999w", "expiring_within"),
        ("expires=30d", "expires"),
    ];
    for (query, names) in table {
        let (status, v) = call!(
            app,
            Method::GET,
            &format!("/api/v1/namespaces/team-a?{query}"),
            &admin,
            Value::Null
        );
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {v}");
        assert_eq!(v["error"]["code"], "invalid", "{query}: {v}");
        let message = v["error"]["message"].as_str().unwrap();
        assert!(message.contains(names), "{query}: {message}");
    }
}
