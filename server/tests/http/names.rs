//! Names that collide with the repository's own roles: a namespace's TUF
//! role is named like the namespace, so `targets` or `bins-00` (one of the
//! 256 hashed-bin roles every namespace is delegated through) cannot name
//! one. Each is a 400 naming the field and the reason, and nothing is
//! published.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use crate::http_common;

use actix_web::http::{Method, StatusCode};
use serde_json::json;

use http_common::{request, send, Fixture};

#[actix_web::test]
async fn reserved_names_of_the_repositorys_roles_are_refused_with_400_and_nothing_is_published() {
    let f = Fixture::new();
    let app = app!(f);
    let before = f.published_state();
    let cases = [
        ("bins-00", "hashed-bin roles"),
        ("bins-ff", "hashed-bin roles"),
        ("bins-7a", "hashed-bin roles"),
        // The bins of a repository of 1,024 or 4,096 bins.
        ("bins-000", "hashed-bin roles"),
        ("bins-100", "hashed-bin roles"),
        ("bins-3ff", "hashed-bin roles"),
        ("bins-fff", "hashed-bin roles"),
        ("targets", "top-level roles"),
        ("root", "top-level roles"),
        ("snapshot", "top-level roles"),
        ("timestamp", "top-level roles"),
    ];
    for (name, reason) in cases {
        let body = json!({"name": name, "scopes": [format!("r.io/{name}/**")]});
        let answer = send(
            &app,
            request(
                Method::POST,
                "/api/v1/namespaces",
                Some(&f.admin),
                Some(&body),
            )
            .to_request(),
        )
        .await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{name}: {}",
            String::from_utf8_lossy(&answer.body)
        );
        let (code, message) = answer.error();
        assert_eq!(code, "invalid", "{name}: {message}");
        assert!(message.starts_with("name"), "{name}: {message}");
        assert!(
            message.contains(&format!(
                "`{name}` is reserved: it names one of the repository's {reason}"
            )),
            "{name}: {message}"
        );
        assert_eq!(
            f.published_state(),
            before,
            "{name}: something was published"
        );

        // Nor can a token be scoped to it, and asking for it is a 404.
        let token = json!({"kind": "maintainer", "namespace": name});
        let answer = send(
            &app,
            request(Method::POST, "/api/v1/tokens", Some(&f.admin), Some(&token)).to_request(),
        )
        .await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{name}");
        assert!(answer.error().1.contains("is reserved"), "{name}");
        let answer = send(
            &app,
            request(
                Method::GET,
                &format!("/api/v1/namespaces/{name}"),
                Some(&f.admin),
                None,
            )
            .to_request(),
        )
        .await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{name}");
    }
    assert_eq!(f.published_state(), before);

    // Names that only look like a role's are ordinary namespaces.
    for name in ["bins-0", "bins-1000", "bins", "targets-a"] {
        let body = json!({"name": name, "scopes": [format!("r.io/{name}/**")]});
        let answer = send(
            &app,
            request(
                Method::POST,
                "/api/v1/namespaces",
                Some(&f.admin),
                Some(&body),
            )
            .to_request(),
        )
        .await;
        assert_eq!(
            answer.status,
            StatusCode::CREATED,
            "{name}: {}",
            String::from_utf8_lossy(&answer.body)
        );
    }
}

#[actix_web::test]
async fn reserved_names_do_not_bind_organization_roots_which_are_files_not_roles() {
    // `org/roots/<name>.pem` is a file, not a role: `root` is a fine name
    // for an organization root.
    let f = Fixture::new();
    let app = app!(f);
    let body = json!({"pem": http_common::ca_pem("org root")});
    let answer = send(
        &app,
        request(
            Method::PUT,
            "/api/v1/roots/root",
            Some(&f.admin),
            Some(&body),
        )
        .to_request(),
    )
    .await;
    assert!(
        answer.status.is_success(),
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
}
