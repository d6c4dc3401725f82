//! What the store holds, as Rust values.
//!
//! Inputs are the policy crate's parsed types (a [`TrustedKey`], a [`Peer`],
//! ...), so anything that reaches the store already passed the same checks a
//! verifier applies. Records add what only the store knows (when a row was
//! written, token state).

use std::collections::BTreeMap;
use std::fmt;
use std::num::NonZeroU32;

use keyshare_policy::trust::{
    NamespaceEntry, NamespaceName, Peer, Revocation, SubDelegation, TrustedKey, X509Identity,
};
use serde_json::Value;
use time::OffsetDateTime;

/// A namespace as the organization grants it, plus its signing threshold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamespaceRecord {
    /// Name, scopes and maintainers (an entry of the namespace index).
    pub entry: NamespaceEntry,
    /// Distinct keys and identities that must sign the namespace's artifacts.
    pub threshold: NonZeroU32,
    /// When the namespace was created.
    pub created_at: OffsetDateTime,
}

/// A signing key of a namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyRecord {
    /// The namespace.
    pub namespace: NamespaceName,
    /// The key as listed in the namespace's trust document.
    pub key: TrustedKey,
    /// When it was added.
    pub added_at: OffsetDateTime,
}

/// An X.509 identity of a namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdentityRecord {
    /// The namespace.
    pub namespace: NamespaceName,
    /// The identity as listed in the namespace's trust document.
    pub identity: X509Identity,
    /// When it was added.
    pub added_at: OffsetDateTime,
}

/// A sub-delegation of a namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubDelegationRecord {
    /// The namespace.
    pub namespace: NamespaceName,
    /// The sub-delegation as listed in the namespace's trust document.
    pub sub_delegation: SubDelegation,
    /// When it was last written.
    pub updated_at: OffsetDateTime,
}

/// A revocation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevocationRecord {
    /// The revocation as listed in `org/revocations.json`.
    pub revocation: Revocation,
    /// When the store recorded it (not `revoked_at`, which may be earlier).
    pub recorded_at: OffsetDateTime,
    /// Where the key was listed when it was revoked, for people: never
    /// published, never used to decide.
    pub listed_as: Option<Listing>,
}

/// A key a namespace revoked itself (its maintainers, or an org admin for
/// it): published in the namespace's own trust document, so it counts for
/// that namespace's artifacts only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamespaceRevocationRecord {
    /// The namespace that revoked the key.
    pub namespace: NamespaceName,
    /// The revocation (its subject is always a key, by fingerprint), as
    /// listed in the namespace's trust document.
    pub revocation: Revocation,
    /// When the store recorded it.
    pub recorded_at: OffsetDateTime,
    /// The id the key was listed under when it was revoked, for people:
    /// never published, never used to decide.
    pub key_id: Option<String>,
}

/// One RFC 3161 timestamp token the server issued (the `timestamps`
/// table): what was stamped, when, under which policy and certificate.
/// The request itself is not kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimestampRecord {
    /// The token's serial number: lowercase hex of its unsigned value.
    pub serial: String,
    /// The token's genTime (whole seconds, UTC).
    pub gen_time: OffsetDateTime,
    /// The message imprint's hash algorithm: `sha256`, `sha384` or `sha512`.
    pub hash_alg: String,
    /// The message imprint: lowercase hex.
    pub hash: String,
    /// The TSA policy OID of the token, dotted.
    pub policy: String,
    /// SHA-256 (hex) of the TSA certificate that signed the token.
    pub tsa_cert: String,
}

/// Scopes of other namespaces that a namespace's new scopes overlap: some
/// artifact name matches both, and the more specific scope takes it
/// (`ArtifactPattern::common_match`, `ArtifactPattern::outranks`).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ScopeOverlaps {
    /// How many other namespaces have an overlapping scope.
    pub namespace_count: usize,
    /// Those namespaces, by name (the first [`ScopeOverlaps::NAMES`]).
    pub namespaces: Vec<String>,
    /// How many (new scope, other scope) pairs overlap.
    pub pair_count: usize,
    /// Some of the pairs, with who would win (at most
    /// [`ScopeOverlaps::SAMPLE`]; one per namespace, in the order found).
    pub sample: Vec<ScopeOverlap>,
}

