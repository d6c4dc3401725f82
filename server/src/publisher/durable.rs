//! Publishes committed before they are durable, and served only once they
//! are (the CI publishing thread's pipelined group commit).
//!
//! A publish made with [`Commit::Deferred`] commits without waiting for the
//! disk ([`Store::transaction_deferring_sync`]), so the next batch can be
//! built and signed while the log is synced. Its files are *held*: not
//! cached, not served (not even read from the store by their exact
//! versioned names), not counted in the served versions, until
//! [`Unsynced::serve_through`] has synced the log past its commit. Only
//! then are the files served and the changes' requesters answered. So a
//! version a client can see, or a change a requester is told about, is on
//! disk: a power loss never makes the server publish a second, different
//! version under a number it served.
//!
//! Every other publish commits durably ([`Commit::Durable`]); its commit
//! syncs the log, and with it every deferred commit before it, so it
//! serves the held publishes before its own, in order. Anything that reads
//! the repository or the store to hand it out (a restore after a failed
//! publish, a catch-up, `publish --to`) first syncs and serves what is held
//! ([`Unsynced::serve_all`]).
//!
//! A failed sync leaves the held publishes' durability unknown: they are
//! never served, their requesters get an error, and every later publish
//! is refused with [`PublishError::Broken`] until the server restarts and
//! the store recovers what the disk kept.
//!
//! [`Store::transaction_deferring_sync`]: crate::store::Store::transaction_deferring_sync

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard, PoisonError};

use keyshare_policy::repo::File;

use crate::store::LogSync;

use super::cache::Cache;
use super::metrics::{Metrics, Versions};
use super::PublishError;

/// How a publish commits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Commit {
    /// Synced at commit, served at once.
    Durable,
    /// Committed without waiting for the disk, served by
    /// [`Unsynced::serve_through`] once synced.
    Deferred,
}

/// A publish committed before its sync: its number in commit order, for
/// [`Publisher::serve`](super::Publisher::serve).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Held(u64);

/// The publishes committed and not yet served, in commit order.
#[derive(Debug)]
pub(super) struct Unsynced {
    log: LogSync,
    state: Mutex<State>,
    /// One sync at a time; a sync that finds its publish served by another
    /// returns at once (one `fsync` then covers every commit before it).
    syncing: Mutex<()>,
}

#[derive(Debug, Default)]
struct State {
    /// The number of the last publish committed.
    committed: u64,
    /// Publishes up to this number are served.
    served: u64,
    held: VecDeque<HeldFiles>,
    /// Why the log could not be synced: nothing is published after.
    failed: Option<String>,
}

#[derive(Debug)]
struct HeldFiles {
    number: u64,
    files: Vec<File>,
    versions: Versions,
}

