//! [`Change`]: what an admin, a maintainer or the system asks to change,
//! how each change applies itself to the store ([`Change::apply`]) and
//! what it says in the audit log ([`Effect::entry`]). A new change kind
//! is a variant here, its arm in `apply` (store calls, audit entry, what to
//! rebuild), and its arm in [`Change::namespace`]; the publish skeleton
//! does the rest. The checks on changes people make are in `checks.rs`.

use std::collections::BTreeSet;
use std::num::NonZeroU32;

use serde_json::{json, Value};

use keyshare_policy::datetime::rfc3339;
use keyshare_policy::metadata::KeyId;
use keyshare_policy::pattern::ArtifactPattern;
use keyshare_policy::trust::{
    NamespaceEntry, NamespaceName, Peer, Revocation, RevokedSubject, Sha256Hex, SubDelegation,
    TrustedKey, TrustedTsa, X509Identity,
};

use crate::store::{self, CiOwner, Listing, OverlapRule, SingleUse, Tx};

use super::audit::Entry;
use super::stage::Affected;
use super::PublishError;

/// One change an admin, a maintainer or the system asks for.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Change {
    /// A new namespace with its scopes and maintainers.
    CreateNamespace {
        /// Name, scopes, maintainers.
        entry: NamespaceEntry,
        /// Distinct signatures its artifacts need.
        threshold: NonZeroU32,
        /// Create it even if a scope overlaps another namespace's (an
        /// admin said so explicitly); otherwise such a create is refused
        /// with `store::Error::ScopeOverlap`. The audit record lists the
        /// overlaps either way.
        allow_overlap: bool,
    },
    /// Removes a namespace and everything in it.
    DeleteNamespace {
        /// The namespace.
        namespace: NamespaceName,
    },
    /// Changes a namespace's threshold.
    SetThreshold {
        /// The namespace.
        namespace: NamespaceName,
        /// The new threshold.
        threshold: NonZeroU32,
    },
    /// Widens a namespace: adds artifact patterns to its scopes.
    AddScopes {
        /// The namespace.
        namespace: NamespaceName,
        /// The patterns to add (none of them a scope of it already).
        scopes: Vec<ArtifactPattern>,
        /// Add them even if one overlaps another namespace's scope (an
        /// admin said so explicitly); otherwise refused with
        /// `store::Error::ScopeOverlap`. The audit record lists the
        /// overlaps either way.
        allow_overlap: bool,
    },
    /// Lists a signing key in a namespace.
    AddKey {
        /// The namespace.
        namespace: NamespaceName,
        /// The key.
        key: TrustedKey,
    },
    /// Lists a CI job's ephemeral key (a CI delegation): the key with its
    /// principal, who asked for it, and the nonce and ID token it was
    /// granted for, used up, all in one change.
    DelegateCi {
        /// The namespace.
        namespace: NamespaceName,
        /// The key: ephemeral, with `not_after` and a principal.
        key: TrustedKey,
        /// Who asked, exactly (decides who may end it early; not published).
        owner: CiOwner,
        /// Values that grant one delegation only; refused with
        /// [`PublishError::Used`] when one was used before.
        single_use: Vec<SingleUse>,
    },
    /// Removes a signing key from a namespace.
    RemoveKey {
        /// The namespace.
        namespace: NamespaceName,
        /// The key's id.
        key_id: KeyId,
    },
    /// Lists an X.509 identity in a namespace.
    AddIdentity {
        /// The namespace.
        namespace: NamespaceName,
        /// The identity.
        identity: X509Identity,
    },
    /// Removes an X.509 identity.
    RemoveIdentity {
        /// The namespace.
        namespace: NamespaceName,
        /// The identity's name.
        name: String,
    },
    /// Adds a sub-delegation to a namespace.
    AddSubDelegation {
        /// The namespace.
        namespace: NamespaceName,
        /// The sub-delegation.
        sub_delegation: SubDelegation,
    },
    /// Removes a sub-delegation.
    RemoveSubDelegation {
        /// The namespace.
        namespace: NamespaceName,
        /// Its name.
        name: String,
    },
    /// A namespace revokes one of its keys (by its material) for its own
    /// artifacts: published in the namespace's trust document, applied in
    /// that namespace only.
    RevokeNamespaceKey {
        /// The namespace.
        namespace: NamespaceName,
        /// What (a key, by fingerprint), when and why.
        revocation: Revocation,
        /// The id the key is listed under (a note, never published).
        key_id: Option<KeyId>,
    },
    /// Withdraws a namespace's own revocation of a key (an org admin's
    /// correction of a mistake).
    RemoveNamespaceRevocation {
        /// The namespace.
        namespace: NamespaceName,
        /// The key's fingerprint.
        fingerprint: Sha256Hex,
    },
    /// Revokes a key (by its material) or certificate organization-wide.
    AddRevocation {
        /// What, when and why.
        revocation: Revocation,
        /// Where the admin named the key (a note kept with the revocation,
        /// never published).
        listed_as: Option<Listing>,
    },
    /// Adds or replaces a peer service.
    PutPeer {
        /// The peer.
        peer: Peer,
    },
    /// Removes a peer service.
    RemovePeer {
        /// Its name.
        name: String,
    },
    /// Adds or replaces an organization X.509 root certificate.
    PutOrgRoot {
        /// Its name.
        name: String,
        /// The certificate, PEM.
        pem: String,
    },
    /// Removes an organization root certificate.
    RemoveOrgRoot {
        /// Its name.
        name: String,
    },
    /// Adds or replaces a trusted timestamp authority (`org/tsas.json`).
    PutTsa {
        /// The entry.
        tsa: TrustedTsa,
    },
    /// Removes a trusted timestamp authority.
    RemoveTsa {
        /// Its name.
        name: String,
    },
}

