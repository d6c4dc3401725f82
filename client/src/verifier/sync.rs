//! The sync: one repository's TUF workflow, the walk of every delegated
//! role, its trust documents and the trust state, read through a
//! [`Fetcher`] and checked as of now, in five named steps (as python-tuf's
//! `Updater.refresh` is `_load_root`, `_load_timestamp`, `_load_snapshot`,
//! `_load_targets`):
//!
//! 1. [`Verifier::load_top_level`]: root, timestamp, snapshot, targets
//!    (TUF §5.3–5.6, policy's [`Updater`]);
//! 2. [`Verifier::load_delegations`]: every delegated role, a level at a
//!    time (policy's [`Walk`](keyshare_policy::client::Walk)), cache first,
//!    downloads concurrent;
//! 3. [`resolve_documents`]: which trust documents to fetch, each found by
//!    a TUF target search (a path listed by a role not trusted for it is
//!    ignored);
//! 4. [`Verifier::fetch_documents`]: the documents, from the cache when the
//!    hash matches, else downloaded concurrently, each checked against its
//!    listing;
//! 5. [`build_state`] and [`finish`]: the [`TrustState`], and what to write
//!    to the cache (written by the caller only when all of it verified).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use futures_util::stream::{self, StreamExt as _};

use keyshare_policy::audit::Head;
use keyshare_policy::client::{
    encode_role, verify_target, CacheOp, EarlierRoles, Lookup, MetadataFile, Response, Step,
    Updater,
};
use keyshare_policy::evidence::EvidenceAnchor;
use keyshare_policy::hash::sha256_hex;
use keyshare_policy::layout::TARGETS_DIR;
use keyshare_policy::metadata::{RoleName, TargetFile};
use keyshare_policy::trust::{
    is_index_path, NamespaceName, NamespaceTrust, Namespaces, Peers, Revocations, TrustSet, Tsas,
    PEERS_PATH, REVOCATIONS_PATH, TSAS_PATH,
};

use super::{Error, TrustState, Verifier};
use crate::cache::{Manifest, RememberedHead, RepoCache};
use crate::fetch::{Fetched, Fetcher, Missing};

/// A refresh in progress: the cache's files plus what was fetched, written
/// back only when everything verified.
pub(super) struct Work {
    cache: RepoCache,
    old: Arc<Manifest>,
    /// Metadata by cache name: fetched or read this time.
    metadata: BTreeMap<String, Vec<u8>>,
    deleted: BTreeSet<String>,
    etag: Option<String>,
    /// Blobs read from the cache intact this time (by SHA-256): the
    /// commit need not write them again.
    intact: BTreeSet<String>,
}

impl Work {
    fn new(cache: RepoCache, old: Arc<Manifest>) -> Self {
        Self {
            cache,
            old,
            metadata: BTreeMap::new(),
            deleted: BTreeSet::new(),
            etag: None,
            intact: BTreeSet::new(),
        }
    }

    fn local(&mut self, name: &str) -> Option<Vec<u8>> {
        if self.deleted.contains(name) {
            return None;
        }
        if let Some(b) = self.metadata.get(name) {
            return Some(b.clone());
        }
        let sha = self.old.metadata.get(name)?;
        let bytes = self.cache.blob(sha)?;
        self.intact.insert(sha.clone());
        self.metadata.insert(name.to_owned(), bytes.clone());
        Some(bytes)
    }

    fn peek(&self, name: &str) -> Option<Vec<u8>> {
        self.peek_ref(name).cloned()
    }

    fn peek_ref(&self, name: &str) -> Option<&Vec<u8>> {
        if self.deleted.contains(name) {
            return None;
        }
        self.metadata.get(name)
    }

    fn store(&mut self, name: String, bytes: Vec<u8>) {
        self.deleted.remove(&name);
        self.metadata.insert(name, bytes);
    }

    fn apply(&mut self, op: CacheOp) {
        match op {
            CacheOp::Store { name, bytes } => self.store(name, bytes),
            CacheOp::Delete { name } => {
                self.metadata.remove(&name);
                self.deleted.insert(name);
            }
        }
    }
}

/// The result of a sync: the state, and what is left to do once the
/// state is acted on ([`Behind`]).
pub(super) struct Synced {
    pub(super) state: TrustState,
    pub(super) behind: Behind,
}

