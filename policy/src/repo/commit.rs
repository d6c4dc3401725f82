//! Turning staged changes into one consistent set of new files: each
//! changed targets role, then snapshot, then timestamp; and re-signing what
//! is about to expire.

use std::collections::BTreeMap;
use std::sync::Arc;

use time::{Duration, OffsetDateTime};

use crate::datetime::Expires;
use crate::error::{Error, Result};
use crate::layout::{metadata_path, TIMESTAMP_PATH};
use crate::metadata::{
    Delegations, KeyId, MetaFile, Role, RoleName, Signature, Signed, Snapshot, Targets, Timestamp,
    Unrecognized, SPEC_VERSION,
};
use crate::sign::{sign, signatures, signatures_over, to_bytes, Signer};

use super::canonical::{signed_bytes, CanonicalTargets};
use super::{prune_keys, File, Repository, SharedSigner, TargetsRole};

impl Repository {
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
        // A changed role is signed where it is staged: its version and
        // expiry are set there, and put back if the commit fails.
        let mut undo = Vec::with_capacity(dirty.len());
        let committed = self.sign_and_apply(now, &dirty, &mut undo, timestamp_fields);
        if committed.is_err() {
            for (name, version, expires) in undo {
                if let Some(r) = self.targets.get_mut(&name) {
                    r.staged.version = version;
                    r.staged.expires = expires;
                }
            }
        }
        committed
    }

    /// [`commit_with`](Self::commit_with) once it is known that something
    /// is due: signs everything first and applies it only when all of it
    /// succeeded. The version and expiry of each role signed in place are
    /// pushed to `undo` before they are changed.
    fn sign_and_apply<E: From<Error>>(
        &mut self,
        now: OffsetDateTime,
        dirty: &[RoleName],
        undo: &mut Vec<(RoleName, u64, Expires)>,
        timestamp_fields: impl FnOnce(&[String]) -> std::result::Result<Unrecognized, E>,
    ) -> std::result::Result<Vec<File>, E> {
        let mut new_roles: BTreeMap<RoleName, NewRole> = BTreeMap::new();
        let mut files = Vec::with_capacity(dirty.len() + 3);
        for name in dirty {
            let period = if name.as_str() == RoleName::TARGETS {
                self.options.expiries.targets
            } else {
                self.options.expiries.delegated
            };
            let signers = signer_refs(&self.signers, name.as_str())?;
            let Some(r) = self.targets.get_mut(name) else {
                continue;
            };
            let version = r.published.as_ref().map_or(1, |p| p.signed.version + 1);
            let expires = Expires::new(now + period);
            let prunes = r.staged.delegations.as_ref().is_some_and(prunes_keys);
            let (signed, bytes) = if r.published.is_none() || prunes {
                // A new role, or one whose delegations drop keys no role
                // uses any more: the published version is a pruned copy.
                let mut t = r.staged.clone();
                t.version = version;
                t.expires = expires;
                if let Some(d) = t.delegations.as_mut() {
                    prune_keys(d);
                }
                let signed = sign(t, &signers)?;
                let bytes: Arc<[u8]> = to_bytes(&signed)?.into();
                (Signing::Copy(Box::new(signed)), bytes)
            } else {
                undo.push((name.clone(), r.staged.version, r.staged.expires));
                r.staged.version = version;
                r.staged.expires = expires;
                let (signatures, bytes) = sign_in_place(r, &signers)?;
                (Signing::InPlace(signatures), bytes.into())
            };
            files.push(File {
                path: metadata_path(name.as_str(), version),
                bytes: bytes.clone(),
                immutable: true,
            });
            new_roles.insert(
                name.clone(),
                NewRole {
                    version,
                    bytes,
                    signed,
                },
            );
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
        // Nothing fails from here on.
        for (name, new) in new_roles {
            if let Some(r) = self.targets.get_mut(&name) {
                r.keep_published(new.signed);
            }
        }
        self.snapshot = Some((snapshot, snapshot_bytes));
        self.timestamp = Some((timestamp, timestamp_bytes));
        self.published_roots = self.root_history.len();
        self.pending = false;
        Ok(files)
    }

    fn sign_snapshot(
        &self,
        new_roles: &BTreeMap<RoleName, NewRole>,
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
        for (name, new) in new_roles {
            meta.insert(
                format!("{name}.json"),
                self.meta_entry(new.version, &new.bytes),
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
        let snapshot = sign(snapshot, &signer_refs(&self.signers, RoleName::SNAPSHOT)?)?;
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
        sign(timestamp, &signer_refs(&self.signers, RoleName::TIMESTAMP)?)
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

/// A targets role signed by a commit that has not applied yet.
struct NewRole {
    version: u64,
    /// The file's bytes.
    bytes: Arc<[u8]>,
    signed: Signing,
}

/// How a role was signed.
enum Signing {
    /// Its staged content, where it is: these are its signatures.
    InPlace(Vec<Signature>),
    /// A copy of its staged content (a new role, or pruned keys).
    Copy(Box<Signed<Targets>>),
}

impl TargetsRole {
    /// Makes what a commit signed this role's published version.
    fn keep_published(&mut self, signed: Signing) {
        match (signed, self.published.as_mut()) {
            (Signing::InPlace(signatures), Some(published)) => {
                // `staged` is the new published content; the superseded
                // one becomes `staged`, brought up to date by copying what
                // changed since (a few targets, not the whole role).
                std::mem::swap(&mut published.signed, &mut self.staged);
                published.signatures = signatures;
                published.unrecognized = Unrecognized::new();
                let (new, stale) = (&published.signed, &mut self.staged);
                stale.version = new.version;
                stale.expires = new.expires;
                for path in std::mem::take(&mut self.changed.paths) {
                    match new.targets.get(&path) {
                        Some(file) => {
                            stale.targets.insert(path, file.clone());
                        }
                        None => {
                            stale.targets.remove(&path);
                        }
                    }
                }
                if self.changed.delegations {
                    stale.delegations = new.delegations.clone();
                    self.changed.delegations = false;
                }
                debug_assert!(
                    *stale == *new,
                    "a role's staged content is its published one after a commit"
                );
            }
            (Signing::Copy(signed), _) => {
                self.staged.version = signed.signed.version;
                self.staged.expires = signed.signed.expires;
                self.published = Some(*signed);
                // The targets are the published ones; the delegations may
                // still list keys the published copy pruned.
                self.changed.paths.clear();
                self.changed.delegations = true;
            }
            (Signing::InPlace(_), None) => {}
        }
        self.dirty = false;
    }
}

/// The signers of `role`, at least one.
fn signer_refs<'a>(
    signers: &'a BTreeMap<RoleName, Vec<SharedSigner>>,
    role: &str,
) -> Result<Vec<&'a dyn Signer>> {
    let signers = signers
        .get(role)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| Error::Sign(format!("no signing key for role `{role}`")))?;
    Ok(signers.iter().map(|s| s.as_ref()).collect())
}

/// Whether [`prune_keys`] would drop a key from `d`.
fn prunes_keys(d: &Delegations) -> bool {
    let used = |id: &KeyId| {
        d.roles.iter().flatten().any(|r| r.keyids.contains(id))
            || d.succinct_roles.iter().any(|s| s.keyids.contains(id))
    };
    d.keys.keys().any(|id| !used(id))
}

/// Signs `r.staged` where it is, and writes its file. The canonical bytes
/// come from the role's memo of its targets when they determine them (a
/// role without delegations or unknown fields: every hashed bin), made on
/// the role's first signing; the file is then those bytes in the envelope
/// when they are strict JSON. Otherwise both are written from the role.
fn sign_in_place(
    r: &mut TargetsRole,
    signers: &[&dyn Signer],
) -> Result<(Vec<Signature>, Vec<u8>)> {
    if r.staged.delegations.is_none() && r.staged.unrecognized.is_empty() {
        // Made on first use; made again should it ever not list as many
        // targets as the role (a change it did not follow): what is signed
        // and published must be the role's targets, never a stale copy.
        if r.canonical.as_ref().map(CanonicalTargets::len) != Some(r.staged.targets.len()) {
            r.canonical = Some(CanonicalTargets::new(&r.staged.targets)?);
        }
        if let Some(memo) = &r.canonical {
            if let Some((canonical, strict)) = signed_bytes(&r.staged, memo)? {
                let signatures = signatures_over(&canonical, signers)?;
                if !strict {
                    return envelope_bytes(signatures, &r.staged);
                }
                let mut bytes = Vec::with_capacity(canonical.len() + 64 + 160 * signatures.len());
                bytes.extend_from_slice(b"{\"signatures\":");
                serde_json::to_writer(&mut bytes, &signatures).map_err(|e| Error::Malformed {
                    what: Targets::TYPE.to_owned(),
                    path: ".signatures".to_owned(),
                    message: format!("cannot be written as JSON: {e}"),
                })?;
                bytes.extend_from_slice(b",\"signed\":");
                bytes.extend_from_slice(&canonical);
                bytes.push(b'}');
                return Ok((signatures, bytes));
            }
        }
    }
    let signatures = signatures(&r.staged, signers)?;
    envelope_bytes(signatures, &r.staged)
}

/// The file of the envelope of `signed` with `signatures`: the bytes
/// [`to_bytes`] writes for that envelope. The signatures are handed back.
fn envelope_bytes(
    signatures: Vec<Signature>,
    signed: &Targets,
) -> Result<(Vec<Signature>, Vec<u8>)> {
    let envelope = Signed {
        signatures,
        signed,
        unrecognized: Unrecognized::new(),
    };
    let bytes = serde_json::to_vec(&envelope).map_err(|e| Error::Malformed {
        what: Targets::TYPE.to_owned(),
        path: ".".to_owned(),
        message: format!("cannot be written as JSON: {e}"),
    })?;
    Ok((envelope.signatures, bytes))
}
