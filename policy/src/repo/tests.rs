//! Tests of the repository builder.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::num::NonZeroU32;

use time::Duration;

use super::*;
use crate::keys::Scheme;
use crate::layout::encode_role;
use crate::metadata::{DelegatedRole, Envelope, SuccinctRoles, TargetFile};
use crate::pattern::PathPattern;
use crate::sign::InMemorySigner;
use crate::verify::Authority;

fn signer(scheme: Scheme) -> SharedSigner {
    Arc::new(InMemorySigner::generate(scheme).unwrap())
}

fn now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
}

fn new_repo() -> (Repository, SharedSigner) {
    let root = signer(Scheme::Ed25519);
    let repo = Repository::create(
        std::slice::from_ref(&root),
        1,
        [
            ("targets", vec![signer(Scheme::Ed25519)]),
            ("snapshot", vec![signer(Scheme::EcdsaP256Sha256)]),
            ("timestamp", vec![signer(Scheme::Ed25519)]),
        ],
        Options::default(),
        now(),
    )
    .unwrap();
    (repo, root)
}

fn file<'a>(files: &'a [File], path: &str) -> &'a File {
    files.iter().find(|f| f.path == path).unwrap_or_else(|| {
        panic!(
            "{path} not in {:?}",
            files.iter().map(|f| &f.path).collect::<Vec<_>>()
        )
    })
}

fn delegated(name: &str, paths: &[&str], key: &SharedSigner) -> DelegatedRole {
    DelegatedRole {
        name: RoleName::new(name),
        keyids: vec![key.key_id().clone()],
        threshold: NonZeroU32::MIN,
        terminating: true,
        paths: Some(paths.iter().map(|p| PathPattern::new(p)).collect()),
        path_hash_prefixes: None,
        unrecognized: Unrecognized::new(),
    }
}

#[test]
fn first_commit_publishes_a_verifiable_repository() {
    let (mut repo, _) = new_repo();
    let target = repo
        .set_target("targets", "org/peers.json", b"{}", None)
        .unwrap();
    assert_eq!(
        target.path,
        format!("targets/org/{}.peers.json", crate::hash::sha256_hex(b"{}"))
    );
    let files = repo.commit(now()).unwrap();
    let root =
        Envelope::<Root>::parse("root", &file(&files, "metadata/1.root.json").bytes).unwrap();
    let root = crate::verify::verify_root_self(root).unwrap();
    let ts =
        Envelope::<Timestamp>::parse("timestamp", &file(&files, "metadata/timestamp.json").bytes)
            .unwrap();
    let ts = Authority::from_root(&root, "timestamp")
        .unwrap()
        .verify("timestamp", ts)
        .unwrap();
    assert!(!file(&files, "metadata/timestamp.json").immutable);
    let snap_bytes = &file(&files, "metadata/1.snapshot.json").bytes;
    ts.snapshot_meta()
        .check_bytes("snapshot", snap_bytes)
        .unwrap();
    let snap = Envelope::<Snapshot>::parse("snapshot", snap_bytes).unwrap();
    let snap = Authority::from_root(&root, "snapshot")
        .unwrap()
        .verify("snapshot", snap)
        .unwrap();
    assert_eq!(snap.role_meta("targets").unwrap().version, 1);
    let targets =
        Envelope::<Targets>::parse("targets", &file(&files, "metadata/1.targets.json").bytes)
            .unwrap();
    let targets = Authority::from_root(&root, "targets")
        .unwrap()
        .verify("targets", targets)
        .unwrap();
    targets.targets["org/peers.json"]
        .check_bytes("org/peers.json", b"{}")
        .unwrap();
}

#[test]
fn commit_without_changes_publishes_nothing() {
    let (mut repo, _) = new_repo();
    repo.commit(now()).unwrap();
    assert!(repo.commit(now()).unwrap().is_empty());
    // Setting the same content again is no change either.
    repo.set_target("targets", "a", b"x", None).unwrap();
    repo.commit(now()).unwrap();
    repo.set_target("targets", "a", b"x", None).unwrap();
    assert!(repo.commit(now()).unwrap().is_empty());
}

#[test]
fn commit_with_puts_the_fields_it_is_handed_into_the_signed_timestamp() {
    let (mut repo, _) = new_repo();
    repo.commit(now()).unwrap();
    repo.set_target("targets", "a", b"x", None).unwrap();
    let mut seen = Vec::new();
    let files = repo
        .commit_with(now(), |paths| -> Result<_> {
            seen = paths.to_vec();
            Ok(Unrecognized::from([(
                "x-keyshare-audit".to_owned(),
                serde_json::json!({"seq": 2, "hash": "ab"}),
            )]))
        })
        .unwrap();
    // Called with every file the commit publishes, in order.
    let paths: Vec<String> = files.iter().map(|f| f.path.clone()).collect();
    assert_eq!(seen, paths);
    assert_eq!(
        paths,
        [
            "metadata/2.targets.json",
            "metadata/2.snapshot.json",
            "metadata/timestamp.json"
        ]
    );
    // The field is in the signed part, covered by the signature.
    let root = repo.root().signed.clone();
    let bytes = &file(&files, "metadata/timestamp.json").bytes;
    let ts = Envelope::<Timestamp>::parse("timestamp", bytes).unwrap();
    let ts = Authority::from_root(&root, "timestamp")
        .unwrap()
        .verify("timestamp", ts)
        .unwrap();
    assert_eq!(
        ts.unrecognized["x-keyshare-audit"],
        serde_json::json!({"seq": 2, "hash": "ab"})
    );
    assert_eq!(
        repo.timestamp().unwrap().signed.unrecognized,
        ts.unrecognized
    );

    // Not called when nothing is due.
    let called = std::cell::Cell::new(false);
    let files = repo
        .commit_with(now(), |_| -> Result<_> {
            called.set(true);
            Ok(Unrecognized::new())
        })
        .unwrap();
    assert!(files.is_empty() && !called.get());

    // Only extensions: a field TUF defines cannot be overwritten, and
    // nothing is published.
    repo.set_target("targets", "a", b"y", None).unwrap();
    let version = repo.timestamp().unwrap().signed.version;
    let err = repo
        .commit_with(now(), |_| -> Result<_> {
            Ok(Unrecognized::from([(
                "version".to_owned(),
                serde_json::json!(99),
            )]))
        })
        .unwrap_err();
    assert_eq!(
        err,
        Error::Sign("timestamp field `version` is not an extension (names start with `x-`)".into())
    );
    assert_eq!(repo.timestamp().unwrap().signed.version, version);
    // An error of the callback fails the commit the same way.
    let err = repo
        .commit_with(now(), |_| Err(Error::Sign("no audit log".into())))
        .unwrap_err();
    assert_eq!(err, Error::Sign("no audit log".into()));
    assert_eq!(repo.timestamp().unwrap().signed.version, version);
    assert_eq!(repo.commit(now()).unwrap().len(), 3);
}

