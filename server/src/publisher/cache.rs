//! The published files in memory for the read API: the current version of
//! each file, and older versions read from the store on demand.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use keyshare_policy::repo::File;

use crate::store::lineage;

use super::Publisher;

/// A published file as the read API serves it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CachedFile {
    /// `metadata/...` or `targets/...`.
    pub path: String,
    /// The bytes.
    pub bytes: Arc<[u8]>,
    /// The HTTP entity tag, quoted: `"<sha256 hex>"`.
    pub etag: String,
    /// False only for `metadata/timestamp.json`.
    pub immutable: bool,
}

impl CachedFile {
    fn new(path: String, bytes: Arc<[u8]>, immutable: bool) -> Self {
        let etag = format!("\"{}\"", keyshare_policy::hash::sha256_hex(&bytes));
        Self {
            path,
            bytes,
            etag,
            immutable,
        }
    }
}

/// The current version of every published file, by path.
#[derive(Debug)]
pub(super) struct Cache {
    files: RwLock<HashMap<String, Arc<CachedFile>>>,
    /// For each file lineage (a role's metadata, a target path), the path
    /// of its cached current version.
    current: Mutex<HashMap<String, String>>,
    /// The current `metadata/timestamp.json`, sent once it is in `files`:
    /// what waiting readers wake on.
    timestamp: tokio::sync::watch::Sender<Option<Arc<CachedFile>>>,
    /// The newest root version cached (each root is a lineage of its own).
    root: AtomicU64,
}

impl Default for Cache {
    fn default() -> Self {
        Self {
            files: RwLock::default(),
            current: Mutex::default(),
            timestamp: tokio::sync::watch::Sender::new(None),
            root: AtomicU64::new(0),
        }
    }
}

impl Cache {
    /// Caches newly published files, dropping the versions they supersede
    /// (so memory follows the repository's current size, not its history).
    pub(super) fn insert(&self, files: &[File]) {
        let mut cache = self.files.write().unwrap_or_else(PoisonError::into_inner);
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        for f in files {
            if let Some((version, "root")) = versioned_metadata(&f.path) {
                self.root.fetch_max(version, Ordering::Relaxed);
            }
            if let Some(old) = current.insert(lineage(&f.path), f.path.clone()) {
                if old != f.path {
                    cache.remove(&old);
                }
            }
            cache.insert(
                f.path.clone(),
                Arc::new(CachedFile::new(
                    f.path.clone(),
                    f.bytes.clone(),
                    f.immutable,
                )),
            );
        }
        let timestamp = cache.get(TIMESTAMP_PATH).cloned();
        drop(current);
        drop(cache);
        if let Some(new) = timestamp {
            // Only a new timestamp wakes the waiters (the files of a
            // publish arrive together, the timestamp among them).
            self.timestamp.send_if_modified(|held| {
                let changed = held.as_ref().is_none_or(|old| old.etag != new.etag);
                if changed {
                    *held = Some(new);
                }
                changed
            });
        }
    }

    pub(super) fn get(&self, path: &str) -> Option<Arc<CachedFile>> {
        self.files
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(path)
            .cloned()
    }

    /// True when `path` is a version of a metadata file newer than the
    /// one this server serves (`metadata/N.root.json` past the newest
    /// root, `metadata/N.<role>.json` past the role's current version):
    /// it is not published here, so no store read can find it. Every TUF
    /// client asks for the root after its own on every refresh; without
    /// this, each such request would wait for the store.
    pub(super) fn beyond_current(&self, path: &str) -> bool {
        let Some((version, role)) = versioned_metadata(path) else {
            return false;
        };
        let served = if role == "root" {
            Some(self.root.load(Ordering::Relaxed)).filter(|v| *v > 0)
        } else {
            self.current
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(&lineage(path))
                .and_then(|p| versioned_metadata(p))
                .map(|(v, _)| v)
        };
        served.is_some_and(|served| version > served)
    }
}

/// `metadata/N.<role>.json` as `(N, role)`.
fn versioned_metadata(path: &str) -> Option<(u64, &str)> {
    let name = path.strip_prefix("metadata/")?.strip_suffix(".json")?;
    let (version, role) = name.split_once('.')?;
    if version.is_empty() || !version.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((version.parse().ok()?, role))
}

/// The path of the one mutable published file.
const TIMESTAMP_PATH: &str = "metadata/timestamp.json";

/// Store reads the read API runs at once ([`Publisher::file_from_store`]);
/// more requests wait for a turn without a thread.
pub const STORE_LOOKUPS_AT_ONCE: usize = 2;

/// The read API's turns at the store: each read takes the publisher's lock
/// (the store has one connection), so a flood of requests for files not in
/// memory (made-up paths, old versions) would otherwise make a blocking
/// thread each, all queued at the lock the publishing thread needs.
#[derive(Debug)]
pub(super) struct Lookups {
    turns: tokio::sync::Semaphore,
    waiting: AtomicUsize,
}

impl Default for Lookups {
    fn default() -> Self {
        Self {
            turns: tokio::sync::Semaphore::new(STORE_LOOKUPS_AT_ONCE),
            waiting: AtomicUsize::new(0),
        }
    }
}

