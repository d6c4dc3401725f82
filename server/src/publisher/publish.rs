//! The one publish skeleton. Every kind of publish (a change, a batch, a
//! root, the server's own re-signing and sweeps, a bundle edition, the
//! first publish of a new store) hands its own work to it and gets the
//! rest done the same way:
//!
//! 1. one store transaction, in which
//! 2. the caller's work applies what it must to the store and stages what
//!    the repository must re-sign ([`Staged`]);
//! 3. the staged files and whatever is due are committed with the
//!    publish's audit records ([`commit_audited`]);
//! 4. the files are recorded as published and superseded ones pruned;
//! 5. then the new files are cached and the metrics counted, or, when
//!    anything failed, the repository is rebuilt from what the store last
//!    published ([`restore`]), so a failed publish changes nothing.
//!
//! A publish that signed no file (nothing was due) records, caches and
//! counts nothing.

use std::collections::BTreeMap;
use std::sync::MutexGuard;
use std::time::Instant;

use serde_json::json;
use time::{Duration, OffsetDateTime};

use keyshare_policy::metadata::RoleName;
use keyshare_policy::repo::{File, Options, Repository, SharedSigner};
use keyshare_policy::trust::{BIN_BITS, NAMESPACE_BIN_PREFIX};

use crate::store::{Store, Tx};

use super::audit::{commit_audited, Audit, Audits};
use super::durable::{Commit, Held};
use super::metrics::Versions;
use super::stage::{current_bins, legacy_roles, stage_migration};
use super::{Applied, Inner, OnlineKeys, PublishError, Publisher};

/// A publish about to start: the writers' lock held, and the time it was
/// asked for (the metrics count a publish's wait for the lock too).
pub(super) struct Writer<'a> {
    started: Instant,
    inner: MutexGuard<'a, Inner>,
    commit: Commit,
}

/// What a publish's work hands to the skeleton to commit.
pub(super) struct Staged<T> {
    /// Files staged (targets set, or files already signed by the work
    /// itself); they are published with what the commit signs.
    files: Vec<File>,
    /// The publish's audit records.
    audits: Audits,
    /// What the caller gets back.
    value: T,
    /// Whether the publish prunes superseded files.
    prune: bool,
}

impl<T> Staged<T> {
    /// `files` to publish with `audits`, giving `value` back.
    pub(super) fn new(files: Vec<File>, audits: Audits, value: T) -> Self {
        Self {
            files,
            audits,
            value,
            prune: true,
        }
    }

    /// The same, for a publish that prunes nothing (a new store; an
    /// air-gap export).
    pub(super) fn keeping_superseded(mut self) -> Self {
        self.prune = false;
        self
    }
}

/// What a publish published.
pub(super) struct Published<T> {
    /// Every file published, staged files first.
    pub(super) files: Vec<File>,
    /// Sequence numbers of its audit records, in order.
    pub(super) audit_seqs: Vec<i64>,
    /// The timestamp version after it (0 when there is none).
    pub(super) timestamp_version: u64,
    /// A deferred publish, held until the log is synced
    /// ([`Publisher::serve`]); `None` for a durable one (served).
    pub(super) held: Option<Held>,
    /// What the work gave back.
    pub(super) value: T,
}

impl<T> Published<T> {
    /// The paths of the files published.
    pub(super) fn paths(&self) -> Vec<String> {
        self.files.iter().map(|f| f.path.clone()).collect()
    }

    /// The answer to a publish of one audited change.
    pub(super) fn applied(&self) -> Applied {
        Applied {
            files: self.paths().into(),
            timestamp_version: self.timestamp_version,
            audit_seq: self.audit_seqs.first().copied().unwrap_or_default(),
        }
    }
}

