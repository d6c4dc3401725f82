//! The read API (the TUF repository), `/healthz` and `/metrics`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use actix_web::http::{Method, StatusCode};
use serde_json::{json, Value};

use crate::http_common::{ed25519_key, request, send, Answer, Fixture, NOW};
use keyshare_policy::client::{target_remote_name, verify_target, TrustedSet};
use keyshare_policy::trust::NamespaceTrust;

const IMMUTABLE: &str = "public, max-age=31536000, immutable";

fn etag_of(bytes: &[u8]) -> String {
    format!("\"{}\"", keyshare_policy::hash::sha256_hex(bytes))
}

fn get(uri: &str) -> actix_web::test::TestRequest {
    request(Method::GET, uri, None, None)
}

#[actix_web::test]
async fn published_files_are_served_with_cache_headers_and_etags() {
    let f = Fixture::new();
    let app = app!(f);

    let root = send(&app, get("/metadata/1.root.json").to_request()).await;
    assert_eq!(root.status, StatusCode::OK);
    assert_eq!(root.header("cache-control"), Some(IMMUTABLE));
    assert_eq!(root.header("etag"), Some(etag_of(&root.body).as_str()));
    assert_eq!(root.header("content-type"), Some("application/json"));
    assert_eq!(root.json()["signed"]["_type"], "root");

    let head = send(
        &app,
        request(Method::HEAD, "/metadata/1.root.json", None, None).to_request(),
    )
    .await;
    assert_eq!(head.status, StatusCode::OK);
    assert_eq!(head.header("etag"), root.header("etag"));
    assert!(head.body.is_empty(), "HEAD answered with a body");

    let ts = send(&app, get("/metadata/timestamp.json").to_request()).await;
    assert_eq!(ts.status, StatusCode::OK);
    assert_eq!(ts.header("cache-control"), Some("no-cache"));
    assert_eq!(ts.header("etag"), Some(etag_of(&ts.body).as_str()));

    // Conditional requests.
    let etag = root.header("etag").unwrap().to_owned();
    for (if_none_match, status) in [
        (etag.clone(), StatusCode::NOT_MODIFIED),
        (format!("W/{etag}"), StatusCode::NOT_MODIFIED),
        (format!("\"other\", {etag}"), StatusCode::NOT_MODIFIED),
        ("*".to_owned(), StatusCode::NOT_MODIFIED),
        ("\"other\"".to_owned(), StatusCode::OK),
    ] {
        let answer = send(
            &app,
            get("/metadata/1.root.json")
                .insert_header(("If-None-Match", if_none_match.clone()))
                .to_request(),
        )
        .await;
        assert_eq!(answer.status, status, "If-None-Match: {if_none_match}");
        assert_eq!(answer.header("etag"), Some(etag.as_str()));
        if status == StatusCode::NOT_MODIFIED {
            assert!(answer.body.is_empty());
            assert_eq!(answer.header("cache-control"), Some(IMMUTABLE));
        }
    }
}

#[actix_web::test]
async fn unknown_files_and_traversal_are_404_json() {
    let f = Fixture::new();
    let app = app!(f);
    for uri in [
        "/metadata/2.root.json",
        "/metadata/nothing.json",
        "/metadata/..",
        "/metadata/.",
        "/metadata/",
        "/metadata",
        "/targets/../metadata/1.root.json",
        "/targets/org/../../metadata/1.root.json",
        "/targets/org//namespaces.json",
        "/targets/",
        "/targets/org/namespaces.json",
        "/targets/%2e%2e/metadata/1.root.json",
        "/nothing",
    ] {
        let answer = send(&app, get(uri).to_request()).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{uri}: {answer:?}");
        assert_eq!(answer.error().0, "not_found", "{uri}");
    }
    let post = send(
        &app,
        request(
            Method::POST,
            "/metadata/1.root.json",
            None,
            Some(&json!({})),
        )
        .to_request(),
    )
    .await;
    assert_eq!(post.status, StatusCode::METHOD_NOT_ALLOWED);
    let _ = post.error();
}

