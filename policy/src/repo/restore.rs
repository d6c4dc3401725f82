//! Rebuilding a repository from the files it last published, checked as a
//! client would check them.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::layout::{metadata_path, TIMESTAMP_PATH};
use crate::metadata::{
    Envelope, MetaFile, RoleName, Root, Signed, Snapshot, Targets, Timestamp, Unrecognized,
};
use crate::verify::Authority;

use super::options::{Options, SharedSigner};
use super::{signed_root, File, Published, Repository, TargetsRole};

impl Repository {
    /// Rebuilds a repository from what it last published (for a server that
    /// restarts): every root (version 1 first), the timestamp, the snapshot it
    /// lists and the latest version of every targets role the snapshot lists,
    /// by role name.
    ///
    /// Everything is checked as a client would, except expiry (a server that
    /// was down may restart with expired metadata and then re-sign it): the
    /// root chain, each role's signatures by the keys its delegator gives it,
    /// and the versions, lengths and hashes timestamp and snapshot list. A
    /// role no one delegates any more is kept as published (clients never
    /// read it). Nothing is staged afterwards.
    pub fn restore(
        published: &Published<'_>,
        signers: BTreeMap<RoleName, Vec<SharedSigner>>,
        options: Options,
    ) -> Result<Self> {
        use crate::verify::{verify_root_self, verify_root_successor};

        let (first, rest) = published
            .roots
            .split_first()
            .ok_or_else(|| Error::MissingRole {
                role: RoleName::new(RoleName::ROOT),
                message: "no published root to restore from".into(),
            })?;
        let mut root = verify_root_self(Envelope::<Root>::parse(RoleName::ROOT, first)?)?;
        if root.version != 1 {
            return Err(Error::RootVersion {
                expected: 1,
                received: root.version,
            });
        }
        for bytes in rest {
            let next =
                verify_root_successor(&root, Envelope::<Root>::parse(RoleName::ROOT, bytes)?)?;
            if next.version != root.version + 1 {
                return Err(Error::RootVersion {
                    expected: root.version + 1,
                    received: next.version,
                });
            }
            root = next;
        }
        let (timestamp, snapshot) = checked_top(&root, published)?;

        // Every role the snapshot lists, parsed and checked against its entry.
        let mut roles: BTreeMap<RoleName, Envelope<Targets>> = BTreeMap::new();
        for (file, meta) in &snapshot.signed.meta {
            let name = file.strip_suffix(".json").unwrap_or(file);
            roles.insert(RoleName::new(name), listed_role(published, name, meta)?.0);
        }
        let top = roles
            .get(RoleName::TARGETS)
            .ok_or_else(no_top_level_targets)?;
        Authority::from_root(&root, RoleName::TARGETS)?.check(RoleName::TARGETS, top)?;
        // Who delegates whom, then each delegated role checked by its delegator.
        let delegator_of = delegators(roles.iter().map(|(name, env)| (name, &env.signed)))?;
        for (child, parent) in &delegator_of {
            let (Some(parent_env), Some(child_env)) = (roles.get(parent), roles.get(child)) else {
                return Err(Error::MissingRole {
                    role: child.clone(),
                    message: format!("delegated by `{parent}` but not listed in snapshot"),
                });
            };
            Authority::from_delegator(&parent_env.signed, child.as_str())?
                .check(child.as_str(), child_env)?;
        }

        let mut targets = BTreeMap::new();
        for (name, env) in roles {
            let delegator = delegator_of.get(&name).cloned();
            targets.insert(name, published_role(env, delegator));
        }
        let timestamp_signed = signed(timestamp);
        let snapshot_signed = signed(snapshot);
        Ok(Self {
            options,
            root: signed_root(&root),
            root_history: published.roots.iter().map(|b| Arc::from(*b)).collect(),
            published_roots: published.roots.len(),
            targets,
            snapshot: Some((snapshot_signed, Arc::from(published.snapshot))),
            timestamp: Some((timestamp_signed, Arc::from(published.timestamp))),
            signers,
            pending: false,
        })
    }

    /// The roles snapshot file `snapshot` lists with another entry (version,
    /// length, hashes) than this repository's snapshot, or that this
    /// repository does not hold, with the version listed: the files
    /// [`Self::advance`] needs in `Published::targets`. Only parsed, not
    /// verified (that is [`Self::advance`]'s job).
    pub fn roles_to_load(&self, snapshot: &[u8]) -> Result<Vec<(String, u64)>> {
        let snapshot = Envelope::<Snapshot>::parse(RoleName::SNAPSHOT, snapshot)?;
        let ours = self.snapshot.as_ref().map(|(s, _)| &s.signed.meta);
        Ok(snapshot
            .signed
            .meta
            .into_iter()
            .filter(|(file, meta)| !self.holds(ours, file, meta))
            .map(|(file, meta)| {
                let name = file.strip_suffix(".json").unwrap_or(&file).to_owned();
                (name, meta.version)
            })
            .collect())
    }

