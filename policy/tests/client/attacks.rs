//! Attacks and malformations on top-level metadata, one scenario each,
//! asserting the exact error.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use crate::common;

use common::{corrupt_signature, expires_in_days, signed_bytes, Client, Repo, NOW};
use keyshare_policy::client::CacheOp;
use keyshare_policy::keys::Scheme;
use keyshare_policy::metadata::RoleName;
use keyshare_policy::sign::Signer;
use keyshare_policy::Error;
use time::Duration;

fn role(name: &str) -> RoleName {
    RoleName::new(name)
}

/// A repository and a client that refreshed against it once.
fn setup() -> (Repo, Client) {
    let repo = Repo::new(Scheme::Ed25519);
    let mut client = Client::new(&repo);
    client.refresh_ok(&repo);
    (repo, client)
}

// --- rollback -------------------------------------------------------------

#[test]
fn timestamp_rollback_is_refused() {
    let (mut repo, mut client) = setup();
    repo.bump();
    let v2 = repo.current("timestamp");
    repo.bump();
    client.refresh_ok(&repo);
    repo.files.insert("timestamp.json".into(), v2);
    assert_eq!(
        client.refresh_err(&repo),
        Error::Rollback {
            role: role("timestamp"),
            trusted: 3,
            received: 2
        }
    );
}

#[test]
fn timestamp_listing_an_older_snapshot_is_refused() {
    let (mut repo, mut client) = setup();
    repo.bump(); // timestamp 2 lists snapshot 2
    client.refresh_ok(&repo);
    repo.snapshot.version = 1;
    repo.timestamp.version = 3;
    repo.publish();
    assert_eq!(
        client.refresh_err(&repo),
        Error::Rollback {
            role: role("snapshot"),
            trusted: 2,
            received: 1
        }
    );
}

#[test]
fn snapshot_listing_an_older_targets_version_is_refused() {
    let (mut repo, mut client) = setup();
    repo.bump_role("targets"); // targets 2
    client.refresh_ok(&repo);
    repo.targets.get_mut("targets").unwrap().version = 1;
    repo.bump();
    assert_eq!(
        client.refresh_err(&repo),
        Error::Rollback {
            role: role("targets"),
            trusted: 2,
            received: 1
        }
    );
}

#[test]
fn snapshot_listing_an_older_delegated_role_version_is_refused() {
    let mut repo = Repo::new(Scheme::Ed25519);
    repo.delegate("targets", "team-a", &["a/*"], false);
    repo.targets.get_mut("team-a").unwrap().version = 5;
    repo.publish();
    let mut client = Client::new(&repo);
    client.refresh_ok(&repo);
    repo.targets.get_mut("team-a").unwrap().version = 4;
    repo.bump();
    assert_eq!(
        client.refresh_err(&repo),
        Error::Rollback {
            role: role("team-a"),
            trusted: 5,
            received: 4
        }
    );
}

#[test]
fn delegated_role_disappearing_from_snapshot_is_refused() {
    let mut repo = Repo::new(Scheme::Ed25519);
    repo.delegate("targets", "team-a", &["a/*"], false);
    repo.publish();
    let mut client = Client::new(&repo);
    client.refresh_ok(&repo);
    repo.targets.remove("team-a");
    repo.targets.get_mut("targets").unwrap().delegations = None;
    repo.bump_role("targets");
    assert_eq!(
        client.refresh_err(&repo),
        Error::Rollback {
            role: role("team-a"),
            trusted: 1,
            received: 0
        }
    );
}

#[test]
fn expired_cached_timestamp_still_prevents_rollback() {
    let (mut repo, mut client) = setup();
    repo.bump();
    let v2_long_lived = repo.current("timestamp");
    repo.timestamp.expires = expires_in_days(1);
    repo.bump();
    client.refresh_ok(&repo); // caches timestamp v3, expiring tomorrow
    client.now = NOW + Duration::days(2);
    repo.files.insert("timestamp.json".into(), v2_long_lived);
    assert_eq!(
        client.refresh_err(&repo),
        Error::Rollback {
            role: role("timestamp"),
            trusted: 3,
            received: 2
        }
    );
}

