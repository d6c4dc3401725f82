//! A CI token past its expiry gets no delegation: the CI endpoints refuse
//! it like a revoked one, with 401 naming the expiry. A revoked one is
//! refused from the next request on, and one whose namespace was deleted
//! gets nothing from a namespace made again under that name.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use actix_web::http::{Method, StatusCode};
use actix_web::test::TestRequest;
use time::Duration;

use crate::ci_common::{create_namespaces, delegation_body, job_key, CiFixture};
use crate::http_common::{ns_name, request, send, NOW};
use keyshare_policy::sign::InMemorySigner;
use keyshare_server::publisher::Change;
use keyshare_server::store::TokenKind;

/// A fresh nonce from the app.
macro_rules! fresh_nonce {
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

/// A delegation request in `team-a` with CI token `token`.
fn delegation(token: &str, nonce: &str, key: &InMemorySigner) -> TestRequest {
    request(
        Method::POST,
        "/api/v1/ci/delegations",
        Some(token),
        Some(&delegation_body(nonce, "team-a", key)),
    )
}

#[actix_web::test]
async fn an_expired_ci_token_gets_no_delegation() {
    let fx = CiFixture::new();
    let new =
        fx.f.publisher
            .create_token_expiring(
                "test",
                TokenKind::Ci(vec![ns_name("team-a")]),
                None,
                Some(NOW + Duration::minutes(5)),
                NOW,
            )
            .unwrap();
    let token = new.secret.expose().to_owned();
    let app = app!(fx.f);
    let delegate = |nonce: &str, key| delegation(&token, nonce, key).to_request();

    // Before the expiry it works.
    let key = job_key();
    let n = fresh_nonce!(&app);
    let a = send(&app, delegate(&n, &key)).await;
    assert_eq!(a.status, StatusCode::CREATED, "{:?}", a.json());

    // At the expiry it does not, and nothing is listed.
    fx.clock.set(NOW + Duration::minutes(5));
    let keys_before = fx.f.publisher.read(|s| s.keys("team-a")).unwrap().len();
    let key = job_key();
    let n = fresh_nonce!(&app);
    let a = send(&app, delegate(&n, &key)).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{:?}", a.json());
    let (_, message) = a.error();
    assert!(
        message.contains(&format!(
            "token `{}` expired at 2030-01-01T12:05:00Z",
            new.token.id
        )),
        "{message}"
    );
    assert_eq!(
        fx.f.publisher.read(|s| s.keys("team-a")).unwrap().len(),
        keys_before
    );
}

/// CI tokens are looked up on the CI service's own read connection (not
/// under the publisher's lock): a revocation is seen by the very next
/// request, and the token's last use is still recorded.
#[actix_web::test]
async fn a_revoked_ci_token_gets_no_delegation_from_the_next_request_on() {
    let fx = CiFixture::new();
    let new = fx.team_a_token();
    let token = new.secret.expose().to_owned();
    let app = app!(fx.f);
    let delegate = |nonce: &str, key| delegation(&token, nonce, key).to_request();
    let stored = || fx.f.publisher.read(|s| s.token(&new.token.id)).unwrap();
    assert_eq!(stored().last_used_at, None);

    let (first, second) = (job_key(), job_key());
    let n = fresh_nonce!(&app);
    let a = send(&app, delegate(&n, &first)).await;
    assert_eq!(a.status, StatusCode::CREATED, "{:?}", a.json());
    assert_eq!(stored().last_used_at, Some(NOW));

    fx.f.publisher
        .revoke_token("test", &new.token.id, NOW)
        .unwrap();
    let keys_before = fx.f.publisher.read(|s| s.keys("team-a")).unwrap().len();
    let n = fresh_nonce!(&app);
    let a = send(&app, delegate(&n, &second)).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{:?}", a.json());
    assert_eq!(
        fx.f.publisher.read(|s| s.keys("team-a")).unwrap().len(),
        keys_before
    );
}

/// A CI token's namespaces are kept in memory after its first use. Deleting
/// one of them revokes the token, so a namespace made again under the same
/// name grants the kept token nothing: the revocation is checked before the
/// kept scope is read.
#[actix_web::test]
async fn a_ci_token_kept_in_memory_gets_nothing_from_a_namespace_deleted_and_made_again() {
    let fx = CiFixture::new();
    let new = fx.team_a_token();
    let token = new.secret.expose().to_owned();
    let app = app!(fx.f);
    let delegate = |nonce: &str, key| delegation(&token, nonce, key).to_request();
    let (first, second) = (job_key(), job_key());
    let n = fresh_nonce!(&app);
    let a = send(&app, delegate(&n, &first)).await;
    assert_eq!(a.status, StatusCode::CREATED, "{:?}", a.json());

    fx.f.publisher
        .apply(
            "admin",
            Change::DeleteNamespace {
                namespace: ns_name("team-a"),
            },
            NOW,
        )
        .unwrap();
    create_namespaces(&fx.f.publisher, &["team-a"]);
    assert!(fx
        .f
        .publisher
        .read(|s| s.keys("team-a"))
        .unwrap()
        .is_empty());

    let n = fresh_nonce!(&app);
    let a = send(&app, delegate(&n, &second)).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{:?}", a.json());
    assert!(fx
        .f
        .publisher
        .read(|s| s.keys("team-a"))
        .unwrap()
        .is_empty());
}
