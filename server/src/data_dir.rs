//! The data directory: what lives where in it. Files in it, and in the
//! directories the server writes for others (`publish --to`, `export
//! --out`), are written with `keyshare_fsio` (one atomic write for the
//! workspace).
//!
//! ```text
//! DIR/keyshare.toml            configuration (CONFIG_FILE)
//! DIR/keyshare.db (-wal, -shm) the SQLite store (DB_NAME)
//! DIR/keys/                    online keys, the root key, ci-secret, the TSA key
//!                              and the TSA CA key (KEYS_DIR; crate::keys)
//! DIR/keyshare.lock            one writer at a time (LOCK_FILE)
//! DIR/tsa/                     the timestamp authority's certificates (TSA_DIR):
//!     ca.pem                   the organization's TSA CA (TSA_CA_CERT)
//!     tsa.pem                  the TSA certificate (TSA_CERT)
//!     chain.pem                both, TSA first: `tsa.cert_chain` (TSA_CHAIN)
//! DIR/replica/                 an air-gap replica instead (REPLICA_DIR):
//!     pinned-root.json         the root pinned at `init --replica`
//!     current.bundle           the bundle last imported
//! ```
//!
//! On the ground floor of `server/src`: it imports nothing from the crate.

use std::path::{Path, PathBuf};

/// The configuration file's name inside the data directory.
pub const CONFIG_FILE: &str = "keyshare.toml";
/// The SQLite store's file name inside the data directory.
pub const DB_NAME: &str = "keyshare.db";
/// The keys directory's name inside the data directory.
pub const KEYS_DIR: &str = "keys";
/// The lock file's name inside the data directory.
pub const LOCK_FILE: &str = "keyshare.lock";
/// The replica's directory inside the data directory.
pub const REPLICA_DIR: &str = "replica";
/// The timestamp authority's certificates' directory inside the data directory.
pub const TSA_DIR: &str = "tsa";
/// The TSA CA certificate (PEM), in the TSA directory.
pub const TSA_CA_CERT: &str = "ca.pem";
/// The TSA certificate (PEM), in the TSA directory.
pub const TSA_CERT: &str = "tsa.pem";
/// The TSA certificate then the CA certificate (PEM), in the TSA directory.
pub const TSA_CHAIN: &str = "chain.pem";
/// The pinned root, in the replica directory.
pub const PINNED_ROOT: &str = "pinned-root.json";
/// The current bundle, in the replica directory.
pub const CURRENT_BUNDLE: &str = "current.bundle";

/// The paths of one data directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DataDir<'a>(&'a Path);

impl<'a> DataDir<'a> {
    /// The data directory at `path`.
    pub fn new(path: &'a Path) -> Self {
        Self(path)
    }

    /// The directory itself.
    pub fn path(&self) -> &'a Path {
        self.0
    }

    /// `keyshare.toml`.
    pub fn config(&self) -> PathBuf {
        self.0.join(CONFIG_FILE)
    }

    /// `keyshare.db`.
    pub fn db(&self) -> PathBuf {
        self.0.join(DB_NAME)
    }

    /// `keys/`.
    pub fn keys(&self) -> PathBuf {
        self.0.join(KEYS_DIR)
    }

    /// `keyshare.lock`.
    pub fn lock(&self) -> PathBuf {
        self.0.join(LOCK_FILE)
    }

    /// `tsa/`.
    pub fn tsa(&self) -> PathBuf {
        self.0.join(TSA_DIR)
    }

    /// `replica/`.
    pub fn replica(&self) -> PathBuf {
        self.0.join(REPLICA_DIR)
    }
}
