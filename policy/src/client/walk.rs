//! Loading every delegated targets role: the breadth-first walk of the
//! delegation graph, one level at a time.

use std::collections::{HashSet, VecDeque};

use super::request::{CacheOp, MetadataFile, Request, Response, Source, Step};
use super::trusted::TrustedSet;
use crate::error::{Error, Result};
use crate::metadata::{RoleName, TOP_LEVEL_ROLES};

/// Default most bytes of answers held before they are verified as a batch
/// (16 MiB).
pub const DEFAULT_BATCH_BYTES: usize = 16 << 20;

/// The walk of every delegated targets role, from the trusted top-level
/// `targets` down, driven like the [`Updater`](super::Updater):
/// [`Self::poll`], [`Self::answer`], until [`Step::Done`] with the names of
/// the roles loaded, in walk order (`targets` first).
///
/// A [`TargetSearch`](super::TargetSearch) loads the roles on one target's
/// path; the walk loads them all, for a client that needs every trust
/// document a repository publishes (the verifier), and for an air-gap
/// export or import that must carry or check every file. A later search
/// uses the roles so loaded without asking for them again.
///
/// # The walk, request by request
///
/// One level of the delegation graph at a time, children in the order
/// their delegator lists them:
///
/// 1. the level's roles are read from the cache ([`Source::Local`], at most
///    [`Config::targets_max_length`](super::Config::targets_max_length)
///    bytes; answer [`Response::NotFound`] when there is no cache), and those
///    that verify are trusted;
/// 2. the others are fetched from the repository ([`Source::Remote`], the
///    length the snapshot lists), each stored in the cache
///    ([`CacheOp::Store`]) once verified. A role the repository does not
///    have is [`Error::Unavailable`]; any failed check ends the walk with
///    its error.
///
/// Answers are verified in batches of at most [`Self::batch_bytes`]
/// (default [`DEFAULT_BATCH_BYTES`]) on up to `threads` threads
/// ([`TrustedSet::update_delegated_targets_batch`]): every delegator of a
/// level is loaded before the level is, and the bytes held at once stay
/// bounded. [`Self::pending`] lists every unanswered request of the current
/// batch, so a driver can fetch them concurrently and answer them in order.
///
/// # Bounds: what a hostile repository cannot do
///
/// * **Cycles** end: each role name is walked once (the top-level role
///   names count as seen from the start, so no delegation replaces the
///   trusted top-level `targets`).
/// * **Fan-out** is bounded by the snapshot: a role is walked only if the
///   snapshot lists it, so the walk visits at most as many roles as the
///   snapshot (itself size-limited) lists. A delegated role the snapshot
///   does not list ends the walk with [`Error::MissingRole`], at the first
///   such name, or is skipped with [`Self::skip_unlisted`]; then hashed bins
///   (TAP 15, up to 2³² names) are looked up among the snapshot's entries
///   rather than enumerated when there are more bins than entries.
#[derive(Debug)]
pub struct Walk<'t> {
    trusted: &'t mut TrustedSet,
    threads: usize,
    batch_bytes: usize,
    skip_unlisted: bool,
    /// Role names walked or queued (and the top-level names).
    seen: HashSet<RoleName>,
    /// Roles loaded, in walk order.
    roles: Vec<RoleName>,
    /// The current level: `(role, delegator)`, and whether it is loaded.
    level: Vec<(RoleName, RoleName)>,
    loaded: Vec<bool>,
    stage: Stage,
    /// The requests of the current batch, with the level position of each.
    requests: Vec<(usize, Request)>,
    /// The first unanswered request.
    next: usize,
    /// Answers not yet verified: level position, request, bytes.
    answered: Vec<(usize, Request, Vec<u8>)>,
    answered_bytes: usize,
    queue: VecDeque<CacheOp>,
    failed: Option<Error>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// The next level is to be computed from the roles of the last one
    /// (`targets` at first).
    Children,
    /// Reading the level's roles from the cache.
    Local,
    /// Fetching the roles the cache did not have, or had invalid.
    Remote,
    Done,
}

impl<'t> Walk<'t> {
    /// A walk over the delegations of `trusted`, whose top-level `targets`
    /// must be loaded ([`Error::Order`] otherwise), verifying on up to
    /// `threads` threads.
    pub fn new(trusted: &'t mut TrustedSet, threads: usize) -> Result<Self> {
        if trusted.targets("targets").is_none() {
            return Err(Error::Order(
                "delegations can be walked only once the top-level targets is trusted".into(),
            ));
        }
        let targets = RoleName::new("targets");
        Ok(Self {
            trusted,
            threads: threads.max(1),
            batch_bytes: DEFAULT_BATCH_BYTES,
            skip_unlisted: false,
            seen: TOP_LEVEL_ROLES.iter().map(|r| RoleName::new(*r)).collect(),
            roles: vec![targets.clone()],
            level: vec![(targets, RoleName::new("root"))],
            loaded: Vec::new(),
            stage: Stage::Children,
            requests: Vec::new(),
            next: 0,
            answered: Vec::new(),
            answered_bytes: 0,
            queue: VecDeque::new(),
            failed: None,
        })
    }