/// The repository reads route themselves (no regular expression per
/// request): every spelling of a path outside the repository, percent-encoded
/// or not, is a 404 JSON answer, a percent-encoded spelling of a published
/// file's name is that file (as actix's path extractor decoded it), other
/// methods are 405, and `/metrics` still names the route.
#[actix_web::test]
async fn encoded_and_dot_paths_stay_inside_the_repository() {
    let f = Fixture::new();
    let app = app!(f);
    // A published target, by its consistent-snapshot name.
    let files = f.publisher.current_files().unwrap();
    let target = files
        .iter()
        .find(|file| file.path.starts_with("targets/org/"))
        .expect("a published org document")
        .clone();
    let doc = format!("/{}", target.path);
    let served = send(&app, get(&doc).to_request()).await;
    assert_eq!(served.status, StatusCode::OK, "{doc}: {served:?}");
    assert_eq!(served.body, target.bytes.to_vec());
    assert_eq!(served.header("cache-control"), Some(IMMUTABLE));
    assert_eq!(served.header("content-type"), Some("application/json"));

    for uri in [
        "/targets/%2e%2e/metadata/1.root.json",
        "/targets/%2E%2E/%2E%2E/metadata/1.root.json",
        "/targets/org%2F..%2F..%2Fmetadata%2F1.root.json",
        "/targets/..%2Fmetadata%2F1.root.json",
        "/targets/%2Fetc%2Fpasswd",
        "/targets/org/%2e/revocations.json",
        "/targets/org%5C..%5C..%5Cmetadata%5C1.root.json",
        "/targets/org/%00",
        "/targets/org/%0a",
        "/targets/%ff%fe",
        "/targets/%",
        "/targets/%2",
        "/targets",
        "/metadata/..%2F..%2Fmetadata%2F1.root.json",
        "/metadata/%2e%2e",
        "/metadata/%2E",
        "/metadata/%2F1.root.json",
        "/metadata/a/1.root.json",
        "/metadata/1.root.json/",
        "/metadata/%",
        "/metadatax/1.root.json",
        "/targetsx/org/revocations.json",
    ] {
        let answer = send(&app, get(uri).to_request()).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{uri}: {answer:?}");
        assert_eq!(answer.error().0, "not_found", "{uri}");
    }

    // Percent-encoded spellings of published names are the same files.
    let root = send(&app, get("/metadata/1.root.json").to_request()).await;
    for uri in ["/metadata/1.root%2Ejson", "/metadata/%31.root.json"] {
        let answer = send(&app, get(uri).to_request()).await;
        assert_eq!(answer.status, StatusCode::OK, "{uri}: {answer:?}");
        assert_eq!(answer.body, root.body, "{uri}");
    }
    let encoded = doc.replacen("/org/", "/org%2F", 1);
    let answer = send(&app, get(&encoded).to_request()).await;
    assert_eq!(answer.status, StatusCode::OK, "{encoded}: {answer:?}");
    assert_eq!(answer.body, target.bytes.to_vec());

    // HEAD: headers only; other methods: 405 on both prefixes.
    let head = send(&app, request(Method::HEAD, &doc, None, None).to_request()).await;
    assert_eq!(head.status, StatusCode::OK);
    assert_eq!(head.header("etag"), served.header("etag"));
    assert!(head.body.is_empty(), "HEAD answered with a body");
    for (method, uri) in [
        (Method::PUT, doc.as_str()),
        (Method::DELETE, "/metadata/1.root.json"),
        (Method::POST, "/targets/org/anything.json"),
    ] {
        let answer = send(&app, request(method.clone(), uri, None, None).to_request()).await;
        assert_eq!(
            answer.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {uri}: {answer:?}"
        );
        assert_eq!(answer.error().0, "method_not_allowed");
    }

    // The route labels of `/metrics` are the routes' patterns.
    assert_eq!(f.state.metrics.requests("/targets/{path:.*}", 200), 3);
    assert_eq!(f.state.metrics.requests("/targets/{path:.*}", 405), 2);
    assert_eq!(f.state.metrics.requests("/metadata/{file}", 200), 3);
    assert_eq!(f.state.metrics.requests("/metadata/{file}", 405), 1);
}

