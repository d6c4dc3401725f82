//! The repository side: create, sign and publish TUF metadata.
//!
//! [`Repository`] holds the current signed metadata of every role and the
//! signers of the online roles. Changes are staged (targets added or
//! removed, roles delegated, keys rotated) and [`Repository::commit`] turns
//! them into one consistent set of new files: a new version of each changed
//! targets role, then snapshot, then timestamp, each signed and each file
//! immutable under its consistent-snapshot name. A commit that fails leaves
//! the published state exactly as it was. [`Repository::commit_with`]
//! also hands the caller the paths of the files being published just
//! before the timestamp is signed, and adds the extension fields it returns
//! to that timestamp (the server puts the audit chain head there, see
//! [`crate::audit`]). [`Repository::restore`] rebuilds
//! the state from the published files (checking them as a client would)
//! when a server restarts.
//!
//! Layout of the files it produces (relative to the repository's base):
//!
//! | file | when |
//! | --- | --- |
//! | `metadata/N.root.json` | every root version |
//! | `metadata/V.targets.json`, `metadata/V.<role>.json` | every version of a targets role (role names percent-encoded) |
//! | `metadata/V.snapshot.json` | every snapshot version |
//! | `metadata/timestamp.json` | rewritten on every commit |
//! | `targets/<dir>/<sha256>.<basename>` | every target file |
//!
//! Choices (see `docs/architecture.md`):
//! * Roots are published as the files they came in, byte for byte
//!   ([`Repository::new`], [`Repository::add_root`]): a root signed in a
//!   ceremony keeps its layout, so the SHA-256 of the ceremony's file is
//!   the one clients pin. Every other file is the repository's own
//!   serialisation. (Signatures cover the canonical form of `signed`, so
//!   layout plays no part in verification.)
//! * Snapshot lists role versions only, without lengths or hashes, unless
//!   [`Options::snapshot_hashes`] is set (the specification makes them
//!   optional; without them snapshot stays small with many namespaces).
//!   Timestamp always lists snapshot's length and SHA-256.
//! * A delegated role stays listed in snapshot after its delegation is
//!   removed, because clients refuse a snapshot that drops a role they saw;
//!   delegating the same name again continues its version numbers.
//! * A role delegates either by name ([`Repository::delegate`]) or to
//!   succinct hashed bins (TAP 15, [`Repository::delegate_succinct`]); every
//!   bin is a role of its own from then on (listed in snapshot, signed,
//!   restorable) and may delegate by name in turn, so a change below one
//!   bin re-signs that bin only, not its delegator.

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::sync::Arc;

use serde_json::Value;
use time::{Duration, OffsetDateTime};

use crate::datetime::Expires;
use crate::error::{Error, Result};
use crate::keys::Key;
use crate::layout::{metadata_path, target_path, TIMESTAMP_PATH};
use crate::metadata::{
    DelegatedRole, Delegations, KeyId, MetaFile, Role, RoleKeys, RoleName, Root, Signed, Snapshot,
    SuccinctRoles, TargetFile, Targets, Timestamp, Unrecognized, SPEC_VERSION, TOP_LEVEL_ROLES,
};
use crate::sign::{sign, to_bytes, Signer};

/// The path of the timestamp, the one file rewritten under its name.

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

/// A file to publish, relative to the repository base.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct File {
    /// `metadata/...` or `targets/...`.
    pub path: String,
    /// The bytes.
    pub bytes: Arc<[u8]>,
    /// False only for `metadata/timestamp.json`; every other file never changes.
    pub immutable: bool,
}

impl File {
    fn immutable(path: String, bytes: Vec<u8>) -> Self {
        Self {
            path,
            bytes: bytes.into(),
            immutable: true,
        }
    }
}

/// One targets role kept by the repository.
#[derive(Clone, Debug)]
struct TargetsRole {
    /// Last signed (published) version; `None` before its first commit.
    published: Option<Signed<Targets>>,
    /// The content the next commit will sign.
    staged: Targets,
    /// Whether `staged` differs from what is published.
    dirty: bool,
    /// Who delegates this role (`None` for top-level targets or a removed delegation).
    delegator: Option<RoleName>,
}

/// What a repository last published, as [`Repository::restore`] reads it.
#[derive(Clone, Debug, Default)]
pub struct Published<'a> {
    /// Every root, version 1 first.
    pub roots: Vec<&'a [u8]>,
    /// `metadata/timestamp.json`.
    pub timestamp: &'a [u8],
    /// The snapshot the timestamp lists.
    pub snapshot: &'a [u8],
    /// The latest version of every targets role the snapshot lists, by role name.
    pub targets: BTreeMap<String, &'a [u8]>,
}

/// An organization's TUF repository, in memory.
#[derive(Debug)]
pub struct Repository {
    options: Options,
    /// The current root.
    root: Signed<Root>,
    /// The bytes of every root, version 1 first.
    root_history: Vec<Arc<[u8]>>,
    /// How many of `root_history` a commit has published.
    published_roots: usize,
    targets: BTreeMap<RoleName, TargetsRole>,
    snapshot: Option<(Signed<Snapshot>, Arc<[u8]>)>,
    timestamp: Option<(Signed<Timestamp>, Arc<[u8]>)>,
    signers: BTreeMap<RoleName, Vec<SharedSigner>>,
    /// Set when something changed that snapshot/timestamp must cover.
    pending: bool,
}

impl Repository {
    /// Starts a repository from `root`, the file of a signed root version
    /// 1 (made in a ceremony, or by [`create`](Self::create)), and the
    /// online signers of targets, snapshot and timestamp (the root keys are
    /// not needed). The root must meet its own threshold.
    ///
    /// The file's bytes are what the repository publishes as
    /// `metadata/1.root.json`, byte for byte: a client pins that file's
    /// SHA-256. (Signatures cover the canonical form of `signed`, so the
    /// file may be laid out in any way.)
    ///
    /// Nothing is published until [`commit`](Self::commit).
    pub fn new(
        root: &[u8],
        signers: BTreeMap<RoleName, Vec<SharedSigner>>,
        options: Options,
        now: OffsetDateTime,
    ) -> Result<Self> {
        let verified = crate::verify::verify_root_self(crate::metadata::Envelope::<Root>::parse(
            RoleName::ROOT,
            root,
        )?)?;
        if verified.version != 1 {
            return Err(Error::RootVersion {
                expected: 1,
                received: verified.version,
            });
        }
        let mut repo = Self {
            options,
            root: signed_root(&verified),
            root_history: vec![Arc::from(root)],
            published_roots: 0,
            targets: BTreeMap::new(),
            snapshot: None,
            timestamp: None,
            signers,
            pending: true,
        };
        let expires = now + options.expiries.targets;
        repo.targets.insert(
            RoleName::targets(),
            TargetsRole {
                published: None,
                staged: empty_targets(1, expires),
                dirty: true,
                delegator: None,
            },
        );
        Ok(repo)
    }

