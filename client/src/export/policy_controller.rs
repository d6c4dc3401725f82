//! Sigstore policy-controller `ClusterImagePolicy` resources
//! (`policy.sigstore.dev/v1beta1`) from the namespaces' keys
//! (`docs/exports.md`).
//!
//! Into `dir`: `policy-controller.json`, a `List` of one
//! `ClusterImagePolicy` per exported namespace, `keyshare-<ns>`, for
//! `kubectl apply -f`. Each has:
//!
//! * `spec.images[].glob`: the namespace's scopes policy-controller's glob
//!   matches exactly. Its glob matches the whole reference
//!   (`registry/repository:tag` or `@digest`), `*` within a segment and
//!   `**` across segments, and allows no `@`: `registry.example/team-a/**`
//!   and `registry.example/team-a/*` are written as they are (the last
//!   wildcard takes the tag or digest); an exact repository cannot be
//!   matched by digest without matching other repositories, so it is left
//!   out, as are scopes with other wildcards.
//! * `spec.authorities[]`: one per key, `name` the key id, `key.data` its
//!   PEM, `key.hashAlgorithm` `sha256`. Authorities are alternatives (any
//!   one suffices), so only a namespace of threshold 1 is exported: a
//!   threshold above 1 has no faithful form (it would need a CUE or Rego
//!   `spec.policy`), and the namespace gets no policy rather than one that
//!   takes any single key.
//! * `spec.mode`: `enforce`.

use std::path::Path;

use serde_json::{json, Value};
use time::OffsetDateTime;

use keyshare_policy::pattern::ArtifactPattern;
use keyshare_policy::trust::{NamespaceTrust, TrustSet};

use super::images;
use super::{ExportError, Summary};

/// The file written.
pub const FILE: &str = "policy-controller.json";

/// Writes the policy-controller policies for `set`, as of `now`, into `dir`.
pub fn write(set: &TrustSet, dir: &Path, now: OffsetDateTime) -> Result<Summary, ExportError> {
    images::write_list(set, dir, now, FILE, policy)
}

fn policy(
    set: &TrustSet,
    doc: &NamespaceTrust,
    scopes: &[ArtifactPattern],
    now: OffsetDateTime,
    warn: &mut dyn FnMut(String),
) -> Result<Option<Value>, ExportError> {
    let warn = &mut |w: String| warn(w);
    let ns = doc.namespace.as_str();
    if doc.threshold.get() > 1 {
        warn(format!(
            "threshold {}: policy-controller's authorities are alternatives (any one key would do), no policy",
            doc.threshold
        ));
        return Ok(None);
    }
    images::warn_unexpressed(doc, "policy-controller", warn);
    let kept = images::keys(set, doc, now, warn)?;
    let mut globs = Vec::new();
    for scope in scopes {
        match glob_of(set, ns, scope) {
            Ok(g) => globs.push(json!({"glob": g})),
            Err(why) => warn(format!("scope `{scope}`: {why}, left out")),
        }
    }
    if globs.is_empty() {
        warn("no scope policy-controller can express, no policy".into());
        return Ok(None);
    }
    if kept.is_empty() {
        warn("no key policy-controller can be given, no policy".into());
        return Ok(None);
    }
    let authorities: Vec<Value> = kept
        .iter()
        .map(|k| {
            json!({
                "name": k.key.id.as_str(),
                "key": {"data": k.pem, "hashAlgorithm": "sha256"},
            })
        })
        .collect();
    Ok(Some(json!({
        "apiVersion": "policy.sigstore.dev/v1beta1",
        "kind": "ClusterImagePolicy",
        "metadata": {
            "name": format!("keyshare-{ns}"),
            "labels": {"app.kubernetes.io/managed-by": "keyshare"},
        },
        "spec": {
            "images": globs,
            "authorities": authorities,
            "mode": "enforce",
        },
    })))
}

/// The policy-controller glob for `scope`, or why there is none.
fn glob_of(set: &TrustSet, ns: &str, scope: &ArtifactPattern) -> Result<String, String> {
    let s = scope.as_str();
    images::registry_host(s)?;
    if !s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_:/*.".contains(c))
    {
        return Err("policy-controller's globs take only letters, digits and `-_:/*.`".into());
    }
    let (prefix, last) = s.rsplit_once('/').unwrap_or(("", s));
    if prefix.contains('*') || !(last == "**" || last == "*") {
        return Err(if !prefix.contains('*') && !last.contains('*') {
            "an exact repository: policy-controller's glob cannot match its digests (no `@`) without matching other repositories".into()
        } else {
            "only `registry/path/*` and `registry/path/**` map exactly onto policy-controller's glob".into()
        });
    }
    if let Some(why) = images::shared_with_others(set, ns, scope) {
        return Err(why);
    }
    Ok(s.to_owned())
}
