//! Attacks through HTTP: a canned server in front of a real repository
//! serves altered bytes. Each refresh is refused with its reason, and the
//! cache is left exactly in its last good state (byte for byte), from which
//! `decide` still answers.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::print_stdout,
    clippy::print_stderr
)]

use crate::common;

use serde_json::Value;
use time::{Duration, OffsetDateTime};

use common::{new_key, proxy, Canned, Client, Reply, Server};

const APP: &str = "registry.acme.io/team-a/app";

/// A repository created three days ago (so its first timestamp has
/// expired), with namespace team-a listing key k1, behind a canned
/// server; a client that refreshed through it.
struct Scene {
    server: Server,
    canned: Canned,
    client: Client,
    /// The first timestamp (version 1, expired).
    ts_v1: Vec<u8>,
}

impl Scene {
    fn new() -> Self {
        let server = Server::start_at(OffsetDateTime::now_utc() - Duration::days(3));
        let ts_v1 = server.file("metadata/timestamp.json").unwrap();
        server.create_namespace("team-a", &["registry.acme.io/team-a/**"], 1);
        let (k1, _) = new_key();
        server.add_key("team-a", "k1", &k1, None);
        let canned = proxy(&server);
        let client = Client::new();
        client.init(&canned.url, &server.root1_sha256());
        client.run(&["refresh"]).assert_ok();
        assert_eq!(client.decide_json(APP, &["--key-id", "k1"]).0, 0);
        Self {
            server,
            canned,
            client,
            ts_v1,
        }
    }

    /// `refresh` fails with one line containing `expected`; the cache is
    /// unchanged and `decide` still answers from it.
    fn refused(&self, expected: &str, extra: &[&str]) {
        let before = self.client.snapshot();
        let mut args = vec!["refresh"];
        args.extend_from_slice(extra);
        let run = self.client.run(&args);
        let line = run.assert_error_line(1);
        assert!(line.contains(expected), "expected `{expected}` in: {line}");
        assert!(before == self.client.snapshot(), "the cache changed");
        assert_eq!(self.client.decide_json(APP, &["--key-id", "k1"]).0, 0);
    }

    fn timestamp(&self) -> Vec<u8> {
        self.server.file("metadata/timestamp.json").unwrap()
    }

    fn snapshot_meta(&self, role: &str) -> u64 {
        let ts: Value = serde_json::from_slice(&self.timestamp()).unwrap();
        let v = ts["signed"]["meta"]["snapshot.json"]["version"]
            .as_u64()
            .unwrap();
        let snap: Value = serde_json::from_slice(
            &self
                .server
                .file(&format!("metadata/{v}.snapshot.json"))
                .unwrap(),
        )
        .unwrap();
        snap["signed"]["meta"][format!("{role}.json")]["version"]
            .as_u64()
            .unwrap()
    }

    /// The published path of `namespaces/<ns>/trust.json` now.
    fn trust_doc_path(&self, ns: &str) -> String {
        let prefix = format!("targets/namespaces/{ns}/");
        self.server
            .publisher
            .current_files()
            .unwrap()
            .into_iter()
            .map(|f| f.path)
            .find(|p| p.starts_with(&prefix) && p.ends_with(".trust.json"))
            .unwrap()
    }
}

#[test]
fn rollback_of_the_timestamp_is_refused() {
    let scene = Scene::new();
    let old = scene.timestamp();
    let (k2, _) = new_key();
    scene.server.add_key("team-a", "k2", &k2, None);
    scene.client.run(&["refresh"]).assert_ok();
    scene
        .canned
        .set("metadata/timestamp.json", Reply::Bytes(old));
    scene.refused("rollback", &[]);
}

#[test]
fn a_frozen_expired_timestamp_is_refused() {
    let scene = Scene::new();
    // A client that has only the pinned root, offered the repository as it
    // was three days ago: the timestamp has expired.
    let fresh = Client::new();
    fresh.init(&scene.canned.url, &scene.server.root1_sha256());
    scene
        .canned
        .set("metadata/timestamp.json", Reply::Bytes(scene.ts_v1.clone()));
    let before = fresh.snapshot();
    let run = fresh.run(&["refresh"]);
    let line = run.assert_error_line(1);
    assert!(line.contains("timestamp: expired at"), "{line}");
    assert!(before == fresh.snapshot());
    // The client with newer metadata sees a rollback.
    scene.refused("rollback", &[]);
}

