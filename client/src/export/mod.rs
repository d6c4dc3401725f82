//! Exports of verified trust for tools that do not speak keyshare.
//!
//! * [`notation::write`]: a notation trust store and trust policy
//!   (`truststore/x509/...`, `trustpolicy.oci.json`) from the namespaces'
//!   X.509 identities.
//! * [`pem::write`]: the namespaces' raw public keys as PEM files.
//! * [`kyverno::write`]: Kyverno `ClusterPolicy` resources with
//!   `verifyImages` rules.
//! * [`policy_controller::write`]: Sigstore policy-controller
//!   `ClusterImagePolicy` resources.
//! * [`cosign::write`]: public keys for `cosign verify --key` and a map
//!   from scopes to them (`cosign.json`).
//! * [`layout::write`]: the namespaces' layout-root keys as an in-toto key
//!   map and PEM files.
//!
//! All take a [`TrustSet`] built from documents the caller has verified
//! (the TUF workflow) and write files; neither fetches anything. What the
//! target format cannot say is left out rather than widened, and each such
//! omission is a warning in the [`Summary`]: `docs/notation.md` and
//! `docs/exports.md` list them.
//!
//! Files are written atomically one by one (a temporary file, then a
//! rename); a directory keyshare owns (one trust store, one namespace's PEM
//! keys) is built beside the old one and swapped in.

pub mod cosign;
mod images;
pub mod kyverno;
pub mod layout;
pub mod notation;
pub mod pem;
pub mod policy_controller;

use std::path::{Path, PathBuf};

use keyshare_policy::trust::{TrustSet, TrustedKey};

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// A file or directory could not be written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A key or certificate could not be encoded.
    #[error("{what}: {message}")]
    Encode {
        /// The key or certificate.
        what: String,
        /// What went wrong.
        message: String,
    },
}

/// What an export wrote and what it left out.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Namespaces exported (a notation trust policy, or a PEM directory).
    pub namespaces: Vec<String>,
    /// Files written, relative to the export directory, sorted.
    pub files: Vec<PathBuf>,
    /// What the format could not express and was left out, one line each.
    pub warnings: Vec<String>,
}

fn io_error(path: &Path, source: std::io::Error) -> ExportError {
    ExportError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Replaces `dir/name` with `bytes` (mode 0600) with
/// [`keyshare_fsio::write_atomically`].
fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), ExportError> {
    keyshare_fsio::write_atomically(&dir.join(name), bytes, 0o600)
        .map_err(|e| io_error(&e.path, e.source))
}

/// Replaces directory `parent/name` by one that `fill` builds: `fill`
/// writes into a fresh temporary directory in `parent`, which is then
/// renamed over the old one (removed first).
fn replace_dir(
    parent: &Path,
    name: &str,
    fill: impl FnOnce(&Path) -> Result<(), ExportError>,
) -> Result<(), ExportError> {
    std::fs::create_dir_all(parent).map_err(|e| io_error(parent, e))?;
    let tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempdir_in(parent)
        .map_err(|e| io_error(parent, e))?;
    fill(tmp.path())?;
    let target = parent.join(name);
    match std::fs::remove_dir_all(&target) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io_error(&target, e)),
        _ => {}
    }
    let tmp = tmp.keep();
    std::fs::rename(&tmp, &target).map_err(|e| {
        let _ = std::fs::remove_dir_all(&tmp);
        io_error(&target, e)
    })
}

/// The public key of `key` as PEM (SubjectPublicKeyInfo).
fn public_pem(key: &TrustedKey) -> Result<Vec<u8>, ExportError> {
    let encode = |message: String| ExportError::Encode {
        what: format!("key {}", key.id),
        message,
    };
    key.key
        .openssl_key(&key.id)
        .map_err(|e| encode(e.to_string()))?
        .public_key_to_pem()
        .map_err(|e| encode(e.to_string()))
}

/// True when `key`, listed in namespace `ns`, is revoked in `set`: its
/// material is, under whatever id, by the organization or by the namespace
/// itself. Revocation is from a time on in keyshare; exports have no
/// signing time, so any revocation leaves the key out.
fn key_is_revoked(set: &TrustSet, ns: &str, key: &TrustedKey) -> bool {
    let Ok(fingerprint) = key.key.fingerprint(&key.id) else {
        return false;
    };
    set.key_revocation(ns, &fingerprint).is_some()
}

/// Lists the files under `dir`, relative to `base`, sorted.
fn files_under(base: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            files_under(base, &path, out);
        } else if let Ok(rel) = path.strip_prefix(base) {
            out.push(rel.to_owned());
        }
    }
    out.sort();
}
