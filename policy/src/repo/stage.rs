//! Changes staged for the next commit: target files, delegations by name
//! and to succinct hashed bins, their removal, and new roots.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;
use time::OffsetDateTime;

use crate::datetime::Expires;
use crate::error::{Error, Result};
use crate::keys::Key;
use crate::layout::target_path;
use crate::metadata::{
    DelegatedRole, Delegations, KeyId, RoleName, Root, SuccinctRoles, TargetFile, TOP_LEVEL_ROLES,
};
use crate::sign::{sign, to_bytes, Signer};

use super::options::{empty_targets, SharedSigner};
use super::{prune_keys, signed_root, File, Repository, TargetsRole};

impl Repository {
    fn role_mut(&mut self, role: &str) -> Result<&mut TargetsRole> {
        self.targets
            .get_mut(role)
            .ok_or_else(|| Error::MissingRole {
                role: RoleName::new(role),
                message: "no such targets role in the repository".into(),
            })
    }

    /// Adds or replaces target `path` in `role`; returns the target file to publish.
    pub fn set_target(
        &mut self,
        role: &str,
        path: &str,
        bytes: &[u8],
        custom: Option<Value>,
    ) -> Result<File> {
        if path.is_empty()
            || path.starts_with('/')
            || path.split('/').any(|s| s == ".." || s.is_empty())
        {
            return Err(Error::Sign(format!("`{path}` is not a valid target path")));
        }
        let mut file = TargetFile::from_bytes(bytes);
        if let Some(custom) = custom {
            file.unrecognized.insert("custom".into(), custom);
        }
        let disk = target_path(path, &file);
        let r = self.role_mut(role)?;
        if r.staged.targets.get(path) != Some(&file) {
            r.set_staged_target(path, file);
        }
        Ok(File::immutable(disk, bytes.to_vec()))
    }

    /// Lists in `to` the target `path` exactly as `from` lists it (same
    /// length, hashes and custom fields; the file is already published);
    /// false when `from` does not list it. For moving a target from one
    /// role to another without publishing its bytes again.
    pub fn copy_target(&mut self, from: &str, to: &str, path: &str) -> Result<bool> {
        let Some(file) = self.role_mut(from)?.staged.targets.get(path).cloned() else {
            return Ok(false);
        };
        let r = self.role_mut(to)?;
        if r.staged.targets.get(path) != Some(&file) {
            r.set_staged_target(path, file);
        }
        Ok(true)
    }

    /// Removes target `path` from `role`; true if it was there.
    pub fn remove_target(&mut self, role: &str, path: &str) -> Result<bool> {
        let r = self.role_mut(role)?;
        let removed = r.staged.targets.remove(path).is_some();
        if removed {
            r.changed.paths.insert(path.to_owned());
            if let Some(memo) = r.canonical.as_mut() {
                memo.remove(path);
            }
        }
        r.dirty |= removed;
        Ok(removed)
    }

    /// Delegates `role` from `delegator` (appended after existing delegations,
    /// or replacing a delegation of the same name in place), listing `keys` in
    /// the delegator and signing the role with `signers` from now on.
    pub fn delegate(
        &mut self,
        delegator: &str,
        role: DelegatedRole,
        keys: Vec<(KeyId, Key)>,
        signers: Vec<SharedSigner>,
        now: OffsetDateTime,
    ) -> Result<()> {
        let name = role.name.clone();
        if TOP_LEVEL_ROLES.contains(&name.as_str()) {
            return Err(Error::Sign(format!("`{name}` is a top-level role name")));
        }
        if name.as_str() == delegator {
            return Err(Error::Sign(format!("`{name}` cannot delegate to itself")));
        }
        for (id, key) in &keys {
            key.check(id)?;
        }
        self.check_not_delegated_elsewhere(&name, delegator)?;
        let parent = self.role_mut(delegator)?;
        let delegations = parent
            .staged
            .delegations
            .get_or_insert_with(|| Delegations::new(BTreeMap::new(), Vec::new()));
        let roles = delegations
            .roles
            .as_mut()
            .ok_or_else(|| Error::Sign(format!("`{delegator}` uses succinct hashed bins")))?;
        match roles.iter_mut().find(|r| r.name == name) {
            Some(slot) => *slot = role,
            None => roles.push(role),
        }
        // Keys no role uses any more are pruned when the delegator is signed.
        for (id, key) in keys {
            delegations.keys.insert(id, key);
        }
        parent.changed.delegations = true;
        parent.dirty = true;
        self.register_delegated(name, delegator, signers, now);
        Ok(())
    }

    /// Refuses to delegate `name` from `delegator` when another role
    /// already delegates it.
    fn check_not_delegated_elsewhere(&self, name: &RoleName, delegator: &str) -> Result<()> {
        match self.targets.get(name).and_then(|r| r.delegator.as_ref()) {
            Some(d) if d.as_str() != delegator => Err(Error::Sign(format!(
                "`{name}` is already delegated by another role"
            ))),
            _ => Ok(()),
        }
    }

