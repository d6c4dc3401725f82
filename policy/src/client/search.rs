//! Looking a target up: the pre-order depth-first walk of delegations.

use std::collections::{BTreeSet, VecDeque};

use super::load::{Load, Loaded};
use super::request::{CacheOp, Request, Response, Step};
use super::updater::Updater;
use crate::error::{Error, Result};
use crate::metadata::{RoleName, TargetFile};

/// How a target lookup ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// The most trusted role that lists the target, and its description.
    Found {
        /// The role whose metadata lists the target.
        role: RoleName,
        /// Length, hashes and custom fields, to verify the download against.
        target_file: TargetFile,
    },
    /// No role trusted for the path lists it (or the search hit
    /// [`super::Config::max_delegations`]).
    NotFound,
}

/// The lookup of one target path (specification §5.6.7), driven like the
/// [`Updater`]: [`Self::poll`], [`Self::answer`], until [`Step::Done`].
///
/// This is python-tuf's `_preorder_depth_first_walk`: a stack of
/// `(role, delegator)` starting with `(targets, root)`; a role already
/// visited is skipped (cycles end); at most `max_delegations` roles are
/// visited; each role is loaded (cache first, then the repository) and, if
/// it does not list the target, its delegations trusted for the path are
/// pushed in order, a terminating one cutting off everything not yet visited.
/// An error while loading a role ends the search with that error.
#[derive(Debug)]
pub struct TargetSearch<'u> {
    updater: &'u mut Updater,
    path: String,
    to_visit: Vec<(RoleName, RoleName)>,
    visited: BTreeSet<RoleName>,
    loading: Option<Load>,
    pending: Option<Request>,
    queue: VecDeque<CacheOp>,
    state: State,
}

#[derive(Debug)]
enum State {
    Running,
    Done(Lookup),
    Failed(Error),
}

impl<'u> TargetSearch<'u> {
    pub(super) fn new(updater: &'u mut Updater, path: &str) -> Self {
        Self {
            updater,
            path: path.to_owned(),
            to_visit: vec![(RoleName::targets(), RoleName::new(RoleName::ROOT))],
            visited: BTreeSet::new(),
            loading: None,
            pending: None,
            queue: VecDeque::new(),
            state: State::Running,
        }
    }

    /// The target path looked up.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// What the caller must do next (cache operations first, as for
    /// [`Updater::poll`]).
    pub fn poll(&mut self) -> Result<Step<Lookup>> {
        if let Some(op) = self.queue.pop_front() {
            return Ok(Step::Cache(op));
        }
        match &self.state {
            State::Failed(e) => return Err(e.clone()),
            State::Done(lookup) => return Ok(Step::Done(lookup.clone())),
            State::Running => {}
        }
        if let Some(request) = &self.pending {
            return Ok(Step::Fetch(request.clone()));
        }
        match self.advance() {
            Ok(Some(request)) => {
                self.pending = Some(request.clone());
                Ok(Step::Fetch(request))
            }
            Ok(None) => self.poll(),
            Err(e) => {
                self.state = State::Failed(e.clone());
                Err(e)
            }
        }
    }

    /// Answers the request of the last [`Step::Fetch`]; errors surface at
    /// the next [`Self::poll`].
    pub fn answer(&mut self, response: Response) {
        let (Some(request), Some(mut load)) = (self.pending.take(), self.loading.take()) else {
            self.state = State::Failed(Error::Order("answer without a pending request".into()));
            return;
        };
        let bytes = match response {
            Response::Bytes(bytes) if bytes.len() as u64 > request.max_length() => {
                if !request.is_local() {
                    self.state = State::Failed(Error::Oversized {
                        what: request.role().to_owned(),
                        length: bytes.len() as u64,
                        limit: request.max_length(),
                    });
                    return;
                }
                None
            }
            Response::Bytes(bytes) => Some(bytes),
            Response::NotFound => None,
        };
        match load.answer(&mut self.updater.trusted, &request, bytes) {
            Ok(Loaded::Yes(op)) => {
                self.queue.extend(op);
                if let Err(e) = self.inspect(&load.role) {
                    self.state = State::Failed(e);
                }
            }
            Ok(Loaded::NotYet) => self.loading = Some(load),
            Err(e) => self.state = State::Failed(e),
        }
    }

    /// Walks until a role must be loaded (returns its request) or the
    /// search is over (`None`, with the state set).
    fn advance(&mut self) -> Result<Option<Request>> {
        loop {
            if let Some(load) = &self.loading {
                return load.request(&self.updater.trusted).map(Some);
            }
            if !matches!(self.state, State::Running) {
                return Ok(None);
            }
            let max = usize::try_from(self.updater.config().max_delegations).unwrap_or(usize::MAX);
            let Some((role, delegator)) = self.to_visit.pop().filter(|_| self.visited.len() <= max)
            else {
                self.state = State::Done(Lookup::NotFound);
                return Ok(None);
            };
            if self.visited.contains(&role) {
                continue;
            }
            if self
                .updater
                .trusted
                .contains(role.as_str(), delegator.as_str())
            {
                self.inspect(&role)?;
            } else {
                self.loading = Some(Load::new(role.as_str(), delegator.as_str()));
            }
        }
    }

    /// Looks at a loaded role: the target, or its children to visit.
    fn inspect(&mut self, role: &RoleName) -> Result<()> {
        let targets = self
            .updater
            .trusted
            .targets(role.as_str())
            .ok_or_else(|| Error::Order(format!("{role} inspected before it was loaded")))?;
        if let Some(target_file) = targets.targets.get(&self.path) {
            self.state = State::Done(Lookup::Found {
                role: role.clone(),
                target_file: target_file.clone(),
            });
            return Ok(());
        }
        self.visited.insert(role.clone());
        if let Some(delegations) = &targets.delegations {
            let mut children = Vec::new();
            for child in delegations.roles_for_target(&self.path) {
                children.push((child.name, role.clone()));
                if child.terminating {
                    self.to_visit.clear();
                    break;
                }
            }
            self.to_visit.extend(children.into_iter().rev());
        }
        Ok(())
    }
}
