//! The trusted metadata collection: every check of the specification's
//! client workflow (§5.3–§5.6) on bytes handed in by the caller.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::sync::Arc;

use time::OffsetDateTime;

use super::Config;
use crate::error::{Error, Result};
use crate::metadata::{Envelope, KeyId, Role, RoleName, Root, Snapshot, Targets, Timestamp};
use crate::verify::{
    verify_root_self_cached, verify_root_successor, Authority, SignatureCache, Verified,
};

/// What [`TrustedSet::update_timestamp`] did with a valid timestamp.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimestampUpdate {
    /// The new timestamp is now trusted: persist it.
    Updated,
    /// It has the trusted version: the trusted one is kept and nothing
    /// needs persisting (normal when nothing was published; not an error).
    Unchanged,
}

/// The spec's trusted metadata collection, sans IO, after python-tuf's
/// `TrustedMetadataSet`.
///
/// Metadata is loaded in the order root → timestamp → snapshot → targets →
/// delegated targets; loading out of order is [`Error::Order`]. Each
/// `update_*` method runs the specification's checks in its order, every
/// length limit before parsing, and stores only [`Verified`] values.
///
/// **Intermediate metadata.** Like python-tuf, a timestamp that verifies but
/// has expired, and a snapshot that verifies but has expired or does not
/// have the version the timestamp lists, are *kept* even though the update
/// returns the error ([`Error::Expired`], [`Error::VersionMismatch`]): a
/// newer file can still be loaded on top and is then checked for rollback
/// against them, while the next step of the order refuses to start until a
/// valid final file is loaded. That is how an expired or outdated cached file
/// still protects against rollback. Roots are intermediate the same way until
/// [`TrustedSet::update_timestamp`] checks the final one for expiry.
#[derive(Clone, Debug)]
pub struct TrustedSet {
    config: Config,
    now: OffsetDateTime,
    root: Arc<Verified<Root>>,
    /// The file the trusted root was loaded from.
    root_file: FileId,
    timestamp: Option<Verified<Timestamp>>,
    snapshot: Option<Arc<Verified<Snapshot>>>,
    /// The file the snapshot was loaded from.
    snapshot_file: Option<FileId>,
    /// Every targets role loaded, by name: as verified, its file, the
    /// delegators it was verified for. One map, looked up by hash: a
    /// refresh stores and looks up hundreds of hashed bins.
    targets: HashMap<RoleName, Loaded>,
    /// Signatures of the caller's earlier refreshes that verified
    /// ([`Self::set_signature_cache`]).
    signatures: Option<Arc<SignatureCache>>,
    /// Delegated roles an earlier refresh verified
    /// ([`Self::set_earlier_roles`]).
    earlier: Option<Arc<EarlierRoles>>,
}

/// A targets role of [`TrustedSet`].
#[derive(Clone, Debug)]
struct Loaded {
    verified: Arc<Verified<Targets>>,
    /// The length and SHA-256 of the file it was verified from (or
    /// adopted with).
    file: Arc<FileId>,
    /// The delegator it was first verified for, and any others (python-tuf
    /// loads a role again for another delegator).
    delegator: RoleName,
    more: Vec<RoleName>,
}

impl Loaded {
    fn verified_for(&self, delegator: &str) -> bool {
        self.delegator.as_str() == delegator || self.more.iter().any(|d| d.as_str() == delegator)
    }
}

/// The length and SHA-256 (hex) of a metadata file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileId {
    /// Bytes.
    pub length: u64,
    /// SHA-256, lowercase hex.
    pub sha256: String,
}

/// Delegated roles an earlier refresh verified, with the file each came
/// from: what [`TrustedSet::adopt_delegated_targets`] may take over
/// instead of reading and parsing the file again.
#[derive(Clone, Debug, Default)]
pub struct EarlierRoles {
    roles: HashMap<RoleName, Earlier>,
    /// The snapshot that refresh ended with, and its file: the next
    /// refresh's cached snapshot, taken over rather than parsed again.
    snapshot: Option<(FileId, Arc<Verified<Snapshot>>)>,
    /// The root that refresh trusted in the end, and its file: the next
    /// refresh's trusted root, taken over rather than parsed again.
    root: Option<(FileId, Arc<Verified<Root>>)>,
}