    /// Whether this repository holds the role snapshot entry `file`/`meta`
    /// describes: its own snapshot lists the same entry and the role is
    /// published here.
    fn holds(
        &self,
        ours: Option<&BTreeMap<String, MetaFile>>,
        file: &str,
        meta: &MetaFile,
    ) -> bool {
        let name = file.strip_suffix(".json").unwrap_or(file);
        ours.and_then(|m| m.get(file)) == Some(meta)
            && self.targets.get(name).is_some_and(|r| {
                r.published.as_ref().map(|p| p.signed.version) == Some(meta.version)
            })
    }

    /// Moves this published repository forward to `newer`, what the same
    /// repository published since (another server sharing its store), with
    /// the work of [`Self::restore`] for what changed only: `newer`'s
    /// timestamp and snapshot are checked by this root's keys, and every
    /// role [`Self::roles_to_load`] names (given in `newer.targets`)
    /// against its snapshot entry and by its delegator's keys. A role the
    /// new snapshot lists as this repository's did is kept as it was
    /// verified, which holds as long as its delegator gives it the same
    /// keys and threshold.
    ///
    /// Returns the files taken in (the changed roles, the snapshot, the
    /// timestamp), or `None`, with nothing changed, where only
    /// [`Self::restore`] can rebuild the repository: `newer` has another
    /// root, this repository has staged changes, or a kept role's keys or
    /// delegator changed. On an error nothing is changed either; `newer`
    /// must be newer ([`Error::Rollback`] for a timestamp version this
    /// repository holds or passed).
    pub fn advance(&mut self, newer: &Published<'_>) -> Result<Option<Vec<File>>> {
        let same_roots = newer.roots.len() == self.root_history.len()
            && newer.roots.last().copied() == self.root_history.last().map(|r| &r[..]);
        if !same_roots || self.pending || self.targets.values().any(|r| r.dirty) {
            return Ok(None);
        }
        let root = &self.root.signed;
        let (timestamp, snapshot) = checked_top(root, newer)?;
        let held = self.timestamp.as_ref().map_or(0, |(t, _)| t.signed.version);
        if timestamp.signed.version <= held {
            return Err(Error::Rollback {
                role: RoleName::new(RoleName::TIMESTAMP),
                trusted: held,
                received: timestamp.signed.version,
            });
        }

        // The roles listed as before are kept; the others are read from
        // `newer` and checked against their entries.
        let ours = self.snapshot.as_ref().map(|(s, _)| &s.signed.meta);
        let mut kept: BTreeSet<RoleName> = BTreeSet::new();
        let mut loaded: BTreeMap<RoleName, (Envelope<Targets>, &[u8])> = BTreeMap::new();
        for (file, meta) in &snapshot.signed.meta {
            let name = file.strip_suffix(".json").unwrap_or(file);
            if self.holds(ours, file, meta) {
                kept.insert(RoleName::new(name));
                continue;
            }
            loaded.insert(RoleName::new(name), listed_role(newer, name, meta)?);
        }
        let signed_of = |role: &RoleName| -> Option<&Targets> {
            match loaded.get(role) {
                Some((env, _)) => Some(&env.signed),
                None if kept.contains(role) => self
                    .targets
                    .get(role)
                    .and_then(|r| r.published.as_ref())
                    .map(|p| &p.signed),
                None => None,
            }
        };
        if signed_of(&RoleName::targets()).is_none() {
            return Err(no_top_level_targets());
        }
        if let Some((top, _)) = loaded.get(RoleName::TARGETS) {
            Authority::from_root(root, RoleName::TARGETS)?.check(RoleName::TARGETS, top)?;
        }
        // Who delegates whom, as restore finds it; then each loaded role
        // checked by its delegator, and each kept one still given the keys
        // it was verified with.
        let delegator_of = delegators(
            kept.iter()
                .chain(loaded.keys())
                .filter_map(|name| Some((name, signed_of(name)?))),
        )?;
        for (child, parent) in &delegator_of {
            let (Some(parent_signed), Some(_)) = (signed_of(parent), signed_of(child)) else {
                return Err(Error::MissingRole {
                    role: child.clone(),
                    message: format!("delegated by `{parent}` but not listed in snapshot"),
                });
            };
            let authority = Authority::from_delegator(parent_signed, child.as_str())?;
            if let Some((env, _)) = loaded.get(child) {
                authority.check(child.as_str(), env)?;
                continue;
            }
            // Kept: the same delegator, giving it the same keys.
            let held = self.targets.get(child);
            let same_parent = held.and_then(|r| r.delegator.as_ref()) == Some(parent);
            let before = self
                .targets
                .get(parent)
                .and_then(|r| r.published.as_ref())
                .and_then(|p| Authority::from_delegator(&p.signed, child.as_str()).ok());
            if !same_parent || !before.is_some_and(|b| b.same_as(&authority)) {
                return Ok(None);
            }
        }

        // Every check passed: take it in.
        let mut files = Vec::with_capacity(loaded.len() + 2);
        let mut targets = BTreeMap::new();
        for name in kept {
            if let Some(mut role) = self.targets.remove(&name) {
                role.delegator = delegator_of.get(&name).cloned();
                targets.insert(name, role);
            }
        }
        for (name, (env, bytes)) in loaded {
            files.push(File::immutable(
                metadata_path(name.as_str(), env.signed.version),
                bytes.to_vec(),
            ));
            let delegator = delegator_of.get(&name).cloned();
            targets.insert(name, published_role(env, delegator));
        }
        files.push(File::immutable(
            metadata_path(RoleName::SNAPSHOT, snapshot.signed.version),
            newer.snapshot.to_vec(),
        ));
        files.push(File {
            path: TIMESTAMP_PATH.into(),
            bytes: Arc::from(newer.timestamp),
            immutable: false,
        });
        self.targets = targets;
        self.snapshot = Some((signed(snapshot), Arc::from(newer.snapshot)));
        self.timestamp = Some((signed(timestamp), Arc::from(newer.timestamp)));
        Ok(Some(files))
    }
}

