//! The trust decision over a set of parsed trust documents.

use std::collections::{HashMap, HashSet};
use std::fmt;

use openssl::stack::Stack;
use openssl::x509::X509;
use time::OffsetDateTime;

use super::namespace::{NamespaceName, NamespaceTrust, Principal, TrustedKey};
use super::namespaces::{NamespaceEntry, Namespaces};
use super::peers::{Peer, PeerUrl, Peers, PinnedRoot};
use super::revocations::{Revocation, Revocations, RevokedSubject};
use super::standing::KeyRevocation;
use super::x509::name_text;
use super::{problem_to_error, rfc3339, Sha256Hex, NAMESPACES_PATH};
use crate::error::{Error, Result};
use crate::keys::{public_key_fingerprint, Key};
use crate::metadata::KeyId;
use crate::pattern::ArtifactPattern;

/// Who signed, as the caller knows it after checking the signature itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SignerRef {
    /// A key named by its id, as listed in the namespace's document.
    KeyId(KeyId),
    /// A public key, matched against the listed keys by key material (DER
    /// SubjectPublicKeyInfo), whatever its id or encoding.
    PublicKey(Key),
    /// A certificate chain, DER, leaf first, then any intermediates.
    CertChain(Vec<Vec<u8>>),
}

/// A listed key or identity of a namespace.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Listed {
    /// A key, by its listed id.
    Key(KeyId),
    /// An X.509 identity, by its name.
    Identity(String),
}

impl fmt::Display for Listed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Key(id) => write!(f, "key {id}"),
            Self::Identity(name) => write!(f, "identity `{name}`"),
        }
    }
}

/// A presented key that is not listed.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum KeyRef {
    /// Presented by id.
    Id(KeyId),
    /// Presented as a public key: SHA-256 of its DER SubjectPublicKeyInfo.
    Spki {
        /// The fingerprint.
        sha256: Sha256Hex,
    },
}

impl fmt::Display for KeyRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Id(id) => write!(f, "key {id}"),
            Self::Spki { sha256 } => write!(f, "public key with SPKI SHA-256 {sha256}"),
        }
    }
}

/// One principal (holder of signing keys) that counted towards a threshold.
///
/// A threshold counts principals, not keys: all keys naming one principal
/// (every ephemeral key of one CI identity) count once, every leaf
/// certificate one X.509 identity rule matches counts once, and the same
/// key material counts once under whatever ids and encodings it is listed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Counted {
    /// A key that is its own principal.
    Key(KeyId),
    /// Several listings of one key's material (e.g. as a key and as a
    /// certificate's key), counted once.
    Keys(Vec<KeyId>),
    /// Keys sharing a named principal, counted once.
    Principal {
        /// The principal.
        principal: Principal,
        /// Its keys that signed.
        keys: Vec<KeyId>,
    },
    /// An X.509 identity: every leaf it matches counts once, together.
    Identity(String),
}

impl fmt::Display for Counted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Key(id) => write!(f, "key {id}"),
            Self::Keys(ids) => write!(f, "keys {} (one key)", join(ids)),
            Self::Principal { principal, keys } => {
                write!(f, "principal {principal} (keys {})", join(keys))
            }
            Self::Identity(name) => write!(f, "identity `{name}`"),
        }
    }
}

/// The rule that made an artifact trusted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TrustRule {
    /// The namespace's own keys and identities met its threshold.
    Namespace {
        /// Keys that counted, by listed id.
        keys: Vec<KeyId>,
        /// Identities that counted, by name.
        identities: Vec<String>,
        /// The distinct principals that met the threshold.
        principals: Vec<Counted>,
        /// The namespace's threshold (of principals).
        threshold: u32,
    },
    /// A sub-delegation covering the artifact met its threshold.
    SubDelegation {
        /// The sub-delegation's name.
        name: String,
        /// Keys that counted, by listed id.
        keys: Vec<KeyId>,
        /// The distinct principals that met the threshold.
        principals: Vec<Counted>,
        /// The sub-delegation's threshold (of principals).
        threshold: u32,
    },
}

fn join<T: fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

impl fmt::Display for TrustRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Namespace {
                principals,
                threshold,
                ..
            } => write!(
                f,
                "namespace threshold {threshold} met by {}",
                join(principals)
            ),
            Self::SubDelegation {
                name,
                principals,
                threshold,
                ..
            } => write!(
                f,
                "sub-delegation `{name}`, threshold {threshold} met by {}",
                join(principals)
            ),
        }
    }
}

/// Who answers for an artifact name ([`TrustSet::owner`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner<'a> {
    /// A namespace of the organization, by its most specific matching scope.
    Namespace {
        /// The namespace's entry in the namespace index.
        entry: &'a NamespaceEntry,
        /// The scope that matched.
        scope: &'a ArtifactPattern,
    },
    /// A peer keyshare service.
    Peer(&'a Peer),
}

#[derive(Clone, Copy, Debug)]
enum OwnerIndex {
    Namespace(usize),
    Peer(usize),
}

