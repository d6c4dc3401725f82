//! The trust decision over a set of parsed trust documents.
//!
//! Split by job: `reason` (what a decision says), `index` (who answers for
//! an artifact name), `tally` (counting a threshold by principal) and
//! `chain` (X.509 identity rules); this module indexes the documents and
//! decides.

use std::collections::{HashMap, HashSet};

use time::OffsetDateTime;

use crate::error::{Error, Result};
use crate::hash::Sha256Hex;
use crate::metadata::KeyId;
use crate::pattern::ArtifactPattern;
use crate::trust::check::problem_to_error;
use crate::trust::namespace::{NamespaceName, NamespaceTrust, TrustedKey};
use crate::trust::namespaces::Namespaces;
use crate::trust::peers::{Peer, Peers};
use crate::trust::revocations::{Revocation, Revocations, RevokedSubject};
use crate::trust::standing::KeyRevocation;
use crate::trust::NAMESPACES_PATH;

use index::{OwnerIndex, PatternIndex};
use tally::{Contribution, PrincipalId, RuleId, Tally};

mod chain;
mod index;
mod reason;
mod tally;

pub use index::Owner;
pub use reason::{Counted, Decision, KeyRef, Listed, Reason, SignerRef, TrustRule};

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
    /// Why the document of a namespace of `index` could not be read, by
    /// position in `index` (see [`TrustSet::set_unreadable`]).
    unreadable: HashMap<usize, String>,
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
            unreadable: HashMap::new(),
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

    /// Records that the trust document published for `namespace` cannot
    /// be read (`why`: the parser's message), so its decisions say so
    /// ([`Reason::UnreadableTrustDocument`]) instead of
    /// [`Reason::NoTrustDocument`]. Either way it trusts no signer: a
    /// document a verifier cannot read fails closed for its own namespace
    /// only, never for the others. False (and nothing recorded) when the
    /// index does not list `namespace` or it has a document.
    pub fn set_unreadable(&mut self, namespace: &NamespaceName, why: impl Into<String>) -> bool {
        let Some(i) = self
            .index
            .namespaces
            .iter()
            .position(|e| &e.name == namespace)
        else {
            return false;
        };
        if !matches!(self.documents.get(i), Some(None)) {
            return false;
        }
        self.unreadable.insert(i, why.into());
        true
    }

    /// The namespaces whose trust document could not be read, with why,
    /// in the index's order.
    pub fn unreadable_documents(&self) -> Vec<(&NamespaceName, &str)> {
        let mut out: Vec<(usize, &NamespaceName, &str)> = self
            .unreadable
            .iter()
            .filter_map(|(&i, why)| {
                self.index
                    .namespaces
                    .get(i)
                    .map(|e| (i, &e.name, why.as_str()))
            })
            .collect();
        out.sort_by_key(|(i, _, _)| *i);
        out.into_iter().map(|(_, n, w)| (n, w)).collect()
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
        self.decide_with(artifact, signers, signed_at, now, false)
    }

    /// [`Self::decide`] for a signing time the verifier holds trusted
    /// evidence of (a verified RFC 3161 timestamp token,
    /// [`crate::timestamp::verify_token`], or its own record): an
    /// ephemeral key then counts when the signature was made inside its
    /// window (`signed_at < not_after`), even after the delegation ended
    /// (`now >= not_after`). Without such evidence the signing time could
    /// be anything the signer chose, so [`Self::decide`] refuses every
    /// signature of an ended ephemeral key.
    pub fn decide_attested(
        &self,
        artifact: &str,
        signers: &[SignerRef],
        signed_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Decision {
        self.decide_with(artifact, signers, signed_at, now, true)
    }

    /// [`Self::decide_attested`], and when that is untrusted, again with
    /// the ephemeral keys of `history` (an earlier trust document of the
    /// namespace, proven by [`crate::evidence::EvidenceAnchor::check`])
    /// added to the namespace's current document: a CI key swept from the
    /// document since still counts for a signature made inside the window
    /// that earlier document gave it.
    ///
    /// Only when `history` is the document of the namespace that owns
    /// `artifact` now (and that namespace has a current document), only its
    /// keys marked ephemeral (a key removed on purpose is not brought back),
    /// never under a key id or key material the current document lists; the
    /// current threshold, sub-delegations and revocations (the
    /// organization's and the namespace's) decide as usual. `signed_at`
    /// must come from evidence the verifier trusts, as for
    /// [`Self::decide_attested`].
    pub fn decide_attested_with_history(
        &self,
        artifact: &str,
        signers: &[SignerRef],
        signed_at: OffsetDateTime,
        now: OffsetDateTime,
        history: &NamespaceTrust,
    ) -> Decision {
        let decision = self.decide_attested(artifact, signers, signed_at, now);
        if decision.is_trusted() {
            return decision;
        }
        let Some(OwnerIndex::Namespace(owner)) = self.owner_index(artifact) else {
            return decision;
        };
        let Some(Some(current)) = self.documents.get(owner) else {
            return decision;
        };
        if current.doc.namespace != history.namespace {
            return decision;
        }
        let mut doc = current.doc.clone();
        for key in history.keys.iter().filter(|k| k.ephemeral) {
            let Ok(fingerprint) = key.key.fingerprint(&key.id) else {
                continue;
            };
            let listed =
                current.keys.contains(&fingerprint) || doc.keys.iter().any(|k| k.id == key.id);
            if !listed {
                doc.keys.push(key.clone());
            }
        }
        if doc.keys.len() == current.doc.keys.len() {
            return decision;
        }
        match Documented::new(doc) {
            Ok(ns) => self.decide_in(&ns, artifact, signers, signed_at, now, true),
            Err(_) => decision,
        }
    }

    fn decide_with(
        &self,
        artifact: &str,
        signers: &[SignerRef],
        signed_at: OffsetDateTime,
        now: OffsetDateTime,
        attested: bool,
    ) -> Decision {
        match self.owner_index(artifact) {
            Some(OwnerIndex::Peer(peer)) => self.delegated(peer, artifact),
            Some(OwnerIndex::Namespace(owner)) => {
                match (self.documents.get(owner), self.index.namespaces.get(owner)) {
                    (Some(Some(ns)), _) => {
                        self.decide_in(ns, artifact, signers, signed_at, now, attested)
                    }
                    (_, Some(entry)) => Decision::Untrusted {
                        reason: match self.unreadable.get(&owner) {
                            Some(why) => Reason::UnreadableTrustDocument {
                                namespace: entry.name.clone(),
                                why: why.clone(),
                            },
                            None => Reason::NoTrustDocument {
                                namespace: entry.name.clone(),
                                maintainers: entry.maintainers.clone(),
                            },
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
        attested: bool,
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
            match self.evaluate(ns, &rules, signer, signed_at, now, attested) {
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
        attested: bool,
    ) -> std::result::Result<Vec<Contribution>, Reason> {
        match signer {
            SignerRef::KeyId(id) => self.evaluate_key(
                ns,
                rules,
                |k, _| &k.id == id,
                || KeyRef::Id(id.clone()),
                signed_at,
                (!attested).then_some(now),
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
                    (!attested).then_some(now),
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
        ephemeral_now: Option<OffsetDateTime>,
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
            match self.key_status(ns, key, fp, signed_at, ephemeral_now) {
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
        ephemeral_now: Option<OffsetDateTime>,
    ) -> std::result::Result<(), Reason> {
        let namespace = &ns.doc.namespace;
        if let Some(reason) = self
            .revoked_key(fingerprint, signed_at)
            .or_else(|| ns.revoked_key(fingerprint, signed_at))
        {
            return Err(reason);
        }
        // An ended delegation is the reason, whenever the signature was
        // made, unless the verifier trusts the signing time
        // (`ephemeral_now` is `None`): then the window below
        // (`signed_at < not_after`) decides.
        if let (true, Some(now)) = (key.ephemeral, ephemeral_now) {
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
        check_signing_window(
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
fn check_signing_window(
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