impl ScopeOverlaps {
    /// Most namespace names listed.
    pub const NAMES: usize = 100;
    /// Most pairs in the sample.
    pub const SAMPLE: usize = 10;

    /// True when nothing overlaps.
    pub fn is_empty(&self) -> bool {
        self.pair_count == 0
    }
}

impl fmt::Display for ScopeOverlaps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let more = self.namespace_count.saturating_sub(self.namespaces.len());
        write!(
            f,
            "{} other namespace{} ({}{})",
            self.namespace_count,
            if self.namespace_count == 1 { "" } else { "s" },
            self.namespaces
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        )?;
        for pair in &self.sample {
            write!(f, "; {pair}")?;
        }
        Ok(())
    }
}

/// One overlapping pair of scopes.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ScopeOverlap {
    /// The new scope.
    pub scope: String,
    /// The other namespace.
    pub namespace: String,
    /// Its scope that overlaps.
    pub other_scope: String,
    /// An artifact name both match (absent when the search was cut off
    /// and the pair was taken to overlap).
    pub example: Option<String>,
    /// The namespace that would own the names both match.
    pub winner: String,
}

impl fmt::Display for ScopeOverlap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` and `{}` of `{}` both match ",
            self.scope, self.other_scope, self.namespace
        )?;
        match &self.example {
            Some(name) => write!(f, "`{name}`")?,
            None => f.write_str("names (undecided: the patterns are too complex to compare)")?,
        }
        write!(f, ", which `{}` would own", self.winner)
    }
}

/// Where a key is listed: a namespace's own keys or one of its
/// sub-delegations (a wire type of the admin API too).
pub use keyshare_policy::api::admin::Listing;

/// A peer service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerRecord {
    /// The peer as listed in `org/peers.json`.
    pub peer: Peer,
    /// When it was last written.
    pub updated_at: OffsetDateTime,
}

/// An X.509 root certificate the organization trusts (`org/roots/<name>.pem`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrgRoot {
    /// Name, `[a-z0-9][a-z0-9-]{0,62}` (it becomes a file name).
    pub name: String,
    /// The certificate, PEM, as given.
    pub pem: String,
    /// SHA-256 of the certificate's DER (as revocations name certificates).
    pub sha256: String,
    /// When it was added.
    pub added_at: OffsetDateTime,
}

impl OrgRoot {
    /// The certificate's target path, `org/roots/<name>.pem`.
    pub fn target_path(&self) -> String {
        format!("org/roots/{}.pem", self.name)
    }
}

/// A timestamp authority the organization trusts (`org/tsas.json`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TsaRecord {
    /// The entry as published.
    pub tsa: keyshare_policy::trust::TrustedTsa,
    /// When it was added or last replaced.
    pub added_at: OffsetDateTime,
}

/// Who asked for a CI delegation, exactly as the credential said: decides
/// who may end the delegation early. Stored, never published (the trust
/// document carries only the key's opaque principal).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CiOwner {
    /// An OIDC ID token: its `iss` and `sub`, byte for byte.
    Oidc {
        /// `iss`.
        issuer: String,
        /// `sub`.
        subject: String,
    },
    /// A CI token, by id.
    Token {
        /// The token's id.
        id: String,
    },
}

/// What a [`SingleUse`] value is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SingleUseKind {
    /// A CI nonce.
    Nonce,
    /// An OIDC ID token (its `jti`, or the whole token when it has none).
    Token,
}

impl SingleUseKind {
    /// `nonce` or `token`, as stored.
    pub fn name(self) -> &'static str {
        match self {
            Self::Nonce => "nonce",
            Self::Token => "token",
        }
    }
}

/// A value that may grant one CI delegation only: recorded by
/// [`super::Tx::use_once`] until it expires.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SingleUse {
    /// What it is.
    pub kind: SingleUseKind,
    /// SHA-256 hex of the value (the store never holds the value itself).
    pub digest: String,
    /// When the value stops being accepted anyway; the record is pruned after.
    pub expires_at: OffsetDateTime,
}

/// What a token may do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenKind {
    /// Everything: namespaces, revocations, peers, roots, tokens.
    OrgAdmin,
    /// Keys, identities and sub-delegations of one namespace.
    Maintainer(NamespaceName),
    /// Ephemeral CI keys in these namespaces (at least one).
    Ci(Vec<NamespaceName>),
}

impl TokenKind {
    /// `org-admin`, `maintainer` or `ci`, as stored.
    pub fn name(&self) -> &'static str {
        match self {
            Self::OrgAdmin => "org-admin",
            Self::Maintainer(_) => "maintainer",
            Self::Ci(_) => "ci",
        }
    }

    /// The namespaces the token is scoped to (none for an org admin).
    pub fn namespaces(&self) -> &[NamespaceName] {
        match self {
            Self::OrgAdmin => &[],
            Self::Maintainer(ns) => std::slice::from_ref(ns),
            Self::Ci(list) => list,
        }
    }
}

/// A token as stored: never the secret, only what it grants and its state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    /// Public id (`tok-` and 16 hex digits), to list and revoke it by.
    pub id: String,
    /// What it grants.
    pub kind: TokenKind,
    /// Free text for people.
    pub description: Option<String>,
    /// When it was created.
    pub created_at: OffsetDateTime,
    /// When it was revoked; a revoked token grants nothing.
    pub revoked_at: Option<OffsetDateTime>,
    /// When it stops being accepted; `None` for a token that does not
    /// expire. An expired token grants nothing.
    pub expires_at: Option<OffsetDateTime>,
    /// When it was last accepted, to within [`LAST_USED_RESOLUTION`];
    /// `None` if never.
    pub last_used_at: Option<OffsetDateTime>,
}

/// How stale a token's `last_used_at` may get: a token accepted again
/// within this time of its recorded last use is not written again, so
/// authenticated reads do not each become a write.
pub const LAST_USED_RESOLUTION: time::Duration = time::Duration::minutes(1);

impl Token {
    /// True unless revoked (whatever its expiry; see [`Token::refusal`]).
    pub fn is_active(&self) -> bool {
        self.revoked_at.is_none()
    }

    /// True when it has an expiry and `now` is at or after it.
    pub fn is_expired(&self, now: OffsetDateTime) -> bool {
        self.expires_at.is_some_and(|t| now >= t)
    }

    /// Why the token is not accepted at `now` (revoked or expired), or
    /// `None` when it is.
    pub fn refusal(&self, now: OffsetDateTime) -> Option<String> {
        refusal(&self.id, self.revoked_at, self.expires_at, now)
    }

    /// Whether accepting it at `now` should update `last_used_at` (never
    /// used, or last used [`LAST_USED_RESOLUTION`] or longer ago).
    pub fn last_used_is_stale(&self, now: OffsetDateTime) -> bool {
        last_used_is_stale(self.last_used_at, now)
    }

    /// Its state, without what it grants.
    pub fn state(&self) -> TokenState {
        TokenState {
            id: self.id.clone(),
            kind: self.kind.name(),
            revoked_at: self.revoked_at,
            expires_at: self.expires_at,
            last_used_at: self.last_used_at,
        }
    }
}

/// A token's state without its scope list: what the CI endpoints check on
/// every request. A CI token may cover thousands of namespaces; whether it
/// covers the one asked for is one indexed lookup
/// ([`super::Store::token_covers`]), not a load of the whole list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenState {
    /// Public id.
    pub id: String,
    /// `org-admin`, `maintainer` or `ci` ([`TokenKind::name`]).
    pub kind: &'static str,
    /// When it was revoked.
    pub revoked_at: Option<OffsetDateTime>,
    /// When it stops being accepted.
    pub expires_at: Option<OffsetDateTime>,
    /// When it was last accepted.
    pub last_used_at: Option<OffsetDateTime>,
}

impl TokenState {
    /// As [`Token::refusal`].
    pub fn refusal(&self, now: OffsetDateTime) -> Option<String> {
        refusal(&self.id, self.revoked_at, self.expires_at, now)
    }

    /// As [`Token::last_used_is_stale`].
    pub fn last_used_is_stale(&self, now: OffsetDateTime) -> bool {
        last_used_is_stale(self.last_used_at, now)
    }
}

fn refusal(
    id: &str,
    revoked_at: Option<OffsetDateTime>,
    expires_at: Option<OffsetDateTime>,
    now: OffsetDateTime,
) -> Option<String> {
    if let Some(at) = revoked_at {
        return Some(format!("token `{id}` was revoked at {}", text(at)));
    }
    match expires_at {
        Some(at) if now >= at => Some(format!(
            "token `{id}` expired at {}: ask an org admin for a new one",
            text(at)
        )),
        _ => None,
    }
}

fn last_used_is_stale(last_used_at: Option<OffsetDateTime>, now: OffsetDateTime) -> bool {
    last_used_at.is_none_or(|t| now - t >= LAST_USED_RESOLUTION)
}

fn text(t: OffsetDateTime) -> String {
    super::time_text(t)
}

/// A token's secret: `ks_` and 64 hex digits (32 random bytes).
///
/// Returned once, by [`super::Tx::create_token`]; the store keeps only its
/// SHA-256. `Debug` does not show it; [`TokenSecret::expose`] does, for
/// handing it to the user.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenSecret(pub(crate) String);

impl TokenSecret {
    /// The secret text, to give to the token's holder exactly once.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for TokenSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenSecret(<redacted>)")
    }
}

/// A token just created, with its secret.
#[derive(Debug)]
pub struct NewToken {
    /// The stored token.
    pub token: Token,
    /// The secret: show it once, never store or log it.
    pub secret: TokenSecret,
}

/// A published file, one version of one path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublishedFile {
    /// Row id: increases with every file recorded.
    pub id: i64,
    /// `metadata/...` or `targets/...`, relative to the repository base.
    pub path: String,
    /// For metadata, the role as named in the file name (`root`,
    /// `snapshot`, `timestamp`, `targets` or a percent-encoded delegated role).
    pub role: Option<String>,
    /// For metadata, `signed.version`.
    pub version: Option<u64>,
    /// The bytes.
    pub bytes: Vec<u8>,
    /// SHA-256 of the bytes, hex.
    pub sha256: String,
    /// False only for `metadata/timestamp.json`-style paths that get new versions.
    pub immutable: bool,
    /// When it was recorded.
    pub created_at: OffsetDateTime,
}

/// One audit record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditRecord {
    /// Sequence number: 1, 2, 3, ... with no gaps.
    pub seq: i64,
    /// When (the time of the transaction that wrote it).
    pub time: OffsetDateTime,
    /// Who (token id, `ci:<issuer>/<subject>`, `system`, ...).
    pub actor: String,
    /// What (`namespace.create`, `key.add`, ...).
    pub action: String,
    /// On what (a namespace, a key id, a token id, ...).
    pub subject: String,
    /// Anything else, as JSON (no floating-point numbers).
    pub details: Value,
    /// `hash` of record `seq - 1` (64 zeros for the first record).
    pub prev_hash: String,
    /// SHA-256 over the record's canonical form, hex.
    pub hash: String,
}

/// The end of an intact audit chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditHead {
    /// Number of records (the last sequence number).
    pub records: i64,
    /// Hash of the last record (64 zeros when the log is empty). Writing it
    /// down somewhere else lets a later check also detect truncation.
    pub hash: String,
}

/// What the repository last published, as
/// [`keyshare_policy::repo::Repository::restore`] needs it after a restart.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LastPublished {
    /// Every root, version 1 first.
    pub roots: Vec<Vec<u8>>,
    /// The newest `metadata/timestamp.json`.
    pub timestamp: Vec<u8>,
    /// The snapshot that timestamp lists.
    pub snapshot: Vec<u8>,
    /// For every targets role that snapshot lists, the version it lists, by role name.
    pub targets: BTreeMap<String, Vec<u8>>,
}

impl LastPublished {
    /// Borrowed, in the form `Repository::restore` takes (which verifies it all).
    pub fn as_published(&self) -> keyshare_policy::repo::Published<'_> {
        keyshare_policy::repo::Published {
            roots: self.roots.iter().map(Vec::as_slice).collect(),
            timestamp: &self.timestamp,
            snapshot: &self.snapshot,
            targets: self
                .targets
                .iter()
                .map(|(k, v)| (k.clone(), v.as_slice()))
                .collect(),
        }
    }
}