/// The delegated roles a sync verified, by cache directory, for the next
/// sync of that directory ([`Verifier::earlier_roles`]).
pub(super) type EarlierMemo = Arc<Mutex<HashMap<PathBuf, Arc<EarlierRoles>>>>;

/// The bookkeeping of a sync that no decision waits for: remembering the
/// roles it verified for the next sync, and the cache's manifest of its
/// metadata. Done by [`Behind::finish`] (or [`Behind::remember`]).
pub(super) struct Behind {
    work: Work,
    updater: Updater,
    roles: Vec<RoleName>,
    earlier: EarlierMemo,
    /// The manifest with the trust documents, the `ETag` and the audit
    /// heads; the metadata is added by `finish`.
    manifest: Manifest,
    /// The documents' blobs the cache does not hold intact.
    blobs: BTreeMap<String, Vec<u8>>,
}

impl Behind {
    /// The cache the sync read.
    pub(super) fn cache(&self) -> &RepoCache {
        &self.work.cache
    }

    /// The timestamp `ETag` the sync got, if any.
    pub(super) fn timestamp_etag(&self) -> Option<&str> {
        self.manifest.timestamp_etag.as_deref()
    }

    /// Remembers the delegated roles the sync verified, for the next sync
    /// of the same cache to take over.
    pub(super) fn remember(&self) {
        let roles = Arc::new(self.updater.trusted().earlier_roles());
        self.earlier
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(self.work.cache.dir().to_owned(), roles);
    }

    /// [`Self::remember`], then what to write to the cache: the manifest
    /// and the blobs it names that the cache does not hold intact already
    /// (those read from it intact during the sync are left out).
    pub(super) fn finish(self) -> (Manifest, BTreeMap<String, Vec<u8>>) {
        self.remember();
        let Self {
            work,
            updater,
            roles,
            mut manifest,
            mut blobs,
            ..
        } = self;
        add_metadata(&mut manifest, &mut blobs, &work, &roles, &updater);
        (manifest, blobs)
    }
}

impl Verifier {
    /// The TUF workflow, the walk of every delegated role, the trust
    /// documents, from `fetcher`, checked as of now.
    pub(super) async fn sync<F: Fetcher + Sync>(
        &self,
        cache: &RepoCache,
        manifest: Arc<Manifest>,
        fetcher: &F,
    ) -> Result<Synced, Error> {
        let url = manifest.url.clone();
        let mut work = Work::new(cache.clone(), manifest);
        let mut updater = self.load_top_level(&url, &mut work, fetcher).await?;
        let roles = self
            .load_delegations(&url, &mut updater, &mut work, fetcher)
            .await?;
        let found = resolve_documents(&url, &mut updater, &work, &roles)?;
        let (documents, intact) = self
            .fetch_documents(&url, &updater, &work, fetcher, found)
            .await?;
        work.intact.extend(intact);
        // Each document's SHA-256, once: the parse memo's key and the
        // cache's blob name.
        let shas: BTreeMap<String, String> = documents
            .iter()
            .map(|(path, bytes)| (path.clone(), sha256_hex(bytes)))
            .collect();
        let state = build_state(
            &url,
            &updater,
            documents,
            &shas,
            self.options.threads,
            &self.parsed_documents(cache.dir()),
        )?;
        let (manifest, blobs) = documents_manifest(&state, &shas, &work);
        Ok(Synced {
            state,
            behind: Behind {
                work,
                updater,
                roles,
                earlier: self.earlier.clone(),
                manifest,
                blobs,
            },
        })
    }

