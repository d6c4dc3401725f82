//! `TrustedSet` used directly: order of loading, intermediate metadata,
//! limits before parsing, the cached-snapshot exception.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use crate::common;

use common::{expires_in_days, Repo, NOW};
use keyshare_policy::client::{TimestampUpdate, TrustedSet};
use keyshare_policy::keys::Scheme;
use keyshare_policy::metadata::RoleName;
use keyshare_policy::Error;

#[test]
fn trusted_set_refuses_out_of_order_updates() {
    let repo = Repo::new(Scheme::Ed25519);
    let mut set = TrustedSet::new(&repo.root_bytes(1), NOW).unwrap();
    assert!(matches!(
        set.update_snapshot(&repo.current("snapshot"), false),
        Err(Error::Order(_))
    ));
    assert!(matches!(
        set.update_targets(&repo.current("targets")),
        Err(Error::Order(_))
    ));
    assert_eq!(
        set.update_timestamp(&repo.current("timestamp")),
        Ok(TimestampUpdate::Updated)
    );
    assert!(matches!(
        set.update_root(&repo.root_bytes(1)),
        Err(Error::Order(_))
    ));
    set.update_snapshot(&repo.current("snapshot"), false)
        .unwrap();
    assert!(matches!(
        set.update_timestamp(&repo.current("timestamp")),
        Err(Error::Order(_))
    ));
    set.update_targets(&repo.current("targets")).unwrap();
    assert!(matches!(
        set.update_snapshot(&repo.current("snapshot"), false),
        Err(Error::Order(_))
    ));
    assert_eq!(set.targets("targets").unwrap().version, 1);
    assert!(set.contains("targets", "root"));
}

#[test]
fn trusted_set_keeps_an_expired_timestamp_for_rollback_protection() {
    let mut repo = Repo::new(Scheme::Ed25519);
    let v1 = repo.current("timestamp");
    repo.timestamp.expires = expires_in_days(-1);
    repo.bump();
    let mut set = TrustedSet::new(&repo.root_bytes(1), NOW).unwrap();
    assert_eq!(
        set.update_timestamp(&repo.current("timestamp")),
        Err(Error::Expired {
            role: RoleName::new("timestamp"),
            expires: "2029-12-31T00:00:00Z".into()
        })
    );
    assert_eq!(set.timestamp().unwrap().version, 2);
    assert_eq!(
        set.update_timestamp(&v1),
        Err(Error::Rollback {
            role: RoleName::new("timestamp"),
            trusted: 2,
            received: 1
        })
    );
    // The intermediate timestamp blocks the snapshot.
    assert!(matches!(
        set.update_snapshot(&repo.current("snapshot"), false),
        Err(Error::Expired { .. })
    ));
}

#[test]
fn trusted_set_refuses_an_oversized_bootstrap_root_before_parsing() {
    assert_eq!(
        TrustedSet::new(&vec![b'x'; 512_001], NOW).unwrap_err(),
        Error::Oversized {
            what: "root".into(),
            length: 512_001,
            limit: 512_000
        }
    );
}

#[test]
fn trusted_set_refuses_a_bootstrap_root_not_signed_by_its_own_keys() {
    let mut repo = Repo::new(Scheme::Ed25519);
    let stranger = repo.key();
    repo.publish_root_signed_by(&[&stranger]);
    assert_eq!(
        TrustedSet::new(&repo.root_bytes(1), NOW).unwrap_err(),
        Error::ThresholdNotMet {
            role: RoleName::new("root"),
            valid: 0,
            threshold: 1
        }
    );
}

#[test]
fn trusted_set_cached_snapshot_skips_the_timestamp_hash_check() {
    let mut repo = Repo::new(Scheme::Ed25519);
    let cached = repo.current("snapshot");
    repo.bump();

    // As a cached file: no length/hash check, loaded as intermediate.
    let mut set = TrustedSet::new(&repo.root_bytes(1), NOW).unwrap();
    assert_eq!(
        set.update_timestamp(&repo.current("timestamp")),
        Ok(TimestampUpdate::Updated)
    );
    assert_eq!(
        set.update_snapshot(&cached, true).unwrap_err(),
        Error::VersionMismatch {
            role: RoleName::new("snapshot"),
            listed_by: "timestamp",
            expected: 2,
            received: 1
        }
    );
    assert_eq!(set.snapshot().unwrap().version, 1);
    set.update_snapshot(&repo.current("snapshot"), false)
        .unwrap();

    // As a downloaded file: checked against the timestamp's listing.
    let mut set = TrustedSet::new(&repo.root_bytes(1), NOW).unwrap();
    assert_eq!(
        set.update_timestamp(&repo.current("timestamp")),
        Ok(TimestampUpdate::Updated)
    );
    assert!(matches!(
        set.update_snapshot(&cached, false),
        Err(Error::LengthMismatch { .. } | Error::HashMismatch { .. })
    ));
    assert!(set.snapshot().is_none());
}

