//! A refresh after one change on the server fetches only what changed:
//! the timestamp, the snapshot, each role whose version changed and the
//! changed trust document (plus the check for a next root), nothing that
//! the cache already holds. The expected requests are derived from what the
//! publish changed (the published file lists before and after), so the
//! test holds whichever role lists the trust document.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::{BTreeMap, BTreeSet};

use keyshare_client::blocking::Verifier;
use keyshare_client::{Options, RootPin};

use crate::common::{new_key, proxy, Server};

/// The published files: path → bytes.
fn published(server: &Server) -> BTreeMap<String, Vec<u8>> {
    server
        .publisher
        .current_files()
        .unwrap()
        .into_iter()
        .map(|f| (f.path, f.bytes.to_vec()))
        .collect()
}

/// `metadata/N.root.json` → N.
fn root_version(path: &str) -> Option<u64> {
    path.strip_prefix("metadata/")?
        .strip_suffix(".root.json")?
        .parse()
        .ok()
}

#[test]
fn a_refresh_after_one_change_fetches_only_what_changed() {
    let server = Server::start();
    let names = ["team-a", "team-b", "team-c", "team-d", "team-e"];
    for name in names {
        server.create_namespace(name, &[&format!("r.io/{name}/**")], 1);
        let (key, _) = new_key();
        server.add_key(name, &format!("{name}-1"), &key, None);
    }
    let http = proxy(&server);
    let cache = tempfile::tempdir().unwrap();
    let verifier = Verifier::new(Options::new(cache.path())).unwrap();
    verifier
        .init(&http.url, RootPin::File(server.root1()), false)
        .unwrap();
    let state = verifier.refresh().unwrap();
    assert_eq!(state.trust_set.namespaces().count(), names.len());
    let first = http.log.lock().unwrap().len();
    http.log.lock().unwrap().clear();

    // One change: a second key in one namespace.
    let before = published(&server);
    let (key, _) = new_key();
    server.add_key("team-c", "team-c-2", &key, None);
    let after = published(&server);

    // What the publish changed: new files under new (versioned or hashed)
    // names, and the timestamp, the one file that changes under its name.
    let mut expected: BTreeSet<String> = after
        .keys()
        .filter(|path| !before.contains_key(*path))
        .cloned()
        .collect();
    assert_ne!(
        before.get("metadata/timestamp.json"),
        after.get("metadata/timestamp.json"),
        "the publish made a new timestamp"
    );
    expected.insert("metadata/timestamp.json".to_owned());
    let trust_documents: Vec<&String> = expected
        .iter()
        .filter(|p| p.starts_with("targets/namespaces/team-c/") && p.ends_with(".trust.json"))
        .collect();
    assert_eq!(
        trust_documents.len(),
        1,
        "one changed trust document: {expected:?}"
    );
    assert!(
        expected.iter().any(|p| p.ends_with(".snapshot.json")),
        "{expected:?}"
    );
    assert!(
        !expected.iter().any(|p| root_version(p).is_some()),
        "no new root: {expected:?}"
    );

    let state = verifier.refresh().unwrap();
    let doc = state
        .trust_set
        .namespaces()
        .find(|ns| ns.namespace.as_str() == "team-c")
        .expect("team-c");
    assert_eq!(doc.keys.len(), 2, "the change is in the new state");

    let log: Vec<String> = http
        .log
        .lock()
        .unwrap()
        .iter()
        .map(|(path, _)| path.clone())
        .collect();
    // The next root is asked for (TUF §5.3.3): not there.
    let root_checks: Vec<&String> = log.iter().filter(|p| root_version(p) == Some(2)).collect();
    assert_eq!(root_checks.len(), 1, "{log:?}");
    let fetched: Vec<&String> = log.iter().filter(|p| root_version(p).is_none()).collect();
    let distinct: BTreeSet<String> = fetched.iter().map(|p| (*p).clone()).collect();
    assert_eq!(
        distinct.len(),
        fetched.len(),
        "a file fetched twice: {log:?}"
    );
    assert_eq!(
        distinct, expected,
        "the second refresh fetched something other than what changed"
    );
    // Today: timestamp, snapshot, the namespace's role (or its bin), the
    // trust document; whatever the layout, a handful, not the repository.
    assert!(
        log.len() <= 4 + root_checks.len(),
        "{} requests after one change: {log:?}",
        log.len()
    );
    assert!(first > 2 * names.len(), "first refresh: {first} requests");

    // The second refresh took the unchanged roles over from the first
    // without reading them; the cache it left still names every one: a
    // new verifier on it (a new process) fetches only the timestamp.
    http.log.lock().unwrap().clear();
    let cold = Verifier::new(Options::new(cache.path())).unwrap();
    let again = cold.refresh().unwrap();
    assert_eq!(again.timestamp_version, state.timestamp_version);
    let log: Vec<String> = http
        .log
        .lock()
        .unwrap()
        .iter()
        .map(|(path, _)| path.clone())
        .filter(|p| root_version(p).is_none())
        .collect();
    assert_eq!(
        log,
        ["metadata/timestamp.json"],
        "a cold refresh of the cache"
    );
}