    /// Step 1, top-level metadata (TUF §5.3–5.6): the trusted root from the
    /// cache, then policy's [`Updater`], with cached files as its cache and
    /// `fetcher` as the repository. The timestamp is asked for with the
    /// cached copy's `ETag`; "not modified" is the cached copy.
    async fn load_top_level<F: Fetcher + Sync>(
        &self,
        url: &str,
        work: &mut Work,
        fetcher: &F,
    ) -> Result<Updater, Error> {
        let tuf = |source| tuf(url, source);
        let root = work
            .local("root.json")
            .ok_or_else(|| Error::NotInitialized {
                dir: work.cache.dir().to_owned(),
            })?;
        let mut updater = Updater::with_earlier_roles(
            &root,
            self.now(),
            self.options.config.clone(),
            Some(self.signatures.clone()),
            self.earlier_roles(work.cache.dir()),
        )
        .map_err(tuf)?;
        let etag = work.old.timestamp_etag.clone();
        loop {
            match updater.poll().map_err(tuf)? {
                Step::Done(()) => return Ok(updater),
                Step::Cache(op) => work.apply(op),
                Step::Fetch(request) => {
                    let name = request.cache_name();
                    let response = if request.is_local() {
                        work.local(&name).into()
                    } else {
                        let is_timestamp = matches!(request.file(), MetadataFile::Timestamp);
                        let cached = is_timestamp
                            .then(|| work.local(&name))
                            .flatten()
                            .and(etag.clone());
                        let path = format!("metadata/{}", request.remote_name());
                        match fetcher
                            .get(&path, request.max_length(), cached.as_deref())
                            .await?
                        {
                            Fetched::Bytes { bytes, etag } => {
                                if is_timestamp {
                                    work.etag = etag;
                                }
                                Response::Bytes(bytes)
                            }
                            Fetched::NotFound => Response::NotFound,
                            Fetched::NotModified => {
                                work.etag = cached;
                                work.local(&name).into()
                            }
                        }
                    };
                    updater.answer(response);
                }
            }
        }
    }

    /// Step 2, every delegated role, one level of the delegation graph at a
    /// time (policy's walk: each role once; a role the snapshot does not
    /// list is skipped, no target search could load it either): cached
    /// copies first, then the rest downloaded concurrently and verified on
    /// [`super::Options::threads`] threads. Returns the roles loaded,
    /// `targets` first.
    async fn load_delegations<F: Fetcher + Sync>(
        &self,
        url: &str,
        updater: &mut Updater,
        work: &mut Work,
        fetcher: &F,
    ) -> Result<Vec<RoleName>, Error> {
        let tuf = |source| tuf(url, source);
        let mut walk = updater
            .walk(self.options.threads)
            .map_err(tuf)?
            .skip_unlisted();
        loop {
            match walk.poll().map_err(tuf)? {
                Step::Done(roles) => return Ok(roles),
                Step::Cache(op) => work.apply(op),
                Step::Fetch(request) if request.is_local() => {
                    let bytes = work.local(&request.cache_name());
                    walk.answer(bytes.into());
                }
                Step::Fetch(_) => {
                    // The whole batch at once, answered in order.
                    let batch = walk.pending();
                    let jobs = batch.iter().map(|request| async move {
                        let name = request.remote_name();
                        let path = format!("metadata/{name}");
                        match fetcher.get(&path, request.max_length(), None).await? {
                            Fetched::Bytes { bytes, .. } => Ok(bytes),
                            Fetched::NotFound | Fetched::NotModified => {
                                Err(fetcher.missing(Missing::Role {
                                    role: request.role(),
                                    name: &name,
                                }))
                            }
                        }
                    });
                    let fetched: Vec<Result<Vec<u8>, Error>> = stream::iter(jobs)
                        .buffered(self.options.concurrency.max(1))
                        .collect()
                        .await;
                    for bytes in fetched {
                        walk.answer(Response::Bytes(bytes?));
                    }
                }
            }
        }
    }

    /// Step 4, the trust documents themselves: from the cache when the
    /// hash matches, else downloaded concurrently; each checked against
    /// its listing. Also returns the SHA-256 of each document read from
    /// the cache intact.
    async fn fetch_documents<F: Fetcher + Sync>(
        &self,
        url: &str,
        updater: &Updater,
        work: &Work,
        fetcher: &F,
        found: Vec<(String, TargetFile)>,
    ) -> Result<(BTreeMap<String, Vec<u8>>, BTreeSet<String>), Error> {
        let mut documents = BTreeMap::new();
        let mut intact = BTreeSet::new();
        let mut missing = Vec::new();
        for (path, tf) in found {
            let cached = work
                .old
                .targets
                .get(&path)
                .filter(|sha| tf.sha256() == Some(sha.as_str()))
                .and_then(|sha| work.cache.blob(sha));
            match cached {
                Some(bytes) if verify_target(&tf, &path, &bytes).is_ok() => {
                    intact.extend(tf.sha256().map(str::to_owned));
                    documents.insert(path, bytes);
                }
                _ => missing.push((path, tf)),
            }
        }
        let jobs = missing.iter().map(|(path, tf)| async move {
            let file = format!("{TARGETS_DIR}/{}", updater.target_remote_name(path, tf));
            match fetcher.get(&file, tf.length, None).await? {
                Fetched::Bytes { bytes, .. } => Ok(bytes),
                Fetched::NotFound | Fetched::NotModified => {
                    Err(fetcher.missing(Missing::Target { path, file: &file }))
                }
            }
        });
        let fetched: Vec<Result<Vec<u8>, Error>> = stream::iter(jobs)
            .buffered(self.options.concurrency.max(1))
            .collect()
            .await;
        for ((path, tf), bytes) in missing.into_iter().zip(fetched) {
            let bytes = bytes?;
            verify_target(&tf, &path, &bytes).map_err(|source| tuf(url, source))?;
            documents.insert(path, bytes);
        }
        Ok((documents, intact))
    }
}

