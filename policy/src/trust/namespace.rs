//! `namespaces/<ns>/trust.json`: a namespace's keys, identities, threshold and sub-delegations.
//!
//! keyshare-server lists the document directly in the hashed bin its path
//! hashes to, signed with the online targets key; a repository may also
//! delegate it to a role of its own (which a team may hold offline), so it
//! holds only what the team controls. Which artifact
//! names the namespace owns, and who maintains it, the organization states
//! in the namespace index ([`super::Namespaces`], `org/namespaces/<shard>.json`).

use std::borrow::Borrow;
use std::collections::BTreeSet;
use std::fmt;
use std::num::NonZeroU32;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize};
use time::OffsetDateTime;

use super::bins::{namespace_bins_of, BIN_BITS, NAMESPACE_BIN_PREFIX};
use super::check::{
    check_label, check_scopes, check_window, parse_json, problem_to_error, to_json, Invalid,
    Problem,
};
use super::format::TrustFormat;
use super::revocations::{Revocation, RevokedSubject};
use super::x509::X509Identity;
use super::NAMESPACES_SHARD_DIR;
use crate::error::{Error, Result};
use crate::keys::Key;
use crate::metadata::{KeyId, TOP_LEVEL_ROLES};
use crate::pattern::ArtifactPattern;

/// A namespace name: `[a-z0-9][a-z0-9-]{0,62}`, other than the names of
/// the repository's own roles ([`NamespaceName::reserved`]).
///
/// In a repository of an earlier layout a namespace's TUF role is named
/// like the namespace, and a role of its own delegated from a bin is still
/// read (generic TUF), so a namespace named `targets` or `bins-00` would
/// collide with a role the repository already has. Every namespace name is parsed here — admin API bodies and
/// paths, CLI arguments, stored rows, published documents — so none can
/// name one.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct NamespaceName(String);

impl NamespaceName {
    /// Parses a namespace name, refusing anything but lowercase ASCII
    /// letters, digits and `-` (not first), at most 63 characters, and the
    /// reserved names.
    pub fn parse(s: &str) -> std::result::Result<Self, String> {
        if !Self::is_well_formed(s) {
            return Err(format!(
                "`{s}` is not a namespace name (1 to 63 of a-z, 0-9 and `-`, not starting with `-`)"
            ));
        }
        if let Some(what) = Self::reserved(s) {
            return Err(format!("`{s}` is reserved: it names {what}"));
        }
        Ok(Self(s.to_owned()))
    }

    /// Whether `s` has the form of a namespace name,
    /// `[a-z0-9][a-z0-9-]{0,62}`, reserved or not (other names that become
    /// path segments, such as those of organization roots, have this form
    /// too).
    pub fn is_well_formed(s: &str) -> bool {
        let mut bytes = s.bytes();
        let first_ok = bytes
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        let rest_ok = bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        first_ok && rest_ok && s.len() <= 63
    }

    /// Which of the repository's own roles `s` names, if any: the
    /// top-level roles (`root`, `targets`, `snapshot`, `timestamp`) and the
    /// hashed-bin roles of every bin count a repository may choose
    /// (`bins-` and two or three lowercase hex digits: `bins-00` …
    /// `bins-ff`, `bins-000` … `bins-fff`, see
    /// [`super::namespace_bins_of`] and [`super::BIN_BITS`]). Such a name
    /// cannot name a namespace: a repository of an earlier layout names a
    /// namespace's role like the namespace, and a name that is a role in a
    /// repository of one bin count must not be a namespace in another.
    pub fn reserved(s: &str) -> Option<&'static str> {
        if TOP_LEVEL_ROLES.contains(&s) {
            Some("one of the repository's top-level roles")
        } else if s.starts_with(NAMESPACE_BIN_PREFIX)
            && BIN_BITS
                .iter()
                .any(|&bits| namespace_bins_of(bits, Vec::new(), NonZeroU32::MIN).is_bin(s))
        {
            Some("one of the repository's hashed-bin roles")
        } else {
            None
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The target path of the namespace's trust document, `namespaces/<ns>/trust.json`.
    pub fn target_path(&self) -> String {
        format!("namespaces/{}/trust.json", self.0)
    }
}

impl fmt::Display for NamespaceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Borrow<str> for NamespaceName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl FromStr for NamespaceName {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Self::parse(s)
    }
}

