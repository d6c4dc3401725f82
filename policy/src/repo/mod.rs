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
//! Layout of the files it produces (relative to the repository's base; the
//! names come from [`crate::layout`]):
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
//!
//! The builder is split by job: `options` (expiries, options, the
//! top-level role specs of a new root), `stage` (changes staged for the
//! next commit: targets, delegations, roots), `commit` (signing the staged
//! changes, snapshot and timestamp; re-signing what expires), `canonical`
//! (each role's targets kept as canonical JSON, so re-signing a bin does
//! not serialise every target again) and `restore` (rebuilding the state
//! from published files).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use time::OffsetDateTime;

use self::canonical::CanonicalTargets;
use crate::error::{Error, Result};
use crate::metadata::{
    Delegations, KeyId, RoleName, Root, Signed, Snapshot, Targets, Timestamp, Unrecognized,
};
use crate::sign::{sign, to_bytes, Signer};

mod canonical;
mod commit;
mod options;
mod restore;
mod stage;
#[cfg(test)]
mod tests;

pub use options::{build_root, empty_targets, Expiries, Options, RoleSpec, SharedSigner};

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
    /// Where `staged` may differ from `published` besides version and
    /// expiry (see [`Changed`]).
    changed: Changed,
    /// Who delegates this role (`None` for top-level targets or a removed delegation).
    delegator: Option<RoleName>,
    /// The canonical JSON of `staged.targets`, made when the role is first
    /// signed in place and kept up to date by every change of its targets
    /// (`None` until then, or after a change it could not follow).
    canonical: Option<CanonicalTargets>,
}

impl TargetsRole {
    /// A role as it was published (restored, or committed as `staged` is).
    fn new(published: Option<Signed<Targets>>, staged: Targets, dirty: bool) -> Self {
        Self {
            published,
            staged,
            dirty,
            changed: Changed::default(),
            delegator: None,
            canonical: None,
        }
    }

    /// Lists `file` at `path` in the staged content (which does not list
    /// it so already), and records the change.
    fn set_staged_target(&mut self, path: &str, file: crate::metadata::TargetFile) {
        if let Some(memo) = self.canonical.as_mut() {
            if memo.set(path, &file).is_err() {
                // Not canonical JSON: the commit says why, from the role.
                self.canonical = None;
            }
        }
        self.staged.targets.insert(path.to_owned(), file);
        self.changed.paths.insert(path.to_owned());
        self.dirty = true;
    }
}

/// What was staged in a role since it was last published, beyond its
/// version and expiry. A commit signs a role's `staged` content where it
/// is (no copy of the whole role) and keeps it as the published version;
/// the superseded published content then becomes `staged` again, brought
/// up to date by copying only what is recorded here.
#[derive(Clone, Debug, Default)]
struct Changed {
    /// Target paths set or removed.
    paths: BTreeSet<String>,
    /// Whether `delegations` may differ.
    delegations: bool,
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
            TargetsRole::new(None, empty_targets(1, expires), true),
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

    /// The role that delegates `role`, if one does (`None` for top-level
    /// targets, an unknown role, or one whose delegation was removed).
    pub fn delegator(&self, role: &str) -> Option<&RoleName> {
        self.targets.get(role).and_then(|r| r.delegator.as_ref())
    }

    /// Replaces the signers of a role (online key rotation). For top-level
    /// roles the new keys must already be in root; for delegated roles the
    /// delegator must list them, see [`delegate`](Self::delegate).
    pub fn set_signers(&mut self, role: &str, signers: Vec<SharedSigner>) {
        self.signers.insert(RoleName::new(role), signers);
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
