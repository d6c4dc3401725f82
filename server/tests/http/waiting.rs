//! Waiting for the next publish: `GET /metadata/timestamp.json` with
//! `If-None-Match` and `Prefer: wait=N` (a long poll), its cap, and the
//! plain answers a static mirror (or a client that does not ask to wait)
//! gets.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::http::{Method, StatusCode};

use crate::http_common::{request, send, Answer, Fixture, NOW};
use keyshare_policy::pattern::ArtifactPattern;
use keyshare_policy::trust::{NamespaceEntry, NamespaceName};
use keyshare_server::http::read::Waiters;
use keyshare_server::publisher::{Change, Publisher};

const TIMESTAMP: &str = "/metadata/timestamp.json";

/// The current timestamp and its `ETag`.
macro_rules! current {
    ($app:expr) => {{
        let now = send(
            $app,
            request(Method::GET, TIMESTAMP, None, None).to_request(),
        )
        .await;
        let etag = now.header("etag").unwrap().to_owned();
        (now, etag)
    }};
}

fn wait_for_next(etag: &str, prefer: &str) -> actix_web::test::TestRequest {
    request(Method::GET, TIMESTAMP, None, None)
        .insert_header(("If-None-Match", etag.to_owned()))
        .insert_header(("Prefer", prefer.to_owned()))
}

fn version(a: &Answer) -> u64 {
    a.json()["signed"]["version"].as_u64().unwrap()
}

fn applied(a: &Answer) -> Option<&str> {
    a.headers
        .get("preference-applied")
        .map(|v| v.to_str().unwrap())
}

/// Publishes a new namespace `name` from another thread after `after`.
fn publish_later(
    publisher: Arc<Publisher>,
    name: &str,
    after: Duration,
) -> std::thread::JoinHandle<()> {
    let name = name.to_owned();
    std::thread::spawn(move || {
        std::thread::sleep(after);
        publisher
            .apply(
                "test",
                Change::CreateNamespace {
                    entry: NamespaceEntry {
                        name: NamespaceName::parse(&name).unwrap(),
                        scopes: vec![ArtifactPattern::parse(&format!("acme/{name}/**")).unwrap()],
                        maintainers: vec![],
                    },
                    threshold: NonZeroU32::MIN,
                    allow_overlap: false,
                },
                NOW,
            )
            .unwrap();
    })
}

#[actix_web::test]
async fn a_waiting_reader_gets_the_next_timestamp_as_soon_as_it_is_published() {
    let f = Fixture::new();
    let app = app!(f);
    let (now, etag) = current!(&app);

    let publishing = publish_later(f.publisher.clone(), "team-a", Duration::from_millis(300));
    let started = Instant::now();
    let next = send(&app, wait_for_next(&etag, "wait=1000").to_request()).await;
    publishing.join().unwrap();
    assert_eq!(next.status, StatusCode::OK);
    assert_eq!(version(&next), version(&now) + 1);
    assert_ne!(next.header("etag").unwrap(), etag);
    // Capped at 60 seconds, and answered long before the wait ended.
    assert_eq!(applied(&next), Some("wait=60"));
    assert!(started.elapsed() < Duration::from_secs(60));
    assert_eq!(
        next.body,
        &f.publisher.file("metadata/timestamp.json").unwrap().bytes[..]
    );
}

#[actix_web::test]
async fn a_wait_with_no_publish_ends_in_not_modified() {
    let f = Fixture::new();
    let app = app!(f);
    let (_, etag) = current!(&app);
    let started = Instant::now();
    let a = send(&app, wait_for_next(&etag, "wait=1").to_request()).await;
    assert_eq!(a.status, StatusCode::NOT_MODIFIED);
    assert_eq!(applied(&a), Some("wait=1"));
    assert_eq!(a.header("etag"), Some(etag.as_str()));
    assert!(started.elapsed() >= Duration::from_millis(900), "it waited");
}

#[actix_web::test]
async fn a_reader_with_an_old_copy_or_no_wait_is_answered_at_once() {
    let f = Fixture::new();
    let app = app!(f);
    let (now, etag) = current!(&app);

    // An old copy: the current timestamp, without waiting.
    let a = send(&app, wait_for_next("\"0000\"", "wait=60").to_request()).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(version(&a), version(&now));
    assert_eq!(applied(&a), None);

    // No wait asked (a plain poll, what a static mirror answers), a wait
    // that is not a number of seconds, wait=0, or HEAD: 304 at once.
    let plain = request(Method::GET, TIMESTAMP, None, None)
        .insert_header(("If-None-Match", etag.clone()))
        .to_request();
    for req in [
        plain,
        wait_for_next(&etag, "wait=soon").to_request(),
        wait_for_next(&etag, "wait=0").to_request(),
        wait_for_next(&etag, "respond-async, wait=-5").to_request(),
        request(Method::HEAD, TIMESTAMP, None, None)
            .insert_header(("If-None-Match", etag.clone()))
            .insert_header(("Prefer", "wait=60"))
            .to_request(),
    ] {
        let started = Instant::now();
        let a = send(&app, req).await;
        assert_eq!(a.status, StatusCode::NOT_MODIFIED);
        assert_eq!(applied(&a), None);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "answered at once"
        );
    }
    // Waiting is for the timestamp only: other files answer at once.
    let a = send(
        &app,
        request(Method::GET, "/metadata/1.root.json", None, None)
            .insert_header(("Prefer", "wait=60"))
            .to_request(),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(applied(&a), None);
}

#[actix_web::test]
async fn past_max_waiters_a_wait_is_refused_with_503_and_counted() {
    let mut f = Fixture::new();
    f.state.waiters = Arc::new(Waiters::new(1));
    let app = app!(f);
    let (_, etag) = current!(&app);

    let (first, second) = tokio::join!(
        send(&app, wait_for_next(&etag, "wait=2").to_request()),
        async {
            actix_web::rt::time::sleep(Duration::from_millis(300)).await;
            let refused = send(&app, wait_for_next(&etag, "wait=2").to_request()).await;
            let metrics = send(
                &app,
                request(Method::GET, "/metrics", None, None).to_request(),
            )
            .await;
            (refused, String::from_utf8(metrics.body).unwrap())
        }
    );
    let (refused, metrics) = second;
    assert_eq!(first.status, StatusCode::NOT_MODIFIED);
    assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(refused.error().0, "too_many_waiters");
    assert_eq!(refused.header("retry-after"), Some("1"));
    assert!(metrics.contains("keyshare_read_waiters 1\n"), "{metrics}");
    assert!(
        metrics.contains("keyshare_read_waiters_max 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("keyshare_read_waiters_refused_total 1\n"),
        "{metrics}"
    );
    // The place is given back when the wait ends.
    let metrics = send(
        &app,
        request(Method::GET, "/metrics", None, None).to_request(),
    )
    .await;
    let metrics = String::from_utf8(metrics.body).unwrap();
    assert!(metrics.contains("keyshare_read_waiters 0\n"), "{metrics}");
    // With a cap of 0 waiting is off: answered at once, as a mirror would.
    let mut f = Fixture::new();
    f.state.waiters = Arc::new(Waiters::new(0));
    let app = app!(f);
    let (_, etag) = current!(&app);
    let a = send(&app, wait_for_next(&etag, "wait=2").to_request()).await;
    assert_eq!(a.status, StatusCode::NOT_MODIFIED);
    assert_eq!(applied(&a), None);
}
