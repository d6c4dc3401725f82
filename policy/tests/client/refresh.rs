//! The client refresh on well-formed repositories: each key scheme, the
//! cache rules (reuse, partial progress), root rotation and file names.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use crate::common;

use common::{Client, Repo};
use keyshare_policy::client::{CacheOp, Lookup, Source, Step, Updater};
use keyshare_policy::keys::Scheme;
use keyshare_policy::Error;

fn refresh_and_lookup_with(scheme: Scheme) {
    let mut repo = Repo::new(scheme);
    repo.add_target("targets", "org/revocations.json", b"{\"revoked\":[]}");
    repo.delegate("targets", "team-a", &["namespaces/team-a/*"], false);
    repo.add_target("team-a", "namespaces/team-a/trust.json", b"{\"keys\":[]}");
    repo.publish();

    let mut client = Client::new(&repo);
    assert_eq!(
        client.fetch_target(&repo, "org/revocations.json"),
        "targets"
    );
    assert_eq!(
        client.fetch_target(&repo, "namespaces/team-a/trust.json"),
        "team-a"
    );
    for name in [
        "timestamp.json",
        "snapshot.json",
        "targets.json",
        "team-a.json",
    ] {
        assert!(client.cache.contains_key(name), "{name} not cached");
    }
}

#[test]
fn refresh_and_lookup_with_ed25519_keys() {
    refresh_and_lookup_with(Scheme::Ed25519);
}

#[test]
fn refresh_and_lookup_with_ecdsa_p256_keys() {
    refresh_and_lookup_with(Scheme::EcdsaP256Sha256);
}

#[test]
fn refresh_and_lookup_with_rsa_pss_keys() {
    refresh_and_lookup_with(Scheme::RsaPssSha256);
}

#[test]
fn first_refresh_requests_files_in_the_specification_order() {
    let repo = Repo::new(Scheme::Ed25519);
    let mut client = Client::new(&repo);
    let updater = client.refresh_ok(&repo);
    let requests: Vec<(Source, &str)> = client
        .requests
        .iter()
        .map(|(s, n)| (*s, n.as_str()))
        .collect();
    assert_eq!(
        requests,
        [
            (Source::Remote, "2.root.json"),
            (Source::Local, "timestamp.json"),
            (Source::Remote, "timestamp.json"),
            (Source::Local, "snapshot.json"),
            (Source::Remote, "1.snapshot.json"),
            (Source::Local, "targets.json"),
            (Source::Remote, "1.targets.json"),
        ]
    );
    let stored: Vec<&str> = client.ops.iter().map(CacheOp::name).collect();
    assert_eq!(stored, ["timestamp.json", "snapshot.json", "targets.json"]);
    let trusted = updater.trusted();
    assert_eq!(trusted.root().version, 1);
    assert_eq!(trusted.timestamp().unwrap().version, 1);
    assert_eq!(trusted.snapshot().unwrap().version, 1);
    assert_eq!(trusted.targets("targets").unwrap().version, 1);
}

#[test]
fn cached_metadata_is_reused_without_downloading_it_again() {
    let mut repo = Repo::new(Scheme::Ed25519);
    repo.delegate("targets", "team-a", &["a/*"], false);
    repo.add_target("team-a", "a/x", b"x");
    repo.publish();
    let mut client = Client::new(&repo);
    client.fetch_target(&repo, "a/x");

    let mut updater = client.refresh_ok(&repo);
    assert_eq!(
        client
            .find(&mut updater, &repo, "a/x")
            .map(|l| matches!(l, Lookup::Found { .. })),
        Ok(true)
    );
    // Only the probe for a new root and the timestamp come from the repository;
    // the same timestamp version is kept, so nothing is written.
    assert_eq!(client.remote_requests(), ["2.root.json", "timestamp.json"]);
    assert!(client.ops.is_empty(), "{:?}", client.ops);
}

#[test]
fn equal_timestamp_version_is_kept_not_an_error() {
    let repo = Repo::new(Scheme::Ed25519);
    let mut client = Client::new(&repo);
    client.refresh_ok(&repo);
    let updater = client.refresh_ok(&repo);
    assert_eq!(updater.trusted().timestamp().unwrap().version, 1);
    assert!(!client.ops.iter().any(|op| op.name() == "timestamp.json"));
}

#[test]
fn new_versions_replace_the_cached_ones() {
    let mut repo = Repo::new(Scheme::Ed25519);
    let mut client = Client::new(&repo);
    client.refresh_ok(&repo);
    repo.add_target("targets", "t", b"t");
    repo.bump_role("targets");
    let updater = client.refresh_ok(&repo);
    assert_eq!(updater.trusted().targets("targets").unwrap().version, 2);
    assert_eq!(client.cache["targets.json"], repo.current("targets"));
    assert_eq!(client.cache["snapshot.json"], repo.current("snapshot"));
    assert_eq!(client.cache["timestamp.json"], repo.current("timestamp"));
}