impl Unsynced {
    pub(super) fn new(log: LogSync) -> Self {
        Self {
            log,
            state: Mutex::default(),
            syncing: Mutex::default(),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Refuses when a sync failed (see the module documentation).
    pub(super) fn check(&self) -> Result<(), PublishError> {
        match &self.state().failed {
            Some(why) => Err(broken(why)),
            None => Ok(()),
        }
    }

    /// Holds the files of a publish just committed (under the writers'
    /// lock, so numbers follow commit order), with the top-level versions
    /// it published.
    pub(super) fn hold(&self, files: Vec<File>, versions: Versions) -> Held {
        let mut state = self.state();
        state.committed += 1;
        let number = state.committed;
        state.held.push_back(HeldFiles {
            number,
            files,
            versions,
        });
        Held(number)
    }

    /// Serves every held publish up to `held` (and any committed before the
    /// sync starts), in order, once the log is synced past them; `synced`
    /// when the caller's own commit synced it (a durable commit, made under
    /// the writers' lock, is the newest). Returns at once when another sync
    /// served them already.
    pub(super) fn serve_through(
        &self,
        held: Held,
        synced: bool,
        cache: &Cache,
        metrics: &Metrics,
    ) -> Result<(), PublishError> {
        let _one = self.syncing.lock().unwrap_or_else(PoisonError::into_inner);
        let through = {
            let state = self.state();
            if let Some(why) = &state.failed {
                return Err(broken(why));
            }
            if state.served >= held.0 {
                return Ok(());
            }
            state.committed
        };
        if !synced {
            if let Err(e) = self.log.sync() {
                let why = format!(
                    "the store's log could not be synced ({e}): publishes since the last \
                     sync may not be on disk; restart the server"
                );
                tracing::error!(error = %e, "syncing the store's log failed; publishing stops");
                self.state().failed = Some(why.clone());
                return Err(broken(&why));
            }
        }
        let ready: Vec<HeldFiles> = {
            let mut state = self.state();
            let count = state
                .held
                .iter()
                .take_while(|h| h.number <= through)
                .count();
            state.served = state.served.max(through);
            state.held.drain(..count).collect()
        };
        for h in ready {
            cache.insert(&h.files);
            metrics.set_versions(h.versions);
        }
        Ok(())
    }

    /// Whether `path` is a file of a publish committed and not yet served.
    pub(super) fn holds(&self, path: &str) -> bool {
        self.state()
            .held
            .iter()
            .any(|h| h.files.iter().any(|f| f.path == path))
    }

    /// Syncs and serves everything committed so far.
    pub(super) fn serve_all(&self, cache: &Cache, metrics: &Metrics) -> Result<(), PublishError> {
        let last = self.state().committed;
        self.serve_through(Held(last), false, cache, metrics)
    }
}

fn broken(why: &str) -> PublishError {
    PublishError::Broken(why.to_owned())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Arc;

    use super::*;

    fn file(path: &str) -> File {
        File {
            path: path.into(),
            bytes: Arc::from(&b"{}"[..]),
            immutable: true,
        }
    }

    #[test]
    fn a_log_that_cannot_be_synced_serves_nothing_held_and_stops_publishing() {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("plain");
        std::fs::write(&plain, b"x").unwrap();
        // Opening "<a file>/wal" fails (not a directory): the sync fails.
        let unsynced = Unsynced::new(LogSync::of_file(plain.join("wal")));
        let (cache, metrics) = (Cache::default(), Metrics::default());
        let held = unsynced.hold(vec![file("metadata/2.snapshot.json")], Versions::default());
        let e = unsynced
            .serve_through(held, false, &cache, &metrics)
            .unwrap_err();
        assert!(matches!(e, PublishError::Broken(_)), "{e}");
        assert!(e.to_string().contains("restart the server"), "{e}");
        assert!(cache.get("metadata/2.snapshot.json").is_none());
        // Every later publish is refused, even one synced at its commit.
        assert!(unsynced.check().is_err());
        let next = unsynced.hold(vec![file("metadata/3.snapshot.json")], Versions::default());
        assert!(unsynced
            .serve_through(next, true, &cache, &metrics)
            .is_err());
        assert!(cache.get("metadata/3.snapshot.json").is_none());
    }

    #[test]
    fn a_synced_log_serves_what_was_held_in_order_once() {
        let dir = tempfile::tempdir().unwrap();
        let wal = dir.path().join("keyshare.db-wal");
        std::fs::write(&wal, b"frames").unwrap();
        let unsynced = Unsynced::new(LogSync::of_file(wal.clone()));
        let (cache, metrics) = (Cache::default(), Metrics::default());
        let first = unsynced.hold(vec![file("metadata/2.snapshot.json")], Versions::default());
        let second = unsynced.hold(vec![file("metadata/3.snapshot.json")], Versions::default());
        // Serving the first syncs once for both (both were committed).
        unsynced
            .serve_through(first, false, &cache, &metrics)
            .unwrap();
        assert!(
            cache.get("metadata/2.snapshot.json").is_none(),
            "superseded"
        );
        assert!(cache.get("metadata/3.snapshot.json").is_some());
        unsynced
            .serve_through(second, false, &cache, &metrics)
            .unwrap();
        // A log that is gone was checkpointed: nothing to sync.
        std::fs::remove_file(&wal).unwrap();
        let third = unsynced.hold(vec![file("metadata/4.snapshot.json")], Versions::default());
        unsynced
            .serve_through(third, false, &cache, &metrics)
            .unwrap();
        assert!(cache.get("metadata/4.snapshot.json").is_some());
        assert!(unsynced.check().is_ok());
    }
}