#[test]
fn mix_and_match_of_the_bin_listing_a_namespace_is_refused() {
    // The role that lists team-a's trust document is its hashed bin: an
    // older version of it served under the new version's name is refused.
    let scene = Scene::new();
    let bin = scene
        .server
        .publisher
        .trust_role(&keyshare_policy::trust::NamespaceName::parse("team-a").unwrap());
    let v = scene.snapshot_meta(bin.as_str());
    let old = scene
        .server
        .file(&format!("metadata/{v}.{bin}.json"))
        .unwrap();
    let (k2, _) = new_key();
    scene.server.add_key("team-a", "k2", &k2, None);
    let new = scene.snapshot_meta(bin.as_str());
    assert!(new > v);
    scene
        .canned
        .set(&format!("metadata/{new}.{bin}.json"), Reply::Bytes(old));
    scene.refused("does not match version", &[]);
}

#[test]
fn a_trust_document_with_the_wrong_hash_is_refused() {
    let scene = Scene::new();
    let (k2, _) = new_key();
    scene.server.add_key("team-a", "k2", &k2, None);
    let path = scene.trust_doc_path("team-a");
    let mut bytes = scene.server.file(&path).unwrap();
    let i = bytes.len() / 2;
    bytes[i] ^= 0x01;
    scene.canned.set(&path, Reply::Bytes(bytes));
    scene.refused("hash does not match", &[]);
    // Longer than listed: refused on length.
    scene.canned.set(&path, Reply::Endless);
    scene.refused("does not match listed length", &[]);
}

#[test]
fn endless_and_slow_answers_are_cut_off() {
    let scene = Scene::new();
    scene.canned.set("metadata/timestamp.json", Reply::Endless);
    scene.refused("over the 16384 byte limit", &[]);
    scene.canned.set("metadata/timestamp.json", Reply::Slow);
    scene.refused("timed out", &["--timeout", "1"]);
}

#[test]
fn redirects_are_followed_only_when_temporary_and_within_the_origin() {
    let scene = Scene::new();
    let (k2, _) = new_key();
    scene.server.add_key("team-a", "k2", &k2, None);
    let timestamp = scene.server.file("metadata/timestamp.json").unwrap();
    scene
        .canned
        .set("moved/timestamp.json", Reply::Bytes(timestamp));
    let moved = format!("{}/moved/timestamp.json", scene.canned.url);
    for status in [301, 308] {
        scene.canned.set(
            "metadata/timestamp.json",
            Reply::Redirect(status, moved.clone()),
        );
        scene.refused(&format!("HTTP {status}"), &[]);
    }
    // Another host, another port (the real server, which would answer),
    // another scheme: not followed.
    let port = scene.canned.url.rsplit(':').next().unwrap().to_owned();
    for elsewhere in [
        "http://keyshare.example/metadata/timestamp.json".to_owned(),
        format!("{}/metadata/timestamp.json", scene.server.url),
        format!("http://localhost:{port}/moved/timestamp.json"),
        format!("https://127.0.0.1:{port}/moved/timestamp.json"),
    ] {
        scene.canned.set(
            "metadata/timestamp.json",
            Reply::Redirect(302, elsewhere.clone()),
        );
        scene.refused("same scheme, host and port", &[]);
    }
    for status in [302, 303, 307] {
        scene.canned.set(
            "metadata/timestamp.json",
            Reply::Redirect(status, moved.clone()),
        );
        scene.client.run(&["refresh"]).assert_ok();
    }
    assert_eq!(scene.client.decide_json(APP, &["--key-id", "k2"]).0, 0);
}

#[test]
fn an_unchanged_timestamp_is_answered_304_and_kept() {
    // The real server answers If-None-Match with 304: two refreshes in a
    // row leave the cache as it was.
    let server = Server::start();
    server.create_namespace("team-a", &["registry.acme.io/team-a/**"], 1);
    let client = Client::new();
    client.init(&server.url, &server.root1_sha256());
    client.run(&["refresh"]).assert_ok();
    let state: Value =
        serde_json::from_slice(&std::fs::read(client.cache().join("origin/state.json")).unwrap())
            .unwrap();
    assert!(state["timestamp_etag"].is_string(), "{state}");
    let before = client.snapshot();
    client.run(&["refresh"]).assert_ok();
    assert!(before == client.snapshot());
}

