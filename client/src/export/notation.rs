//! A notation trust store and trust policy from the namespaces' X.509
//! identities (Notary Project "Trust Store and Trust Policy" specification,
//! trust policy version `1.0`).
//!
//! Into `dir` (notation's configuration directory, e.g.
//! `~/.config/notation`), for each exported namespace `<ns>`:
//!
//! * `truststore/x509/ca/<ns>/<sha256>.pem` and
//!   `truststore/x509/signingAuthority/<ns>/<sha256>.pem`: the CA
//!   certificates of the namespace's exported identities (the same anchors
//!   for both signing schemes), named by the SHA-256 of their DER;
//! * one entry of `trustPolicies` in `trustpolicy.oci.json`: `name` `<ns>`,
//!   `registryScopes` the namespace's exact repository scopes,
//!   `signatureVerification.level` `strict`, `trustStores`
//!   `["ca:<ns>", "signingAuthority:<ns>"]`, `trustedIdentities`
//!   `x509.subject: C=.., ST=.., O=..` per identity.
//!
//! The timestamp authorities the organization trusts (`org/tsas.json`)
//! go into one `tsa` store, `truststore/x509/tsa/keyshare/<sha256>.pem`
//! (notation's `tsa` stores hold root certificates, so a TSA listed by a
//! certificate that is not self-signed is left out with a warning), and
//! every exported policy references it (`"tsa:keyshare"` in `trustStores`)
//! with `signatureVerification.verifyTimestamp` `always`: notation then
//! checks a signature's RFC 3161 countersignature against those TSAs, as
//! keyshare checks a blob signature's token. Without trusted TSAs the
//! policies carry neither.
//!
//! `trustpolicy.oci.json` is rewritten whole (keyshare owns it); each
//! exported namespace's stores are replaced whole; stores of namespaces no
//! longer exported are left alone (they confer no trust without a policy).
//!
//! What notation cannot express is left out, never widened, with a warning
//! each (`docs/notation.md`): glob scopes, scopes keyshare would hand to a
//! peer or another namespace, thresholds above 1, raw keys and
//! sub-delegations, identities with a validity window, revoked CA
//! certificates, subjects without the `C`, `ST` and `O` notation requires,
//! overlapping subjects, and identities whose CA certificates differ from
//! the first exported identity's (one policy has one set of stores).

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::{json, Value};

use keyshare_policy::trust::{NamespaceTrust, Owner, RevokedSubject, SubjectAttr, TrustSet, Tsas};

use super::{files_under, io_error, replace_dir, write_file, ExportError, Summary};

/// The trust policy file name (notation 1.2 and later).
pub const TRUST_POLICY_FILE: &str = "trustpolicy.oci.json";

/// The trust store types written, with the directory under `truststore/x509/`.
pub const STORE_TYPES: [&str; 2] = ["ca", "signingAuthority"];

/// The named `tsa` store every exported policy references.
pub const TSA_STORE: &str = "keyshare";

/// One namespace's exportable part.
struct Exported {
    name: String,
    scopes: Vec<String>,
    /// `(sha256, pem)` of the CA certificates, deduplicated.
    certs: Vec<(String, String)>,
    identities: Vec<String>,
}

