//! The publisher's counters for `/metrics`.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use time::OffsetDateTime;

use keyshare_policy::metadata::RoleName;
use keyshare_policy::repo::Repository;

/// Counters for `/metrics`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PublisherMetrics {
    /// Publishes since start.
    pub publishes: u64,
    /// Time spent publishing since start, seconds.
    pub publish_seconds_total: f64,
    /// Duration of the last publish, seconds.
    pub last_publish_seconds: f64,
    /// Current version of each top-level role.
    pub versions: BTreeMap<String, u64>,
    /// The earliest `expires` among root, targets, snapshot and timestamp.
    pub earliest_expiry: Option<OffsetDateTime>,
}

/// The top-level roles' versions and earliest expiry of a repository, as
/// it was when taken.
#[derive(Clone, Debug, Default)]
pub(super) struct Versions {
    versions: BTreeMap<String, u64>,
    earliest_expiry: Option<OffsetDateTime>,
}

impl Versions {
    /// `repo`'s, now.
    pub(super) fn of(repo: &Repository) -> Self {
        let root = &repo.root().signed;
        let mut versions = BTreeMap::from([(RoleName::ROOT.to_owned(), root.version)]);
        let mut expiries = vec![root.expires.time()];
        if let Some(t) = repo.targets(RoleName::TARGETS) {
            versions.insert(RoleName::TARGETS.into(), t.signed.version);
            expiries.push(t.signed.expires.time());
        }
        if let Some(s) = repo.snapshot() {
            versions.insert(RoleName::SNAPSHOT.into(), s.signed.version);
            expiries.push(s.signed.expires.time());
        }
        if let Some(t) = repo.timestamp() {
            versions.insert(RoleName::TIMESTAMP.into(), t.signed.version);
            expiries.push(t.signed.expires.time());
        }
        Self {
            versions,
            earliest_expiry: expiries.into_iter().min(),
        }
    }
}

/// The counters, shared by the publishes and `/metrics`.
#[derive(Debug, Default)]
pub(super) struct Metrics(Mutex<PublisherMetrics>);

impl Metrics {
    fn lock(&self) -> std::sync::MutexGuard<'_, PublisherMetrics> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A copy of the counters.
    pub(super) fn get(&self) -> PublisherMetrics {
        self.lock().clone()
    }

    /// Records the top-level roles' versions and earliest expiry.
    pub(super) fn update_versions(&self, repo: &Repository) {
        self.set_versions(Versions::of(repo));
    }

    /// Records versions taken earlier ([`Versions::of`]).
    pub(super) fn set_versions(&self, versions: Versions) {
        let mut m = self.lock();
        m.versions = versions.versions;
        m.earliest_expiry = versions.earliest_expiry;
    }

    /// Counts a publish that began at `started`.
    pub(super) fn count_publish(&self, started: Instant) {
        let mut m = self.lock();
        let seconds = started.elapsed().as_secs_f64();
        m.publishes += 1;
        m.publish_seconds_total += seconds;
        m.last_publish_seconds = seconds;
    }
}