#[test]
fn each_commit_bumps_changed_roles_snapshot_and_timestamp_only() {
    let (mut repo, _) = new_repo();
    let team = signer(Scheme::Ed25519);
    repo.delegate(
        "targets",
        delegated("team-a", &["namespaces/team-a/*"], &team),
        vec![(team.key_id().clone(), team.public_key().clone())],
        vec![team.clone()],
        now(),
    )
    .unwrap();
    repo.commit(now()).unwrap();
    repo.set_target("team-a", "namespaces/team-a/trust.json", b"1", None)
        .unwrap();
    let files = repo.commit(now()).unwrap();
    let names: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
    assert!(names.contains(&"metadata/2.team-a.json"), "{names:?}");
    assert!(names.contains(&"metadata/2.snapshot.json"), "{names:?}");
    assert!(
        !names.iter().any(|n| n.ends_with(".targets.json")),
        "{names:?}"
    );
    assert!(
        !names.iter().any(|n| n.ends_with(".root.json")),
        "{names:?}"
    );
    let snap = repo.snapshot().unwrap();
    assert_eq!(snap.signed.meta["team-a.json"].version, 2);
    assert_eq!(snap.signed.meta["targets.json"].version, 1);
    assert_eq!(repo.timestamp().unwrap().signed.version, 2);
}

#[test]
fn failed_commit_publishes_nothing_and_keeps_changes_staged() {
    let (mut repo, _) = new_repo();
    repo.commit(now()).unwrap();
    let before_ts = repo.timestamp().unwrap().clone();
    let team = signer(Scheme::Ed25519);
    repo.delegate(
        "targets",
        delegated("team-a", &["namespaces/team-a/*"], &team),
        vec![(team.key_id().clone(), team.public_key().clone())],
        vec![],
        now(),
    )
    .unwrap();
    let err = repo.commit(now()).unwrap_err();
    assert!(
        matches!(&err, Error::Sign(m) if m.contains("team-a")),
        "{err}"
    );
    assert_eq!(repo.timestamp().unwrap(), &before_ts);
    assert_eq!(repo.targets("targets").unwrap().signed.version, 1);
    assert!(repo.targets("team-a").is_none());
    repo.set_signers("team-a", vec![team]);
    repo.commit(now()).unwrap();
    assert_eq!(repo.targets("targets").unwrap().signed.version, 2);
    assert_eq!(repo.targets("team-a").unwrap().signed.version, 1);
}

/// A changed role is signed where it is staged (no copy of it): after a
/// commit its staged content is the published one, and a commit that fails
/// after signing it leaves both as they were.
#[test]
fn a_role_signed_where_it_is_staged_is_put_back_when_the_commit_fails() {
    let (mut repo, _) = new_repo();
    repo.commit(now()).unwrap();
    repo.set_target("targets", "org/a.json", b"a", None)
        .unwrap();
    repo.set_target("targets", "org/b.json", b"b", None)
        .unwrap();
    repo.commit(now()).unwrap();
    assert_eq!(
        repo.staged("targets").unwrap(),
        &repo.targets("targets").unwrap().signed
    );
    repo.remove_target("targets", "org/a.json").unwrap();
    repo.set_target("targets", "org/b.json", b"b2", None)
        .unwrap();
    let staged = repo.staged("targets").unwrap().clone();
    let published = repo.targets("targets").unwrap().clone();
    let snapshot = repo.snapshot().unwrap().clone();
    let err = repo
        .commit_with(now() + Duration::hours(1), |_| {
            Err::<Unrecognized, Error>(Error::Sign("no audit record".into()))
        })
        .unwrap_err();
    assert!(
        matches!(&err, Error::Sign(m) if m == "no audit record"),
        "{err}"
    );
    assert_eq!(repo.staged("targets").unwrap(), &staged);
    assert_eq!(repo.targets("targets").unwrap(), &published);
    assert_eq!(repo.snapshot().unwrap(), &snapshot);

    let files = repo.commit(now() + Duration::hours(2)).unwrap();
    let t = repo.targets("targets").unwrap();
    assert_eq!(t.signed.version, published.signed.version + 1);
    assert_eq!(t.signed.targets.keys().collect::<Vec<_>>(), ["org/b.json"]);
    assert_eq!(
        t.signed.targets["org/b.json"],
        TargetFile::from_bytes(b"b2")
    );
    assert_eq!(repo.staged("targets").unwrap(), &t.signed);
    // The file is the envelope as `to_bytes` writes it, and verifies.
    let path = format!("metadata/{}.targets.json", t.signed.version);
    assert_eq!(&*file(&files, &path).bytes, &to_bytes(t).unwrap()[..]);
    let root = &repo.root().signed;
    let parsed = Envelope::<Targets>::parse("targets", &file(&files, &path).bytes).unwrap();
    Authority::from_root(root, "targets")
        .unwrap()
        .verify("targets", parsed)
        .unwrap();
}