    /// Creates a new repository whose root is signed here by `root_signers`
    /// (the embedded default; production roots come from an offline ceremony).
    pub fn create(
        root_signers: &[SharedSigner],
        root_threshold: u32,
        online: [(&str, Vec<SharedSigner>); 3],
        options: Options,
        now: OffsetDateTime,
    ) -> Result<Self> {
        let root_spec = RoleSpec::from_signers(root_signers, root_threshold)?;
        let mut specs = Vec::new();
        for (name, signers) in &online {
            specs.push((*name, RoleSpec::from_signers(signers, 1)?));
        }
        let [(n1, s1), (n2, s2), (n3, s3)]: [(&str, RoleSpec); 3] = specs
            .try_into()
            .map_err(|_| Error::Sign("three online roles expected".into()))?;
        let root = build_root(
            1,
            now + options.expiries.root,
            [
                (RoleName::ROOT, &root_spec),
                (n1, &s1),
                (n2, &s2),
                (n3, &s3),
            ],
        )?;
        let refs: Vec<&dyn Signer> = root_signers.iter().map(|s| s.as_ref()).collect();
        let bytes = to_bytes(&sign(root, &refs)?)?;
        let signers = online
            .into_iter()
            .map(|(name, s)| (RoleName::new(name), s))
            .collect();
        Self::new(&bytes, signers, options, now)
    }

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
        use crate::metadata::Envelope;
        use crate::verify::{verify_root_self, verify_root_successor, Authority};

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
        let timestamp = Envelope::<Timestamp>::parse(RoleName::TIMESTAMP, published.timestamp)?;
        Authority::from_root(&root, RoleName::TIMESTAMP)?.check(RoleName::TIMESTAMP, &timestamp)?;
        let snapshot_meta = timestamp.signed.snapshot_meta();
        snapshot_meta.check_bytes(RoleName::SNAPSHOT, published.snapshot)?;
        let snapshot = Envelope::<Snapshot>::parse(RoleName::SNAPSHOT, published.snapshot)?;
        Authority::from_root(&root, RoleName::SNAPSHOT)?.check(RoleName::SNAPSHOT, &snapshot)?;
        if snapshot.signed.version != snapshot_meta.version {
            return Err(Error::VersionMismatch {
                role: RoleName::new(RoleName::SNAPSHOT),
                listed_by: RoleName::TIMESTAMP,
                expected: snapshot_meta.version,
                received: snapshot.signed.version,
            });
        }

