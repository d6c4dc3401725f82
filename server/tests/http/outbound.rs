//! Outbound requests steered inward: a peer URL in `org/peers.json` makes
//! every verifier send requests to it, so the admin API refuses peers on
//! private, loopback and link-local addresses and over plain http — unless
//! the server's configuration allows private addresses (tests, sidecars).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use actix_web::http::{Method, StatusCode};
use serde_json::json;

use crate::http_common::{request, send, Fixture};

/// (URL, accepted where private addresses are allowed)
const INWARD: [(&str, bool); 12] = [
    ("https://169.254.169.254/", true),
    ("https://10.0.0.5/", true),
    ("https://127.0.0.1:8443/", true),
    ("https://[fd00::1]/", true),
    ("https://[fe80::1]/", true),
    ("https://[::ffff:10.0.0.5]/", true),
    ("https://100.64.0.1/", true),
    ("https://localhost:8443/", true),
    ("https://192.168.1.10/", true),
    ("http://127.0.0.1:8080/", true),
    ("http://peer.example/", false),
    ("https://2130706433/", false),
];

fn peer(url: &str) -> serde_json::Value {
    json!({"patterns": ["d.io/**"], "url": url, "root": {"sha256": "ab".repeat(32)}})
}

#[actix_web::test]
async fn outbound_requests_steered_inward_peer_urls_on_private_addresses_are_400_naming_url() {
    let f = Fixture::new();
    let app = app!(f);
    let before = f.published_state();
    for (url, _) in INWARD {
        let answer = send(
            &app,
            request(
                Method::PUT,
                "/api/v1/peers/p",
                Some(&f.admin),
                Some(&peer(url)),
            )
            .to_request(),
        )
        .await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{url}: {}",
            String::from_utf8_lossy(&answer.body)
        );
        let (code, message) = answer.error();
        assert_eq!(code, "invalid", "{url}: {message}");
        assert!(message.starts_with("url"), "{url}: {message}");
        assert!(
            message.contains(url.trim_end_matches('/')),
            "{url}: {message}"
        );
        assert_eq!(
            f.published_state(),
            before,
            "{url}: something was published"
        );
    }
    let answer = send(
        &app,
        request(Method::GET, "/api/v1/peers", Some(&f.admin), None).to_request(),
    )
    .await;
    assert_eq!(answer.json()["peers"], json!([]));

    // A public https peer is fine.
    let answer = send(
        &app,
        request(
            Method::PUT,
            "/api/v1/peers/p",
            Some(&f.admin),
            Some(&peer("https://keyshare.partner.example:8443/base")),
        )
        .to_request(),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.error());
}

#[actix_web::test]
async fn outbound_requests_steered_inward_private_peers_only_where_the_server_allows_them() {
    let mut f = Fixture::new();
    f.state.allow_private_peers = true;
    let app = app!(f);
    for (url, allowed) in INWARD {
        let before = f.published_state();
        let answer = send(
            &app,
            request(
                Method::PUT,
                "/api/v1/peers/p",
                Some(&f.admin),
                Some(&peer(url)),
            )
            .to_request(),
        )
        .await;
        if allowed {
            assert_eq!(answer.status, StatusCode::OK, "{url}: {:?}", answer.error());
            assert_eq!(f.published_state().1, before.1 + 1, "{url}: one publish");
        } else {
            // Plain http to a non-loopback host, or a host that is no host,
            // stays refused.
            assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{url}");
            assert!(answer.error().1.starts_with("url"), "{url}");
            assert_eq!(f.published_state(), before, "{url}");
        }
    }
}