#[test]
fn undelegated_role_stays_in_snapshot_and_redelegation_continues_versions() {
    let (mut repo, _) = new_repo();
    let team = signer(Scheme::Ed25519);
    let keys = vec![(team.key_id().clone(), team.public_key().clone())];
    let role = delegated("team-a", &["namespaces/team-a/*"], &team);
    repo.delegate(
        "targets",
        role.clone(),
        keys.clone(),
        vec![team.clone()],
        now(),
    )
    .unwrap();
    repo.commit(now()).unwrap();
    repo.undelegate("team-a").unwrap();
    repo.commit(now()).unwrap();
    let t = &repo.targets("targets").unwrap().signed;
    assert!(t
        .delegations
        .as_ref()
        .unwrap()
        .roles
        .as_ref()
        .unwrap()
        .is_empty());
    assert!(
        t.delegations.as_ref().unwrap().keys.is_empty(),
        "unused keys are pruned"
    );
    assert_eq!(
        repo.snapshot().unwrap().signed.meta["team-a.json"].version,
        1
    );
    repo.delegate("targets", role, keys, vec![team], now())
        .unwrap();
    repo.set_target("team-a", "namespaces/team-a/trust.json", b"2", None)
        .unwrap();
    repo.commit(now()).unwrap();
    assert_eq!(
        repo.snapshot().unwrap().signed.meta["team-a.json"].version,
        2
    );
}

fn bins(key: &SharedSigner) -> SuccinctRoles {
    SuccinctRoles {
        keyids: vec![key.key_id().clone()],
        threshold: NonZeroU32::MIN,
        bit_length: 2,
        name_prefix: "bins".into(),
        unrecognized: Unrecognized::new(),
    }
}

/// A repository delegating from targets to 4 hashed bins signed by
/// `bin_key`, committed; returns it with the bins' layout.
fn binned_repo() -> (
    Repository,
    SuccinctRoles,
    BTreeMap<RoleName, Vec<SharedSigner>>,
) {
    let targets_key = signer(Scheme::Ed25519);
    let snapshot_key = signer(Scheme::EcdsaP256Sha256);
    let timestamp_key = signer(Scheme::Ed25519);
    let mut repo = Repository::create(
        &[signer(Scheme::Ed25519)],
        1,
        [
            ("targets", vec![targets_key.clone()]),
            ("snapshot", vec![snapshot_key.clone()]),
            ("timestamp", vec![timestamp_key.clone()]),
        ],
        Options::default(),
        now(),
    )
    .unwrap();
    let layout = bins(&targets_key);
    repo.delegate_succinct(
        "targets",
        layout.clone(),
        vec![(
            targets_key.key_id().clone(),
            targets_key.public_key().clone(),
        )],
        vec![targets_key.clone()],
        now(),
    )
    .unwrap();
    let mut signers = BTreeMap::from([
        (RoleName::new("targets"), vec![targets_key.clone()]),
        (RoleName::new("snapshot"), vec![snapshot_key]),
        (RoleName::new("timestamp"), vec![timestamp_key]),
    ]);
    for bin in layout.bin_names() {
        signers.insert(bin, vec![targets_key.clone()]);
    }
    (repo, layout, signers)
}

#[test]
fn succinct_bins_exist_from_the_first_commit_and_delegate_onwards() {
    let (mut repo, layout, mut signers) = binned_repo();
    let files = repo.commit(now()).unwrap();
    let mut all: BTreeMap<String, Vec<u8>> = files
        .iter()
        .map(|f| (f.path.clone(), f.bytes.to_vec()))
        .collect();
    for bin in ["bins-0", "bins-1", "bins-2", "bins-3"] {
        assert!(all.contains_key(&format!("metadata/1.{bin}.json")), "{bin}");
        assert_eq!(
            repo.snapshot().unwrap().signed.meta[&format!("{bin}.json")].version,
            1
        );
    }

    // A namespace delegated from the bin its path hashes to: only that
    // bin, the new role, snapshot and timestamp are signed.
    let team = signer(Scheme::Ed25519);
    let path = "namespaces/team-a/trust.json";
    let bin = layout.role_for_target(path);
    repo.delegate(
        bin.as_str(),
        delegated("team-a", &["namespaces/team-a/*"], &team),
        vec![(team.key_id().clone(), team.public_key().clone())],
        vec![team.clone()],
        now(),
    )
    .unwrap();
    repo.set_target("team-a", path, b"1", None).unwrap();
    let files = repo.commit(now()).unwrap();
    let mut names: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
    names.sort_unstable();
    let bin_file = format!("metadata/2.{bin}.json");
    assert_eq!(
        names,
        [
            "metadata/1.team-a.json",
            bin_file.as_str(),
            "metadata/2.snapshot.json",
            "metadata/timestamp.json"
        ]
    );
    for f in &files {
        all.insert(f.path.clone(), f.bytes.to_vec());
    }

    // A client follows targets -> bin -> team-a.
    let mut set = crate::client::TrustedSet::new(&all["metadata/1.root.json"], now()).unwrap();
    set.update_timestamp(&all["metadata/timestamp.json"])
        .unwrap();
    set.update_snapshot(&all["metadata/2.snapshot.json"], false)
        .unwrap();
    set.update_targets(&all["metadata/1.targets.json"]).unwrap();
    set.update_delegated_targets(&all[&bin_file], bin.as_str(), "targets")
        .unwrap();
    set.update_delegated_targets(&all["metadata/1.team-a.json"], "team-a", bin.as_str())
        .unwrap();

    // Restored, with the bins recognised as delegated by targets.
    signers.insert(RoleName::new("team-a"), vec![team]);
    let mut back = restore_from(&all, signers).unwrap();
    assert_eq!(published_files(&back), published_files(&repo));
    assert_eq!(back.delegated_roles().count(), 5);
    back.undelegate("team-a").unwrap();
    let names: Vec<String> = back
        .commit(now())
        .unwrap()
        .into_iter()
        .map(|f| f.path)
        .collect();
    assert!(
        names.contains(&format!("metadata/3.{bin}.json")),
        "{names:?}"
    );
    assert!(
        !names.iter().any(|n| n.ends_with("targets.json")),
        "{names:?}"
    );
}