/// Counts a request waiting for its turn while it lives (a request
/// dropped while it waits is counted out too).
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn new(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Self(count)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Publisher {
    /// The current `metadata/timestamp.json`, and a receiver that wakes when
    /// a publish replaces it (a long poll waits on it; nothing is sent for a
    /// publish whose timestamp is unchanged).
    pub fn timestamp_watch(&self) -> tokio::sync::watch::Receiver<Option<Arc<CachedFile>>> {
        self.cache.timestamp.subscribe()
    }

    /// A published file by path if it is in memory (the current version of
    /// every file); never reads the store, so it does not block.
    pub fn cached_file(&self, path: &str) -> Option<Arc<CachedFile>> {
        self.cache.get(path)
    }

    /// [`Publisher::file`] for the async read path: from memory when it is
    /// there or surely absent (the next root, say), else on a
    /// blocking thread, at most [`STORE_LOOKUPS_AT_ONCE`] at a time;
    /// requests beyond that wait for a turn without a thread
    /// ([`Publisher::store_lookups`]).
    pub async fn file_from_store(
        self: &Arc<Self>,
        path: String,
    ) -> Result<Option<Arc<CachedFile>>, tokio::task::JoinError> {
        if let Some(f) = self.cache.get(&path) {
            return Ok(Some(f));
        }
        if self.known_absent(&path) {
            return Ok(None);
        }
        let turn = {
            let _waiting = Waiting::new(&self.lookups.waiting);
            self.lookups.turns.acquire().await
        };
        let publisher = Arc::clone(self);
        let file = tokio::task::spawn_blocking(move || publisher.file(&path)).await;
        drop(turn);
        file
    }

    /// The read API's store reads running now, and the requests waiting
    /// for a turn ([`Publisher::file_from_store`]).
    pub fn store_lookups(&self) -> (usize, usize) {
        let running = STORE_LOOKUPS_AT_ONCE.saturating_sub(self.lookups.turns.available_permits());
        (running, self.lookups.waiting.load(Ordering::Relaxed))
    }

    /// True when `path`, not in memory, is surely not published here: the
    /// timestamp before the first publish, or a version of a metadata file
    /// newer than the one served (the next root a client asks for on every
    /// refresh). Another server sharing the store may have published it:
    /// this one serves it once it has caught up (at once, when notified).
    fn known_absent(&self, path: &str) -> bool {
        path == TIMESTAMP_PATH || self.cache.beyond_current(path)
    }

    /// A published file by path, from memory, or from the store for older
    /// versions (then kept in memory).
    pub fn file(&self, path: &str) -> Option<Arc<CachedFile>> {
        if let Some(f) = self.cache.get(path) {
            return Some(f);
        }
        if self.known_absent(path) {
            return None;
        }
        // Older versions come from the store and are not kept in memory:
        // the cache holds the current version of each file only. A file of
        // a publish not yet synced is not handed out (read under the
        // writers' lock, so a publish is held as soon as it is committed).
        // A current target the cache lacks (a trust document published
        // before this server started, or by another server sharing the
        // store) is kept once read: the next request for it is served from
        // memory. Target paths name their content (a hash), so a kept file
        // is right to serve even after a newer one replaces it.
        let (stored, current) = self
            .read(|s| -> crate::store::Result<_> {
                if self.unsynced.holds(path) {
                    return Ok(None);
                }
                if path.starts_with("targets/") {
                    if let Some(f) = s.current_published(path)? {
                        return Ok(Some((f, true)));
                    }
                }
                Ok(s.latest_published(path)?.map(|f| (f, false)))
            })
            .ok()
            .flatten()?;
        if current {
            let file = File {
                path: stored.path,
                bytes: stored.bytes.into(),
                immutable: true,
            };
            self.cache.insert(std::slice::from_ref(&file));
            return Some(Arc::new(CachedFile::new(file.path, file.bytes, true)));
        }
        Some(Arc::new(CachedFile::new(
            stored.path,
            stored.bytes.into(),
            true,
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str) -> File {
        File {
            path: path.to_owned(),
            bytes: Arc::from(path.as_bytes()),
            immutable: path != TIMESTAMP_PATH,
        }
    }

    #[test]
    fn only_versions_past_the_served_ones_are_known_absent() {
        let cache = Cache::default();
        // Nothing cached yet: nothing is known, the store is asked.
        assert!(!cache.beyond_current("metadata/2.root.json"));
        cache.insert(&[
            file("metadata/1.root.json"),
            file("metadata/2.root.json"),
            file("metadata/7.snapshot.json"),
            file("metadata/3.bins-0a.json"),
            file(TIMESTAMP_PATH),
        ]);
        for absent in [
            "metadata/3.root.json",
            "metadata/30.root.json",
            "metadata/8.snapshot.json",
            "metadata/4.bins-0a.json",
        ] {
            assert!(cache.beyond_current(absent), "{absent}");
        }
        for maybe in [
            // Served, or older versions: the store has them.
            "metadata/2.root.json",
            "metadata/1.root.json",
            "metadata/6.snapshot.json",
            "metadata/2.bins-0a.json",
            // A role this server does not know: not known absent.
            "metadata/1.bins-0b.json",
            // Not a versioned metadata path.
            "metadata/root.json",
            "metadata/x.root.json",
            "metadata/.root.json",
            TIMESTAMP_PATH,
            "targets/namespaces/a/1.trust.json",
        ] {
            assert!(!cache.beyond_current(maybe), "{maybe}");
        }
        // A new root and snapshot: their versions are served now.
        cache.insert(&[
            file("metadata/3.root.json"),
            file("metadata/8.snapshot.json"),
        ]);
        assert!(!cache.beyond_current("metadata/3.root.json"));
        assert!(cache.beyond_current("metadata/4.root.json"));
        assert!(!cache.beyond_current("metadata/7.snapshot.json"));
        assert!(cache.beyond_current("metadata/9.snapshot.json"));
    }
}
