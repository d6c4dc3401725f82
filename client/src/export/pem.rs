//! The namespaces' raw public keys as PEM files (SubjectPublicKeyInfo, as
//! `openssl pkey -pubout` writes), for tools that verify with a key file
//! (`cosign verify --key`, `openssl dgst -verify`).
//!
//! Into `dir`, for each namespace with a trust document:
//! `<ns>/<key id>.pem` for its own keys and
//! `<ns>/sub-delegations/<name>/<key id>.pem` for each sub-delegation's,
//! key ids and names percent-encoded with no safe characters. Each
//! namespace's directory is replaced whole.
//!
//! Left out, with a warning each: ephemeral (CI) keys, which expire within
//! minutes of being published, and keys revoked by the organization or
//! the namespace. Written, with a warning:
//! keys with a validity window and namespaces with a threshold above 1,
//! since a key file carries neither (`docs/notation.md`).

use std::path::Path;

use keyshare_policy::layout::encode_role;
use keyshare_policy::trust::{TrustSet, TrustedKey};

use super::{files_under, key_is_revoked, replace_dir, write_file, ExportError, Summary};

/// Writes the public keys of every namespace of `set` under `dir`.
pub fn write(set: &TrustSet, dir: &Path) -> Result<Summary, ExportError> {
    let mut summary = Summary::default();
    for doc in set.namespaces() {
        let ns = doc.namespace.as_str();
        let mut warn = |w: String| summary.warnings.push(format!("{ns}: {w}"));
        if doc.threshold.get() > 1 {
            warn(format!(
                "threshold {}: key files cannot say that several signatures are needed",
                doc.threshold
            ));
        }
        let mut planned: Vec<(String, Vec<u8>)> = Vec::new();
        let groups = std::iter::once((String::new(), &doc.keys)).chain(
            doc.sub_delegations.iter().map(|s| {
                (
                    format!("sub-delegations/{}/", encode_role(&s.name)),
                    &s.keys,
                )
            }),
        );
        for (prefix, keys) in groups {
            for key in keys {
                if let Some(pem) = exportable(set, ns, key, &mut warn)? {
                    planned.push((format!("{prefix}{}.pem", encode_role(key.id.as_str())), pem));
                }
            }
        }
        replace_dir(dir, ns, |tmp| {
            for (name, pem) in &planned {
                let path = tmp.join(name);
                let (parent, file) = match name.rsplit_once('/') {
                    Some((p, f)) => (tmp.join(p), f),
                    None => (tmp.to_owned(), name.as_str()),
                };
                std::fs::create_dir_all(&parent).map_err(|e| super::io_error(&path, e))?;
                write_file(&parent, file, pem)?;
            }
            Ok(())
        })?;
        files_under(dir, &dir.join(ns), &mut summary.files);
        summary.namespaces.push(ns.to_owned());
    }
    for ns in set.unlisted_documents() {
        summary.warnings.push(format!(
            "{ns}: trust document for a namespace not in the namespace index, not exported"
        ));
    }
    summary.files.sort();
    Ok(summary)
}

/// The key's PEM, or `None` (with a warning) when it is left out.
fn exportable(
    set: &TrustSet,
    ns: &str,
    key: &TrustedKey,
    warn: &mut impl FnMut(String),
) -> Result<Option<Vec<u8>>, ExportError> {
    let id = key.id.as_str();
    if key.ephemeral {
        warn(format!("key {id}: ephemeral (CI) key, left out"));
        return Ok(None);
    }
    if key_is_revoked(set, ns, key) {
        warn(format!("key {id}: revoked, left out"));
        return Ok(None);
    }
    if key.not_before.is_some() || key.not_after.is_some() {
        warn(format!(
            "key {id}: its validity window is not carried by the key file"
        ));
    }
    Ok(Some(super::public_pem(key)?))
}
