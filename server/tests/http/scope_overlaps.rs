//! Overlapping scopes: a namespace whose scope would match artifact names
//! another namespace's scope matches (and so take those the more specific
//! pattern wins, or quietly own every name nobody else claims) is refused
//! with 409 naming the namespaces and who would win, unless an admin allows
//! the overlap explicitly; the audit record says so. The same holds for
//! widening a namespace (`POST /api/v1/namespaces/{ns}/scopes`), which
//! only org admins may do.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use actix_web::http::{Method, StatusCode};
use serde_json::{json, Value};

use crate::http_common::*;

/// Creates a namespace over HTTP as an org admin; returns status and body.
macro_rules! create {
    ($app:expr, $f:expr, $body:expr) => {
        call!(
            $app,
            Method::POST,
            "/api/v1/namespaces",
            &$f.admin.clone(),
            $body
        )
    };
}

macro_rules! resolve {
    ($app:expr, $f:expr, $artifact:expr) => {{
        let (status, v) = call!(
            $app,
            Method::GET,
            &format!("/api/v1/resolve?artifact={}", $artifact),
            &$f.admin.clone(),
            Value::Null
        );
        assert_eq!(status, StatusCode::OK, "{v}");
        v["namespace"].as_str().unwrap().to_owned()
    }};
}

#[actix_web::test]
async fn overlapping_scope_that_would_take_another_teams_artifact_is_refused_naming_team_and_winner(
) {
    let f = Fixture::new();
    let app = app!(f);
    let (status, _) = create!(
        app,
        f,
        json!({"name": "team-a", "scopes": ["registry.acme.io/team-a/**"]})
    );
    assert_eq!(status, StatusCode::CREATED);
    let before = f.published_state();
    let (status, v) = create!(
        app,
        f,
        json!({"name": "team-d", "scopes": ["registry.acme.io/team-a/app"]})
    );
    assert_eq!(status, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["error"]["code"], "scope_overlap");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("`registry.acme.io/team-a/app` and `registry.acme.io/team-a/**` of `team-a` both match `registry.acme.io/team-a/app`, which `team-d` would own"),
        "{message}"
    );
    assert!(
        message.contains("allow the overlap explicitly"),
        "{message}"
    );
    assert_eq!(
        v["error"]["details"],
        json!({
            "namespace": "team-d",
            "overlaps": {
                "namespace_count": 1,
                "namespaces": ["team-a"],
                "pair_count": 1,
                "sample": [{
                    "scope": "registry.acme.io/team-a/app",
                    "namespace": "team-a",
                    "other_scope": "registry.acme.io/team-a/**",
                    "example": "registry.acme.io/team-a/app",
                    "winner": "team-d",
                }],
            },
        })
    );
    // Nothing was created or published; team-a still owns its artifact.
    assert_eq!(f.published_state(), before);
    assert_eq!(resolve!(app, f, "registry.acme.io/team-a/app"), "team-a");
    let (status, _) = call!(
        app,
        Method::GET,
        "/api/v1/namespaces/team-d",
        &f.admin.clone(),
        Value::Null
    );
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[actix_web::test]
async fn a_catch_all_scope_is_refused_naming_every_namespace_it_overlaps() {
    let f = Fixture::new();
    let app = app!(f);
    for name in ["team-a", "team-b", "team-c"] {
        let (status, _) = create!(
            app,
            f,
            json!({"name": name, "scopes": [format!("registry.acme.io/{name}/**")]})
        );
        assert_eq!(status, StatusCode::CREATED);
    }
    let (status, _) = create!(
        app,
        f,
        json!({"name": "other", "scopes": ["ghcr.io/acme/**"]})
    );
    assert_eq!(status, StatusCode::CREATED);
    let (status, v) = create!(
        app,
        f,
        json!({"name": "broad", "scopes": ["registry.acme.io/**"]})
    );
    assert_eq!(status, StatusCode::CONFLICT, "{v}");
    let overlaps = &v["error"]["details"]["overlaps"];
    assert_eq!(overlaps["namespace_count"], 3);
    assert_eq!(
        overlaps["namespaces"],
        json!(["team-a", "team-b", "team-c"])
    );
    // The teams' more specific scopes keep their names; `broad` would get
    // every other name under registry.acme.io.
    for pair in overlaps["sample"].as_array().unwrap() {
        assert_eq!(pair["winner"], pair["namespace"], "{pair}");
        assert_eq!(pair["scope"], "registry.acme.io/**");
    }
    let message = v["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("3 other namespaces (`team-a`, `team-b`, `team-c`)"),
        "{message}"
    );
}

