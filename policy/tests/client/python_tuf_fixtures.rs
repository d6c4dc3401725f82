//! The sans-IO client reads repositories written by python-tuf
//! (`tests/data/python-tuf`, see its README): every expected target is found
//! in the expected role and its download verifies; every absent path is not
//! found; root chain and versions are the ones python-tuf reports.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use keyshare_policy::client::{verify_target, Config, Lookup, Updater};
use serde_json::Value;
use time::OffsetDateTime;

fn fixture_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/python-tuf")
        .join(name)
}

/// Every file under `dir`, by path relative to it.
fn read_tree(dir: &Path, prefix: &str, out: &mut BTreeMap<String, Vec<u8>>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let name = format!("{prefix}{}", entry.file_name().to_string_lossy());
        if entry.file_type().unwrap().is_dir() {
            read_tree(&entry.path(), &format!("{name}/"), out);
        } else {
            out.insert(name, std::fs::read(entry.path()).unwrap());
        }
    }
}

fn check(fixture: &str) {
    let dir = fixture_dir(fixture);
    let mut metadata = BTreeMap::new();
    read_tree(&dir.join("metadata"), "", &mut metadata);
    let mut targets = BTreeMap::new();
    read_tree(&dir.join("targets"), "", &mut targets);
    let expected: Value =
        serde_json::from_slice(&std::fs::read(dir.join("expected.json")).unwrap()).unwrap();

    let now = OffsetDateTime::now_utc();
    let mut updater = Updater::new(&metadata["1.root.json"], now, Config::default()).unwrap();
    let fetch = |request: &keyshare_policy::client::Request| {
        if request.is_local() {
            None
        } else {
            metadata.get(&request.remote_name()).cloned()
        }
        .into()
    };
    updater.refresh_with(fetch).unwrap();
    let trusted = updater.trusted();
    let last_root = expected["root_versions"]
        .as_array()
        .unwrap()
        .last()
        .unwrap();
    assert_eq!(
        trusted.root().version,
        last_root.as_u64().unwrap(),
        "{fixture}"
    );
    assert_eq!(
        trusted.timestamp().unwrap().version,
        expected["timestamp_version"].as_u64().unwrap(),
        "{fixture}"
    );
    assert_eq!(
        trusted.snapshot().unwrap().version,
        expected["snapshot_version"].as_u64().unwrap(),
        "{fixture}"
    );

    for (path, want) in expected["targets"].as_object().unwrap() {
        let lookup = updater.find_target_with(path, fetch).unwrap();
        let Lookup::Found { role, target_file } = lookup else {
            panic!("{fixture}: {path} not found");
        };
        assert_eq!(
            role.as_str(),
            want["role"].as_str().unwrap(),
            "{fixture}: {path}"
        );
        assert_eq!(target_file.length, want["length"].as_u64().unwrap());
        assert_eq!(target_file.sha256(), want["sha256"].as_str());
        let name = updater.target_remote_name(path, &target_file);
        verify_target(&target_file, path, &targets[&name]).unwrap();
    }
    for path in expected["absent"].as_object().unwrap().keys() {
        assert_eq!(
            updater.find_target_with(path, fetch),
            Ok(Lookup::NotFound),
            "{fixture}: {path}"
        );
    }
    for (role, want) in expected["roles"].as_object().unwrap() {
        if let Some(t) = updater.trusted().targets(role) {
            assert_eq!(
                t.version,
                want["version"].as_u64().unwrap(),
                "{fixture}: {role}"
            );
        }
    }
}

#[test]
fn python_tuf_basic_ed25519_repository_is_read() {
    check("basic-ed25519");
}

#[test]
fn python_tuf_basic_ecdsa_repository_is_read() {
    check("basic-ecdsa");
}

#[test]
fn python_tuf_basic_rsa_repository_is_read() {
    check("basic-rsa");
}

#[test]
fn python_tuf_basic_rsa_pkcs1v15_repository_is_read() {
    check("basic-rsa-pkcs1v15");
}

#[test]
fn python_tuf_delegations_repository_is_read() {
    check("delegations");
}

#[test]
fn python_tuf_hashed_bins_repository_is_read() {
    check("hashed-bins");
}

#[test]
fn python_tuf_rotated_root_repository_is_read() {
    check("rotated-root");
}

#[test]
fn python_tuf_custom_fields_repository_is_read() {
    check("custom-fields");
}