/// `published`'s timestamp and snapshot, checked by `root`'s keys, the
/// snapshot against the timestamp's entry.
fn checked_top(
    root: &Root,
    published: &Published<'_>,
) -> Result<(Envelope<Timestamp>, Envelope<Snapshot>)> {
    let timestamp = Envelope::<Timestamp>::parse(RoleName::TIMESTAMP, published.timestamp)?;
    Authority::from_root(root, RoleName::TIMESTAMP)?.check(RoleName::TIMESTAMP, &timestamp)?;
    let snapshot_meta = timestamp.signed.snapshot_meta();
    snapshot_meta.check_bytes(RoleName::SNAPSHOT, published.snapshot)?;
    let snapshot = Envelope::<Snapshot>::parse(RoleName::SNAPSHOT, published.snapshot)?;
    Authority::from_root(root, RoleName::SNAPSHOT)?.check(RoleName::SNAPSHOT, &snapshot)?;
    if snapshot.signed.version != snapshot_meta.version {
        return Err(Error::VersionMismatch {
            role: RoleName::new(RoleName::SNAPSHOT),
            listed_by: RoleName::TIMESTAMP,
            expected: snapshot_meta.version,
            received: snapshot.signed.version,
        });
    }
    Ok((timestamp, snapshot))
}

/// Targets role `name` from `published`, checked against its snapshot
/// entry `meta` (length, hashes, version), and its bytes; not its
/// signatures.
fn listed_role<'a>(
    published: &Published<'a>,
    name: &str,
    meta: &MetaFile,
) -> Result<(Envelope<Targets>, &'a [u8])> {
    let bytes = published
        .targets
        .get(name)
        .ok_or_else(|| Error::MissingRole {
            role: RoleName::new(name),
            message: "listed in snapshot but not among the published files".into(),
        })?;
    meta.check_bytes(name, bytes)?;
    let env = Envelope::<Targets>::parse(name, bytes)?;
    if env.signed.version != meta.version {
        return Err(Error::VersionMismatch {
            role: RoleName::new(name),
            listed_by: RoleName::SNAPSHOT,
            expected: meta.version,
            received: env.signed.version,
        });
    }
    Ok((env, bytes))
}

fn no_top_level_targets() -> Error {
    Error::MissingRole {
        role: RoleName::targets(),
        message: "snapshot does not list the top-level targets role".into(),
    }
}

/// Each delegated role's delegator, among `roles` (by name, named
/// delegations and hashed bins alike); a role two delegate is refused.
fn delegators<'a>(
    roles: impl Iterator<Item = (&'a RoleName, &'a Targets)>,
) -> Result<BTreeMap<RoleName, RoleName>> {
    let mut delegator_of: BTreeMap<RoleName, RoleName> = BTreeMap::new();
    for (name, signed) in roles {
        let children = signed
            .delegations
            .iter()
            .flat_map(|d| d.roles.iter().flatten())
            .map(|c| c.name.clone());
        let bins = signed
            .delegations
            .iter()
            .flat_map(|d| d.succinct_roles.iter())
            .flat_map(|s| s.bin_names());
        for child in children.chain(bins) {
            if let Some(previous) = delegator_of.insert(child.clone(), name.clone()) {
                return Err(Error::Sign(format!(
                    "`{child}` is delegated by both `{previous}` and `{name}`"
                )));
            }
        }
    }
    Ok(delegator_of)
}

/// A checked envelope as the repository keeps what it published.
fn signed<T>(env: Envelope<T>) -> Signed<T> {
    Signed {
        signatures: env.signatures,
        signed: env.signed,
        unrecognized: Unrecognized::new(),
    }
}

/// A published targets role, verified, as the repository holds it.
fn published_role(env: Envelope<Targets>, delegator: Option<RoleName>) -> TargetsRole {
    let signed = signed(env);
    TargetsRole {
        delegator,
        ..TargetsRole::new(Some(signed.clone()), signed.signed, false)
    }
}
