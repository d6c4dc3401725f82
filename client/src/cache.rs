//! The local cache of one repository: verified files stored by content
//! hash, each either a file of its own (`blobs/<sha256>`) or an entry of a
//! pack (`packs/<sha256 of the pack>.pack`, many blobs in one file), and
//! one manifest (`state.json`) naming which blob is which file, plus the
//! audit chain heads the verified timestamps carried
//! ([`Manifest::remember_head`], bounded).
//!
//! A refresh writes the blobs it needs (many at once as one new pack, a
//! few as files of their own), then replaces `state.json` atomically
//! (`keyshare_fsio`: temporary file, fsync, rename, fsync of the
//! directory): the manifest is the one durable commit point. Then it
//! removes blobs and packs no longer named. Until the rename, readers see
//! the previous state complete; a failed refresh never touches
//! `state.json`, so the cache stays in its last good state. Blobs are
//! immutable: their name is their hash, and a blob whose bytes do not hash
//! to its name is treated as missing, wherever it is stored.
//!
//! Blobs and packs are not fsynced (thousands of fsyncs dominated a
//! refresh, and so did creating thousands of files: a pack is one file);
//! after a crash of the machine, a blob the manifest names may be missing
//! or incomplete: it fails its hash check, loading the state says to
//! refresh, and the next refresh downloads it again. A pack whose live
//! blobs make up less than half of it is rewritten into the next pack
//! (and a torn pack's intact blobs with it), so packs never hold much
//! more than the manifest names.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use serde::{Deserialize, Serialize};

use keyshare_policy::hash::sha256_hex;

/// `format` of `state.json`.
pub const STATE_FORMAT: &str = "keyshare.client-cache/v1";
/// The manifest's file name.
pub const STATE_FILE: &str = "state.json";
const BLOBS: &str = "blobs";
const PACKS: &str = "packs";
/// The first line of a pack.
const PACK_MAGIC: &[u8] = b"keyshare.client-cache.pack/v1\n";
/// About the bytes of an entry's header in a pack (hash, length, separators).
const ENTRY_HEADER: usize = 64 + 1 + 8 + 2;
/// A commit with at least this many blobs to write writes them as one pack.
pub const PACK_MIN_BLOBS: usize = 16;

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
    /// The packs' intact blobs, read on first use, kept up to date by
    /// [`Self::commit`] (shared by clones).
    packs: Arc<Mutex<Option<Arc<PackIndex>>>>,
    /// The manifest as last read or written, with the identity of its
    /// file ([`Self::manifest_shared`]).
    manifest: Arc<Mutex<Option<Remembered>>>,
    /// Blobs stored as files of their own that this cache (or a clone)
    /// wrote or read intact, by SHA-256; after a commit, only those its
    /// manifest names.
    loose: Arc<Mutex<HashMap<String, Arc<[u8]>>>>,
}

/// A manifest with the identity of the file it was read from or written to.
type Remembered = (Stamp, Arc<Manifest>);

/// Which file a manifest was read from: `state.json` is replaced by
/// renaming a new file over it, so a write gives a new inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime_ns: i128,
}

impl Stamp {
    fn of(meta: &std::fs::Metadata) -> Self {
        use std::os::unix::fs::MetadataExt as _;
        Self {
            dev: meta.dev(),
            ino: meta.ino(),
            len: meta.len(),
            mtime_ns: i128::from(meta.mtime())
                .saturating_mul(1_000_000_000)
                .saturating_add(i128::from(meta.mtime_nsec())),
        }
    }
}

/// Every pack of a cache, read into memory, and where each intact blob is.
#[derive(Default)]
struct PackIndex {
    /// Pack file name → its bytes, its intact entries (SHA-256, range) and
    /// its length.
    packs: BTreeMap<String, Pack>,
    /// SHA-256 → the pack and range holding it.
    by_sha: HashMap<String, (String, Range<usize>)>,
}

#[derive(Clone)]
struct Pack {
    bytes: Vec<u8>,
    entries: Vec<(String, Range<usize>)>,
}

