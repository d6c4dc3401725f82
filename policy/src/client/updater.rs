//! The refresh of top-level metadata as a state machine driven by the caller.

use std::collections::{BTreeMap, VecDeque};
use std::num::NonZeroU32;

use time::OffsetDateTime;

use super::load::{unavailable, Load, Loaded};
use super::request::{CacheOp, MetadataFile, Request, Response, Source, Step};
use super::search::{Lookup, TargetSearch};
use super::trusted::{TimestampUpdate, TrustedSet};
use super::walk::Walk;
use super::{verify_target, Config};
use crate::error::{Error, Result};
use crate::keys::Key;
use crate::layout::target_remote_name;
use crate::metadata::{KeyId, RoleName, Root, TargetFile};
use crate::trust::{
    is_index_path, NamespaceTrust, Namespaces, Peers, Revocations, TrustSet, PEERS_PATH,
    REVOCATIONS_PATH,
};

/// The TUF client workflow (specification §5), sans IO.
///
/// Create it with the trusted root, drive [`Updater::poll`] /
/// [`Updater::answer`] until [`Step::Done`] (or use
/// [`Updater::refresh_with`]), then look targets up with
/// [`Updater::search`] / [`Updater::find_target_with`]. See the
/// [module documentation](super) for the order of requests and the cache rules.
#[derive(Debug)]
pub struct Updater {
    pub(super) trusted: TrustedSet,
    phase: Phase,
    pending: Option<Request>,
    queue: VecDeque<CacheOp>,
    /// Cached timestamp and snapshot were dropped after a key rotation.
    dropped_local: bool,
    /// Cache operations seen by the `*_with` drivers, for `take_cache_ops`.
    log: Vec<CacheOp>,
}

#[derive(Debug)]
enum Phase {
    /// Fetching root `next`, with `left` fetches allowed.
    Root {
        next: u64,
        left: u32,
    },
    /// The root loop is over: the final root must not have expired.
    RootFinal,
    TimestampLocal,
    TimestampRemote,
    SnapshotLocal,
    SnapshotRemote,
    Targets(Load),
    Done,
    Failed(Error),
}

impl Updater {
    /// Starts a refresh from `trusted_root`: the cached `root.json`, or on
    /// first use the root pinned out of band (write it to the cache as
    /// `root.json` yourself then). The root is verified against itself only;
    /// it may have expired.
    ///
    /// `now` is the fixed update start time: every expiry is checked against it.
    pub fn new(trusted_root: &[u8], now: OffsetDateTime, config: Config) -> Result<Self> {
        Self::with_signature_cache(trusted_root, now, config, None)
    }

    /// [`Self::new`] with a [`SignatureCache`](crate::verify::SignatureCache)
    /// from the start ([`TrustedSet::with_signature_cache`]).
    pub fn with_signature_cache(
        trusted_root: &[u8],
        now: OffsetDateTime,
        config: Config,
        signatures: Option<std::sync::Arc<crate::verify::SignatureCache>>,
    ) -> Result<Self> {
        Self::with_earlier_roles(trusted_root, now, config, signatures, None)
    }

    /// [`Self::with_signature_cache`] taking over what an earlier refresh
    /// verified ([`TrustedSet::with_earlier_roles`]).
    pub fn with_earlier_roles(
        trusted_root: &[u8],
        now: OffsetDateTime,
        config: Config,
        signatures: Option<std::sync::Arc<crate::verify::SignatureCache>>,
        earlier: Option<std::sync::Arc<super::EarlierRoles>>,
    ) -> Result<Self> {
        let trusted =
            TrustedSet::with_earlier_roles(trusted_root, now, config, signatures, earlier)?;
        let phase = Phase::Root {
            next: trusted.root().version.saturating_add(1),
            left: trusted.config().max_root_rotations,
        };
        Ok(Self {
            trusted,
            phase,
            pending: None,
            queue: VecDeque::new(),
            dropped_local: false,
            log: Vec::new(),
        })
    }

