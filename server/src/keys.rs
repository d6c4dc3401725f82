//! The data directory's `keys/`: the server's online keys and, for the
//! embedded default, the local root key, as PKCS#8 PEM files.
//!
//! Files are created with mode 0600 (the directory 0700) and are refused on
//! load when group or others can read them. Errors name the file and never
//! contain key material; nothing here logs.

use std::fs::{self, DirBuilder, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use keyshare_policy::keys::Scheme;
use keyshare_policy::repo::SharedSigner;
use keyshare_policy::sign::InMemorySigner;

use crate::publisher::OnlineKeys;

/// The keys directory's name inside the data directory.
pub const DIR_NAME: &str = "keys";
/// The root key (embedded default only).
pub const ROOT: &str = "root.pem";
/// The online keys, in the order of [`OnlineKeys`]' fields.
pub const ONLINE: [&str; 4] = [
    "targets.pem",
    "snapshot.pem",
    "timestamp.pem",
    "namespaces.pem",
];

/// Why a key file could not be written or used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// Reading or writing failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file may be read by other users.
    #[error(
        "{}: key file is readable by group or others (mode {mode:04o}); run `chmod 600 {}`",
        path.display(),
        path.display()
    )]
    TooOpen {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The file is not a usable private key.
    #[error("{}: {reason}", path.display())]
    Bad {
        /// The file.
        path: PathBuf,
        /// Why (never the key).
        reason: String,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> KeyError + '_ {
    move |source| KeyError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Generates the four online keys and a root key (Ed25519) into `dir`
/// (created with mode 0700 if missing), each file new with mode 0600.
/// Refuses to overwrite an existing key file.
pub fn generate(dir: &Path) -> Result<(OnlineKeys, SharedSigner), KeyError> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io(dir))?;
    let make = |name: &str| -> Result<SharedSigner, KeyError> {
        let path = dir.join(name);
        let signer = InMemorySigner::generate(Scheme::Ed25519).map_err(|e| KeyError::Bad {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let pem = signer.to_pkcs8_pem().map_err(|e| KeyError::Bad {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(io(&path))?;
        file.write_all(&pem).map_err(io(&path))?;
        file.sync_all().map_err(io(&path))?;
        Ok(Arc::new(signer))
    };
    let [targets, snapshot, timestamp, namespaces] = ONLINE;
    let keys = OnlineKeys {
        targets: make(targets)?,
        snapshot: make(snapshot)?,
        timestamp: make(timestamp)?,
        namespaces: make(namespaces)?,
    };
    let root = make(ROOT)?;
    Ok((keys, root))
}

/// Loads the online keys from `dir`.
pub fn load(dir: &Path) -> Result<OnlineKeys, KeyError> {
    let [targets, snapshot, timestamp, namespaces] = ONLINE;
    Ok(OnlineKeys {
        targets: load_one(&dir.join(targets))?,
        snapshot: load_one(&dir.join(snapshot))?,
        timestamp: load_one(&dir.join(timestamp))?,
        namespaces: load_one(&dir.join(namespaces))?,
    })
}

/// Loads one key file, refusing it when group or others may read it.
pub fn load_one(path: &Path) -> Result<SharedSigner, KeyError> {
    let meta = fs::metadata(path).map_err(io(path))?;
    let mode = meta.mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyError::TooOpen {
            path: path.to_owned(),
            mode,
        });
    }
    let pem = fs::read(path).map_err(io(path))?;
    let signer = InMemorySigner::from_pkcs8_pem(&pem).map_err(|e| KeyError::Bad {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    Ok(Arc::new(signer))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn generated_keys_are_private_files_and_load_back() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("keys");
        let (keys, root) = generate(&dir).unwrap();
        assert_eq!(fs::metadata(&dir).unwrap().mode() & 0o777, 0o700);
        for name in ONLINE.iter().chain([&ROOT]) {
            let mode = fs::metadata(dir.join(name)).unwrap().mode() & 0o777;
            assert_eq!(mode, 0o600, "{name}");
        }
        let loaded = load(&dir).unwrap();
        assert_eq!(loaded.targets.key_id(), keys.targets.key_id());
        assert_eq!(loaded.snapshot.key_id(), keys.snapshot.key_id());
        assert_eq!(loaded.timestamp.key_id(), keys.timestamp.key_id());
        assert_eq!(loaded.namespaces.key_id(), keys.namespaces.key_id());
        assert_eq!(load_one(&dir.join(ROOT)).unwrap().key_id(), root.key_id());
    }

    #[test]
    fn generate_refuses_to_overwrite_a_key() {
        let tmp = tempfile::tempdir().unwrap();
        generate(tmp.path()).unwrap();
        let e = generate(tmp.path()).unwrap_err();
        assert!(matches!(e, KeyError::Io { .. }), "{e}");
    }

    #[test]
    fn key_readable_by_others_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        generate(tmp.path()).unwrap();
        let path = tmp.path().join("snapshot.pem");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let e = load(tmp.path()).unwrap_err();
        assert!(matches!(e, KeyError::TooOpen { mode: 0o644, .. }), "{e}");
        let text = e.to_string();
        assert!(
            text.contains("snapshot.pem") && text.contains("chmod 600"),
            "{text}"
        );
    }

    #[test]
    fn errors_never_show_key_material() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("targets.pem");
        let secret = "-----BEGIN PRIVATE KEY-----\nTOPSECRETBYTES\n-----END PRIVATE KEY-----\n";
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .unwrap()
            .write_all(secret.as_bytes())
            .unwrap();
        let e = load_one(&path).unwrap_err().to_string();
        assert!(!e.contains("TOPSECRET"), "{e}");
        assert!(e.contains("targets.pem"), "{e}");
    }
}
