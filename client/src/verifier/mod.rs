//! The verifier: pins a root, refreshes a repository into the local cache
//! (over HTTP, or from an air-gap bundle), loads the verified trust state,
//! and decides — following peer redirects.
//!
//! * this module: the public API ([`Verifier::init`], [`Verifier::refresh`],
//!   [`Verifier::refresh_from_bundle`], [`Verifier::trust_state`],
//!   [`Verifier::decide`]) and its types;
//! * `sync`: one repository's sync through a [`crate::fetch::Fetcher`], in
//!   five named steps (top-level metadata, delegations, which documents,
//!   the documents, the state);
//! * `peers`: following peer redirects ([`Verifier::decide_in`]), each
//!   peer in its own cache, its first root checked against the pin of the
//!   signed peer map;
//! * `state`: [`TrustState`].

mod peers;
mod state;
mod sync;

use std::collections::BTreeMap;
use std::num::NonZeroU64;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;

use keyshare_policy::client::{Config, Updater};
use keyshare_policy::hash::{sha256_hex, Sha256Hex};
use keyshare_policy::trust::{Decision, SignerRef};

pub use state::TrustState;

use crate::cache::{self, CacheError, Manifest, RememberedHead, RepoCache};
use crate::fetch::{
    BundleFetcher, CacheOnly, Fetched, HttpFetcher, HttpTransport, Prefetched, TransportError,
    WaitAnswer, DEFAULT_TIMEOUT,
};

/// Default downloads in flight during a refresh: enough to keep a static
/// server (nginx, a CDN, `keyshare-server`) busy over keep-alive
/// connections.
pub const DEFAULT_CONCURRENCY: usize = 16;

/// Default most peer redirects one decision follows.
pub const DEFAULT_MAX_PEER_DEPTH: usize = 4;

/// Why a verifier operation failed (a decision that comes out untrusted is
/// not an error: see [`Verdict`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `keyshare init` has not been run for this cache directory.
    #[error("no pinned root in {}: run `keyshare init --server URL --root FILE` first", dir.display())]
    NotInitialized {
        /// The cache directory.
        dir: PathBuf,
    },
    /// `init` was run but no refresh has succeeded since.
    #[error("no trust state in {} yet: run `keyshare refresh`", dir.display())]
    NotRefreshed {
        /// The cache directory.
        dir: PathBuf,
    },
    /// `init` on a cache that already pins a root.
    #[error("{} already pins the root of {url}: give --force to replace it", dir.display())]
    AlreadyInitialized {
        /// The cache directory.
        dir: PathBuf,
        /// The repository it is for.
        url: String,
    },
    /// The root offered does not match the pin.
    #[error("root pin mismatch: {0}")]
    RootPin(String),
    /// A download failed.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The cache could not be read or written.
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// The TUF workflow refused the repository's metadata or a target
    /// (rollback, freeze, mix-and-match, endless data, bad hash or signature…).
    #[error("{url}: {source}")]
    Tuf {
        /// The repository.
        url: String,
        /// The check that failed.
        #[source]
        source: keyshare_policy::Error,
    },
    /// A verified trust document could not be used.
    #[error("{url}: trust documents: {source}")]
    Documents {
        /// The repository.
        url: String,
        /// What is wrong.
        #[source]
        source: keyshare_policy::Error,
    },
    /// A bad argument.
    #[error("{0}")]
    Input(String),
}

