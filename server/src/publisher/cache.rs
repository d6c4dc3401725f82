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
#[derive(Debug, Default)]
pub(super) struct Cache {
    files: RwLock<HashMap<String, Arc<CachedFile>>>,
    /// For each file lineage (a role's metadata, a target path), the path
    /// of its cached current version.
    current: Mutex<HashMap<String, String>>,
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
    }

    fn get(&self, path: &str) -> Option<Arc<CachedFile>> {
        self.files
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(path)
            .cloned()
    }
}

impl Publisher {
    /// A published file by path, from memory, or from the store for older
    /// versions (then kept in memory).
    pub fn file(&self, path: &str) -> Option<Arc<CachedFile>> {
        if let Some(f) = self.cache.get(path) {
            return Some(f);
        }
        if path == "metadata/timestamp.json" {
            return None;
        }
        // Older versions come from the store and are not kept in memory:
        // the cache holds the current version of each file only.
        let stored = self.read(|s| s.latest_published(path)).ok().flatten()?;
        Some(Arc::new(CachedFile::new(
            stored.path,
            stored.bytes.into(),
            true,
        )))
    }
}