/// Why an artifact is not trusted. Each `Display` says what to do about it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reason {
    /// No namespace scope and no peer pattern matches the artifact name.
    NoNamespace {
        /// The artifact name.
        artifact: String,
    },
    /// The namespace that owns the artifact (by the namespace index) has
    /// published no trust document, so it trusts no signer yet.
    NoTrustDocument {
        /// The namespace that owns the artifact.
        namespace: NamespaceName,
        /// Its maintainers, as the namespace index lists them.
        maintainers: Vec<String>,
    },
    /// The signer is not listed by the namespace (nor by a sub-delegation covering the artifact).
    KeyNotListed {
        /// The namespace that owns the artifact.
        namespace: NamespaceName,
        /// The presented key.
        key: KeyRef,
    },
    /// A presented public key cannot be decoded.
    UnusableKey {
        /// What is wrong with it.
        detail: String,
    },
    /// The signature was made before the key's or identity's `not_before`.
    KeyNotYetValid {
        /// The namespace.
        namespace: NamespaceName,
        /// The listed key or identity.
        signer: Listed,
        /// Its `not_before`.
        not_before: OffsetDateTime,
        /// When the signature was made.
        signed_at: OffsetDateTime,
    },
    /// The signature was made at or after the key's or identity's `not_after`.
    KeyExpired {
        /// The namespace.
        namespace: NamespaceName,
        /// The listed key or identity.
        signer: Listed,
        /// Its `not_after`.
        not_after: OffsetDateTime,
        /// When the signature was made.
        signed_at: OffsetDateTime,
    },
    /// An ephemeral key's delegation has ended (`now >= not_after`), whenever it signed.
    EphemeralExpired {
        /// The namespace.
        namespace: NamespaceName,
        /// The ephemeral key.
        key: KeyId,
        /// Its `not_after`.
        not_after: OffsetDateTime,
        /// The time of the decision.
        now: OffsetDateTime,
    },
    /// The key or a certificate of the chain is revoked and the signature was
    /// made at or after the revocation.
    Revoked {
        /// What `org/revocations.json` names.
        subject: RevokedSubject,
        /// When trust in it ended.
        revoked_at: OffsetDateTime,
        /// Why.
        reason: String,
        /// When the signature was made.
        signed_at: OffsetDateTime,
    },
    /// The namespace that owns the artifact revoked the key (in its own
    /// trust document) and the signature was made at or after the
    /// revocation. Such a revocation counts in that namespace only.
    RevokedInNamespace {
        /// The namespace that revoked the key.
        namespace: NamespaceName,
        /// The key's fingerprint (SHA-256 of its material).
        key: Sha256Hex,
        /// When the namespace's trust in it ended.
        revoked_at: OffsetDateTime,
        /// Why.
        reason: String,
        /// When the signature was made.
        signed_at: OffsetDateTime,
    },
    /// The certificate chain does not verify to a CA certificate of the
    /// namespace's identities at `signed_at`.
    ChainNotTrusted {
        /// The namespace.
        namespace: NamespaceName,
        /// OpenSSL's reason, or what is wrong with the chain.
        detail: String,
    },
    /// The chain verifies but the leaf's subject is not the identity's.
    SubjectMismatch {
        /// The namespace.
        namespace: NamespaceName,
        /// The identity whose CA the chain verified to.
        identity: String,
        /// The subject the identity requires.
        expected: String,
        /// The leaf certificate's subject.
        found: String,
    },
    /// Too few distinct principals (holders of trusted keys or identities) signed.
    ThresholdNotMet {
        /// The namespace.
        namespace: NamespaceName,
        /// The sub-delegation that came closest, or `None` for the namespace's own keys.
        sub_delegation: Option<String>,
        /// Distinct principals whose trusted keys or identities signed.
        valid: u32,
        /// How many are needed.
        threshold: u32,
    },
    /// The artifact name belongs to a peer keyshare service: ask it.
    DelegatedToPeer {
        /// The peer's name.
        peer: String,
        /// Its base URL.
        url: PeerUrl,
        /// The root to verify it against.
        root: PinnedRoot,
    },
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoNamespace { artifact } => write!(
                f,
                "no namespace or peer covers `{artifact}`: check the name, or ask a security admin to grant a namespace a scope that matches it in the organization's namespace index"
            ),
            Self::NoTrustDocument {
                namespace,
                maintainers,
            } => {
                let who = if maintainers.is_empty() {
                    "its maintainers".to_owned()
                } else {
                    format!("its maintainers ({})", join(maintainers))
                };
                write!(
                    f,
                    "namespace `{namespace}` owns the artifact but has published no trust document, so no signer is trusted for it yet: {who} must publish {} listing the namespace's signing keys",
                    namespace.target_path()
                )
            }
            Self::KeyNotListed { namespace, key } => write!(
                f,
                "{key} is not trusted by namespace `{namespace}` for this artifact: sign with a listed key, or ask the namespace's maintainers to add it"
            ),
            Self::UnusableKey { detail } => write!(
                f,
                "the presented public key cannot be used ({detail}): present a supported key (Ed25519, ECDSA P-256, RSA of 2048 bits or more)"
            ),
            Self::KeyNotYetValid {
                namespace,
                signer,
                not_before,
                signed_at,
            } => write!(
                f,
                "{signer} of namespace `{namespace}` is trusted only for signatures made from {}, this one was made at {}: re-sign later, or ask the maintainers to correct not_before",
                rfc3339(*not_before),
                rfc3339(*signed_at)
            ),
            Self::KeyExpired {
                namespace,
                signer,
                not_after,
                signed_at,
            } => write!(
                f,
                "{signer} of namespace `{namespace}` is trusted only for signatures made before {}, this one was made at {}: re-sign with a current key",
                rfc3339(*not_after),
                rfc3339(*signed_at)
            ),
            Self::EphemeralExpired {
                namespace,
                key,
                not_after,
                now,
            } => write!(
                f,
                "ephemeral key {key} of namespace `{namespace}` expired at {} (now {}); ephemeral delegations end by themselves: re-run the CI job to sign with a fresh key, or sign with a long-lived key",
                rfc3339(*not_after),
                rfc3339(*now)
            ),
            Self::Revoked {
                subject,
                revoked_at,
                reason,
                signed_at,
            } => write!(
                f,
                "{subject} was revoked at {} ({reason}) and this signature was made at {}: re-sign with a key that is not revoked",
                rfc3339(*revoked_at),
                rfc3339(*signed_at)
            ),
            Self::RevokedInNamespace {
                namespace,
                key,
                revoked_at,
                reason,
                signed_at,
            } => write!(
                f,
                "key with SPKI SHA-256 {key} was revoked by namespace `{namespace}` at {} ({reason}) and this signature was made at {}: re-sign with a key that is not revoked",
                rfc3339(*revoked_at),
                rfc3339(*signed_at)
            ),
            Self::ChainNotTrusted { namespace, detail } => write!(
                f,
                "the certificate chain does not lead to a CA of namespace `{namespace}` ({detail}): sign with a certificate issued under one of the namespace's CAs, and include intermediates"
            ),
            Self::SubjectMismatch {
                namespace,
                identity,
                expected,
                found,
            } => write!(
                f,
                "the certificate subject `{found}` is not `{expected}` required by identity `{identity}` of namespace `{namespace}`: sign with that identity's certificate"
            ),
            Self::ThresholdNotMet {
                namespace,
                sub_delegation,
                valid,
                threshold,
            } => {
                let whose = match sub_delegation {
                    Some(name) => format!("sub-delegation `{name}` of namespace `{namespace}`"),
                    None => format!("namespace `{namespace}`"),
                };
                write!(
                    f,
                    "{whose} needs signatures by {threshold} distinct principals (holders of its trusted keys or identities), {valid} found: add signatures by other holders' keys (several keys of one holder, such as one CI identity's ephemeral keys or certificates matched by one identity, count once)"
                )
            }
            Self::DelegatedToPeer { peer, url, root } => write!(
                f,
                "the artifact belongs to peer `{peer}`: ask {url}, verifying it against {root}"
            ),
        }
    }
}