#[actix_web::test]
async fn an_explicitly_allowed_overlap_is_created_and_the_audit_record_says_so() {
    let f = Fixture::new();
    let app = app!(f);
    let (status, _) = create!(
        app,
        f,
        json!({"name": "team-a", "scopes": ["registry.acme.io/team-a/**"]})
    );
    assert_eq!(status, StatusCode::CREATED);
    let (head, _) = f.published_state();
    let (status, v) = create!(
        app,
        f,
        json!({"name": "team-d", "scopes": ["registry.acme.io/team-a/app"], "allow_overlap": true})
    );
    assert_eq!(status, StatusCode::CREATED, "{v}");
    assert_eq!(v["overlaps"]["namespaces"], json!(["team-a"]), "{v}");
    assert_eq!(v["overlaps"]["sample"][0]["winner"], "team-d");
    assert_eq!(resolve!(app, f, "registry.acme.io/team-a/app"), "team-d");
    assert_eq!(resolve!(app, f, "registry.acme.io/team-a/other"), "team-a");
    let record = f
        .publisher
        .read(|s| s.audit_records(head.records, 10))
        .unwrap()
        .pop()
        .unwrap();
    assert_eq!(record.action, "namespace.create");
    assert_eq!(record.details["allow_overlap"], true);
    assert_eq!(record.details["overlaps"]["namespaces"], json!(["team-a"]));
    assert_eq!(
        record.details["overlaps"]["sample"][0]["other_scope"],
        "registry.acme.io/team-a/**"
    );
    // An ordinary create records neither.
    let (head, _) = f.published_state();
    let (status, _) = create!(
        app,
        f,
        json!({"name": "team-b", "scopes": ["registry.acme.io/team-b/**"]})
    );
    assert_eq!(status, StatusCode::CREATED);
    let record = f
        .publisher
        .read(|s| s.audit_records(head.records, 10))
        .unwrap()
        .pop()
        .unwrap();
    assert!(
        record.details.get("allow_overlap").is_none(),
        "{}",
        record.details
    );
    assert!(
        record.details.get("overlaps").is_none(),
        "{}",
        record.details
    );
}

#[actix_web::test]
async fn scopes_that_only_look_alike_do_not_overlap() {
    let f = Fixture::new();
    let app = app!(f);
    let (status, _) = create!(
        app,
        f,
        json!({"name": "team-a", "scopes": ["registry.acme.io/team-a/**", "ghcr.io/acme/team-a-*"]})
    );
    assert_eq!(status, StatusCode::CREATED);
    // Each of these shares a prefix with a scope of team-a, yet no name
    // matches both.
    for (name, scope) in [
        ("team-ab", "registry.acme.io/team-ab/**"),
        ("root-io", "registry.acme.io"),
        ("team-b", "ghcr.io/acme/team-b-*"),
        ("one-char", "registry.acme.io/team-?"),
        ("deep", "ghcr.io/acme/team-a-x/**"),
    ] {
        let (status, v) = create!(app, f, json!({"name": name, "scopes": [scope]}));
        assert_eq!(status, StatusCode::CREATED, "{scope}: {v}");
    }
    // While these do, across `*`, `?` and classes.
    for (name, scope, other) in [
        ("s1", "registry.acme.io/*/app", "registry.acme.io/team-a/**"),
        ("s2", "ghcr.io/acme/team-[a-c]-x", "ghcr.io/acme/team-a-*"),
        ("s3", "**/app", "registry.acme.io/team-a/**"),
    ] {
        let (status, v) = create!(app, f, json!({"name": name, "scopes": [scope]}));
        assert_eq!(status, StatusCode::CONFLICT, "{scope}: {v}");
        let sample = &v["error"]["details"]["overlaps"]["sample"];
        let found = sample
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["other_scope"] == other);
        assert!(found, "{scope}: {v}");
    }
}

