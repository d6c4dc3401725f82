//! The local cache of one repository: verified files stored by content
//! hash (`blobs/<sha256>`) and one manifest (`state.json`) naming which
//! blob is which file, plus the audit chain heads the verified timestamps
//! carried ([`Manifest::remember_head`], bounded).
//!
//! A refresh writes the blobs it needs, then replaces `state.json`
//! atomically (`keyshare_fsio`: temporary file, fsync, rename, fsync of the
//! directory), then removes blobs no longer named. Until the rename,
//! readers see the previous state complete; a failed refresh never touches
//! `state.json`, so the cache stays in its last good state. Blobs are
//! immutable: their name is their hash, and a blob whose bytes do not hash
//! to its name is treated as missing.
//!
//! Blobs are not fsynced one by one (thousands of fsyncs dominated a
//! refresh); after a crash of the machine, a blob the manifest names may
//! be missing or incomplete: it fails its hash check, loading the state
//! says to refresh, and the next refresh downloads it again.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use keyshare_policy::hash::sha256_hex;

/// `format` of `state.json`.
pub const STATE_FORMAT: &str = "keyshare.client-cache/v1";
/// The manifest's file name.
pub const STATE_FILE: &str = "state.json";
const BLOBS: &str = "blobs";

/// A cache failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CacheError {
    /// A file could not be read or written.
    #[error("cache {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// `state.json` is not a keyshare cache manifest.
    #[error("cache {}: not a keyshare cache ({message}); remove the directory and run `keyshare init` again", path.display())]
    Corrupt {
        /// The manifest.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// `state.json`: what the cache holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Always [`STATE_FORMAT`].
    pub format: String,
    /// The repository's base URL (metadata under `URL/metadata/`, targets
    /// under `URL/targets/`).
    pub url: String,
    /// Metadata by cache name (`root.json`, `timestamp.json`,
    /// `<role>.json`) → SHA-256 of the bytes.
    pub metadata: BTreeMap<String, String>,
    /// Verified targets by target path → SHA-256 of the bytes.
    #[serde(default)]
    pub targets: BTreeMap<String, String>,
    /// The `ETag` of the last `timestamp.json` download, for a conditional request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp_etag: Option<String>,
    /// Audit chain heads carried by verified timestamps, in the order they
    /// were first seen, at most [`MAX_REMEMBERED_HEADS`]
    /// ([`Manifest::remember_head`]); `keyshare admin audit verify` checks
    /// the server's audit log against them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audit_heads: Vec<RememberedHead>,
}

/// Most audit heads a cache remembers.
pub const MAX_REMEMBERED_HEADS: usize = 64;

/// An audit chain head a verified timestamp carried.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RememberedHead {
    /// The last record's sequence number.
    pub seq: u64,
    /// Its hash.
    pub hash: String,
    /// The version of the timestamp that carried it.
    pub timestamp_version: u64,
}

impl Manifest {
    /// A fresh manifest holding only the pinned root.
    pub fn pinned(url: &str, root_sha256: String) -> Self {
        Self {
            format: STATE_FORMAT.to_owned(),
            url: url.to_owned(),
            metadata: BTreeMap::from([("root.json".to_owned(), root_sha256)]),
            targets: BTreeMap::new(),
            timestamp_etag: None,
            audit_heads: Vec::new(),
        }
    }

    /// Remembers the audit head a newly verified timestamp carried, unless
    /// it is the last one remembered. Bounded: beyond
    /// [`MAX_REMEMBERED_HEADS`], the head whose removal leaves the smallest
    /// gap in sequence numbers between its neighbours is dropped, never
    /// the first or the last, so the heads stay spread over the whole
    /// history (a rewrite of old records is caught by an old head, one
    /// after the newest head by the next refresh).
    pub fn remember_head(&mut self, head: RememberedHead) {
        if self
            .audit_heads
            .last()
            .is_some_and(|last| last.seq == head.seq && last.hash == head.hash)
        {
            return;
        }
        self.audit_heads.push(head);
        while self.audit_heads.len() > MAX_REMEMBERED_HEADS {
            let gap = |i: usize| {
                let before = self
                    .audit_heads
                    .get(i.saturating_sub(1))
                    .map_or(0, |h| h.seq);
                let after = self
                    .audit_heads
                    .get(i.saturating_add(1))
                    .map_or(u64::MAX, |h| h.seq);
                after.abs_diff(before)
            };
            let last = self.audit_heads.len().saturating_sub(1);
            let Some(drop) = (1..last).min_by_key(|&i| gap(i)) else {
                break;
            };
            self.audit_heads.remove(drop);
        }
    }
}