    /// Verifies answers once they hold `bytes` bytes (at least one answer
    /// per batch).
    #[must_use]
    pub fn batch_bytes(mut self, bytes: usize) -> Self {
        self.batch_bytes = bytes.max(1);
        self
    }

    /// Skips a delegated role the snapshot does not list instead of failing
    /// (no target search could load it either).
    #[must_use]
    pub fn skip_unlisted(mut self) -> Self {
        self.skip_unlisted = true;
        self
    }

    /// The trusted metadata so far.
    pub fn trusted(&self) -> &TrustedSet {
        self.trusted
    }

    /// The roles loaded so far, in walk order (`targets` first).
    pub fn roles(&self) -> &[RoleName] {
        &self.roles
    }

    /// What the caller must do next: cache operations first (also after a
    /// failure), then the error (again on every call), then the first
    /// unanswered request, then [`Step::Done`] with [`Self::roles`].
    pub fn poll(&mut self) -> Result<Step<Vec<RoleName>>> {
        if let Some(op) = self.queue.pop_front() {
            return Ok(Step::Cache(op));
        }
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        if let Err(e) = self.advance() {
            self.failed = Some(e.clone());
            return Err(e);
        }
        match self.requests.get(self.next) {
            Some((_, request)) => Ok(Step::Fetch(request.clone())),
            None => Ok(Step::Done(self.roles.clone())),
        }
    }

    /// Every unanswered request of the current batch, in order: the first
    /// is what [`Self::poll`] returns. A driver may fetch them all at once,
    /// then [`Self::answer`] each in this order.
    pub fn pending(&self) -> Vec<Request> {
        self.requests
            .get(self.next..)
            .unwrap_or_default()
            .iter()
            .map(|(_, r)| r.clone())
            .collect()
    }

    /// Answers the first unanswered request. Errors surface at the next
    /// [`Self::poll`].
    pub fn answer(&mut self, response: Response) {
        if self.failed.is_some() {
            return;
        }
        let Some((slot, request)) = self.requests.get(self.next).cloned() else {
            self.failed = Some(Error::Order("answer without a pending request".into()));
            return;
        };
        self.next += 1;
        let bytes = match response {
            Response::Bytes(bytes) => Some(bytes),
            Response::NotFound => None,
        };
        let result = match (self.stage, bytes) {
            // An oversized cached file is as good as none.
            (Stage::Local, Some(bytes)) if bytes.len() as u64 <= request.max_length() => {
                self.hold(slot, request, bytes);
                Ok(())
            }
            (Stage::Local, _) => Ok(()),
            (_, Some(bytes)) => {
                self.hold(slot, request, bytes);
                Ok(())
            }
            (_, None) => Err(Error::Unavailable {
                role: RoleName::new(request.role()),
                file: request.remote_name(),
            }),
        };
        let full = self.answered_bytes >= self.batch_bytes || self.next >= self.requests.len();
        if let Err(e) = result.and_then(|()| if full { self.verify() } else { Ok(()) }) {
            self.failed = Some(e);
        }
    }

    fn hold(&mut self, slot: usize, request: Request, bytes: Vec<u8>) {
        self.answered_bytes = self.answered_bytes.saturating_add(bytes.len());
        self.answered.push((slot, request, bytes));
    }