#[actix_web::test]
async fn allow_overlap_must_be_a_boolean() {
    let f = Fixture::new();
    let app = app!(f);
    let before = f.published_state();
    let (status, v) = create!(
        app,
        f,
        json!({"name": "team-a", "scopes": ["r.io/a/**"], "allow_overlap": "yes"})
    );
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["error"]["code"], "invalid");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("allow_overlap"),
        "{v}"
    );
    assert_eq!(f.published_state(), before);
}

/// `POST /api/v1/namespaces/{ns}/scopes` as `token`.
macro_rules! widen {
    ($app:expr, $token:expr, $ns:expr, $body:expr) => {
        call!(
            $app,
            Method::POST,
            &format!("/api/v1/namespaces/{}/scopes", $ns),
            $token,
            $body
        )
    };
}

#[actix_web::test]
async fn widening_a_namespace_into_another_teams_names_is_refused_unless_allowed_and_audited() {
    let f = Fixture::new();
    let app = app!(f);
    for name in ["team-a", "team-b"] {
        let (status, _) = create!(
            app,
            f,
            json!({"name": name, "scopes": [format!("registry.acme.io/{name}/**")]})
        );
        assert_eq!(status, StatusCode::CREATED);
    }
    let admin = f.admin.clone();
    let before = f.published_state();
    let (status, v) = widen!(
        app,
        &admin,
        "team-b",
        json!({"scopes": ["registry.acme.io/team-a/app"]})
    );
    assert_eq!(status, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["error"]["code"], "scope_overlap");
    assert_eq!(v["error"]["details"]["namespace"], "team-b");
    assert_eq!(
        v["error"]["details"]["overlaps"]["namespaces"],
        json!(["team-a"])
    );
    assert_eq!(
        v["error"]["details"]["overlaps"]["sample"][0]["winner"],
        "team-b"
    );
    let message = v["error"]["message"].as_str().unwrap();
    assert!(message.contains("`team-a`"), "{message}");
    assert!(
        message.contains("allow the overlap explicitly"),
        "{message}"
    );
    assert_eq!(f.published_state(), before, "a refused widening published");
    assert_eq!(resolve!(app, f, "registry.acme.io/team-a/app"), "team-a");

    // Allowed explicitly: made, answered with the overlaps, audited.
    let (head, _) = f.published_state();
    let (status, v) = widen!(
        app,
        &admin,
        "team-b",
        json!({"scopes": ["registry.acme.io/team-a/app"], "allow_overlap": true})
    );
    assert_eq!(status, StatusCode::CREATED, "{v}");
    assert_eq!(
        v["scopes"],
        json!(["registry.acme.io/team-b/**", "registry.acme.io/team-a/app"])
    );
    assert_eq!(v["overlaps"]["namespaces"], json!(["team-a"]), "{v}");
    assert_eq!(resolve!(app, f, "registry.acme.io/team-a/app"), "team-b");
    assert_eq!(resolve!(app, f, "registry.acme.io/team-a/lib"), "team-a");
    let record = f
        .publisher
        .read(|s| s.audit_records(head.records, 10))
        .unwrap()
        .pop()
        .unwrap();
    assert_eq!(record.action, "namespace.scopes");
    assert_eq!(record.subject, "team-b");
    assert_eq!(
        record.details["added"],
        json!(["registry.acme.io/team-a/app"])
    );
    assert_eq!(record.details["allow_overlap"], true);
    assert_eq!(record.details["overlaps"]["namespaces"], json!(["team-a"]));

    // A widening that overlaps nobody needs no permission and records none.
    let (head, _) = f.published_state();
    let (status, v) = widen!(
        app,
        &admin,
        "team-b",
        json!({"scopes": ["ghcr.io/acme/team-b/**"]})
    );
    assert_eq!(status, StatusCode::CREATED, "{v}");
    let record = f
        .publisher
        .read(|s| s.audit_records(head.records, 10))
        .unwrap()
        .pop()
        .unwrap();
    assert!(
        record.details.get("overlaps").is_none(),
        "{}",
        record.details
    );
    assert!(
        record.details.get("allow_overlap").is_none(),
        "{}",
        record.details
    );
}