#[test]
fn succinct_delegation_refuses_a_delegator_with_named_roles_and_rekeys_every_bin() {
    let (mut repo, layout, _) = binned_repo();
    repo.commit(now()).unwrap();
    // Named delegations from targets cannot be added next to bins.
    let team = signer(Scheme::Ed25519);
    let err = repo
        .delegate(
            "targets",
            delegated("team-a", &["namespaces/team-a/*"], &team),
            vec![(team.key_id().clone(), team.public_key().clone())],
            vec![team.clone()],
            now(),
        )
        .unwrap_err();
    assert!(err.to_string().contains("succinct"), "{err}");

    // A new bin key: targets and every bin are re-signed, and verify.
    let new_key = signer(Scheme::Ed25519);
    repo.delegate_succinct(
        "targets",
        bins(&new_key),
        vec![(new_key.key_id().clone(), new_key.public_key().clone())],
        vec![new_key.clone()],
        now(),
    )
    .unwrap();
    let files = repo.commit(now()).unwrap();
    for bin in layout.bin_names() {
        let f = file(&files, &format!("metadata/2.{bin}.json"));
        let env = Envelope::<Targets>::parse(bin.as_str(), &f.bytes).unwrap();
        Authority::from_delegator(&repo.targets("targets").unwrap().signed, bin.as_str())
            .unwrap()
            .check(bin.as_str(), &env)
            .unwrap();
    }

    // A repository delegating by name cannot switch to bins.
    let (mut named, _) = new_repo();
    named
        .delegate(
            "targets",
            delegated("team-a", &["namespaces/team-a/*"], &team),
            vec![(team.key_id().clone(), team.public_key().clone())],
            vec![team],
            now(),
        )
        .unwrap();
    let err = named
        .delegate_succinct("targets", layout, vec![], vec![], now())
        .unwrap_err();
    assert!(err.to_string().contains("by name"), "{err}");
}

#[test]
fn root_rotation_needs_old_and_new_thresholds() {
    let (mut repo, old) = new_repo();
    repo.commit(now()).unwrap();
    let new = signer(Scheme::EcdsaP256Sha256);
    let swap = |r: &mut Root| {
        let spec = RoleSpec::from_signers(std::slice::from_ref(&new), 1).unwrap();
        let (id, key) = spec.keys[0].clone();
        r.keys.insert(id.clone(), key);
        r.roles.get_mut("root").unwrap().keyids = vec![id];
    };
    let err = repo
        .rotate_root(swap, &[], std::slice::from_ref(&new), now())
        .unwrap_err();
    assert!(matches!(err, Error::ThresholdNotMet { .. }), "{err}");
    let err = repo
        .rotate_root(swap, std::slice::from_ref(&old), &[], now())
        .unwrap_err();
    assert!(matches!(err, Error::ThresholdNotMet { .. }), "{err}");
    repo.rotate_root(swap, &[old], std::slice::from_ref(&new), now())
        .unwrap();
    let files = repo.commit(now()).unwrap();
    assert!(files.iter().any(|f| f.path == "metadata/2.root.json"));
    assert_eq!(repo.root_history().count(), 2);
}

/// A signed root as `keyshare root merge` writes it: indented, with a
/// final newline.
fn ceremony_file(root: Root, by: &[&SharedSigner]) -> Vec<u8> {
    let refs: Vec<&dyn Signer> = by.iter().map(|s| s.as_ref() as &dyn Signer).collect();
    let mut bytes = serde_json::to_vec_pretty(&sign(root, &refs).unwrap()).unwrap();
    bytes.push(b'\n');
    bytes
}

#[test]
fn a_root_signed_elsewhere_is_published_byte_for_byte() {
    let root_key = signer(Scheme::EcdsaP256Sha256);
    let online = [
        ("targets", signer(Scheme::Ed25519)),
        ("snapshot", signer(Scheme::Ed25519)),
        ("timestamp", signer(Scheme::Ed25519)),
    ];
    let spec = |s: &SharedSigner| RoleSpec::from_signers(std::slice::from_ref(s), 1).unwrap();
    let specs = [
        spec(&root_key),
        spec(&online[0].1),
        spec(&online[1].1),
        spec(&online[2].1),
    ];
    let root = build_root(
        1,
        now() + Duration::days(365),
        [
            ("root", &specs[0]),
            ("targets", &specs[1]),
            ("snapshot", &specs[2]),
            ("timestamp", &specs[3]),
        ],
    )
    .unwrap();
    let v1 = ceremony_file(root.clone(), &[&root_key]);
    let compact = to_bytes(&sign(root.clone(), &[root_key.as_ref()]).unwrap()).unwrap();
    assert_ne!(v1, compact);
    let signers: BTreeMap<RoleName, Vec<SharedSigner>> = online
        .iter()
        .map(|(role, s)| (RoleName::new(*role), vec![s.clone()]))
        .collect();
    let mut repo = Repository::new(&v1, signers.clone(), Options::default(), now()).unwrap();
    let mut all = BTreeMap::new();
    let files = repo.commit(now()).unwrap();
    assert_eq!(&file(&files, "metadata/1.root.json").bytes[..], &v1[..]);
    all.extend(files.into_iter().map(|f| (f.path, f.bytes.to_vec())));

    // A changed byte inside `signed` is refused; a changed layout is
    // the same signed root.
    let mut next = root;
    next.version = 2;
    let v2 = ceremony_file(next, &[&root_key]);
    let text = String::from_utf8(v2.clone()).unwrap();
    let tampered = text.replacen(
        "\"consistent_snapshot\": true",
        "\"consistent_snapshot\": false",
        1,
    );
    assert_ne!(tampered, text);
    let err = repo.add_root(tampered.as_bytes()).unwrap_err();
    assert!(matches!(err, Error::BadSignature { .. }), "{err}");
    assert_eq!(repo.root_history().count(), 1);
    repo.add_root(&v2).unwrap();
    let files = repo.commit(now()).unwrap();
    assert_eq!(&file(&files, "metadata/2.root.json").bytes[..], &v2[..]);
    all.extend(files.into_iter().map(|f| (f.path, f.bytes.to_vec())));

    // The same bytes in the current files, after a restore, and for a
    // client bootstrapped from either file.
    let restored = restore_from(&all, signers).unwrap();
    for published in [published_files(&repo), published_files(&restored)] {
        assert_eq!(published["metadata/1.root.json"], v1);
        assert_eq!(published["metadata/2.root.json"], v2);
    }
    assert_eq!(
        restored.root_history().collect::<Vec<_>>(),
        [&v1[..], &v2[..]]
    );
    let mut set = crate::client::TrustedSet::new(&v1, now()).unwrap();
    set.update_root(&v2).unwrap();
    crate::client::TrustedSet::new(&v2, now()).unwrap();
}

