//! Published files: every version kept, immutable paths never change.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;

use super::support::*;
use keyshare_policy::repo::{File, Options, Repository};
use keyshare_server::store::Error;

#[test]
fn commit_files_are_recorded_with_role_and_version() {
    let s = Scratch::new();
    let mut store = s.open();
    let mut repo = repository();
    let files = repo.commit(T0).unwrap();
    let added = store
        .transaction_at(T0, |tx| tx.record_published(&files))
        .unwrap();
    assert_eq!(added, files.len());
    for f in &files {
        let p = store.published_file(&f.path).unwrap();
        assert_eq!(&p.bytes[..], &f.bytes[..]);
        assert_eq!(p.immutable, f.immutable);
        assert_eq!(p.sha256, keyshare_policy::hash::sha256_hex(&f.bytes));
        assert_eq!(p.created_at, T0);
    }
    let root = store.published_file("metadata/1.root.json").unwrap();
    assert_eq!(
        (root.role.as_deref(), root.version),
        (Some("root"), Some(1))
    );
    let ts = store.published_file("metadata/timestamp.json").unwrap();
    assert_eq!(
        (ts.role.as_deref(), ts.version),
        (Some("timestamp"), Some(1))
    );
    assert!(!ts.immutable);
}

#[test]
fn every_timestamp_version_is_kept_and_the_latest_is_served() {
    let s = Scratch::new();
    let mut store = s.open();
    let mut repo = repository();
    let first = repo.commit(T0).unwrap();
    store
        .transaction_at(T0, |tx| tx.record_published(&first))
        .unwrap();
    let target = repo
        .set_target("targets", "org/peers.json", b"{}", None)
        .unwrap();
    let mut second = repo.commit(T0 + time::Duration::minutes(1)).unwrap();
    second.push(target.clone());
    store
        .transaction_at(T0, |tx| tx.record_published(&second))
        .unwrap();

    let history = store.published_history("metadata/timestamp.json").unwrap();
    let versions: Vec<_> = history.iter().map(|f| f.version).collect();
    assert_eq!(versions, [Some(1), Some(2)]);
    let latest = store
        .latest_published("metadata/timestamp.json")
        .unwrap()
        .unwrap();
    assert_eq!(latest.version, Some(2));
    assert_eq!(
        store.published_file("metadata/timestamp.json").unwrap(),
        latest
    );
    // The first snapshot is still there next to the second.
    assert!(store.published_file("metadata/1.snapshot.json").is_ok());
    assert!(store.published_file("metadata/2.snapshot.json").is_ok());
    let t = store.published_file(&target.path).unwrap();
    assert_eq!((t.role, t.version), (None, None));
    assert_eq!(&t.bytes[..], b"{}");
}

#[test]
fn only_the_current_version_of_a_lineage_is_current() {
    let s = Scratch::new();
    let mut store = s.open();
    let mut repo = repository();
    let a = repo
        .set_target("targets", "org/peers.json", b"{\"a\":1}", None)
        .unwrap();
    let mut first = repo.commit(T0).unwrap();
    first.push(a.clone());
    store
        .transaction_at(T0, |tx| tx.record_published(&first))
        .unwrap();
    assert_eq!(
        store.current_published(&a.path).unwrap().unwrap().bytes,
        b"{\"a\":1}"
    );
    let b = repo
        .set_target("targets", "org/peers.json", b"{\"b\":2}", None)
        .unwrap();
    assert_ne!(a.path, b.path);
    let mut second = repo.commit(T0 + time::Duration::minutes(1)).unwrap();
    second.push(b.clone());
    store
        .transaction_at(T0, |tx| tx.record_published(&second))
        .unwrap();
    // The older version is still published, and no longer current.
    assert!(store.latest_published(&a.path).unwrap().is_some());
    assert!(store.current_published(&a.path).unwrap().is_none());
    assert_eq!(
        store.current_published(&b.path).unwrap().unwrap().bytes,
        b"{\"b\":2}"
    );
    assert!(store
        .current_published("metadata/1.snapshot.json")
        .unwrap()
        .is_none());
    assert!(store
        .current_published("metadata/2.snapshot.json")
        .unwrap()
        .is_some());
    assert!(store
        .current_published("targets/org/nothing.json")
        .unwrap()
        .is_none());
}