    /// Keeps verified signatures in `cache` across refreshes
    /// ([`TrustedSet::set_signature_cache`]).
    pub fn set_signature_cache(&mut self, cache: std::sync::Arc<crate::verify::SignatureCache>) {
        self.trusted.set_signature_cache(cache);
    }

    /// Takes over unchanged delegated roles from an earlier refresh
    /// ([`TrustedSet::set_earlier_roles`]).
    pub fn set_earlier_roles(&mut self, earlier: std::sync::Arc<super::EarlierRoles>) {
        self.trusted.set_earlier_roles(earlier);
    }

    /// The trusted metadata so far.
    pub fn trusted(&self) -> &TrustedSet {
        &self.trusted
    }

    /// The limits in force.
    pub fn config(&self) -> &Config {
        self.trusted.config()
    }

    /// True once the refresh reached [`Step::Done`].
    pub fn is_refreshed(&self) -> bool {
        matches!(self.phase, Phase::Done)
    }

    /// What the caller must do next.
    ///
    /// Cache operations come first, even after a failure, so that partial
    /// progress is never lost; then the error, if the refresh failed (again
    /// on every call); then the pending request (again until answered).
    pub fn poll(&mut self) -> Result<Step<()>> {
        if let Some(op) = self.queue.pop_front() {
            return Ok(Step::Cache(op));
        }
        if let Phase::Failed(e) = &self.phase {
            return Err(e.clone());
        }
        if let Some(request) = &self.pending {
            return Ok(Step::Fetch(request.clone()));
        }
        match self.advance() {
            Ok(Some(request)) => {
                self.pending = Some(request.clone());
                Ok(Step::Fetch(request))
            }
            Ok(None) => Ok(Step::Done(())),
            Err(e) => {
                self.phase = Phase::Failed(e.clone());
                Err(e)
            }
        }
    }

    /// Answers the request of the last [`Step::Fetch`]. Errors surface at
    /// the next [`Self::poll`].
    pub fn answer(&mut self, response: Response) {
        let Some(request) = self.pending.take() else {
            self.phase = Phase::Failed(Error::Order("answer without a pending request".into()));
            return;
        };
        if let Err(e) = self.process(&request, response) {
            self.phase = Phase::Failed(e);
        }
    }

    /// Runs the whole refresh with a synchronous `fetch`.
    ///
    /// The cache operations are kept for [`Self::take_cache_ops`] (also when
    /// the refresh fails: apply them, they are the partial progress).
    pub fn refresh_with(&mut self, mut fetch: impl FnMut(&Request) -> Response) -> Result<()> {
        loop {
            match self.poll()? {
                Step::Fetch(request) => {
                    let response = fetch(&request);
                    self.answer(response);
                }
                Step::Cache(op) => self.log.push(op),
                Step::Done(()) => return Ok(()),
            }
        }
    }

    /// Cache operations collected by [`Self::refresh_with`] and
    /// [`Self::find_target_with`] since the last call, in order.
    pub fn take_cache_ops(&mut self) -> Vec<CacheOp> {
        std::mem::take(&mut self.log)
    }

    /// Loads many delegated roles at once into the trusted set, verifying
    /// them on up to `threads` threads: see
    /// [`TrustedSet::update_delegated_targets_batch`] (same checks, same
    /// results). For a client that walks every delegated role (to find all
    /// trust documents) before searching; a later [`Self::search`] uses the
    /// roles so loaded without asking for them again.
    pub fn update_delegated_targets_batch(
        &mut self,
        items: &[(&str, &str, &[u8])],
        threads: usize,
    ) -> Vec<Result<()>> {
        self.trusted.update_delegated_targets_batch(items, threads)
    }

