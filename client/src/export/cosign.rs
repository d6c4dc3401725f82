//! Public keys for `cosign verify --key` and a map from scopes to them
//! (`docs/exports.md`).
//!
//! Into `dir`:
//!
//! * `<ns>/<key id>.pub` for each namespace with a trust document: its keys
//!   cosign may be given (see `images::keys` for what is left out), PEM
//!   SubjectPublicKeyInfo, the key id percent-encoded with no safe
//!   characters. Each namespace's directory is replaced whole.
//! * `cosign.json`: an object from each scope keyshare gives to one
//!   namespace alone (keyshare's pattern syntax: `*` and `?` within a
//!   segment, `**` whole segments) to `{"namespace", "threshold", "keys"}`,
//!   `keys` listing `{"id", "file"}` (the file relative to `dir`) and the
//!   key's `principal` when it names one. A verifier needs valid
//!   signatures from `threshold` distinct holders among `keys`, keys
//!   naming the same principal counting once. No two namespaces' scopes
//!   in the map share a name, so a script may take any scope that matches.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use time::OffsetDateTime;

use keyshare_policy::layout::encode_role;
use keyshare_policy::trust::TrustSet;

use super::images;
use super::{files_under, io_error, replace_dir, write_file, ExportError, Summary};

/// The map file.
pub const FILE: &str = "cosign.json";

/// Writes the key files and `cosign.json` for `set`, as of `now`, into `dir`.
pub fn write(set: &TrustSet, dir: &Path, now: OffsetDateTime) -> Result<Summary, ExportError> {
    let mut summary = Summary::default();
    let mut map: BTreeMap<String, Value> = BTreeMap::new();
    std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
    for entry in &set.index().namespaces {
        let ns = entry.name.as_str();
        let mut warn = |w: String| summary.warnings.push(format!("{ns}: {w}"));
        let Some(doc) = set.document(ns) else {
            warn("no trust document, nothing exported".into());
            continue;
        };
        images::warn_unexpressed(doc, "a key file", &mut warn);
        let kept = images::keys(set, doc, now, &mut warn)?;
        let holders = images::by_holder(&kept).len();
        if u32::try_from(holders).is_ok_and(|n| n < doc.threshold.get()) {
            warn(format!(
                "threshold {} but {holders} key holder(s) exported: nothing this map lists can meet it",
                doc.threshold
            ));
        }
        let files: Vec<(String, &images::Kept<'_>)> = kept
            .iter()
            .map(|k| (format!("{}.pub", encode_role(k.key.id.as_str())), k))
            .collect();
        replace_dir(dir, ns, |tmp| {
            for (name, k) in &files {
                write_file(tmp, name, k.pem.as_bytes())?;
            }
            Ok(())
        })?;
        files_under(dir, &dir.join(ns), &mut summary.files);
        let keys: Vec<Value> = files
            .iter()
            .map(|(name, k)| {
                let mut v = serde_json::Map::new();
                v.insert("id".into(), json!(k.key.id.as_str()));
                v.insert("file".into(), json!(format!("{ns}/{name}")));
                if let Some(p) = &k.key.principal {
                    v.insert("principal".into(), json!(p.as_str()));
                }
                Value::Object(v)
            })
            .collect();
        for scope in &entry.scopes {
            if let Some(why) = images::shared_with_others(set, ns, scope) {
                warn(format!("scope `{scope}`: {why}, left out of {FILE}"));
                continue;
            }
            map.insert(
                scope.as_str().to_owned(),
                json!({"namespace": ns, "threshold": doc.threshold.get(), "keys": keys}),
            );
        }
        summary.namespaces.push(ns.to_owned());
    }
    for ns in set.unlisted_documents() {
        summary.warnings.push(format!(
            "{ns}: trust document for a namespace not in the namespace index, not exported"
        ));
    }
    let text = serde_json::to_vec_pretty(&map).map_err(|e| ExportError::Encode {
        what: FILE.into(),
        message: e.to_string(),
    })?;
    write_file(dir, FILE, &text)?;
    summary.files.push(PathBuf::from(FILE));
    summary.files.sort();
    Ok(summary)
}