#[actix_web::test]
async fn a_maintainer_cannot_widen_their_own_namespace_into_another_teams_names() {
    let f = Fixture::new();
    let app = app!(f);
    for name in ["team-a", "team-b"] {
        let (status, _) = create!(
            app,
            f,
            json!({"name": name, "scopes": [format!("registry.acme.io/{name}/**")]})
        );
        assert_eq!(status, StatusCode::CREATED);
    }
    let maintainer_b = f.maintainer("team-b");
    let before = f.published_state();
    for body in [
        json!({"scopes": ["registry.acme.io/team-a/app"], "allow_overlap": true}),
        json!({"scopes": ["registry.acme.io/team-b2/**"]}),
    ] {
        let (status, v) = widen!(app, &maintainer_b, "team-b", body);
        assert_eq!(status, StatusCode::FORBIDDEN, "{v}");
        assert_eq!(v["error"]["code"], "forbidden");
    }
    assert_eq!(f.published_state(), before);
    assert_eq!(resolve!(app, f, "registry.acme.io/team-a/app"), "team-a");
}

#[actix_web::test]
async fn bad_widening_requests_are_refused_naming_the_problem() {
    let f = Fixture::new();
    let app = app!(f);
    let (status, _) = create!(
        app,
        f,
        json!({"name": "team-a", "scopes": ["registry.acme.io/team-a/**"]})
    );
    assert_eq!(status, StatusCode::CREATED);
    let admin = f.admin.clone();
    let before = f.published_state();
    // (namespace, body, status, what the message names)
    let table: [(&str, Value, StatusCode, &str); 8] = [
        (
            "team-a",
            json!({"scopes": []}),
            StatusCode::BAD_REQUEST,
            "scopes",
        ),
        ("team-a", json!({}), StatusCode::BAD_REQUEST, "scopes"),
        (
            "team-a",
            json!({"scopes": ["registry.acme.io/team-a/**"]}),
            StatusCode::BAD_REQUEST,
            "already a scope",
        ),
        (
            "team-a",
            json!({"scopes": ["ghcr.io/x/**", "ghcr.io/x/**"]}),
            StatusCode::BAD_REQUEST,
            "scopes[1]",
        ),
        (
            "team-a",
            json!({"scopes": ["ghcr.io/x/***"]}),
            StatusCode::BAD_REQUEST,
            "scopes",
        ),
        (
            "team-a",
            json!({"scopes": ["ghcr.io/x/**"], "allow_overlap": "yes"}),
            StatusCode::BAD_REQUEST,
            "allow_overlap",
        ),
        (
            "team-a",
            json!({"scopes": ["ghcr.io/x/**"], "threshold": 2}),
            StatusCode::BAD_REQUEST,
            "threshold",
        ),
        (
            "nobody",
            json!({"scopes": ["ghcr.io/x/**"]}),
            StatusCode::NOT_FOUND,
            "nobody",
        ),
    ];
    for (ns, body, want, names) in table {
        let (status, v) = widen!(app, &admin, ns, body.clone());
        assert_eq!(status, want, "{body}: {v}");
        let message = v["error"]["message"].as_str().unwrap();
        assert!(message.contains(names), "{body}: {message}");
    }
    assert_eq!(f.published_state(), before);
}