impl Publisher {
    /// Takes the writers' lock for one publish, synced at commit.
    pub(super) fn writer(&self) -> Writer<'_> {
        self.writer_with(Commit::Durable)
    }

    /// Takes the writers' lock for one publish that commits as `commit`
    /// says (see [`super::durable`]).
    pub(super) fn writer_with(&self, commit: Commit) -> Writer<'_> {
        Writer {
            started: Instant::now(),
            inner: self.lock(),
            commit,
        }
    }

    /// The publish skeleton (see the module documentation): `work` runs in
    /// the store transaction with the repository; on success the files are
    /// cached and counted, on failure the repository is restored (or the
    /// publisher is [`PublishError::Broken`]) and the error returned.
    ///
    /// A repository whose bins still delegate to namespace roles is
    /// migrated first, in a publish of its own ([`Publisher::migrate_layout`]).
    pub(super) fn publish<T>(
        &self,
        mut writer: Writer<'_>,
        now: OffsetDateTime,
        work: impl FnOnce(&mut Tx<'_>, &mut Repository) -> Result<Staged<T>, PublishError>,
    ) -> Result<Published<T>, PublishError> {
        self.migrate_locked(&mut writer, now)?;
        self.publish_locked(&mut writer, now, work)
    }

    /// The migration publish, when the repository needs it (see
    /// [`Publisher::migrate_layout`]): every namespace role undelegated
    /// from its bin, every trust document listed in its bin, audited as
    /// `system` doing `repository.migrate`.
    pub(super) fn migrate_locked(
        &self,
        writer: &mut Writer<'_>,
        now: OffsetDateTime,
    ) -> Result<Option<Published<()>>, PublishError> {
        if !writer.inner.legacy {
            return Ok(None);
        }
        let published = self.publish_locked(writer, now, |_tx, repo| {
            let bins = current_bins(repo)?.bin_count();
            let (roles, moved) = stage_migration(repo)?;
            let audit = Audit::new(
                "system",
                "repository.migrate",
                "repository",
                json!({
                    "bins": bins,
                    "roles_undelegated": roles,
                    "trust_documents_moved": moved,
                }),
            );
            Ok(Staged::new(Vec::new(), Audits::ListingFiles(audit), ()))
        })?;
        writer.inner.legacy = false;
        Ok(Some(published))
    }

    /// One publish under the writers' lock (the skeleton proper).
    fn publish_locked<T>(
        &self,
        writer: &mut Writer<'_>,
        now: OffsetDateTime,
        work: impl FnOnce(&mut Tx<'_>, &mut Repository) -> Result<Staged<T>, PublishError>,
    ) -> Result<Published<T>, PublishError> {
        self.unsynced.check()?;
        self.clean(&mut writer.inner)?;
        let commit = writer.commit;
        let Inner {
            store,
            repo,
            legacy,
            ..
        } = &mut *writer.inner;
        // Under the store's write lock (PostgreSQL's advisory lock, SQLite's
        // `BEGIN IMMEDIATE`), before the work: another server sharing the
        // database may have published since this one last did; then the
        // repository is rebuilt from what the store holds, so the work
        // signs on top of the newest published state (never a second
        // timestamp with a version already published).
        let (keys, options) = (&self.keys, self.options);
        let served = self.served_version();
        let mut caught_up: Option<Vec<File>> = None;
        let result = publish_in(store, repo, now, self.retention, commit, |tx, repo| {
            if let Some(files) = catch_up(tx, repo, served, keys, options)? {
                *legacy = needs_migration(repo)?;
                caught_up = Some(files);
            }
            work(tx, repo)
        });
        match result {
            Ok(mut published) => {
                if let Some(files) = caught_up {
                    // What this server held is older: served first. Then
                    // what the other server published, then ours on top.
                    self.serve_all()?;
                    self.cache.insert(&files);
                    self.metrics.update_versions(repo);
                }
                if !published.files.is_empty() {
                    self.metrics.count_publish(writer.started);
                }
                match commit {
                    // This commit synced the log, and with it every
                    // deferred commit before it.
                    Commit::Durable if !published.files.is_empty() => {
                        let held = self
                            .unsynced
                            .hold(published.files.clone(), Versions::of(repo));
                        self.unsynced
                            .serve_through(held, true, &self.cache, &self.metrics)?;
                    }
                    Commit::Durable => {}
                    // Held even when it signed nothing: what it committed
                    // is reported only once synced.
                    Commit::Deferred => {
                        published.held = Some(
                            self.unsynced
                                .hold(published.files.clone(), Versions::of(repo)),
                        );
                    }
                }
                published.timestamp_version = repo.timestamp().map_or(0, |t| t.signed.version);
                Ok(published)
            }
            Err(e) => {
                // What earlier deferred publishes committed is in the
                // store the repository is rebuilt from: synced and served
                // first, so nothing unsynced is served.
                if let Err(b) = self.serve_all() {
                    return Err(PublishError::Broken(format!("{e}; then: {b}")));
                }
                let served = self.served_version();
                // The repository may have staged or signed what the store
                // did not keep: rebuild it from the store.
                *repo = match restore(store, &self.keys, self.options) {
                    Ok(repo) => repo,
                    Err(PublishError::Store(r)) if r.is_unavailable() => {
                        // The database is gone (for now): rebuilt before
                        // the next publish; the error says why.
                        writer.inner.dirty = true;
                        return Err(e);
                    }
                    Err(r) => return Err(PublishError::Broken(format!("{e}; then: {r}"))),
                };
                *legacy = needs_migration(repo)?;
                if repo_version(repo) > served {
                    // Another server published meanwhile: serve that.
                    self.cache.insert(&repo.current_files()?);
                    self.metrics.update_versions(repo);
                }
                Err(e)
            }
        }
    }
}

impl Publisher {
    /// Catches up with what another server sharing the database published:
    /// when the store's newest timestamp is newer than the repository this
    /// server holds, the repository is rebuilt from the store and its files
    /// cached, so reads serve it. Never goes back: an older or equal
    /// version in the store changes nothing. Returns the timestamp version
    /// caught up to, if any. Blocking; on a PostgreSQL store `serve`
    /// calls it when another server's publish is notified, and every
    /// second (`FOLLOW_INTERVAL`) when none is (one indexed query when
    /// nothing changed).
    pub fn follow_store(&self) -> Result<Option<u64>, PublishError> {
        let mut guard = self.lock();
        self.serve_all()?;
        self.clean(&mut guard)?;
        let Inner {
            store,
            repo,
            legacy,
            ..
        } = &mut *guard;
        // What the read API serves may be behind the repository (a publish
        // that caught up, then failed): the cache follows too.
        let served = self.served_version().min(repo_version(repo));
        match store.timestamp_version()? {
            Some(stored) if stored > served => {}
            _ => return Ok(None),
        }
        let Some(head) = store.last_published_head()? else {
            return Ok(None);
        };
        let newer = published_version(&head)?;
        if newer <= served || newer < repo_version(repo) {
            return Ok(None);
        }
        let files = if newer == repo_version(repo) {
            // The repository is current, the cache is not.
            repo.current_files()?
        } else {
            advance(
                repo,
                head,
                |role, v| store.published_role(role, v),
                || store.last_published(),
                &self.keys,
                self.options,
            )?
        };
        *legacy = needs_migration(repo)?;
        self.cache.insert(&files);
        self.metrics.update_versions(repo);
        Ok(Some(repo_version(repo)))
    }

    /// The version of the timestamp the read API serves (the cached one).
    fn served_version(&self) -> u64 {
        self.metrics
            .get()
            .versions
            .get(RoleName::TIMESTAMP)
            .copied()
            .unwrap_or(0)
    }

    /// Rebuilds a repository marked dirty from the store (see
    /// `Inner::dirty`); caches it when it is newer than what was served.
    fn clean(&self, inner: &mut Inner) -> Result<(), PublishError> {
        if !inner.dirty {
            return Ok(());
        }
        self.serve_all()?;
        let served = self.served_version();
        let repo = restore(&inner.store, &self.keys, self.options)?;
        inner.legacy = needs_migration(&repo)?;
        inner.repo = repo;
        inner.dirty = false;
        if repo_version(&inner.repo) > served {
            self.cache.insert(&inner.repo.current_files()?);
            self.metrics.update_versions(&inner.repo);
        }
        Ok(())
    }
}

/// The skeleton's transaction: `work`, then the commit with the audit
/// records, then the files recorded and superseded ones pruned (when
/// `retention` is set and the work prunes). The repository is left as it
/// is on failure; the caller restores it.
pub(super) fn publish_in<T>(
    store: &mut Store,
    repo: &mut Repository,
    now: OffsetDateTime,
    retention: Option<Duration>,
    commit: Commit,
    work: impl FnOnce(&mut Tx<'_>, &mut Repository) -> Result<Staged<T>, PublishError>,
) -> Result<Published<T>, PublishError> {
    let transaction = |tx: &mut Tx<'_>| {
        let Staged {
            files,
            audits,
            value,
            prune: prunes,
        } = work(tx, repo)?;
        let (files, audit_seqs) = commit_audited(tx, repo, now, files, audits)?;
        if !files.is_empty() {
            tx.record_published(&files)?;
            if prunes {
                prune(tx, retention, now)?;
            }
        }
        Ok(Published {
            files,
            audit_seqs,
            timestamp_version: 0,
            held: None,
            value,
        })
    };
    match commit {
        Commit::Durable => store.transaction_at(now, transaction),
        Commit::Deferred => store.transaction_deferring_sync(now, transaction),
    }
}

/// The version of `repo`'s timestamp (0 before the first publish).
pub(super) fn repo_version(repo: &Repository) -> u64 {
    repo.timestamp().map_or(0, |t| t.signed.version)
}

/// Brings `repo` up to what `tx` sees published, when that is newer
/// (another server sharing the database published since); returns the
/// files it took in, for the cache, or `None` when `repo` is current. A
/// store whose newest timestamp is *older* than `repo`'s or than the one
/// this server serves (`served`) is refused: something rolled the
/// database back under a running server (a restore from backup), and
/// signing on top of it would publish a version this server already
/// served with other contents.
pub(super) fn catch_up(
    tx: &Tx<'_>,
    repo: &mut Repository,
    served: u64,
    keys: &OnlineKeys,
    options: Options,
) -> Result<Option<Vec<File>>, PublishError> {
    let ours = repo_version(repo).max(served);
    match tx.timestamp_version()? {
        Some(stored) if stored > ours => {
            let head = tx.last_published_head()?.ok_or_else(lost)?;
            let files = advance(
                repo,
                head,
                |role, v| tx.published_role(role, v),
                || tx.last_published(),
                keys,
                options,
            )?;
            Ok(Some(files))
        }
        Some(stored) if stored < ours => Err(PublishError::Broken(format!(
            "the store's newest timestamp is version {stored}, older than version {ours} this \
             server published: the database went back in time (restored from a backup?); \
             restart the server"
        ))),
        // The same version is the same timestamp: versions are recorded once.
        _ => Ok(None),
    }
}

fn lost() -> PublishError {
    PublishError::Broken("the store lost its published repository".into())
}

/// The timestamp version `head` publishes.
fn published_version(head: &crate::store::LastPublished) -> Result<u64, PublishError> {
    let timestamp =
        keyshare_policy::metadata::Envelope::<keyshare_policy::metadata::Timestamp>::parse(
            RoleName::TIMESTAMP,
            &head.timestamp,
        )?;
    Ok(timestamp.signed.version)
}

/// Moves `repo` forward to `head` (the newest timestamp, its snapshot and
/// every root) plus the roles that changed, which `role` reads: only what
/// changed is read and verified (`Repository::advance`). Where that cannot
/// be done (another root, keys that changed), the whole repository is
/// rebuilt from `all` and verified, as at startup. Returns the files to
/// cache.
fn advance(
    repo: &mut Repository,
    mut head: crate::store::LastPublished,
    role: impl Fn(&str, u64) -> crate::store::Result<Option<Vec<u8>>>,
    all: impl FnOnce() -> crate::store::Result<Option<crate::store::LastPublished>>,
    keys: &OnlineKeys,
    options: Options,
) -> Result<Vec<File>, PublishError> {
    for (name, version) in repo.roles_to_load(&head.snapshot)? {
        // A missing file is left for `Repository::advance` to report.
        if let Some(bytes) = role(&name, version)? {
            head.targets.insert(name, bytes);
        }
    }
    if let Some(files) = repo.advance(&head.as_published())? {
        return Ok(files);
    }
    let last = all()?.ok_or_else(lost)?;
    *repo = restore_from(&last, keys, options, "the store")?;
    Ok(repo.current_files()?)
}

/// The repository as the store last published it.
pub(super) fn restore(
    store: &Store,
    keys: &OnlineKeys,
    options: Options,
) -> Result<Repository, PublishError> {
    let last = store.last_published()?.ok_or_else(|| {
        PublishError::Broken("the store holds no published repository; run init".into())
    })?;
    restore_from(&last, keys, options, &store.path().display().to_string())
}

/// The repository rebuilt from `last` (verified as a client would), with
/// the server's online keys as signers; `store` names the store in errors.
pub(super) fn restore_from(
    last: &crate::store::LastPublished,
    keys: &OnlineKeys,
    options: Options,
    store: &str,
) -> Result<Repository, PublishError> {
    // Namespace roles of an unmigrated repository get no signer: the
    // migration undelegates them before anything else is published, and
    // they are never signed again.
    let signers: BTreeMap<RoleName, Vec<SharedSigner>> = BTreeMap::from([
        (RoleName::targets(), vec![keys.targets.clone()]),
        (
            RoleName::new(RoleName::SNAPSHOT),
            vec![keys.snapshot.clone()],
        ),
        (
            RoleName::new(RoleName::TIMESTAMP),
            vec![keys.timestamp.clone()],
        ),
    ]);
    let mut repo = Repository::restore(&last.as_published(), signers, options)?;
    let delegated = repo
        .targets(RoleName::TARGETS)
        .and_then(|t| t.signed.delegations.as_ref())
        .and_then(|d| d.succinct_roles.clone());
    let layout = delegated
        .filter(|s| BIN_BITS.contains(&s.bit_length) && s.name_prefix == NAMESPACE_BIN_PREFIX);
    let Some(layout) = layout else {
        return Err(PublishError::Layout(format!(
            "the store {store} holds a repository in an earlier layout (namespace roles delegated \
             directly from targets, one org/namespaces.json); this server publishes namespaces \
             through hashed bins and does not read or migrate that layout: initialise a new \
             data directory with `keyshare-server init` and create the namespaces again"
        )));
    };
    // The bins are signed with the targets key, however many there are.
    for bin in layout.bin_names() {
        repo.set_signers(bin.as_str(), vec![keys.targets.clone()]);
    }
    Ok(repo)
}

/// Whether `repo`'s bins still delegate to namespace roles (a repository
/// published before trust documents were listed in the bins).
pub(super) fn needs_migration(repo: &Repository) -> Result<bool, PublishError> {
    Ok(!legacy_roles(repo)?.is_empty())
}

/// At most this many superseded files are deleted by one publish, so a
/// publish long after a burst of writes does not pay for deleting the whole
/// burst (a publish supersedes a handful of files; `Publisher::prune`, run
/// every minute by `serve`, deletes the rest).
const PRUNE_PER_PUBLISH: usize = 256;

/// Deletes superseded files older than `retention` (inside a publish).
fn prune(
    tx: &mut Tx<'_>,
    retention: Option<Duration>,
    now: OffsetDateTime,
) -> Result<(), PublishError> {
    if let Some(retention) = retention {
        tx.prune_superseded(now - retention, Some(PRUNE_PER_PUBLISH))?;
    }
    Ok(())
}