/// Fetches a file through the app and fails on anything but 200.
macro_rules! fetch {
    ($app:expr, $path:expr) => {{
        let path: &str = &$path;
        let answer: Answer = send($app, get(path).to_request()).await;
        assert_eq!(answer.status, StatusCode::OK, "{path}: {answer:?}");
        answer.body
    }};
}

#[actix_web::test]
async fn an_admin_change_is_served_and_reachable_through_the_tuf_chain() {
    let f = Fixture::new();
    let app = app!(f);
    let root = send(&app, get("/metadata/1.root.json").to_request())
        .await
        .body;
    let version_before = f.timestamp_version();

    let admin = Some(f.admin.as_str());
    let created = send(
        &app,
        request(
            Method::POST,
            "/api/v1/namespaces",
            admin,
            Some(&json!({"name": "team-a", "scopes": ["r.io/team-a/**"], "maintainers": ["leads@acme"]})),
        )
        .to_request(),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{created:?}");
    let key = ed25519_key();
    let added = send(
        &app,
        request(
            Method::POST,
            "/api/v1/namespaces/team-a/keys",
            admin,
            Some(&json!({"key": key, "id": "release"})),
        )
        .to_request(),
    )
    .await;
    assert_eq!(added.status, StatusCode::CREATED, "{added:?}");

    // The new timestamp is served.
    let ts_bytes = fetch!(&app, "/metadata/timestamp.json");
    let ts: Value = serde_json::from_slice(&ts_bytes).unwrap();
    let version = ts["signed"]["version"].as_u64().unwrap();
    assert!(version > version_before);
    assert_eq!(version, f.timestamp_version());

    // Follow timestamp -> snapshot -> targets -> bin -> team-a -> trust.json as a client.
    let mut trusted = TrustedSet::new(&root, NOW).unwrap();
    trusted.update_timestamp(&ts_bytes).unwrap();
    let snapshot_version = trusted.timestamp().unwrap().meta["snapshot.json"].version;
    let snapshot = fetch!(&app, &format!("/metadata/{snapshot_version}.snapshot.json"));
    trusted.update_snapshot(&snapshot, false).unwrap();
    let meta = trusted.snapshot().unwrap().meta.clone();
    let targets = fetch!(
        &app,
        &format!("/metadata/{}.targets.json", meta["targets.json"].version)
    );
    trusted.update_targets(&targets).unwrap();
    let path = "namespaces/team-a/trust.json";
    let bins = keyshare_policy::trust::namespace_bins(vec![], std::num::NonZeroU32::MIN);
    let bin = bins.role_for_target(path);
    let bin_bytes = fetch!(
        &app,
        &format!(
            "/metadata/{}.{bin}.json",
            meta[&format!("{bin}.json")].version
        )
    );
    trusted
        .update_delegated_targets(&bin_bytes, bin.as_str(), "targets")
        .unwrap();
    // The trust document is listed in its bin; there is no namespace role.
    assert!(!meta.contains_key("team-a.json"), "{meta:?}");
    let file = trusted.targets(bin.as_str()).unwrap().targets[path].clone();
    let remote = target_remote_name(path, &file, true);
    let bytes = fetch!(&app, &format!("/targets/{remote}"));
    verify_target(&file, path, &bytes).unwrap();
    let doc = NamespaceTrust::from_target(path, &bytes).unwrap();
    assert_eq!(doc.keys.len(), 1);
    assert_eq!(doc.keys[0].id.as_str(), "release");

    // Target files are immutable too.
    let answer = send(&app, get(&format!("/targets/{remote}")).to_request()).await;
    assert_eq!(answer.header("cache-control"), Some(IMMUTABLE));

    // The org index lists the namespace, and resolve finds it.
    let resolved = send(
        &app,
        request(
            Method::GET,
            "/api/v1/resolve?artifact=r.io/team-a/app",
            admin,
            None,
        )
        .to_request(),
    )
    .await
    .json();
    assert_eq!(
        resolved,
        json!({"kind": "namespace", "namespace": "team-a", "scope": "r.io/team-a/**"})
    );
}

#[actix_web::test]
async fn healthz_and_metrics_need_no_token() {
    let f = Fixture::new();
    let app = app!(f);
    let health = send(&app, get("/healthz").to_request()).await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.json(), json!({"status": "ok"}));

    let _ = send(&app, get("/metadata/1.root.json").to_request()).await;
    let _ = send(&app, get("/metadata/9.root.json").to_request()).await;
    let metrics = send(&app, get("/metrics").to_request()).await;
    assert_eq!(metrics.status, StatusCode::OK);
    assert!(metrics
        .header("content-type")
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let text = String::from_utf8(metrics.body).unwrap();
    for line in [
        "keyshare_http_requests_total{route=\"/metadata/{file}\",status=\"200\"} 1",
        "keyshare_http_requests_total{route=\"/metadata/{file}\",status=\"404\"} 1",
        "keyshare_http_requests_total{route=\"/healthz\",status=\"200\"} 1",
        "# TYPE keyshare_publish_total counter",
        "keyshare_metadata_version{role=\"timestamp\"} ",
        "keyshare_metadata_version{role=\"root\"} 1",
        "keyshare_publish_seconds_total ",
        "keyshare_expiry_horizon_seconds ",
    ] {
        assert!(text.contains(line), "missing `{line}` in:\n{text}");
    }
    // The earliest expiry is the timestamp's, one day after NOW.
    let horizon: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("keyshare_expiry_horizon_seconds "))
        .unwrap()
        .parse()
        .unwrap();
    assert!((horizon - 86_400.0).abs() < 1.0, "{horizon}");
    assert_eq!(f.state.metrics.requests("/healthz", 200), 1);
}

