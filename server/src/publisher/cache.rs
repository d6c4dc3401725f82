//! The published files in memory for the read API: the current version of
//! each file, and older versions read from the store on demand.

use std::collections::HashMap;
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
}

impl Default for Cache {
    fn default() -> Self {
        Self {
            files: RwLock::default(),
            current: Mutex::default(),
            timestamp: tokio::sync::watch::Sender::new(None),
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
}

/// The path of the one mutable published file.
const TIMESTAMP_PATH: &str = "metadata/timestamp.json";

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

    /// A published file by path, from memory, or from the store for older
    /// versions (then kept in memory).
    pub fn file(&self, path: &str) -> Option<Arc<CachedFile>> {
        if let Some(f) = self.cache.get(path) {
            return Some(f);
        }
        if path == TIMESTAMP_PATH {
            return None;
        }
        // Older versions come from the store and are not kept in memory:
        // the cache holds the current version of each file only. A file of
        // a publish not yet synced is not handed out (read under the
        // writers' lock, so a publish is held as soon as it is committed).
        let stored = self
            .read(|s| {
                if self.unsynced.holds(path) {
                    Ok(None)
                } else {
                    s.latest_published(path)
                }
            })
            .ok()
            .flatten()?;
        Some(Arc::new(CachedFile::new(
            stored.path,
            stored.bytes.into(),
            true,
        )))
    }
}