impl PackIndex {
    /// Adds a pack whose entries are known intact.
    fn add(&mut self, name: String, pack: Pack) {
        for (sha, range) in &pack.entries {
            self.by_sha
                .entry(sha.clone())
                .or_insert_with(|| (name.clone(), range.clone()));
        }
        self.packs.insert(name, pack);
    }
}

impl std::fmt::Debug for PackIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PackIndex")
            .field("packs", &self.packs.keys().collect::<Vec<_>>())
            .field("blobs", &self.by_sha.len())
            .finish()
    }
}

impl PackIndex {
    fn blob(&self, sha256: &str) -> Option<&[u8]> {
        let (pack, range) = self.by_sha.get(sha256)?;
        self.packs.get(pack)?.bytes.get(range.clone())
    }
}

/// The intact entries of a pack: `<sha256 hex> <length>\n<bytes>\n` after
/// [`PACK_MAGIC`]; reading stops at the first malformed or truncated
/// entry, and an entry whose bytes do not hash to its name is left out.
fn pack_entries(bytes: &[u8]) -> Vec<(String, Range<usize>)> {
    let mut entries = Vec::new();
    let Some(mut rest) = bytes.strip_prefix(PACK_MAGIC) else {
        return entries;
    };
    let mut at = PACK_MAGIC.len();
    while let Some(eol) = rest.iter().position(|&b| b == b'\n') {
        let header = rest.get(..eol).and_then(|h| std::str::from_utf8(h).ok());
        let Some((sha, len)) = header.and_then(|h| h.split_once(' ')) else {
            break;
        };
        let Ok(len) = len.parse::<usize>() else {
            break;
        };
        let start = eol.saturating_add(1);
        let end = start.saturating_add(len);
        if !is_sha256(sha) || rest.get(end) != Some(&b'\n') {
            break;
        }
        if rest
            .get(start..end)
            .is_some_and(|blob| sha256_hex(blob) == sha)
        {
            entries.push((
                sha.to_owned(),
                at.saturating_add(start)..at.saturating_add(end),
            ));
        }
        let next = end.saturating_add(1);
        at = at.saturating_add(next);
        rest = rest.get(next..).unwrap_or_default();
    }
    entries
}

