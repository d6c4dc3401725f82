//! Trust documents and the trust decision.
//!
//! keyshare distributes four kinds of trust documents as TUF targets; this
//! module parses them and answers, with no IO and no clock, "is this signer
//! trusted for this artifact, for a signature made at `signed_at`, as of
//! `now`?".
//!
//! * [`Namespaces`] (the namespace index, `org/namespaces/<shard>.json`
//!   joined with [`Namespaces::merge`], or one `org/namespaces.json`; signed by the organization's
//!   top-level `targets` role): the namespaces, the artifact-name scopes each
//!   one owns and who maintains it. This is the only place scopes come from.
//! * [`NamespaceTrust`] (`namespaces/<ns>/trust.json`, signed by the
//!   namespace's own delegated role, which a team may hold offline): what the
//!   team controls, namely its signing keys and X.509 identities, its
//!   threshold and its sub-delegations. It has no scopes: a team cannot claim
//!   artifact names, and its sub-delegations only narrow what the
//!   organization granted it.
//! * [`Revocations`] (`org/revocations.json`, `targets`): keys (by the
//!   fingerprint of their material, never by id) and certificates whose
//!   signatures are untrusted from a point in time on, everywhere.
//! * [`Peers`] (`org/peers.json`, `targets`): artifact-name patterns that
//!   other keyshare services answer for, with the root each is pinned to.
//!
//! A namespace may also revoke keys itself, in its own trust document
//! ([`NamespaceTrust::revocations`], format `keyshare.trust/v2`): such a
//! revocation counts for that namespace's artifacts only, so a maintainer
//! can end trust in a stolen key without an org admin, and cannot touch any
//! other namespace by it.
//!
//! Parsing refuses bad documents outright: unknown fields, a wrong `format`,
//! unusable keys, unparsable certificates, impossible thresholds or validity
//! windows, duplicates all fail with [`Error::Malformed`] naming the document
//! and the JSON path of the offending field. A parsed document is therefore
//! one the decision can rely on. Which bytes to parse (the TUF targets,
//! verified against the repository's metadata) is the caller's business; a
//! namespace document read from a target goes through
//! [`NamespaceTrust::from_target`], which also refuses a document published
//! under another namespace's path.
//!
//! [`KeyStanding`] summarises how a listed key stands at a time (revoked,
//! expired, expiring soon) for listings.
//!
//! [`TrustSet`] indexes a set of documents once and then decides quickly with
//! [`TrustSet::decide`], returning a [`Decision`]: trusted by a namespace and
//! a [`TrustRule`], or untrusted for a [`Reason`] whose `Display` says what to
//! do about it. The namespace that owns an artifact is chosen from the scopes
//! of [`Namespaces`] alone; a namespace listed there without a trust document
//! owns its artifacts but trusts no one for them
//! ([`Reason::NoTrustDocument`]), and a trust document for a namespace not
//! listed there owns nothing ([`TrustSet::unlisted_documents`]).
//! `docs/trust-model.md` describes the documents and the decision for users.
//!
//! Not here: fetching the documents, verifying the signature over an
//! artifact (the caller does that with the key or the leaf certificate and
//! passes the signer in), and following peer redirects (the client does).
//!
//! Tests: `cargo test -p keyshare-policy --lib trust` and
//! `cargo test -p keyshare-policy --test 'trust_*'`.

mod bins;
mod decide;
mod namespace;
mod namespaces;
mod peers;
mod revocations;
mod standing;
mod x509;

use std::collections::BTreeSet;
use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::OffsetDateTime;

use crate::datetime::rfc3339;
use crate::error::{Error, Result};
pub use crate::hash::Sha256Hex;
use crate::pattern::ArtifactPattern;

pub use bins::{namespace_bins, NAMESPACE_BIN_BITS, NAMESPACE_BIN_PREFIX};
pub use decide::{
    Counted, Decision, KeyRef, Listed, Owner, Reason, SignerRef, TrustRule, TrustSet,
};
pub use namespace::{NamespaceName, NamespaceTrust, Principal, SubDelegation, TrustedKey};
pub use namespaces::{is_index_path, namespace_bin, shard_path, NamespaceEntry, Namespaces};
pub use peers::{Peer, PeerUrl, Peers, PinnedRoot};
pub use revocations::{Revocation, Revocations, RevokedSubject};
pub use standing::{KeyRevocation, KeyStanding, KeyState, RevokedBy};
pub use x509::{CaCert, SubjectAttr, SubjectName, X509Identity};

/// Target path of the namespaces document (which namespaces exist, what each owns).
pub const NAMESPACES_PATH: &str = "org/namespaces.json";
/// Directory of the namespace index shards: `org/namespaces/<shard>.json`.
pub const NAMESPACES_SHARD_DIR: &str = "org/namespaces/";
/// Target path of the revocations document.
pub const REVOCATIONS_PATH: &str = "org/revocations.json";
/// Target path of the peers document.
pub const PEERS_PATH: &str = "org/peers.json";

