//! What a change makes the repository rebuild: the documents it affects,
//! built from the store and staged in the repository (each trust document
//! in the bin its path hashes to); the bins; and the migration of a
//! repository whose bins delegate to namespace roles (the layout is
//! described in the publisher's module documentation).

use std::collections::{BTreeMap, BTreeSet};
use std::num::NonZeroU32;

use time::OffsetDateTime;

use keyshare_policy::metadata::{RoleName, SuccinctRoles};
use keyshare_policy::repo::{File, Repository};
use keyshare_policy::trust::{
    namespace_bins_of, shard_path, NamespaceName, PEERS_PATH, REVOCATIONS_PATH, TSAS_PATH,
};

use crate::store::Tx;

use super::{OnlineKeys, PublishError};

/// What a change touched, so the publisher knows what to rebuild.
#[derive(Debug, Default)]
pub(super) struct Affected {
    /// Index shards (0–255, [`keyshare_policy::trust::namespace_shard`])
    /// to rebuild.
    pub(super) shards: BTreeSet<u64>,
    pub(super) revocations: bool,
    pub(super) peers: bool,
    /// `org/tsas.json`.
    pub(super) tsas: bool,
    pub(super) deleted: BTreeSet<NamespaceName>,
    pub(super) namespaces: BTreeSet<NamespaceName>,
    pub(super) roots_put: Vec<(String, String)>,
    pub(super) roots_removed: Vec<String>,
    /// Trust documents already built and checked in this transaction
    /// ([`check_documents`]) after the last change to their namespace,
    /// so staging does not build them again.
    pub(super) built: BTreeMap<NamespaceName, Vec<u8>>,
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
        self.tsas |= other.tsas;
        self.deleted.extend(other.deleted);
        self.namespaces.extend(other.namespaces);
        self.roots_put.extend(other.roots_put);
        self.roots_removed.extend(other.roots_removed);
        // `other` comes later: its documents are the newer ones.
        self.built.extend(other.built);
    }
}

/// The hashed bins top-level targets delegates to, `bit_length` bits,
/// signed with the online targets key.
pub(super) fn bins(keys: &OnlineKeys, bit_length: u32) -> SuccinctRoles {
    namespace_bins_of(
        bit_length,
        vec![keys.targets.key_id().clone()],
        NonZeroU32::MIN,
    )
}

/// The hashed bins `repo` delegates to from top-level targets (as staged:
/// the published `succinct_roles` is the record of the bin count).
pub(super) fn current_bins(repo: &Repository) -> Result<SuccinctRoles, PublishError> {
    repo.staged(RoleName::TARGETS)
        .and_then(|t| t.delegations.as_ref())
        .and_then(|d| d.succinct_roles.clone())
        .ok_or_else(|| PublishError::Layout("top-level targets delegates to no hashed bins".into()))
}

/// Delegates from `targets` to `bit_length` bits of bins, signed with the
/// online targets key (at init, and again when a root rotation changed that
/// key).
pub(super) fn delegate_bins(
    repo: &mut Repository,
    keys: &OnlineKeys,
    bit_length: u32,
    now: OffsetDateTime,
) -> Result<(), PublishError> {
    repo.delegate_succinct(
        RoleName::TARGETS,
        bins(keys, bit_length),
        vec![(
            keys.targets.key_id().clone(),
            keys.targets.public_key().clone(),
        )],
        vec![keys.targets.clone()],
        now,
    )?;
    Ok(())
}

/// The namespaces that still have a role of their own delegated from a
/// bin (a repository published before trust documents were listed in the
/// bins), by bin.
pub(super) fn legacy_roles(
    repo: &Repository,
) -> Result<Vec<(RoleName, Vec<RoleName>)>, PublishError> {
    let layout = current_bins(repo)?;
    Ok(layout
        .bin_names()
        .filter_map(|bin| {
            let roles: Vec<RoleName> = repo
                .staged(bin.as_str())?
                .delegations
                .as_ref()?
                .roles
                .iter()
                .flatten()
                .map(|r| r.name.clone())
                .collect();
            (!roles.is_empty()).then_some((bin, roles))
        })
        .collect())
}

/// Stages the migration of a repository whose bins delegate to namespace
/// roles: every namespace role is undelegated (it stays in snapshot at its
/// last version, frozen: never re-signed or read again) and every trust
/// document it listed is listed, as published, in the bin its path hashes
/// to. Returns how many roles were undelegated and trust documents moved.
pub(super) fn stage_migration(repo: &mut Repository) -> Result<(usize, usize), PublishError> {
    let layout = current_bins(repo)?;
    let mut undelegated = 0;
    let mut moved = 0;
    for (_, roles) in legacy_roles(repo)? {
        for role in roles {
            let paths: Vec<String> = repo
                .staged(role.as_str())
                .map(|t| t.targets.keys().cloned().collect())
                .unwrap_or_default();
            for path in paths {
                let bin = layout.role_for_target(&path);
                if repo.copy_target(role.as_str(), bin.as_str(), &path)? {
                    moved += 1;
                }
            }
            repo.undelegate(role.as_str())?;
            undelegated += 1;
        }
    }
    Ok((undelegated, moved))
}

/// The target path of an org root certificate.
fn org_root_path(name: &str) -> String {
    format!("org/roots/{name}.pem")
}

/// Builds, and so checks with the policy parser, every document `affected`
/// names, staging nothing. The trust documents built are kept in
/// `affected.built` for [`stage`]: whoever calls this must stage in the
/// same transaction, with no change to those namespaces in between.
pub(super) fn check_documents(tx: &Tx<'_>, affected: &mut Affected) -> Result<(), PublishError> {
    for &bin in &affected.shards {
        tx.namespaces_shard(bin)?;
    }
    if affected.revocations {
        tx.revocations_document()?;
    }
    if affected.peers {
        tx.peers_document()?;
    }
    if affected.tsas {
        tx.tsas_document()?;
    }
    for ns in &affected.namespaces {
        if !affected.deleted.contains(ns) {
            let bytes = tx.namespace_document_bytes(ns.as_str())?;
            affected.built.insert(ns.clone(), bytes);
        }
    }
    Ok(())
}

/// Rebuilds the documents `affected` names and stages them in `repo`;
/// returns the target files to publish. A namespace's trust document is
/// listed directly in the bin its path hashes to.
pub(super) fn stage(
    tx: &mut Tx<'_>,
    repo: &mut Repository,
    affected: &Affected,
) -> Result<Vec<File>, PublishError> {
    let mut files = Vec::new();
    let layout = current_bins(repo)?;
    for ns in &affected.deleted {
        let path = ns.target_path();
        repo.remove_target(layout.role_for_target(&path).as_str(), &path)?;
        // A role of its own (an unmigrated repository) goes too.
        if repo.delegator(ns.as_str()).is_some() {
            repo.undelegate(ns.as_str())?;
        }
    }
    for &shard_no in &affected.shards {
        let path = shard_path(shard_no);
        let shard = tx.namespaces_shard(shard_no)?;
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
    if affected.tsas {
        let bytes = tx.tsas_document()?.to_vec()?;
        files.push(repo.set_target(RoleName::TARGETS, TSAS_PATH, &bytes, None)?);
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
        let bytes = match affected.built.get(ns) {
            Some(bytes) => bytes.clone(),
            None => tx.namespace_document_bytes(ns.as_str())?,
        };
        let path = ns.target_path();
        let bin = layout.role_for_target(&path);
        files.push(repo.set_target(bin.as_str(), &path, &bytes, None)?);
    }
    Ok(files)
}