impl Error {
    /// The TUF error inside, if that is what this is.
    pub fn tuf(&self) -> Option<&keyshare_policy::Error> {
        match self {
            Self::Tuf { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Settings of a [`Verifier`].
#[derive(Debug, Clone)]
pub struct Options {
    /// The cache directory: the organization's repository in `origin/`,
    /// each peer in `peers/<name>-<hash>/`.
    pub cache_dir: PathBuf,
    /// Limit for each HTTP request, connect to last byte.
    pub timeout: Duration,
    /// PEM certificates trusted for HTTPS in addition to the system's.
    pub server_ca: Option<Vec<u8>>,
    /// A fixed current time (tests, benchmarks); `None`: the system clock.
    pub now: Option<OffsetDateTime>,
    /// Most peer redirects one decision follows.
    pub max_peer_depth: usize,
    /// Threads that verify delegated roles.
    pub threads: usize,
    /// Downloads in flight at once, over keep-alive connections
    /// ([`DEFAULT_CONCURRENCY`]). A server that takes few connections
    /// (Python's `http.server`, with a listen backlog of 5, drops
    /// connections beyond 4) needs less.
    pub concurrency: usize,
    /// Size limits and delegation limits of the TUF workflow.
    pub config: Config,
    /// Contact peer services on private or loopback addresses (and over
    /// `http://` to loopback): for tests and local sidecars. Off: a peer
    /// must be `https://` to a host that is not, and does not resolve to,
    /// a private address.
    pub allow_private_peers: bool,
}

impl Options {
    /// Defaults with this cache directory.
    pub fn new(cache_dir: impl Into<PathBuf>) -> Self {
        Self {
            cache_dir: cache_dir.into(),
            timeout: DEFAULT_TIMEOUT,
            server_ca: None,
            now: None,
            max_peer_depth: DEFAULT_MAX_PEER_DEPTH,
            threads: std::thread::available_parallelism().map_or(1, usize::from),
            concurrency: DEFAULT_CONCURRENCY,
            config: Config::default(),
            allow_private_peers: false,
        }
    }
}

/// How `init` pins the organization's root.
///
/// The pinned root, of whatever version, is the trust anchor: `refresh`
/// follows the roots after it (each signed by the one before), and never
/// needs an older one.
#[derive(Debug, Clone)]
pub enum RootPin {
    /// This root file (any version), trusted as given.
    File(Vec<u8>),
    /// The root file the server publishes with this SHA-256: with a
    /// `version`, `N.root.json` of that version; without, the first of
    /// `1.root.json`, `2.root.json`, ... with that hash (at most
    /// [`Config::max_root_rotations`] + 1 files, stopping at the first the
    /// server does not have).
    Sha256 {
        /// The SHA-256 of the root file.
        sha256: Sha256Hex,
        /// The root's version, when known.
        version: Option<NonZeroU64>,
    },
    /// Whatever `1.root.json` the server sends (trust on first use:
    /// anyone who can answer for the server at this moment owns the
    /// client's trust for good).
    InsecureTrustOnFirstUse,
}

/// What `init` pinned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pinned {
    /// The repository's base URL.
    pub url: String,
    /// The pinned root's version.
    pub root_version: u64,
    /// SHA-256 of the pinned root file.
    pub root_sha256: String,
}

/// One peer redirect a decision followed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hop {
    /// The peer's name in the redirecting repository's `org/peers.json`.
    pub peer: String,
    /// Its URL.
    pub url: String,
}

/// Why a decision could not be finished at a peer.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PeerProblem {
    /// The peer's root does not match the pin of the signed peer map.
    RootMismatch(String),
    /// The peer could not be reached or answered nonsense.
    Unreachable(String),
    /// keyshare will not contact the peer: its URL is not `https://`, or
    /// its host is or resolves to a private or loopback address (without
    /// [`Options::allow_private_peers`]), or it redirected to another origin.
    UrlRefused(String),
    /// The peer's repository failed verification.
    Refused(String),
    /// The redirect leads back to a repository already asked: the chain of URLs.
    Loop(Vec<String>),
    /// More redirects than the limit.
    TooDeep(usize),
}

/// The outcome of [`Verifier::decide`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A repository decided (the organization's, or the last peer's).
    Decided(Decision),
    /// A peer redirect could not be followed: untrusted.
    Peer {
        /// The peer that failed.
        peer: String,
        /// Its URL.
        url: String,
        /// What went wrong.
        problem: PeerProblem,
    },
}

/// A decision and the peer redirects that led to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Redirects followed, in order (empty: the organization decided).
    pub hops: Vec<Hop>,
    /// The outcome.
    pub outcome: Outcome,
}

impl Verdict {
    /// True when the signers are trusted.
    pub fn is_trusted(&self) -> bool {
        matches!(&self.outcome, Outcome::Decided(d) if d.is_trusted())
    }
}