#[test]
fn refresh_resigns_only_what_expires_soon() {
    let (mut repo, _) = new_repo();
    repo.commit(now()).unwrap();
    assert!(repo
        .refresh_expiring(now(), Duration::hours(1))
        .unwrap()
        .is_empty());
    let later = now() + Duration::hours(23);
    let files = repo.refresh_expiring(later, Duration::hours(2)).unwrap();
    let names: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        names,
        ["metadata/2.snapshot.json", "metadata/timestamp.json"]
    );
    assert_eq!(
        repo.timestamp().unwrap().signed.expires.time(),
        later + Duration::days(1)
    );
}

#[test]
fn current_files_match_what_commits_published() {
    let (mut repo, _) = new_repo();
    let mut published = BTreeMap::new();
    for f in repo.commit(now()).unwrap() {
        published.insert(f.path.clone(), f);
    }
    repo.set_target("targets", "x", b"1", None).unwrap();
    for f in repo.commit(now()).unwrap() {
        published.insert(f.path.clone(), f);
    }
    for f in repo.current_files().unwrap() {
        assert_eq!(published.get(&f.path), Some(&f), "{}", f.path);
    }
}

#[test]
fn bad_target_paths_are_refused() {
    let (mut repo, _) = new_repo();
    for bad in ["", "/abs", "a/../b", "a//b"] {
        assert!(
            repo.set_target("targets", bad, b"", None).is_err(),
            "{bad:?}"
        );
    }
}

fn published_files(repo: &Repository) -> BTreeMap<String, Vec<u8>> {
    repo.current_files()
        .unwrap()
        .into_iter()
        .map(|f| (f.path, f.bytes.to_vec()))
        .collect()
}

/// What `files` publish without the targets roles: every root, the
/// timestamp and the snapshot it lists.
fn published_head(files: &BTreeMap<String, Vec<u8>>) -> Published<'_> {
    let mut published = Published::default();
    let mut n = 1;
    while let Some(root) = files.get(&format!("metadata/{n}.root.json")) {
        published.roots.push(root);
        n += 1;
    }
    published.timestamp = &files["metadata/timestamp.json"];
    let ts: Signed<Timestamp> = serde_json::from_slice(published.timestamp).unwrap();
    let v = ts.signed.snapshot_meta().version;
    published.snapshot = &files[&format!("metadata/{v}.snapshot.json")];
    published
}

fn restore_from(
    files: &BTreeMap<String, Vec<u8>>,
    signers: BTreeMap<RoleName, Vec<SharedSigner>>,
) -> Result<Repository> {
    let mut published = published_head(files);
    let snap: Signed<Snapshot> = serde_json::from_slice(published.snapshot).unwrap();
    for (file, meta) in &snap.signed.meta {
        let name = file.strip_suffix(".json").unwrap();
        let path = format!("metadata/{}.{}.json", meta.version, encode_role(name));
        published.targets.insert(name.to_owned(), &files[&path]);
    }
    Repository::restore(&published, signers, Options::default())
}

#[test]
fn restored_repository_continues_where_it_left_off() {
    let targets_key = signer(Scheme::Ed25519);
    let snapshot_key = signer(Scheme::EcdsaP256Sha256);
    let timestamp_key = signer(Scheme::Ed25519);
    let root_key = signer(Scheme::Ed25519);
    let mut repo = Repository::create(
        std::slice::from_ref(&root_key),
        1,
        [
            ("targets", vec![targets_key.clone()]),
            ("snapshot", vec![snapshot_key.clone()]),
            ("timestamp", vec![timestamp_key.clone()]),
        ],
        Options::default(),
        now(),
    )
    .unwrap();
    let team = signer(Scheme::Ed25519);
    let gone = signer(Scheme::Ed25519);
    for (name, key) in [("team-a", &team), ("team-old", &gone)] {
        repo.delegate(
            "targets",
            delegated(name, &[&format!("namespaces/{name}/*")], key),
            vec![(key.key_id().clone(), key.public_key().clone())],
            vec![key.clone()],
            now(),
        )
        .unwrap();
    }
    let mut all = BTreeMap::new();
    let mut keep = |files: Vec<File>| {
        for f in files {
            all.insert(f.path.clone(), f.bytes.to_vec());
        }
    };
    keep(vec![repo
        .set_target("team-a", "namespaces/team-a/trust.json", b"1", None)
        .unwrap()]);
    keep(repo.commit(now()).unwrap());
    repo.undelegate("team-old").unwrap();
    keep(repo.commit(now()).unwrap());
    let new_root = signer(Scheme::Ed25519);
    let spec = RoleSpec::from_signers(std::slice::from_ref(&new_root), 1).unwrap();
    repo.rotate_root(
        |r| {
            let (id, key) = spec.keys[0].clone();
            r.keys.insert(id.clone(), key);
            r.roles.get_mut("root").unwrap().keyids = vec![id];
        },
        &[root_key],
        &[new_root],
        now(),
    )
    .unwrap();
    keep(repo.commit(now()).unwrap());
    assert_eq!(published_files(&repo).len(), 2 + 3 + 2);

    let signers = BTreeMap::from([
        (RoleName::new("targets"), vec![targets_key]),
        (RoleName::new("snapshot"), vec![snapshot_key]),
        (RoleName::new("timestamp"), vec![timestamp_key]),
        (RoleName::new("team-a"), vec![team]),
    ]);
    let mut back = restore_from(&all, signers).unwrap();
    assert_eq!(published_files(&back), published_files(&repo));
    assert_eq!(back.root().signed.version, 2);
    assert_eq!(
        back.delegated_roles()
            .map(|r| r.as_str())
            .collect::<Vec<_>>(),
        ["team-a"]
    );
    assert!(
        back.commit(now()).unwrap().is_empty(),
        "nothing is staged after a restore"
    );

    back.set_target("team-a", "namespaces/team-a/trust.json", b"2", None)
        .unwrap();
    let files = back.commit(now()).unwrap();
    let names: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
    assert!(names.contains(&"metadata/2.team-a.json"), "{names:?}");
    assert!(names.contains(&"metadata/4.snapshot.json"), "{names:?}");
    assert!(!names.iter().any(|n| n.ends_with("root.json")), "{names:?}");
    let snap = back.snapshot().unwrap();
    assert_eq!(
        snap.signed.meta["team-old.json"].version, 1,
        "removed role stays listed"
    );

    // A client that trusts root v1 follows the restored repository.
    for f in files {
        all.insert(f.path.clone(), f.bytes.to_vec());
    }
    let mut set = crate::client::TrustedSet::new(&all["metadata/1.root.json"], now()).unwrap();
    set.update_root(&all["metadata/2.root.json"]).unwrap();
    set.update_timestamp(&all["metadata/timestamp.json"])
        .unwrap();
    set.update_snapshot(&all["metadata/4.snapshot.json"], false)
        .unwrap();
    set.update_targets(&all["metadata/2.targets.json"]).unwrap();
    set.update_delegated_targets(&all["metadata/2.team-a.json"], "team-a", "targets")
        .unwrap();
}