#[test]
fn expired_cached_snapshot_still_prevents_rollback() {
    let (mut repo, mut client) = setup();
    repo.bump_role("targets"); // snapshot 2 lists targets 2
    let long_lived = repo.snapshot.expires;
    repo.snapshot.expires = expires_in_days(1);
    repo.bump(); // snapshot 3, expiring tomorrow, lists targets 2
    client.refresh_ok(&repo);
    client.now = NOW + Duration::days(2);
    repo.snapshot.expires = long_lived;
    repo.targets.get_mut("targets").unwrap().version = 1;
    repo.bump(); // snapshot 4 lists targets 1
    assert_eq!(
        client.refresh_err(&repo),
        Error::Rollback {
            role: role("targets"),
            trusted: 2,
            received: 1
        }
    );
}

// --- freeze ---------------------------------------------------------------

#[test]
fn expired_root_is_refused() {
    let (repo, mut client) = setup();
    client.now = NOW + Duration::days(400);
    assert_eq!(
        client.refresh_err(&repo),
        Error::Expired {
            role: role("root"),
            expires: "2031-01-01T00:00:00Z".into()
        }
    );
}

#[test]
fn expired_timestamp_is_refused() {
    let (mut repo, mut client) = setup();
    repo.timestamp.expires = expires_in_days(-1);
    repo.bump();
    assert_eq!(
        client.refresh_err(&repo),
        Error::Expired {
            role: role("timestamp"),
            expires: "2029-12-31T00:00:00Z".into()
        }
    );
    // An expired timestamp is not persisted.
    assert_ne!(client.cache["timestamp.json"], repo.current("timestamp"));
}

#[test]
fn expired_snapshot_is_refused() {
    let (mut repo, mut client) = setup();
    repo.snapshot.expires = expires_in_days(-1);
    repo.bump();
    assert_eq!(
        client.refresh_err(&repo),
        Error::Expired {
            role: role("snapshot"),
            expires: "2029-12-31T00:00:00Z".into()
        }
    );
}

#[test]
fn expired_targets_is_refused() {
    let (mut repo, mut client) = setup();
    repo.targets.get_mut("targets").unwrap().expires = expires_in_days(-1);
    repo.bump_role("targets");
    assert_eq!(
        client.refresh_err(&repo),
        Error::Expired {
            role: role("targets"),
            expires: "2029-12-31T00:00:00Z".into()
        }
    );
}

#[test]
fn same_expired_timestamp_served_again_is_refused() {
    let (mut repo, mut client) = setup();
    repo.timestamp.expires = expires_in_days(1);
    repo.bump();
    client.refresh_ok(&repo);
    client.now = NOW + Duration::days(2);
    // The repository is frozen: it keeps serving the version the client has.
    assert_eq!(
        client.refresh_err(&repo),
        Error::Expired {
            role: role("timestamp"),
            expires: "2030-01-02T00:00:00Z".into()
        }
    );
    assert_eq!(client.remote_requests(), ["2.root.json", "timestamp.json"]);
}

// --- mix-and-match --------------------------------------------------------

#[test]
fn snapshot_version_differing_from_timestamp_listing_is_refused() {
    let mut repo = Repo::new(Scheme::Ed25519);
    repo.meta_hashes = false;
    repo.publish();
    let v1 = repo.current("snapshot");
    repo.bump();
    repo.files.insert("2.snapshot.json".into(), v1);
    let mut client = Client::new(&repo);
    assert_eq!(
        client.refresh_err(&repo),
        Error::VersionMismatch {
            role: role("snapshot"),
            listed_by: "timestamp",
            expected: 2,
            received: 1
        }
    );
}