impl std::fmt::Display for PeerProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::RootMismatch(m) => write!(f, "peer root mismatch: {m}"),
            Self::Unreachable(m) => write!(f, "peer unreachable: {m}"),
            Self::UrlRefused(m) => write!(f, "peer URL refused: {m}"),
            Self::Refused(m) => write!(f, "peer repository refused: {m}"),
            Self::Loop(chain) => write!(f, "peer redirect loop: {}", chain.join(" -> ")),
            Self::TooDeep(n) => write!(f, "more than {n} peer redirects"),
        }
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.outcome {
            Outcome::Decided(d) => write!(f, "{d}")?,
            Outcome::Peer { peer, url, problem } => {
                write!(f, "untrusted: peer `{peer}` ({url}): {problem}")?;
            }
        }
        if !self.hops.is_empty() {
            let via: Vec<String> = self
                .hops
                .iter()
                .map(|h| format!("{} ({})", h.peer, h.url))
                .collect();
            write!(f, " [via peer {}]", via.join(" -> "))?;
        }
        Ok(())
    }
}

/// The async verifier. One instance per cache directory.
#[derive(Debug, Clone)]
pub struct Verifier {
    options: Options,
    transport: HttpTransport,
    /// For peer services: refuses private addresses unless allowed.
    peer_transport: HttpTransport,
    /// Signatures this verifier found valid, so a refresh does not verify
    /// unchanged metadata again (in memory only; shared by clones).
    signatures: std::sync::Arc<keyshare_policy::verify::SignatureCache>,
    /// The delegated roles the last refresh of each cache directory
    /// verified, taken over by the next one when unchanged (in memory
    /// only; shared by clones).
    earlier: std::sync::Arc<
        std::sync::Mutex<
            std::collections::HashMap<
                PathBuf,
                std::sync::Arc<keyshare_policy::client::EarlierRoles>,
            >,
        >,
    >,
    /// The organization's cache (its memos shared by clones).
    origin: RepoCache,
    /// The URL and timestamp `ETag` of the last refresh of the
    /// organization's repository, written to the cache or not yet: what
    /// the next wait for a publish asks with.
    latest: std::sync::Arc<std::sync::Mutex<Option<Latest>>>,
    /// The parsed documents of the last state of each cache directory.
    parsed: std::sync::Arc<
        std::sync::Mutex<
            std::collections::HashMap<
                PathBuf,
                std::sync::Arc<std::sync::Mutex<sync::ParsedDocuments>>,
            >,
        >,
    >,
}

/// A repository's URL and the `ETag` of its timestamp.
type Latest = (String, Option<String>);

impl Verifier {
    /// A verifier with these options.
    pub fn new(options: Options) -> Result<Self, Error> {
        let transport = HttpTransport::new(options.timeout, options.server_ca.as_deref())?;
        let peer_transport = HttpTransport::for_peers(
            options.timeout,
            options.server_ca.as_deref(),
            options.allow_private_peers,
        )?;
        Ok(Self {
            origin: RepoCache::new(options.cache_dir.join("origin")),
            latest: std::sync::Arc::default(),
            options,
            transport,
            peer_transport,
            signatures: std::sync::Arc::default(),
            earlier: std::sync::Arc::default(),
            parsed: std::sync::Arc::default(),
        })
    }

    /// The parsed documents of the last state of the cache at `dir`.
    fn parsed_documents(
        &self,
        dir: &std::path::Path,
    ) -> std::sync::Arc<std::sync::Mutex<sync::ParsedDocuments>> {
        self.parsed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(dir.to_owned())
            .or_default()
            .clone()
    }

    /// The delegated roles the last sync of the cache at `dir` verified.
    pub(super) fn earlier_roles(
        &self,
        dir: &std::path::Path,
    ) -> Option<std::sync::Arc<keyshare_policy::client::EarlierRoles>> {
        self.earlier
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(dir)
            .cloned()
    }

    /// The options.
    pub fn options(&self) -> &Options {
        &self.options
    }

    pub(super) fn now(&self) -> OffsetDateTime {
        self.options.now.unwrap_or_else(OffsetDateTime::now_utc)
    }

    fn origin(&self) -> RepoCache {
        self.origin.clone()
    }

    /// The URL of the pinned repository.
    pub fn url(&self) -> Result<String, Error> {
        Ok(self.manifest()?.url.clone())
    }

    /// The audit chain heads the organization's cache remembers, oldest
    /// first (one per verified timestamp that carried a new one, bounded:
    /// [`cache::MAX_REMEMBERED_HEADS`]).
    pub fn remembered_heads(&self) -> Result<Vec<RememberedHead>, Error> {
        Ok(self.manifest()?.audit_heads.clone())
    }

