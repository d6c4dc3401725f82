//! The verifier: pins a root, refreshes a repository over HTTP into the
//! local cache, loads the verified trust state, and decides — following
//! peer redirects.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::num::NonZeroU64;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{self, StreamExt as _};
use time::OffsetDateTime;

use keyshare_policy::audit::Head;
use keyshare_policy::client::{
    encode_role, verify_target, CacheOp, Config, Lookup, MetadataFile, Response, Step, Updater,
};
use keyshare_policy::hash::{sha256_hex, Sha256Hex};
use keyshare_policy::metadata::{Envelope, KeyId, Root, TargetFile};
use keyshare_policy::trust::{
    is_index_path, Decision, NamespaceName, NamespaceTrust, Namespaces, Peers, PinnedRoot, Reason,
    Revocations, SignerRef, TrustSet, PEERS_PATH, REVOCATIONS_PATH,
};
use keyshare_policy::verify::{verify_root_self, Authority};

use crate::cache::{self, CacheError, Manifest, RememberedHead, RepoCache};
use crate::transport::{Fetched, HttpTransport, TransportError, DEFAULT_TIMEOUT};

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
    /// Downloads in flight at once (default 4: Python's `http.server`, with
    /// a listen backlog of 5, drops connections beyond that).
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
            concurrency: 4,
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

/// The verified trust state of one repository.
#[derive(Debug)]
pub struct TrustState {
    /// The repository's base URL.
    pub url: String,
    /// The trusted root's version.
    pub root_version: u64,
    /// The trusted timestamp's version.
    pub timestamp_version: u64,
    /// The audit chain head the trusted timestamp carries
    /// (`x-keyshare-audit`), if any: the server's audit log as of that
    /// publish. `None` also when the field is malformed (logged).
    pub audit_head: Option<Head>,
    /// The documents, indexed for decisions.
    pub trust_set: TrustSet,
    /// Every verified target the state was built from, by target path:
    /// the namespace index, `org/revocations.json`, `org/peers.json`,
    /// `org/roots/<name>.pem`, and each `namespaces/<ns>/trust.json`.
    pub documents: BTreeMap<String, Vec<u8>>,
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
}

/// Where the sync reads "remote" files from.
#[derive(Clone, Copy)]
enum Remote<'a> {
    /// The repository over HTTP.
    Http(&'a HttpTransport, &'a str),
    /// The cache only (loading the last good state without network).
    Offline,
    /// A verified air-gap bundle, whose files are read by repository
    /// path (`metadata/...`, `targets/...`) when the workflow asks.
    Bundle(&'a keyshare_airgap::VerifiedBundle),
}

/// A file of a bundle, `None` when it has none at `path`, refused when its
/// length (as the manifest gives it, before anything is read) is larger
/// than the workflow allows.
fn bundle_file(
    bundle: &keyshare_airgap::VerifiedBundle,
    path: String,
    limit: u64,
) -> Result<Option<Vec<u8>>, Error> {
    match bundle.entry(&path) {
        None => Ok(None),
        Some(entry) if entry.length > limit => Err(Error::Input(format!(
            "bundle: {path} is {} bytes, over the {limit} byte limit",
            entry.length
        ))),
        // The bundle's errors name the bundle ("bundle entry ...").
        Some(_) => bundle.file(&path).map_err(|e| Error::Input(e.to_string())),
    }
}

/// A refresh in progress: the cache's files plus what was fetched, written
/// back only when everything verified.
struct Work<'c> {
    cache: &'c RepoCache,
    old: Manifest,
    /// Metadata by cache name: fetched or read this time.
    metadata: BTreeMap<String, Vec<u8>>,
    deleted: BTreeSet<String>,
    etag: Option<String>,
}

