#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

//! The container on its own: what is written reads back; lengths are never
//! trusted before the bytes are there. (Verification against real
//! repositories is tested in server/tests/airgap_bundle.rs.)

use std::collections::BTreeMap;
use std::sync::Arc;

use keyshare_airgap::format::{entry_for, MAX_ENTRY_BYTES};
use keyshare_airgap::{
    read_bundle, write_bundle, Error, Manifest, MAGIC, MANIFEST_FORMAT, MANIFEST_TYPE,
    MAX_MANIFEST_BYTES,
};
use keyshare_policy::datetime::Expires;
use keyshare_policy::keys::Scheme;
use keyshare_policy::sign::{sign, to_bytes, InMemorySigner};
use time::OffsetDateTime;

fn manifest(files: &BTreeMap<String, Arc<[u8]>>) -> Manifest {
    let now = OffsetDateTime::from_unix_timestamp(1_900_000_000).unwrap();
    Manifest {
        type_: MANIFEST_TYPE.into(),
        format: MANIFEST_FORMAT.into(),
        created: Expires::new(now),
        expires: Expires::new(now + time::Duration::days(1)),
        root_version: 1,
        timestamp_version: 1,
        snapshot_version: 1,
        timestamp_sha256: "0".repeat(64),
        entries: files.iter().map(|(p, b)| entry_for(p, b)).collect(),
    }
}

fn files() -> BTreeMap<String, Arc<[u8]>> {
    BTreeMap::from([
        ("metadata/1.root.json".to_owned(), Arc::from(&b"root"[..])),
        ("targets/org/x.json".to_owned(), Arc::from(&b""[..])),
        ("metadata/timestamp.json".to_owned(), Arc::from(&b"ts"[..])),
    ])
}

#[test]
fn a_written_bundle_reads_back_entry_for_entry() {
    let files = files();
    let key = InMemorySigner::generate(Scheme::Ed25519).unwrap();
    let signed = sign(manifest(&files), &[&key]).unwrap();
    let mut out = Vec::new();
    let mut reports = Vec::new();
    let size = write_bundle(&mut out, &signed, &files, &mut |n| reports.push(n)).unwrap();
    assert_eq!(size, out.len() as u64);
    assert_eq!(reports.last(), Some(&size));
    let raw = read_bundle(&mut &out[..], &mut |_| {}).unwrap();
    assert_eq!(raw.files, files);
    assert_eq!(raw.manifest.signed, signed.signed);
}

#[test]
fn the_writer_refuses_files_that_differ_from_the_manifest() {
    let files = files();
    let key = InMemorySigner::generate(Scheme::Ed25519).unwrap();
    let signed = sign(manifest(&files), &[&key]).unwrap();
    let mut other = files.clone();
    other.insert("metadata/timestamp.json".into(), Arc::from(&b"tS"[..]));
    let err = write_bundle(&mut Vec::new(), &signed, &other, &mut |_| {}).unwrap_err();
    assert!(
        matches!(&err, Error::Entry { path, .. } if path == "metadata/timestamp.json"),
        "{err}"
    );
}

#[test]
fn huge_claimed_lengths_are_refused_without_reading_or_allocating_them() {
    let mut bundle = MAGIC.to_vec();
    bundle.extend_from_slice(&(MAX_MANIFEST_BYTES + 1).to_be_bytes());
    let err = read_bundle(&mut &bundle[..], &mut |_| {}).unwrap_err();
    assert!(err.to_string().contains("over the limit"), "{err}");

    let mut bundle = MAGIC.to_vec();
    bundle.extend_from_slice(&u64::MAX.to_be_bytes());
    assert!(read_bundle(&mut &bundle[..], &mut |_| {}).is_err());

    // An entry claiming more than the limit.
    let files = files();
    let key = InMemorySigner::generate(Scheme::Ed25519).unwrap();
    let mut m = manifest(&files);
    m.entries[0].length = MAX_ENTRY_BYTES + 1;
    let manifest = to_bytes(&sign(m, &[&key]).unwrap()).unwrap();
    let mut bundle = MAGIC.to_vec();
    bundle.extend_from_slice(&(manifest.len() as u64).to_be_bytes());
    bundle.extend_from_slice(&manifest);
    let err = read_bundle(&mut &bundle[..], &mut |_| {}).unwrap_err();
    assert!(err.to_string().contains("over the limit"), "{err}");
}

#[test]
fn manifests_with_unsafe_or_repeated_paths_are_refused() {
    let key = InMemorySigner::generate(Scheme::Ed25519).unwrap();
    for bad in [
        "../etc/passwd",
        "metadata/../x",
        "elsewhere/x",
        "metadata/1.root.json",
    ] {
        let mut m = manifest(&files());
        m.entries[1].path = bad.into();
        let manifest = to_bytes(&sign(m, &[&key]).unwrap()).unwrap();
        let mut bundle = MAGIC.to_vec();
        bundle.extend_from_slice(&(manifest.len() as u64).to_be_bytes());
        bundle.extend_from_slice(&manifest);
        let err = read_bundle(&mut &bundle[..], &mut |_| {}).unwrap_err();
        assert!(matches!(err, Error::Manifest(_)), "{bad}: {err}");
    }
}
