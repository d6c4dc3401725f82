//! Counting a threshold by principal: signers that share key material, a
//! named principal or the identity rule their certificates matched count
//! once.

use crate::hash::Sha256Hex;
use crate::metadata::KeyId;
use crate::trust::namespace::Principal;

use super::reason::{Counted, Listed};

/// One rule a signer can count towards: the namespace's own keys and
/// identities, or a sub-delegation (by index) covering the artifact.
#[derive(Clone, Copy, Debug)]
pub(super) enum RuleId {
    Own,
    Sub(usize),
}

/// A signer counting towards the rule at position `rule`.
pub(super) struct Contribution {
    pub(super) rule: usize,
    /// The fingerprint of the key that signed (the leaf's key for a chain).
    pub(super) fingerprint: Sha256Hex,
    /// Who holds it.
    pub(super) principal: PrincipalId,
    pub(super) listed: Listed,
}

/// Who holds a signing key, for counting a threshold by holders.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum PrincipalId {
    /// A key that names no principal is its own (by fingerprint).
    OwnKey,
    /// A principal the document names on its keys (e.g. one CI identity).
    Named(Principal),
    /// Every leaf an X.509 identity rule matches is one holder: the identity.
    Identity(String),
}

/// One principal that counted towards a threshold, with what it signed with.
#[derive(Default)]
pub(super) struct Group {
    pub(super) fingerprints: Vec<Sha256Hex>,
    pub(super) principal: Option<PrincipalId>,
    pub(super) listed: Vec<Listed>,
}

/// Distinct principals contributing to one rule. Two signers are the same
/// principal when they share key material, a named principal, or the
/// identity rule that matched their certificates.
#[derive(Default)]
pub(super) struct Tally {
    pub(super) groups: Vec<Group>,
}

impl Tally {
    pub(super) fn add(&mut self, c: Contribution) {
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

    pub(super) fn count(&self) -> u32 {
        u32::try_from(self.groups.len()).unwrap_or(u32::MAX)
    }

    /// The principals, for [`TrustRule`].
    pub(super) fn counted(&self) -> Vec<Counted> {
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