#[test]
fn snapshot_hash_differing_from_timestamp_listing_is_refused() {
    let mut repo = Repo::new(Scheme::Ed25519);
    let tampered = corrupt_signature(&repo.current("snapshot"));
    repo.files.insert("1.snapshot.json".into(), tampered);
    let mut client = Client::new(&repo);
    assert_eq!(
        client.refresh_err(&repo),
        Error::HashMismatch {
            what: "snapshot".into(),
            algorithm: "sha256".into()
        }
    );
}

#[test]
fn snapshot_shorter_than_timestamp_listing_is_refused() {
    let mut repo = Repo::new(Scheme::Ed25519);
    let length = repo.current("snapshot").len() as u64;
    let meta = repo.timestamp.meta.get_mut("snapshot.json").unwrap();
    meta.length = Some(length + 1);
    repo.sign_timestamp();
    let mut client = Client::new(&repo);
    assert_eq!(
        client.refresh_err(&repo),
        Error::LengthMismatch {
            what: "snapshot".into(),
            expected: length + 1,
            received: length
        }
    );
}

#[test]
fn snapshot_longer_than_timestamp_listing_is_refused_as_oversized() {
    let mut repo = Repo::new(Scheme::Ed25519);
    let mut bytes = repo.current("snapshot");
    let length = bytes.len() as u64;
    bytes.push(b' ');
    repo.files.insert("1.snapshot.json".into(), bytes);
    let mut client = Client::new(&repo);
    assert_eq!(
        client.refresh_err(&repo),
        Error::Oversized {
            what: "snapshot".into(),
            length: length + 1,
            limit: length
        }
    );
}

#[test]
fn targets_version_differing_from_snapshot_listing_is_refused() {
    let mut repo = Repo::new(Scheme::Ed25519);
    repo.meta_hashes = false;
    repo.publish();
    let v1 = repo.current("targets");
    repo.bump_role("targets");
    repo.files.insert("2.targets.json".into(), v1);
    let mut client = Client::new(&repo);
    assert_eq!(
        client.refresh_err(&repo),
        Error::VersionMismatch {
            role: role("targets"),
            listed_by: "snapshot",
            expected: 2,
            received: 1
        }
    );
}

#[test]
fn targets_hash_differing_from_snapshot_listing_is_refused() {
    let mut repo = Repo::new(Scheme::Ed25519);
    let tampered = corrupt_signature(&repo.current("targets"));
    repo.files.insert("1.targets.json".into(), tampered);
    let mut client = Client::new(&repo);
    assert_eq!(
        client.refresh_err(&repo),
        Error::HashMismatch {
            what: "targets".into(),
            algorithm: "sha256".into()
        }
    );
}

// --- signatures -----------------------------------------------------------

#[test]
fn timestamp_with_a_bad_signature_is_refused() {
    let mut repo = Repo::new(Scheme::Ed25519);
    let tampered = corrupt_signature(&repo.current("timestamp"));
    repo.files.insert("timestamp.json".into(), tampered);
    let keyid = repo.signers["timestamp"][0].key_id().clone();
    let mut client = Client::new(&repo);
    assert_eq!(
        client.refresh_err(&repo),
        Error::BadSignature {
            role: role("timestamp"),
            keyid
        }
    );
}

