//! Crafted air-gap bundle files, as an attacker writes them by hand: sparse
//! (`File::set_len`, so a file of 1 GiB or 200 GB uses no disk) and
//! claiming far more than a bundle may hold, in the manifest length of the
//! header or in the manifest's entry lengths. The manifests are unsigned:
//! the signature is the one thing the attacker cannot make.
//!
//! The bundle format is written out here on purpose rather than with
//! `keyshare-airgap`'s writer: `keyshare-bundle/v1\n`, the manifest's
//! length (8 bytes, big-endian), the manifest (a JSON envelope), the
//! entries.

use std::io::Write;
use std::path::{Path, PathBuf};

/// The magic line of a bundle.
const MAGIC: &[u8] = b"keyshare-bundle/v1\n";

/// An entry's most bytes as the crafted files use it (16 MiB), the cap a
/// reader puts on one entry.
pub const ENTRY: u64 = 16 << 20;

/// One crafted file.
#[derive(Debug)]
pub struct Crafted {
    /// What it is, for messages.
    pub what: &'static str,
    /// Where it was written.
    pub path: PathBuf,
    /// What the one-line refusal must contain.
    pub says: Vec<&'static str>,
}

fn sha256_hex(bytes: &[u8]) -> String {
    openssl::sha::sha256(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn sha256_of_zeros(len: u64) -> String {
    let mut hasher = openssl::sha::Sha256::new();
    let block = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        let n = left.min(block.len() as u64);
        hasher.update(block.get(..n as usize).unwrap_or_default());
        left -= n;
    }
    hasher.finish().iter().map(|b| format!("{b:02x}")).collect()
}

/// An unsigned manifest listing `(path, length, sha256)` entries; every
/// other field is plausible.
fn manifest(entries: &[(String, u64, String)]) -> Vec<u8> {
    let entries: Vec<String> = entries
        .iter()
        .map(|(path, length, sha256)| {
            format!(r#"{{"length":{length},"path":"{path}","sha256":"{sha256}"}}"#)
        })
        .collect();
    format!(
        r#"{{"signatures":[],"signed":{{"_type":"keyshare-bundle","created":"2020-01-01T00:00:00Z","entries":[{}],"expires":"2099-01-01T00:00:00Z","format":"keyshare.bundle/v1","root_version":1,"snapshot_version":9,"timestamp_sha256":"{}","timestamp_version":9}}}}"#,
        entries.join(","),
        "0".repeat(64)
    )
    .into_bytes()
}

/// Writes a bundle file: magic, manifest length `claimed` (the real one
/// when `None`), the manifest, `written`, then zeros up to `len` bytes in
/// all (sparse).
fn craft(path: &Path, claimed: Option<u64>, manifest: &[u8], written: &[u8], len: u64) {
    let mut file = std::fs::File::create(path).expect("create a crafted bundle");
    let claimed = claimed.unwrap_or(manifest.len() as u64);
    file.write_all(MAGIC)
        .and_then(|()| file.write_all(&claimed.to_be_bytes()))
        .and_then(|()| file.write_all(manifest))
        .and_then(|()| file.write_all(written))
        .and_then(|()| file.set_len(len))
        .expect("write a crafted bundle");
}

fn header_len(manifest: &[u8]) -> u64 {
    (MAGIC.len() + 8 + manifest.len()) as u64
}

/// Writes the crafted files into `dir`, using the organization's real
/// (public) `metadata/1.root.json` where a plausible bundle needs one:
///
/// * 1 GiB of zeros;
/// * 1 GiB: root 1, then 64 entries of 16 MiB of zeros whose SHA-256 the
///   (unsigned) manifest lists, so every entry checks out on its own;
/// * one entry claiming 201 GB, in a file that long;
/// * 12,000 entries of 16 MiB after root 1: 201 GB in all, each within
///   its cap, in a file that long;
/// * a header claiming a manifest of 200 GB, in a file that long.
pub fn crafted_bundles(dir: &Path, root: &[u8]) -> Vec<Crafted> {
    let root_entry = (
        "metadata/1.root.json".to_owned(),
        root.len() as u64,
        sha256_hex(root),
    );
    let zeros = sha256_of_zeros(ENTRY);
    let zero_entries =
        |n: u64| (0..n).map(|i| (format!("targets/zeros/{i}.json"), ENTRY, zeros.clone()));
    let mut out = Vec::new();

    let path = dir.join("zeros.bundle");
    std::fs::File::create(&path)
        .and_then(|f| f.set_len(1 << 30))
        .expect("write a sparse file");
    out.push(Crafted {
        what: "1 GiB of zeros",
        path,
        says: vec!["not a keyshare bundle"],
    });

    let mut entries = vec![root_entry.clone()];
    entries.extend(zero_entries(64));
    let m = manifest(&entries);
    let path = dir.join("unsigned-1gib.bundle");
    let len = header_len(&m) + root.len() as u64 + 64 * ENTRY;
    assert!(len > 1 << 30);
    craft(&path, None, &m, root, len);
    out.push(Crafted {
        what: "1 GiB under an unsigned manifest",
        path,
        says: vec!["bundle manifest signature"],
    });

    let claim = 201_000_000_000;
    let m = manifest(&[(root_entry.0.clone(), claim, root_entry.2.clone())]);
    let path = dir.join("entry-201gb.bundle");
    craft(&path, None, &m, b"", header_len(&m) + claim);
    out.push(Crafted {
        what: "an entry claiming 201 GB",
        path,
        says: vec![
            "entry `metadata/1.root.json` claims 201.0 GB",
            "more than the 16 MiB an entry may have",
        ],
    });

    let mut entries = vec![root_entry];
    entries.extend(zero_entries(12_000));
    let m = manifest(&entries);
    let path = dir.join("total-201gb.bundle");
    let len = header_len(&m) + root.len() as u64 + 12_000 * ENTRY;
    craft(&path, None, &m, root, len);
    out.push(Crafted {
        what: "entries claiming 201 GB in all",
        path,
        says: vec![
            "the entries claim 201.3 GB in all",
            "more than the 4 GiB a bundle may hold",
        ],
    });

    let claim = 200_000_000_000;
    let path = dir.join("manifest-200gb.bundle");
    craft(&path, Some(claim), b"", b"", MAGIC.len() as u64 + 8 + claim);
    out.push(Crafted {
        what: "a manifest length of 200 GB",
        path,
        says: vec![
            "the manifest claims 200.0 GB",
            "more than the 16 MiB a manifest may have",
        ],
    });
    out
}
