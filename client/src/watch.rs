//! Keeping a verifier's trust state fresh: the loop behind `keyshare
//! watch`.
//!
//! [`watch`] refreshes the organization's repository (the whole TUF
//! workflow, [`Verifier::refresh`]), then waits for the next publish with
//! the server's long poll ([`Verifier::wait_for_publish`]: `If-None-Match`
//! and `Prefer: wait`), and refreshes again as soon as there is one. A
//! server that does not hold the request (a static mirror) is polled every
//! [`WatchOptions::poll_interval`] instead. Every state the loop holds is
//! one a refresh verified: the long poll only says *when* to refresh, so a
//! server that announces a publish it did not make, or serves a rollback,
//! gets a refresh that fails and leaves the cache and the state as they
//! were. Failures (the server down, the network gone, a refused refresh)
//! are retried after a capped exponential backoff with jitter.
//!
//! The caller learns of each new state through [`Event::State`], with what
//! changed ([`Changes`]); it runs exports, commands and its decision
//! endpoint from there. The cache is written behind the state
//! ([`WatchOptions::write_behind`] later, or before the next refresh or
//! the shutdown, whichever comes first), atomically; the state held never
//! goes back to an older timestamp version than it had, even if the cache
//! fell behind it. The loop ends when `shutdown` resolves, between two
//! steps, after writing the cache: stopping never leaves a half-written
//! cache, nor one behind the last state reported.

use std::collections::BTreeSet;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use keyshare_policy::metadata::RoleName;
use keyshare_policy::trust::{is_index_path, PEERS_PATH, REVOCATIONS_PATH, TSAS_PATH};

use crate::fetch::WaitAnswer;
use crate::verifier::{Commit, Error, TrustState, Verifier};

/// How [`watch`] waits and retries.
#[derive(Debug, Clone)]
pub struct WatchOptions {
    /// How long one long poll asks the server to hold the request (the
    /// server caps it at 60 seconds).
    pub wait: Duration,
    /// How often a server that does not wait (a static mirror) is polled.
    pub poll_interval: Duration,
    /// The first retry delay after a failure; doubled per failure in a row.
    pub min_backoff: Duration,
    /// The longest retry delay.
    pub max_backoff: Duration,
    /// How long after a new state the cache is written, unless the next
    /// refresh or the shutdown comes first (both write it before they go
    /// on). Decisions and exports never wait for the disk; the delay keeps
    /// the write out of the way of the refreshes of a burst of publishes
    /// (or of many watchers on one machine). Zero writes at once.
    pub write_behind: Duration,
}

impl Default for WatchOptions {
    fn default() -> Self {
        Self {
            wait: Duration::from_secs(30),
            poll_interval: Duration::from_secs(30),
            min_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            write_behind: Duration::from_secs(2),
        }
    }
}

/// What changed from one trust state to the next, by target path of the
/// verified documents.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// The new state's timestamp version.
    pub timestamp_version: u64,
    /// The first state the loop holds (nothing to compare with).
    pub first: bool,
    /// Namespaces whose trust document appeared.
    pub namespaces_added: Vec<String>,
    /// Namespaces whose trust document is gone.
    pub namespaces_removed: Vec<String>,
    /// Namespaces whose trust document changed.
    pub namespaces_changed: Vec<String>,
    /// The namespace index (scopes, maintainers) changed.
    pub index: bool,
    /// `org/revocations.json` changed.
    pub revocations: bool,
    /// `org/peers.json` changed.
    pub peers: bool,
    /// `org/tsas.json` changed.
    pub tsas: bool,
    /// `org/roots/` changed.
    pub roots: bool,
}

impl Changes {
    /// What changed from `old` (none: the first state) to `new`.
    pub fn between(old: Option<&TrustState>, new: &TrustState) -> Self {
        let mut changes = Self {
            timestamp_version: new.timestamp_version,
            first: old.is_none(),
            ..Self::default()
        };
        let Some(old) = old else {
            return changes;
        };
        let paths: BTreeSet<&String> = old.documents.keys().chain(new.documents.keys()).collect();
        for path in paths {
            let (before, after) = (old.documents.get(path), new.documents.get(path));
            if before == after {
                continue;
            }
            if let Some(ns) = path
                .strip_prefix("namespaces/")
                .and_then(|rest| rest.strip_suffix("/trust.json"))
            {
                let list = match (before, after) {
                    (None, _) => &mut changes.namespaces_added,
                    (_, None) => &mut changes.namespaces_removed,
                    _ => &mut changes.namespaces_changed,
                };
                list.push(ns.to_owned());
            } else if is_index_path(path) {
                changes.index = true;
            } else if path == REVOCATIONS_PATH {
                changes.revocations = true;
            } else if path == PEERS_PATH {
                changes.peers = true;
            } else if path == TSAS_PATH {
                changes.tsas = true;
            } else if path.starts_with("org/roots/") {
                changes.roots = true;
            }
        }
        changes
    }