/// One role of [`EarlierRoles`]: as verified, its file, and the digest of
/// the keys and threshold it was verified with.
#[derive(Clone, Debug)]
struct Earlier {
    verified: Arc<Verified<Targets>>,
    file: Arc<FileId>,
    authority: Option<[u8; 32]>,
}

impl EarlierRoles {
    /// Roles held.
    pub fn len(&self) -> usize {
        self.roles.len()
    }

    /// True when none are held.
    pub fn is_empty(&self) -> bool {
        self.roles.is_empty()
    }
}

impl TrustedSet {
    /// Loads the trusted root (verified by its own root role only: it is the
    /// source of trust), with python-tuf's default limits.
    ///
    /// `now` is the fixed update start time every expiry is checked against.
    /// The root may have expired: a newer one can still be loaded on top.
    pub fn new(root_bytes: &[u8], now: OffsetDateTime) -> Result<Self> {
        Self::with_config(root_bytes, now, Config::default())
    }

    /// Like [`Self::new`], with explicit limits.
    pub fn with_config(root_bytes: &[u8], now: OffsetDateTime, config: Config) -> Result<Self> {
        Self::with_signature_cache(root_bytes, now, config, None)
    }

    /// [`Self::with_config`] with a [`SignatureCache`] from the start
    /// ([`Self::set_signature_cache`]), so the trusted root's own
    /// signatures, unchanged since the last refresh, are not verified again.
    pub fn with_signature_cache(
        root_bytes: &[u8],
        now: OffsetDateTime,
        config: Config,
        signatures: Option<Arc<SignatureCache>>,
    ) -> Result<Self> {
        Self::with_earlier_roles(root_bytes, now, config, signatures, None)
    }

    /// [`Self::with_signature_cache`], then [`Self::set_earlier_roles`];
    /// when `root_bytes` is the very file (length and SHA-256) of the root
    /// that earlier refresh trusted in the end, that root is taken over
    /// rather than parsed again, its signatures checked against its own
    /// root keys as any trusted root's are (a [`SignatureCache`] makes
    /// that a lookup).
    pub fn with_earlier_roles(
        root_bytes: &[u8],
        now: OffsetDateTime,
        config: Config,
        signatures: Option<Arc<SignatureCache>>,
        earlier: Option<Arc<EarlierRoles>>,
    ) -> Result<Self> {
        check_size(RoleName::ROOT, root_bytes, config.root_max_length)?;
        let root_file = FileId {
            length: root_bytes.len() as u64,
            sha256: crate::hash::sha256_hex(root_bytes),
        };
        let same = earlier
            .as_ref()
            .and_then(|e| e.root.as_ref())
            .filter(|(file, _)| *file == root_file)
            .map(|(_, root)| root.clone());
        let root = match same {
            Some(root) => {
                Authority::from_root(&root, RoleName::ROOT)?.check_cached(
                    RoleName::ROOT,
                    root.envelope(),
                    signatures.as_deref(),
                )?;
                root
            }
            None => Arc::new(verify_root_self_cached(
                Envelope::parse(RoleName::ROOT, root_bytes)?,
                signatures.as_deref(),
            )?),
        };
        Ok(Self {
            config,
            now,
            root,
            root_file,
            timestamp: None,
            snapshot: None,
            snapshot_file: None,
            targets: HashMap::new(),
            signatures,
            earlier,
        })
    }

    /// Delegated roles an earlier refresh of the same repository verified
    /// ([`Self::earlier_roles`] of that refresh), for
    /// [`Self::adopt_delegated_targets`].
    pub fn set_earlier_roles(&mut self, earlier: Arc<EarlierRoles>) {
        self.earlier = Some(earlier);
    }

