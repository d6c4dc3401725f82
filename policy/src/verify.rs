//! Threshold signature verification, and the only way to make a [`Verified`] value.
//!
//! [`SignatureCache`] remembers signatures that verified, so a long-running
//! verifier that checks the same metadata again on every refresh (a
//! `keyshare watch` re-reading 256 unchanged bins after each publish) pays
//! for each signature once.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::num::NonZeroU32;
use std::ops::Deref;
use std::sync::{Mutex, PoisonError};

use crate::error::{Error, Result};
use crate::keys::Key;
use crate::metadata::{Envelope, KeyId, Role, RoleName, Root, Signature, Targets};

/// Metadata whose signatures met its role's threshold.
///
/// Only this module constructs it, so a `Verified<T>` in a function's
/// signature is proof that verification happened.
#[derive(Clone, Debug)]
pub struct Verified<T> {
    envelope: Envelope<T>,
}

impl<T> Verified<T> {
    /// The signatures as received.
    pub fn signatures(&self) -> &[Signature] {
        &self.envelope.signatures
    }

    /// The canonical bytes the signatures cover.
    pub fn canonical(&self) -> &[u8] {
        &self.envelope.canonical
    }

    /// The verified role content.
    pub fn signed(&self) -> &T {
        &self.envelope.signed
    }

    /// The envelope as received (to check it again, against another
    /// authority).
    pub fn envelope(&self) -> &Envelope<T> {
        &self.envelope
    }
}

impl<T> Deref for Verified<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.envelope.signed
    }
}

/// Signatures that verified: `(key scheme and material, message,
/// signature)` triples, by their SHA-256, in memory. Verifying a signature
/// is a pure function of those three, so a triple that verified once
/// verifies again and need not be checked; anything else (another key,
/// one changed byte of the message or of the signature) is a different
/// digest and is verified as usual. Only successes are kept, at most
/// [`SignatureCache::CAPACITY`] (then it starts over). Never persisted: a
/// cache on disk could be edited.
#[derive(Debug, Default)]
pub struct SignatureCache {
    seen: Mutex<HashSet<[u8; 32]>>,
}

impl SignatureCache {
    /// Most remembered signatures (about 10 MB).
    pub const CAPACITY: usize = 200_000;

    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// Signatures remembered.
    pub fn len(&self) -> usize {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// True when nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn digest(scheme: &str, material: &[u8], message: &[u8], signature: &[u8]) -> [u8; 32] {
        let mut h = openssl::sha::Sha256::new();
        for part in [scheme.as_bytes(), material, message, signature] {
            h.update(&(part.len() as u64).to_be_bytes());
            h.update(part);
        }
        h.finish()
    }

    fn contains(&self, digest: &[u8; 32]) -> bool {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(digest)
    }

    fn insert(&self, digest: [u8; 32]) {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        if seen.len() >= Self::CAPACITY {
            seen.clear();
        }
        seen.insert(digest);
    }
}

/// The keys and threshold that may sign one role.
#[derive(Clone, Copy, Debug)]
pub struct Authority<'a> {
    /// All keys of the delegating metadata, by id.
    pub keys: &'a BTreeMap<KeyId, Key>,
    /// Key ids allowed for this role.
    pub keyids: &'a [KeyId],
    /// Distinct valid signatures needed.
    pub threshold: NonZeroU32,
}

impl<'a> Authority<'a> {
    /// The authority root gives a top-level role.
    pub fn from_root(root: &'a Root, role: &str) -> Result<Self> {
        let r = root.roles.get(role).ok_or_else(|| Error::MissingRole {
            role: RoleName::new(role),
            message: "root does not list this role".into(),
        })?;
        Ok(Self {
            keys: &root.keys,
            keyids: &r.keyids,
            threshold: r.threshold,
        })
    }

    /// The authority a targets role gives its delegated role `role`.
    pub fn from_delegator(delegator: &'a Targets, role: &str) -> Result<Self> {
        let missing = |why: &str| Error::MissingRole {
            role: RoleName::new(role),
            message: why.to_owned(),
        };
        let d = delegator
            .delegations
            .as_ref()
            .ok_or_else(|| missing("the delegating role has no delegations"))?;
        let (keyids, threshold) = d
            .role_keys(role)
            .ok_or_else(|| missing("the delegating role does not delegate to it"))?;
        Ok(Self {
            keys: &d.keys,
            keyids,
            threshold,
        })
    }