impl<'de> Deserialize<'de> for NamespaceName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// An opaque principal id: who holds a key, for counting a threshold by
/// holders rather than by keys. 1 to 128 of ASCII letters, digits and
/// `:`, `.`, `_`, `-`. keyshare gives the ephemeral keys of one CI identity
/// the principal `ci:<64 hex digits>` (a keyed hash of the identity, so the
/// identity itself is not published).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Principal(String);

impl Principal {
    /// Parses a principal id.
    pub fn parse(s: &str) -> std::result::Result<Self, String> {
        let ok = !s.is_empty()
            && s.len() <= 128
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b':' | b'.' | b'_' | b'-'));
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(format!(
                "`{s}` is not a principal id (1 to 128 of A-Z, a-z, 0-9, `:`, `.`, `_`, `-`)"
            ))
        }
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Principal {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A signing key a namespace (or one of its sub-delegations) trusts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TrustedKey {
    /// The key's id, opaque: signers name the key by it.
    pub id: KeyId,
    /// The public key, as a TUF key object (`keytype`, `scheme`, `keyval.public`).
    pub key: Key,
    /// Signatures made before this time are untrusted (inclusive bound).
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub not_before: Option<OffsetDateTime>,
    /// Signatures made at or after this time are untrusted (exclusive bound).
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub not_after: Option<OffsetDateTime>,
    /// An ephemeral (CI) key: untrusted once the current time reaches
    /// `not_after`, whenever the signature was made. Requires `not_after`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ephemeral: bool,
    /// Free text for people (who holds the key, what it is for).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Who holds the key, as an opaque id: keys with the same principal
    /// count once towards a threshold (all ephemeral keys of one CI
    /// identity share one). Without it the key is its own principal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<Principal>,
    /// A layout-root key: the namespace also trusts it to sign in-toto
    /// (or witness) layouts for its artifacts, which verifiers take from
    /// keyshare's layout-key export. It changes no trust decision. Only on
    /// the namespace's own keys, never ephemeral, and only in a document
    /// of format `v3` ([`TrustFormat::for_contents`]); absent (false) it
    /// is not written, so documents without it keep their bytes.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub layout_root: bool,
}

/// Keys of a sub-set of the namespace's artifacts, trusted in addition to the namespace's own.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SubDelegation {
    /// Name, unique within the namespace.
    pub name: String,
    /// Artifacts the sub-delegation covers. Only artifacts the namespace owns
    /// count (those matching its scopes in the namespace index, and not
    /// owned by a more specific namespace): a sub-delegation narrows the
    /// namespace, it never widens it.
    pub scopes: Vec<ArtifactPattern>,
    /// Distinct keys of `keys` that must have signed.
    #[cfg_attr(feature = "openapi", schema(value_type = u32, minimum = 1))]
    pub threshold: NonZeroU32,
    /// The sub-delegation's keys.
    pub keys: Vec<TrustedKey>,
}

/// `namespaces/<ns>/trust.json`: who may sign a namespace's artifacts.
///
/// There is deliberately no `scopes` (nor `maintainers`) field: the
/// artifacts a namespace owns are granted by the organization in
/// the namespace index, and a document carrying either field is refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamespaceTrust {
    /// `keyshare.trust/v1`; `keyshare.trust/v2` when the document carries
    /// `revocations`; `keyshare.trust/v3` when a key is a layout-root key
    /// ([`TrustFormat::for_contents`]).
    pub format: TrustFormat,
    /// The namespace, as in the document's target path.
    pub namespace: NamespaceName,
    /// Distinct keys and identities of `keys` + `identities` that must have signed.
    pub threshold: NonZeroU32,
    /// Trusted signing keys.
    #[serde(default)]
    pub keys: Vec<TrustedKey>,
    /// Trusted X.509 identities (CA certificates + subject).
    #[serde(default)]
    pub identities: Vec<X509Identity>,
    /// Extra keys for sub-sets of the namespace's artifacts.
    #[serde(default)]
    pub sub_delegations: Vec<SubDelegation>,
    /// Keys (by the fingerprint of their material, `spki_sha256`) this
    /// namespace no longer trusts for signatures made at or after
    /// `revoked_at`: in its own keys, its sub-delegations and any
    /// certificate chain presented for its artifacts, and nowhere else.
    /// Format `v2` only. Organization-wide revocations are in
    /// `org/revocations.json`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub revocations: Vec<Revocation>,
}

/// Just the `namespace` field, to name a document that fails to parse.
#[derive(Deserialize)]
struct Probe {
    namespace: Option<String>,
}

