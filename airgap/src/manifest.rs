//! The bundle manifest: what the bundle holds and which metadata it vouches
//! for, signed by the timestamp role.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use keyshare_policy::datetime::Expires;
use keyshare_policy::metadata::Role;

/// The manifest's `_type`.
pub const MANIFEST_TYPE: &str = "keyshare-bundle";
/// The manifest's `format`.
pub const MANIFEST_FORMAT: &str = "keyshare.bundle/v1";

/// One entry of the bundle: a repository file by its path in a published
/// repository (`metadata/...`, `targets/...`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// `metadata/<name>` or `targets/<dir>/<sha256>.<name>`.
    pub path: String,
    /// Length in bytes.
    pub length: u64,
    /// SHA-256 of the bytes, lowercase hex.
    pub sha256: String,
}

/// The signed part of the manifest (`signed` of a TUF-style envelope,
/// signed by a threshold of the timestamp role's keys of the root at
/// `root_version`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Always [`MANIFEST_TYPE`].
    #[serde(rename = "_type")]
    pub type_: String,
    /// Always [`MANIFEST_FORMAT`].
    pub format: String,
    /// When the bundle was exported.
    pub created: Expires,
    /// End of the bundle's validity window: the expiry of the bundle
    /// edition of timestamp and snapshot.
    pub expires: Expires,
    /// The newest root in the bundle.
    pub root_version: u64,
    /// The version of the bundle edition of the timestamp.
    pub timestamp_version: u64,
    /// The version of the bundle edition of the snapshot.
    pub snapshot_version: u64,
    /// SHA-256 of `metadata/timestamp.json` in the bundle.
    pub timestamp_sha256: String,
    /// Every entry, in the order of the bundle.
    pub entries: Vec<Entry>,
}

impl Role for Manifest {
    const TYPE: &'static str = MANIFEST_TYPE;

    fn version(&self) -> u64 {
        self.timestamp_version
    }

    fn expires(&self) -> Expires {
        self.expires
    }

    fn type_field(&self) -> &str {
        &self.type_
    }

    fn check(&self) -> Result<(), (String, String)> {
        if self.format != MANIFEST_FORMAT {
            return Err((
                "format".into(),
                format!("is {:?}, expected {MANIFEST_FORMAT:?}", self.format),
            ));
        }
        if !is_sha256_hex(&self.timestamp_sha256) {
            return Err((
                "timestamp_sha256".into(),
                "is not 64 lowercase hex digits".into(),
            ));
        }
        if self.created.time() > self.expires.time() {
            return Err(("expires".into(), "is before `created`".into()));
        }
        let mut seen = BTreeSet::new();
        for (i, e) in self.entries.iter().enumerate() {
            if !is_clean_path(&e.path) {
                return Err((
                    format!("entries[{i}].path"),
                    format!("{:?} is not a clean metadata/ or targets/ path", e.path),
                ));
            }
            if !seen.insert(e.path.as_str()) {
                return Err((
                    format!("entries[{i}].path"),
                    format!("{:?} is listed twice", e.path),
                ));
            }
            if !is_sha256_hex(&e.sha256) {
                return Err((
                    format!("entries[{i}].sha256"),
                    "is not 64 lowercase hex digits".into(),
                ));
            }
        }
        Ok(())
    }
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A relative path under `metadata/` or `targets/` made of plain segments:
/// no empty segment, no `.` or `..`, no backslash or control character.
/// Such a path can be written under a directory without leaving it.
pub(crate) fn is_clean_path(path: &str) -> bool {
    (path.starts_with("metadata/") || path.starts_with("targets/"))
        && !path.contains('\\')
        && !path.chars().any(char::is_control)
        && path
            .split('/')
            .all(|seg| !seg.is_empty() && seg != "." && seg != "..")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_paths_must_stay_under_metadata_or_targets() {
        for bad in [
            "",
            "metadata",
            "metadata/",
            "other/x",
            "/metadata/x",
            "metadata/../x",
            "targets/a//b",
            "targets/./a",
            "targets/a\\b",
            "targets/a\nb",
        ] {
            assert!(!is_clean_path(bad), "{bad:?}");
        }
        for ok in ["metadata/1.root.json", "targets/org/abc.peers.json"] {
            assert!(is_clean_path(ok), "{ok}");
        }
    }
}
