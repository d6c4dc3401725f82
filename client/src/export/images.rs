//! What the image-signature exports (Kyverno, policy-controller, cosign)
//! share: which keys of a namespace a cosign verifier may take, and which
//! of its scopes keyshare gives to it alone.

use std::collections::BTreeMap;
use std::path::Path;

use time::OffsetDateTime;

use keyshare_policy::keys::Scheme;
use keyshare_policy::pattern::ArtifactPattern;
use keyshare_policy::trust::{NamespaceTrust, TrustSet, TrustedKey};

use super::{io_error, write_file, ExportError, Summary};

/// Who holds a key, for counting a threshold: keys naming one principal
/// count once in keyshare, and a key without one is its own.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Holder {
    /// The principal the document names.
    Principal(String),
    /// The key itself (by id).
    Key(String),
}

/// A key kept for an export, with its public key as PEM
/// (SubjectPublicKeyInfo).
pub(super) struct Kept<'a> {
    pub(super) key: &'a TrustedKey,
    pub(super) pem: String,
}

impl Kept<'_> {
    pub(super) fn holder(&self) -> Holder {
        match &self.key.principal {
            Some(p) => Holder::Principal(p.as_str().to_owned()),
            None => Holder::Key(self.key.id.as_str().to_owned()),
        }
    }
}

/// One policy of a namespace: its trust document and its scopes, as of
/// `now`; `None` when nothing can be written for it (warned).
pub(super) type PolicyOf = fn(
    &TrustSet,
    &NamespaceTrust,
    &[ArtifactPattern],
    OffsetDateTime,
    &mut dyn FnMut(String),
) -> Result<Option<serde_json::Value>, ExportError>;

/// Writes `file` into `dir`: a `v1` `List` of each listed namespace's
/// policy (`policy`), with a warning for each namespace left out.
pub(super) fn write_list(
    set: &TrustSet,
    dir: &Path,
    now: OffsetDateTime,
    file: &str,
    policy: PolicyOf,
) -> Result<Summary, ExportError> {
    let mut summary = Summary::default();
    let mut items = Vec::new();
    for entry in &set.index().namespaces {
        let ns = entry.name.as_str();
        let mut warn = |w: String| summary.warnings.push(format!("{ns}: {w}"));
        let Some(doc) = set.document(ns) else {
            warn("no trust document, no policy".into());
            continue;
        };
        if let Some(item) = policy(set, doc, &entry.scopes, now, &mut warn)? {
            items.push(item);
            summary.namespaces.push(ns.to_owned());
        }
    }
    for ns in set.unlisted_documents() {
        summary.warnings.push(format!(
            "{ns}: trust document for a namespace not in the namespace index, not exported"
        ));
    }
    let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items});
    let text = serde_json::to_vec_pretty(&list).map_err(|e| ExportError::Encode {
        what: file.into(),
        message: e.to_string(),
    })?;
    std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
    write_file(dir, file, &text)?;
    summary.files.push(file.into());
    Ok(summary)
}

/// The namespace's own keys a cosign verifier may be given, in document
/// order. Left out, with a warning each: ephemeral (CI) keys, keys revoked
/// by the organization or the namespace (from any time on: an export has no
/// signing time), keys expired at `now` or not valid yet, and RSA-PSS keys
/// (cosign verifies RSA keys with PKCS #1 v1.5, another scheme than the one
/// keyshare trusts the key for). Kept with a warning: keys whose validity
/// window ends later, since no policy carries the window.
pub(super) fn keys<'a>(
    set: &TrustSet,
    doc: &'a NamespaceTrust,
    now: OffsetDateTime,
    warn: &mut impl FnMut(String),
) -> Result<Vec<Kept<'a>>, ExportError> {
    let ns = doc.namespace.as_str();
    let mut kept = Vec::new();
    for key in &doc.keys {
        let id = key.id.as_str();
        if key.ephemeral {
            warn(format!("key {id}: ephemeral (CI) key, left out"));
            continue;
        }
        let revoked = key
            .key
            .fingerprint(&key.id)
            .ok()
            .and_then(|fp| set.key_revocation(ns, &fp).map(|_| ()))
            .is_some();
        if revoked {
            warn(format!("key {id}: revoked, left out"));
            continue;
        }
        if key.not_after.is_some_and(|t| t <= now) {
            warn(format!("key {id}: expired, left out"));
            continue;
        }
        if key.not_before.is_some_and(|t| t > now) {
            warn(format!("key {id}: not valid yet, left out"));
            continue;
        }
        match key.key.scheme() {
            Some(Scheme::Ed25519 | Scheme::EcdsaP256Sha256 | Scheme::RsaPkcs1v15Sha256) => {}
            Some(Scheme::RsaPssSha256) => {
                warn(format!(
                    "key {id}: RSA-PSS, which cosign does not verify (it takes RSA keys as PKCS #1 v1.5), left out"
                ));
                continue;
            }
            _ => {
                warn(format!(
                    "key {id}: a scheme cosign does not verify, left out"
                ));
                continue;
            }
        }
        if key.not_before.is_some() || key.not_after.is_some() {
            warn(format!(
                "key {id}: its validity window is not carried (export again when it ends, as `keyshare watch --export` does)"
            ));
        }
        let pem = String::from_utf8(super::public_pem(key)?).map_err(|e| ExportError::Encode {
            what: format!("key {id}"),
            message: e.to_string(),
        })?;
        kept.push(Kept { key, pem });
    }
    Ok(kept)
}