    /// Starts the walk of every delegated role (after a completed refresh,
    /// else [`Error::Order`]), verifying on up to `threads` threads: see
    /// [`Walk`]. A later [`Self::search`] uses the roles so loaded without
    /// asking for them again.
    pub fn walk(&mut self, threads: usize) -> Result<Walk<'_>> {
        if !self.is_refreshed() {
            return Err(Error::Order(
                "delegations can be walked only after a completed refresh".into(),
            ));
        }
        Walk::new(&mut self.trusted, threads)
    }

    /// Starts looking up `target_path` among the trusted targets roles
    /// (after a completed refresh, else [`Error::Order`]).
    pub fn search(&mut self, target_path: &str) -> Result<TargetSearch<'_>> {
        if !self.is_refreshed() {
            return Err(Error::Order(
                "targets can be searched only after a completed refresh".into(),
            ));
        }
        Ok(TargetSearch::new(self, target_path))
    }

    /// Runs a whole [`TargetSearch`] with a synchronous `fetch`; cache
    /// operations go to [`Self::take_cache_ops`].
    pub fn find_target_with(
        &mut self,
        target_path: &str,
        mut fetch: impl FnMut(&Request) -> Response,
    ) -> Result<Lookup> {
        let mut ops = Vec::new();
        let result = {
            let mut search = self.search(target_path)?;
            loop {
                match search.poll() {
                    Ok(Step::Fetch(request)) => {
                        let response = fetch(&request);
                        search.answer(response);
                    }
                    Ok(Step::Cache(op)) => ops.push(op),
                    Ok(Step::Done(lookup)) => break Ok(lookup),
                    Err(e) => break Err(e),
                }
            }
        };
        self.log.extend(ops);
        result
    }

    /// The repository file name of a target, following the trusted root's
    /// `consistent_snapshot` (see [`target_remote_name`]).
    pub fn target_remote_name(&self, target_path: &str, target_file: &TargetFile) -> String {
        target_remote_name(target_path, target_file, self.trusted.consistent_snapshot())
    }

    /// The organization's trust documents as a [`TrustSet`], after the
    /// refresh: every namespace-index shard, `org/revocations.json` and
    /// `org/peers.json` that top-level `targets` lists, and the
    /// `namespaces/<ns>/trust.json` of each namespace the index lists, each
    /// found by a TUF target search (`meta` answers its metadata requests,
    /// as for [`Self::find_target_with`]) and fetched with `target` (given
    /// the file name under `targets/` and the length limit), then checked
    /// against its listed length and hashes. A namespace whose trust
    /// document is not published owns its names but trusts no one; so does
    /// one whose document does not parse (a newer format): it is recorded
    /// with why ([`TrustSet::set_unreadable`]) and every other namespace is
    /// decided as usual.
    ///
    /// This loads everything at once (a tool, a test, an importer); the
    /// client's verifier does the same with concurrent downloads and a cache.
    pub fn trust_set_with(
        &mut self,
        mut meta: impl FnMut(&Request) -> Response,
        mut target: impl FnMut(&str, u64) -> Option<Vec<u8>>,
    ) -> Result<TrustSet> {
        let listed: Vec<String> = self
            .trusted
            .targets(RoleName::TARGETS)
            .map(|t| t.targets.keys().cloned().collect())
            .unwrap_or_default();
        let mut shards = Vec::new();
        let mut revocations = Revocations::default();
        let mut peers = Peers::default();
        for path in &listed {
            let is_index = is_index_path(path);
            if !is_index && path != REVOCATIONS_PATH && path != PEERS_PATH {
                continue;
            }
            let Some(bytes) = self.fetch_target(path, &mut meta, &mut target)? else {
                continue;
            };
            if is_index {
                shards.push((path.as_str(), Namespaces::from_slice(&bytes)?));
            } else if path == REVOCATIONS_PATH {
                revocations = Revocations::from_slice(&bytes)?;
            } else {
                peers = Peers::from_slice(&bytes)?;
            }
        }
        let index = Namespaces::merge(shards)?;
        let mut docs = Vec::new();
        let mut unreadable = Vec::new();
        for entry in &index.namespaces {
            let path = entry.name.target_path();
            if let Some(bytes) = self.fetch_target(&path, &mut meta, &mut target)? {
                // A document this verifier cannot read fails closed for its
                // own namespace ([`TrustSet::set_unreadable`]), not for all.
                match NamespaceTrust::from_target(&path, &bytes) {
                    Ok(doc) => docs.push(doc),
                    Err(e) => unreadable.push((entry.name.clone(), e.to_string())),
                }
            }
        }
        let mut set = TrustSet::new(index, docs, revocations, peers)?;
        for (namespace, why) in unreadable {
            set.set_unreadable(&namespace, why);
        }
        Ok(set)
    }

    /// One target, found by search, fetched and checked; `None` when no
    /// trusted role lists it.
    fn fetch_target(
        &mut self,
        path: &str,
        meta: &mut impl FnMut(&Request) -> Response,
        target: &mut impl FnMut(&str, u64) -> Option<Vec<u8>>,
    ) -> Result<Option<Vec<u8>>> {
        match self.find_target_with(path, &mut *meta)? {
            Lookup::Found { target_file, .. } => {
                let name = self.target_remote_name(path, &target_file);
                let bytes =
                    target(&name, target_file.length).ok_or_else(|| Error::Unavailable {
                        role: RoleName::targets(),
                        file: format!("targets/{name}"),
                    })?;
                verify_target(&target_file, path, &bytes)?;
                Ok(Some(bytes))
            }
            Lookup::NotFound => Ok(None),
        }
    }

    /// Moves through the steps that need no answer; returns the next request,
    /// or `None` when done.
    fn advance(&mut self) -> Result<Option<Request>> {
        loop {
            let config = self.trusted.config();
            let consistent = self.trusted.consistent_snapshot();
            let request =
                |file, source, max_length| Some(Request::new(file, source, max_length, consistent));
            let next = match &self.phase {
                Phase::Root { next, left } => {
                    if *left == 0 {
                        self.phase = Phase::RootFinal;
                        continue;
                    }
                    request(
                        MetadataFile::Root { version: *next },
                        Source::Remote,
                        config.root_max_length,
                    )
                }
                Phase::RootFinal => {
                    // §5.3.10: the final root must not have expired.
                    let root = self.trusted.root();
                    if root.expires.is_expired(self.trusted.now()) {
                        return Err(Error::Expired {
                            role: RoleName::new(RoleName::ROOT),
                            expires: root.expires.to_string(),
                        });
                    }
                    self.phase = Phase::TimestampLocal;
                    continue;
                }
                Phase::TimestampLocal => {
                    if self.dropped_local {
                        self.phase = Phase::TimestampRemote;
                        continue;
                    }
                    request(
                        MetadataFile::Timestamp,
                        Source::Local,
                        config.timestamp_max_length,
                    )
                }
                Phase::TimestampRemote => request(
                    MetadataFile::Timestamp,
                    Source::Remote,
                    config.timestamp_max_length,
                ),
                Phase::SnapshotLocal | Phase::SnapshotRemote => {
                    let local = matches!(self.phase, Phase::SnapshotLocal);
                    if local && self.dropped_local {
                        self.phase = Phase::SnapshotRemote;
                        continue;
                    }
                    let meta = self
                        .trusted
                        .timestamp()
                        .ok_or_else(|| Error::Order("snapshot before timestamp".into()))?
                        .snapshot_meta();
                    let file = MetadataFile::Snapshot {
                        version: meta.version,
                    };
                    if local {
                        request(file, Source::Local, config.snapshot_max_length)
                    } else {
                        let max = meta.length.unwrap_or(config.snapshot_max_length);
                        request(file, Source::Remote, max)
                    }
                }
                Phase::Targets(load) => {
                    if self
                        .trusted
                        .contains(load.role.as_str(), load.delegator.as_str())
                    {
                        self.phase = Phase::Done;
                        continue;
                    }
                    Some(load.request(&self.trusted)?)
                }
                Phase::Done => None,
                Phase::Failed(e) => return Err(e.clone()),
            };
            return Ok(next);
        }
    }

    /// Applies the answer to `request` in the current phase.
    fn process(&mut self, request: &Request, response: Response) -> Result<()> {
        let bytes = match response {
            Response::Bytes(bytes) if bytes.len() as u64 > request.max_length() => {
                if request.is_local() {
                    // An oversized cached file is as good as none.
                    None
                } else {
                    return Err(Error::Oversized {
                        what: request.role().to_owned(),
                        length: bytes.len() as u64,
                        limit: request.max_length(),
                    });
                }
            }
            Response::Bytes(bytes) => Some(bytes),
            Response::NotFound => None,
        };
        let phase = std::mem::replace(&mut self.phase, Phase::Done);
        self.phase = match phase {
            Phase::Root { next, left } => match bytes {
                // §5.3.3: no N+1 means the trusted root is the newest.
                None => Phase::RootFinal,
                Some(bytes) => {
                    let before = rotation_keys(self.trusted.root());
                    let root = self.trusted.update_root(&bytes)?;
                    let rotated = before != rotation_keys(root);
                    self.store(request, bytes);
                    if rotated && !self.dropped_local {
                        // §5.3.11: fast-forward attack recovery.
                        self.dropped_local = true;
                        for name in ["timestamp.json", "snapshot.json"] {
                            self.queue.push_back(CacheOp::Delete { name: name.into() });
                        }
                    }
                    Phase::Root {
                        next: next.saturating_add(1),
                        left: left.saturating_sub(1),
                    }
                }
            },
            Phase::TimestampLocal => {
                if let Some(bytes) = bytes {
                    // A cached timestamp that fails is ignored; one that
                    // verifies but expired stays as intermediate.
                    let _ = self.trusted.update_timestamp(&bytes);
                }
                Phase::TimestampRemote
            }
            Phase::TimestampRemote => {
                let bytes = bytes.ok_or_else(|| unavailable(request))?;
                match self.trusted.update_timestamp(&bytes)? {
                    TimestampUpdate::Updated => self.store(request, bytes),
                    TimestampUpdate::Unchanged => {
                        // The kept (cached) timestamp must be final: report
                        // its expiry now rather than at the snapshot step.
                        if let Some(kept) = self.trusted.timestamp() {
                            if kept.expires.is_expired(self.trusted.now()) {
                                return Err(Error::Expired {
                                    role: RoleName::new(RoleName::TIMESTAMP),
                                    expires: kept.expires.to_string(),
                                });
                            }
                        }
                    }
                }
                Phase::SnapshotLocal
            }
            Phase::SnapshotLocal => match bytes {
                Some(bytes) if self.trusted.update_snapshot(&bytes, true).is_ok() => {
                    Phase::Targets(Load::new(RoleName::TARGETS, RoleName::ROOT))
                }
                _ => Phase::SnapshotRemote,
            },
            Phase::SnapshotRemote => {
                let bytes = bytes.ok_or_else(|| unavailable(request))?;
                self.trusted.update_snapshot(&bytes, false)?;
                self.store(request, bytes);
                Phase::Targets(Load::new(RoleName::TARGETS, RoleName::ROOT))
            }
            Phase::Targets(mut load) => match load.answer(&mut self.trusted, request, bytes)? {
                Loaded::Yes(op) => {
                    self.queue.extend(op);
                    Phase::Done
                }
                Loaded::NotYet => Phase::Targets(load),
            },
            Phase::RootFinal | Phase::Done => {
                return Err(Error::Order("answer without a pending request".into()))
            }
            Phase::Failed(e) => Phase::Failed(e),
        };
        Ok(())
    }

    fn store(&mut self, request: &Request, bytes: Vec<u8>) {
        self.queue.push_back(CacheOp::Store {
            name: request.cache_name(),
            bytes,
        });
    }
}

/// The keys and thresholds of the timestamp and snapshot roles: when they
/// change between two roots, cached timestamp and snapshot are dropped.
type RotationKeys = Vec<Option<(BTreeMap<KeyId, Option<Key>>, NonZeroU32)>>;

fn rotation_keys(root: &Root) -> RotationKeys {
    [RoleName::TIMESTAMP, RoleName::SNAPSHOT]
        .iter()
        .map(|role| {
            root.roles.get(*role).map(|r| {
                let keys = r
                    .keyids
                    .iter()
                    .map(|id| (id.clone(), root.keys.get(id).cloned()))
                    .collect();
                (keys, r.threshold)
            })
        })
        .collect()
}