impl NamespaceTrust {
    /// Parses a namespace trust document, naming it
    /// `namespaces/<ns>/trust.json` in errors.
    ///
    /// Prefer [`NamespaceTrust::from_target`] when the document comes from a
    /// TUF target: it also checks that the document is published under its
    /// own namespace's path.
    pub fn from_slice(bytes: &[u8]) -> Result<Self> {
        let what = serde_json::from_slice::<Probe>(bytes)
            .ok()
            .and_then(|p| p.namespace)
            .and_then(|n| NamespaceName::parse(&n).ok())
            .map_or_else(
                || "namespaces/<unknown>/trust.json".to_owned(),
                |n| n.target_path(),
            );
        Self::parse_as(&what, bytes)
    }

    /// Parses the document published as TUF target `target_path`, refusing
    /// one whose `namespace` is not the one in the path (a namespace role can
    /// only sign its own path, so this keeps it from speaking for another).
    pub fn from_target(target_path: &str, bytes: &[u8]) -> Result<Self> {
        let doc = Self::parse_as(target_path, bytes)?;
        if doc.namespace.target_path() != target_path {
            return Err(Error::Malformed {
                what: target_path.to_owned(),
                path: "namespace".to_owned(),
                message: format!(
                    "namespace `{}` belongs at `{}`",
                    doc.namespace,
                    doc.namespace.target_path()
                ),
            });
        }
        Ok(doc)
    }

    fn parse_as(what: &str, bytes: &[u8]) -> Result<Self> {
        let doc: Self = parse_json(what, bytes).map_err(org_field_hint)?;
        doc.check().map_err(|p| problem_to_error(what, p))?;
        Ok(doc)
    }

    /// The document as JSON (parses back to an equal value).
    pub fn to_vec(&self) -> Result<Vec<u8>> {
        to_json(&self.namespace.target_path(), self)
    }