/// The kept keys grouped by holder, groups in the order of their first key.
pub(super) fn by_holder<'k, 'a>(kept: &'k [Kept<'a>]) -> Vec<Vec<&'k Kept<'a>>> {
    let mut order: Vec<Holder> = Vec::new();
    let mut groups: BTreeMap<Holder, Vec<&Kept<'a>>> = BTreeMap::new();
    for k in kept {
        let h = k.holder();
        if !groups.contains_key(&h) {
            order.push(h.clone());
        }
        groups.entry(h).or_default().push(k);
    }
    order
        .into_iter()
        .filter_map(|h| groups.remove(&h))
        .collect()
}

/// Warnings for what the exports never carry: X.509 identities (their
/// rule is a leaf subject distinguished name under given CAs; Kyverno and
/// policy-controller match a certificate's SAN and OIDC issuer, and their
/// certificate-chain attestors take any leaf of the CA, so the subject
/// would be lost) and sub-delegations.
pub(super) fn warn_unexpressed(doc: &NamespaceTrust, target: &str, warn: &mut impl FnMut(String)) {
    for identity in &doc.identities {
        warn(format!(
            "identity `{}`: {target} cannot require a certificate subject (`{}`) under given CAs, left out",
            identity.name, identity.subject
        ));
    }
    if !doc.sub_delegations.is_empty() {
        warn(format!(
            "{} sub-delegation(s) left out: {target} cannot say that their keys are an alternative to the namespace's (their artifacts need the namespace's keys)",
            doc.sub_delegations.len()
        ));
    }
}

/// Why keyshare does not give every name `scope` matches to namespace
/// `ns`: a terminating peer or a more specific scope of another namespace
/// shares names with it. `None` when every name the scope matches is the
/// namespace's.
pub(super) fn shared_with_others(
    set: &TrustSet,
    ns: &str,
    scope: &ArtifactPattern,
) -> Option<String> {
    for peer in set.peers().iter().filter(|p| p.terminating) {
        for p in &peer.patterns {
            if scope.common_match(p).is_some() {
                return Some(format!(
                    "shares names with peer `{}` (`{p}`), which keyshare asks for them",
                    peer.name
                ));
            }
        }
    }
    for entry in &set.index().namespaces {
        let other = entry.name.as_str();
        if other == ns {
            continue;
        }
        for o in &entry.scopes {
            if o.outranks(other, scope, ns) && scope.common_match(o).is_some() {
                return Some(format!(
                    "shares names with namespace `{other}`'s more specific scope `{o}`, which keyshare gives to `{other}`"
                ));
            }
        }
    }
    None
}

/// The first segment of `scope` when it is a registry host as image
/// references spell it (a `.` or `:` in it, or `localhost`), literal, and
/// not Docker Hub's (whose names tools rewrite: `docker.io/x` is
/// `index.docker.io/library/x` to some and not to others).
pub(super) fn registry_host(scope: &str) -> Result<&str, String> {
    let host = scope.split('/').next().unwrap_or(scope);
    if host.contains(['*', '?', '[', ']']) {
        return Err("its registry host is a pattern".into());
    }
    if !(host.contains(['.', ':']) || host == "localhost") {
        return Err("it does not start with a registry host (`registry.example/...`)".into());
    }
    if matches!(
        host,
        "docker.io" | "index.docker.io" | "registry-1.docker.io"
    ) {
        return Err(
            "Docker Hub names are rewritten by the tools (`library/`, `index.docker.io`)".into(),
        );
    }
    if !scope.contains('/') {
        return Err("it names no repository".into());
    }
    Ok(host)
}

/// `scope` as a literal prefix followed by `/**` (`Some((prefix, true))`),
/// a literal repository (`Some((scope, false))`), or neither.
pub(super) fn literal_shape(scope: &str) -> Option<(&str, bool)> {
    let wild = |s: &str| s.contains(['*', '?', '[', ']']);
    match scope.strip_suffix("/**") {
        Some(prefix) if !wild(prefix) => Some((prefix, true)),
        Some(_) => None,
        None if !wild(scope) => Some((scope, false)),
        None => None,
    }
}