fn tuf(url: &str, source: keyshare_policy::Error) -> Error {
    Error::Tuf {
        url: url.to_owned(),
        source,
    }
}

/// Step 3, which targets to fetch: the namespace index shards,
/// `org/revocations.json`, `org/peers.json`, `org/tsas.json` and `org/roots/*.pem` that
/// top-level `targets` lists, and every `namespaces/<ns>/trust.json` any
/// loaded role lists; each resolved by a TUF target search.
fn resolve_documents(
    url: &str,
    updater: &mut Updater,
    work: &Work,
    roles: &[RoleName],
) -> Result<Vec<(String, TargetFile)>, Error> {
    let mut wanted: BTreeSet<String> = BTreeSet::new();
    if let Some(top) = updater.trusted().targets(RoleName::TARGETS) {
        for path in top.targets.keys() {
            if is_index_path(path)
                || path == REVOCATIONS_PATH
                || path == PEERS_PATH
                || path == TSAS_PATH
                || (path.starts_with("org/roots/") && path.ends_with(".pem"))
            {
                wanted.insert(path.clone());
            }
        }
    }
    for role in roles {
        if let Some(t) = updater.trusted().targets(role.as_str()) {
            wanted.extend(t.targets.keys().filter(|p| is_trust_path(p)).cloned());
        }
    }
    let mut found: Vec<(String, TargetFile)> = Vec::new();
    for path in wanted {
        let lookup = updater
            .find_target_with(&path, |request| work.peek(&request.cache_name()).into())
            .map_err(|source| tuf(url, source))?;
        let _ = updater.take_cache_ops();
        match lookup {
            Lookup::Found { target_file, .. } => found.push((path, target_file)),
            Lookup::NotFound => {
                tracing::warn!(%path, "listed by a role not trusted for it; ignored");
            }
        }
    }
    Ok(found)
}

/// Step 5, the cache's manifest of the trust documents (the metadata is
/// added behind the state, [`add_metadata`]): what the state holds, the
/// timestamp's `ETag` and audit head, and the documents' blobs the cache
/// does not hold intact.
fn documents_manifest(
    state: &TrustState,
    shas: &BTreeMap<String, String>,
    work: &Work,
) -> (Manifest, BTreeMap<String, Vec<u8>>) {
    let mut manifest = Manifest::pinned(&state.url, String::new());
    manifest.metadata.clear();
    let mut blobs = BTreeMap::new();
    for (path, bytes) in &state.documents {
        let sha = shas.get(path).cloned().unwrap_or_else(|| sha256_hex(bytes));
        manifest.targets.insert(path.clone(), sha.clone());
        if !work.intact.contains(&sha) {
            blobs.insert(sha, bytes.clone());
        }
    }
    manifest.timestamp_etag = work.etag.clone();
    manifest.audit_heads = work.old.audit_heads.clone();
    if let Some(head) = &state.audit_head {
        manifest.remember_head(RememberedHead {
            seq: head.seq,
            hash: head.hash.clone(),
            timestamp_version: state.timestamp_version,
        });
    }
    (manifest, blobs)
}

