//! What a change makes the repository rebuild: the documents it affects,
//! built from the store and staged in the repository, and the delegations
//! of the namespaces it creates or deletes (the layout is described in the
//! publisher's module documentation).

use std::collections::BTreeSet;
use std::num::NonZeroU32;

use time::OffsetDateTime;

use keyshare_policy::metadata::{DelegatedRole, RoleName, SuccinctRoles, Unrecognized};
use keyshare_policy::pattern::PathPattern;
use keyshare_policy::repo::{File, Repository};
use keyshare_policy::trust::{
    namespace_bins, shard_path, NamespaceName, PEERS_PATH, REVOCATIONS_PATH,
};

use crate::store::{self, Tx};

use super::{OnlineKeys, PublishError};

/// What a change touched, so the publisher knows what to rebuild.
#[derive(Debug, Default)]
pub(super) struct Affected {
    /// Index shards (bin numbers) to rebuild.
    pub(super) shards: BTreeSet<u64>,
    pub(super) revocations: bool,
    pub(super) peers: bool,
    pub(super) created: BTreeSet<NamespaceName>,
    pub(super) deleted: BTreeSet<NamespaceName>,
    pub(super) namespaces: BTreeSet<NamespaceName>,
    pub(super) roots_put: Vec<(String, String)>,
    pub(super) roots_removed: Vec<String>,
}

impl Affected {
    /// A change inside the namespace `ns`: its document.
    pub(super) fn namespace(ns: &NamespaceName) -> Self {
        Self {
            namespaces: BTreeSet::from([ns.clone()]),
            ..Self::default()
        }
    }

    /// Adds what `other` affects (several changes in one publish).
    pub(super) fn absorb(&mut self, other: Affected) {
        self.shards.extend(other.shards);
        self.revocations |= other.revocations;
        self.peers |= other.peers;
        self.created.extend(other.created);
        self.deleted.extend(other.deleted);
        self.namespaces.extend(other.namespaces);
        self.roots_put.extend(other.roots_put);
        self.roots_removed.extend(other.roots_removed);
    }
}

/// The hashed bins top-level targets delegates to, signed with the online
/// targets key.
pub(super) fn bins(keys: &OnlineKeys) -> SuccinctRoles {
    namespace_bins(vec![keys.targets.key_id().clone()], NonZeroU32::MIN)
}

/// Delegates from `targets` to the bins, signed with the online targets key
/// (at init, and again when a root rotation changed that key).
pub(super) fn delegate_bins(
    repo: &mut Repository,
    keys: &OnlineKeys,
    now: OffsetDateTime,
) -> Result<(), PublishError> {
    repo.delegate_succinct(
        RoleName::TARGETS,
        bins(keys),
        vec![(
            keys.targets.key_id().clone(),
            keys.targets.public_key().clone(),
        )],
        vec![keys.targets.clone()],
        now,
    )?;
    Ok(())
}

/// The target path of an org root certificate.
fn org_root_path(name: &str) -> String {
    format!("org/roots/{name}.pem")
}

/// Builds, and so checks with the policy parser, every document `affected`
/// names, staging nothing.
pub(super) fn check_documents(tx: &Tx<'_>, affected: &Affected) -> Result<(), PublishError> {
    for &bin in &affected.shards {
        tx.namespaces_shard(bin)?;
    }
    if affected.revocations {
        tx.revocations_document()?;
    }
    if affected.peers {
        tx.peers_document()?;
    }
    for ns in &affected.namespaces {
        if !affected.deleted.contains(ns) {
            tx.namespace_document(ns.as_str())?;
        }
    }
    Ok(())
}

/// Rebuilds the documents `affected` names and stages them in `repo`;
/// returns the target files to publish.
pub(super) fn stage(
    tx: &mut Tx<'_>,
    repo: &mut Repository,
    affected: &Affected,
    keys: &OnlineKeys,
    now: OffsetDateTime,
) -> Result<Vec<File>, PublishError> {
    let mut files = Vec::new();
    for ns in &affected.deleted {
        repo.undelegate(ns.as_str())?;
    }
    let layout = bins(keys);
    for ns in &affected.created {
        let key = &keys.namespaces;
        let bin = layout.bin_name(store::namespace_bin(ns));
        repo.delegate(
            bin.as_str(),
            DelegatedRole {
                name: RoleName::new(ns.as_str()),
                keyids: vec![key.key_id().clone()],
                threshold: NonZeroU32::MIN,
                terminating: true,
                paths: Some(vec![PathPattern::new(&format!("namespaces/{ns}/*"))]),
                path_hash_prefixes: None,
                unrecognized: Unrecognized::new(),
            },
            vec![(key.key_id().clone(), key.public_key().clone())],
            vec![key.clone()],
            now,
        )?;
    }
    for &bin in &affected.shards {
        let path = shard_path(&layout, bin);
        let shard = tx.namespaces_shard(bin)?;
        if shard.namespaces.is_empty() {
            repo.remove_target(RoleName::TARGETS, &path)?;
        } else {
            files.push(repo.set_target(RoleName::TARGETS, &path, &shard.to_vec()?, None)?);
        }
    }
    if affected.revocations {
        let bytes = tx.revocations_document()?.to_vec()?;
        files.push(repo.set_target(RoleName::TARGETS, REVOCATIONS_PATH, &bytes, None)?);
    }
    if affected.peers {
        let bytes = tx.peers_document()?.to_vec()?;
        files.push(repo.set_target(RoleName::TARGETS, PEERS_PATH, &bytes, None)?);
    }
    for (name, pem) in &affected.roots_put {
        files.push(repo.set_target(
            RoleName::TARGETS,
            &org_root_path(name),
            pem.as_bytes(),
            None,
        )?);
    }
    for name in &affected.roots_removed {
        repo.remove_target(RoleName::TARGETS, &org_root_path(name))?;
    }
    for ns in &affected.namespaces {
        if affected.deleted.contains(ns) {
            continue;
        }
        let bytes = tx.namespace_document(ns.as_str())?.to_vec()?;
        files.push(repo.set_target(ns.as_str(), &ns.target_path(), &bytes, None)?);
    }
    Ok(files)
}