#[test]
fn the_timestamp_is_fetched_with_if_none_match_and_a_304_keeps_it() {
    let scene = Scene::new();
    let tag = "\"ts-1\"".to_owned();
    scene.canned.set(
        "metadata/timestamp.json",
        Reply::Tagged(scene.timestamp(), tag.clone()),
    );
    scene.client.run(&["refresh"]).assert_ok();
    let before = scene.client.snapshot();
    scene.canned.log.lock().unwrap().clear();
    scene.client.run(&["refresh"]).assert_ok();
    let log = scene.canned.log.lock().unwrap().clone();
    // The next root (none), then the timestamp, conditionally, answered
    // 304: nothing else is fetched.
    assert_eq!(
        log,
        vec![
            ("metadata/2.root.json".to_owned(), None),
            ("metadata/timestamp.json".to_owned(), Some(tag)),
        ],
        "{log:?}"
    );
    assert!(before == scene.client.snapshot());
    // A 304 to a request that asked nothing conditional is refused.
    let fresh = Client::new();
    fresh.init(&scene.canned.url, &scene.server.root1_sha256());
    scene
        .canned
        .set("metadata/timestamp.json", Reply::Status(304));
    let run = fresh.run(&["refresh"]);
    assert!(run.assert_error_line(1).contains("HTTP 304"), "{run:?}");
}

#[test]
fn a_root_pin_is_met_only_by_those_exact_bytes_within_a_bounded_search() {
    let server = Server::start();
    let k2 = common::signer();
    let v2 = server.rotate_root(&server.root_key, &k2);
    let sha = keyshare_policy::hash::sha256_hex;
    let init = |url: &str, extra: &[&str]| {
        let client = Client::new();
        let mut args = vec!["init", "--server", url];
        args.extend_from_slice(extra);
        let run = client.run(&args);
        (client, run)
    };

    // The same root v2, re-serialised (same content, same signatures, other
    // bytes), does not meet a pin on the file.
    let canned = proxy(&server);
    let value: Value = serde_json::from_slice(&v2).unwrap();
    canned.set(
        "metadata/2.root.json",
        Reply::Bytes(serde_json::to_vec(&value).unwrap()),
    );
    let (client, run) = init(&canned.url, &["--root-sha256", &sha(&v2)]);
    let line = run.assert_error_line(1);
    assert!(line.contains("root pin mismatch"), "{line}");
    assert!(line.contains(&sha(&v2)), "{line}");
    assert!(client.snapshot().is_empty(), "nothing is pinned");

    // A pin naming the wrong version is refused with the file it looked at.
    let (client, run) = init(
        &server.url,
        &["--root-sha256", &sha(&v2), "--root-version", "1"],
    );
    let line = run.assert_error_line(1);
    assert!(line.contains("root pin mismatch"), "{line}");
    assert!(line.contains("/metadata/1.root.json"), "{line}");
    assert!(client.snapshot().is_empty(), "nothing is pinned");

    // A server that answers every N.root.json (never a 404) is asked a
    // bounded number of times.
    let v1 = server.root1();
    let endless = Canned::start(std::sync::Arc::new(move |_: &str| Reply::Bytes(v1.clone())));
    let (client, run) = init(&endless.url, &["--root-sha256", &"ab".repeat(32)]);
    let line = run.assert_error_line(1);
    assert!(line.contains("root pin mismatch"), "{line}");
    let asked = endless.log.lock().unwrap().len();
    assert!((2..=257).contains(&asked), "{asked} roots requested");
    assert!(client.snapshot().is_empty(), "nothing is pinned");

    // Version 0 is not a root version.
    let (client, run) = init(
        &server.url,
        &["--root-sha256", &sha(&v2), "--root-version", "0"],
    );
    assert!(
        run.assert_error_line(1).contains("--root-version"),
        "{run:?}"
    );
    assert!(client.snapshot().is_empty(), "nothing is pinned");
}