/// The metadata the sync verified, into the cache's manifest, with the
/// blobs the cache does not hold intact.
fn add_metadata(
    manifest: &mut Manifest,
    blobs: &mut BTreeMap<String, Vec<u8>>,
    work: &Work,
    roles: &[RoleName],
    updater: &Updater,
) {
    let top = ["root", "timestamp", "snapshot"];
    for role in top.into_iter().chain(roles.iter().map(RoleName::as_str)) {
        let name = role_file(role);
        if let Some(bytes) = work.peek_ref(&name) {
            let sha = sha256_hex(bytes);
            if !work.intact.contains(&sha) {
                blobs.insert(sha.clone(), bytes.clone());
            }
            manifest.metadata.insert(name, sha);
            continue;
        }
        // Roles taken over from the last refresh were not read: their
        // cached file stays named, if it is the one they were verified from.
        let adopted = updater.trusted().delegated_file(role);
        if let (Some(file), Some(cached)) = (adopted, work.old.metadata.get(&name)) {
            if *cached == file.sha256 {
                manifest.metadata.insert(name, cached.clone());
            }
        }
    }
}

/// The cache name of a delegated role's metadata.
fn role_file(role: &str) -> String {
    format!("{}.json", encode_role(role))
}

/// `namespaces/<ns>/trust.json` with a valid namespace name.
fn is_trust_path(path: &str) -> bool {
    trust_path_namespace(path).is_some()
}

/// The namespace of a `namespaces/<ns>/trust.json` path.
fn trust_path_namespace(path: &str) -> Option<NamespaceName> {
    path.strip_prefix("namespaces/")
        .and_then(|rest| rest.strip_suffix("/trust.json"))
        .and_then(|ns| NamespaceName::parse(ns).ok())
}

/// Step 5, the trust state: the verified documents parsed (the trust
/// documents on `threads` threads) and indexed ([`TrustSet`]), with the
/// timestamp's audit head.
fn build_state(
    url: &str,
    updater: &Updater,
    documents: BTreeMap<String, Vec<u8>>,
    shas: &BTreeMap<String, String>,
    threads: usize,
    memo: &Mutex<ParsedDocuments>,
) -> Result<TrustState, Error> {
    let bad = |source| Error::Documents {
        url: url.to_owned(),
        source,
    };
    let earlier = std::mem::take(&mut *memo.lock().unwrap_or_else(PoisonError::into_inner));
    let mut parsed = ParsedDocuments::default();
    let mut shards = Vec::new();
    let mut trust = Vec::new();
    let mut namespaces = Vec::new();
    let mut revocations = Revocations::default();
    let mut peers = Peers::default();
    let mut tsas = Tsas::default();
    for (path, bytes) in &documents {
        let key = match shas.get(path) {
            Some(sha) => ParsedDocuments::key(path, sha),
            None => ParsedDocuments::key(path, &sha256_hex(bytes)),
        };
        let known = earlier.0.get(&key).cloned();
        let doc = match known {
            Some(doc) => doc,
            None if is_index_path(path) => {
                Parsed::Shard(Namespaces::from_slice(bytes).map_err(bad)?)
            }
            None if path == REVOCATIONS_PATH => {
                Parsed::Revocations(Revocations::from_slice(bytes).map_err(bad)?)
            }
            None if path == PEERS_PATH => Parsed::Peers(Peers::from_slice(bytes).map_err(bad)?),
            None if path == TSAS_PATH => Parsed::Tsas(Tsas::from_slice(bytes).map_err(bad)?),
            None if is_trust_path(path) => {
                // Parsed below, on several threads.
                trust.push((key, path.as_str(), bytes.as_slice()));
                continue;
            }
            None => continue,
        };
        match &doc {
            Parsed::Shard(s) => shards.push((path.as_str(), s.clone())),
            Parsed::Revocations(r) => revocations = r.clone(),
            Parsed::Peers(p) => peers = p.clone(),
            Parsed::Tsas(t) => tsas = t.clone(),
            Parsed::Trust(t) => namespaces.push(t.clone()),
        }
        parsed.0.insert(key, doc);
    }
    // A trust document that does not parse (a newer format this verifier
    // does not know) fails closed for its own namespace, not the refresh.
    let fresh = parse_wide(&trust, threads, |(_, path, bytes)| {
        Ok::<_, keyshare_policy::error::Error>(NamespaceTrust::from_target(path, bytes))
    })
    .map_err(bad)?;
    let mut unreadable = Vec::new();
    for ((key, path, _), doc) in trust.into_iter().zip(fresh) {
        match doc {
            Ok(doc) => {
                namespaces.push(doc.clone());
                parsed.0.insert(key, Parsed::Trust(doc));
            }
            Err(e) => {
                let namespace = trust_path_namespace(path).ok_or_else(|| bad(e.clone()))?;
                unreadable.push((namespace, e.to_string()));
            }
        }
    }
    *memo.lock().unwrap_or_else(PoisonError::into_inner) = parsed;
    let index = Namespaces::merge(shards).map_err(bad)?;
    let mut trust_set = TrustSet::new(index, namespaces, revocations, peers).map_err(bad)?;
    for (namespace, why) in unreadable {
        tracing::warn!(
            %url,
            namespace = %namespace,
            error = %why,
            "cannot read the namespace's trust document; nothing signed for its artifacts is trusted"
        );
        trust_set.set_unreadable(&namespace, why);
    }
    for ns in trust_set.unlisted_documents() {
        tracing::warn!(namespace = %ns, "trust document of a namespace the index does not list; ignored");
    }
    let trusted = updater.trusted();
    let audit_head = trusted
        .timestamp()
        .and_then(|t| match Head::from_timestamp(t) {
            Ok(head) => head,
            Err(e) => {
                tracing::warn!(%url, error = %e, "ignoring the timestamp's audit head");
                None
            }
        });
    let evidence = match (
        trusted.targets(RoleName::TARGETS),
        trusted.snapshot_shared(),
    ) {
        (Some(targets), Some(snapshot)) => EvidenceAnchor::shared(targets, snapshot),
        _ => EvidenceAnchor::default(),
    };
    Ok(TrustState {
        url: url.to_owned(),
        root_version: trusted.root().version,
        timestamp_version: trusted.timestamp().map_or(0, |t| t.version),
        audit_head,
        trust_set,
        tsas,
        evidence,
        documents,
    })
}

