#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

//! Metadata signed by keyshare, with each key type, is accepted by
//! python-tuf: `Metadata.verify_delegate` for every role (root chain
//! included) and `ngclient.Updater` refreshing and downloading targets from
//! a directory served over HTTP on loopback (`tests/interop/check_repo.py`).
//!
//! A repository laid out as keyshare-server publishes it (top-level targets
//! delegating to 256 succinct hashed bins, a namespace role delegated from
//! its bin) is followed by `ngclient.Updater` too.
//!
//! Needs a Python with `tuf` 7.x: `KEYSHARE_PYTHON`, or `target/pyenv`
//! made by `scripts/test`. Missing Python is a test failure, not a skip.

use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use keyshare_policy::keys::Scheme;
use keyshare_policy::metadata::{DelegatedRole, RoleName, Unrecognized};
use keyshare_policy::pattern::PathPattern;
use keyshare_policy::repo::{File, Options, Repository, RoleSpec, SharedSigner};
use keyshare_policy::sign::InMemorySigner;
use keyshare_policy::trust::{
    namespace_bin, namespace_bins_of, namespace_shard, shard_path, NamespaceName,
};
use time::OffsetDateTime;

fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("KEYSHARE_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/pyenv/bin/python");
    assert!(
        venv.exists(),
        "python-tuf is needed: run scripts/test once (it creates target/pyenv) or set KEYSHARE_PYTHON"
    );
    venv
}

fn signer(scheme: Scheme) -> SharedSigner {
    Arc::new(InMemorySigner::generate(scheme).unwrap())
}

fn write(dir: &Path, files: &[File]) {
    for f in files {
        let path = dir.join(&f.path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, &f.bytes).unwrap();
    }
}