/// One repository's cache directory.
#[derive(Debug, Clone)]
pub struct RepoCache {
    dir: PathBuf,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CacheError + '_ {
    move |source| CacheError::Io {
        path: path.to_owned(),
        source,
    }
}

impl RepoCache {
    /// The cache in `dir` (not created until written).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The manifest, or `None` when the cache was never written.
    pub fn manifest(&self) -> Result<Option<Manifest>, CacheError> {
        let path = self.dir.join(STATE_FILE);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(&path)(e)),
        };
        let manifest: Manifest =
            serde_json::from_slice(&bytes).map_err(|e| CacheError::Corrupt {
                path: path.clone(),
                message: e.to_string(),
            })?;
        if manifest.format != STATE_FORMAT {
            return Err(CacheError::Corrupt {
                path,
                message: format!("format `{}`", manifest.format),
            });
        }
        Ok(Some(manifest))
    }

    /// The blob with this hash, if present and intact.
    pub fn blob(&self, sha256: &str) -> Option<Vec<u8>> {
        if !is_sha256(sha256) {
            return None;
        }
        let bytes = std::fs::read(self.dir.join(BLOBS).join(sha256)).ok()?;
        (sha256_hex(&bytes) == sha256).then_some(bytes)
    }

    /// Writes `blobs` (keyed by their SHA-256) that are not there yet, then
    /// `manifest` atomically, then removes blobs the manifest does not name.
    pub fn commit(
        &self,
        manifest: &Manifest,
        blobs: &BTreeMap<String, Vec<u8>>,
    ) -> Result<(), CacheError> {
        let blob_dir = self.dir.join(BLOBS);
        create_private_dir(&self.dir)?;
        create_private_dir(&blob_dir)?;
        for (sha, bytes) in blobs {
            let path = blob_dir.join(sha);
            if self.blob(sha).is_none() {
                // Unsynced: a blob is checked against its hash when read,
                // so a crash costs a fetch, never a wrong answer.
                keyshare_fsio::write_atomically_unsynced(&path, bytes, 0o600).map_err(from_fsio)?;
            }
        }
        let text = serde_json::to_vec_pretty(manifest).map_err(|e| CacheError::Corrupt {
            path: self.dir.join(STATE_FILE),
            message: e.to_string(),
        })?;
        keyshare_fsio::write_atomically(&self.dir.join(STATE_FILE), &text, 0o600)
            .map_err(from_fsio)?;
        // Garbage collection: best effort, the manifest is already safe.
        let named: BTreeSet<&String> = manifest
            .metadata
            .values()
            .chain(manifest.targets.values())
            .collect();
        if let Ok(entries) = std::fs::read_dir(&blob_dir) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if !named.contains(&name) {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
        Ok(())
    }
}

fn is_sha256(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn create_private_dir(dir: &Path) -> Result<(), CacheError> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(io(dir))
}

fn from_fsio(e: keyshare_fsio::Error) -> CacheError {
    io(&e.path)(e.source)
}

/// The default cache directory: `$XDG_CACHE_HOME/keyshare`, else
/// `~/.cache/keyshare`.
pub fn default_dir() -> Option<PathBuf> {
    if let Some(x) = std::env::var_os("XDG_CACHE_HOME").filter(|x| !x.is_empty()) {
        return Some(PathBuf::from(x).join("keyshare"));
    }
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|h| PathBuf::from(h).join(".cache").join("keyshare"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;

    fn head(seq: u64) -> RememberedHead {
        RememberedHead {
            seq,
            hash: format!("{seq:064x}"),
            timestamp_version: seq + 1,
        }
    }

    #[test]
    fn remembered_heads_are_bounded_keep_first_and_last_and_stay_spread() {
        let mut m = Manifest::pinned("http://x", "00".repeat(32));
        for seq in 1..=1000 {
            m.remember_head(head(seq));
            m.remember_head(head(seq)); // the same head again: not repeated
        }
        assert_eq!(m.audit_heads.len(), MAX_REMEMBERED_HEADS);
        assert_eq!(m.audit_heads[0], head(1));
        assert_eq!(m.audit_heads[MAX_REMEMBERED_HEADS - 1], head(1000));
        // Spread over the history: no gap much wider than the average.
        let widest = m
            .audit_heads
            .windows(2)
            .map(|w| w[1].seq - w[0].seq)
            .max()
            .unwrap();
        assert!(widest <= 2 * 1000 / MAX_REMEMBERED_HEADS as u64, "{widest}");
        // Old manifests without the field still read; empty lists are not written.
        let text = serde_json::to_string(&Manifest::pinned("http://x", "00".repeat(32))).unwrap();
        assert!(!text.contains("audit_heads"), "{text}");
        let back: Manifest = serde_json::from_str(&serde_json::to_string(&m).unwrap()).unwrap();
        assert_eq!(back, m);
    }
}
