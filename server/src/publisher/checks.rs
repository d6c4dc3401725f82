//! Checks on a [`Change`] beyond what the store refuses: what a change
//! people make ([`Publisher::apply`](super::Publisher::apply)) must not
//! leave behind, and a refusal said better than the document check says
//! it.

use std::collections::BTreeSet;

use keyshare_policy::metadata::KeyId;

use crate::store::{self, Tx};

use super::{Change, PublishError};

impl Change {
    /// For a change people make: true when it removes a long-lived (not
    /// ephemeral) key or an identity. Read before the change.
    pub(super) fn removes_long_lived(&self, tx: &Tx<'_>) -> Result<bool, PublishError> {
        Ok(match self {
            Change::RemoveKey { namespace, key_id } => {
                match tx.key(namespace.as_str(), key_id.as_str()) {
                    Ok(k) => !k.key.ephemeral,
                    // The change itself reports what is missing.
                    Err(store::Error::NotFound { .. }) => false,
                    Err(e) => return Err(e.into()),
                }
            }
            Change::RemoveIdentity { .. } => true,
            _ => false,
        })
    }

    /// Refuses a change people make that leaves a namespace with a
    /// threshold above the distinct keys and identities it lists (keys with
    /// one principal count once): setting such a threshold, or removing a
    /// long-lived key or an identity. A namespace listing nothing trusts no
    /// one whatever its threshold. The expiry sweep and CI jobs ending
    /// their delegations are not checked: they may leave a namespace so,
    /// and verifiers then decide `ThresholdNotMet`.
    pub(super) fn check_reachable(
        &self,
        tx: &Tx<'_>,
        removes_long_lived: bool,
    ) -> Result<(), PublishError> {
        let namespace = match self {
            Change::SetThreshold { namespace, .. } => namespace,
            Change::RemoveKey { namespace, .. } | Change::RemoveIdentity { namespace, .. }
                if removes_long_lived =>
            {
                namespace
            }
            _ => return Ok(()),
        };
        let threshold = tx.namespace(namespace.as_str())?.threshold;
        let mut principals = BTreeSet::new();
        let mut signers: u64 = 0;
        for k in tx.keys(namespace.as_str())? {
            if k.key.principal.is_none_or(|p| principals.insert(p)) {
                signers += 1;
            }
        }
        signers += u64::try_from(tx.identities(namespace.as_str())?.len()).unwrap_or(u64::MAX);
        if signers == 0 || u64::from(threshold.get()) <= signers {
            return Ok(());
        }
        let message = match self {
            Change::RemoveKey { key_id, .. } => format!(
                "removing key `{key_id}` would leave {signers} distinct keys and identities in \
                 namespace `{namespace}`, fewer than its threshold {threshold}; lower the threshold first"
            ),
            Change::RemoveIdentity { name, .. } => format!(
                "removing identity `{name}` would leave {signers} distinct keys and identities in \
                 namespace `{namespace}`, fewer than its threshold {threshold}; lower the threshold first"
            ),
            _ => format!(
                "threshold {threshold} is more than the {signers} distinct keys and identities \
                 listed in namespace `{namespace}`; list more first"
            ),
        };
        Err(store::Error::invalid("threshold", message).into())
    }

    /// Why the change broke its namespace's document, when that can be
    /// said better than the document check does: a key whose material is
    /// already listed under another id is a conflict naming that id. `tx`
    /// no longer holds the change.
    pub(super) fn explain_refusal(&self, tx: &Tx<'_>, e: PublishError) -> PublishError {
        let (Change::AddKey { namespace, key } | Change::DelegateCi { namespace, key, .. }) = self
        else {
            return e;
        };
        let Some(material) = key_material(&key.key, &key.id) else {
            return e;
        };
        let Ok(listed) = tx.keys(namespace.as_str()) else {
            return e;
        };
        let same = listed.iter().find(|r| {
            r.key.id != key.id && key_material(&r.key.key, &r.key.id).as_ref() == Some(&material)
        });
        match same {
            Some(other) => PublishError::SameKey {
                namespace: namespace.to_string(),
                key_id: key.id.to_string(),
                listed_as: other.key.id.to_string(),
            },
            None => e,
        }
    }
}

/// A key's material: its SubjectPublicKeyInfo DER, EC points uncompressed.
fn key_material(key: &keyshare_policy::keys::Key, id: &KeyId) -> Option<Vec<u8>> {
    key.material(id).ok().map(<[u8]>::to_vec)
}