    /// Whether `other` is the same authority: the same threshold and key
    /// ids, each id naming the same key.
    pub fn same_as(&self, other: &Authority<'_>) -> bool {
        self.threshold == other.threshold
            && self.keyids == other.keyids
            && self.keyids.iter().all(|id| {
                self.keys
                    .get(id)
                    .is_some_and(|k| other.keys.get(id) == Some(k))
            })
    }

    /// Counts distinct authorised keys with a valid signature over
    /// `canonical`: distinct key *material*, so one key listed under two
    /// ids counts once (a role's keys are listed by id, and nothing stops a
    /// root from listing the same key twice).
    ///
    /// Stops as soon as the threshold is reached. Returns the count and the
    /// first authorised key whose signature did not verify. With `cache`,
    /// a signature it remembers counts without being verified again, and
    /// one that verifies is remembered.
    fn count(
        &self,
        signatures: &[Signature],
        canonical: &[u8],
        cache: Option<&SignatureCache>,
    ) -> (u32, Option<KeyId>) {
        let allowed: BTreeSet<&KeyId> = self.keyids.iter().collect();
        let mut counted: BTreeSet<&KeyId> = BTreeSet::new();
        let mut materials: Vec<&[u8]> = Vec::new();
        let mut bad = None;
        for sig in signatures {
            if counted.len() as u64 >= u64::from(self.threshold.get()) {
                break;
            }
            if !allowed.contains(&sig.keyid) || counted.contains(&sig.keyid) {
                continue;
            }
            let Some(key) = self.keys.get(&sig.keyid) else {
                continue;
            };
            let valid = match hex::decode(&sig.sig) {
                Ok(raw) => {
                    let digest = cache
                        .zip(key.material(&sig.keyid).ok())
                        .map(|(c, m)| (c, SignatureCache::digest(&key.scheme, m, canonical, &raw)));
                    match digest {
                        Some((c, d)) if c.contains(&d) => true,
                        _ => {
                            let ok = key.verify(&sig.keyid, canonical, &raw).unwrap_or(false);
                            if let (true, Some((c, d))) = (ok, digest) {
                                c.insert(d);
                            }
                            ok
                        }
                    }
                }
                Err(_) => false,
            };
            if !valid {
                if bad.is_none() {
                    bad = Some(sig.keyid.clone());
                }
                continue;
            }
            // A key that verified has usable material.
            let Ok(material) = key.material(&sig.keyid) else {
                continue;
            };
            if materials.contains(&material) {
                continue;
            }
            materials.push(material);
            counted.insert(&sig.keyid);
        }
        (counted.len() as u32, bad)
    }

    /// Checks `envelope` against this authority without consuming it.
    pub fn check<T>(&self, role: &str, envelope: &Envelope<T>) -> Result<()> {
        self.check_cached(role, envelope, None)
    }

    /// [`Self::check`], remembering (and trusting) verified signatures in
    /// `cache` ([`SignatureCache`]).
    pub fn check_cached<T>(
        &self,
        role: &str,
        envelope: &Envelope<T>,
        cache: Option<&SignatureCache>,
    ) -> Result<()> {
        let (valid, bad) = self.count(&envelope.signatures, &envelope.canonical, cache);
        if valid >= self.threshold.get() {
            return Ok(());
        }
        Err(match bad {
            Some(keyid) => Error::BadSignature {
                role: RoleName::new(role),
                keyid,
            },
            None => Error::ThresholdNotMet {
                role: RoleName::new(role),
                valid,
                threshold: self.threshold.get(),
            },
        })
    }

    /// Verifies `envelope` and returns it as [`Verified`].
    pub fn verify<T: Role>(&self, role: &str, envelope: Envelope<T>) -> Result<Verified<T>> {
        self.verify_cached(role, envelope, None)
    }

    /// [`Self::verify`] with a [`SignatureCache`].
    pub fn verify_cached<T: Role>(
        &self,
        role: &str,
        envelope: Envelope<T>,
        cache: Option<&SignatureCache>,
    ) -> Result<Verified<T>> {
        self.check_cached(role, &envelope, cache)?;
        Ok(Verified { envelope })
    }
}

