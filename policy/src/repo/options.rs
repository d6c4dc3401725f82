//! The repository's options and the specs of a new root's top-level roles.

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::sync::Arc;

use time::{Duration, OffsetDateTime};

use crate::datetime::Expires;
use crate::error::{Error, Result};
use crate::keys::Key;
use crate::metadata::{
    KeyId, Role, RoleKeys, RoleName, Root, Targets, Unrecognized, SPEC_VERSION, TOP_LEVEL_ROLES,
};
use crate::sign::Signer;

/// A signer shared between the repository and whoever else holds it.
pub type SharedSigner = Arc<dyn Signer>;

/// How long each role's metadata stays valid after it is signed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Expiries {
    /// Root: one year.
    pub root: Duration,
    /// Top-level targets: 90 days.
    pub targets: Duration,
    /// Delegated (namespace) roles: 90 days.
    pub delegated: Duration,
    /// Snapshot: 7 days.
    pub snapshot: Duration,
    /// Timestamp: 1 day.
    pub timestamp: Duration,
}

impl Default for Expiries {
    fn default() -> Self {
        Self {
            root: Duration::days(365),
            targets: Duration::days(90),
            delegated: Duration::days(90),
            snapshot: Duration::days(7),
            timestamp: Duration::days(1),
        }
    }
}

/// Repository options.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// Expiry periods.
    pub expiries: Expiries,
    /// List length and SHA-256 of every role in snapshot (default: versions only).
    pub snapshot_hashes: bool,
}

/// Keys and threshold of one top-level role, for a new root.
#[derive(Clone, Debug)]
pub struct RoleSpec {
    /// Public keys of the role, by id.
    pub keys: Vec<(KeyId, Key)>,
    /// Distinct signatures needed.
    pub threshold: NonZeroU32,
}

impl RoleSpec {
    /// A role held by `signers`, threshold `threshold`.
    pub fn from_signers(signers: &[SharedSigner], threshold: u32) -> Result<Self> {
        let threshold = NonZeroU32::new(threshold)
            .ok_or_else(|| Error::Sign("threshold must be at least 1".into()))?;
        if signers.len() < threshold.get() as usize {
            return Err(Error::Sign(format!(
                "threshold {threshold} is more than the {} key(s) given",
                signers.len()
            )));
        }
        Ok(Self {
            keys: signers
                .iter()
                .map(|s| (s.key_id().clone(), s.public_key().clone()))
                .collect(),
            threshold,
        })
    }
}

/// Builds an unsigned root from the four top-level role specs.
pub fn build_root(
    version: u64,
    expires: OffsetDateTime,
    roles: [(&str, &RoleSpec); 4],
) -> Result<Root> {
    let mut keys = BTreeMap::new();
    let mut role_map = BTreeMap::new();
    for (name, spec) in roles {
        if !TOP_LEVEL_ROLES.contains(&name) {
            return Err(Error::Sign(format!("`{name}` is not a top-level role")));
        }
        for (id, key) in &spec.keys {
            key.check(id)?;
            keys.insert(id.clone(), key.clone());
        }
        role_map.insert(
            RoleName::new(name),
            RoleKeys {
                keyids: spec.keys.iter().map(|(id, _)| id.clone()).collect(),
                threshold: spec.threshold,
                unrecognized: Unrecognized::new(),
            },
        );
    }
    Ok(Root {
        type_: Root::TYPE.into(),
        spec_version: SPEC_VERSION.into(),
        version,
        expires: Expires::new(expires),
        consistent_snapshot: Some(true),
        keys,
        roles: role_map,
        unrecognized: Unrecognized::new(),
    })
}

/// An empty targets role.
pub fn empty_targets(version: u64, expires: OffsetDateTime) -> Targets {
    Targets {
        type_: Targets::TYPE.into(),
        spec_version: SPEC_VERSION.into(),
        version,
        expires: Expires::new(expires),
        targets: BTreeMap::new(),
        delegations: None,
        unrecognized: Unrecognized::new(),
    }
}