    /// Verifies the answers held. Cached roles that fail are fetched from
    /// the repository later; a fetched role that fails is the walk's error.
    fn verify(&mut self) -> Result<()> {
        let answered = std::mem::take(&mut self.answered);
        self.answered_bytes = 0;
        if answered.is_empty() {
            return Ok(());
        }
        let level = &self.level;
        let items: Vec<(&str, &str, &[u8])> = answered
            .iter()
            .filter_map(|(slot, _, bytes)| {
                let (role, delegator) = level.get(*slot)?;
                Some((role.as_str(), delegator.as_str(), bytes.as_slice()))
            })
            .collect();
        let results = self
            .trusted
            .update_delegated_targets_batch(&items, self.threads);
        let mut first_error = None;
        for ((slot, request, bytes), result) in answered.into_iter().zip(results) {
            match result {
                Ok(()) => {
                    if let Some(loaded) = self.loaded.get_mut(slot) {
                        *loaded = true;
                    }
                    if !request.is_local() {
                        self.queue.push_back(CacheOp::Store {
                            name: request.cache_name(),
                            bytes,
                        });
                    }
                }
                Err(e) if !request.is_local() => {
                    first_error.get_or_insert(e);
                }
                Err(_) => {}
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Moves on until there is a request to answer or the walk is done.
    fn advance(&mut self) -> Result<()> {
        while self.next >= self.requests.len() {
            self.requests.clear();
            self.next = 0;
            match self.stage {
                Stage::Children => {
                    let parents: Vec<RoleName> =
                        self.level.drain(..).map(|(role, _)| role).collect();
                    self.level = self.children(&parents)?;
                    if self.level.is_empty() {
                        self.stage = Stage::Done;
                        return Ok(());
                    }
                    self.loaded = vec![false; self.level.len()];
                    // Roles an earlier refresh verified, unchanged since:
                    // taken over without reading their files.
                    self.trusted.adopt_level(&self.level, &mut self.loaded)?;
                    self.requests = self.level_requests(Source::Local)?;
                    self.stage = Stage::Local;
                }
                Stage::Local => {
                    self.requests = self.level_requests(Source::Remote)?;
                    self.stage = Stage::Remote;
                }
                Stage::Remote => {
                    self.roles
                        .extend(self.level.iter().map(|(role, _)| role.clone()));
                    self.stage = Stage::Children;
                }
                Stage::Done => return Ok(()),
            }
        }
        Ok(())
    }

    /// Requests for the roles of the level not loaded yet.
    fn level_requests(&self, source: Source) -> Result<Vec<(usize, Request)>> {
        let config = self.trusted.config();
        let snapshot = self.trusted.snapshot();
        let consistent = self.trusted.consistent_snapshot();
        let mut requests = Vec::new();
        for (slot, ((role, _), loaded)) in self.level.iter().zip(&self.loaded).enumerate() {
            if *loaded {
                continue;
            }
            let meta = snapshot
                .and_then(|s| s.role_meta(role.as_str()))
                .ok_or_else(|| unlisted(role))?;
            let max_length = match source {
                Source::Local => config.targets_max_length,
                Source::Remote => meta.length.unwrap_or(config.targets_max_length),
            };
            let file = MetadataFile::Targets {
                role: role.clone(),
                version: meta.version,
            };
            requests.push((slot, Request::new(file, source, max_length, consistent)));
        }
        Ok(requests)
    }

    /// The roles `parents` delegate to that the walk has not seen, each
    /// with its delegator, in order.
    fn children(&mut self, parents: &[RoleName]) -> Result<Vec<(RoleName, RoleName)>> {
        let trusted = &*self.trusted;
        let Some(snapshot) = trusted.snapshot() else {
            return Err(Error::Order("delegations walked before a snapshot".into()));
        };
        let listed = |name: &str| snapshot.role_meta(name).is_some();
        // The walk sees at most the roles the snapshot lists (and the
        // top-level names): room for them all, not a rehash per doubling.
        self.seen
            .reserve(snapshot.meta.len().saturating_sub(self.seen.len()));
        let mut children = Vec::new();
        for parent in parents {
            let Some(delegations) = trusted
                .targets(parent.as_str())
                .and_then(|t| t.delegations.as_ref())
            else {
                continue;
            };
            let names: Box<dyn Iterator<Item = RoleName> + '_> =
                match (&delegations.roles, &delegations.succinct_roles) {
                    (Some(roles), _) => Box::new(roles.iter().map(|r| r.name.clone())),
                    (None, Some(bins))
                        if self.skip_unlisted && bins.bin_count() > snapshot.meta.len() as u64 =>
                    {
                        // Only listed bins are walked: look them up among
                        // the snapshot's entries instead of enumerating
                        // every bin (zero-padded hex sorts in bin order).
                        Box::new(
                            snapshot
                                .meta
                                .keys()
                                .filter_map(|file| file.strip_suffix(".json"))
                                .filter(|name| bins.is_bin(name))
                                .map(RoleName::new),
                        )
                    }
                    (None, Some(bins)) => Box::new(bins.bin_names()),
                    (None, None) => Box::new(std::iter::empty()),
                };
            for name in names {
                if self.seen.contains(&name) {
                    continue;
                }
                if !listed(name.as_str()) {
                    if self.skip_unlisted {
                        continue;
                    }
                    return Err(unlisted(&name));
                }
                self.seen.insert(name.clone());
                children.push((name, parent.clone()));
            }
        }
        Ok(children)
    }
}

fn unlisted(role: &RoleName) -> Error {
    Error::MissingRole {
        role: role.clone(),
        message: "delegated but not listed in snapshot".into(),
    }
}
