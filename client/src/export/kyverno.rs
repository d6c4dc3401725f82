//! Kyverno `ClusterPolicy` resources (`kyverno.io/v1`) with `verifyImages`
//! rules, from the namespaces' keys (`docs/exports.md`).
//!
//! Into `dir`: `kyverno.json`, a `List` of one `ClusterPolicy` per
//! exported namespace, `keyshare-<ns>`, for `kubectl apply -f` (JSON is
//! YAML; no YAML writer is needed). Each policy has one rule,
//! `verify-signatures`, matching Pods (Kyverno generates the rules for
//! their controllers), with one `verifyImages` entry:
//!
//! * `imageReferences`: the namespace's scopes Kyverno can express,
//!   rewritten to Kyverno's wildcards, which match the whole reference
//!   (`registry/repository:tag` or `registry/repository@digest`) and whose
//!   `*` crosses `/`: `registry.example/team-a/**` becomes
//!   `registry.example/team-a/*`; a repository `registry.example/team-a/app`
//!   becomes `registry.example/team-a/app:*` and
//!   `registry.example/team-a/app@*`. Scopes of any other shape are left
//!   out: a keyshare `*` or `?` stays within a segment, Kyverno's do not.
//! * `attestors`: one set, `count` the namespace's threshold, an entry per
//!   key holder: a key's PEM in `keys.publicKeys`, or, for keys sharing a
//!   principal (which count once in keyshare), a nested `attestor` with
//!   `count: 1` over them.
//! * `mutateDigest`, `verifyDigest`, `required`: `true` (Kyverno's
//!   defaults, written out).
//!
//! Kyverno's matcher (`ext/wildcard`, github.com/IGLOU-EU/go-wildcard/v2)
//! also reads `.` as "any one character", so `registry.acme.io/...` matches
//! `registryXacme.io/...` too. A rule only adds requirements, so that
//! grants nothing; but a pattern whose look-alikes could be names keyshare
//! gives to another namespace or a peer is left out, so that no namespace's
//! keys are ever required for another's artifacts.
//!
//! Never widened: a threshold is the `count`, never less; a namespace whose
//! exportable key holders are fewer than its threshold gets no policy.

use std::path::Path;

use serde_json::{json, Value};
use time::OffsetDateTime;

use keyshare_policy::pattern::ArtifactPattern;
use keyshare_policy::trust::{NamespaceTrust, TrustSet};

use super::images::{self, Kept};
use super::{ExportError, Summary};

/// The file written.
pub const FILE: &str = "kyverno.json";

/// The rule's name in every policy.
pub const RULE: &str = "verify-signatures";

/// Writes the Kyverno policies for `set`, as of `now`, into `dir`.
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
    images::warn_unexpressed(doc, "Kyverno", warn);
    let kept = images::keys(set, doc, now, warn)?;
    let mut references = Vec::new();
    for scope in scopes {
        match references_of(set, ns, scope) {
            Ok(r) => references.extend(r),
            Err(why) => warn(format!("scope `{scope}`: {why}, left out")),
        }
    }
    if references.is_empty() {
        warn("no scope Kyverno can express, no policy".into());
        return Ok(None);
    }
    let groups = images::by_holder(&kept);
    let threshold = doc.threshold.get();
    if u32::try_from(groups.len()).is_ok_and(|n| n < threshold) {
        warn(format!(
            "threshold {threshold} but {} key holder(s) Kyverno can be given, no policy",
            groups.len()
        ));
        return Ok(None);
    }
    let entries: Vec<Value> = groups
        .iter()
        .map(|g| match g.as_slice() {
            [one] => key_entry(one),
            many => json!({"attestor": {
                "count": 1,
                "entries": many.iter().map(|k| key_entry(k)).collect::<Vec<_>>(),
            }}),
        })
        .collect();
    Ok(Some(json!({
        "apiVersion": "kyverno.io/v1",
        "kind": "ClusterPolicy",
        "metadata": {
            "name": format!("keyshare-{ns}"),
            "labels": {"app.kubernetes.io/managed-by": "keyshare"},
        },
        "spec": {
            "validationFailureAction": "Enforce",
            "background": false,
            "rules": [{
                "name": RULE,
                "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
                "verifyImages": [{
                    "imageReferences": references,
                    "attestors": [{"count": threshold, "entries": entries}],
                    "mutateDigest": true,
                    "verifyDigest": true,
                    "required": true,
                }],
            }],
        },
    })))
}