    /// The delegated roles this refresh verified or adopted, with their
    /// files, for the next refresh ([`Self::set_earlier_roles`]); not the
    /// top-level `targets`, which every refresh loads itself.
    pub fn earlier_roles(&self) -> EarlierRoles {
        let mut digests = AuthorityDigests::default();
        let roles = self
            .targets
            .iter()
            .filter(|(role, _)| role.as_str() != RoleName::TARGETS)
            .map(|(role, loaded)| {
                // The keys of its first delegator by name, as the pairs
                // of role and delegator sorted once gave.
                let delegator = std::iter::once(&loaded.delegator)
                    .chain(&loaded.more)
                    .min()
                    .unwrap_or(&loaded.delegator);
                let authority = digests.of(self, role.as_str(), delegator.as_str());
                (
                    role.clone(),
                    Earlier {
                        verified: loaded.verified.clone(),
                        file: loaded.file.clone(),
                        authority,
                    },
                )
            })
            .collect();
        let snapshot = self.snapshot_file.clone().zip(self.snapshot.clone());
        let root = Some((self.root_file.clone(), self.root.clone()));
        EarlierRoles {
            roles,
            snapshot,
            root,
        }
    }

    /// The length and SHA-256 of the file the delegated role `role` was
    /// verified from (or adopted with), if it is loaded.
    pub fn delegated_file(&self, role: &str) -> Option<&FileId> {
        self.targets.get(role).map(|l| &*l.file)
    }

    /// Loads the delegated role `role` (delegated by `delegator`) as an
    /// earlier refresh verified it, without its file, when that is the
    /// version the snapshot lists now (and, where the snapshot lists them,
    /// its length and SHA-256): every check of
    /// [`Self::update_delegated_targets`] but reading the file runs again,
    /// the signatures against the keys `delegator` gives the role *now*
    /// (a [`SignatureCache`] makes that a lookup) and the expiry. `Ok(false)`
    /// when there is nothing to take over or any check fails: the caller
    /// then loads the file as usual, which reports the failure.
    pub fn adopt_delegated_targets(&mut self, role: &str, delegator: &str) -> Result<bool> {
        self.adopt_with(role, delegator, &mut AuthorityDigests::default())
    }

    /// [`Self::adopt_delegated_targets`] with the authority digests of this
    /// walk's level (the hashed bins share one).
    pub(crate) fn adopt_with(
        &mut self,
        role: &str,
        delegator: &str,
        digests: &mut AuthorityDigests,
    ) -> Result<bool> {
        let Some(earlier) = self.earlier.clone() else {
            return Ok(false);
        };
        let Some(found) = earlier.roles.get(role) else {
            return Ok(false);
        };
        if !self.may_adopt(role, delegator, found, digests)? {
            return Ok(false);
        }
        self.store_targets(
            RoleName::new(role),
            RoleName::new(delegator),
            found.verified.clone(),
            found.file.clone(),
        );
        Ok(true)
    }

    /// [`Self::adopt_with`] for a whole level of the walk: `level` holds
    /// `(role, delegator)` pairs, `loaded` (as long) says which are loaded
    /// already and is set for each role taken over. Every role gets every
    /// check [`Self::adopt_with`] runs, one by one; the roles taken over
    /// are stored under the names the level already holds (shared, not
    /// copied).
    pub(crate) fn adopt_level(
        &mut self,
        level: &[(RoleName, RoleName)],
        loaded: &mut [bool],
    ) -> Result<()> {
        let Some(earlier) = self.earlier.clone() else {
            return Ok(());
        };
        if earlier.roles.is_empty() {
            return Ok(());
        }
        self.targets.reserve(level.len());
        let mut digests = AuthorityDigests::default();
        for ((role, delegator), loaded) in level.iter().zip(loaded.iter_mut()) {
            if *loaded {
                continue;
            }
            let Some(found) = earlier.roles.get(role.as_str()) else {
                continue;
            };
            if self.may_adopt(role.as_str(), delegator.as_str(), found, &mut digests)? {
                *loaded = true;
                self.store_targets(
                    role.clone(),
                    delegator.clone(),
                    found.verified.clone(),
                    found.file.clone(),
                );
            }
        }
        Ok(())
    }