/// The outcome of [`TrustSet::decide`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// The signers are trusted for the artifact.
    Trusted {
        /// The namespace that owns the artifact.
        namespace: NamespaceName,
        /// What made it trusted.
        rule: TrustRule,
    },
    /// They are not.
    Untrusted {
        /// Why.
        reason: Reason,
    },
}

impl Decision {
    /// True for [`Decision::Trusted`].
    pub fn is_trusted(&self) -> bool {
        matches!(self, Self::Trusted { .. })
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Trusted { namespace, rule } => {
                write!(f, "trusted by namespace `{namespace}`: {rule}")
            }
            Self::Untrusted { reason } => write!(f, "untrusted: {reason}"),
        }
    }
}

/// Patterns indexed by their literal prefix (the text before the first
/// wildcard): a lookup lists the artifact name's prefixes and glob-matches
/// only the patterns filed under one of them, so its cost grows with the
/// length of the name, not with the number of patterns.
#[derive(Debug, Default)]
struct PatternIndex {
    buckets: HashMap<String, Vec<IndexEntry>>,
}

#[derive(Debug)]
struct IndexEntry {
    owner: usize,
    pattern: ArtifactPattern,
    specificity: (usize, usize),
}

impl PatternIndex {
    fn insert(&mut self, owner: usize, pattern: &ArtifactPattern) {
        let src = pattern.as_str();
        let literal_end = src.find(['*', '?', '[']).unwrap_or(src.len());
        let literal = src.get(..literal_end).unwrap_or_default();
        self.buckets
            .entry(literal.to_owned())
            .or_default()
            .push(IndexEntry {
                owner,
                pattern: pattern.clone(),
                specificity: pattern.specificity(),
            });
    }

    /// The owner of the most specific matching pattern, ties to the smallest name.
    fn best<'a>(&self, artifact: &str, name: impl Fn(usize) -> &'a str) -> Option<usize> {
        let prefixes = artifact
            .char_indices()
            .map(|(i, _)| i)
            .chain(std::iter::once(artifact.len()))
            .filter_map(|i| artifact.get(..i));
        let mut best: Option<&IndexEntry> = None;
        for prefix in prefixes {
            let Some(bucket) = self.buckets.get(prefix) else {
                continue;
            };
            for entry in bucket {
                let better = match best {
                    None => true,
                    Some(b) => crate::pattern::outranks(
                        entry.specificity,
                        name(entry.owner),
                        b.specificity,
                        name(b.owner),
                    ),
                };
                if better && entry.pattern.matches(artifact) {
                    best = Some(entry);
                }
            }
        }
        best.map(|e| e.owner)
    }
}

/// A namespace's trust document with its keys' fingerprints computed once.
#[derive(Debug)]
struct Documented {
    doc: NamespaceTrust,
    /// Fingerprints of `doc.keys`, same order.
    keys: Vec<Sha256Hex>,
    /// Fingerprints of each sub-delegation's keys, same order.
    sub_keys: Vec<Vec<Sha256Hex>>,
    /// The namespace's own revocations, by fingerprint: positions in
    /// `doc.revocations`.
    revoked: HashMap<Sha256Hex, usize>,
}

impl Documented {
    fn new(doc: NamespaceTrust) -> Result<Self> {
        let keys = doc
            .keys
            .iter()
            .map(|k| k.key.fingerprint(&k.id))
            .collect::<Result<Vec<_>>>()?;
        let sub_keys = doc
            .sub_delegations
            .iter()
            .map(|s| {
                s.keys
                    .iter()
                    .map(|k| k.key.fingerprint(&k.id))
                    .collect::<Result<Vec<_>>>()
            })
            .collect::<Result<Vec<_>>>()?;
        let revoked = doc
            .revocations
            .iter()
            .enumerate()
            .filter_map(|(i, r)| match &r.subject {
                RevokedSubject::Key(h) => Some((h.clone(), i)),
                RevokedSubject::Certificate(_) => None,
            })
            .collect();
        Ok(Self {
            doc,
            keys,
            sub_keys,
            revoked,
        })
    }

    /// The namespace's own revocation of the key with this fingerprint, if
    /// it covers `signed_at`.
    fn revoked_key(&self, fingerprint: &Sha256Hex, signed_at: OffsetDateTime) -> Option<Reason> {
        self.revocation(fingerprint)
            .filter(|r| signed_at >= r.revoked_at)
            .map(|r| Reason::RevokedInNamespace {
                namespace: self.doc.namespace.clone(),
                key: fingerprint.clone(),
                revoked_at: r.revoked_at,
                reason: r.reason.clone(),
                signed_at,
            })
    }

    fn revocation(&self, fingerprint: &Sha256Hex) -> Option<&Revocation> {
        self.revoked
            .get(fingerprint)
            .and_then(|i| self.doc.revocations.get(*i))
    }
}