macro_rules! format_marker {
    ($(#[$doc:meta])* $name:ident, $value:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
        pub struct $name;

        impl $name {
            /// The `format` string.
            pub const VALUE: &'static str = $value;
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                s.serialize_str(Self::VALUE)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                if s == Self::VALUE {
                    Ok(Self)
                } else {
                    Err(serde::de::Error::custom(format!(
                        "expected `{}`, found `{s}`",
                        Self::VALUE
                    )))
                }
            }
        }
    };
}

/// The `format` of a namespace trust document.
///
/// `keyshare.trust/v2` is `v1` plus the namespace's own key revocations
/// ([`NamespaceTrust::revocations`]). keyshare-server publishes `v2` only
/// for a namespace that has revoked a key, so a verifier from before `v2`
/// keeps reading every other namespace, and refuses (as malformed, naming
/// the format) a document whose revocations it could not apply, instead of
/// trusting a key the namespace revoked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum TrustFormat {
    /// `keyshare.trust/v1`: no revocations.
    #[default]
    V1,
    /// `keyshare.trust/v2`: may carry the namespace's own revocations.
    V2,
}

impl TrustFormat {
    /// The `format` string.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V1 => "keyshare.trust/v1",
            Self::V2 => "keyshare.trust/v2",
        }
    }

    /// The format a document with these namespace revocations is published
    /// in: `v1` without any (readable by every verifier), else `v2`.
    pub fn for_revocations(revocations: &[Revocation]) -> Self {
        if revocations.is_empty() {
            Self::V1
        } else {
            Self::V2
        }
    }
}

impl Serialize for TrustFormat {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for TrustFormat {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match s.as_str() {
            "keyshare.trust/v1" => Ok(Self::V1),
            "keyshare.trust/v2" => Ok(Self::V2),
            _ => Err(serde::de::Error::custom(format!(
                "expected `keyshare.trust/v1` or `keyshare.trust/v2`, found `{s}` (a newer \
                 format needs a newer verifier)"
            ))),
        }
    }
}
format_marker!(
    /// The `format` of the namespaces document: `keyshare.namespaces/v1`.
    NamespacesFormat,
    "keyshare.namespaces/v1"
);
format_marker!(
    /// The `format` of the revocations document: `keyshare.revocations/v2`.
    RevocationsFormat,
    "keyshare.revocations/v2"
);
format_marker!(
    /// The `format` of the peers document: `keyshare.peers/v1`.
    PeersFormat,
    "keyshare.peers/v1"
);

/// A problem found after deserialisation: JSON path and message.
type Problem = (String, String);

/// Parses one JSON document, naming `what` and the JSON path in errors.
fn parse_json<T: DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut de)
        .map_err(|e| malformed(what, &e.path().to_string(), e.inner()))?;
    de.end().map_err(|e| malformed(what, ".", &e))?;
    Ok(value)
}

fn malformed(what: &str, path: &str, e: &dyn fmt::Display) -> Error {
    Error::Malformed {
        what: what.to_owned(),
        path: path.to_owned(),
        message: e.to_string(),
    }
}

fn problem_to_error(what: &str, (path, message): Problem) -> Error {
    Error::Malformed {
        what: what.to_owned(),
        path,
        message,
    }
}

/// Serialises a document as pretty JSON (what keyshare publishes).
fn to_json<T: Serialize>(what: &str, value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec_pretty(value).map_err(|e| malformed(what, ".", &e))
}

/// Checks a human-chosen name or label: non-empty, at most 200 characters, no control characters.
fn check_label(path: impl Fn() -> String, value: &str) -> std::result::Result<(), Problem> {
    if value.trim().is_empty() {
        return Err((path(), "must not be empty".into()));
    }
    if value.chars().count() > 200 {
        return Err((path(), "must be at most 200 characters".into()));
    }
    if value.chars().any(char::is_control) {
        return Err((path(), "must not contain control characters".into()));
    }
    Ok(())
}

/// Checks a list of artifact patterns: at least one, no duplicates.
fn check_scopes(at: &str, scopes: &[ArtifactPattern]) -> std::result::Result<(), Problem> {
    if scopes.is_empty() {
        return Err((at.to_owned(), "must list at least one pattern".into()));
    }
    let mut seen = BTreeSet::new();
    for (i, s) in scopes.iter().enumerate() {
        if !seen.insert(s.as_str()) {
            return Err((format!("{at}[{i}]"), format!("`{s}` is listed twice")));
        }
    }
    Ok(())
}

/// Checks an optional validity window: `not_before < not_after`.
fn check_window(
    path: impl Fn(&str) -> String,
    not_before: Option<OffsetDateTime>,
    not_after: Option<OffsetDateTime>,
) -> std::result::Result<(), Problem> {
    if let (Some(nb), Some(na)) = (not_before, not_after) {
        if nb >= na {
            return Err((
                path("not_after"),
                format!("must be later than not_before ({})", rfc3339(nb)),
            ));
        }
    }
    Ok(())
}