/// A repository whose every key uses `scheme`: two root versions (the root
/// key rotated), a delegated namespace role, targets in both roles, and a
/// second publish after a change.
fn build(scheme: Scheme, dir: &Path) {
    let now = OffsetDateTime::now_utc();
    let root1 = signer(scheme);
    let mut repo = Repository::create(
        std::slice::from_ref(&root1),
        1,
        [
            ("targets", vec![signer(scheme)]),
            ("snapshot", vec![signer(scheme)]),
            ("timestamp", vec![signer(scheme)]),
        ],
        Options::default(),
        now,
    )
    .unwrap();
    let team = signer(scheme);
    repo.delegate(
        "targets",
        DelegatedRole {
            name: RoleName::new("team-a"),
            keyids: vec![team.key_id().clone()],
            threshold: NonZeroU32::MIN,
            terminating: true,
            paths: Some(vec![PathPattern::new("namespaces/team-a/*")]),
            path_hash_prefixes: None,
            unrecognized: Unrecognized::new(),
        },
        vec![(team.key_id().clone(), team.public_key().clone())],
        vec![team],
        now,
    )
    .unwrap();
    let mut files = vec![
        repo.set_target("targets", "org/peers.json", br#"{"peers":[]}"#, None)
            .unwrap(),
        repo.set_target(
            "team-a",
            "namespaces/team-a/trust.json",
            br#"{"keys":[]}"#,
            Some(serde_json::json!({"owner": "team-a"})),
        )
        .unwrap(),
    ];
    files.extend(repo.commit(now).unwrap());

    // Rotate the root key: v2 is signed by the old and the new key.
    let root2 = signer(scheme);
    let spec = RoleSpec::from_signers(std::slice::from_ref(&root2), 1).unwrap();
    repo.rotate_root(
        |r| {
            let (id, key) = spec.keys[0].clone();
            r.keys.insert(id.clone(), key);
            r.roles.get_mut("root").unwrap().keyids = vec![id];
        },
        &[root1],
        &[root2],
        now,
    )
    .unwrap();
    files.push(
        repo.set_target(
            "team-a",
            "namespaces/team-a/trust.json",
            br#"{"keys":["k1"]}"#,
            None,
        )
        .unwrap(),
    );
    files.extend(repo.commit(now).unwrap());
    write(dir, &files);
}

fn check_with_python_tuf(scheme: Scheme) {
    let dir = tempfile::tempdir().unwrap();
    build(scheme, dir.path());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/check_repo.py");
    let out = Command::new(python())
        .arg(&script)
        .arg(dir.path())
        .args(["org/peers.json", "namespaces/team-a/trust.json"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "python-tuf refused keyshare's {scheme:?} repository:\n{stdout}\n{stderr}"
    );
    // The script's own lines prove both halves ran.
    for line in [
        "ok: root v2 signed by root v1",
        "ok: root v2 signed by root v2",
        "ok: team-a signed by targets",
        "ok: ngclient: refresh",
        "ok: ngclient: trusts root v2",
        "ok: ngclient: download namespaces/team-a/trust.json",
        "all checks passed",
    ] {
        assert!(stdout.contains(line), "missing `{line}` in:\n{stdout}");
    }
}

#[test]
fn python_tuf_accepts_ed25519_repository() {
    check_with_python_tuf(Scheme::Ed25519);
}

#[test]
fn python_tuf_accepts_ecdsa_p256_repository() {
    check_with_python_tuf(Scheme::EcdsaP256Sha256);
}

#[test]
fn python_tuf_accepts_rsa_pss_repository() {
    check_with_python_tuf(Scheme::RsaPssSha256);
}

/// The server's layout: targets -> 256 hashed bins (TAP 15) -> trust
/// document listed in the bin; and, as generic TUF allows, a namespace with
/// a role of its own delegated from its bin (the layout of repositories
/// published before). python-tuf verifies every bin and follows the bin
/// the document's path hashes to.
#[test]
fn python_tuf_follows_succinct_hashed_bins_to_trust_documents() {
    python_tuf_follows_bins(8, "bins-00", "bins-ff");
}

/// The same with 1,024 bins (`init --bins 1024`): bin names three hex
/// digits wide, as TAP 15 and python-tuf name them.
#[test]
fn python_tuf_follows_1024_hashed_bins_to_trust_documents() {
    python_tuf_follows_bins(10, "bins-000", "bins-3ff");
}

fn python_tuf_follows_bins(bits: u32, first: &str, last: &str) {
    let dir = tempfile::tempdir().unwrap();
    let now = OffsetDateTime::now_utc();
    let targets_key = signer(Scheme::Ed25519);
    let mut repo = Repository::create(
        &[signer(Scheme::Ed25519)],
        1,
        [
            ("targets", vec![targets_key.clone()]),
            ("snapshot", vec![signer(Scheme::Ed25519)]),
            ("timestamp", vec![signer(Scheme::Ed25519)]),
        ],
        Options::default(),
        now,
    )
    .unwrap();
    let bins = namespace_bins_of(bits, vec![targets_key.key_id().clone()], NonZeroU32::MIN);
    repo.delegate_succinct(
        "targets",
        bins.clone(),
        vec![(
            targets_key.key_id().clone(),
            targets_key.public_key().clone(),
        )],
        vec![targets_key],
        now,
    )
    .unwrap();
    let team = signer(Scheme::Ed25519);
    let ns = NamespaceName::parse("team-a").unwrap();
    let bin = bins.bin_name(namespace_bin(&bins, &ns));
    repo.delegate(
        bin.as_str(),
        DelegatedRole {
            name: RoleName::new("team-a"),
            keyids: vec![team.key_id().clone()],
            threshold: NonZeroU32::MIN,
            terminating: true,
            paths: Some(vec![PathPattern::new("namespaces/team-a/*")]),
            path_hash_prefixes: None,
            unrecognized: Unrecognized::new(),
        },
        vec![(team.key_id().clone(), team.public_key().clone())],
        vec![team],
        now,
    )
    .unwrap();
    let direct = NamespaceName::parse("team-b").unwrap();
    let direct_bin = bins.bin_name(namespace_bin(&bins, &direct));
    let shard = shard_path(namespace_shard(&ns));
    let mut files = vec![
        repo.set_target("targets", &shard, br#"{"namespaces":[]}"#, None)
            .unwrap(),
        repo.set_target("team-a", &ns.target_path(), br#"{"keys":[]}"#, None)
            .unwrap(),
        repo.set_target(
            direct_bin.as_str(),
            &direct.target_path(),
            br#"{"keys":["b"]}"#,
            None,
        )
        .unwrap(),
    ];
    files.extend(repo.commit(now).unwrap());
    write(dir.path(), &files);

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/check_repo.py");
    let out = Command::new(python())
        .arg(&script)
        .arg(dir.path())
        .args([
            shard.as_str(),
            "namespaces/team-a/trust.json",
            "namespaces/team-b/trust.json",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "python-tuf refused the hashed-bin layout:\n{stdout}\n{stderr}"
    );
    for line in [
        format!("ok: {first} signed by targets"),
        format!("ok: {last} signed by targets"),
        format!("ok: team-a signed by {bin}"),
        "ok: ngclient: download namespaces/team-a/trust.json".to_owned(),
        "ok: ngclient: download namespaces/team-b/trust.json".to_owned(),
        "all checks passed".to_owned(),
    ] {
        assert!(stdout.contains(&line), "missing `{line}` in:\n{stdout}");
    }
}