/// Parsed trust documents, indexed for [`TrustSet::decide`].
#[derive(Debug)]
pub struct TrustSet {
    /// The namespace index (all shards joined): the namespaces and their scopes.
    index: Namespaces,
    /// The trust document of each namespace of `index`, same order.
    documents: Vec<Option<Documented>>,
    /// Namespaces with a trust document but no entry in `index`, sorted.
    unlisted: Vec<NamespaceName>,
    /// The scopes of `index`, owners being positions in `index.namespaces`.
    scopes: PatternIndex,
    peers: Vec<Peer>,
    terminating: PatternIndex,
    non_terminating: PatternIndex,
    revocations: Vec<Revocation>,
    /// Revoked keys by fingerprint, revoked certificates by hash: positions
    /// in `revocations`.
    revoked_keys: HashMap<Sha256Hex, usize>,
    revoked_certs: HashMap<Sha256Hex, usize>,
}

/// One rule a signer can count towards: the namespace's own keys and
/// identities, or a sub-delegation (by index) covering the artifact.
#[derive(Clone, Copy, Debug)]
enum RuleId {
    Own,
    Sub(usize),
}

/// A signer counting towards the rule at position `rule`.
struct Contribution {
    rule: usize,
    /// The fingerprint of the key that signed (the leaf's key for a chain).
    fingerprint: Sha256Hex,
    /// Who holds it.
    principal: PrincipalId,
    listed: Listed,
}

/// Who holds a signing key, for counting a threshold by holders.
#[derive(Clone, Debug, PartialEq, Eq)]
enum PrincipalId {
    /// A key that names no principal is its own (by fingerprint).
    OwnKey,
    /// A principal the document names on its keys (e.g. one CI identity).
    Named(Principal),
    /// Every leaf an X.509 identity rule matches is one holder: the identity.
    Identity(String),
}

/// One principal that counted towards a threshold, with what it signed with.
#[derive(Default)]
struct Group {
    fingerprints: Vec<Sha256Hex>,
    principal: Option<PrincipalId>,
    listed: Vec<Listed>,
}

/// Distinct principals contributing to one rule. Two signers are the same
/// principal when they share key material, a named principal, or the
/// identity rule that matched their certificates.
#[derive(Default)]
struct Tally {
    groups: Vec<Group>,
}

impl Tally {
    fn add(&mut self, c: Contribution) {
        let same = |g: &Group| {
            g.fingerprints.contains(&c.fingerprint)
                || (c.principal != PrincipalId::OwnKey
                    && g.principal.as_ref() == Some(&c.principal))
        };
        let group = match self.groups.iter().position(same) {
            Some(i) => match self.groups.get_mut(i) {
                Some(g) => g,
                None => return,
            },
            None => {
                self.groups.push(Group::default());
                match self.groups.last_mut() {
                    Some(g) => g,
                    None => return,
                }
            }
        };
        if !group.fingerprints.contains(&c.fingerprint) {
            group.fingerprints.push(c.fingerprint);
        }
        if group.principal.is_none() || group.principal == Some(PrincipalId::OwnKey) {
            group.principal = Some(c.principal);
        }
        if !group.listed.contains(&c.listed) {
            group.listed.push(c.listed);
        }
    }

    fn count(&self) -> u32 {
        u32::try_from(self.groups.len()).unwrap_or(u32::MAX)
    }

    /// The principals, for [`TrustRule`].
    fn counted(&self) -> Vec<Counted> {
        self.groups
            .iter()
            .map(|g| {
                let keys: Vec<KeyId> = g
                    .listed
                    .iter()
                    .filter_map(|l| match l {
                        Listed::Key(id) => Some(id.clone()),
                        Listed::Identity(_) => None,
                    })
                    .collect();
                match &g.principal {
                    Some(PrincipalId::Identity(name)) => Counted::Identity(name.clone()),
                    Some(PrincipalId::Named(p)) => Counted::Principal {
                        principal: p.clone(),
                        keys,
                    },
                    _ => match keys.as_slice() {
                        [one] => Counted::Key(one.clone()),
                        _ => Counted::Keys(keys),
                    },
                }
            })
            .collect()
    }
}

impl TrustSet {
    /// Indexes the documents.
    ///
    /// `index` (the namespace index, [`Namespaces::merge`] of its shards) says which namespaces exist and which
    /// artifact names each owns; it is the only source of scopes.
    /// `namespaces` are the namespaces' trust documents: each one attaches
    /// to its entry in `index`. A namespace of `index` without a document
    /// owns its artifacts but trusts no signer for them
    /// ([`Reason::NoTrustDocument`]); a document for a namespace not in
    /// `index` owns nothing and is left out of every decision (see
    /// [`TrustSet::unlisted_documents`]).
    ///
    /// Fails if `index` breaks a rule [`Namespaces::from_slice`] enforces,
    /// or if two documents are for the same namespace.
    pub fn new(
        index: Namespaces,
        namespaces: Vec<NamespaceTrust>,
        revocations: Revocations,
        peers: Peers,
    ) -> Result<Self> {
        index
            .check()
            .map_err(|p| problem_to_error(NAMESPACES_PATH, p))?;
        let position: HashMap<&NamespaceName, usize> = index
            .namespaces
            .iter()
            .enumerate()
            .map(|(i, e)| (&e.name, i))
            .collect();
        let mut documents: Vec<Option<Documented>> =
            index.namespaces.iter().map(|_| None).collect();
        let mut unlisted = Vec::new();
        let mut seen = HashSet::with_capacity(namespaces.len());
        for doc in namespaces {
            if !seen.insert(doc.namespace.clone()) {
                return Err(Error::Malformed {
                    what: doc.namespace.target_path(),
                    path: "namespace".into(),
                    message: format!("namespace `{}` is given twice", doc.namespace),
                });
            }
            match position
                .get(&doc.namespace)
                .and_then(|&i| documents.get_mut(i))
            {
                Some(slot) => *slot = Some(Documented::new(doc)?),
                None => unlisted.push(doc.namespace),
            }
        }
        unlisted.sort();

        let mut scopes = PatternIndex::default();
        for (owner, entry) in index.namespaces.iter().enumerate() {
            for scope in &entry.scopes {
                scopes.insert(owner, scope);
            }
        }

        let mut terminating = PatternIndex::default();
        let mut non_terminating = PatternIndex::default();
        for (i, peer) in peers.peers.iter().enumerate() {
            let index = if peer.terminating {
                &mut terminating
            } else {
                &mut non_terminating
            };
            for pattern in &peer.patterns {
                index.insert(i, pattern);
            }
        }

        // Each key or certificate is revoked once in a valid document;
        // should two entries name it anyway, the earliest wins.
        let mut revoked_keys: HashMap<Sha256Hex, usize> = HashMap::new();
        let mut revoked_certs: HashMap<Sha256Hex, usize> = HashMap::new();
        let revocations = revocations.revocations;
        for (i, r) in revocations.iter().enumerate() {
            let (map, hash) = match &r.subject {
                RevokedSubject::Key(h) => (&mut revoked_keys, h),
                RevokedSubject::Certificate(h) => (&mut revoked_certs, h),
            };
            let earlier = |j: &usize| {
                revocations
                    .get(*j)
                    .is_some_and(|other| other.revoked_at <= r.revoked_at)
            };
            if !map.get(hash).is_some_and(earlier) {
                map.insert(hash.clone(), i);
            }
        }

        Ok(Self {
            index,
            documents,
            unlisted,
            scopes,
            peers: peers.peers,
            terminating,
            non_terminating,
            revocations,
            revoked_keys,
            revoked_certs,
        })
    }