#[test]
fn restore_refuses_tampered_or_missing_files() {
    let (mut repo, _) = new_repo();
    let team = signer(Scheme::Ed25519);
    repo.delegate(
        "targets",
        delegated("team-a", &["namespaces/team-a/*"], &team),
        vec![(team.key_id().clone(), team.public_key().clone())],
        vec![team],
        now(),
    )
    .unwrap();
    repo.commit(now()).unwrap();
    let good = published_files(&repo);
    assert!(restore_from(&good, BTreeMap::new()).is_ok());

    // A role re-signed by a key its delegator does not list.
    let mut forged = good.clone();
    let mut team_a: Signed<Targets> =
        serde_json::from_slice(&forged["metadata/1.team-a.json"]).unwrap();
    team_a
        .signed
        .targets
        .insert("namespaces/team-a/x".into(), TargetFile::from_bytes(b"x"));
    let intruder = InMemorySigner::generate(Scheme::Ed25519).unwrap();
    let resigned = sign(team_a.signed, &[&intruder]).unwrap();
    forged.insert(
        "metadata/1.team-a.json".into(),
        to_bytes(&resigned).unwrap(),
    );
    let err = restore_from(&forged, BTreeMap::new()).unwrap_err();
    assert!(
        matches!(&err, Error::ThresholdNotMet { role, .. } if role.as_str() == "team-a"),
        "{err}"
    );

    // A timestamp signed by the wrong key.
    let mut bad_ts = good.clone();
    let ts: Signed<Timestamp> = serde_json::from_slice(&bad_ts["metadata/timestamp.json"]).unwrap();
    bad_ts.insert(
        "metadata/timestamp.json".into(),
        to_bytes(&sign(ts.signed, &[&intruder]).unwrap()).unwrap(),
    );
    let err = restore_from(&bad_ts, BTreeMap::new()).unwrap_err();
    assert!(matches!(err, Error::ThresholdNotMet { .. }), "{err}");

    // A snapshot that is not the one timestamp lists.
    let mut bad_snap = good;
    let snap = bad_snap.get_mut("metadata/1.snapshot.json").unwrap();
    snap.push(b' ');
    let err = restore_from(&bad_snap, BTreeMap::new()).unwrap_err();
    assert!(matches!(err, Error::LengthMismatch { .. }), "{err}");
}

#[test]
fn bins_signed_from_their_kept_canonical_form_verify_after_every_change() {
    // Targets listed in the bins directly (as trust documents are), set,
    // replaced, moved and removed over several commits, one with a control
    // character in a custom field: after each commit every bin verifies as a
    // client checks it, lists exactly what was staged, and the repository
    // restores from the files.
    let (mut repo, layout, signers) = binned_repo();
    repo.commit(now()).unwrap();
    let mut expected: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let path = |i: usize| format!("namespaces/ns-{i:03}/trust.json");
    for round in 0..6usize {
        for i in (round..40).step_by(round + 1) {
            let p = path(i);
            let bin = layout.role_for_target(&p);
            if (i + round) % 5 == 0 && expected.contains_key(&p) {
                assert!(repo.remove_target(bin.as_str(), &p).unwrap());
                expected.remove(&p);
            } else {
                let bytes = format!("{round}-{i}").into_bytes();
                let custom =
                    (round == 3 && i % 7 == 0).then(|| serde_json::json!({"note": "a\nb"}));
                repo.set_target(bin.as_str(), &p, &bytes, custom).unwrap();
                expected.insert(p, bytes);
            }
        }
        repo.commit(now()).unwrap();
        let current = published_files(&repo);
        let mut set =
            crate::client::TrustedSet::new(&current["metadata/1.root.json"], now()).unwrap();
        set.update_timestamp(&current["metadata/timestamp.json"])
            .unwrap();
        let snapshot_version = repo.snapshot().unwrap().signed.version;
        set.update_snapshot(
            &current[&format!("metadata/{snapshot_version}.snapshot.json")],
            false,
        )
        .unwrap();
        let targets_version = repo.snapshot().unwrap().signed.meta["targets.json"].version;
        set.update_targets(&current[&format!("metadata/{targets_version}.targets.json")])
            .unwrap();
        let mut listed = BTreeMap::new();
        for bin in layout.bin_names() {
            let v = repo.snapshot().unwrap().signed.meta[&format!("{bin}.json")].version;
            let file = &current[&format!("metadata/{v}.{bin}.json")];
            set.update_delegated_targets(file, bin.as_str(), "targets")
                .unwrap_or_else(|e| panic!("round {round}, {bin}: {e}"));
            let signed: Signed<crate::metadata::Targets> = serde_json::from_slice(file).unwrap();
            for (p, f) in signed.signed.targets {
                listed.insert(p, f);
            }
        }
        assert_eq!(
            listed.keys().collect::<Vec<_>>(),
            expected.keys().collect::<Vec<_>>(),
            "round {round}"
        );
        for (p, bytes) in &expected {
            listed[p].check_bytes(p, bytes).unwrap();
        }
        restore_from(&current, signers.clone()).unwrap();
    }
}