    /// Checks the rules serde cannot express.
    pub(super) fn check(&self) -> std::result::Result<(), Problem> {
        check_keys("keys", &self.keys)?;
        check_layout_roots(self.format, &self.keys)?;
        let mut names = BTreeSet::new();
        for (i, identity) in self.identities.iter().enumerate() {
            let at = |field: &str| format!("identities[{i}].{field}");
            identity.check(&at)?;
            if !names.insert(identity.name.as_str()) {
                return Err((
                    at("name"),
                    format!("identity `{}` is listed twice", identity.name),
                ));
            }
        }
        check_revocations(self.format, &self.revocations)?;
        // The threshold may be more than the keys and identities listed (the
        // expiry sweep removed the ephemeral keys that made it up): the
        // document is valid and decisions say `ThresholdNotMet`.
        let mut names = BTreeSet::new();
        for (i, sub) in self.sub_delegations.iter().enumerate() {
            let at = |field: &str| format!("sub_delegations[{i}].{field}");
            check_label(|| at("name"), &sub.name)?;
            if !names.insert(sub.name.as_str()) {
                return Err((
                    at("name"),
                    format!("sub-delegation `{}` is listed twice", sub.name),
                ));
            }
            check_scopes(&at("scopes"), &sub.scopes)?;
            check_keys(&at("keys"), &sub.keys)?;
            if let Some(j) = sub.keys.iter().position(|k| k.layout_root) {
                return Err((
                    at(&format!("keys[{j}].layout_root")),
                    "layout-root keys are the namespace's own keys, not a sub-delegation's".into(),
                ));
            }
            if usize::try_from(sub.threshold.get()).map_or(true, |t| t > sub.keys.len()) {
                return Err((
                    at("threshold"),
                    format!(
                        "threshold {} is more than the {} keys listed",
                        sub.threshold,
                        sub.keys.len()
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// Layout-root keys: only in format `v3`, and never ephemeral (a layout
/// outlives a CI job).
fn check_layout_roots(
    format: TrustFormat,
    keys: &[TrustedKey],
) -> std::result::Result<(), Problem> {
    for (i, k) in keys.iter().enumerate().filter(|(_, k)| k.layout_root) {
        let at = format!("keys[{i}].layout_root");
        if format != TrustFormat::V3 {
            return Err((
                at,
                format!(
                    "a document with layout-root keys must have format `{}`",
                    TrustFormat::V3.as_str()
                ),
            ));
        }
        if k.ephemeral {
            return Err((at, "an ephemeral key cannot be a layout-root key".into()));
        }
    }
    Ok(())
}

/// A namespace's own revocations: keys only, each once, with a reason,
/// and only in format `v2` or `v3`.
fn check_revocations(
    format: TrustFormat,
    revocations: &[Revocation],
) -> std::result::Result<(), Problem> {
    if format == TrustFormat::V1 && !revocations.is_empty() {
        return Err((
            "revocations".into(),
            format!(
                "a document with revocations must have format `{}`",
                TrustFormat::V2.as_str()
            ),
        ));
    }
    let mut seen = BTreeSet::new();
    for (i, r) in revocations.iter().enumerate() {
        let at = |field: &str| format!("revocations[{i}].{field}");
        if !matches!(r.subject, RevokedSubject::Key(_)) {
            return Err((
                at("subject"),
                "a namespace revokes keys (`spki_sha256`) only; certificates are revoked by the \
                 organization in org/revocations.json"
                    .into(),
            ));
        }
        if !seen.insert(&r.subject) {
            return Err((at("subject"), format!("{} is revoked twice", r.subject)));
        }
        if r.reason.trim().is_empty() {
            return Err((at("reason"), "must say why (not empty)".into()));
        }
        check_label(|| at("reason"), &r.reason)?;
    }
    Ok(())
}

/// Says where a field the organization owns belongs, when an (old-style)
/// namespace document carries it.
fn org_field_hint(e: Error) -> Error {
    match e {
        Error::Malformed {
            what,
            path,
            message,
        } if matches!(path.as_str(), "scopes" | "maintainers") => Error::Malformed {
            message: format!(
                "{message}; a namespace's {path} are granted by the organization in its namespace index ({NAMESPACES_SHARD_DIR}), not by its own trust document"
            ),
            what,
            path,
        },
        other => other,
    }
}

/// The keys of a namespace or sub-delegation, checked as the trust
/// document's parser checks them: each usable and of a supported scheme,
/// no id twice, no key material twice (under any id or encoding), a sane
/// window, `not_after` on ephemeral keys, descriptions that are labels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrustedKeys(Vec<TrustedKey>);

impl TrustedKeys {
    /// Checks `keys`; a refusal is `at` `[i].<field>`.
    pub fn new(keys: Vec<TrustedKey>) -> std::result::Result<Self, Invalid> {
        check_keys("", &keys)?;
        Ok(Self(keys))
    }

    /// The keys.
    pub fn as_slice(&self) -> &[TrustedKey] {
        &self.0
    }

    /// The keys as a `Vec`.
    pub fn into_vec(self) -> Vec<TrustedKey> {
        self.0
    }
}

/// Checks a list of keys: usable, unique ids, unique key material, sane windows.
fn check_keys(at: &str, keys: &[TrustedKey]) -> std::result::Result<(), Problem> {
    let mut ids = BTreeSet::new();
    let mut material: Vec<(Vec<u8>, &KeyId)> = Vec::with_capacity(keys.len());
    for (i, k) in keys.iter().enumerate() {
        let field = |f: &str| format!("{at}[{i}].{f}");
        if !ids.insert(k.id.as_str()) {
            return Err((field("id"), format!("key id `{}` is listed twice", k.id)));
        }
        check_key_object(&field("key"), &k.id, &k.key)?;
        let spki = k
            .key
            .material(&k.id)
            .map(<[u8]>::to_vec)
            .map_err(|e| (field("key"), e.to_string()))?;
        if let Some((_, other)) = material.iter().find(|(m, _)| *m == spki) {
            return Err((
                field("key"),
                format!("the same key is already listed as `{other}`"),
            ));
        }
        material.push((spki, &k.id));
        check_window(field, k.not_before, k.not_after)?;
        if k.ephemeral && k.not_after.is_none() {
            return Err((
                field("not_after"),
                "an ephemeral key must have not_after".into(),
            ));
        }
        if let Some(d) = &k.description {
            check_label(|| field("description"), d)?;
        }
    }
    Ok(())
}

/// Checks one TUF key object as the documents' parser does: no field
/// keyshare does not know, a supported keytype and scheme, usable key
/// material. A refusal is `at` the part relative to the key object
/// (`.keytype`, `.keyval.public`, `.<unknown field>`).
pub fn check_key(id: &KeyId, key: &Key) -> std::result::Result<(), Invalid> {
    check_key_object("", id, key).map_err(Invalid::from)
}

/// A key object must be one keyshare can use, with no fields it does not know.
fn check_key_object(at: &str, id: &KeyId, key: &Key) -> std::result::Result<(), Problem> {
    if let Some(name) = key.unrecognized.keys().next() {
        return Err((format!("{at}.{name}"), format!("unknown field `{name}`")));
    }
    if let Some(name) = key.keyval.unrecognized.keys().next() {
        return Err((
            format!("{at}.keyval.{name}"),
            format!("unknown field `{name}`"),
        ));
    }
    if key.scheme().is_none() {
        return Err((
            format!("{at}.keytype"),
            format!(
                "unsupported keytype/scheme `{}`/`{}` (supported: ed25519/ed25519, ecdsa/ecdsa-sha2-nistp256, rsa/rsassa-pss-sha256)",
                key.keytype, key.scheme
            ),
        ));
    }
    key.check(id).map_err(|e| {
        let message = match e {
            Error::BadKey { message, .. } => message,
            other => other.to_string(),
        };
        (format!("{at}.keyval.public"), message)
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn reserved_names_of_the_repositorys_roles_are_not_namespace_names() {
        let mut reserved: Vec<String> = TOP_LEVEL_ROLES.iter().map(|r| (*r).to_owned()).collect();
        reserved.extend((0..256).map(|b| format!("bins-{b:02x}")));
        reserved.extend((0..4096).map(|b| format!("bins-{b:03x}")));
        assert_eq!(reserved.len(), 4 + 256 + 4096);
        for name in &reserved {
            let e = NamespaceName::parse(name).unwrap_err();
            assert!(e.contains(&format!("`{name}` is reserved")), "{e}");
            assert!(
                e.contains("top-level roles") || e.contains("hashed-bin roles"),
                "{e}"
            );
            assert!(NamespaceName::is_well_formed(name));
            // Through serde too (request bodies, documents).
            let json = format!("\"{name}\"");
            assert!(
                serde_json::from_str::<NamespaceName>(&json).is_err(),
                "{name}"
            );
        }
        assert_eq!(
            NamespaceName::parse("bins-00").unwrap_err(),
            "`bins-00` is reserved: it names one of the repository's hashed-bin roles"
        );
        assert_eq!(
            NamespaceName::parse("bins-3ff").unwrap_err(),
            "`bins-3ff` is reserved: it names one of the repository's hashed-bin roles"
        );
        // Every bin role a repository of any supported size delegates to
        // is reserved.
        for bits in BIN_BITS {
            let bins = super::super::namespace_bins_of(bits, Vec::new(), NonZeroU32::MIN);
            for role in bins.bin_names() {
                assert!(NamespaceName::reserved(role.as_str()).is_some(), "{role}");
            }
        }
        // Names that merely look alike are free.
        for free in [
            "bins",
            "bins-",
            "bins-0",
            "bins-0000",
            "bins-1fff",
            "bins-0g",
            "bins-0fg",
            "bin-00",
            "bin-000",
            "roots",
            "target",
            "targets-a",
            "my-root",
            "timestamps",
            "bins-ff-x",
            "bins-fff-x",
        ] {
            assert_eq!(NamespaceName::parse(free).unwrap().as_str(), free);
        }
    }

    fn trusted(id: &str, key: &Key) -> TrustedKey {
        TrustedKey {
            id: KeyId::new(id),
            key: key.clone(),
            not_before: None,
            not_after: None,
            ephemeral: false,
            description: None,
            principal: None,
            layout_root: false,
        }
    }

    #[test]
    fn trusted_keys_refuse_one_key_listed_under_two_ids() {
        use crate::sign::{InMemorySigner, Signer as _};
        let a = InMemorySigner::generate(crate::keys::Scheme::Ed25519).unwrap();
        let b = InMemorySigner::generate(crate::keys::Scheme::Ed25519).unwrap();
        let ok = TrustedKeys::new(vec![
            trusted("a", a.public_key()),
            trusted("b", b.public_key()),
        ])
        .unwrap();
        assert_eq!(ok.as_slice().len(), 2);
        // The same key under a second id would count twice towards a threshold.
        let twice = TrustedKeys::new(vec![
            trusted("a", a.public_key()),
            trusted("b", b.public_key()),
            trusted("a-again", a.public_key()),
        ])
        .unwrap_err();
        assert_eq!(
            twice,
            Invalid {
                at: "[2].key".into(),
                message: "the same key is already listed as `a`".into()
            }
        );
        assert_eq!(twice.field("keys"), "keys[2].key");
        let mut ephemeral = trusted("c", a.public_key());
        ephemeral.ephemeral = true;
        assert_eq!(
            TrustedKeys::new(vec![ephemeral]).unwrap_err(),
            Invalid {
                at: "[0].not_after".into(),
                message: "an ephemeral key must have not_after".into()
            }
        );
    }
}