    /// The namespace index, as given.
    pub fn index(&self) -> &Namespaces {
        &self.index
    }

    /// The trust documents that take part in decisions: those of namespaces
    /// listed in the index, in the index's order.
    pub fn namespaces(&self) -> impl Iterator<Item = &NamespaceTrust> {
        self.documents.iter().flatten().map(|d| &d.doc)
    }

    /// The trust document of namespace `name`, if it is listed in the
    /// index and published one (the document decisions use).
    pub fn document(&self, name: &str) -> Option<&NamespaceTrust> {
        self.index
            .namespaces
            .iter()
            .zip(&self.documents)
            .find(|(e, _)| e.name.as_str() == name)
            .and_then(|(_, d)| d.as_ref())
            .map(|d| &d.doc)
    }

    /// Namespaces that published a trust document but are not listed in
    /// the namespace index, sorted. Their documents own no artifact and
    /// are ignored by [`TrustSet::decide`]; callers should report them (a
    /// namespace removed by the organization whose role still publishes, or
    /// a namespace created without its entry).
    pub fn unlisted_documents(&self) -> &[NamespaceName] {
        &self.unlisted
    }

    /// Namespaces listed in the namespace index that have no trust
    /// document, in the index's order. Nothing signed for their artifacts is
    /// trusted until they publish one.
    pub fn missing_documents(&self) -> impl Iterator<Item = &NamespaceName> {
        self.index
            .namespaces
            .iter()
            .zip(&self.documents)
            .filter(|(_, d)| d.is_none())
            .map(|(e, _)| &e.name)
    }

    /// The peers.
    pub fn peers(&self) -> &[Peer] {
        &self.peers
    }

    /// The revocations.
    pub fn revocations(&self) -> &[Revocation] {
        &self.revocations
    }