#[test]
fn trusted_set_expired_intermediate_root_can_be_updated() {
    let mut repo = Repo::new(Scheme::Ed25519);
    repo.root.expires = expires_in_days(-10);
    repo.files.clear();
    repo.publish();
    repo.root.version = 2;
    repo.root.expires = expires_in_days(10);
    repo.publish_root();
    let mut set = TrustedSet::new(&repo.root_bytes(1), NOW).unwrap();
    assert_eq!(set.update_root(&repo.root_bytes(2)).unwrap().version, 2);
    assert_eq!(
        set.update_timestamp(&repo.current("timestamp")),
        Ok(TimestampUpdate::Updated)
    );
}

#[test]
fn trusted_set_refuses_a_delegated_role_before_its_delegator() {
    let mut repo = Repo::new(Scheme::Ed25519);
    repo.delegate("targets", "team-a", &["a/*"], false);
    repo.publish();
    let mut set = TrustedSet::new(&repo.root_bytes(1), NOW).unwrap();
    assert_eq!(
        set.update_timestamp(&repo.current("timestamp")),
        Ok(TimestampUpdate::Updated)
    );
    set.update_snapshot(&repo.current("snapshot"), false)
        .unwrap();
    assert!(matches!(
        set.update_delegated_targets(&repo.current("team-a"), "team-a", "targets"),
        Err(Error::Order(_))
    ));
    set.update_targets(&repo.current("targets")).unwrap();
    set.update_delegated_targets(&repo.current("team-a"), "team-a", "targets")
        .unwrap();
    assert!(set.contains("team-a", "targets"));
    assert!(matches!(
        set.update_delegated_targets(&repo.current("team-a"), "team-a", "root"),
        Err(Error::MissingRole { .. })
    ));
}

#[test]
fn trusted_set_batch_verifies_like_one_by_one_and_reports_each_failure() {
    let mut repo = Repo::new(Scheme::Ed25519);
    for i in 0..40 {
        repo.delegate(
            "targets",
            &format!("ns-{i}"),
            &[&format!("ns-{i}/*")],
            false,
        );
    }
    repo.publish();
    let load = |repo: &Repo| {
        let mut set = TrustedSet::new(&repo.root_bytes(1), NOW).unwrap();
        set.update_timestamp(&repo.current("timestamp")).unwrap();
        set.update_snapshot(&repo.current("snapshot"), false)
            .unwrap();
        set.update_targets(&repo.current("targets")).unwrap();
        set
    };
    let names: Vec<String> = (0..40).map(|i| format!("ns-{i}")).collect();
    let mut files: Vec<Vec<u8>> = names.iter().map(|n| repo.current(n)).collect();
    // Two bad items among good ones: bytes that are not what the snapshot
    // lists, and a role that the snapshot does not list.
    files[7] = common::corrupt_signature(&files[7]);
    let mut items: Vec<(&str, &str, &[u8])> = names
        .iter()
        .zip(&files)
        .map(|(n, f)| (n.as_str(), "targets", f.as_slice()))
        .collect();
    items.push(("ghost", "targets", files[0].as_slice()));

    for threads in [1, 2, 4] {
        let mut set = load(&repo);
        let results = set.update_delegated_targets_batch(&items, threads);
        assert_eq!(results.len(), items.len(), "threads {threads}");
        for (i, r) in results.iter().enumerate() {
            match i {
                7 => assert!(
                    matches!(r, Err(Error::HashMismatch { what, .. }) if what == "ns-7"),
                    "{r:?}"
                ),
                40 => assert!(matches!(r, Err(Error::MissingRole { .. })), "{r:?}"),
                _ => assert_eq!(r, &Ok(()), "item {i}, threads {threads}"),
            }
        }
        assert!(set.contains("ns-0", "targets"));
        assert!(set.contains("ns-39", "targets"));
        assert!(!set.contains("ns-7", "targets"));
        // The same as loading them one by one.
        let mut one = load(&repo);
        for (role, delegator, bytes) in &items {
            let _ = one.update_delegated_targets(bytes, role, delegator);
        }
        for n in &names {
            assert_eq!(
                set.targets(n).map(|t| t.canonical().to_vec()),
                one.targets(n).map(|t| t.canonical().to_vec()),
                "{n}"
            );
        }
    }
}