        // Every role the snapshot lists, parsed and checked against its entry.
        let mut roles: BTreeMap<RoleName, Envelope<Targets>> = BTreeMap::new();
        for (file, meta) in &snapshot.signed.meta {
            let name = file.strip_suffix(".json").unwrap_or(file);
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
            roles.insert(RoleName::new(name), env);
        }
        let top = roles
            .get(RoleName::TARGETS)
            .ok_or_else(|| Error::MissingRole {
                role: RoleName::targets(),
                message: "snapshot does not list the top-level targets role".into(),
            })?;
        Authority::from_root(&root, RoleName::TARGETS)?.check(RoleName::TARGETS, top)?;
        // Who delegates whom, then each delegated role checked by its delegator.
        let mut delegator_of: BTreeMap<RoleName, RoleName> = BTreeMap::new();
        for (name, env) in &roles {
            let children = env
                .signed
                .delegations
                .iter()
                .flat_map(|d| d.roles.iter().flatten());
            let bins = env
                .signed
                .delegations
                .iter()
                .flat_map(|d| d.succinct_roles.iter())
                .flat_map(|s| s.bin_names());
            for child in children.map(|c| c.name.clone()).chain(bins) {
                if let Some(previous) = delegator_of.insert(child.clone(), name.clone()) {
                    return Err(Error::Sign(format!(
                        "`{child}` is delegated by both `{previous}` and `{name}`"
                    )));
                }
            }
        }
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
            let signed = Signed {
                signatures: env.signatures,
                signed: env.signed,
                unrecognized: Unrecognized::new(),
            };
            targets.insert(
                name.clone(),
                TargetsRole {
                    staged: signed.signed.clone(),
                    published: Some(signed),
                    dirty: false,
                    delegator: delegator_of.get(&name).cloned(),
                },
            );
        }
        let timestamp_signed = Signed {
            signatures: timestamp.signatures,
            signed: timestamp.signed,
            unrecognized: Unrecognized::new(),
        };
        let snapshot_signed = Signed {
            signatures: snapshot.signatures,
            signed: snapshot.signed,
            unrecognized: Unrecognized::new(),
        };
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

    /// The current root.
    pub fn root(&self) -> &Signed<Root> {
        &self.root
    }

    /// The published bytes of every root, version 1 first.
    pub fn root_history(&self) -> impl Iterator<Item = &[u8]> {
        self.root_history.iter().map(|b| &**b)
    }

    /// The published version of a targets role, if it has one.
    pub fn targets(&self, role: &str) -> Option<&Signed<Targets>> {
        self.targets.get(role).and_then(|r| r.published.as_ref())
    }

    /// The staged (next) content of a targets role.
    pub fn staged(&self, role: &str) -> Option<&Targets> {
        self.targets.get(role).map(|r| &r.staged)
    }

    /// The current snapshot, once committed.
    pub fn snapshot(&self) -> Option<&Signed<Snapshot>> {
        self.snapshot.as_ref().map(|(s, _)| s)
    }

    /// The current timestamp, once committed.
    pub fn timestamp(&self) -> Option<&Signed<Timestamp>> {
        self.timestamp.as_ref().map(|(t, _)| t)
    }

    /// Names of the delegated roles currently delegated by some role.
    pub fn delegated_roles(&self) -> impl Iterator<Item = &RoleName> {
        self.targets
            .iter()
            .filter(|(_, r)| r.delegator.is_some())
            .map(|(n, _)| n)
    }

    /// Replaces the signers of a role (online key rotation). For top-level
    /// roles the new keys must already be in root; for delegated roles the
    /// delegator must list them, see [`delegate`](Self::delegate).
    pub fn set_signers(&mut self, role: &str, signers: Vec<SharedSigner>) {
        self.signers.insert(RoleName::new(role), signers);
    }

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
            r.staged.targets.insert(path.to_owned(), file);
            r.dirty = true;
        }
        Ok(File::immutable(disk, bytes.to_vec()))
    }

    /// Removes target `path` from `role`; true if it was there.
    pub fn remove_target(&mut self, role: &str, path: &str) -> Result<bool> {
        let r = self.role_mut(role)?;
        let removed = r.staged.targets.remove(path).is_some();
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
        let entry = self.targets.entry(name).or_insert_with(|| TargetsRole {
            published: None,
            staged: empty_targets(1, expires),
            dirty: true,
            delegator: None,
        });
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

    /// Publishes every staged change: new versions of changed targets roles,
    /// a new snapshot and a new timestamp. Returns the new files.
    ///
    /// On error nothing is published and the staged changes stay staged.
    pub fn commit(&mut self, now: OffsetDateTime) -> Result<Vec<File>> {
        self.commit_with(now, |_| Ok(Unrecognized::new()))
    }

    /// Like [`commit`](Self::commit), and the new timestamp's `signed`
    /// object also gets the fields `timestamp_fields` returns (extensions
    /// such as [`crate::audit::TIMESTAMP_FIELD`]; names must start with
    /// `x-`). `timestamp_fields` is called once everything else is signed
    /// and before the timestamp is, with the paths of every file this
    /// commit publishes, in the order returned (`metadata/timestamp.json`
    /// included), so it can record the publish (an audit record) and put
    /// what it recorded in the timestamp. It is not called when nothing is
    /// due. An error from it fails the commit like a signing error.
    pub fn commit_with<E: From<Error>>(
        &mut self,
        now: OffsetDateTime,
        timestamp_fields: impl FnOnce(&[String]) -> std::result::Result<Unrecognized, E>,
    ) -> std::result::Result<Vec<File>, E> {
        let dirty: Vec<RoleName> = self
            .targets
            .iter()
            .filter(|(_, r)| r.dirty)
            .map(|(n, _)| n.clone())
            .collect();
        if dirty.is_empty() && !self.pending {
            return Ok(Vec::new());
        }
        // Sign everything first; apply only when all of it succeeded.
        let mut new_roles = BTreeMap::new();
        let mut files = Vec::with_capacity(dirty.len() + 3);
        for name in &dirty {
            let Some(r) = self.targets.get(name) else {
                continue;
            };
            let mut t = r.staged.clone();
            t.version = r.published.as_ref().map_or(1, |p| p.signed.version + 1);
            let period = if name.as_str() == RoleName::TARGETS {
                self.options.expiries.targets
            } else {
                self.options.expiries.delegated
            };
            t.expires = Expires::new(now + period);
            if let Some(d) = t.delegations.as_mut() {
                prune_keys(d);
            }
            let signed = sign(t, &self.signer_refs(name.as_str())?)?;
            let bytes = to_bytes(&signed)?;
            files.push(File::immutable(
                metadata_path(name.as_str(), signed.signed.version),
                bytes.clone(),
            ));
            new_roles.insert(name.clone(), (signed, bytes));
        }
        let (snapshot, snapshot_bytes) = self.sign_snapshot(&new_roles, now)?;
        files.push(File::immutable(
            metadata_path(RoleName::SNAPSHOT, snapshot.signed.version),
            snapshot_bytes.to_vec(),
        ));
        let timestamp_at = files.len();
        // Roots added since the last commit are new files too.
        let mut roots = Vec::new();
        for (i, bytes) in self
            .root_history
            .iter()
            .enumerate()
            .skip(self.published_roots)
        {
            roots.push(File::immutable(
                metadata_path(RoleName::ROOT, i as u64 + 1),
                bytes.to_vec(),
            ));
        }
        let paths: Vec<String> = files
            .iter()
            .map(|f| f.path.clone())
            .chain(std::iter::once(TIMESTAMP_PATH.to_owned()))
            .chain(roots.iter().map(|f| f.path.clone()))
            .collect();
        let fields = timestamp_fields(&paths)?;
        if let Some(name) = fields.keys().find(|k| !k.starts_with("x-")) {
            return Err(Error::Sign(format!(
                "timestamp field `{name}` is not an extension (names start with `x-`)"
            ))
            .into());
        }
        let timestamp = self.timestamp_for(&snapshot, &snapshot_bytes, now, fields)?;
        let timestamp_bytes: Arc<[u8]> = to_bytes(&timestamp)?.into();
        files.insert(
            timestamp_at,
            File {
                path: TIMESTAMP_PATH.into(),
                bytes: timestamp_bytes.clone(),
                immutable: false,
            },
        );
        files.extend(roots);
        for (name, (signed, _)) in new_roles {
            if let Some(r) = self.targets.get_mut(&name) {
                r.staged.version = signed.signed.version;
                r.staged.expires = signed.signed.expires;
                r.published = Some(signed);
                r.dirty = false;
            }
        }
        self.snapshot = Some((snapshot, snapshot_bytes));
        self.timestamp = Some((timestamp, timestamp_bytes));
        self.published_roots = self.root_history.len();
        self.pending = false;
        Ok(files)
    }

    fn signer_refs(&self, role: &str) -> Result<Vec<&dyn Signer>> {
        let signers = self
            .signers
            .get(role)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| Error::Sign(format!("no signing key for role `{role}`")))?;
        Ok(signers.iter().map(|s| s.as_ref()).collect())
    }

    fn sign_snapshot(
        &self,
        new_roles: &BTreeMap<RoleName, (Signed<Targets>, Vec<u8>)>,
        now: OffsetDateTime,
    ) -> Result<(Signed<Snapshot>, Arc<[u8]>)> {
        // Every published role is listed by the previous snapshot (roles
        // are never dropped), so start from its entries and change only the
        // roles signed now: a publish does not visit every role again.
        let mut meta = match &self.snapshot {
            Some((s, _)) => s.signed.meta.clone(),
            None => self
                .targets
                .iter()
                .filter_map(|(name, role)| {
                    let published = role.published.as_ref()?;
                    Some((
                        format!("{name}.json"),
                        MetaFile::new(published.signed.version),
                    ))
                })
                .collect(),
        };
        for (name, (signed, bytes)) in new_roles {
            meta.insert(
                format!("{name}.json"),
                self.meta_entry(signed.signed.version, bytes),
            );
        }
        let snapshot = Snapshot {
            type_: Snapshot::TYPE.into(),
            spec_version: SPEC_VERSION.into(),
            version: self
                .snapshot
                .as_ref()
                .map_or(1, |(s, _)| s.signed.version + 1),
            expires: Expires::new(now + self.options.expiries.snapshot),
            meta,
            unrecognized: Unrecognized::new(),
        };
        let snapshot = sign(snapshot, &self.signer_refs(RoleName::SNAPSHOT)?)?;
        let snapshot_bytes: Arc<[u8]> = to_bytes(&snapshot)?.into();
        Ok((snapshot, snapshot_bytes))
    }

    fn meta_entry(&self, version: u64, bytes: &[u8]) -> MetaFile {
        if self.options.snapshot_hashes {
            MetaFile::with_bytes(version, bytes)
        } else {
            MetaFile::new(version)
        }
    }

    fn timestamp_for(
        &self,
        snapshot: &Signed<Snapshot>,
        snapshot_bytes: &[u8],
        now: OffsetDateTime,
        fields: Unrecognized,
    ) -> Result<Signed<Timestamp>> {
        let timestamp = Timestamp {
            type_: Timestamp::TYPE.into(),
            spec_version: SPEC_VERSION.into(),
            version: self
                .timestamp
                .as_ref()
                .map_or(1, |(t, _)| t.signed.version + 1),
            expires: Expires::new(now + self.options.expiries.timestamp),
            meta: BTreeMap::from([(
                "snapshot.json".to_owned(),
                MetaFile::with_bytes(snapshot.signed.version, snapshot_bytes),
            )]),
            unrecognized: fields,
        };
        sign(timestamp, &self.signer_refs(RoleName::TIMESTAMP)?)
    }

    /// Re-signs, with new versions, every online role that expires before
    /// `now + horizon`, and always a fresh timestamp when anything changed.
    /// Returns the new files (empty when nothing was due).
    pub fn refresh_expiring(
        &mut self,
        now: OffsetDateTime,
        horizon: Duration,
    ) -> Result<Vec<File>> {
        self.mark_expiring(now, horizon);
        self.commit(now)
    }

    /// Marks for the next commit every online role that expires before
    /// `now + horizon` (and snapshot and timestamp when they do), as
    /// [`refresh_expiring`](Self::refresh_expiring) does before it commits.
    pub fn mark_expiring(&mut self, now: OffsetDateTime, horizon: Duration) {
        let deadline = now + horizon;
        let due = |e: Expires| e.time() <= deadline;
        for (name, r) in self.targets.iter_mut() {
            // Roles whose delegation was removed are no longer read by anyone.
            let live = name.as_str() == RoleName::TARGETS || r.delegator.is_some();
            if live && r.published.as_ref().is_some_and(|p| due(p.signed.expires)) {
                r.dirty = true;
            }
        }
        let snapshot_due = self
            .snapshot
            .as_ref()
            .is_some_and(|(s, _)| due(s.signed.expires));
        let timestamp_due = self
            .timestamp
            .as_ref()
            .is_some_and(|(t, _)| due(t.signed.expires));
        if snapshot_due || timestamp_due {
            self.pending = true;
        }
    }

    /// Every file of the current repository state: all roots, the current
    /// version of every role, snapshot and timestamp (for `publish --to`).
    pub fn current_files(&self) -> Result<Vec<File>> {
        let mut files = Vec::new();
        for (i, bytes) in self.root_history.iter().enumerate() {
            files.push(File::immutable(
                metadata_path(RoleName::ROOT, i as u64 + 1),
                bytes.to_vec(),
            ));
        }
        for (name, r) in &self.targets {
            if let Some(p) = &r.published {
                files.push(File::immutable(
                    metadata_path(name.as_str(), p.signed.version),
                    to_bytes(p)?,
                ));
            }
        }
        if let Some((s, bytes)) = &self.snapshot {
            files.push(File::immutable(
                metadata_path(RoleName::SNAPSHOT, s.signed.version),
                bytes.to_vec(),
            ));
        }
        if let Some((_, bytes)) = &self.timestamp {
            files.push(File {
                path: TIMESTAMP_PATH.into(),
                bytes: bytes.clone(),
                immutable: false,
            });
        }
        Ok(files)
    }
}