    /// The revocation that applies to key material `fingerprint` listed in
    /// namespace `namespace`: the organization's (in every namespace) or
    /// the namespace's own, the one taking effect first
    /// ([`KeyRevocation::earliest`]). For listings and exports; decisions
    /// apply both.
    pub fn key_revocation(
        &self,
        namespace: &str,
        fingerprint: &Sha256Hex,
    ) -> Option<KeyRevocation<'_>> {
        let organization = self
            .revoked_keys
            .get(fingerprint)
            .and_then(|i| self.revocations.get(*i));
        let own = self
            .index
            .namespaces
            .iter()
            .zip(&self.documents)
            .find(|(e, _)| e.name.as_str() == namespace)
            .and_then(|(_, d)| d.as_ref())
            .and_then(|d| d.revocation(fingerprint));
        KeyRevocation::earliest(organization, own)
    }

    /// Decides whether `signers` (whose signatures over the artifact the
    /// caller has verified) are trusted for `artifact`, for a signature made
    /// at `signed_at`, as of `now`.
    ///
    /// Terminating peers are looked at first, then the scopes of
    /// the namespace index, then non-terminating peers; among several
    /// matches the most specific pattern wins, ties going to the smallest
    /// name. The namespace so chosen owns the artifact even when it has no
    /// trust document ([`Reason::NoTrustDocument`]): the decision never
    /// falls through to a broader namespace or a peer.
    pub fn decide(
        &self,
        artifact: &str,
        signers: &[SignerRef],
        signed_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Decision {
        match self.owner_index(artifact) {
            Some(OwnerIndex::Peer(peer)) => self.delegated(peer, artifact),
            Some(OwnerIndex::Namespace(owner)) => {
                match (self.documents.get(owner), self.index.namespaces.get(owner)) {
                    (Some(Some(ns)), _) => self.decide_in(ns, artifact, signers, signed_at, now),
                    (_, Some(entry)) => Decision::Untrusted {
                        reason: Reason::NoTrustDocument {
                            namespace: entry.name.clone(),
                            maintainers: entry.maintainers.clone(),
                        },
                    },
                    (_, None) => Decision::Untrusted {
                        reason: Reason::NoNamespace {
                            artifact: artifact.to_owned(),
                        },
                    },
                }
            }
            None => Decision::Untrusted {
                reason: Reason::NoNamespace {
                    artifact: artifact.to_owned(),
                },
            },
        }
    }

    /// Who answers for `artifact`, by the rules of [`Self::decide`]
    /// (terminating peers, then namespace scopes, then other peers; the most
    /// specific pattern wins), whether or not the namespace has a trust
    /// document. `None` when nothing matches.
    pub fn owner(&self, artifact: &str) -> Option<Owner<'_>> {
        match self.owner_index(artifact)? {
            OwnerIndex::Peer(i) => self.peers.get(i).map(Owner::Peer),
            OwnerIndex::Namespace(i) => {
                let entry = self.index.namespaces.get(i)?;
                let scope = entry
                    .scopes
                    .iter()
                    .filter(|s| s.matches(artifact))
                    .max_by_key(|s| s.specificity())?;
                Some(Owner::Namespace { entry, scope })
            }
        }
    }

    fn owner_index(&self, artifact: &str) -> Option<OwnerIndex> {
        let peer_name = |i: usize| self.peers.get(i).map_or("", |p| p.name.as_str());
        if let Some(peer) = self.terminating.best(artifact, peer_name) {
            return Some(OwnerIndex::Peer(peer));
        }
        let ns_name = |i: usize| self.index.namespaces.get(i).map_or("", |e| e.name.as_str());
        if let Some(owner) = self.scopes.best(artifact, ns_name) {
            return Some(OwnerIndex::Namespace(owner));
        }
        self.non_terminating
            .best(artifact, peer_name)
            .map(OwnerIndex::Peer)
    }

    fn delegated(&self, peer: usize, artifact: &str) -> Decision {
        match self.peers.get(peer) {
            Some(p) => Decision::Untrusted {
                reason: Reason::DelegatedToPeer {
                    peer: p.name.clone(),
                    url: p.url.clone(),
                    root: p.root.clone(),
                },
            },
            None => Decision::Untrusted {
                reason: Reason::NoNamespace {
                    artifact: artifact.to_owned(),
                },
            },
        }
    }

    fn decide_in(
        &self,
        ns: &Documented,
        artifact: &str,
        signers: &[SignerRef],
        signed_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Decision {
        let namespace = &ns.doc.namespace;
        // The namespace's own rule first, then sub-delegations covering the
        // artifact, most specific scope first, ties by name. The artifact
        // matched one of the namespace's org-granted scopes (that is how the
        // namespace was chosen), so a sub-delegation only ever applies inside
        // them: its scopes narrow the namespace, they never widen it.
        let mut subs: Vec<(usize, (usize, usize), &str)> = ns
            .doc
            .sub_delegations
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                s.scopes
                    .iter()
                    .filter(|p| p.matches(artifact))
                    .map(ArtifactPattern::specificity)
                    .max()
                    .map(|spec| (i, spec, s.name.as_str()))
            })
            .collect();
        subs.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.2.cmp(b.2)));
        let rules: Vec<RuleId> = std::iter::once(RuleId::Own)
            .chain(subs.iter().map(|(i, _, _)| RuleId::Sub(*i)))
            .collect();

        let mut tallies: Vec<Tally> = rules.iter().map(|_| Tally::default()).collect();
        let mut first_failure = None;
        let mut any_usable = false;
        for signer in signers {
            match self.evaluate(ns, &rules, signer, signed_at, now) {
                Ok(contributions) => {
                    any_usable = true;
                    for c in contributions {
                        if let Some(t) = tallies.get_mut(c.rule) {
                            t.add(c);
                        }
                    }
                }
                Err(reason) => {
                    first_failure.get_or_insert(reason);
                }
            }
        }

        for (rule, tally) in rules.iter().zip(&tallies) {
            let threshold = self.threshold(ns, *rule);
            if tally.count() >= threshold {
                return Decision::Trusted {
                    namespace: namespace.clone(),
                    rule: trust_rule(ns, *rule, tally, threshold),
                };
            }
        }
        if !any_usable {
            if let Some(reason) = first_failure {
                return Decision::Untrusted { reason };
            }
        }
        // The rule that came closest (the namespace's own on a tie).
        let mut closest = (RuleId::Own, 0);
        for (rule, tally) in rules.iter().zip(&tallies) {
            if tally.count() > closest.1 {
                closest = (*rule, tally.count());
            }
        }
        let sub_delegation = match closest.0 {
            RuleId::Own => None,
            RuleId::Sub(i) => ns.doc.sub_delegations.get(i).map(|s| s.name.clone()),
        };
        Decision::Untrusted {
            reason: Reason::ThresholdNotMet {
                namespace: namespace.clone(),
                sub_delegation,
                valid: closest.1,
                threshold: self.threshold(ns, closest.0),
            },
        }
    }

    fn threshold(&self, ns: &Documented, rule: RuleId) -> u32 {
        match rule {
            RuleId::Own => ns.doc.threshold.get(),
            RuleId::Sub(i) => ns
                .doc
                .sub_delegations
                .get(i)
                .map_or(u32::MAX, |s| s.threshold.get()),
        }
    }

    /// What one signer counts towards, or why it counts towards nothing.
    fn evaluate(
        &self,
        ns: &Documented,
        rules: &[RuleId],
        signer: &SignerRef,
        signed_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> std::result::Result<Vec<Contribution>, Reason> {
        match signer {
            SignerRef::KeyId(id) => self.evaluate_key(
                ns,
                rules,
                |k, _| &k.id == id,
                || KeyRef::Id(id.clone()),
                signed_at,
                now,
            ),
            SignerRef::PublicKey(key) => {
                let presented = key
                    .fingerprint(&KeyId::new("(presented key)"))
                    .map_err(|e| Reason::UnusableKey {
                        detail: match e {
                            Error::BadKey { message, .. } => message,
                            other => other.to_string(),
                        },
                    })?;
                // A revoked key is refused as such, listed or not: revoked
                // by the organization, or by the namespace that owns the
                // artifact.
                if let Some(reason) = self
                    .revoked_key(&presented, signed_at)
                    .or_else(|| ns.revoked_key(&presented, signed_at))
                {
                    return Err(reason);
                }
                self.evaluate_key(
                    ns,
                    rules,
                    |_, fp| *fp == presented,
                    || KeyRef::Spki {
                        sha256: presented.clone(),
                    },
                    signed_at,
                    now,
                )
            }
            SignerRef::CertChain(chain) => self.evaluate_chain(ns, chain, signed_at),
        }
    }

    fn evaluate_key(
        &self,
        ns: &Documented,
        rules: &[RuleId],
        is_it: impl Fn(&TrustedKey, &Sha256Hex) -> bool,
        not_listed: impl FnOnce() -> KeyRef,
        signed_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> std::result::Result<Vec<Contribution>, Reason> {
        let mut contributions = Vec::new();
        let mut failure = None;
        for (position, rule) in rules.iter().enumerate() {
            let (keys, fingerprints) = match rule {
                RuleId::Own => (ns.doc.keys.as_slice(), ns.keys.as_slice()),
                RuleId::Sub(i) => match (ns.doc.sub_delegations.get(*i), ns.sub_keys.get(*i)) {
                    (Some(s), Some(m)) => (s.keys.as_slice(), m.as_slice()),
                    _ => continue,
                },
            };
            let Some((key, fp)) = keys.iter().zip(fingerprints).find(|(k, fp)| is_it(k, fp)) else {
                continue;
            };
            match self.key_status(ns, key, fp, signed_at, now) {
                Ok(()) => contributions.push(Contribution {
                    rule: position,
                    fingerprint: fp.clone(),
                    principal: key
                        .principal
                        .clone()
                        .map_or(PrincipalId::OwnKey, PrincipalId::Named),
                    listed: Listed::Key(key.id.clone()),
                }),
                Err(reason) => {
                    failure.get_or_insert(reason);
                }
            }
        }
        if !contributions.is_empty() {
            return Ok(contributions);
        }
        Err(failure.unwrap_or_else(|| Reason::KeyNotListed {
            namespace: ns.doc.namespace.clone(),
            key: not_listed(),
        }))
    }

    /// Whether a listed key is trusted for this signature.
    fn key_status(
        &self,
        ns: &Documented,
        key: &TrustedKey,
        fingerprint: &Sha256Hex,
        signed_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> std::result::Result<(), Reason> {
        let namespace = &ns.doc.namespace;
        if let Some(reason) = self
            .revoked_key(fingerprint, signed_at)
            .or_else(|| ns.revoked_key(fingerprint, signed_at))
        {
            return Err(reason);
        }
        // An ended delegation is the reason, whenever the signature was made.
        if key.ephemeral {
            if let Some(not_after) = key.not_after {
                if now >= not_after {
                    return Err(Reason::EphemeralExpired {
                        namespace: namespace.clone(),
                        key: key.id.clone(),
                        not_after,
                        now,
                    });
                }
            }
        }
        check_window(
            namespace,
            || Listed::Key(key.id.clone()),
            key.not_before,
            key.not_after,
            signed_at,
        )
    }

    /// The revocation of the key with this fingerprint, if it covers `signed_at`.
    fn revoked_key(&self, fingerprint: &Sha256Hex, signed_at: OffsetDateTime) -> Option<Reason> {
        self.revoked_keys
            .get(fingerprint)
            .and_then(|i| self.revocations.get(*i))
            .filter(|r| signed_at >= r.revoked_at)
            .map(|r| revoked_reason(r, signed_at))
    }

    fn revoked_cert(&self, hash: &Sha256Hex, signed_at: OffsetDateTime) -> Option<Reason> {
        self.revoked_certs
            .get(hash)
            .and_then(|i| self.revocations.get(*i))
            .filter(|r| signed_at >= r.revoked_at)
            .map(|r| revoked_reason(r, signed_at))
    }

    fn evaluate_chain(
        &self,
        ns: &Documented,
        chain: &[Vec<u8>],
        signed_at: OffsetDateTime,
    ) -> std::result::Result<Vec<Contribution>, Reason> {
        let namespace = &ns.doc.namespace;
        let not_trusted = |detail: String| Reason::ChainNotTrusted {
            namespace: namespace.clone(),
            detail,
        };
        let mut certs = Vec::with_capacity(chain.len());
        for (i, der) in chain.iter().enumerate() {
            let cert = X509::from_der(der);
            let _ = openssl::error::ErrorStack::get();
            let cert = cert.map_err(|_| {
                not_trusted(format!("certificate {i} of the chain is not DER X.509"))
            })?;
            for hash in [Some(Sha256Hex::of(der)), reencoded_hash(&cert)]
                .into_iter()
                .flatten()
            {
                if let Some(reason) = self.revoked_cert(&hash, signed_at) {
                    return Err(reason);
                }
            }
            // A revoked key is revoked in every certificate that carries it
            // (for the namespace that revoked it, in every certificate
            // presented for the namespace's artifacts).
            if let Some(reason) = cert_key_fingerprint(&cert).and_then(|fp| {
                self.revoked_key(&fp, signed_at)
                    .or_else(|| ns.revoked_key(&fp, signed_at))
            }) {
                return Err(reason);
            }
            certs.push(cert);
        }
        let mut certs = certs.into_iter();
        let Some(leaf) = certs.next() else {
            return Err(not_trusted("no certificate was presented".into()));
        };
        let leaf_fingerprint = leaf
            .public_key()
            .and_then(|k| public_key_fingerprint(&k))
            .map_err(|e| not_trusted(format!("leaf public key: {e}")))?;
        if ns.doc.identities.is_empty() {
            return Err(not_trusted(format!(
                "namespace `{namespace}` lists no X.509 identities"
            )));
        }
        let mut intermediates = Stack::new().map_err(|e| not_trusted(format!("openssl: {e}")))?;
        for cert in certs {
            intermediates
                .push(cert)
                .map_err(|e| not_trusted(format!("openssl: {e}")))?;
        }

        // Report the failure that got furthest: window > subject > chain.
        let mut failure: Option<(u8, Reason)> = None;
        let mut consider = |rank: u8, reason: Reason| {
            if failure.as_ref().is_none_or(|(r, _)| rank > *r) {
                failure = Some((rank, reason));
            }
        };
        for identity in &ns.doc.identities {
            let hashes = match identity.verify_chain(&leaf, &intermediates, signed_at) {
                Ok(hashes) => hashes,
                Err(detail) => {
                    consider(
                        1,
                        not_trusted(format!("identity `{}`: {detail}", identity.name)),
                    );
                    continue;
                }
            };
            // The verified chain ends in one of the identity's CA
            // certificates, which was not presented: check it (and its key) too.
            let revoked = hashes.iter().find_map(|c| {
                self.revoked_cert(&c.sha256, signed_at).or_else(|| {
                    c.key.as_ref().and_then(|fp| {
                        self.revoked_key(fp, signed_at)
                            .or_else(|| ns.revoked_key(fp, signed_at))
                    })
                })
            });
            if let Some(reason) = revoked {
                return Err(reason);
            }
            if !identity.subject.matches(leaf.subject_name()) {
                consider(
                    2,
                    Reason::SubjectMismatch {
                        namespace: namespace.clone(),
                        identity: identity.name.clone(),
                        expected: identity.subject.to_string(),
                        found: name_text(leaf.subject_name()),
                    },
                );
                continue;
            }
            match check_window(
                namespace,
                || Listed::Identity(identity.name.clone()),
                identity.not_before,
                identity.not_after,
                signed_at,
            ) {
                Ok(()) => {
                    return Ok(vec![Contribution {
                        rule: 0,
                        fingerprint: leaf_fingerprint,
                        principal: PrincipalId::Identity(identity.name.clone()),
                        listed: Listed::Identity(identity.name.clone()),
                    }])
                }
                Err(reason) => consider(3, reason),
            }
        }
        Err(failure.map_or_else(
            || not_trusted("no identity matched".into()),
            |(_, reason)| reason,
        ))
    }
}

fn cert_key_fingerprint(cert: &X509) -> Option<Sha256Hex> {
    let fp = cert
        .public_key()
        .and_then(|k| public_key_fingerprint(&k))
        .ok();
    let _ = openssl::error::ErrorStack::get();
    fp
}

fn reencoded_hash(cert: &X509) -> Option<Sha256Hex> {
    cert.digest(openssl::hash::MessageDigest::sha256())
        .ok()
        .map(|d| Sha256Hex::from_digest(&d))
}

fn revoked_reason(r: &Revocation, signed_at: OffsetDateTime) -> Reason {
    Reason::Revoked {
        subject: r.subject.clone(),
        revoked_at: r.revoked_at,
        reason: r.reason.clone(),
        signed_at,
    }
}

/// `not_before` is inclusive, `not_after` exclusive, both at `signed_at`.
fn check_window(
    namespace: &NamespaceName,
    signer: impl Fn() -> Listed,
    not_before: Option<OffsetDateTime>,
    not_after: Option<OffsetDateTime>,
    signed_at: OffsetDateTime,
) -> std::result::Result<(), Reason> {
    if let Some(not_before) = not_before {
        if signed_at < not_before {
            return Err(Reason::KeyNotYetValid {
                namespace: namespace.clone(),
                signer: signer(),
                not_before,
                signed_at,
            });
        }
    }
    if let Some(not_after) = not_after {
        if signed_at >= not_after {
            return Err(Reason::KeyExpired {
                namespace: namespace.clone(),
                signer: signer(),
                not_after,
                signed_at,
            });
        }
    }
    Ok(())
}

fn trust_rule(ns: &Documented, rule: RuleId, tally: &Tally, threshold: u32) -> TrustRule {
    let listed = || tally.groups.iter().flat_map(|g| g.listed.iter());
    let keys = listed()
        .filter_map(|l| match l {
            Listed::Key(id) => Some(id.clone()),
            Listed::Identity(_) => None,
        })
        .collect();
    let principals = tally.counted();
    match rule {
        RuleId::Own => TrustRule::Namespace {
            keys,
            identities: listed()
                .filter_map(|l| match l {
                    Listed::Identity(name) => Some(name.clone()),
                    Listed::Key(_) => None,
                })
                .collect(),
            principals,
            threshold,
        },
        RuleId::Sub(i) => TrustRule::SubDelegation {
            name: ns
                .doc
                .sub_delegations
                .get(i)
                .map(|s| s.name.clone())
                .unwrap_or_default(),
            keys,
            principals,
            threshold,
        },
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn index_finds_the_most_specific_matching_pattern() {
        let mut index = PatternIndex::default();
        let names = ["broad", "team-a", "exact", "other"];
        for (owner, p) in [
            (0, "registry.acme.io/**"),
            (1, "registry.acme.io/team-a/**"),
            (2, "registry.acme.io/team-a/app"),
            (3, "*.example/**"),
        ] {
            index.insert(owner, &ArtifactPattern::parse(p).unwrap());
        }
        let name = |i: usize| names[i];
        assert_eq!(index.best("registry.acme.io/team-a/app", name), Some(2));
        assert_eq!(index.best("registry.acme.io/team-a/x/y", name), Some(1));
        assert_eq!(index.best("registry.acme.io/team-b/app", name), Some(0));
        assert_eq!(index.best("r.example/app", name), Some(3));
        assert_eq!(index.best("elsewhere.io/app", name), None);
    }

    #[test]
    fn trust_set_document_finds_listed_documents_only() {
        let index = Namespaces::from_slice(
            br#"{"format": "keyshare.namespaces/v1", "namespaces": [
                {"name": "a", "scopes": ["r/a/**"], "maintainers": []},
                {"name": "b", "scopes": ["r/b/**"], "maintainers": []}]}"#,
        )
        .unwrap();
        let doc = |ns: &str| {
            NamespaceTrust::from_slice(
                format!(
                    r#"{{"format": "keyshare.trust/v1", "namespace": "{ns}", "threshold": 1}}"#
                )
                .as_bytes(),
            )
            .unwrap()
        };
        let set = TrustSet::new(
            index,
            vec![doc("a"), doc("c")],
            Revocations::default(),
            Peers::default(),
        )
        .unwrap();
        assert_eq!(set.document("a").map(|d| d.namespace.as_str()), Some("a"));
        // Listed without a document; a document that is not listed.
        assert!(set.document("b").is_none());
        assert!(set.document("c").is_none());
    }

    #[test]
    fn trust_set_can_be_shared_between_threads() {
        fn shareable<T: Send + Sync>() {}
        shareable::<TrustSet>();
        shareable::<Decision>();
    }
}