#[test]
fn unknown_path_is_not_found_and_has_no_latest() {
    let s = Scratch::new();
    let store = s.open();
    assert_not_found(
        store.published_file("metadata/9.root.json"),
        "published file",
    );
    assert!(store
        .latest_published("metadata/9.root.json")
        .unwrap()
        .is_none());
    assert!(store
        .published_history("metadata/9.root.json")
        .unwrap()
        .is_empty());
}

#[test]
fn same_immutable_file_again_is_skipped_different_bytes_are_refused() {
    let s = Scratch::new();
    let mut store = s.open();
    let files = repository().commit(T0).unwrap();
    store
        .transaction_at(T0, |tx| tx.record_published(&files))
        .unwrap();
    let immutable: Vec<File> = files.iter().filter(|f| f.immutable).cloned().collect();
    let added = store
        .transaction_at(T0, |tx| tx.record_published(&immutable))
        .unwrap();
    assert_eq!(added, 0);

    // Another repository's root 1 under the same path: never overwrite.
    let other = repository().commit(T0).unwrap();
    let other_root: Vec<File> = other
        .into_iter()
        .filter(|f| f.path == "metadata/1.root.json")
        .collect();
    assert_exists(
        store.transaction_at(T0, |tx| tx.record_published(&other_root)),
        "published file",
    );
    assert_eq!(count(&s.path, "published_files"), files.len() as i64);
}