    /// True when no document changed (a re-signed timestamp, say).
    pub fn is_empty(&self) -> bool {
        self.namespaces_added.is_empty()
            && self.namespaces_removed.is_empty()
            && self.namespaces_changed.is_empty()
            && !(self.index || self.revocations || self.peers || self.tsas || self.roots)
    }
}

impl fmt::Display for Changes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "timestamp version {}: ", self.timestamp_version)?;
        if self.first {
            return f.write_str("trust state loaded");
        }
        let mut parts: Vec<String> = Vec::new();
        let names = |sign: &str, list: &[String]| {
            list.iter()
                .map(|n| format!("{sign}{n}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let namespaces = [
            names("+", &self.namespaces_added),
            names("-", &self.namespaces_removed),
            names("~", &self.namespaces_changed),
        ]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
        if !namespaces.is_empty() {
            parts.push(format!("namespaces {namespaces}"));
        }
        for (changed, what) in [
            (self.index, "namespace index"),
            (self.revocations, "revocations"),
            (self.peers, "peers"),
            (self.tsas, "timestamp authorities"),
            (self.roots, "organization roots"),
        ] {
            if changed {
                parts.push(what.to_owned());
            }
        }
        if parts.is_empty() {
            f.write_str("no document changed")
        } else {
            write!(f, "{} changed", parts.join("; "))
        }
    }
}

/// What [`watch`] reports.
#[derive(Debug)]
pub enum Event<'a> {
    /// A new verified state (the first one, or one after a publish).
    State {
        /// The state.
        state: &'a Arc<TrustState>,
        /// What changed from the one before.
        changes: &'a Changes,
    },
    /// A refresh or a wait failed; the state stays the last good one and
    /// the loop tries again after `retry_in`.
    Problem {
        /// The error.
        error: &'a Error,
        /// When it tries again.
        retry_in: Duration,
    },
}