#[test]
fn a_kept_canonical_form_that_lost_a_target_is_made_again_before_signing() {
    // Should the kept canonical JSON of a bin ever miss a change (a bug),
    // the bin is not signed over it: it is made again from the role, so
    // the published bin still lists every target the role lists.
    let (mut repo, layout, _) = binned_repo();
    let paths = ["namespaces/a/trust.json", "namespaces/b/trust.json"];
    let bin = layout.role_for_target(paths[0]);
    for p in paths {
        repo.set_target(bin.as_str(), p, p.as_bytes(), None)
            .unwrap();
    }
    repo.commit(now()).unwrap();
    // Signed in place from the second version on: the memo is made then.
    repo.set_target(bin.as_str(), paths[0], b"a2", None)
        .unwrap();
    repo.commit(now()).unwrap();
    let role = repo.targets.get_mut(bin.as_str()).unwrap();
    role.canonical.as_mut().unwrap().remove(paths[1]);
    repo.set_target(bin.as_str(), "namespaces/c/trust.json", b"c", None)
        .unwrap();
    let files = repo.commit(now()).unwrap();
    let file = files
        .iter()
        .find(|f| f.path.ends_with(&format!(".{bin}.json")))
        .unwrap();
    let signed: Signed<crate::metadata::Targets> = serde_json::from_slice(&file.bytes).unwrap();
    assert!(
        signed.signed.targets.contains_key(paths[1]),
        "{:?}",
        signed.signed.targets.keys()
    );
    let current = published_files(&repo);
    let mut set = crate::client::TrustedSet::new(&current["metadata/1.root.json"], now()).unwrap();
    set.update_timestamp(&current["metadata/timestamp.json"])
        .unwrap();
    let v = repo.snapshot().unwrap().signed.version;
    set.update_snapshot(&current[&format!("metadata/{v}.snapshot.json")], false)
        .unwrap();
    let t = repo.snapshot().unwrap().signed.meta["targets.json"].version;
    set.update_targets(&current[&format!("metadata/{t}.targets.json")])
        .unwrap();
    set.update_delegated_targets(&file.bytes, bin.as_str(), "targets")
        .unwrap();
}

/// `repo.advance` to the repository `files` hold, given only the roles
/// `repo.roles_to_load` names (as a server reads them from its store).
fn advance_to(
    repo: &mut Repository,
    files: &BTreeMap<String, Vec<u8>>,
) -> (Result<Option<Vec<File>>>, usize) {
    let mut published = published_head(files);
    let load = repo.roles_to_load(published.snapshot).unwrap();
    for (name, version) in &load {
        let path = format!("metadata/{version}.{}.json", encode_role(name));
        published.targets.insert(name.clone(), &files[&path]);
    }
    (repo.advance(&published), load.len())
}

fn keep(all: &mut BTreeMap<String, Vec<u8>>, files: Vec<File>) {
    for f in files {
        all.insert(f.path, f.bytes.to_vec());
    }
}

#[test]
fn a_repository_advanced_to_what_another_published_is_the_one_restore_makes() {
    // Two servers on one store: `a` publishes, `b` (restored from the
    // same files) takes in only what changed, then publishes on top.
    let (mut a, layout, signers) = binned_repo();
    let mut all = BTreeMap::new();
    keep(&mut all, a.commit(now()).unwrap());
    let mut b = restore_from(&all, signers.clone()).unwrap();
    for round in 0..4 {
        let p = format!("namespaces/ns-{round}/trust.json");
        let bin = layout.role_for_target(&p);
        keep(
            &mut all,
            vec![a.set_target(bin.as_str(), &p, p.as_bytes(), None).unwrap()],
        );
        if round == 2 {
            // An org document: top-level targets changes too.
            keep(
                &mut all,
                vec![a
                    .set_target("targets", "org/revocations.json", b"[]", None)
                    .unwrap()],
            );
        }
        keep(&mut all, a.commit(now()).unwrap());
        let (taken, loaded) = advance_to(&mut b, &all);
        let taken = taken.unwrap().expect("advanced");
        assert_eq!(loaded, if round == 2 { 2 } else { 1 }, "round {round}");
        let paths: Vec<&str> = taken.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths.len(), loaded + 2, "{paths:?}");
        assert!(paths.contains(&"metadata/timestamp.json"), "{paths:?}");
        assert_eq!(published_files(&b), published_files(&a), "round {round}");
        for f in &taken {
            assert_eq!(all[&f.path], f.bytes.to_vec(), "{}", f.path);
        }
    }
    // `b` publishes the next version on top, which restores (and so
    // verifies as a client checks it).
    let p = "namespaces/from-b/trust.json";
    let bin = layout.role_for_target(p);
    keep(
        &mut all,
        vec![b.set_target(bin.as_str(), p, b"b", None).unwrap()],
    );
    keep(&mut all, b.commit(now()).unwrap());
    let restored = restore_from(&all, signers).unwrap();
    assert_eq!(published_files(&restored), published_files(&b));
    assert_eq!(
        b.timestamp().unwrap().signed.version,
        a.timestamp().unwrap().signed.version + 1
    );
    // And `a` follows `b` the same way.
    advance_to(&mut a, &all).0.unwrap().expect("a advanced");
    assert_eq!(published_files(&a), published_files(&b));
}