#[test]
fn timestamp_that_does_not_go_up_in_version_is_refused() {
    let s = Scratch::new();
    let mut store = s.open();
    let files = repository().commit(T0).unwrap();
    store
        .transaction_at(T0, |tx| tx.record_published(&files))
        .unwrap();
    // Another repository's timestamp, also version 1.
    let again: Vec<File> = repository()
        .commit(T0)
        .unwrap()
        .into_iter()
        .filter(|f| !f.immutable)
        .collect();
    match store.transaction_at(T0, |tx| tx.record_published(&again)) {
        Err(Error::Invalid { message, .. }) => assert!(message.contains("not newer"), "{message}"),
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[test]
fn bad_paths_and_metadata_that_is_not_metadata_are_invalid() {
    let s = Scratch::new();
    let mut store = s.open();
    let file = |path: &str, bytes: &[u8]| File {
        path: path.into(),
        bytes: bytes.to_vec().into(),
        immutable: true,
    };
    for f in [
        file("../etc/passwd", b"x"),
        file("metadata/../x.json", b"{}"),
        file("other/x", b"x"),
        file("metadata/1.root.json", b"not json"),
        file("metadata/2.root.json", br#"{"signed": {"version": 3}}"#),
        file("metadata/x.txt", b"{}"),
    ] {
        let r = store.transaction_at(T0, |tx| tx.record_published(std::slice::from_ref(&f)));
        assert!(matches!(r, Err(Error::Invalid { .. })), "{}: {r:?}", f.path);
    }
    assert_eq!(count(&s.path, "published_files"), 0);
}

#[test]
fn pruning_removes_only_versions_superseded_before_the_cutoff() {
    let s = Scratch::new();
    let mut store = s.open();
    let mut repo = repository();
    let at = |minutes: i64| T0 + time::Duration::minutes(minutes);
    let publish =
        |store: &mut keyshare_server::store::Store, repo: &mut Repository, bytes: &[u8], t| {
            let target = repo
                .set_target("targets", "org/peers.json", bytes, None)
                .unwrap();
            let mut files = repo.commit(t).unwrap();
            files.push(target);
            store
                .transaction_at(t, |tx| tx.record_published(&files))
                .unwrap();
            files
        };
    let first = publish(&mut store, &mut repo, b"{}", at(0));
    publish(&mut store, &mut repo, b"[]", at(10));
    // Back to the first content: that target file is current again.
    publish(&mut store, &mut repo, b"{}", at(20));
    let peers_first = first
        .iter()
        .find(|f| f.path.starts_with("targets/"))
        .unwrap()
        .path
        .clone();

    let prune = |store: &mut keyshare_server::store::Store, cutoff| {
        store
            .transaction_at(at(30), |tx| tx.prune_superseded(cutoff, None))
            .unwrap()
    };
    // Nothing was superseded before minute 10.
    assert_eq!(prune(&mut store, at(9)), 0);
    // Version 1 of snapshot, targets and timestamp were superseded at 10:
    // one at a time with a limit.
    assert_eq!(
        store
            .transaction_at(at(30), |tx| tx.prune_superseded(at(10), Some(1)))
            .unwrap(),
        1
    );
    assert_eq!(prune(&mut store, at(10)), 2);
    assert!(store
        .latest_published("metadata/1.snapshot.json")
        .unwrap()
        .is_none());
    assert!(store.published_file("metadata/2.snapshot.json").is_ok());
    // Far in the future: only the current version of each file and the
    // roots remain.
    prune(&mut store, at(100_000));
    let current = repo.current_files().unwrap();
    for f in &current {
        assert_eq!(
            &store.published_file(&f.path).unwrap().bytes[..],
            &f.bytes[..],
            "{}",
            f.path
        );
    }
    assert!(store.published_file(&peers_first).is_ok(), "current again");
    assert!(store.published_file("metadata/1.root.json").is_ok());
    assert_eq!(
        count(&s.path, "published_files"),
        current.len() as i64 + 1,
        "current metadata, one target file"
    );
    // What is left restores: a repository served after pruning verifies.
    let last = store.last_published().unwrap().unwrap();
    Repository::restore(&last.as_published(), BTreeMap::new(), Options::default()).unwrap();
}

#[test]
fn last_published_is_none_before_the_first_publish() {
    let s = Scratch::new();
    assert!(s.open().last_published().unwrap().is_none());
}

#[test]
fn last_published_restores_a_repository_that_continues_its_versions() {
    let s = Scratch::new();
    let mut store = s.open();
    let signer = || -> keyshare_policy::repo::SharedSigner {
        std::sync::Arc::new(
            keyshare_policy::sign::InMemorySigner::generate(keyshare_policy::keys::Scheme::Ed25519)
                .unwrap(),
        )
    };
    let (targets, snapshot, timestamp) = (signer(), signer(), signer());
    let mut repo = Repository::create(
        &[signer()],
        1,
        [
            ("targets", vec![targets.clone()]),
            ("snapshot", vec![snapshot.clone()]),
            ("timestamp", vec![timestamp.clone()]),
        ],
        Options::default(),
        T0,
    )
    .unwrap();
    let first = repo.commit(T0).unwrap();
    store
        .transaction_at(T0, |tx| tx.record_published(&first))
        .unwrap();
    let target = repo
        .set_target("targets", "org/peers.json", b"{}", None)
        .unwrap();
    let mut second = repo.commit(T0 + time::Duration::minutes(1)).unwrap();
    second.push(target);
    store
        .transaction_at(T0, |tx| tx.record_published(&second))
        .unwrap();

    let last = store.last_published().unwrap().unwrap();
    assert_eq!(last.roots.len(), 1);
    assert_eq!(
        last.targets.keys().map(String::as_str).collect::<Vec<_>>(),
        ["targets"]
    );
    assert_eq!(
        &last.timestamp[..],
        &store
            .published_file("metadata/timestamp.json")
            .unwrap()
            .bytes[..]
    );
    let signers = BTreeMap::from([
        ("targets".into(), vec![targets]),
        ("snapshot".into(), vec![snapshot]),
        ("timestamp".into(), vec![timestamp]),
    ]);
    let mut restored =
        Repository::restore(&last.as_published(), signers, Options::default()).unwrap();
    assert_eq!(restored.snapshot().unwrap().signed.version, 2);
    assert_eq!(restored.targets("targets").unwrap().signed.version, 2);
    restored
        .set_target("targets", "org/revocations.json", b"{}", None)
        .unwrap();
    let third = restored.commit(T0 + time::Duration::minutes(2)).unwrap();
    let added = store
        .transaction_at(T0, |tx| tx.record_published(&third))
        .unwrap();
    assert_eq!(added, third.len());
    assert_eq!(
        store
            .latest_published("metadata/timestamp.json")
            .unwrap()
            .unwrap()
            .version,
        Some(3)
    );
}