    fn manifest(&self) -> Result<std::sync::Arc<Manifest>, Error> {
        self.origin
            .manifest_shared()?
            .ok_or_else(|| Error::NotInitialized {
                dir: self.options.cache_dir.clone(),
            })
    }

    /// Pins the root of the repository at `url` (`keyshare init`).
    pub async fn init(&self, url: &str, pin: RootPin, force: bool) -> Result<Pinned, Error> {
        let url = url.trim_end_matches('/').to_owned();
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            return Err(Error::Input(format!(
                "server URL `{url}` must start with https:// or http://"
            )));
        }
        let cache = self.origin();
        if let Some(m) = cache.manifest()? {
            if !force {
                return Err(Error::AlreadyInitialized {
                    dir: self.options.cache_dir.clone(),
                    url: m.url,
                });
            }
        }
        let bytes = match pin {
            RootPin::File(bytes) => bytes,
            RootPin::Sha256 { sha256, version } => self.pinned_root(&url, &sha256, version).await?,
            RootPin::InsecureTrustOnFirstUse => self.first_root(&self.transport, &url).await?,
        };
        let updater =
            Updater::new(&bytes, self.now(), self.options.config.clone()).map_err(|source| {
                Error::Tuf {
                    url: url.clone(),
                    source,
                }
            })?;
        let root_version = updater.trusted().root().version;
        let sha = sha256_hex(&bytes);
        let manifest = Manifest::pinned(&url, sha.clone());
        cache.commit(&manifest, &BTreeMap::from([(sha.clone(), bytes)]))?;
        self.forget_latest();
        Ok(Pinned {
            url,
            root_version,
            root_sha256: sha,
        })
    }

    /// The root file the server publishes with SHA-256 `expected`: the
    /// one of `version`, or else the first of `1.root.json`, `2.root.json`,
    /// ... (bounded) that has it. Only bytes with that hash are returned.
    async fn pinned_root(
        &self,
        url: &str,
        expected: &Sha256Hex,
        version: Option<NonZeroU64>,
    ) -> Result<Vec<u8>, Error> {
        if let Some(n) = version {
            let file = format!("{url}/metadata/{n}.root.json");
            return match self.root_file(&self.transport, url, n.get()).await? {
                Some(bytes) if sha256_hex(&bytes) == expected.as_str() => Ok(bytes),
                Some(bytes) => Err(Error::RootPin(format!(
                    "{file} has SHA-256 {}, expected {expected}",
                    sha256_hex(&bytes)
                ))),
                None => Err(Error::RootPin(format!(
                    "{file} is not there (404), expected a root with SHA-256 {expected}"
                ))),
            };
        }
        // Root versions start at 1 and every rotation adds one; the pinned
        // root is at most `max_root_rotations` rotations past version 1.
        let last = u64::from(self.options.config.max_root_rotations).saturating_add(1);
        let mut n = 1;
        while n <= last {
            match self.root_file(&self.transport, url, n).await? {
                Some(bytes) if sha256_hex(&bytes) == expected.as_str() => return Ok(bytes),
                Some(_) => n += 1,
                None => break,
            }
        }
        let looked_at = match n.saturating_sub(1) {
            0 => format!("{url}/metadata/1.root.json is not there (404)"),
            1 => format!("{url}/metadata/1.root.json has another"),
            seen => format!("none of {url}/metadata/1.root.json to {seen}.root.json has it"),
        };
        Err(Error::RootPin(format!(
            "no root the server publishes has SHA-256 {expected}: {looked_at}"
        )))
    }

    /// `1.root.json` from the repository at `url`.
    pub(super) async fn first_root(
        &self,
        transport: &HttpTransport,
        url: &str,
    ) -> Result<Vec<u8>, Error> {
        self.root_file(transport, url, 1).await?.ok_or_else(|| {
            Error::Transport(TransportError::Status {
                url: format!("{url}/metadata/1.root.json"),
                status: 404,
            })
        })
    }

    /// `N.root.json` from the repository at `url`; `None` when it has none
    /// (404).
    async fn root_file(
        &self,
        transport: &HttpTransport,
        url: &str,
        version: u64,
    ) -> Result<Option<Vec<u8>>, Error> {
        let file = format!("{url}/metadata/{version}.root.json");
        let limit = self.options.config.root_max_length;
        match transport.get(&file, limit, None).await? {
            Fetched::Bytes { bytes, .. } if bytes.len() as u64 <= limit => Ok(Some(bytes)),
            Fetched::Bytes { bytes, .. } => Err(Error::Tuf {
                url: url.to_owned(),
                source: keyshare_policy::Error::Oversized {
                    what: "root".into(),
                    length: bytes.len() as u64,
                    limit,
                },
            }),
            Fetched::NotFound => Ok(None),
            Fetched::NotModified => Err(Error::Transport(TransportError::Status {
                url: file,
                status: 304,
            })),
        }
    }

    /// Refreshes the organization's repository over HTTP (the TUF
    /// workflow, then every trust document), and stores the result in the
    /// cache. On any failure the cache keeps its last good state.
    pub async fn refresh(&self) -> Result<TrustState, Error> {
        let (state, commit) = self.refresh_uncommitted().await?;
        commit.commit()?;
        Ok(state)
    }

    /// [`Self::refresh`], with the cache written by [`Commit::commit`]
    /// afterwards: for a caller that acts on the new state first (a
    /// watcher's decisions) and writes the cache after. Until it does, the
    /// cache holds the last state written, whole.
    pub async fn refresh_uncommitted(&self) -> Result<(TrustState, Commit), Error> {
        self.refresh_from(None).await
    }

    /// [`Self::refresh_uncommitted`] starting from a timestamp a wait for
    /// the next publish already fetched ([`Self::wait_for_publish`]),
    /// verified by the refresh like a fetched one.
    pub async fn refresh_from(
        &self,
        timestamp: Option<Prefetched>,
    ) -> Result<(TrustState, Commit), Error> {
        let cache = self.origin();
        let manifest = self.manifest()?;
        let url = manifest.url.clone();
        let prefetched = std::sync::Mutex::new(timestamp);
        let synced = self
            .sync(
                &cache,
                manifest,
                &HttpFetcher {
                    transport: &self.transport,
                    base: &url,
                    timestamp: Some(&prefetched),
                },
            )
            .await?;
        *self
            .latest
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some((url, synced.behind.timestamp_etag().map(str::to_owned)));
        Ok((
            synced.state,
            Commit {
                behind: synced.behind,
            },
        ))
    }

    /// Refreshes from an air-gap bundle file instead of the network (a
    /// lone laptop on the far side of a gap): the bundle is verified as a
    /// whole (`keyshare_airgap::open_bundle`: its manifest, signed by the
    /// timestamp role, its validity window, every byte) against the root
    /// this cache trusts, then run through the same TUF workflow as an HTTP
    /// refresh, with the cache's current state as the baseline, so an older
    /// bundle is refused as a rollback. On any failure the cache keeps its
    /// last good state.
    ///
    /// The file is read through once, then each file the workflow needs is
    /// read back from it (and checked against the manifest again): memory
    /// stays bounded whatever the file claims to hold. A bundle that is
    /// not a regular file (a pipe) is spooled into an unnamed file in the
    /// cache directory as it is read.
    pub async fn refresh_from_bundle(&self, bundle: std::fs::File) -> Result<TrustState, Error> {
        let cache = self.origin();
        let manifest = self.manifest()?;
        let url = manifest.url.clone();
        let root_sha = manifest.metadata.get("root.json").cloned();
        let root =
            root_sha
                .and_then(|sha| cache.blob(&sha))
                .ok_or_else(|| Error::NotInitialized {
                    dir: cache.dir().to_owned(),
                })?;
        let anchor = keyshare_airgap::Anchor {
            pinned_root: &root,
            previous: None,
        };
        let regular = bundle.metadata().is_ok_and(|m| m.is_file());
        let verified = if regular {
            keyshare_airgap::open_bundle(Arc::new(bundle), anchor, self.now(), &mut |_, _| {})
        } else {
            // A pipe cannot be read twice: spool it, while it is checked,
            // into an unnamed file in the cache directory (gone when
            // closed), and read the entries back from there.
            let spool = tempfile::tempfile_in(cache.dir()).map_err(|e| {
                Error::Input(format!(
                    "bundle: cannot make a spool file in {}: {e}",
                    cache.dir().display()
                ))
            })?;
            // (The reader flushes the copy once it has read the bundle.)
            let raw = keyshare_airgap::read_bundle(
                &mut std::io::BufReader::new(bundle),
                &mut std::io::BufWriter::new(&spool),
                anchor.pinned_root,
                &mut |_, _| {},
            );
            raw.and_then(|raw| keyshare_airgap::verify(raw, Arc::new(spool), anchor, self.now()))
        }
        .map_err(|e| Error::Input(e.to_string()))?;
        let synced = self
            .sync(
                &cache,
                manifest,
                &BundleFetcher {
                    bundle: &verified,
                    url: &url,
                },
            )
            .await?;
        let (manifest, blobs) = synced.behind.finish();
        cache.commit(&manifest, &blobs)?;
        self.forget_latest();
        Ok(synced.state)
    }

    /// The next wait asks with the cache's timestamp `ETag` again.
    fn forget_latest(&self) {
        *self
            .latest
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
    }

    /// Waits (at most `wait`) for the organization's repository to publish
    /// a timestamp other than the one this verifier's last refresh got
    /// (before any, the one the cache holds), with the server's long poll.
    /// Nothing is trusted from the answer: the caller refreshes to learn
    /// what changed. Without a cached timestamp `ETag` (never
    /// refreshed, or a server that sends none) there is nothing to wait
    /// on: `Unchanged { waited: false }`, so the caller polls.
    pub async fn wait_for_publish(&self, wait: std::time::Duration) -> Result<WaitAnswer, Error> {
        let latest = self
            .latest
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let (url, etag) = match latest {
            Some(latest) => latest,
            None => {
                let manifest = self.manifest()?;
                (manifest.url.clone(), manifest.timestamp_etag.clone())
            }
        };
        let Some(etag) = etag else {
            return Ok(WaitAnswer::Unchanged { waited: false });
        };
        let url = format!("{}/metadata/timestamp.json", url.trim_end_matches('/'));
        Ok(self
            .transport
            .wait_for_change(&url, &etag, wait, self.options.config.timestamp_max_length)
            .await?)
    }

    /// The verified trust state of the organization's repository, from the
    /// cache alone (no network): every cached file is verified again, as of
    /// now, so expired metadata is an error here too.
    pub async fn trust_state(&self) -> Result<TrustState, Error> {
        let cache = self.origin();
        let manifest = self.manifest()?;
        if !manifest.metadata.contains_key("timestamp.json") {
            return Err(Error::NotRefreshed {
                dir: self.options.cache_dir.clone(),
            });
        }
        let url = manifest.url.clone();
        let synced = self
            .sync(&cache, manifest, &CacheOnly { url: &url })
            .await?;
        synced.behind.remember();
        Ok(synced.state)
    }

    /// Decides whether `signers` are trusted for `artifact` (signature made
    /// at `signed_at`), starting from the cached organization state and
    /// following peer redirects (each peer refreshed over HTTP, verified
    /// against the root pinned in the redirecting repository's peer map).
    pub async fn decide(
        &self,
        artifact: &str,
        signers: &[SignerRef],
        signed_at: OffsetDateTime,
    ) -> Result<Verdict, Error> {
        let state = self.trust_state().await?;
        self.decide_in(&state, artifact, signers, signed_at).await
    }
}

/// What a refresh leaves to do once its state is acted on
/// ([`Verifier::refresh_uncommitted`]): remembering the roles it verified
/// (so the next refresh takes the unchanged ones over) and writing the
/// cache.
#[must_use = "the cache is written only by commit()"]
pub struct Commit {
    behind: sync::Behind,
}

impl std::fmt::Debug for Commit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Commit")
            .field("cache", &self.behind.cache().dir())
            .finish_non_exhaustive()
    }
}

impl Commit {
    /// Remembers the roles the refresh verified, then writes the cache
    /// (atomically: the manifest last).
    pub fn commit(self) -> Result<(), Error> {
        let cache = self.behind.cache().clone();
        let (manifest, blobs) = self.behind.finish();
        Ok(cache.commit(&manifest, &blobs)?)
    }
}

/// The default cache directory (see [`cache::default_dir`]).
pub fn default_cache_dir() -> Option<PathBuf> {
    cache::default_dir()
}