/// A flood of unauthenticated requests for files not in memory (made-up
/// target paths) while the publisher's lock is held, as a publish holds
/// it: at most `STORE_LOOKUPS_AT_ONCE` of them wait at the lock; the rest
/// wait for a turn without a thread, are counted in `/metrics`, and are
/// all answered 404 once the lock is free. The next root, asked for by
/// every client, is answered from memory even while the lock is held.
#[actix_web::test]
async fn a_flood_of_reads_missing_the_cache_takes_few_turns_at_the_store() {
    use keyshare_server::publisher::STORE_LOOKUPS_AT_ONCE;
    let f = Fixture::new();
    let app = app!(f);
    let (release, released) = std::sync::mpsc::channel::<()>();
    let (held_tx, held) = std::sync::mpsc::channel::<()>();
    let publisher = f.publisher.clone();
    let holder = std::thread::spawn(move || {
        publisher.read(|_| {
            held_tx.send(()).unwrap();
            released.recv().unwrap();
        });
    });
    held.recv().unwrap();
    // Answered from memory although the lock is held.
    let next_root = actix_web::rt::time::timeout(
        std::time::Duration::from_secs(30),
        send(
            &app,
            request(Method::GET, "/metadata/2.root.json", None, None).to_request(),
        ),
    )
    .await
    .expect("answered without waiting for the publisher's lock");
    assert_eq!(next_root.status, StatusCode::NOT_FOUND);
    let flood = 40;
    let requests = futures_util::future::join_all((0..flood).map(|i| {
        let uri = format!("/targets/namespaces/x/{:064x}.trust.json", i);
        send(&app, request(Method::GET, &uri, None, None).to_request())
    }));
    let watch = async {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let (running, waiting) = f.publisher.store_lookups();
            assert!(running <= STORE_LOOKUPS_AT_ONCE, "{running} at the store");
            if running == STORE_LOOKUPS_AT_ONCE && waiting == flood - STORE_LOOKUPS_AT_ONCE {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "running {running}, waiting {waiting}"
            );
            actix_web::rt::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let metrics = send(
            &app,
            request(Method::GET, "/metrics", None, None).to_request(),
        )
        .await;
        let text = String::from_utf8_lossy(&metrics.body).into_owned();
        assert!(
            text.contains(&format!(
                "keyshare_read_store_lookups_waiting {}",
                flood - STORE_LOOKUPS_AT_ONCE
            )),
            "{text}"
        );
        release.send(()).unwrap();
    };
    let (answers, ()) = futures_util::future::join(requests, watch).await;
    holder.join().unwrap();
    assert!(answers.iter().all(|a| a.status == StatusCode::NOT_FOUND));
    assert_eq!(f.publisher.store_lookups(), (0, 0));
}