#[test]
fn root_rotation_signed_by_old_and_new_keys_is_accepted_and_persisted_at_once() {
    let mut repo = Repo::new(Scheme::Ed25519);
    let old = repo.root_keys.clone();
    let new = vec![repo.key()];
    repo.root.version = 2;
    repo.set_role_keys("root", new.clone(), 1);
    repo.publish_root_signed_by(&[&old[0], &new[0]]);
    repo.root.version = 3;
    repo.publish_root();
    repo.bump();

    let mut client = Client::new(&repo);
    let updater = client.refresh_ok(&repo);
    assert_eq!(updater.trusted().root().version, 3);
    let stored: Vec<&str> = client.ops.iter().map(CacheOp::name).collect();
    assert_eq!(
        stored,
        [
            "root.json",
            "root.json",
            "timestamp.json",
            "snapshot.json",
            "targets.json"
        ]
    );
    assert_eq!(client.cache["root.json"], repo.root_bytes(3));
}

#[test]
fn accepted_root_is_persisted_even_when_the_timestamp_is_then_refused() {
    let mut repo = Repo::new(Scheme::Ed25519);
    repo.root.version = 2;
    repo.publish_root();
    let good = repo.current("timestamp");
    repo.files
        .insert("timestamp.json".into(), common::corrupt_signature(&good));
    let mut client = Client::new(&repo);
    let err = client.refresh_err(&repo);
    assert!(
        matches!(err, Error::BadSignature { ref role, .. } if role.as_str() == "timestamp"),
        "{err}"
    );
    assert_eq!(client.cache["root.json"], repo.root_bytes(2));
    assert!(!client.cache.contains_key("timestamp.json"));

    // The next refresh starts from root v2.
    repo.files.insert("timestamp.json".into(), good);
    let updater = client.refresh_ok(&repo);
    assert_eq!(client.remote_requests()[0], "3.root.json");
    assert_eq!(updater.trusted().root().version, 2);
}

#[test]
fn repository_without_consistent_snapshots_is_read_by_plain_names() {
    let mut repo = Repo::new(Scheme::Ed25519);
    repo.root.consistent_snapshot = Some(false);
    repo.files.clear();
    repo.add_target("targets", "dir/file.txt", b"content");
    repo.publish();
    let mut client = Client::new(&repo);
    let mut updater = client.refresh_ok(&repo);
    assert_eq!(
        client.remote_requests(),
        [
            "2.root.json",
            "timestamp.json",
            "snapshot.json",
            "targets.json"
        ]
    );
    let Ok(Lookup::Found { target_file, .. }) = client.find(&mut updater, &repo, "dir/file.txt")
    else {
        panic!("not found");
    };
    assert_eq!(
        updater.target_remote_name("dir/file.txt", &target_file),
        "dir/file.txt"
    );
}

#[test]
fn role_names_are_percent_encoded_in_file_names() {
    let mut repo = Repo::new(Scheme::Ed25519);
    repo.delegate("targets", "ns/team a", &["ns/*"], false);
    repo.add_target("ns/team a", "ns/x", b"x");
    repo.publish();
    assert!(repo.files.contains_key("1.ns%2Fteam%20a.json"));
    let mut client = Client::new(&repo);
    assert_eq!(client.fetch_target(&repo, "ns/x"), "ns/team a");
    assert!(client.cache.contains_key("ns%2Fteam%20a.json"));
}

#[test]
fn manual_driving_emits_fetches_cache_operations_and_done() {
    let repo = Repo::new(Scheme::Ed25519);
    let mut updater = Updater::new(&repo.root_bytes(1), common::NOW, Default::default()).unwrap();
    let mut fetched = Vec::new();
    let mut stored = Vec::new();
    loop {
        match updater.poll().unwrap() {
            Step::Fetch(request) => {
                // Polling again without answering repeats the request.
                assert_eq!(updater.poll().unwrap(), Step::Fetch(request.clone()));
                fetched.push(request.file_name());
                let bytes = if request.is_local() {
                    None
                } else {
                    repo.files.get(&request.remote_name()).cloned()
                };
                updater.answer(bytes.into());
            }
            Step::Cache(op) => stored.push(op.name().to_owned()),
            Step::Done(()) => break,
        }
    }
    assert_eq!(fetched.len(), 7);
    assert_eq!(stored, ["timestamp.json", "snapshot.json", "targets.json"]);
    assert!(updater.is_refreshed());
    assert_eq!(updater.poll().unwrap(), Step::Done(()));
}

#[test]
fn answering_without_a_request_is_an_order_error() {
    let repo = Repo::new(Scheme::Ed25519);
    let mut updater = Updater::new(&repo.root_bytes(1), common::NOW, Default::default()).unwrap();
    updater.answer(keyshare_policy::client::Response::NotFound);
    assert!(matches!(updater.poll(), Err(Error::Order(_))));
}

#[test]
fn searching_before_the_refresh_is_an_order_error() {
    let repo = Repo::new(Scheme::Ed25519);
    let mut updater = Updater::new(&repo.root_bytes(1), common::NOW, Default::default()).unwrap();
    assert!(matches!(updater.search("x"), Err(Error::Order(_))));
}

#[test]
fn root_loop_stops_after_max_root_rotations() {
    let mut repo = Repo::new(Scheme::Ed25519);
    for v in 2..=5 {
        repo.root.version = v;
        repo.publish_root();
    }
    let mut client = Client::new(&repo);
    client.config.max_root_rotations = 2;
    let updater = client.refresh_ok(&repo);
    assert_eq!(updater.trusted().root().version, 3);
    let roots: Vec<String> = client
        .remote_requests()
        .into_iter()
        .filter(|n| n.ends_with("root.json"))
        .collect();
    assert_eq!(roots, ["2.root.json", "3.root.json"]);
}