/// Verifies a root that should be the successor of `trusted`: it must meet
/// the threshold of the trusted root's root role *and* of its own.
///
/// The version rule (exactly `trusted + 1`) is the caller's, because a
/// bootstrap root is checked against itself.
pub fn verify_root_successor(trusted: &Root, new: Envelope<Root>) -> Result<Verified<Root>> {
    Authority::from_root(trusted, RoleName::ROOT)?.check(RoleName::ROOT, &new)?;
    let own = Authority::from_root(&new.signed, RoleName::ROOT)?;
    own.check(RoleName::ROOT, &new)?;
    Ok(Verified { envelope: new })
}

/// Verifies a root against its own root role (a bootstrap or locally stored root).
pub fn verify_root_self(new: Envelope<Root>) -> Result<Verified<Root>> {
    verify_root_self_cached(new, None)
}

/// [`verify_root_self`] with a [`SignatureCache`]: a signature it
/// remembers counts without being verified again.
pub fn verify_root_self_cached(
    new: Envelope<Root>,
    cache: Option<&SignatureCache>,
) -> Result<Verified<Root>> {
    let own = Authority::from_root(&new.signed, RoleName::ROOT)?;
    own.check_cached(RoleName::ROOT, &new, cache)?;
    Ok(Verified { envelope: new })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use std::collections::BTreeMap;

    use super::*;
    use crate::datetime::Expires;
    use crate::keys::Scheme;
    use crate::metadata::Unrecognized;
    use crate::sign::{sign, to_bytes, InMemorySigner, Signer};

    fn targets(version: u64) -> Targets {
        Targets {
            type_: "targets".into(),
            spec_version: "1.0.31".into(),
            version,
            expires: Expires::new(time::macros::datetime!(2040-01-01 0:00 UTC)),
            targets: BTreeMap::new(),
            delegations: None,
            unrecognized: Unrecognized::new(),
        }
    }

    fn envelope(t: Targets, by: &InMemorySigner) -> Envelope<Targets> {
        let bytes = to_bytes(&sign(t, &[by]).unwrap()).unwrap();
        Envelope::parse("targets", &bytes).unwrap()
    }

    #[test]
    fn a_cached_signature_counts_only_for_the_same_key_message_and_signature() {
        let a = InMemorySigner::generate(Scheme::Ed25519).unwrap();
        let keys = BTreeMap::from([(a.key_id().clone(), a.public_key().clone())]);
        let keyids = [a.key_id().clone()];
        let authority = Authority {
            keys: &keys,
            keyids: &keyids,
            threshold: NonZeroU32::MIN,
        };
        let cache = SignatureCache::new();
        let good = envelope(targets(1), &a);
        authority
            .check_cached("targets", &good, Some(&cache))
            .unwrap();
        assert_eq!(cache.len(), 1);
        authority
            .check_cached("targets", &good, Some(&cache))
            .unwrap();
        assert_eq!(cache.len(), 1, "remembered, not added again");

        // The same signature over one changed byte of the message.
        let mut changed = good.clone();
        let last = changed.canonical.len() - 2;
        changed.canonical[last] ^= 1;
        assert!(authority
            .check_cached("targets", &changed, Some(&cache))
            .is_err());
        // A changed signature over the same message.
        let mut forged = good.clone();
        let mut raw = hex::decode(&forged.signatures[0].sig).unwrap();
        raw[0] ^= 1;
        forged.signatures[0].sig = hex::encode(raw);
        assert!(authority
            .check_cached("targets", &forged, Some(&cache))
            .is_err());
        // The signature (valid for a's key) claimed for another key under
        // the same id.
        let b = InMemorySigner::generate(Scheme::Ed25519).unwrap();
        let other_keys = BTreeMap::from([(a.key_id().clone(), b.public_key().clone())]);
        let other = Authority {
            keys: &other_keys,
            keyids: &keyids,
            threshold: NonZeroU32::MIN,
        };
        assert!(other.check_cached("targets", &good, Some(&cache)).is_err());
        // Failures are not remembered.
        assert_eq!(cache.len(), 1);
    }
}