#[test]
fn advance_refuses_what_restore_refuses_and_changes_nothing() {
    let (mut a, layout, signers) = binned_repo();
    let mut all = BTreeMap::new();
    keep(&mut all, a.commit(now()).unwrap());
    let mut b = restore_from(&all, signers).unwrap();
    let before = published_files(&b);
    let p = "namespaces/team-a/trust.json";
    let bin = layout.role_for_target(p);
    keep(
        &mut all,
        vec![a.set_target(bin.as_str(), p, b"1", None).unwrap()],
    );
    keep(&mut all, a.commit(now()).unwrap());
    let intruder = InMemorySigner::generate(Scheme::Ed25519).unwrap();
    let resign = |bytes: &[u8]| -> Vec<u8> {
        let env: Signed<Targets> = serde_json::from_slice(bytes).unwrap();
        to_bytes(&sign(env.signed, &[&intruder]).unwrap()).unwrap()
    };

    // The changed bin re-signed by a key targets does not give it.
    let mut forged = all.clone();
    let path = format!("metadata/2.{bin}.json");
    forged.insert(path.clone(), resign(&all[&path]));
    let (err, _) = advance_to(&mut b, &forged);
    let err = err.unwrap_err();
    assert!(
        matches!(
            &err,
            Error::LengthMismatch { .. }
                | Error::HashMismatch { .. }
                | Error::ThresholdNotMet { .. }
        ),
        "{err}"
    );
    assert_eq!(published_files(&b), before);

    // A timestamp signed by the wrong key.
    let mut bad_ts = all.clone();
    let ts: Signed<Timestamp> = serde_json::from_slice(&all["metadata/timestamp.json"]).unwrap();
    bad_ts.insert(
        "metadata/timestamp.json".into(),
        to_bytes(&sign(ts.signed, &[&intruder]).unwrap()).unwrap(),
    );
    let (err, _) = advance_to(&mut b, &bad_ts);
    assert!(matches!(err, Err(Error::ThresholdNotMet { .. })), "{err:?}");
    assert_eq!(published_files(&b), before);

    // A snapshot that is not the one the timestamp lists.
    let mut bad_snap = all.clone();
    bad_snap
        .get_mut("metadata/2.snapshot.json")
        .unwrap()
        .push(b' ');
    let (err, _) = advance_to(&mut b, &bad_snap);
    assert!(matches!(err, Err(Error::LengthMismatch { .. })), "{err:?}");
    assert_eq!(published_files(&b), before);

    // The good files are taken in; the same timestamp again, or the
    // older one, is a rollback.
    advance_to(&mut b, &all).0.unwrap().expect("advanced");
    let now_held = published_files(&b);
    let (err, _) = advance_to(&mut b, &all);
    assert!(matches!(err, Err(Error::Rollback { .. })), "{err:?}");
    let mut older = all.clone();
    older.insert(
        "metadata/timestamp.json".into(),
        before["metadata/timestamp.json"].clone(),
    );
    let (err, _) = advance_to(&mut b, &older);
    assert!(matches!(err, Err(Error::Rollback { .. })), "{err:?}");
    assert_eq!(published_files(&b), now_held);
}

#[test]
fn advance_gives_way_to_a_whole_restore_when_keys_or_roots_change() {
    let (mut a, layout, signers) = binned_repo();
    let mut all = BTreeMap::new();
    keep(&mut all, a.commit(now()).unwrap());
    let mut b = restore_from(&all, signers.clone()).unwrap();
    let before = published_files(&b);

    // Targets hands the bins to another key without the bins re-signed:
    // what `b` verified before is not taken over on trust (and a whole
    // restore refuses the bins).
    let other = signer(Scheme::Ed25519);
    let mut c = restore_from(&all, signers.clone()).unwrap();
    {
        let top = c.targets.get_mut("targets").unwrap();
        let d = top.staged.delegations.as_mut().unwrap();
        d.keys = BTreeMap::from([(other.key_id().clone(), other.public_key().clone())]);
        d.succinct_roles.as_mut().unwrap().keyids = vec![other.key_id().clone()];
        top.dirty = true;
        top.changed.delegations = true;
        top.canonical = None;
    }
    c.pending = true;
    let mut rekeyed = all.clone();
    keep(&mut rekeyed, c.commit(now()).unwrap());
    let (taken, loaded) = advance_to(&mut b, &rekeyed);
    assert_eq!(loaded, 1, "only targets changed");
    assert!(taken.unwrap().is_none());
    assert_eq!(published_files(&b), before);
    assert!(restore_from(&rekeyed, signers.clone()).is_err());

    // Bins re-keyed and re-signed: every bin is loaded and checked.
    let new_key = signer(Scheme::Ed25519);
    a.delegate_succinct(
        "targets",
        bins(&new_key),
        vec![(new_key.key_id().clone(), new_key.public_key().clone())],
        vec![new_key],
        now(),
    )
    .unwrap();
    let mut resigned = all.clone();
    keep(&mut resigned, a.commit(now()).unwrap());
    let (taken, loaded) = advance_to(&mut b, &resigned);
    assert_eq!(loaded, 1 + layout.bin_names().count());
    taken.unwrap().expect("advanced");
    assert_eq!(published_files(&b), published_files(&a));

    // Staged changes, or a new root: only a whole restore will do.
    let (mut a, _, signers) = binned_repo();
    let mut all = BTreeMap::new();
    keep(&mut all, a.commit(now()).unwrap());
    let mut staged = restore_from(&all, signers.clone()).unwrap();
    let mut rooted = restore_from(&all, signers).unwrap();
    keep(
        &mut all,
        vec![a.set_target("targets", "org/x.json", b"x", None).unwrap()],
    );
    keep(&mut all, a.commit(now()).unwrap());
    staged
        .set_target("targets", "org/y.json", b"y", None)
        .unwrap();
    assert!(advance_to(&mut staged, &all).0.unwrap().is_none());
    let mut with_root = all.clone();
    with_root.insert(
        "metadata/2.root.json".into(),
        all["metadata/1.root.json"].clone(),
    );
    assert!(advance_to(&mut rooted, &with_root).0.unwrap().is_none());
}