/// Drops keys no delegated role uses any more.
fn prune_keys(d: &mut Delegations) {
    let used: std::collections::BTreeSet<KeyId> = d
        .roles
        .iter()
        .flatten()
        .flat_map(|r| r.keyids.iter().cloned())
        .chain(
            d.succinct_roles
                .iter()
                .flat_map(|s| s.keyids.iter().cloned()),
        )
        .collect();
    d.keys.retain(|id, _| used.contains(id));
}

/// The parsed form of a verified root; its file's bytes are kept apart.
fn signed_root(root: &crate::verify::Verified<Root>) -> Signed<Root> {
    Signed {
        signatures: root.signatures().to_vec(),
        signed: root.signed().clone(),
        unrecognized: Unrecognized::new(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use super::*;
    use crate::keys::Scheme;
    use crate::layout::encode_role;
    use crate::metadata::Envelope;
    use crate::pattern::PathPattern;
    use crate::sign::InMemorySigner;
    use crate::verify::Authority;

    fn signer(scheme: Scheme) -> SharedSigner {
        Arc::new(InMemorySigner::generate(scheme).unwrap())
    }

    fn now() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
    }

    fn new_repo() -> (Repository, SharedSigner) {
        let root = signer(Scheme::Ed25519);
        let repo = Repository::create(
            std::slice::from_ref(&root),
            1,
            [
                ("targets", vec![signer(Scheme::Ed25519)]),
                ("snapshot", vec![signer(Scheme::EcdsaP256Sha256)]),
                ("timestamp", vec![signer(Scheme::Ed25519)]),
            ],
            Options::default(),
            now(),
        )
        .unwrap();
        (repo, root)
    }

    fn file<'a>(files: &'a [File], path: &str) -> &'a File {
        files.iter().find(|f| f.path == path).unwrap_or_else(|| {
            panic!(
                "{path} not in {:?}",
                files.iter().map(|f| &f.path).collect::<Vec<_>>()
            )
        })
    }

    fn delegated(name: &str, paths: &[&str], key: &SharedSigner) -> DelegatedRole {
        DelegatedRole {
            name: RoleName::new(name),
            keyids: vec![key.key_id().clone()],
            threshold: NonZeroU32::MIN,
            terminating: true,
            paths: Some(paths.iter().map(|p| PathPattern::new(p)).collect()),
            path_hash_prefixes: None,
            unrecognized: Unrecognized::new(),
        }
    }

    #[test]
    fn first_commit_publishes_a_verifiable_repository() {
        let (mut repo, _) = new_repo();
        let target = repo
            .set_target("targets", "org/peers.json", b"{}", None)
            .unwrap();
        assert_eq!(
            target.path,
            format!("targets/org/{}.peers.json", crate::hash::sha256_hex(b"{}"))
        );
        let files = repo.commit(now()).unwrap();
        let root =
            Envelope::<Root>::parse("root", &file(&files, "metadata/1.root.json").bytes).unwrap();
        let root = crate::verify::verify_root_self(root).unwrap();
        let ts = Envelope::<Timestamp>::parse(
            "timestamp",
            &file(&files, "metadata/timestamp.json").bytes,
        )
        .unwrap();
        let ts = Authority::from_root(&root, "timestamp")
            .unwrap()
            .verify("timestamp", ts)
            .unwrap();
        assert!(!file(&files, "metadata/timestamp.json").immutable);
        let snap_bytes = &file(&files, "metadata/1.snapshot.json").bytes;
        ts.snapshot_meta()
            .check_bytes("snapshot", snap_bytes)
            .unwrap();
        let snap = Envelope::<Snapshot>::parse("snapshot", snap_bytes).unwrap();
        let snap = Authority::from_root(&root, "snapshot")
            .unwrap()
            .verify("snapshot", snap)
            .unwrap();
        assert_eq!(snap.role_meta("targets").unwrap().version, 1);
        let targets =
            Envelope::<Targets>::parse("targets", &file(&files, "metadata/1.targets.json").bytes)
                .unwrap();
        let targets = Authority::from_root(&root, "targets")
            .unwrap()
            .verify("targets", targets)
            .unwrap();
        targets.targets["org/peers.json"]
            .check_bytes("org/peers.json", b"{}")
            .unwrap();
    }

    #[test]
    fn commit_without_changes_publishes_nothing() {
        let (mut repo, _) = new_repo();
        repo.commit(now()).unwrap();
        assert!(repo.commit(now()).unwrap().is_empty());
        // Setting the same content again is no change either.
        repo.set_target("targets", "a", b"x", None).unwrap();
        repo.commit(now()).unwrap();
        repo.set_target("targets", "a", b"x", None).unwrap();
        assert!(repo.commit(now()).unwrap().is_empty());
    }

    #[test]
    fn commit_with_puts_the_fields_it_is_handed_into_the_signed_timestamp() {
        let (mut repo, _) = new_repo();
        repo.commit(now()).unwrap();
        repo.set_target("targets", "a", b"x", None).unwrap();
        let mut seen = Vec::new();
        let files = repo
            .commit_with(now(), |paths| -> Result<_> {
                seen = paths.to_vec();
                Ok(Unrecognized::from([(
                    "x-keyshare-audit".to_owned(),
                    serde_json::json!({"seq": 2, "hash": "ab"}),
                )]))
            })
            .unwrap();
        // Called with every file the commit publishes, in order.
        let paths: Vec<String> = files.iter().map(|f| f.path.clone()).collect();
        assert_eq!(seen, paths);
        assert_eq!(
            paths,
            [
                "metadata/2.targets.json",
                "metadata/2.snapshot.json",
                "metadata/timestamp.json"
            ]
        );
        // The field is in the signed part, covered by the signature.
        let root = repo.root().signed.clone();
        let bytes = &file(&files, "metadata/timestamp.json").bytes;
        let ts = Envelope::<Timestamp>::parse("timestamp", bytes).unwrap();
        let ts = Authority::from_root(&root, "timestamp")
            .unwrap()
            .verify("timestamp", ts)
            .unwrap();
        assert_eq!(
            ts.unrecognized["x-keyshare-audit"],
            serde_json::json!({"seq": 2, "hash": "ab"})
        );
        assert_eq!(
            repo.timestamp().unwrap().signed.unrecognized,
            ts.unrecognized
        );

        // Not called when nothing is due.
        let called = std::cell::Cell::new(false);
        let files = repo
            .commit_with(now(), |_| -> Result<_> {
                called.set(true);
                Ok(Unrecognized::new())
            })
            .unwrap();
        assert!(files.is_empty() && !called.get());

        // Only extensions: a field TUF defines cannot be overwritten, and
        // nothing is published.
        repo.set_target("targets", "a", b"y", None).unwrap();
        let version = repo.timestamp().unwrap().signed.version;
        let err = repo
            .commit_with(now(), |_| -> Result<_> {
                Ok(Unrecognized::from([(
                    "version".to_owned(),
                    serde_json::json!(99),
                )]))
            })
            .unwrap_err();
        assert_eq!(
            err,
            Error::Sign(
                "timestamp field `version` is not an extension (names start with `x-`)".into()
            )
        );
        assert_eq!(repo.timestamp().unwrap().signed.version, version);
        // An error of the callback fails the commit the same way.
        let err = repo
            .commit_with(now(), |_| Err(Error::Sign("no audit log".into())))
            .unwrap_err();
        assert_eq!(err, Error::Sign("no audit log".into()));
        assert_eq!(repo.timestamp().unwrap().signed.version, version);
        assert_eq!(repo.commit(now()).unwrap().len(), 3);
    }

    #[test]
    fn each_commit_bumps_changed_roles_snapshot_and_timestamp_only() {
        let (mut repo, _) = new_repo();
        let team = signer(Scheme::Ed25519);
        repo.delegate(
            "targets",
            delegated("team-a", &["namespaces/team-a/*"], &team),
            vec![(team.key_id().clone(), team.public_key().clone())],
            vec![team.clone()],
            now(),
        )
        .unwrap();
        repo.commit(now()).unwrap();
        repo.set_target("team-a", "namespaces/team-a/trust.json", b"1", None)
            .unwrap();
        let files = repo.commit(now()).unwrap();
        let names: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
        assert!(names.contains(&"metadata/2.team-a.json"), "{names:?}");
        assert!(names.contains(&"metadata/2.snapshot.json"), "{names:?}");
        assert!(
            !names.iter().any(|n| n.ends_with(".targets.json")),
            "{names:?}"
        );
        assert!(
            !names.iter().any(|n| n.ends_with(".root.json")),
            "{names:?}"
        );
        let snap = repo.snapshot().unwrap();
        assert_eq!(snap.signed.meta["team-a.json"].version, 2);
        assert_eq!(snap.signed.meta["targets.json"].version, 1);
        assert_eq!(repo.timestamp().unwrap().signed.version, 2);
    }

    #[test]
    fn failed_commit_publishes_nothing_and_keeps_changes_staged() {
        let (mut repo, _) = new_repo();
        repo.commit(now()).unwrap();
        let before_ts = repo.timestamp().unwrap().clone();
        let team = signer(Scheme::Ed25519);
        repo.delegate(
            "targets",
            delegated("team-a", &["namespaces/team-a/*"], &team),
            vec![(team.key_id().clone(), team.public_key().clone())],
            vec![],
            now(),
        )
        .unwrap();
        let err = repo.commit(now()).unwrap_err();
        assert!(
            matches!(&err, Error::Sign(m) if m.contains("team-a")),
            "{err}"
        );
        assert_eq!(repo.timestamp().unwrap(), &before_ts);
        assert_eq!(repo.targets("targets").unwrap().signed.version, 1);
        assert!(repo.targets("team-a").is_none());
        repo.set_signers("team-a", vec![team]);
        repo.commit(now()).unwrap();
        assert_eq!(repo.targets("targets").unwrap().signed.version, 2);
        assert_eq!(repo.targets("team-a").unwrap().signed.version, 1);
    }

    #[test]
    fn undelegated_role_stays_in_snapshot_and_redelegation_continues_versions() {
        let (mut repo, _) = new_repo();
        let team = signer(Scheme::Ed25519);
        let keys = vec![(team.key_id().clone(), team.public_key().clone())];
        let role = delegated("team-a", &["namespaces/team-a/*"], &team);
        repo.delegate(
            "targets",
            role.clone(),
            keys.clone(),
            vec![team.clone()],
            now(),
        )
        .unwrap();
        repo.commit(now()).unwrap();
        repo.undelegate("team-a").unwrap();
        repo.commit(now()).unwrap();
        let t = &repo.targets("targets").unwrap().signed;
        assert!(t
            .delegations
            .as_ref()
            .unwrap()
            .roles
            .as_ref()
            .unwrap()
            .is_empty());
        assert!(
            t.delegations.as_ref().unwrap().keys.is_empty(),
            "unused keys are pruned"
        );
        assert_eq!(
            repo.snapshot().unwrap().signed.meta["team-a.json"].version,
            1
        );
        repo.delegate("targets", role, keys, vec![team], now())
            .unwrap();
        repo.set_target("team-a", "namespaces/team-a/trust.json", b"2", None)
            .unwrap();
        repo.commit(now()).unwrap();
        assert_eq!(
            repo.snapshot().unwrap().signed.meta["team-a.json"].version,
            2
        );
    }

    fn bins(key: &SharedSigner) -> SuccinctRoles {
        SuccinctRoles {
            keyids: vec![key.key_id().clone()],
            threshold: NonZeroU32::MIN,
            bit_length: 2,
            name_prefix: "bins".into(),
            unrecognized: Unrecognized::new(),
        }
    }

    /// A repository delegating from targets to 4 hashed bins signed by
    /// `bin_key`, committed; returns it with the bins' layout.
    fn binned_repo() -> (
        Repository,
        SuccinctRoles,
        BTreeMap<RoleName, Vec<SharedSigner>>,
    ) {
        let targets_key = signer(Scheme::Ed25519);
        let snapshot_key = signer(Scheme::EcdsaP256Sha256);
        let timestamp_key = signer(Scheme::Ed25519);
        let mut repo = Repository::create(
            &[signer(Scheme::Ed25519)],
            1,
            [
                ("targets", vec![targets_key.clone()]),
                ("snapshot", vec![snapshot_key.clone()]),
                ("timestamp", vec![timestamp_key.clone()]),
            ],
            Options::default(),
            now(),
        )
        .unwrap();
        let layout = bins(&targets_key);
        repo.delegate_succinct(
            "targets",
            layout.clone(),
            vec![(
                targets_key.key_id().clone(),
                targets_key.public_key().clone(),
            )],
            vec![targets_key.clone()],
            now(),
        )
        .unwrap();
        let mut signers = BTreeMap::from([
            (RoleName::new("targets"), vec![targets_key.clone()]),
            (RoleName::new("snapshot"), vec![snapshot_key]),
            (RoleName::new("timestamp"), vec![timestamp_key]),
        ]);
        for bin in layout.bin_names() {
            signers.insert(bin, vec![targets_key.clone()]);
        }
        (repo, layout, signers)
    }

    #[test]
    fn succinct_bins_exist_from_the_first_commit_and_delegate_onwards() {
        let (mut repo, layout, mut signers) = binned_repo();
        let files = repo.commit(now()).unwrap();
        let mut all: BTreeMap<String, Vec<u8>> = files
            .iter()
            .map(|f| (f.path.clone(), f.bytes.to_vec()))
            .collect();
        for bin in ["bins-0", "bins-1", "bins-2", "bins-3"] {
            assert!(all.contains_key(&format!("metadata/1.{bin}.json")), "{bin}");
            assert_eq!(
                repo.snapshot().unwrap().signed.meta[&format!("{bin}.json")].version,
                1
            );
        }

        // A namespace delegated from the bin its path hashes to: only that
        // bin, the new role, snapshot and timestamp are signed.
        let team = signer(Scheme::Ed25519);
        let path = "namespaces/team-a/trust.json";
        let bin = layout.role_for_target(path);
        repo.delegate(
            bin.as_str(),
            delegated("team-a", &["namespaces/team-a/*"], &team),
            vec![(team.key_id().clone(), team.public_key().clone())],
            vec![team.clone()],
            now(),
        )
        .unwrap();
        repo.set_target("team-a", path, b"1", None).unwrap();
        let files = repo.commit(now()).unwrap();
        let mut names: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
        names.sort_unstable();
        let bin_file = format!("metadata/2.{bin}.json");
        assert_eq!(
            names,
            [
                "metadata/1.team-a.json",
                bin_file.as_str(),
                "metadata/2.snapshot.json",
                "metadata/timestamp.json"
            ]
        );
        for f in &files {
            all.insert(f.path.clone(), f.bytes.to_vec());
        }

        // A client follows targets -> bin -> team-a.
        let mut set = crate::client::TrustedSet::new(&all["metadata/1.root.json"], now()).unwrap();
        set.update_timestamp(&all["metadata/timestamp.json"])
            .unwrap();
        set.update_snapshot(&all["metadata/2.snapshot.json"], false)
            .unwrap();
        set.update_targets(&all["metadata/1.targets.json"]).unwrap();
        set.update_delegated_targets(&all[&bin_file], bin.as_str(), "targets")
            .unwrap();
        set.update_delegated_targets(&all["metadata/1.team-a.json"], "team-a", bin.as_str())
            .unwrap();

        // Restored, with the bins recognised as delegated by targets.
        signers.insert(RoleName::new("team-a"), vec![team]);
        let mut back = restore_from(&all, signers).unwrap();
        assert_eq!(published_files(&back), published_files(&repo));
        assert_eq!(back.delegated_roles().count(), 5);
        back.undelegate("team-a").unwrap();
        let names: Vec<String> = back
            .commit(now())
            .unwrap()
            .into_iter()
            .map(|f| f.path)
            .collect();
        assert!(
            names.contains(&format!("metadata/3.{bin}.json")),
            "{names:?}"
        );
        assert!(
            !names.iter().any(|n| n.ends_with("targets.json")),
            "{names:?}"
        );
    }

    #[test]
    fn succinct_delegation_refuses_a_delegator_with_named_roles_and_rekeys_every_bin() {
        let (mut repo, layout, _) = binned_repo();
        repo.commit(now()).unwrap();
        // Named delegations from targets cannot be added next to bins.
        let team = signer(Scheme::Ed25519);
        let err = repo
            .delegate(
                "targets",
                delegated("team-a", &["namespaces/team-a/*"], &team),
                vec![(team.key_id().clone(), team.public_key().clone())],
                vec![team.clone()],
                now(),
            )
            .unwrap_err();
        assert!(err.to_string().contains("succinct"), "{err}");

        // A new bin key: targets and every bin are re-signed, and verify.
        let new_key = signer(Scheme::Ed25519);
        repo.delegate_succinct(
            "targets",
            bins(&new_key),
            vec![(new_key.key_id().clone(), new_key.public_key().clone())],
            vec![new_key.clone()],
            now(),
        )
        .unwrap();
        let files = repo.commit(now()).unwrap();
        for bin in layout.bin_names() {
            let f = file(&files, &format!("metadata/2.{bin}.json"));
            let env = Envelope::<Targets>::parse(bin.as_str(), &f.bytes).unwrap();
            Authority::from_delegator(&repo.targets("targets").unwrap().signed, bin.as_str())
                .unwrap()
                .check(bin.as_str(), &env)
                .unwrap();
        }

        // A repository delegating by name cannot switch to bins.
        let (mut named, _) = new_repo();
        named
            .delegate(
                "targets",
                delegated("team-a", &["namespaces/team-a/*"], &team),
                vec![(team.key_id().clone(), team.public_key().clone())],
                vec![team],
                now(),
            )
            .unwrap();
        let err = named
            .delegate_succinct("targets", layout, vec![], vec![], now())
            .unwrap_err();
        assert!(err.to_string().contains("by name"), "{err}");
    }

    #[test]
    fn root_rotation_needs_old_and_new_thresholds() {
        let (mut repo, old) = new_repo();
        repo.commit(now()).unwrap();
        let new = signer(Scheme::EcdsaP256Sha256);
        let swap = |r: &mut Root| {
            let spec = RoleSpec::from_signers(std::slice::from_ref(&new), 1).unwrap();
            let (id, key) = spec.keys[0].clone();
            r.keys.insert(id.clone(), key);
            r.roles.get_mut("root").unwrap().keyids = vec![id];
        };
        let err = repo
            .rotate_root(swap, &[], std::slice::from_ref(&new), now())
            .unwrap_err();
        assert!(matches!(err, Error::ThresholdNotMet { .. }), "{err}");
        let err = repo
            .rotate_root(swap, std::slice::from_ref(&old), &[], now())
            .unwrap_err();
        assert!(matches!(err, Error::ThresholdNotMet { .. }), "{err}");
        repo.rotate_root(swap, &[old], std::slice::from_ref(&new), now())
            .unwrap();
        let files = repo.commit(now()).unwrap();
        assert!(files.iter().any(|f| f.path == "metadata/2.root.json"));
        assert_eq!(repo.root_history().count(), 2);
    }

    /// A signed root as `keyshare root merge` writes it: indented, with a
    /// final newline.
    fn ceremony_file(root: Root, by: &[&SharedSigner]) -> Vec<u8> {
        let refs: Vec<&dyn Signer> = by.iter().map(|s| s.as_ref() as &dyn Signer).collect();
        let mut bytes = serde_json::to_vec_pretty(&sign(root, &refs).unwrap()).unwrap();
        bytes.push(b'\n');
        bytes
    }

    #[test]
    fn a_root_signed_elsewhere_is_published_byte_for_byte() {
        let root_key = signer(Scheme::EcdsaP256Sha256);
        let online = [
            ("targets", signer(Scheme::Ed25519)),
            ("snapshot", signer(Scheme::Ed25519)),
            ("timestamp", signer(Scheme::Ed25519)),
        ];
        let spec = |s: &SharedSigner| RoleSpec::from_signers(std::slice::from_ref(s), 1).unwrap();
        let specs = [
            spec(&root_key),
            spec(&online[0].1),
            spec(&online[1].1),
            spec(&online[2].1),
        ];
        let root = build_root(
            1,
            now() + Duration::days(365),
            [
                ("root", &specs[0]),
                ("targets", &specs[1]),
                ("snapshot", &specs[2]),
                ("timestamp", &specs[3]),
            ],
        )
        .unwrap();
        let v1 = ceremony_file(root.clone(), &[&root_key]);
        let compact = to_bytes(&sign(root.clone(), &[root_key.as_ref()]).unwrap()).unwrap();
        assert_ne!(v1, compact);
        let signers: BTreeMap<RoleName, Vec<SharedSigner>> = online
            .iter()
            .map(|(role, s)| (RoleName::new(*role), vec![s.clone()]))
            .collect();
        let mut repo = Repository::new(&v1, signers.clone(), Options::default(), now()).unwrap();
        let mut all = BTreeMap::new();
        let files = repo.commit(now()).unwrap();
        assert_eq!(&file(&files, "metadata/1.root.json").bytes[..], &v1[..]);
        all.extend(files.into_iter().map(|f| (f.path, f.bytes.to_vec())));

        // A changed byte inside `signed` is refused; a changed layout is
        // the same signed root.
        let mut next = root;
        next.version = 2;
        let v2 = ceremony_file(next, &[&root_key]);
        let text = String::from_utf8(v2.clone()).unwrap();
        let tampered = text.replacen(
            "\"consistent_snapshot\": true",
            "\"consistent_snapshot\": false",
            1,
        );
        assert_ne!(tampered, text);
        let err = repo.add_root(tampered.as_bytes()).unwrap_err();
        assert!(matches!(err, Error::BadSignature { .. }), "{err}");
        assert_eq!(repo.root_history().count(), 1);
        repo.add_root(&v2).unwrap();
        let files = repo.commit(now()).unwrap();
        assert_eq!(&file(&files, "metadata/2.root.json").bytes[..], &v2[..]);
        all.extend(files.into_iter().map(|f| (f.path, f.bytes.to_vec())));

        // The same bytes in the current files, after a restore, and for a
        // client bootstrapped from either file.
        let restored = restore_from(&all, signers).unwrap();
        for published in [published_files(&repo), published_files(&restored)] {
            assert_eq!(published["metadata/1.root.json"], v1);
            assert_eq!(published["metadata/2.root.json"], v2);
        }
        assert_eq!(
            restored.root_history().collect::<Vec<_>>(),
            [&v1[..], &v2[..]]
        );
        let mut set = crate::client::TrustedSet::new(&v1, now()).unwrap();
        set.update_root(&v2).unwrap();
        crate::client::TrustedSet::new(&v2, now()).unwrap();
    }

    #[test]
    fn refresh_resigns_only_what_expires_soon() {
        let (mut repo, _) = new_repo();
        repo.commit(now()).unwrap();
        assert!(repo
            .refresh_expiring(now(), Duration::hours(1))
            .unwrap()
            .is_empty());
        let later = now() + Duration::hours(23);
        let files = repo.refresh_expiring(later, Duration::hours(2)).unwrap();
        let names: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            names,
            ["metadata/2.snapshot.json", "metadata/timestamp.json"]
        );
        assert_eq!(
            repo.timestamp().unwrap().signed.expires.time(),
            later + Duration::days(1)
        );
    }

    #[test]
    fn current_files_match_what_commits_published() {
        let (mut repo, _) = new_repo();
        let mut published = BTreeMap::new();
        for f in repo.commit(now()).unwrap() {
            published.insert(f.path.clone(), f);
        }
        repo.set_target("targets", "x", b"1", None).unwrap();
        for f in repo.commit(now()).unwrap() {
            published.insert(f.path.clone(), f);
        }
        for f in repo.current_files().unwrap() {
            assert_eq!(published.get(&f.path), Some(&f), "{}", f.path);
        }
    }

    #[test]
    fn bad_target_paths_are_refused() {
        let (mut repo, _) = new_repo();
        for bad in ["", "/abs", "a/../b", "a//b"] {
            assert!(
                repo.set_target("targets", bad, b"", None).is_err(),
                "{bad:?}"
            );
        }
    }

    fn published_files(repo: &Repository) -> BTreeMap<String, Vec<u8>> {
        repo.current_files()
            .unwrap()
            .into_iter()
            .map(|f| (f.path, f.bytes.to_vec()))
            .collect()
    }

    fn restore_from(
        files: &BTreeMap<String, Vec<u8>>,
        signers: BTreeMap<RoleName, Vec<SharedSigner>>,
    ) -> Result<Repository> {
        let mut published = Published::default();
        let mut n = 1;
        while let Some(root) = files.get(&format!("metadata/{n}.root.json")) {
            published.roots.push(root);
            n += 1;
        }
        published.timestamp = &files["metadata/timestamp.json"];
        let ts: Signed<Timestamp> = serde_json::from_slice(published.timestamp).unwrap();
        let v = ts.signed.snapshot_meta().version;
        published.snapshot = &files[&format!("metadata/{v}.snapshot.json")];
        let snap: Signed<Snapshot> = serde_json::from_slice(published.snapshot).unwrap();
        for (file, meta) in &snap.signed.meta {
            let name = file.strip_suffix(".json").unwrap();
            let path = format!("metadata/{}.{}.json", meta.version, encode_role(name));
            published.targets.insert(name.to_owned(), &files[&path]);
        }
        Repository::restore(&published, signers, Options::default())
    }

    #[test]
    fn restored_repository_continues_where_it_left_off() {
        let targets_key = signer(Scheme::Ed25519);
        let snapshot_key = signer(Scheme::EcdsaP256Sha256);
        let timestamp_key = signer(Scheme::Ed25519);
        let root_key = signer(Scheme::Ed25519);
        let mut repo = Repository::create(
            std::slice::from_ref(&root_key),
            1,
            [
                ("targets", vec![targets_key.clone()]),
                ("snapshot", vec![snapshot_key.clone()]),
                ("timestamp", vec![timestamp_key.clone()]),
            ],
            Options::default(),
            now(),
        )
        .unwrap();
        let team = signer(Scheme::Ed25519);
        let gone = signer(Scheme::Ed25519);
        for (name, key) in [("team-a", &team), ("team-old", &gone)] {
            repo.delegate(
                "targets",
                delegated(name, &[&format!("namespaces/{name}/*")], key),
                vec![(key.key_id().clone(), key.public_key().clone())],
                vec![key.clone()],
                now(),
            )
            .unwrap();
        }
        let mut all = BTreeMap::new();
        let mut keep = |files: Vec<File>| {
            for f in files {
                all.insert(f.path.clone(), f.bytes.to_vec());
            }
        };
        keep(vec![repo
            .set_target("team-a", "namespaces/team-a/trust.json", b"1", None)
            .unwrap()]);
        keep(repo.commit(now()).unwrap());
        repo.undelegate("team-old").unwrap();
        keep(repo.commit(now()).unwrap());
        let new_root = signer(Scheme::Ed25519);
        let spec = RoleSpec::from_signers(std::slice::from_ref(&new_root), 1).unwrap();
        repo.rotate_root(
            |r| {
                let (id, key) = spec.keys[0].clone();
                r.keys.insert(id.clone(), key);
                r.roles.get_mut("root").unwrap().keyids = vec![id];
            },
            &[root_key],
            &[new_root],
            now(),
        )
        .unwrap();
        keep(repo.commit(now()).unwrap());
        assert_eq!(published_files(&repo).len(), 2 + 3 + 2);

        let signers = BTreeMap::from([
            (RoleName::new("targets"), vec![targets_key]),
            (RoleName::new("snapshot"), vec![snapshot_key]),
            (RoleName::new("timestamp"), vec![timestamp_key]),
            (RoleName::new("team-a"), vec![team]),
        ]);
        let mut back = restore_from(&all, signers).unwrap();
        assert_eq!(published_files(&back), published_files(&repo));
        assert_eq!(back.root().signed.version, 2);
        assert_eq!(
            back.delegated_roles()
                .map(|r| r.as_str())
                .collect::<Vec<_>>(),
            ["team-a"]
        );
        assert!(
            back.commit(now()).unwrap().is_empty(),
            "nothing is staged after a restore"
        );

        back.set_target("team-a", "namespaces/team-a/trust.json", b"2", None)
            .unwrap();
        let files = back.commit(now()).unwrap();
        let names: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
        assert!(names.contains(&"metadata/2.team-a.json"), "{names:?}");
        assert!(names.contains(&"metadata/4.snapshot.json"), "{names:?}");
        assert!(!names.iter().any(|n| n.ends_with("root.json")), "{names:?}");
        let snap = back.snapshot().unwrap();
        assert_eq!(
            snap.signed.meta["team-old.json"].version, 1,
            "removed role stays listed"
        );

        // A client that trusts root v1 follows the restored repository.
        for f in files {
            all.insert(f.path.clone(), f.bytes.to_vec());
        }
        let mut set = crate::client::TrustedSet::new(&all["metadata/1.root.json"], now()).unwrap();
        set.update_root(&all["metadata/2.root.json"]).unwrap();
        set.update_timestamp(&all["metadata/timestamp.json"])
            .unwrap();
        set.update_snapshot(&all["metadata/4.snapshot.json"], false)
            .unwrap();
        set.update_targets(&all["metadata/2.targets.json"]).unwrap();
        set.update_delegated_targets(&all["metadata/2.team-a.json"], "team-a", "targets")
            .unwrap();
    }

    #[test]
    fn restore_refuses_tampered_or_missing_files() {
        let (mut repo, _) = new_repo();
        let team = signer(Scheme::Ed25519);
        repo.delegate(
            "targets",
            delegated("team-a", &["namespaces/team-a/*"], &team),
            vec![(team.key_id().clone(), team.public_key().clone())],
            vec![team],
            now(),
        )
        .unwrap();
        repo.commit(now()).unwrap();
        let good = published_files(&repo);
        assert!(restore_from(&good, BTreeMap::new()).is_ok());

        // A role re-signed by a key its delegator does not list.
        let mut forged = good.clone();
        let mut team_a: Signed<Targets> =
            serde_json::from_slice(&forged["metadata/1.team-a.json"]).unwrap();
        team_a
            .signed
            .targets
            .insert("namespaces/team-a/x".into(), TargetFile::from_bytes(b"x"));
        let intruder = InMemorySigner::generate(Scheme::Ed25519).unwrap();
        let resigned = sign(team_a.signed, &[&intruder]).unwrap();
        forged.insert(
            "metadata/1.team-a.json".into(),
            to_bytes(&resigned).unwrap(),
        );
        let err = restore_from(&forged, BTreeMap::new()).unwrap_err();
        assert!(
            matches!(&err, Error::ThresholdNotMet { role, .. } if role.as_str() == "team-a"),
            "{err}"
        );

        // A timestamp signed by the wrong key.
        let mut bad_ts = good.clone();
        let ts: Signed<Timestamp> =
            serde_json::from_slice(&bad_ts["metadata/timestamp.json"]).unwrap();
        bad_ts.insert(
            "metadata/timestamp.json".into(),
            to_bytes(&sign(ts.signed, &[&intruder]).unwrap()).unwrap(),
        );
        let err = restore_from(&bad_ts, BTreeMap::new()).unwrap_err();
        assert!(matches!(err, Error::ThresholdNotMet { .. }), "{err}");

        // A snapshot that is not the one timestamp lists.
        let mut bad_snap = good;
        let snap = bad_snap.get_mut("metadata/1.snapshot.json").unwrap();
        snap.push(b' ');
        let err = restore_from(&bad_snap, BTreeMap::new()).unwrap_err();
        assert!(matches!(err, Error::LengthMismatch { .. }), "{err}");
    }
}