/// Writes the notation trust store and trust policy for `set` (and the
/// trusted TSAs `tsas`) into `dir`.
pub fn write(set: &TrustSet, tsas: &Tsas, dir: &Path) -> Result<Summary, ExportError> {
    let mut warnings = Vec::new();
    let tsa_certs = tsa_roots(set, tsas, &mut warnings);
    let mut exported = Vec::new();
    for entry in &set.index().namespaces {
        let ns = entry.name.as_str();
        let Some(doc) = set.document(ns) else {
            warnings.push(format!(
                "{ns}: no trust document, no policy (notation refuses its artifacts, as keyshare does)"
            ));
            continue;
        };
        if let Some(e) = export_namespace(set, doc, &mut warnings) {
            exported.push(e);
        }
    }
    for ns in set.unlisted_documents() {
        warnings.push(format!(
            "{ns}: trust document for a namespace not in the namespace index, not exported"
        ));
    }

    let store_root = dir.join("truststore").join("x509");
    for e in &exported {
        for store in STORE_TYPES {
            replace_dir(&store_root.join(store), &e.name, |tmp| {
                for (sha, pem) in &e.certs {
                    write_file(tmp, &format!("{sha}.pem"), pem.as_bytes())?;
                }
                Ok(())
            })?;
        }
    }
    let tsa_root = store_root.join("tsa");
    if !tsa_certs.is_empty() {
        replace_dir(&tsa_root, TSA_STORE, |tmp| {
            for (sha, pem) in &tsa_certs {
                write_file(tmp, &format!("{sha}.pem"), pem.as_bytes())?;
            }
            Ok(())
        })?;
    }
    let policy = trust_policy(&exported, !tsa_certs.is_empty());
    let text = serde_json::to_vec_pretty(&policy).map_err(|e| ExportError::Encode {
        what: TRUST_POLICY_FILE.into(),
        message: e.to_string(),
    })?;
    std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
    write_file(dir, TRUST_POLICY_FILE, &text)?;

    let mut files = vec![Path::new(TRUST_POLICY_FILE).to_owned()];
    for e in &exported {
        for store in STORE_TYPES {
            files_under(dir, &store_root.join(store).join(&e.name), &mut files);
        }
    }
    if !tsa_certs.is_empty() {
        files_under(dir, &tsa_root.join(TSA_STORE), &mut files);
    }
    files.sort();
    Ok(Summary {
        namespaces: exported.into_iter().map(|e| e.name).collect(),
        files,
        warnings,
    })
}

/// The trusted TSAs notation can take: self-signed (root) certificates,
/// not revoked; `(sha256, pem)`, sorted.
fn tsa_roots(set: &TrustSet, tsas: &Tsas, warnings: &mut Vec<String>) -> Vec<(String, String)> {
    let mut roots = Vec::new();
    for tsa in &tsas.tsas {
        let cert = tsa.certificate.cert();
        let key = cert.public_key().ok();
        let self_signed = cert.issuer_name_hash() == cert.subject_name_hash()
            && key
                .as_ref()
                .is_some_and(|k| cert.verify(k).unwrap_or(false));
        let _ = openssl::error::ErrorStack::get();
        let fp = key
            .as_ref()
            .and_then(|k| keyshare_policy::keys::public_key_fingerprint(k).ok());
        let revoked = set.revocations().iter().any(|r| match &r.subject {
            RevokedSubject::Certificate(h) => h == tsa.certificate.sha256(),
            RevokedSubject::Key(h) => fp.as_ref() == Some(h),
        });
        if revoked {
            warnings.push(format!("tsa `{}`: revoked, left out", tsa.name));
        } else if !self_signed {
            warnings.push(format!(
                "tsa `{}`: notation's tsa store takes root certificates and this one is not self-signed, left out (list the TSA's root CA in org/tsas.json)",
                tsa.name
            ));
        } else {
            roots.push((
                tsa.certificate.sha256().to_string(),
                tsa.certificate.pem().to_owned(),
            ));
        }
    }
    roots.sort();
    roots.dedup();
    roots
}

/// The trust policy document for the exported namespaces; with trusted
/// TSAs, every policy verifies timestamps against the `tsa` store.
fn trust_policy(exported: &[Exported], with_tsa: bool) -> Value {
    let policies: Vec<Value> = exported
        .iter()
        .map(|e| {
            let mut stores: Vec<String> = STORE_TYPES
                .iter()
                .map(|t| format!("{t}:{}", e.name))
                .collect();
            let verification = if with_tsa {
                stores.push(format!("tsa:{TSA_STORE}"));
                json!({"level": "strict", "verifyTimestamp": "always"})
            } else {
                json!({"level": "strict"})
            };
            json!({
                "name": e.name,
                "registryScopes": e.scopes,
                "signatureVerification": verification,
                "trustStores": stores,
                "trustedIdentities": e.identities,
            })
        })
        .collect();
    json!({"version": "1.0", "trustPolicies": policies})
}

