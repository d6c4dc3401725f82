//! A repository published before trust documents were listed in the hashed
//! bins (a role per namespace, delegated from its bin) migrates in one
//! publish; keyshare's verifier and python-tuf's `ngclient.Updater`, each
//! keeping the metadata it verified before the migration, refresh after it
//! and get the same trust documents, then follow the new layout.
//!
//! Needs a Python with `tuf` 7.x: `KEYSHARE_PYTHON`, or `target/pyenv`
//! (`scripts/pyenv`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use time::OffsetDateTime;

use crate::common::{new_key, Client, Server};

const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../server/tests/interop/updater_against_server.py"
);

/// python-tuf's Updater with its metadata cache kept in `metadata`:
/// `targets` downloaded and verified; their bytes by path.
fn python_tuf(
    base: &str,
    root: &Path,
    metadata: &Path,
    targets: &[&str],
) -> BTreeMap<String, Vec<u8>> {
    let out = tempfile::tempdir().unwrap();
    let run = Command::new(keyshare_testkit::python())
        .arg(SCRIPT)
        .arg("--out")
        .arg(out.path())
        .arg("--metadata-dir")
        .arg(metadata)
        .arg(base)
        .arg(root)
        .args(targets)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "python-tuf failed:\n{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    targets
        .iter()
        .map(|t| ((*t).to_owned(), std::fs::read(out.path().join(t)).unwrap()))
        .collect()
}

/// The trust documents the verifier keeps, by path.
fn verifier_documents(client: &Client) -> BTreeMap<String, Vec<u8>> {
    let run = client.run(&["refresh", "--output", "json"]);
    run.assert_ok();
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(client.cache().join(manifest_name(client))).unwrap())
            .unwrap();
    manifest["targets"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(p, _)| p.starts_with("namespaces/"))
        .map(|(p, sha)| {
            let blob = find_blob(&client.cache(), sha.as_str().unwrap());
            (p.clone(), blob)
        })
        .collect()
}

fn manifest_name(client: &Client) -> String {
    client
        .snapshot()
        .into_iter()
        .map(|(p, _)| p)
        .find(|p| p.file_name().is_some_and(|n| n == "state.json"))
        .map(|p| {
            p.strip_prefix(client.cache())
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .expect("a state.json in the cache")
}

fn find_blob(dir: &Path, sha: &str) -> Vec<u8> {
    let files: Vec<_> = walk(dir);
    let (_, bytes) = files
        .into_iter()
        .find(|(p, b)| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().contains(sha))
                || keyshare_policy::hash::sha256_hex(b) == sha
        })
        .unwrap_or_else(|| panic!("no blob {sha} in the cache"));
    bytes
}

fn walk(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let b = std::fs::read(&p).unwrap();
                out.push((p, b));
            }
        }
    }
    out
}

#[test]
fn verifiers_that_refreshed_before_the_migration_follow_it_and_keep_their_documents() {
    let (ka, _) = new_key();
    let (kb, _) = new_key();
    let server = Server::start_legacy(&[("team-a", "ka", &ka), ("team-b", "kb", &kb)]);
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("1.root.json");
    std::fs::write(&root, server.root1()).unwrap();
    let metadata = tmp.path().join("python-tuf-metadata");
    let paths = [
        "namespaces/team-a/trust.json",
        "namespaces/team-b/trust.json",
    ];

    // Before: the earlier layout, a role per namespace.
    let ts = server.file("metadata/timestamp.json").unwrap();
    let ts: serde_json::Value = serde_json::from_slice(&ts).unwrap();
    let sv = ts["signed"]["meta"]["snapshot.json"]["version"]
        .as_u64()
        .unwrap();
    let snapshot: serde_json::Value = serde_json::from_slice(
        &server
            .file(&format!("metadata/{sv}.snapshot.json"))
            .unwrap(),
    )
    .unwrap();
    assert!(
        snapshot["signed"]["meta"].get("team-a.json").is_some(),
        "{snapshot}"
    );

    let client = Client::new();
    client.init(&server.url, &server.root1_sha256());
    let keyshare_before = verifier_documents(&client);
    assert_eq!(keyshare_before.len(), 2, "{keyshare_before:?}");
    let python_before = python_tuf(&server.url, &root, &metadata, &paths);
    for p in paths {
        assert_eq!(keyshare_before[p], python_before[p], "{p}");
    }
    let (code, v) = client.decide_json("registry.acme.io/team-a/app", &["--key-id", "ka"]);
    assert_eq!(code, 0, "{v}");

    // The migration: one publish.
    let migrated = server
        .publisher
        .migrate_layout(OffsetDateTime::now_utc())
        .unwrap()
        .expect("a repository with namespace roles migrates");
    assert!(
        !migrated.files.iter().any(|f| f.contains(".team-")),
        "namespace roles are not re-signed: {:?}",
        migrated.files
    );

    // After: both clients, starting from what they kept, accept it and
    // get the very same documents.
    let keyshare_after = verifier_documents(&client);
    assert_eq!(keyshare_after, keyshare_before);
    let python_after = python_tuf(&server.url, &root, &metadata, &paths);
    assert_eq!(python_after, python_before);
    let (code, v) = client.decide_json("registry.acme.io/team-a/app", &["--key-id", "ka"]);
    assert_eq!(code, 0, "{v}");
    let (code, v) = client.decide_json("registry.acme.io/team-b/app", &["--key-id", "kb"]);
    assert_eq!(code, 0, "{v}");

    // And a change after it reaches both through the bin.
    let (kc, _) = new_key();
    server.add_key("team-a", "kc", &kc, None);
    let keyshare_next = verifier_documents(&client);
    let python_next = python_tuf(&server.url, &root, &metadata, &paths);
    assert_eq!(keyshare_next, python_next);
    assert_ne!(keyshare_next[paths[0]], keyshare_before[paths[0]]);
    assert_eq!(keyshare_next[paths[1]], keyshare_before[paths[1]]);
    let (code, v) = client.decide_json("registry.acme.io/team-a/app", &["--key-id", "kc"]);
    assert_eq!(code, 0, "{v}");
}
