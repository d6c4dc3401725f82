#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

//! The container on its own: what is written reads back; lengths are never
//! trusted before the bytes are there, and a length over its cap is
//! refused before anything is read for it. (Verification against real
//! repositories is tested in server/tests/airgap_bundle.rs, the memory
//! bound in server/tests/airgap_memory.rs.)

use std::collections::BTreeMap;
use std::sync::Arc;

use keyshare_airgap::format::{entry_for, Reader};
use keyshare_airgap::{
    read_manifest, write_bundle, Error, Manifest, MAGIC, MANIFEST_FORMAT, MANIFEST_TYPE,
    MAX_BUNDLE_BYTES, MAX_ENTRY_BYTES, MAX_MANIFEST_BYTES,
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

    // Read through once, copying: entry for entry, and the copy is the
    // bundle.
    let mut copy = Vec::new();
    let mut progress = Vec::new();
    let mut input = &out[..];
    let mut report = |done, total| progress.push((done, total));
    let mut reader = Reader::open(&mut input, &mut copy, &mut report).unwrap();
    assert_eq!(reader.manifest().signed, signed.signed);
    let first = reader.peek().unwrap().path.clone();
    assert_eq!(reader.read_entry().unwrap(), &*files[&first]);
    let (manifest, layout) = reader.finish().unwrap();
    assert_eq!(copy, out);
    assert_eq!(progress.last(), Some(&(size, size)));
    // Read back from the source at each entry's offset.
    for (path, bytes) in &files {
        let back = layout.read(&manifest.signed, &out, path).unwrap();
        assert_eq!(back.as_deref(), Some(&**bytes), "{path}");
    }
    assert_eq!(
        layout.read(&manifest.signed, &out, "targets/none").unwrap(),
        None
    );
    // A source that changed after it was read is refused, not believed.
    // (The entries are in path order: the timestamp's "ts" ends the file.)
    let mut changed = out.clone();
    *changed.last_mut().unwrap() ^= 1;
    let err = layout
        .read(&manifest.signed, &changed, "metadata/timestamp.json")
        .unwrap_err();
    assert!(err.to_string().contains("changed"), "{err}");
    changed.pop();
    let err = layout
        .read(&manifest.signed, &changed, "metadata/timestamp.json")
        .unwrap_err();
    assert!(err.to_string().contains("changed"), "{err}");
}

#[test]
fn a_short_entry_or_a_byte_too_many_is_refused_where_it_happens() {
    let files = files();
    let key = InMemorySigner::generate(Scheme::Ed25519).unwrap();
    let signed = sign(manifest(&files), &[&key]).unwrap();
    let mut out = Vec::new();
    write_bundle(&mut out, &signed, &files, &mut |_| {}).unwrap();
    let finish = |bytes: &[u8]| {
        let mut input = bytes;
        Reader::open(&mut input, &mut std::io::sink(), &mut |_, _| {})
            .and_then(Reader::finish)
            .map(|_| ())
    };
    let err = finish(&out[..out.len() - 1]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "bundle container: truncated: entry metadata/timestamp.json has 1 of its 2 bytes"
    );
    let mut altered = out.clone();
    *altered.last_mut().unwrap() ^= 1;
    let err = finish(&altered).unwrap_err();
    assert!(
        matches!(&err, Error::Entry { path, problem } if path == "metadata/timestamp.json" && problem.contains("SHA-256 differs")),
        "{err}"
    );
    let mut more = out.clone();
    more.push(0);
    let err = finish(&more).unwrap_err();
    assert!(err.to_string().contains("appended"), "{err}");
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

/// A bundle holding only a header with this manifest.
fn header(m: Manifest) -> Vec<u8> {
    let key = InMemorySigner::generate(Scheme::Ed25519).unwrap();
    let manifest = to_bytes(&sign(m, &[&key]).unwrap()).unwrap();
    let mut bundle = MAGIC.to_vec();
    bundle.extend_from_slice(&(manifest.len() as u64).to_be_bytes());
    bundle.extend_from_slice(&manifest);
    bundle
}

#[test]
fn huge_claimed_lengths_are_refused_without_reading_or_allocating_them() {
    let mut bundle = MAGIC.to_vec();
    bundle.extend_from_slice(&(MAX_MANIFEST_BYTES + 1).to_be_bytes());
    let err = read_manifest(&mut &bundle[..]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "bundle container: the manifest claims 16.7 MB, more than the 16 MiB a manifest may have"
    );

    let mut bundle = MAGIC.to_vec();
    bundle.extend_from_slice(&u64::MAX.to_be_bytes());
    let err = read_manifest(&mut &bundle[..]).unwrap_err();
    assert!(matches!(err, Error::Container(_)), "{err}");

    // An entry claiming more than the limit (the file need not hold it).
    let mut m = manifest(&files());
    m.entries[0].length = 201_000_000_000;
    let err = read_manifest(&mut &header(m)[..]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "bundle manifest: entry `metadata/1.root.json` claims 201.0 GB, more than the 16 MiB an entry may have"
    );
    let mut m = manifest(&files());
    m.entries[0].length = MAX_ENTRY_BYTES + 1;
    let err = read_manifest(&mut &header(m)[..]).unwrap_err();
    assert!(err.to_string().contains("an entry may have"), "{err}");

    // Entries within the limit each, over the bundle's in all.
    let mut m = manifest(&files());
    let per = MAX_ENTRY_BYTES;
    let n = MAX_BUNDLE_BYTES / per + 1;
    m.entries = (0..n)
        .map(|i| keyshare_airgap::Entry {
            path: format!("targets/{i}.json"),
            length: per,
            sha256: "0".repeat(64),
        })
        .collect();
    let err = read_manifest(&mut &header(m)[..]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "bundle manifest: the entries claim 4.3 GB in all, more than the 4 GiB a bundle may hold"
    );
    // At the limit, it reads (and a reader would then stream the entries).
    let mut m = manifest(&files());
    m.entries = (0..n - 1)
        .map(|i| keyshare_airgap::Entry {
            path: format!("targets/{i}.json"),
            length: per,
            sha256: "0".repeat(64),
        })
        .collect();
    read_manifest(&mut &header(m)[..]).unwrap();
}

#[test]
fn the_writer_refuses_a_bundle_no_reader_would_accept() {
    let mut files = files();
    files.insert(
        "targets/org/big.json".into(),
        Arc::from(vec![b' '; MAX_ENTRY_BYTES as usize + 1]),
    );
    let key = InMemorySigner::generate(Scheme::Ed25519).unwrap();
    let signed = sign(manifest(&files), &[&key]).unwrap();
    let mut out = Vec::new();
    let err = write_bundle(&mut out, &signed, &files, &mut |_| {}).unwrap_err();
    assert_eq!(
        err.to_string(),
        "bundle manifest: entry `targets/org/big.json` claims 16.7 MB, more than the 16 MiB an entry may have"
    );
    assert!(out.is_empty());
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
        let err = read_manifest(&mut &bundle[..]).unwrap_err();
        assert!(matches!(err, Error::Manifest(_)), "{bad}: {err}");
    }
}