/// An identity kept for a namespace's policy.
struct Kept<'a> {
    name: &'a str,
    /// `(sha256, pem)` of its CA certificates, sorted.
    certs: Vec<(String, String)>,
    pairs: Vec<(SubjectAttr, String)>,
    /// `x509.subject: ...`.
    text: String,
}

fn export_namespace(
    set: &TrustSet,
    doc: &NamespaceTrust,
    warnings: &mut Vec<String>,
) -> Option<Exported> {
    let ns = doc.namespace.as_str();
    let mut warn = |w: String| warnings.push(format!("{ns}: {w}"));
    if doc.threshold.get() > 1 {
        warn(format!(
            "threshold {} cannot be expressed (notation accepts one signature), no policy",
            doc.threshold
        ));
        return None;
    }
    if !doc.keys.is_empty() {
        warn(format!(
            "{} raw key(s) cannot be expressed in notation (see the PEM export)",
            doc.keys.len()
        ));
    }
    if !doc.sub_delegations.is_empty() {
        warn(format!(
            "{} sub-delegation(s) (raw keys) cannot be expressed in notation",
            doc.sub_delegations.len()
        ));
    }

    let scopes = registry_scopes(set, ns, &mut warn);
    if scopes.is_empty() {
        warn("no scope notation can express (exact repository names), no policy".into());
        return None;
    }

    // Certificates revoked by hash, and by the key they carry.
    let revoked: BTreeSet<&str> = set
        .revocations()
        .iter()
        .map(|r| match &r.subject {
            RevokedSubject::Certificate(h) | RevokedSubject::Key(h) => h.as_str(),
        })
        .collect();
    let ca_key = |ca: &keyshare_policy::trust::CaCert| {
        ca.cert()
            .public_key()
            .ok()
            .and_then(|k| keyshare_policy::keys::public_key_fingerprint(&k).ok())
    };
    let mut kept: Vec<Kept<'_>> = Vec::new();
    for identity in &doc.identities {
        let id = &identity.name;
        if identity.not_before.is_some() || identity.not_after.is_some() {
            warn(format!(
                "identity `{id}`: its validity window cannot be expressed in notation, left out"
            ));
            continue;
        }
        let mut certs = Vec::new();
        for ca in &identity.ca_certs {
            let key_revoked = ca_key(ca).is_some_and(|fp| revoked.contains(fp.as_str()));
            if revoked.contains(ca.sha256().as_str()) || key_revoked {
                warn(format!(
                    "identity `{id}`: CA certificate {} is revoked, left out",
                    ca.sha256()
                ));
            } else {
                certs.push((ca.sha256().to_string(), ca.pem().to_owned()));
            }
        }
        if certs.is_empty() {
            warn(format!(
                "identity `{id}`: no usable CA certificate, left out"
            ));
            continue;
        }
        certs.sort();
        let pairs = identity.subject.pairs().to_vec();
        let has = |a: SubjectAttr| pairs.iter().any(|(b, _)| *b == a);
        if !(has(SubjectAttr::Country) && has(SubjectAttr::State) && has(SubjectAttr::Organization))
        {
            warn(format!(
                "identity `{id}`: notation requires C, ST and O in a trusted subject, `{}` lacks one, left out",
                identity.subject
            ));
            continue;
        }
        if let Some(first) = kept.first() {
            if first.certs != certs {
                warn(format!(
                    "identity `{id}`: its CA certificates differ from identity `{}`'s and one notation policy has one set of stores, left out",
                    first.name
                ));
                continue;
            }
        }
        // Overlapping subjects make a notation policy invalid. A subset of
        // pairs matches every certificate the superset matches: keep the
        // subset. Two subjects that could match one certificate but neither
        // is a subset of the other: keep the first.
        let subset = |a: &[(SubjectAttr, String)], b: &[(SubjectAttr, String)]| {
            a.iter().all(|p| b.contains(p))
        };
        let compatible = |a: &[(SubjectAttr, String)], b: &[(SubjectAttr, String)]| {
            a.iter()
                .all(|(attr, v)| b.iter().all(|(battr, bv)| attr != battr || v == bv))
        };
        if let Some(other) = kept.iter().find(|k| subset(&k.pairs, &pairs)) {
            warn(format!(
                "identity `{id}`: covered by identity `{}` (same CA certificates, broader subject)",
                other.name
            ));
            continue;
        }
        if let Some(other) = kept
            .iter()
            .find(|k| compatible(&k.pairs, &pairs) && !subset(&pairs, &k.pairs))
        {
            warn(format!(
                "identity `{id}`: its subject overlaps identity `{}`'s, which notation refuses, left out",
                other.name
            ));
            continue;
        }
        let covered: Vec<String> = kept
            .iter()
            .filter(|k| subset(&pairs, &k.pairs))
            .map(|k| k.name.to_owned())
            .collect();
        for name in &covered {
            warn(format!(
                "identity `{name}`: covered by identity `{id}` (same CA certificates, broader subject)"
            ));
        }
        kept.retain(|k| !subset(&pairs, &k.pairs));
        kept.push(Kept {
            name: &identity.name,
            text: notation_subject(&pairs),
            certs,
            pairs,
        });
    }
    if kept.is_empty() {
        warn("no X.509 identity notation can express, no policy".into());
        return None;
    }
    Some(Exported {
        name: ns.to_owned(),
        scopes,
        certs: kept.first().map(|k| k.certs.clone()).unwrap_or_default(),
        identities: kept.into_iter().map(|k| k.text).collect(),
    })
}