#[test]
fn duplicate_signature_key_ids_are_refused_as_malformed() {
    let mut repo = Repo::new(Scheme::Ed25519);
    let keys = vec![repo.key(), repo.key(), repo.key()];
    repo.set_role_keys("timestamp", keys.clone(), 2);
    repo.files.clear();
    repo.publish();
    // Sanity: two distinct keys pass.
    let mut client = Client::new(&repo);
    client.refresh_ok(&repo);

    // Two signatures under one key id, as python-tuf and go-tuf refuse.
    repo.timestamp.version += 1;
    let duplicated = signed_bytes(&repo.timestamp, &[&keys[0], &keys[0]]);
    repo.files.insert("timestamp.json".into(), duplicated);
    assert_eq!(
        client.refresh_err(&repo),
        Error::DuplicateSignature {
            role: role("timestamp"),
            keyid: keys[0].key_id().clone(),
        }
    );
    // In every role: a root whose own signatures repeat a key id.
    let mut repo = Repo::new(Scheme::Ed25519);
    let old = repo.root_keys[0].clone();
    repo.root.version = 2;
    repo.publish_root_signed_by(&[&old, &old]);
    let mut client = Client::new(&repo);
    assert_eq!(
        client.refresh_err(&repo),
        Error::DuplicateSignature {
            role: role("root"),
            keyid: old.key_id().clone(),
        }
    );
}

/// The same key as `key`, listed under another id.
fn alias(key: &common::Key, id: &str) -> common::Key {
    std::sync::Arc::new(key.with_key_id(keyshare_policy::metadata::KeyId::new(id)))
}

#[test]
fn tuf_thresholds_count_key_ids_one_key_listed_under_two_ids_counts_once() {
    let mut repo = Repo::new(Scheme::Ed25519);
    let key = repo.key();
    let twin = alias(&key, "the-same-key-again");
    repo.set_role_keys("timestamp", vec![key.clone(), twin.clone()], 2);
    repo.files.clear();
    repo.publish();
    let mut client = Client::new(&repo);
    assert_eq!(
        client.refresh_err(&repo),
        Error::ThresholdNotMet {
            role: role("timestamp"),
            valid: 1,
            threshold: 2
        }
    );
}

#[test]
fn tuf_thresholds_count_key_ids_a_root_listing_one_key_twice_does_not_meet_two() {
    // Root v2 lists one new root key under two ids with threshold 2 and is
    // signed by the old root key and by that key under both ids: its own
    // threshold of two distinct keys is not met.
    let mut repo = Repo::new(Scheme::Ed25519);
    let old = repo.root_keys[0].clone();
    let key = repo.key();
    let twin = alias(&key, "the-same-key-again");
    repo.root.version = 2;
    repo.set_role_keys("root", vec![key.clone(), twin.clone()], 2);
    repo.publish_root_signed_by(&[&old, &key, &twin]);
    let mut client = Client::new(&repo);
    assert_eq!(
        client.refresh_err(&repo),
        Error::ThresholdNotMet {
            role: role("root"),
            valid: 1,
            threshold: 2
        }
    );
    assert_eq!(client.cache["root.json"], repo.root_bytes(1));
}

#[test]
fn timestamp_signed_by_a_key_not_authorised_for_the_role_is_refused() {
    let (mut repo, mut client) = setup();
    repo.timestamp.version += 1;
    // The snapshot key is in root, but not a timestamp key.
    let snapshot_key = repo.signers["snapshot"][0].clone();
    let bytes = signed_bytes(&repo.timestamp, &[&snapshot_key]);
    repo.files.insert("timestamp.json".into(), bytes);
    assert_eq!(
        client.refresh_err(&repo),
        Error::ThresholdNotMet {
            role: role("timestamp"),
            valid: 0,
            threshold: 1
        }
    );
}

// --- root rotation --------------------------------------------------------

fn rotate_root_key(repo: &mut Repo) -> (common::Key, common::Key) {
    let old = repo.root_keys[0].clone();
    let new = repo.key();
    repo.root.version = 2;
    repo.set_role_keys("root", vec![new.clone()], 1);
    (old, new)
}

#[test]
fn root_rotation_signed_only_by_the_new_keys_is_refused() {
    let mut repo = Repo::new(Scheme::Ed25519);
    let (_, new) = rotate_root_key(&mut repo);
    repo.publish_root_signed_by(&[&new]);
    let mut client = Client::new(&repo);
    assert_eq!(
        client.refresh_err(&repo),
        Error::ThresholdNotMet {
            role: role("root"),
            valid: 0,
            threshold: 1
        }
    );
    assert_eq!(client.cache["root.json"], repo.root_bytes(1));
}