/// A pack of `blobs`, and its file name.
fn pack_of<'b>(blobs: impl Iterator<Item = (&'b String, &'b [u8])>) -> (String, Pack) {
    let mut bytes = PACK_MAGIC.to_vec();
    let mut entries = Vec::new();
    for (sha, blob) in blobs {
        bytes.extend_from_slice(format!("{sha} {}\n", blob.len()).as_bytes());
        let start = bytes.len();
        bytes.extend_from_slice(blob);
        entries.push((sha.clone(), start..bytes.len()));
        bytes.push(b'\n');
    }
    let name = format!("{}.pack", sha256_hex(&bytes));
    (name, Pack { bytes, entries })
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
        Self {
            dir: dir.into(),
            packs: Arc::default(),
            manifest: Arc::default(),
            loose: Arc::default(),
        }
    }

    /// The packs, read on first use.
    fn pack_index(&self) -> Arc<PackIndex> {
        let mut slot = self.packs.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(index) = &*slot {
            return index.clone();
        }
        let mut index = PackIndex::default();
        if let Ok(dir) = std::fs::read_dir(self.dir.join(PACKS)) {
            for entry in dir.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if !name.ends_with(".pack") || name.starts_with('.') {
                    continue;
                }
                let Ok(bytes) = std::fs::read(entry.path()) else {
                    continue;
                };
                let entries = pack_entries(&bytes);
                index.add(name, Pack { bytes, entries });
            }
        }
        let index = Arc::new(index);
        *slot = Some(index.clone());
        index
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The manifest, or `None` when the cache was never written.
    pub fn manifest(&self) -> Result<Option<Manifest>, CacheError> {
        Ok(self.manifest_shared()?.map(Arc::unwrap_or_clone))
    }

    /// [`Self::manifest`], shared: read and parsed again only when the file
    /// changed since this cache (or a clone) last read or wrote it. A file
    /// replaced by another process is read again, and the packs with it.
    pub fn manifest_shared(&self) -> Result<Option<Arc<Manifest>>, CacheError> {
        use std::io::Read as _;
        let path = self.dir.join(STATE_FILE);
        let mut file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                *self.manifest.lock().unwrap_or_else(PoisonError::into_inner) = None;
                return Ok(None);
            }
            Err(e) => return Err(io(&path)(e)),
        };
        let stamp = Stamp::of(&file.metadata().map_err(io(&path))?);
        let mut memo = self.manifest.lock().unwrap_or_else(PoisonError::into_inner);
        match &*memo {
            Some((known, manifest)) if *known == stamp => return Ok(Some(manifest.clone())),
            Some(_) => *self.packs.lock().unwrap_or_else(PoisonError::into_inner) = None,
            None => {}
        }
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io(&path))?;
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
        let manifest = Arc::new(manifest);
        *memo = Some((stamp, manifest.clone()));
        Ok(Some(manifest))
    }

    /// The blob with this hash, if present and intact (in a pack or a
    /// file of its own).
    pub fn blob(&self, sha256: &str) -> Option<Vec<u8>> {
        if !is_sha256(sha256) {
            return None;
        }
        if let Some(bytes) = self.pack_index().blob(sha256) {
            return Some(bytes.to_vec());
        }
        let mut loose = self.loose.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(bytes) = loose.get(sha256) {
            return Some(bytes.to_vec());
        }
        let bytes = std::fs::read(self.dir.join(BLOBS).join(sha256)).ok()?;
        if sha256_hex(&bytes) != sha256 {
            return None;
        }
        loose.insert(sha256.to_owned(), Arc::from(bytes.as_slice()));
        Some(bytes)
    }

    /// Writes `blobs` (keyed by their SHA-256) that are not there yet
    /// ([`PACK_MIN_BLOBS`] or more as one pack, with the live blobs of packs
    /// that are more than half dead; fewer as files of their own), then
    /// `manifest` atomically, then removes blobs and packs the manifest
    /// does not need.
    pub fn commit(
        &self,
        manifest: &Manifest,
        blobs: &BTreeMap<String, Vec<u8>>,
    ) -> Result<(), CacheError> {
        let blob_dir = self.dir.join(BLOBS);
        let pack_dir = self.dir.join(PACKS);
        create_private_dir(&self.dir)?;
        create_private_dir(&blob_dir)?;
        let named: BTreeSet<&String> = manifest
            .metadata
            .values()
            .chain(manifest.targets.values())
            .collect();
        let index = self.pack_index();
        // Packs to keep as they are: more than half of their bytes named.
        let mut kept: BTreeSet<&String> = BTreeSet::new();
        // Named blobs of the other packs, carried into the new pack.
        let mut carried: BTreeMap<&String, &[u8]> = BTreeMap::new();
        for (name, pack) in &index.packs {
            let live: Vec<&(String, Range<usize>)> = pack
                .entries
                .iter()
                .filter(|(sha, _)| named.contains(sha))
                .collect();
            // An entry's header is its hash, its length and two separators.
            let live_bytes: usize = live
                .iter()
                .map(|(_, r)| r.len().saturating_add(ENTRY_HEADER))
                .sum();
            if live_bytes.saturating_mul(2) > pack.bytes.len() {
                kept.insert(name);
            } else {
                for (sha, range) in live {
                    if let Some(bytes) = pack.bytes.get(range.clone()) {
                        carried.insert(sha, bytes);
                    }
                }
            }
        }
        // Blobs already held intact (and staying) are not written again.
        let fresh: Vec<(&String, &[u8])> = blobs
            .iter()
            .filter(|(sha, _)| {
                let in_kept = index
                    .by_sha
                    .get(sha.as_str())
                    .is_some_and(|(pack, _)| kept.contains(pack));
                !in_kept && !carried.contains_key(sha) && self.loose_blob(sha).is_none()
            })
            .map(|(sha, bytes)| (sha, bytes.as_slice()))
            .collect();
        let mut new_pack = None;
        if fresh.len().saturating_add(carried.len()) >= PACK_MIN_BLOBS || !carried.is_empty() {
            create_private_dir(&pack_dir)?;
            let (name, pack) = pack_of(fresh.into_iter().chain(carried));
            // Unsynced: every blob is checked against its hash when read,
            // so a crash costs a fetch, never a wrong answer.
            keyshare_fsio::write_atomically_unsynced(&pack_dir.join(&name), &pack.bytes, 0o600)
                .map_err(from_fsio)?;
            new_pack = Some((name, pack));
        } else {
            let mut loose = self.loose.lock().unwrap_or_else(PoisonError::into_inner);
            for (sha, bytes) in fresh {
                keyshare_fsio::write_atomically_unsynced(&blob_dir.join(sha), bytes, 0o600)
                    .map_err(from_fsio)?;
                loose.insert(sha.clone(), Arc::from(bytes));
            }
        }
        let text = serde_json::to_vec_pretty(manifest).map_err(|e| CacheError::Corrupt {
            path: self.dir.join(STATE_FILE),
            message: e.to_string(),
        })?;
        let state_file = self.dir.join(STATE_FILE);
        keyshare_fsio::write_atomically(&state_file, &text, 0o600).map_err(from_fsio)?;
        if let Ok(meta) = std::fs::metadata(&state_file) {
            *self.manifest.lock().unwrap_or_else(PoisonError::into_inner) =
                Some((Stamp::of(&meta), Arc::new(manifest.clone())));
        }
        // Garbage collection: best effort, the manifest is already safe.
        if let Ok(entries) = std::fs::read_dir(&blob_dir) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if !named.contains(&name) {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
        if let Ok(entries) = std::fs::read_dir(&pack_dir) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if !kept.contains(&name) && new_pack.as_ref().map(|(n, _)| n) != Some(&name) {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
        // The packs now: the kept ones and the new one, known without
        // reading them back.
        let mut next = PackIndex::default();
        for name in kept {
            if let Some(pack) = index.packs.get(name) {
                next.add(name.clone(), pack.clone());
            }
        }
        if let Some((name, pack)) = new_pack {
            next.add(name, pack);
        }
        *self.packs.lock().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(next));
        self.loose
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|sha, _| named.contains(sha));
        Ok(())
    }

    /// The blob with this hash stored as a file of its own, if intact.
    fn loose_blob(&self, sha256: &str) -> Option<Vec<u8>> {
        let bytes = std::fs::read(self.dir.join(BLOBS).join(sha256)).ok()?;
        (sha256_hex(&bytes) == sha256).then_some(bytes)
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

    fn blobs(range: std::ops::Range<u32>) -> BTreeMap<String, Vec<u8>> {
        range
            .map(|i| {
                let bytes = format!("{{\"blob\": {i}}}\n").into_bytes();
                (sha256_hex(&bytes), bytes)
            })
            .collect()
    }

    fn manifest_of(blobs: &BTreeMap<String, Vec<u8>>) -> Manifest {
        let mut m = Manifest::pinned("http://x", "00".repeat(32));
        m.metadata.clear();
        m.targets = blobs
            .keys()
            .enumerate()
            .map(|(i, sha)| (format!("t/{i}"), sha.clone()))
            .collect();
        m
    }

    fn files(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    #[test]
    fn many_blobs_go_into_one_pack_few_into_files_and_dead_packs_are_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let cache = RepoCache::new(dir.path());
        let all = blobs(0..100);
        cache.commit(&manifest_of(&all), &all).unwrap();
        assert_eq!(files(&dir.path().join(PACKS)).len(), 1);
        assert!(files(&dir.path().join(BLOBS)).is_empty());
        let fresh = RepoCache::new(dir.path());
        for (sha, bytes) in &all {
            assert_eq!(fresh.blob(sha).as_ref(), Some(bytes));
        }

        // A few new blobs, most old ones still named: files of their own.
        let mut next: BTreeMap<String, Vec<u8>> = blobs(10..100);
        let few = blobs(100..103);
        next.extend(few.clone());
        fresh.commit(&manifest_of(&next), &few).unwrap();
        assert_eq!(files(&dir.path().join(PACKS)).len(), 1);
        assert_eq!(files(&dir.path().join(BLOBS)).len(), 3);
        let again = RepoCache::new(dir.path());
        for (sha, bytes) in &next {
            assert_eq!(again.blob(sha).as_ref(), Some(bytes));
        }

        // Most of the pack dead: its named blobs move into a new pack, the
        // old pack and every unnamed blob are gone.
        let kept = blobs(90..103);
        again.commit(&manifest_of(&kept), &BTreeMap::new()).unwrap();
        let packs = files(&dir.path().join(PACKS));
        assert_eq!(packs.len(), 1);
        let pack = std::fs::read(dir.path().join(PACKS).join(&packs[0])).unwrap();
        assert_eq!(format!("{}.pack", sha256_hex(&pack)), packs[0]);
        assert_eq!(pack_entries(&pack).len(), 10, "only the named blobs");
        assert_eq!(files(&dir.path().join(BLOBS)).len(), 3);
        let last = RepoCache::new(dir.path());
        for (sha, bytes) in &kept {
            assert_eq!(last.blob(sha).as_ref(), Some(bytes));
        }
        for sha in blobs(0..90).keys() {
            assert_eq!(last.blob(sha), None);
        }
    }

    #[test]
    fn a_torn_pack_loses_only_its_torn_blobs_and_the_next_commit_restores_them() {
        let dir = tempfile::tempdir().unwrap();
        let cache = RepoCache::new(dir.path());
        let all = blobs(0..40);
        cache.commit(&manifest_of(&all), &all).unwrap();
        let name = files(&dir.path().join(PACKS)).remove(0);
        let path = dir.path().join(PACKS).join(&name);
        let bytes = std::fs::read(&path).unwrap();
        // A crash of the machine: the end of the pack never reached the disk,
        // and a byte in the middle is wrong.
        let mut torn = bytes.get(..bytes.len() / 2).unwrap().to_vec();
        let middle = torn.len() / 2;
        torn[middle] ^= 0x20;
        std::fs::write(&path, &torn).unwrap();
        let reread = RepoCache::new(dir.path());
        let intact: Vec<&String> = all
            .keys()
            .filter(|sha| reread.blob(sha).is_some())
            .collect();
        assert!(
            !intact.is_empty() && intact.len() < all.len() / 2,
            "{}",
            intact.len()
        );
        for sha in &intact {
            assert_eq!(
                reread.blob(sha).as_ref(),
                all.get(*sha),
                "only intact bytes"
            );
        }
        // The refresh after it downloads what is missing and commits it.
        let missing: BTreeMap<String, Vec<u8>> = all
            .iter()
            .filter(|(sha, _)| reread.blob(sha).is_none())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        reread.commit(&manifest_of(&all), &missing).unwrap();
        let healed = RepoCache::new(dir.path());
        for (sha, bytes) in &all {
            assert_eq!(healed.blob(sha).as_ref(), Some(bytes));
        }
        // The missing blobs went into a new pack; the torn one stays only
        // while more than half of it is live.
        assert_eq!(files(&dir.path().join(PACKS)).len(), 2);
        // Once the torn pack's blobs are no longer named, it goes.
        let later = blobs(40..60);
        healed.commit(&manifest_of(&later), &later).unwrap();
        assert!(!files(&dir.path().join(PACKS)).contains(&name));
        assert_eq!(files(&dir.path().join(PACKS)).len(), 1);
    }

    #[test]
    fn pack_entries_stop_at_garbage() {
        let all = blobs(0..3);
        let (_, written) = pack_of(all.iter().map(|(k, v)| (k, v.as_slice())));
        // What a commit keeps in memory is what reading the pack finds.
        assert_eq!(pack_entries(&written.bytes), written.entries);
        let mut pack = written.bytes;
        assert_eq!(pack_entries(&pack).len(), 3);
        pack.extend_from_slice(b"not an entry\n");
        assert_eq!(pack_entries(&pack).len(), 3);
        assert!(pack_entries(b"other magic\n").is_empty());
        let huge = format!(
            "{}{} 99999999999999999999\n",
            String::from_utf8_lossy(PACK_MAGIC),
            "0".repeat(64)
        );
        assert!(pack_entries(huge.as_bytes()).is_empty());
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