    /// Whether `found`, the earlier refresh's `role`, may be taken over as
    /// delegated by `delegator`: the snapshot (final) lists the version it
    /// has and, where it lists them, the length and SHA-256 of its file; it
    /// has not expired; its signatures meet the keys and threshold
    /// `delegator` gives it now (checked again unless the digest of those
    /// is the one it was verified under).
    fn may_adopt(
        &self,
        role: &str,
        delegator: &str,
        found: &Earlier,
        digests: &mut AuthorityDigests,
    ) -> Result<bool> {
        let Earlier {
            verified: earlier,
            file,
            authority: earlier_authority,
        } = found;
        let snapshot = self.check_final_snapshot()?;
        let Some(meta) = snapshot.role_meta(role) else {
            return Ok(false);
        };
        let same_file = meta.version == earlier.version
            && meta.length.is_none_or(|l| l == file.length)
            && meta.hashes.as_ref().is_none_or(|hashes| {
                hashes.len() == 1 && hashes.get("sha256") == Some(&file.sha256)
            });
        if !same_file || check_expiry(role, earlier.signed(), self.now).is_err() {
            return Ok(false);
        }
        // The same envelope under the very keys and threshold it was
        // verified with verifies again; under any others, check it.
        let same_keys =
            earlier_authority.is_some() && digests.of(self, role, delegator) == *earlier_authority;
        if !same_keys {
            let Some(parent) = self.targets.get(delegator).map(|l| &l.verified) else {
                return Ok(false);
            };
            let Ok(authority) = Authority::from_delegator(parent, role) else {
                return Ok(false);
            };
            let signed =
                authority.check_cached(role, earlier.envelope(), self.signatures.as_deref());
            if signed.is_err() {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Remembers signatures that verify in `cache`, and counts the ones it
    /// remembers without verifying them again: for a caller that refreshes
    /// the same repository again and again and keeps `cache` across
    /// refreshes ([`SignatureCache`]). Every other check (hashes and
    /// lengths, versions, expiry, rollback) runs as always.
    pub fn set_signature_cache(&mut self, cache: Arc<SignatureCache>) {
        self.signatures = Some(cache);
    }

    /// The limits in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The fixed update start time.
    pub fn now(&self) -> OffsetDateTime {
        self.now
    }

    /// The trusted root.
    pub fn root(&self) -> &Verified<Root> {
        &self.root
    }

    /// The trusted timestamp, if loaded (possibly intermediate).
    pub fn timestamp(&self) -> Option<&Verified<Timestamp>> {
        self.timestamp.as_ref()
    }

    /// The trusted snapshot, if loaded (possibly intermediate).
    pub fn snapshot(&self) -> Option<&Verified<Snapshot>> {
        self.snapshot.as_deref()
    }

    /// [`Self::snapshot`], shared.
    pub fn snapshot_shared(&self) -> Option<Arc<Verified<Snapshot>>> {
        self.snapshot.clone()
    }

    /// The trusted metadata of targets role `role` (`targets` for the
    /// top-level role), if loaded.
    pub fn targets(&self, role: &str) -> Option<&Verified<Targets>> {
        self.targets.get(role).map(|l| &*l.verified)
    }

    /// True when `role` was loaded and verified with the keys `delegator`
    /// gives it (python-tuf loads a role again for another delegator).
    pub fn contains(&self, role: &str, delegator: &str) -> bool {
        self.targets
            .get(role)
            .is_some_and(|l| l.verified_for(delegator))
    }

    /// Whether the trusted root says the repository uses consistent snapshots.
    pub fn consistent_snapshot(&self) -> bool {
        self.root.consistent_snapshot.unwrap_or(false)
    }

    /// Verifies `bytes` as root version N+1 and makes it the trusted root
    /// (§5.3.3–5.3.7).
    ///
    /// Checks, in order: size ([`Error::Oversized`]); parsing; a threshold of
    /// the trusted root's root keys *and* of the new root's own root keys
    /// ([`Error::ThresholdNotMet`], [`Error::BadSignature`]); version exactly
    /// N+1 ([`Error::RootVersion`]). Expiry is not checked here: an
    /// intermediate root may have expired.
    pub fn update_root(&mut self, bytes: &[u8]) -> Result<&Verified<Root>> {
        if self.timestamp.is_some() {
            return Err(Error::Order(
                "root cannot be updated once a timestamp is loaded".into(),
            ));
        }
        check_size(RoleName::ROOT, bytes, self.config.root_max_length)?;
        let new = verify_root_successor(&self.root, Envelope::parse(RoleName::ROOT, bytes)?)?;
        let trusted = self.root.version;
        let expected = trusted.checked_add(1).unwrap_or(trusted);
        if new.version != expected || expected == trusted {
            return Err(Error::RootVersion {
                expected,
                received: new.version,
            });
        }
        self.root = Arc::new(new);
        self.root_file = FileId {
            length: bytes.len() as u64,
            sha256: crate::hash::sha256_hex(bytes),
        };
        Ok(&self.root)
    }

    /// Verifies `bytes` as a new timestamp (§5.3.10, §5.4).
    ///
    /// Checks, in order: the trusted (final) root has not expired
    /// ([`Error::Expired`] for `root`); size; parsing; signatures by the
    /// root's timestamp keys; against a trusted timestamp, its version
    /// ([`Error::Rollback`] if lower, [`TimestampUpdate::Unchanged`] if equal)
    /// and the snapshot version it lists ([`Error::Rollback`] for `snapshot`);
    /// then stores it and checks its expiry ([`Error::Expired`], the
    /// timestamp stays loaded as intermediate).
    pub fn update_timestamp(&mut self, bytes: &[u8]) -> Result<TimestampUpdate> {
        if self.snapshot.is_some() {
            return Err(Error::Order(
                "timestamp cannot be updated once a snapshot is loaded".into(),
            ));
        }
        check_expiry(RoleName::ROOT, self.root.signed(), self.now)?;
        check_size(RoleName::TIMESTAMP, bytes, self.config.timestamp_max_length)?;
        let envelope = Envelope::<Timestamp>::parse(RoleName::TIMESTAMP, bytes)?;
        let new = Authority::from_root(&self.root, RoleName::TIMESTAMP)?.verify_cached(
            RoleName::TIMESTAMP,
            envelope,
            self.signatures.as_deref(),
        )?;
        if let Some(trusted) = &self.timestamp {
            if new.version < trusted.version {
                return Err(rollback(RoleName::TIMESTAMP, trusted.version, new.version));
            }
            if new.version == trusted.version {
                return Ok(TimestampUpdate::Unchanged);
            }
            let (old, received) = (trusted.snapshot_meta().version, new.snapshot_meta().version);
            if received < old {
                return Err(rollback(RoleName::SNAPSHOT, old, received));
            }
        }
        let stored = self.timestamp.insert(new);
        check_expiry(RoleName::TIMESTAMP, &**stored, self.now)?;
        Ok(TimestampUpdate::Updated)
    }

    /// Verifies `bytes` as the snapshot the trusted timestamp lists (§5.5).
    ///
    /// `trusted_local` is for a file from the client's own cache, verified
    /// when it was stored: it skips the length and hash check against the
    /// timestamp's listing (which describes a newer snapshot once the
    /// repository moved on), as python-tuf does.
    ///
    /// Checks, in order: the timestamp is final (not expired); size (the
    /// length the timestamp lists, else the configured limit); unless
    /// `trusted_local`, length and hashes listed by the timestamp
    /// ([`Error::LengthMismatch`], [`Error::HashMismatch`]); parsing;
    /// signatures by the root's snapshot keys; against a trusted snapshot, no
    /// listed role may go back in version or disappear ([`Error::Rollback`],
    /// `received: 0` for a role that vanished); then stores it and checks it
    /// is final: the version the timestamp lists ([`Error::VersionMismatch`])
    /// and not expired ([`Error::Expired`]), the snapshot staying loaded as
    /// intermediate when not.
    pub fn update_snapshot(
        &mut self,
        bytes: &[u8],
        trusted_local: bool,
    ) -> Result<&Verified<Snapshot>> {
        let Some(timestamp) = &self.timestamp else {
            return Err(Error::Order(
                "snapshot cannot be loaded before a timestamp".into(),
            ));
        };
        if !self.targets.is_empty() {
            return Err(Error::Order(
                "snapshot cannot be updated once targets are loaded".into(),
            ));
        }
        check_expiry(RoleName::TIMESTAMP, &**timestamp, self.now)?;
        let meta = timestamp.snapshot_meta();
        let limit = match (trusted_local, meta.length) {
            (false, Some(length)) => length,
            _ => self.config.snapshot_max_length,
        };
        check_size(RoleName::SNAPSHOT, bytes, limit)?;
        // Hashed once: the file's id, and the listing's SHA-256 checked
        // against it.
        let file = FileId {
            length: bytes.len() as u64,
            sha256: crate::hash::sha256_hex(bytes),
        };
        if !trusted_local {
            meta.check_bytes_with(RoleName::SNAPSHOT, bytes, Some(&file.sha256))?;
        }
        let authority = Authority::from_root(&self.root, RoleName::SNAPSHOT)?;
        // The cached snapshot an earlier refresh ended with: taken over as
        // it verified then, its signatures checked against the root's
        // snapshot keys now.
        let earlier = self
            .earlier
            .as_ref()
            .and_then(|e| e.snapshot.as_ref())
            .filter(|(f, _)| trusted_local && *f == file)
            .map(|(_, s)| s.clone());
        let new = match earlier {
            Some(earlier) => {
                authority.check_cached(
                    RoleName::SNAPSHOT,
                    earlier.envelope(),
                    self.signatures.as_deref(),
                )?;
                earlier
            }
            None => {
                let envelope = Envelope::<Snapshot>::parse(RoleName::SNAPSHOT, bytes)?;
                Arc::new(authority.verify_cached(
                    RoleName::SNAPSHOT,
                    envelope,
                    self.signatures.as_deref(),
                )?)
            }
        };
        if let Some(trusted) = &self.snapshot {
            for (name, old) in &trusted.meta {
                let role = name.strip_suffix(".json").unwrap_or(name);
                match new.meta.get(name) {
                    None => return Err(rollback(role, old.version, 0)),
                    Some(listed) if listed.version < old.version => {
                        return Err(rollback(role, old.version, listed.version))
                    }
                    Some(_) => {}
                }
            }
        }
        self.snapshot = Some(new);
        self.snapshot_file = Some(file);
        self.check_final_snapshot()
    }

    /// The loaded snapshot if it is final: the version the timestamp lists,
    /// not expired.
    fn check_final_snapshot(&self) -> Result<&Verified<Snapshot>> {
        let (Some(timestamp), Some(snapshot)) = (&self.timestamp, self.snapshot.as_deref()) else {
            return Err(Error::Order(
                "targets cannot be loaded before a snapshot".into(),
            ));
        };
        let expected = timestamp.snapshot_meta().version;
        if snapshot.version != expected {
            return Err(Error::VersionMismatch {
                role: RoleName::new(RoleName::SNAPSHOT),
                listed_by: RoleName::TIMESTAMP,
                expected,
                received: snapshot.version,
            });
        }
        check_expiry(RoleName::SNAPSHOT, &**snapshot, self.now)?;
        Ok(snapshot)
    }

    /// Verifies `bytes` as the top-level targets role (§5.6):
    /// [`Self::update_delegated_targets`] with role `targets` delegated by `root`.
    pub fn update_targets(&mut self, bytes: &[u8]) -> Result<&Verified<Targets>> {
        self.update_delegated_targets(bytes, RoleName::TARGETS, RoleName::ROOT)
    }

    /// Verifies `bytes` as targets role `role`, delegated by `delegator`
    /// (`root` for the top-level `targets`; otherwise a loaded targets role).
    ///
    /// Checks, in order: the snapshot is final; the delegator is loaded
    /// ([`Error::Order`]) and delegates `role` ([`Error::MissingRole`]); the
    /// snapshot lists `role` ([`Error::MissingRole`]); size (the length the
    /// snapshot lists, else the configured limit); length and hashes listed by
    /// the snapshot; parsing; signatures by the keys the delegator gives the
    /// role; the version the snapshot lists ([`Error::VersionMismatch`]); not
    /// expired ([`Error::Expired`]). Nothing is stored unless all pass.
    pub fn update_delegated_targets(
        &mut self,
        bytes: &[u8],
        role: &str,
        delegator: &str,
    ) -> Result<&Verified<Targets>> {
        let (new, file) = self.check_delegated_targets(bytes, role, delegator)?;
        Ok(self.store_targets(
            RoleName::new(role),
            RoleName::new(delegator),
            Arc::new(new),
            Arc::new(file),
        ))
    }

    /// [`Self::update_delegated_targets`] for many roles at once, verifying
    /// them in parallel on up to `threads` threads (a full refresh of a
    /// repository with thousands of namespaces is dominated by signature
    /// verification). Each item is `(role, delegator, bytes)`; every
    /// delegator must already be loaded, so a caller loads one level of the
    /// delegation tree per call. Returns one result per item, in order;
    /// items that fail are not stored, the others are.
    pub fn update_delegated_targets_batch(
        &mut self,
        items: &[(&str, &str, &[u8])],
        threads: usize,
    ) -> Vec<Result<()>> {
        let threads = threads.clamp(1, items.len().max(1));
        let chunk = items.len().div_ceil(threads).max(1);
        let checked: Vec<Result<(Verified<Targets>, FileId)>> = if threads == 1 {
            items
                .iter()
                .map(|(role, delegator, bytes)| {
                    self.check_delegated_targets(bytes, role, delegator)
                })
                .collect()
        } else {
            let this = &*self;
            std::thread::scope(|scope| {
                let handles: Vec<_> = items
                    .chunks(chunk)
                    .map(|part| {
                        let handle = scope.spawn(move || {
                            part.iter()
                                .map(|(role, delegator, bytes)| {
                                    this.check_delegated_targets(bytes, role, delegator)
                                })
                                .collect::<Vec<_>>()
                        });
                        (part.len(), handle)
                    })
                    .collect();
                handles
                    .into_iter()
                    .flat_map(|(len, handle)| {
                        handle.join().unwrap_or_else(|_| {
                            (0..len)
                                .map(|_| Err(Error::Order("a verification thread panicked".into())))
                                .collect()
                        })
                    })
                    .collect()
            })
        };
        items
            .iter()
            .zip(checked)
            .map(|((role, delegator, _), result)| {
                result.map(|(new, file)| {
                    self.store_targets(
                        RoleName::new(*role),
                        RoleName::new(*delegator),
                        Arc::new(new),
                        Arc::new(file),
                    );
                })
            })
            .collect()
    }

    /// Every check of [`Self::update_delegated_targets`], storing nothing;
    /// with the file's length and SHA-256.
    fn check_delegated_targets(
        &self,
        bytes: &[u8],
        role: &str,
        delegator: &str,
    ) -> Result<(Verified<Targets>, FileId)> {
        let snapshot = self.check_final_snapshot()?;
        let authority = if delegator == RoleName::ROOT {
            if role != RoleName::TARGETS {
                return Err(Error::MissingRole {
                    role: RoleName::new(role),
                    message: "root delegates only the top-level targets role".into(),
                });
            }
            Authority::from_root(&self.root, RoleName::TARGETS)?
        } else {
            let parent = self
                .targets
                .get(delegator)
                .map(|l| &l.verified)
                .ok_or_else(|| {
                    Error::Order(format!(
                        "{role} cannot be loaded before its delegator {delegator}"
                    ))
                })?;
            Authority::from_delegator(parent, role)?
        };
        let meta = snapshot.role_meta(role).ok_or_else(|| Error::MissingRole {
            role: RoleName::new(role),
            message: "delegated but not listed in snapshot".into(),
        })?;
        check_size(
            role,
            bytes,
            meta.length.unwrap_or(self.config.targets_max_length),
        )?;
        let file = FileId {
            length: bytes.len() as u64,
            sha256: crate::hash::sha256_hex(bytes),
        };
        meta.check_bytes_with(role, bytes, Some(&file.sha256))?;
        let new = authority.verify_cached(
            role,
            Envelope::<Targets>::parse(role, bytes)?,
            self.signatures.as_deref(),
        )?;
        if new.version != meta.version {
            return Err(Error::VersionMismatch {
                role: RoleName::new(role),
                listed_by: RoleName::SNAPSHOT,
                expected: meta.version,
                received: new.version,
            });
        }
        check_expiry(role, &*new, self.now)?;
        Ok((new, file))
    }

    /// Stores `role` as verified for `delegator` (as well as any earlier
    /// delegator it was verified for), from `file`.
    fn store_targets(
        &mut self,
        role: RoleName,
        delegator: RoleName,
        verified: Arc<Verified<Targets>>,
        file: Arc<FileId>,
    ) -> &Verified<Targets> {
        let loaded = match self.targets.entry(role) {
            Entry::Occupied(slot) => {
                let loaded = slot.into_mut();
                loaded.verified = verified;
                loaded.file = file;
                if !loaded.verified_for(delegator.as_str()) {
                    loaded.more.push(delegator);
                }
                loaded
            }
            Entry::Vacant(slot) => slot.insert(Loaded {
                verified,
                file,
                delegator,
                more: Vec::new(),
            }),
        };
        &loaded.verified
    }
}

/// Digests of the keys and threshold delegators give roles, computed once
/// per `(delegator, key ids, threshold)`: the 256 hashed bins share one.
#[derive(Debug, Default)]
pub(crate) struct AuthorityDigests {
    /// A few at most, searched in place (no key is built to look one up).
    known: Vec<KnownAuthority>,
}

/// One authority of [`AuthorityDigests`].
#[derive(Debug)]
struct KnownAuthority {
    delegator: RoleName,
    keyids: Vec<KeyId>,
    threshold: u32,
    digest: Option<[u8; 32]>,
}

impl AuthorityDigests {
    /// The digest of the authority `delegator` (loaded in `set`) gives
    /// `role`: SHA-256 over the threshold and each allowed key's id,
    /// scheme and material. `None` if either is unknown.
    fn of(&mut self, set: &TrustedSet, role: &str, delegator: &str) -> Option<[u8; 32]> {
        let parent = &set.targets.get(delegator)?.verified;
        let authority = Authority::from_delegator(parent, role).ok()?;
        let threshold = authority.threshold.get();
        if let Some(known) = self.known.iter().find(|k| {
            k.delegator.as_str() == delegator
                && k.keyids.as_slice() == authority.keyids
                && k.threshold == threshold
        }) {
            return known.digest;
        }
        let mut h = openssl::sha::Sha256::new();
        h.update(&authority.threshold.get().to_be_bytes());
        let mut digest = Some(());
        for id in authority.keyids {
            match authority.keys.get(id).map(|k| (k, k.material(id))) {
                Some((k, Ok(material))) => {
                    for part in [id.as_str().as_bytes(), k.scheme.as_bytes(), material] {
                        h.update(&(part.len() as u64).to_be_bytes());
                        h.update(part);
                    }
                }
                _ => digest = None,
            }
        }
        let digest = digest.map(|()| h.finish());
        self.known.push(KnownAuthority {
            delegator: RoleName::new(delegator),
            keyids: authority.keyids.to_vec(),
            threshold,
            digest,
        });
        digest
    }
}

/// Refuses more than `limit` bytes, before anything parses them.
pub(crate) fn check_size(what: &str, bytes: &[u8], limit: u64) -> Result<()> {
    let length = bytes.len() as u64;
    if length > limit {
        return Err(Error::Oversized {
            what: what.to_owned(),
            length,
            limit,
        });
    }
    Ok(())
}

fn check_expiry<T: Role>(role: &str, signed: &T, now: OffsetDateTime) -> Result<()> {
    let expires = signed.expires();
    if expires.is_expired(now) {
        return Err(Error::Expired {
            role: RoleName::new(role),
            expires: expires.to_string(),
        });
    }
    Ok(())
}

fn rollback(role: &str, trusted: u64, received: u64) -> Error {
    Error::Rollback {
        role: RoleName::new(role),
        trusted,
        received,
    }
}