    /// Records `name` as delegated by `delegator` and signed with
    /// `signers`, creating its (empty, version 1) metadata if new; returns
    /// it for further changes.
    fn register_delegated(
        &mut self,
        name: RoleName,
        delegator: &str,
        signers: Vec<SharedSigner>,
        now: OffsetDateTime,
    ) -> &mut TargetsRole {
        let expires = now + self.options.expiries.delegated;
        self.signers.insert(name.clone(), signers);
        let entry = self
            .targets
            .entry(name)
            .or_insert_with(|| TargetsRole::new(None, empty_targets(1, expires), true));
        entry.delegator = Some(RoleName::new(delegator));
        entry
    }

    /// Delegates from `delegator` to succinct hashed bins (TAP 15): every
    /// bin role `succinct` names exists from now on (empty until something
    /// is delegated from it or added to it), is listed in snapshot, and is
    /// signed with `signers`. `keys` are the public keys of
    /// `succinct.keyids`. The delegator must not delegate roles by name.
    ///
    /// Calling it again with other keys or threshold replaces the
    /// delegation and re-signs every bin with the new signers at the next
    /// commit (for a rotated online key).
    pub fn delegate_succinct(
        &mut self,
        delegator: &str,
        succinct: SuccinctRoles,
        keys: Vec<(KeyId, Key)>,
        signers: Vec<SharedSigner>,
        now: OffsetDateTime,
    ) -> Result<()> {
        for (id, key) in &keys {
            key.check(id)?;
        }
        let bins: Vec<RoleName> = succinct.bin_names().collect();
        for bin in &bins {
            if TOP_LEVEL_ROLES.contains(&bin.as_str()) || bin.as_str() == delegator {
                return Err(Error::Sign(format!("`{bin}` cannot be a bin role name")));
            }
            self.check_not_delegated_elsewhere(bin, delegator)?;
        }
        let parent = self.role_mut(delegator)?;
        let previous = match &parent.staged.delegations {
            Some(d) if d.roles.as_ref().is_some_and(|r| !r.is_empty()) => {
                return Err(Error::Sign(format!(
                    "`{delegator}` already delegates roles by name"
                )));
            }
            Some(d) => d.succinct_roles.clone(),
            None => None,
        };
        let changed = previous
            .as_ref()
            .is_some_and(|p| p.keyids != succinct.keyids || p.threshold != succinct.threshold);
        parent.staged.delegations =
            Some(Delegations::succinct(keys.into_iter().collect(), succinct));
        parent.changed.delegations = true;
        parent.dirty = true;
        for bin in bins {
            self.register_delegated(bin, delegator, signers.clone(), now)
                .dirty |= changed;
        }
        Ok(())
    }

    /// Removes the delegation of `role` from its delegator. The role's
    /// metadata stays listed in snapshot (see the module docs).
    pub fn undelegate(&mut self, role: &str) -> Result<()> {
        let delegator =
            self.role_mut(role)?
                .delegator
                .take()
                .ok_or_else(|| Error::MissingRole {
                    role: RoleName::new(role),
                    message: "is not delegated".into(),
                })?;
        let parent = self.role_mut(delegator.as_str())?;
        if let Some(d) = parent.staged.delegations.as_mut() {
            if let Some(roles) = d.roles_mut() {
                roles.retain(|r| r.name.as_str() != role);
            }
            prune_keys(d);
        }
        parent.changed.delegations = true;
        parent.dirty = true;
        self.signers.remove(role);
        Ok(())
    }

    /// Adds `root`, the file of a new root version signed elsewhere (a
    /// ceremony), after checking that it is the next version and meets both
    /// the old and the new threshold. The file is published as
    /// `metadata/N.root.json` byte for byte, like the first root (see
    /// [`new`](Self::new)).
    pub fn add_root(&mut self, root: &[u8]) -> Result<()> {
        let envelope = crate::metadata::Envelope::<Root>::parse(RoleName::ROOT, root)?;
        let current = &self.root().signed;
        if envelope.signed.version != current.version + 1 {
            return Err(Error::RootVersion {
                expected: current.version + 1,
                received: envelope.signed.version,
            });
        }
        let verified = crate::verify::verify_root_successor(current, envelope)?;
        self.root = signed_root(&verified);
        self.root_history.push(Arc::from(root));
        self.pending = true;
        Ok(())
    }

    /// Signs and adds root version N+1 made by `edit` from the current one,
    /// with `old_signers` (meeting the current threshold) and `new_signers`
    /// (meeting the new one). Signers in both lists sign once.
    pub fn rotate_root(
        &mut self,
        edit: impl FnOnce(&mut Root),
        old_signers: &[SharedSigner],
        new_signers: &[SharedSigner],
        now: OffsetDateTime,
    ) -> Result<()> {
        let mut root = self.root().signed.clone();
        edit(&mut root);
        root.version = self.root().signed.version + 1;
        root.expires = Expires::new(now + self.options.expiries.root);
        let mut all: Vec<&dyn Signer> = Vec::new();
        for s in old_signers.iter().chain(new_signers) {
            if !all.iter().any(|x| x.key_id() == s.key_id()) {
                all.push(s.as_ref());
            }
        }
        let bytes = to_bytes(&sign(root, &all)?)?;
        self.add_root(&bytes)
    }
}
