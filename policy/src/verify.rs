//! Threshold signature verification, and the only way to make a [`Verified`] value.

use std::collections::{BTreeMap, BTreeSet};
use std::num::NonZeroU32;
use std::ops::Deref;

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
}

impl<T> Deref for Verified<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.envelope.signed
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

    /// Counts distinct authorised keys with a valid signature over
    /// `canonical`: distinct key *material*, so one key listed under two
    /// ids counts once (a role's keys are listed by id, and nothing stops a
    /// root from listing the same key twice).
    ///
    /// Stops as soon as the threshold is reached. Returns the count and the
    /// first authorised key whose signature did not verify.
    fn count(&self, signatures: &[Signature], canonical: &[u8]) -> (u32, Option<KeyId>) {
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
                Ok(raw) => key.verify(&sig.keyid, canonical, &raw).unwrap_or(false),
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
        let (valid, bad) = self.count(&envelope.signatures, &envelope.canonical);
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
        self.check(role, &envelope)?;
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
    let own = Authority::from_root(&new.signed, RoleName::ROOT)?;
    own.check(RoleName::ROOT, &new)?;
    Ok(Verified { envelope: new })
}