/// The namespace's scopes notation can express: exact repository names
/// (no wildcard, tag or digest) that keyshare's own decision gives to this
/// namespace (not to a peer or a more specific namespace).
fn registry_scopes(set: &TrustSet, ns: &str, warn: &mut impl FnMut(String)) -> Vec<String> {
    let Some(entry) = set.index().get(ns) else {
        return Vec::new();
    };
    let mut scopes = Vec::new();
    for scope in &entry.scopes {
        let s = scope.as_str();
        if s.contains(['*', '?', '[', ']']) {
            warn(format!(
                "scope `{s}` is a pattern; notation scopes are exact repositories, left out"
            ));
            continue;
        }
        let last = s.rsplit('/').next().unwrap_or(s);
        if !s.contains('/') || last.contains(':') || s.contains('@') {
            warn(format!(
                "scope `{s}` is not a repository name (registry/repository, no tag or digest), left out"
            ));
            continue;
        }
        match set.owner(s) {
            Some(Owner::Namespace { entry, .. }) if entry.name.as_str() == ns => {
                scopes.push(s.to_owned());
            }
            _ => warn(format!(
                "scope `{s}` is answered by a peer or another namespace in keyshare, left out"
            )),
        }
    }
    scopes
}

/// `x509.subject: C=US, ST=WA, O=acme` with notation's escaping: `,`, `;`
/// and `\` escaped by `\`, and a leading or trailing space too.
fn notation_subject(pairs: &[(SubjectAttr, String)]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .map(|(attr, value)| format!("{}={}", attr.short_name(), escape(value)))
        .collect();
    format!("x509.subject: {}", parts.join(", "))
}

fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        if matches!(c, ',' | ';' | '\\') || (c == ' ' && (i == 0 || i == last)) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notation_subjects_escape_commas_semicolons_backslashes_and_edge_spaces() {
        assert_eq!(escape("a,b;c\\d"), "a\\,b\\;c\\\\d");
        assert_eq!(escape(" x y "), "\\ x y\\ ");
        assert_eq!(
            notation_subject(&[
                (SubjectAttr::Country, "US".into()),
                (SubjectAttr::Organization, "Acme, Inc.".into())
            ]),
            "x509.subject: C=US, O=Acme\\, Inc."
        );
    }
}