fn key_entry(k: &Kept<'_>) -> Value {
    json!({"keys": {"publicKeys": k.pem, "signatureAlgorithm": "sha256"}})
}

/// The Kyverno image references for `scope`, or why there are none.
fn references_of(set: &TrustSet, ns: &str, scope: &ArtifactPattern) -> Result<Vec<String>, String> {
    let s = scope.as_str();
    images::registry_host(s)?;
    let (literal, recursive) = images::literal_shape(s).ok_or_else(|| {
        "Kyverno's `*` and `?` cross `/`, so only `registry/path/**` and exact repositories map exactly"
            .to_owned()
    })?;
    if let Some(why) = images::shared_with_others(set, ns, scope) {
        return Err(why);
    }
    lookalikes_clear(set, ns, literal, recursive)?;
    Ok(if recursive {
        vec![format!("{literal}/*")]
    } else {
        vec![format!("{literal}:*"), format!("{literal}@*")]
    })
}

/// Most `.` in a pattern checked for look-alikes; with more the pattern
/// is left out.
const MAX_DOTS: usize = 6;

/// Checks that no name Kyverno's reading of `.` adds to the literal part
/// (`.` as any character, `/` included) is one keyshare could give to
/// another namespace or a peer: every variant where at least one `.` is
/// another character is tried against their patterns.
fn lookalikes_clear(
    set: &TrustSet,
    ns: &str,
    literal: &str,
    recursive: bool,
) -> Result<(), String> {
    let dots: Vec<usize> = literal.match_indices('.').map(|(i, _)| i).collect();
    if dots.is_empty() {
        return Ok(());
    }
    if dots.len() > MAX_DOTS {
        return Err(format!(
            "more than {MAX_DOTS} `.`, which Kyverno reads as any character, too many to check"
        ));
    }
    let others: Vec<(&str, &ArtifactPattern)> = set
        .peers()
        .iter()
        .flat_map(|p| p.patterns.iter().map(move |x| (p.name.as_str(), x)))
        .chain(
            set.index()
                .namespaces
                .iter()
                .filter(|e| e.name.as_str() != ns)
                .flat_map(|e| e.scopes.iter().map(move |x| (e.name.as_str(), x))),
        )
        .collect();
    // Each `.` stays, becomes `/`, or becomes any other character but `/`.
    let variants = 3usize.pow(u32::try_from(dots.len()).unwrap_or(u32::MAX));
    for v in 1..variants {
        let mut text = String::with_capacity(literal.len() + 8);
        let mut last = 0;
        let mut code = v;
        for &at in &dots {
            text.push_str(literal.get(last..at).unwrap_or_default());
            text.push_str(match code % 3 {
                0 => ".",
                1 => "/",
                _ => "[!.]",
            });
            code /= 3;
            last = at + 1;
        }
        text.push_str(literal.get(last..).unwrap_or_default());
        if recursive {
            text.push_str("/**");
        }
        let Ok(variant) = ArtifactPattern::parse(&text) else {
            return Err(format!(
                "Kyverno reads `.` as any character, and a look-alike (`{text}`) cannot be checked"
            ));
        };
        for (owner, o) in &others {
            if let Some(found) = variant.common_match(o) {
                let example = found.example().unwrap_or("a name");
                return Err(format!(
                    "Kyverno reads `.` as any character, so it would also match `{example}`, which `{owner}` may own (`{o}`)"
                ));
            }
        }
    }
    Ok(())
}