/// What applying a change did: its audit entry and what to rebuild.
#[derive(Debug)]
pub(super) struct Effect {
    /// The change's audit record, without its actor.
    pub(super) entry: Entry,
    /// The documents and delegations it affects.
    pub(super) affected: Affected,
}

impl Effect {
    fn new(
        action: &'static str,
        subject: impl Into<String>,
        details: Value,
        affected: Affected,
    ) -> Self {
        Self {
            entry: Entry {
                action,
                subject: subject.into(),
                details,
            },
            affected,
        }
    }
}

impl Change {
    /// Applies the change to the store; returns its audit entry and what
    /// to rebuild.
    pub(super) fn apply(&self, tx: &mut Tx<'_>) -> Result<Effect, PublishError> {
        Ok(match self {
            Change::CreateNamespace {
                entry,
                threshold,
                allow_overlap,
            } => {
                let overlaps = tx.create_namespace_with(entry, *threshold, rule(*allow_overlap))?;
                let affected = Affected {
                    shards: BTreeSet::from([store::namespace_shard(&entry.name)]),
                    namespaces: BTreeSet::from([entry.name.clone()]),
                    ..Affected::default()
                };
                let mut details = json!({ "scopes": entry.scopes, "maintainers": entry.maintainers, "threshold": threshold });
                note_overlaps(&mut details, *allow_overlap, &overlaps)?;
                Effect::new(
                    "namespace.create",
                    entry.name.to_string(),
                    details,
                    affected,
                )
            }
            Change::DeleteNamespace { namespace } => {
                let revoked = tx.delete_namespace(namespace.as_str())?;
                let affected = Affected {
                    shards: BTreeSet::from([store::namespace_shard(namespace)]),
                    deleted: BTreeSet::from([namespace.clone()]),
                    ..Affected::default()
                };
                Effect::new(
                    "namespace.delete",
                    namespace.to_string(),
                    json!({ "tokens_revoked": revoked }),
                    affected,
                )
            }
            Change::SetThreshold {
                namespace,
                threshold,
            } => {
                tx.set_threshold(namespace.as_str(), *threshold)?;
                Effect::new(
                    "namespace.threshold",
                    namespace.to_string(),
                    json!({ "threshold": threshold }),
                    Affected::namespace(namespace),
                )
            }
            Change::AddScopes {
                namespace,
                scopes,
                allow_overlap,
            } => {
                let current = tx.namespace(namespace.as_str())?;
                let mut entry = current.entry.clone();
                for scope in scopes {
                    if entry.scopes.contains(scope) {
                        return Err(store::Error::invalid(
                            "scopes",
                            format!("`{scope}` is already a scope of namespace `{namespace}`"),
                        )
                        .into());
                    }
                    entry.scopes.push(scope.clone());
                }
                let overlaps =
                    tx.update_namespace_with(&entry, current.threshold, rule(*allow_overlap))?;
                let affected = Affected {
                    shards: BTreeSet::from([store::namespace_shard(&entry.name)]),
                    ..Affected::namespace(namespace)
                };
                let mut details = json!({ "added": scopes, "scopes": entry.scopes });
                note_overlaps(&mut details, *allow_overlap, &overlaps)?;
                Effect::new("namespace.scopes", namespace.to_string(), details, affected)
            }
            Change::AddKey { namespace, key } => {
                tx.add_key(namespace, key)?;
                Effect::new(
                    "key.add",
                    format!("{namespace}/{}", key.id),
                    json!({ "key": key.key, "not_before": key.not_before.map(rfc3339), "not_after": key.not_after.map(rfc3339), "ephemeral": key.ephemeral }),
                    Affected::namespace(namespace),
                )
            }
            Change::DelegateCi {
                namespace,
                key,
                owner,
                single_use,
            } => {
                if !key.ephemeral || key.not_after.is_none() {
                    return Err(store::Error::invalid(
                        "key",
                        "a CI delegation lists an ephemeral key with not_after",
                    )
                    .into());
                }
                for value in single_use {
                    if !tx.use_once(value)? {
                        return Err(PublishError::Used(value.kind));
                    }
                }
                tx.add_key(namespace, key)?;
                tx.set_ci_owner(namespace, key.id.as_str(), owner)?;
                Effect::new(
                    "key.add",
                    format!("{namespace}/{}", key.id),
                    json!({ "key": key.key, "not_before": key.not_before.map(rfc3339), "not_after": key.not_after.map(rfc3339), "ephemeral": key.ephemeral, "principal": key.principal }),
                    Affected::namespace(namespace),
                )
            }
            Change::RemoveKey { namespace, key_id } => {
                tx.remove_key(namespace.as_str(), key_id.as_str())?;
                Effect::new(
                    "key.remove",
                    format!("{namespace}/{key_id}"),
                    Value::Null,
                    Affected::namespace(namespace),
                )
            }
            Change::AddIdentity {
                namespace,
                identity,
            } => {
                tx.add_identity(namespace, identity)?;
                Effect::new(
                    "identity.add",
                    format!("{namespace}/{}", identity.name),
                    json!({ "subject": identity.subject.to_string() }),
                    Affected::namespace(namespace),
                )
            }
            Change::RemoveIdentity { namespace, name } => {
                tx.remove_identity(namespace.as_str(), name)?;
                Effect::new(
                    "identity.remove",
                    format!("{namespace}/{name}"),
                    Value::Null,
                    Affected::namespace(namespace),
                )
            }
            Change::AddSubDelegation {
                namespace,
                sub_delegation,
            } => {
                tx.add_sub_delegation(namespace, sub_delegation)?;
                Effect::new(
                    "sub_delegation.add",
                    format!("{namespace}/{}", sub_delegation.name),
                    json!({ "scopes": sub_delegation.scopes, "threshold": sub_delegation.threshold }),
                    Affected::namespace(namespace),
                )
            }
            Change::RemoveSubDelegation { namespace, name } => {
                tx.remove_sub_delegation(namespace.as_str(), name)?;
                Effect::new(
                    "sub_delegation.remove",
                    format!("{namespace}/{name}"),
                    Value::Null,
                    Affected::namespace(namespace),
                )
            }
            Change::RevokeNamespaceKey {
                namespace,
                revocation,
                key_id,
            } => {
                tx.add_namespace_revocation(
                    namespace,
                    revocation,
                    key_id.as_ref().map(KeyId::as_str),
                )?;
                Effect::new(
                    "namespace_revocation.add",
                    format!("{namespace}/{}", revocation.subject),
                    json!({
                        "revoked_at": rfc3339(revocation.revoked_at),
                        "reason": revocation.reason,
                        "key_id": key_id,
                    }),
                    Affected::namespace(namespace),
                )
            }
            Change::RemoveNamespaceRevocation {
                namespace,
                fingerprint,
            } => {
                let existing = tx
                    .namespace_revocation(namespace.as_str(), fingerprint)?
                    .ok_or_else(|| store::Error::NotFound {
                        kind: "revocation",
                        name: format!("{namespace}/key with SPKI SHA-256 {fingerprint}"),
                    })?;
                tx.remove_namespace_revocation(namespace.as_str(), fingerprint)?;
                Effect::new(
                    "namespace_revocation.remove",
                    format!("{namespace}/{}", existing.revocation.subject),
                    json!({
                        "revoked_at": rfc3339(existing.revocation.revoked_at),
                        "reason": existing.revocation.reason,
                        "key_id": existing.key_id,
                    }),
                    Affected::namespace(namespace),
                )
            }
            Change::AddRevocation {
                revocation,
                listed_as,
            } => {
                tx.add_revocation(revocation, listed_as.as_ref())?;
                let (subject, listed_in) = match &revocation.subject {
                    RevokedSubject::Key(h) => (format!("key {h}"), tx.listings(h)?),
                    RevokedSubject::Certificate(h) => (format!("certificate {h}"), Vec::new()),
                };
                Effect::new(
                    "revocation.add",
                    subject,
                    json!({
                        "revoked_at": rfc3339(revocation.revoked_at),
                        "reason": revocation.reason,
                        "named_as": listed_as,
                        "listed_in": listed_in,
                    }),
                    Affected {
                        revocations: true,
                        ..Affected::default()
                    },
                )
            }
            Change::PutPeer { peer } => {
                let created = tx.put_peer(peer)?;
                Effect::new(
                    if created {
                        "peer.create"
                    } else {
                        "peer.update"
                    },
                    peer.name.clone(),
                    json!({ "patterns": peer.patterns, "url": peer.url, "terminating": peer.terminating }),
                    Affected {
                        peers: true,
                        ..Affected::default()
                    },
                )
            }
            Change::RemovePeer { name } => {
                tx.remove_peer(name)?;
                Effect::new(
                    "peer.remove",
                    name.clone(),
                    Value::Null,
                    Affected {
                        peers: true,
                        ..Affected::default()
                    },
                )
            }
            Change::PutOrgRoot { name, pem } => {
                let created = tx.put_org_root(name, pem)?;
                Effect::new(
                    if created {
                        "root_cert.create"
                    } else {
                        "root_cert.update"
                    },
                    name.clone(),
                    Value::Null,
                    Affected {
                        roots_put: vec![(name.clone(), pem.clone())],
                        ..Affected::default()
                    },
                )
            }
            Change::RemoveOrgRoot { name } => {
                tx.remove_org_root(name)?;
                Effect::new(
                    "root_cert.remove",
                    name.clone(),
                    Value::Null,
                    Affected {
                        roots_removed: vec![name.clone()],
                        ..Affected::default()
                    },
                )
            }
            Change::PutTsa { tsa } => {
                let created = tx.put_tsa(tsa)?;
                Effect::new(
                    if created { "tsa.create" } else { "tsa.update" },
                    tsa.name.clone(),
                    json!({ "certificate_sha256": tsa.certificate.sha256() }),
                    Affected {
                        tsas: true,
                        ..Affected::default()
                    },
                )
            }
            Change::RemoveTsa { name } => {
                tx.remove_tsa(name)?;
                Effect::new(
                    "tsa.remove",
                    name.clone(),
                    Value::Null,
                    Affected {
                        tsas: true,
                        ..Affected::default()
                    },
                )
            }
        })
    }