impl Work<'_> {
    fn local(&mut self, name: &str) -> Option<Vec<u8>> {
        if self.deleted.contains(name) {
            return None;
        }
        if let Some(b) = self.metadata.get(name) {
            return Some(b.clone());
        }
        let bytes = self.cache.blob(self.old.metadata.get(name)?)?;
        self.metadata.insert(name.to_owned(), bytes.clone());
        Some(bytes)
    }

    fn peek(&self, name: &str) -> Option<Vec<u8>> {
        if self.deleted.contains(name) {
            return None;
        }
        self.metadata.get(name).cloned()
    }

    fn store(&mut self, name: String, bytes: Vec<u8>) {
        self.deleted.remove(&name);
        self.metadata.insert(name, bytes);
    }
}

/// The result of a sync: the state, and what to write to the cache.
struct Synced {
    state: TrustState,
    manifest: Manifest,
    blobs: BTreeMap<String, Vec<u8>>,
}

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
            options,
            transport,
            peer_transport,
        })
    }

    /// The options.
    pub fn options(&self) -> &Options {
        &self.options
    }

    fn now(&self) -> OffsetDateTime {
        self.options.now.unwrap_or_else(OffsetDateTime::now_utc)
    }

    fn origin(&self) -> RepoCache {
        RepoCache::new(self.options.cache_dir.join("origin"))
    }

    /// The URL of the pinned repository.
    pub fn url(&self) -> Result<String, Error> {
        Ok(self.manifest()?.url)
    }

    /// The audit chain heads the organization's cache remembers, oldest
    /// first (one per verified timestamp that carried a new one, bounded:
    /// [`cache::MAX_REMEMBERED_HEADS`]).
    pub fn remembered_heads(&self) -> Result<Vec<RememberedHead>, Error> {
        Ok(self.manifest()?.audit_heads)
    }

    fn manifest(&self) -> Result<Manifest, Error> {
        self.origin()
            .manifest()?
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
    async fn first_root(&self, transport: &HttpTransport, url: &str) -> Result<Vec<u8>, Error> {
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
        let cache = self.origin();
        let manifest = self.manifest()?;
        let url = manifest.url.clone();
        let synced = self
            .sync(&cache, manifest, Remote::Http(&self.transport, &url))
            .await?;
        cache.commit(&synced.manifest, &synced.blobs)?;
        Ok(synced.state)
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
            .sync(&cache, manifest, Remote::Bundle(&verified))
            .await?;
        cache.commit(&synced.manifest, &synced.blobs)?;
        Ok(synced.state)
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
        Ok(self.sync(&cache, manifest, Remote::Offline).await?.state)
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

    /// [`Self::decide`] from an already loaded organization state (the
    /// state of [`Self::refresh`] or [`Self::trust_state`]): no file is
    /// read unless the artifact belongs to a peer.
    pub async fn decide_in(
        &self,
        state: &TrustState,
        artifact: &str,
        signers: &[SignerRef],
        signed_at: OffsetDateTime,
    ) -> Result<Verdict, Error> {
        let now = self.now();
        let mut hops = Vec::new();
        let mut visited = vec![normalize(&state.url)];
        let mut peer_state: Option<TrustState> = None;
        loop {
            let current = peer_state.as_ref().unwrap_or(state);
            let decision = current.trust_set.decide(artifact, signers, signed_at, now);
            let Decision::Untrusted {
                reason: Reason::DelegatedToPeer { peer, url, root },
            } = decision
            else {
                return Ok(Verdict {
                    hops,
                    outcome: Outcome::Decided(decision),
                });
            };
            // The URL comes from a signed peer map, but must not steer the
            // verifier at services inside its own network.
            let allowed = url.check_outbound(self.options.allow_private_peers);
            let url = url.as_str().trim_end_matches('/').to_owned();
            let fail = |problem| Verdict {
                hops: hops.clone(),
                outcome: Outcome::Peer {
                    peer: peer.clone(),
                    url: url.clone(),
                    problem,
                },
            };
            if visited.contains(&normalize(&url)) {
                let mut chain = visited.clone();
                chain.push(normalize(&url));
                return Ok(fail(PeerProblem::Loop(chain)));
            }
            if hops.len() >= self.options.max_peer_depth {
                return Ok(fail(PeerProblem::TooDeep(self.options.max_peer_depth)));
            }
            if let Err(refusal) = allowed {
                return Ok(fail(PeerProblem::UrlRefused(format!(
                    "{refusal}; peers must be https:// on public addresses (private and loopback peers are contacted only with --allow-private-peers)"
                ))));
            }
            match self.peer_state(&peer, &url, &root).await {
                Ok(next) => {
                    visited.push(normalize(&url));
                    hops.push(Hop { peer, url });
                    peer_state = Some(next);
                }
                Err(problem) => return Ok(fail(problem)),
            }
        }
    }

    /// Refreshes a peer's repository in its own cache, bootstrapping it
    /// from the pinned root on first contact.
    async fn peer_state(
        &self,
        name: &str,
        url: &str,
        pin: &PinnedRoot,
    ) -> Result<TrustState, PeerProblem> {
        let cache = RepoCache::new(self.peer_dir(name, url, pin));
        let unreachable = |e: Error| match e {
            Error::Transport(t @ TransportError::Refused { .. }) => {
                PeerProblem::UrlRefused(t.to_string())
            }
            Error::Transport(t) => PeerProblem::Unreachable(t.to_string()),
            other => PeerProblem::Refused(other.to_string()),
        };
        let manifest = match cache.manifest() {
            Ok(Some(m)) => m,
            Ok(None) | Err(_) => {
                let bytes = self
                    .first_root(&self.peer_transport, url)
                    .await
                    .map_err(unreachable)?;
                check_pin(&bytes, pin).map_err(PeerProblem::RootMismatch)?;
                let sha = sha256_hex(&bytes);
                let m = Manifest::pinned(url, sha.clone());
                cache
                    .commit(&m, &BTreeMap::from([(sha, bytes)]))
                    .map_err(|e| PeerProblem::Refused(e.to_string()))?;
                m
            }
        };
        let synced = self
            .sync(&cache, manifest, Remote::Http(&self.peer_transport, url))
            .await
            .map_err(unreachable)?;
        cache
            .commit(&synced.manifest, &synced.blobs)
            .map_err(|e| PeerProblem::Refused(e.to_string()))?;
        Ok(synced.state)
    }

    /// `peers/<name>-<hash of url and pin>`: a changed pin or URL starts a
    /// fresh cache, bootstrapped against the new pin.
    fn peer_dir(&self, name: &str, url: &str, pin: &PinnedRoot) -> PathBuf {
        let safe: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .take(40)
            .collect();
        let id = sha256_hex(format!("{url}\n{pin}").as_bytes());
        self.options
            .cache_dir
            .join("peers")
            .join(format!("{safe}-{}", id.get(..16).unwrap_or(&id)))
    }

    /// The TUF workflow, the walk of every delegated role, the trust
    /// documents, from `remote`, checked as of now.
    async fn sync(
        &self,
        cache: &RepoCache,
        manifest: Manifest,
        remote: Remote<'_>,
    ) -> Result<Synced, Error> {
        let url = manifest.url.clone();
        let tuf = |source| Error::Tuf {
            url: url.clone(),
            source,
        };
        let config = &self.options.config;
        let etag = manifest.timestamp_etag.clone();
        let mut work = Work {
            cache,
            old: manifest,
            metadata: BTreeMap::new(),
            deleted: BTreeSet::new(),
            etag: None,
        };
        let root = work
            .local("root.json")
            .ok_or_else(|| Error::NotInitialized {
                dir: cache.dir().to_owned(),
            })?;
        let mut updater = Updater::new(&root, self.now(), config.clone()).map_err(tuf)?;

        // 1. Top-level metadata (TUF §5.3–5.6).
        loop {
            match updater.poll().map_err(tuf)? {
                Step::Done(()) => break,
                Step::Cache(CacheOp::Store { name, bytes }) => work.store(name, bytes),
                Step::Cache(CacheOp::Delete { name }) => {
                    work.metadata.remove(&name);
                    work.deleted.insert(name);
                }
                Step::Fetch(request) => {
                    let name = request.cache_name();
                    let response = if request.is_local() {
                        work.local(&name).into()
                    } else {
                        match remote {
                            Remote::Offline => match request.file() {
                                MetadataFile::Root { .. } => Response::NotFound,
                                _ => work.local(&name).into(),
                            },
                            Remote::Bundle(files) => bundle_file(
                                files,
                                format!("metadata/{}", request.remote_name()),
                                request.max_length(),
                            )?
                            .into(),
                            Remote::Http(transport, base) => {
                                let is_timestamp =
                                    matches!(request.file(), MetadataFile::Timestamp);
                                let cached = is_timestamp
                                    .then(|| work.local(&name))
                                    .flatten()
                                    .and(etag.clone());
                                let file = format!("{base}/metadata/{}", request.remote_name());
                                match transport
                                    .get(&file, request.max_length(), cached.as_deref())
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
                            }
                        }
                    };
                    updater.answer(response);
                }
            }
        }

        // 2. Every delegated role, one level of the graph at a time.
        let mut used: BTreeSet<String> = ["root", "timestamp", "snapshot", "targets"]
            .iter()
            .map(|r| format!("{r}.json"))
            .collect();
        let mut loaded: Vec<String> = vec!["targets".to_owned()];
        let mut seen: HashSet<String> = ["root", "timestamp", "snapshot", "targets"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        let mut level = children(&updater, "targets", &mut seen);
        while !level.is_empty() {
            let cached: Vec<Option<Vec<u8>>> = level
                .iter()
                .map(|(role, _)| work.local(&role_file(role)))
                .collect();
            let need = self.load_batch(&mut updater, &level, &cached);
            let todo: Vec<&(String, String)> = level
                .iter()
                .zip(&need)
                .filter_map(|(item, need)| need.then_some(item))
                .collect();
            if !todo.is_empty() {
                let fetched = self.fetch_roles(&updater, remote, &todo).await?;
                let refs: Vec<(&str, &str, &[u8])> = todo
                    .iter()
                    .zip(&fetched)
                    .map(|((r, p), b)| (r.as_str(), p.as_str(), b.as_slice()))
                    .collect();
                let results = updater.update_delegated_targets_batch(&refs, self.options.threads);
                for (result, ((role, _), bytes)) in
                    results.into_iter().zip(todo.iter().zip(fetched))
                {
                    result.map_err(tuf)?;
                    work.store(role_file(role), bytes);
                }
            }
            let mut next = Vec::new();
            for (role, _) in &level {
                used.insert(role_file(role));
                loaded.push(role.clone());
                next.extend(children(&updater, role, &mut seen));
            }
            level = next;
        }

        // 3. Which targets to fetch, each resolved by a TUF target search.
        let mut wanted: BTreeSet<String> = BTreeSet::new();
        if let Some(top) = updater.trusted().targets("targets") {
            for path in top.targets.keys() {
                if is_index_path(path)
                    || path == REVOCATIONS_PATH
                    || path == PEERS_PATH
                    || (path.starts_with("org/roots/") && path.ends_with(".pem"))
                {
                    wanted.insert(path.clone());
                }
            }
        }
        for role in &loaded {
            if let Some(t) = updater.trusted().targets(role) {
                wanted.extend(t.targets.keys().filter(|p| is_trust_path(p)).cloned());
            }
        }
        let mut found: Vec<(String, TargetFile)> = Vec::new();
        for path in wanted {
            let lookup = updater
                .find_target_with(&path, |request| work.peek(&request.cache_name()).into())
                .map_err(tuf)?;
            let _ = updater.take_cache_ops();
            match lookup {
                Lookup::Found { target_file, .. } => found.push((path, target_file)),
                Lookup::NotFound => {
                    tracing::warn!(%path, "listed by a role not trusted for it; ignored");
                }
            }
        }

        // 4. The targets themselves: from the cache when the hash matches.
        let mut documents = BTreeMap::new();
        let mut missing = Vec::new();
        for (path, tf) in &found {
            let cached = work
                .old
                .targets
                .get(path)
                .filter(|sha| tf.sha256() == Some(sha.as_str()))
                .and_then(|sha| cache.blob(sha));
            match cached {
                Some(bytes) if verify_target(tf, path, &bytes).is_ok() => {
                    documents.insert(path.clone(), bytes);
                }
                _ => missing.push((path.clone(), tf.clone())),
            }
        }
        let fetched = match remote {
            Remote::Offline => {
                if let Some((path, _)) = missing.first() {
                    return Err(tuf(keyshare_policy::Error::Unavailable {
                        role: keyshare_policy::metadata::RoleName::new("targets"),
                        file: format!("{path} (not in the cache: run `keyshare refresh`)"),
                    }));
                }
                Vec::new()
            }
            Remote::Bundle(files) => missing
                .iter()
                .map(|(path, tf)| {
                    let file = format!("targets/{}", updater.target_remote_name(path, tf));
                    bundle_file(files, file.clone(), tf.length)?
                        .ok_or_else(|| Error::Input(format!("bundle: {file} is missing")))
                })
                .collect(),
            Remote::Http(transport, base) => {
                let jobs = missing.iter().map(|(path, tf)| {
                    let file = format!("{base}/targets/{}", updater.target_remote_name(path, tf));
                    async move {
                        match transport.get(&file, tf.length, None).await? {
                            Fetched::Bytes { bytes, .. } => Ok(bytes),
                            _ => Err(Error::Transport(TransportError::Status {
                                url: file,
                                status: 404,
                            })),
                        }
                    }
                });
                stream::iter(jobs)
                    .buffered(self.options.concurrency.max(1))
                    .collect::<Vec<Result<Vec<u8>, Error>>>()
                    .await
            }
        };
        for ((path, tf), bytes) in missing.iter().zip(fetched) {
            let bytes = bytes?;
            verify_target(tf, path, &bytes).map_err(tuf)?;
            documents.insert(path.clone(), bytes);
        }

        // 5. The trust state.
        let state = build_state(&url, &updater, documents)?;
        let mut manifest = Manifest::pinned(&url, String::new());
        manifest.metadata.clear();
        let mut blobs = BTreeMap::new();
        for name in &used {
            if let Some(bytes) = work.peek(name) {
                let sha = sha256_hex(&bytes);
                manifest.metadata.insert(name.clone(), sha.clone());
                blobs.insert(sha, bytes);
            }
        }
        for (path, bytes) in &state.documents {
            let sha = sha256_hex(bytes);
            manifest.targets.insert(path.clone(), sha.clone());
            blobs.insert(sha, bytes.clone());
        }
        manifest.timestamp_etag = match remote {
            Remote::Offline => work.old.timestamp_etag.clone(),
            Remote::Http(..) => work.etag.clone(),
            Remote::Bundle(_) => None,
        };
        manifest.audit_heads = work.old.audit_heads.clone();
        if let Some(head) = &state.audit_head {
            manifest.remember_head(RememberedHead {
                seq: head.seq,
                hash: head.hash.clone(),
                timestamp_version: state.timestamp_version,
            });
        }
        Ok(Synced {
            state,
            manifest,
            blobs,
        })
    }

    /// Verifies the roles that have cached bytes; returns, per role,
    /// whether it still needs a download.
    fn load_batch(
        &self,
        updater: &mut Updater,
        level: &[(String, String)],
        cached: &[Option<Vec<u8>>],
    ) -> Vec<bool> {
        let mut positions = Vec::new();
        let mut refs: Vec<(&str, &str, &[u8])> = Vec::new();
        for (i, ((role, parent), bytes)) in level.iter().zip(cached).enumerate() {
            if let Some(bytes) = bytes {
                positions.push(i);
                refs.push((role.as_str(), parent.as_str(), bytes.as_slice()));
            }
        }
        let results = updater.update_delegated_targets_batch(&refs, self.options.threads);
        let mut need = vec![true; level.len()];
        for (i, result) in positions.into_iter().zip(results) {
            if result.is_ok() {
                if let Some(n) = need.get_mut(i) {
                    *n = false;
                }
            }
        }
        need
    }

    /// Downloads `V.<role>.json` for each item, as the snapshot lists it.
    async fn fetch_roles(
        &self,
        updater: &Updater,
        remote: Remote<'_>,
        items: &[&(String, String)],
    ) -> Result<Vec<Vec<u8>>, Error> {
        let url = match remote {
            Remote::Http(_, base) => base.to_owned(),
            Remote::Offline | Remote::Bundle(_) => String::new(),
        };
        let tuf = |source| Error::Tuf {
            url: url.clone(),
            source,
        };
        let config = &self.options.config;
        let consistent = updater.trusted().consistent_snapshot();
        let snapshot = updater
            .trusted()
            .snapshot()
            .ok_or_else(|| tuf(keyshare_policy::Error::Order("no snapshot".into())))?;
        let mut files = Vec::new();
        for (role, _) in items.iter().copied() {
            let meta = snapshot.role_meta(role).ok_or_else(|| {
                tuf(keyshare_policy::Error::MissingRole {
                    role: keyshare_policy::metadata::RoleName::new(role.as_str()),
                    message: "delegated but not listed in snapshot".into(),
                })
            })?;
            let file = MetadataFile::Targets {
                role: keyshare_policy::metadata::RoleName::new(role.as_str()),
                version: meta.version,
            };
            let limit = meta.length.unwrap_or(config.targets_max_length);
            files.push((role.clone(), file.remote_name(consistent), limit));
        }
        if let Remote::Bundle(bundle) = remote {
            return files
                .into_iter()
                .map(|(role, name, limit)| {
                    bundle_file(bundle, format!("metadata/{name}"), limit)?.ok_or_else(|| {
                        tuf(keyshare_policy::Error::Unavailable {
                            role: keyshare_policy::metadata::RoleName::new(role),
                            file: format!("{name} (not in the bundle)"),
                        })
                    })
                })
                .collect();
        }
        let Remote::Http(transport, base) = remote else {
            let (role, name, _) = files.first().cloned().unwrap_or_default();
            return Err(tuf(keyshare_policy::Error::Unavailable {
                role: keyshare_policy::metadata::RoleName::new(role),
                file: format!("{name} (not in the cache: run `keyshare refresh`)"),
            }));
        };
        let jobs = files.into_iter().map(|(role, name, limit)| {
            let file = format!("{base}/metadata/{name}");
            async move {
                match transport.get(&file, limit, None).await? {
                    Fetched::Bytes { bytes, .. } => Ok(bytes),
                    _ => Err(Error::Tuf {
                        url: base.to_owned(),
                        source: keyshare_policy::Error::Unavailable {
                            role: keyshare_policy::metadata::RoleName::new(role),
                            file: name,
                        },
                    }),
                }
            }
        });
        stream::iter(jobs)
            .buffered(self.options.concurrency.max(1))
            .collect::<Vec<Result<Vec<u8>, Error>>>()
            .await
            .into_iter()
            .collect()
    }
}

/// The roles `role` delegates to that the walk has not seen, with `role`
/// as their delegator. Roles the snapshot does not list are skipped: no
/// target search could load them either.
fn children(updater: &Updater, role: &str, seen: &mut HashSet<String>) -> Vec<(String, String)> {
    let trusted = updater.trusted();
    let Some(delegations) = trusted.targets(role).and_then(|t| t.delegations.as_ref()) else {
        return Vec::new();
    };
    let names: Vec<String> = match (&delegations.roles, &delegations.succinct_roles) {
        (Some(roles), _) => roles.iter().map(|r| r.name.as_str().to_owned()).collect(),
        (None, Some(bins)) => bins.bin_names().map(|n| n.as_str().to_owned()).collect(),
        (None, None) => Vec::new(),
    };
    let listed = |name: &str| {
        trusted
            .snapshot()
            .is_some_and(|s| s.role_meta(name).is_some())
    };
    names
        .into_iter()
        .filter(|n| listed(n) && seen.insert(n.clone()))
        .map(|n| (n, role.to_owned()))
        .collect()
}

/// The cache name of a delegated role's metadata.
fn role_file(role: &str) -> String {
    format!("{}.json", encode_role(role))
}

/// `namespaces/<ns>/trust.json` with a valid namespace name.
fn is_trust_path(path: &str) -> bool {
    path.strip_prefix("namespaces/")
        .and_then(|rest| rest.strip_suffix("/trust.json"))
        .is_some_and(|ns| NamespaceName::parse(ns).is_ok())
}

/// Parses the verified documents into a [`TrustState`].
fn build_state(
    url: &str,
    updater: &Updater,
    documents: BTreeMap<String, Vec<u8>>,
) -> Result<TrustState, Error> {
    let bad = |source| Error::Documents {
        url: url.to_owned(),
        source,
    };
    let mut shards = Vec::new();
    let mut namespaces = Vec::new();
    let mut revocations = Revocations::default();
    let mut peers = Peers::default();
    for (path, bytes) in &documents {
        if is_index_path(path) {
            shards.push((path.as_str(), Namespaces::from_slice(bytes).map_err(bad)?));
        } else if path == REVOCATIONS_PATH {
            revocations = Revocations::from_slice(bytes).map_err(bad)?;
        } else if path == PEERS_PATH {
            peers = Peers::from_slice(bytes).map_err(bad)?;
        } else if is_trust_path(path) {
            namespaces.push(NamespaceTrust::from_target(path, bytes).map_err(bad)?);
        }
    }
    let index = Namespaces::merge(shards).map_err(bad)?;
    let trust_set = TrustSet::new(index, namespaces, revocations, peers).map_err(bad)?;
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
    Ok(TrustState {
        url: url.to_owned(),
        root_version: trusted.root().version,
        timestamp_version: trusted.timestamp().map_or(0, |t| t.version),
        audit_head,
        trust_set,
        documents,
    })
}

/// Checks a peer's first root against the pin of the signed peer map.
///
/// `{"sha256"}`: the file's hash. `{"keyids", "threshold"}`: the root is
/// signed by `threshold` distinct pinned keys, counting only keys whose id
/// is their TUF key id (the SHA-256 of the key's canonical form), since a
/// peer chooses the ids in its own root; and it verifies against itself.
fn check_pin(bytes: &[u8], pin: &PinnedRoot) -> Result<(), String> {
    match pin {
        PinnedRoot::Sha256(expected) => {
            let found = sha256_hex(bytes);
            if found == expected.as_str() {
                Ok(())
            } else {
                Err(format!(
                    "1.root.json has SHA-256 {found}, the peer map pins {expected}"
                ))
            }
        }
        PinnedRoot::Keys { keyids, threshold } => {
            let envelope = Envelope::<Root>::parse("root", bytes).map_err(|e| e.to_string())?;
            let keys: BTreeMap<KeyId, keyshare_policy::keys::Key> = envelope
                .signed
                .keys
                .iter()
                .filter(|(id, key)| keyids.contains(id) && key.key_id().ok().as_ref() == Some(*id))
                .map(|(id, key)| (id.clone(), key.clone()))
                .collect();
            let authority = Authority {
                keys: &keys,
                keyids,
                threshold: *threshold,
            };
            authority
                .check("root", &envelope)
                .map_err(|e| format!("not signed by the pinned keys: {e}"))?;
            verify_root_self(envelope).map_err(|e| e.to_string())?;
            Ok(())
        }
    }
}

/// A URL as compared for loop detection.
fn normalize(url: &str) -> String {
    url.trim_end_matches('/').to_ascii_lowercase()
}

/// The default cache directory (see [`cache::default_dir`]).
pub fn default_cache_dir() -> Option<PathBuf> {
    cache::default_dir()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use std::collections::BTreeMap;
    use std::num::NonZeroU32;

    use keyshare_policy::datetime::Expires;
    use keyshare_policy::keys::Scheme;
    use keyshare_policy::metadata::{
        RoleKeys, RoleName, Unrecognized, SPEC_VERSION, TOP_LEVEL_ROLES,
    };
    use keyshare_policy::sign::{sign, to_bytes, InMemorySigner, SignError, Signer};
    use keyshare_policy::trust::Sha256Hex;

    use super::*;

    /// A key that claims another key's id.
    #[derive(Debug)]
    struct Posing {
        id: KeyId,
        inner: InMemorySigner,
    }

    impl Signer for Posing {
        fn key_id(&self) -> &KeyId {
            &self.id
        }
        fn public_key(&self) -> &keyshare_policy::keys::Key {
            self.inner.public_key()
        }
        fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignError> {
            self.inner.sign(message)
        }
    }

    /// A root v1 listing `keys` (id → signer's public key) for every role,
    /// threshold 1, signed by `signers`.
    fn root(keys: &[(KeyId, &dyn Signer)], signers: &[&dyn Signer]) -> Vec<u8> {
        let now = OffsetDateTime::now_utc();
        let ids: Vec<KeyId> = keys.iter().map(|(id, _)| id.clone()).collect();
        let role = || RoleKeys {
            keyids: ids.clone(),
            threshold: NonZeroU32::MIN,
            unrecognized: Unrecognized::new(),
        };
        let root = Root {
            type_: "root".into(),
            spec_version: SPEC_VERSION.into(),
            version: 1,
            expires: Expires::new(now + time::Duration::days(30)),
            consistent_snapshot: Some(true),
            keys: keys
                .iter()
                .map(|(id, s)| (id.clone(), s.public_key().clone()))
                .collect::<BTreeMap<_, _>>(),
            roles: TOP_LEVEL_ROLES
                .iter()
                .map(|r| (RoleName::new(*r), role()))
                .collect(),
            unrecognized: Unrecognized::new(),
        };
        to_bytes(&sign(root, signers).unwrap()).unwrap()
    }

    #[test]
    fn pinned_keys_count_only_under_their_own_key_id() {
        let real = InMemorySigner::generate(Scheme::Ed25519).unwrap();
        let real_id = real.key_id().clone();
        let evil = Posing {
            id: real_id.clone(),
            inner: InMemorySigner::generate(Scheme::Ed25519).unwrap(),
        };
        let pin = PinnedRoot::Keys {
            keyids: vec![real_id.clone()],
            threshold: NonZeroU32::MIN,
        };
        // The peer's genuine root, signed by the pinned key.
        let good = root(&[(real_id.clone(), &real)], &[&real]);
        assert_eq!(check_pin(&good, &pin), Ok(()));
        // An impostor lists its own key under the pinned id and signs: the
        // id is not that key's TUF key id, so it does not count.
        let forged = root(&[(real_id, &evil)], &[&evil]);
        let err = check_pin(&forged, &pin).unwrap_err();
        assert!(err.contains("not signed by the pinned keys"), "{err}");
        // Under its own id, the impostor's key is simply not pinned.
        let own_id = evil.inner.key_id().clone();
        let other = root(&[(own_id, &evil.inner)], &[&evil.inner]);
        assert!(check_pin(&other, &pin).is_err());
    }

    #[test]
    fn a_pinned_hash_must_be_the_hash_of_the_root_file() {
        let key = InMemorySigner::generate(Scheme::Ed25519).unwrap();
        let bytes = root(&[(key.key_id().clone(), &key)], &[&key]);
        assert_eq!(
            check_pin(&bytes, &PinnedRoot::Sha256(Sha256Hex::of(&bytes))),
            Ok(())
        );
        let other = PinnedRoot::Sha256(Sha256Hex::of(b"another root"));
        assert!(check_pin(&bytes, &other).unwrap_err().contains("pins"));
    }

    #[test]
    fn trust_document_paths_need_a_valid_namespace_name() {
        assert!(is_trust_path("namespaces/team-a/trust.json"));
        assert!(!is_trust_path("namespaces/Team A/trust.json"));
        assert!(!is_trust_path("namespaces/team-a/other.json"));
        assert!(!is_trust_path("namespaces/a/b/trust.json"));
    }
}