/// Keeps `verifier`'s organization state fresh until `shutdown` resolves
/// (module docs), reporting each new state and each failure to `report`.
/// The first state is the cached one, if the cache holds a valid one, so
/// the caller can serve decisions while the server is unreachable.
pub async fn watch<S: Future<Output = ()>>(
    verifier: &Verifier,
    options: &WatchOptions,
    mut report: impl FnMut(Event<'_>),
    shutdown: S,
) {
    tokio::pin!(shutdown);
    let mut held: Option<Arc<TrustState>> = None;
    if let Ok(cached) = verifier.trust_state().await {
        let state = Arc::new(cached);
        let changes = Changes::between(None, &state);
        report(Event::State {
            state: &state,
            changes: &changes,
        });
        held = Some(state);
    }
    let mut failures: u32 = 0;
    // The timestamp the last wait was answered with, for the next refresh.
    let mut prefetched = None;
    // Publishes the server announced that a refresh did not find, in a row.
    let mut false_alarms: u32 = 0;
    let mut announced = false;
    // The cache write of the last new state, and when it is due.
    let mut pending: Option<(Commit, Instant)> = None;
    loop {
        // A refresh starts from the cache: the state held is written first.
        write(&mut pending, &mut report).await;
        // Refresh (the TUF workflow): a new state, or a failure to retry.
        let refreshed = tokio::select! {
            () = &mut shutdown => return,
            r = verifier.refresh_from(prefetched.take()) => r,
        };
        match refreshed {
            Ok((new, commit)) => {
                failures = 0;
                let new = Arc::new(new);
                let held_version = held.as_ref().map(|old| old.timestamp_version);
                if let Some(trusted) = held_version.filter(|v| new.timestamp_version < *v) {
                    // Older than the state held (a cache that fell behind
                    // it, say, and a server replaying): never go back.
                    let error = Error::Tuf {
                        url: new.url.clone(),
                        source: keyshare_policy::Error::Rollback {
                            role: RoleName::new(RoleName::TIMESTAMP),
                            trusted,
                            received: new.timestamp_version,
                        },
                    };
                    let retry_in = backoff(options, failures);
                    failures = failures.saturating_add(1);
                    report(Event::Problem {
                        error: &error,
                        retry_in,
                    });
                    tokio::select! {
                        () = &mut shutdown => return,
                        () = tokio::time::sleep(retry_in) => {}
                    }
                    continue;
                }
                let same = held_version == Some(new.timestamp_version);
                if same && announced {
                    // Announced, not published: a server that says so on
                    // every wait gets polled, no faster.
                    false_alarms = false_alarms.saturating_add(1);
                    let pause = backoff_between(
                        options.min_backoff,
                        options.poll_interval,
                        false_alarms - 1,
                    );
                    tokio::select! {
                        () = &mut shutdown => return,
                        () = tokio::time::sleep(pause) => {}
                    }
                } else if !same {
                    false_alarms = 0;
                    let changes = Changes::between(held.as_deref(), &new);
                    report(Event::State {
                        state: &new,
                        changes: &changes,
                    });
                    held = Some(new);
                }
                // The cache after the state is acted on, a little later
                // (write-behind): decisions do not wait for the disk.
                pending = Some((commit, Instant::now() + options.write_behind));
            }
            Err(error) => {
                let retry_in = backoff(options, failures);
                failures = failures.saturating_add(1);
                report(Event::Problem {
                    error: &error,
                    retry_in,
                });
                tokio::select! {
                    () = &mut shutdown => return write(&mut pending, &mut report).await,
                    () = tokio::time::sleep(retry_in) => {}
                }
                continue;
            }
        }
        // Wait for the next publish, or poll a server that does not wait;
        // the cache is written when due, meanwhile.
        let pause = loop {
            let waited = verifier.wait_for_publish(options.wait);
            tokio::pin!(waited);
            let answer = loop {
                let due = pending.as_ref().map(|(_, at)| *at);
                tokio::select! {
                    () = &mut shutdown => return write(&mut pending, &mut report).await,
                    a = &mut waited => break a,
                    () = sleep_until(due) => write(&mut pending, &mut report).await,
                }
            };
            announced = false;
            match answer {
                Ok(WaitAnswer::Changed(timestamp)) => {
                    announced = true;
                    prefetched = Some(timestamp);
                    break Duration::ZERO;
                }
                Ok(WaitAnswer::Unchanged { waited: true }) => {}
                Ok(WaitAnswer::Unchanged { waited: false } | WaitAnswer::Busy) => {
                    break options.poll_interval;
                }
                Err(error) => {
                    let retry_in = backoff(options, failures);
                    failures = failures.saturating_add(1);
                    report(Event::Problem {
                        error: &error,
                        retry_in,
                    });
                    break retry_in;
                }
            }
        };
        let until = Instant::now() + pause;
        while Instant::now() < until {
            let due = pending.as_ref().map(|(_, at)| *at);
            tokio::select! {
                () = &mut shutdown => return write(&mut pending, &mut report).await,
                () = tokio::time::sleep_until(until) => {}
                () = sleep_until(due) => write(&mut pending, &mut report).await,
            }
        }
    }
}

/// Writes the pending cache write, if any, off the runtime's threads. A
/// failed write leaves the last one whole (the next new state writes
/// again); it is reported.
async fn write(pending: &mut Option<(Commit, Instant)>, report: &mut impl FnMut(Event<'_>)) {
    let Some((commit, _)) = pending.take() else {
        return;
    };
    let written = tokio::task::spawn_blocking(move || commit.commit()).await;
    if let Ok(Err(error)) = written {
        report(Event::Problem {
            error: &error,
            retry_in: Duration::ZERO,
        });
    }
}

/// Resolves at `at`, or never.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The delay before retry number `failures + 1`: `min_backoff` doubled per
/// failure in a row, at most `max_backoff`, then between half and all of
/// it at random (so a crowd of verifiers does not return in step).
fn backoff(options: &WatchOptions, failures: u32) -> Duration {
    backoff_between(options.min_backoff, options.max_backoff, failures)
}

/// `min` doubled `n` times, at most `max`, then between half and all of it
/// at random.
fn backoff_between(min: Duration, max: Duration, n: u32) -> Duration {
    let doubled = min.saturating_mul(1u32.checked_shl(n.min(16)).unwrap_or(u32::MAX));
    let capped = doubled.min(max);
    let mut byte = [0u8; 1];
    let random = match openssl::rand::rand_bytes(&mut byte) {
        Ok(()) => f64::from(byte.first().copied().unwrap_or(u8::MAX)) / 255.0,
        Err(_) => 1.0,
    };
    capped.mul_f64(0.5 + random / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter_below_it() {
        let options = WatchOptions {
            min_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(8),
            ..WatchOptions::default()
        };
        for (failures, full) in [(0, 1), (1, 2), (2, 4), (3, 8), (4, 8), (40, 8)] {
            for _ in 0..20 {
                let d = backoff(&options, failures);
                assert!(d <= Duration::from_secs(full), "{failures}: {d:?}");
                assert!(d >= Duration::from_secs(full) / 2, "{failures}: {d:?}");
            }
        }
    }
}