/// The documents of a verifier's last trust state, parsed, by path and
/// SHA-256 of their bytes: the next state parses only documents that
/// changed. Holds the documents of one state (each build replaces it).
#[derive(Debug, Default)]
pub(super) struct ParsedDocuments(HashMap<String, Parsed>);

impl ParsedDocuments {
    fn key(path: &str, sha256: &str) -> String {
        format!("{path}\n{sha256}")
    }
}

/// One parsed document.
#[derive(Debug, Clone)]
enum Parsed {
    Shard(Namespaces),
    Revocations(Revocations),
    Peers(Peers),
    Tsas(Tsas),
    Trust(NamespaceTrust),
}

/// `parse` applied to each item, on up to `threads` scoped threads for
/// many items; results in order, the first error (in order) wins.
fn parse_wide<I: Sync, T: Send, E: Send>(
    items: &[I],
    threads: usize,
    parse: impl Fn(&I) -> Result<T, E> + Sync,
) -> Result<Vec<T>, E> {
    /// Fewer items than this are parsed on the calling thread.
    const MIN_PER_THREAD: usize = 64;
    let threads = threads.min(items.len() / MIN_PER_THREAD).max(1);
    if threads == 1 {
        return items.iter().map(&parse).collect();
    }
    let chunk = items.len().div_ceil(threads);
    let parse = &parse;
    let parts: Vec<Result<Vec<T>, E>> = std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|part| scope.spawn(move || part.iter().map(parse).collect()))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    let mut out = Vec::with_capacity(items.len());
    for part in parts {
        out.extend(part?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wide_parsing_keeps_the_order_and_the_first_error() {
        let items: Vec<u32> = (0..1000).collect();
        for threads in [1, 2, 7] {
            let doubled = parse_wide(&items, threads, |i| Ok::<_, u32>(i * 2)).unwrap();
            assert_eq!(doubled, items.iter().map(|i| i * 2).collect::<Vec<_>>());
            let first_bad =
                parse_wide(
                    &items,
                    threads,
                    |&i| {
                        if i % 300 == 299 {
                            Err(i)
                        } else {
                            Ok(i)
                        }
                    },
                );
            assert_eq!(first_bad, Err(299), "{threads} threads");
        }
    }

    #[test]
    fn trust_document_paths_need_a_valid_namespace_name() {
        assert!(is_trust_path("namespaces/team-a/trust.json"));
        assert!(!is_trust_path("namespaces/Team A/trust.json"));
        assert!(!is_trust_path("namespaces/team-a/other.json"));
        assert!(!is_trust_path("namespaces/a/b/trust.json"));
    }
}