#[test]
fn root_rotation_signed_only_by_the_old_keys_is_refused() {
    let mut repo = Repo::new(Scheme::Ed25519);
    let (old, _) = rotate_root_key(&mut repo);
    repo.publish_root_signed_by(&[&old]);
    let mut client = Client::new(&repo);
    assert_eq!(
        client.refresh_err(&repo),
        Error::ThresholdNotMet {
            role: role("root"),
            valid: 0,
            threshold: 1
        }
    );
}

#[test]
fn root_skipping_version_n_plus_1_is_refused() {
    let mut repo = Repo::new(Scheme::Ed25519);
    repo.root.version = 3;
    let bytes = signed_bytes(&repo.root, &[&repo.root_keys[0]]);
    repo.files.insert("2.root.json".into(), bytes);
    let mut client = Client::new(&repo);
    assert_eq!(
        client.refresh_err(&repo),
        Error::RootVersion {
            expected: 2,
            received: 3
        }
    );
}

// --- fast-forward attack recovery (§5.3.11) ---------------------------------

/// A client that trusts timestamp (and snapshot) version 10.
fn fast_forwarded() -> (Repo, Client) {
    let (mut repo, mut client) = setup();
    repo.timestamp.version = 10;
    repo.snapshot.version = 10;
    repo.publish();
    client.refresh_ok(&repo);
    assert_eq!(client.cache["timestamp.json"], repo.current("timestamp"));
    (repo, client)
}

/// The repository recovered: timestamp and snapshot back to version 1.
fn reset_versions(repo: &mut Repo) {
    repo.timestamp.version = 1;
    repo.snapshot.version = 1;
    repo.publish();
}

#[test]
fn timestamp_key_rotation_recovers_from_a_fast_forward_attack() {
    let (mut repo, mut client) = fast_forwarded();
    repo.root.version = 2;
    let new = repo.key();
    repo.set_role_keys("timestamp", vec![new], 1);
    repo.publish_root();
    reset_versions(&mut repo);
    let updater = client.refresh_ok(&repo);
    assert_eq!(updater.trusted().timestamp().unwrap().version, 1);
    assert_eq!(
        client.ops[..3],
        [
            CacheOp::Store {
                name: "root.json".into(),
                bytes: repo.root_bytes(2)
            },
            CacheOp::Delete {
                name: "timestamp.json".into()
            },
            CacheOp::Delete {
                name: "snapshot.json".into()
            },
        ]
    );
    // The cached timestamp and snapshot were not even read.
    assert!(client
        .requests
        .iter()
        .all(|(s, n)| !(s == &keyshare_policy::client::Source::Local
            && (n == "timestamp.json" || n == "snapshot.json"))));
    assert_eq!(client.cache["timestamp.json"], repo.current("timestamp"));
}

#[test]
fn timestamp_key_added_with_the_old_key_kept_still_drops_the_cached_timestamp() {
    // The cached v10 would still verify under the new root: only the
    // explicit deletion of §5.3.11 lets the client accept v1.
    let (mut repo, mut client) = fast_forwarded();
    repo.root.version = 2;
    let mut keys = repo.signers["timestamp"].clone();
    keys.push(repo.key());
    repo.set_role_keys("timestamp", keys, 1);
    repo.publish_root();
    reset_versions(&mut repo);
    let updater = client.refresh_ok(&repo);
    assert_eq!(updater.trusted().timestamp().unwrap().version, 1);
}

#[test]
fn snapshot_key_rotation_recovers_from_a_fast_forward_attack() {
    let (mut repo, mut client) = fast_forwarded();
    repo.root.version = 2;
    let new = repo.key();
    repo.set_role_keys("snapshot", vec![new], 1);
    repo.publish_root();
    reset_versions(&mut repo);
    let updater = client.refresh_ok(&repo);
    assert_eq!(updater.trusted().snapshot().unwrap().version, 1);
}