    /// The namespace the change touches, `None` for org-wide changes.
    pub(super) fn namespace(&self) -> Option<&NamespaceName> {
        match self {
            Change::CreateNamespace { entry, .. } => Some(&entry.name),
            Change::DeleteNamespace { namespace }
            | Change::SetThreshold { namespace, .. }
            | Change::AddScopes { namespace, .. }
            | Change::AddKey { namespace, .. }
            | Change::DelegateCi { namespace, .. }
            | Change::RemoveKey { namespace, .. }
            | Change::AddIdentity { namespace, .. }
            | Change::RemoveIdentity { namespace, .. }
            | Change::AddSubDelegation { namespace, .. }
            | Change::RemoveSubDelegation { namespace, .. }
            | Change::RevokeNamespaceKey { namespace, .. }
            | Change::RemoveNamespaceRevocation { namespace, .. } => Some(namespace),
            Change::AddRevocation { .. }
            | Change::PutPeer { .. }
            | Change::RemovePeer { .. }
            | Change::PutOrgRoot { .. }
            | Change::RemoveOrgRoot { .. }
            | Change::PutTsa { .. }
            | Change::RemoveTsa { .. } => None,
        }
    }
}

/// How a change that asked (or not) to allow scope overlaps treats them.
fn rule(allow_overlap: bool) -> OverlapRule {
    if allow_overlap {
        OverlapRule::Allow
    } else {
        OverlapRule::Refuse
    }
}

/// Adds to an audit record's details that overlaps were allowed, and which.
fn note_overlaps(
    details: &mut Value,
    allowed: bool,
    overlaps: &store::ScopeOverlaps,
) -> Result<(), store::Error> {
    if let Value::Object(map) = details {
        if allowed {
            map.insert("allow_overlap".into(), Value::Bool(true));
        }
        if !overlaps.is_empty() {
            map.insert(
                "overlaps".into(),
                serde_json::to_value(overlaps)
                    .map_err(|e| store::Error::invalid("overlaps", e.to_string()))?,
            );
        }
    }
    Ok(())
}
