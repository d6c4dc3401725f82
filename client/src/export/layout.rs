//! The namespaces' layout-root keys (`layout_root: true` on a key,
//! documents of format `keyshare.trust/v3`) for in-toto layout
//! verification (`docs/exports.md`).
//!
//! Into `dir`:
//!
//! * `layout-keys.json`: for each namespace with a layout-root key, an
//!   in-toto key map, `{KEYID: {"keytype", "scheme", "keyval": {"public"}}}`
//!   (in-toto specification, section 4.2 "Key formats"; the same objects
//!   TUF and securesystemslib use), KEYID the hex SHA-256 of the key
//!   object's canonical JSON, as the specification computes it (keyshare's
//!   own key id may be another opaque string; it is in the PEM file name).
//! * `<ns>/<key id>.pem`: each key as PEM SubjectPublicKeyInfo, for
//!   `in-toto-verify --layout-keys`. Each namespace's directory is
//!   replaced whole.
//! * `witness-publickeys.json`: for each such namespace, a witness policy's
//!   `publickeys` map, `{KEYID: {"keyid", "key"}}`, `key` the PEM in
//!   base64 and KEYID the hex SHA-256 of that PEM, as witness computes it
//!   (`cryptoutil.GeneratePublicKeyID`).
//!
//! Left out, with a warning each: revoked layout-root keys (by the
//! organization or the namespace, whatever `revoked_at`), expired ones and
//! ones not valid yet; written with a warning: keys with a validity window
//! that includes now. Keys not marked `layout_root` are not layout keys and
//! are never written.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{json, Value};
use time::OffsetDateTime;

use keyshare_policy::layout::encode_role;
use keyshare_policy::trust::TrustSet;

use super::{files_under, io_error, key_is_revoked, replace_dir, write_file, ExportError, Summary};

/// The key map file.
pub const FILE: &str = "layout-keys.json";

/// The witness `publickeys` file.
pub const WITNESS_FILE: &str = "witness-publickeys.json";

/// Writes the layout-root keys of `set`, as of `now`, into `dir`.
pub fn write(set: &TrustSet, dir: &Path, now: OffsetDateTime) -> Result<Summary, ExportError> {
    let mut summary = Summary::default();
    let mut bundle: BTreeMap<String, Value> = BTreeMap::new();
    let mut witness: BTreeMap<String, Value> = BTreeMap::new();
    std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
    for doc in set.namespaces() {
        let ns = doc.namespace.as_str();
        let mut warn = |w: String| summary.warnings.push(format!("{ns}: {w}"));
        let mut map = serde_json::Map::new();
        let mut publickeys = serde_json::Map::new();
        let mut files: Vec<(String, Vec<u8>)> = Vec::new();
        for key in doc.keys.iter().filter(|k| k.layout_root) {
            let id = key.id.as_str();
            if key_is_revoked(set, ns, key) {
                warn(format!("layout-root key {id}: revoked, left out"));
                continue;
            }
            if key.not_after.is_some_and(|t| t <= now) {
                warn(format!("layout-root key {id}: expired, left out"));
                continue;
            }
            if key.not_before.is_some_and(|t| t > now) {
                warn(format!("layout-root key {id}: not valid yet, left out"));
                continue;
            }
            if key.not_before.is_some() || key.not_after.is_some() {
                warn(format!(
                    "layout-root key {id}: its validity window is not carried by a layout key"
                ));
            }
            let encode = |message: String| ExportError::Encode {
                what: format!("key {id}"),
                message,
            };
            let keyid = key.key.key_id().map_err(|e| encode(e.to_string()))?;
            let pem = super::public_pem(key)?;
            map.insert(
                keyid.as_str().to_owned(),
                json!({
                    "keytype": key.key.keytype,
                    "scheme": key.key.scheme,
                    "keyval": {"public": key.key.keyval.public},
                }),
            );
            let witness_id = keyshare_policy::hash::sha256_hex(&pem);
            publickeys.insert(
                witness_id.clone(),
                json!({"keyid": witness_id, "key": openssl::base64::encode_block(&pem)}),
            );
            files.push((format!("{}.pem", encode_role(id)), pem));
        }
        if map.is_empty() {
            continue;
        }
        replace_dir(dir, ns, |tmp| {
            for (name, pem) in &files {
                write_file(tmp, name, pem)?;
            }
            Ok(())
        })?;
        files_under(dir, &dir.join(ns), &mut summary.files);
        bundle.insert(ns.to_owned(), Value::Object(map));
        witness.insert(ns.to_owned(), Value::Object(publickeys));
        summary.namespaces.push(ns.to_owned());
    }
    for (name, value) in [(FILE, &bundle), (WITNESS_FILE, &witness)] {
        let text = serde_json::to_vec_pretty(value).map_err(|e| ExportError::Encode {
            what: name.into(),
            message: e.to_string(),
        })?;
        write_file(dir, name, &text)?;
        summary.files.push(name.into());
    }
    summary.files.sort();
    Ok(summary)
}