#[test]
fn timestamp_version_1_without_a_key_rotation_is_a_rollback() {
    let (mut repo, mut client) = fast_forwarded();
    reset_versions(&mut repo);
    assert_eq!(
        client.refresh_err(&repo),
        Error::Rollback {
            role: role("timestamp"),
            trusted: 10,
            received: 1
        }
    );
}

#[test]
fn root_rotation_of_other_keys_keeps_the_cached_timestamp() {
    let (mut repo, mut client) = fast_forwarded();
    repo.root.version = 2;
    let new = repo.key();
    repo.set_role_keys("targets", vec![new], 1);
    repo.publish_root();
    repo.bump_role("targets");
    client.refresh_ok(&repo);
    assert!(!client
        .ops
        .iter()
        .any(|op| matches!(op, CacheOp::Delete { .. })));
}

// --- endless data ---------------------------------------------------------

#[test]
fn oversized_timestamp_is_refused_before_parsing() {
    let mut repo = Repo::new(Scheme::Ed25519);
    repo.files
        .insert("timestamp.json".into(), vec![b'x'; 16_385]);
    let mut client = Client::new(&repo);
    assert_eq!(
        client.refresh_err(&repo),
        Error::Oversized {
            what: "timestamp".into(),
            length: 16_385,
            limit: 16_384
        }
    );
}

#[test]
fn oversized_root_is_refused_before_parsing() {
    let mut repo = Repo::new(Scheme::Ed25519);
    repo.files.insert("2.root.json".into(), vec![b'{'; 512_001]);
    let mut client = Client::new(&repo);
    assert_eq!(
        client.refresh_err(&repo),
        Error::Oversized {
            what: "root".into(),
            length: 512_001,
            limit: 512_000
        }
    );
}

#[test]
fn oversized_snapshot_without_a_listed_length_is_refused_before_parsing() {
    let mut repo = Repo::new(Scheme::Ed25519);
    repo.meta_hashes = false;
    repo.publish();
    repo.files
        .insert("1.snapshot.json".into(), vec![b' '; 2_000_001]);
    let mut client = Client::new(&repo);
    assert_eq!(
        client.refresh_err(&repo),
        Error::Oversized {
            what: "snapshot".into(),
            length: 2_000_001,
            limit: 2_000_000
        }
    );
}

#[test]
fn oversized_targets_without_a_listed_length_is_refused_before_parsing() {
    let mut repo = Repo::new(Scheme::Ed25519);
    repo.meta_hashes = false;
    repo.publish();
    repo.files
        .insert("1.targets.json".into(), vec![b' '; 5_000_001]);
    let mut client = Client::new(&repo);
    assert_eq!(
        client.refresh_err(&repo),
        Error::Oversized {
            what: "targets".into(),
            length: 5_000_001,
            limit: 5_000_000
        }
    );
}

#[test]
fn missing_timestamp_is_unavailable() {
    let mut repo = Repo::new(Scheme::Ed25519);
    repo.files.remove("timestamp.json");
    let mut client = Client::new(&repo);
    assert_eq!(
        client.refresh_err(&repo),
        Error::Unavailable {
            role: role("timestamp"),
            file: "timestamp.json".into()
        }
    );
}

#[test]
fn malformed_timestamp_names_the_field() {
    let mut repo = Repo::new(Scheme::Ed25519);
    repo.files.insert(
        "timestamp.json".into(),
        b"{\"signatures\":[],\"signed\":{\"_type\":\"timestamp\"}}".to_vec(),
    );
    let mut client = Client::new(&repo);
    assert!(matches!(
        client.refresh_err(&repo),
        Error::Malformed { what, .. } if what == "timestamp"
    ));
}
