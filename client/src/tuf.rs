//! A standard TUF client over plain HTTP: the IO around
//! [`keyshare_policy::client`], for any TUF 1.0 repository (keyshare's or
//! another's). `keyshare tuf ...` is this module behind the command line
//! that the tuf-conformance test suite drives (`docs/cli.md`).
//!
//! * [`init`] copies a trusted root into the metadata directory, after
//!   checking that it is a root signed by its own threshold (no network).
//! * [`Client::refresh`] runs the TUF client workflow: the sans-IO
//!   [`Updater`] decides what to read and what to trust; this module reads
//!   the metadata directory, fetches over HTTP and applies the cache
//!   operations as they come, so partial progress (a rotated root, a new
//!   timestamp) survives a later failure.
//! * [`Client::download`] looks a target up through the delegations
//!   ([`keyshare_policy::client::TargetSearch`], pre-order depth first),
//!   then downloads it by its consistent-snapshot name, verifies length and
//!   hashes, and only then writes it.
//!
//! # Files
//!
//! The metadata directory holds `root.json`, `timestamp.json`,
//! `snapshot.json`, `targets.json` and `<role>.json` for delegated roles
//! (role names percent-encoded with no safe characters, as python-tuf
//! does), each byte for byte as the repository served it. Writes go to a
//! temporary file named `.tmp-*` (never ending in `.json`) in the same
//! directory, then are renamed over the old file.
//!
//! A target `T` is written as `<target dir>/<T percent-encoded with no safe
//! characters>`, python-tuf's file name, so `a/b.txt` is `a%2Fb.txt` and a
//! target path never makes a path outside the directory. A file already
//! there whose length and hashes match is kept and nothing is downloaded;
//! otherwise the verified bytes replace it (temporary file, then rename).
//!
//! # HTTP
//!
//! The verifier's [`HttpTransport`] (reqwest with `native-tls`, connect
//! timeout 10 s, 30 s a request, redirects 302/303/307 only and only within
//! the origin asked for), run to completion on a private single-threaded
//! runtime. 200 is the file, read up to the size limit the workflow gives
//! plus one byte (so an endless answer is cut and refused); 403 and 404 are
//! "not found" (how the root loop ends); anything else is an error naming
//! the URL.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use time::OffsetDateTime;

use keyshare_policy::client::{
    encode_role, verify_target, CacheOp, Config, Lookup, Request, Response, Step, TrustedSet,
    Updater,
};
use keyshare_policy::metadata::TargetFile;

use crate::fetch::{Fetched, HttpTransport, TransportError, DEFAULT_TIMEOUT};

/// Why a TUF client operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The repository's metadata or a target failed the TUF checks.
    #[error(transparent)]
    Tuf(#[from] keyshare_policy::Error),
    /// An HTTP request failed (transport error or an unexpected status).
    #[error("{url}: {message}")]
    Http {
        /// The URL requested.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// A local file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// No trusted targets role lists the target.
    #[error("target `{0}` is not in the repository")]
    TargetNotFound(String),
    /// An argument is unusable (a URL, a directory).
    #[error("{0}")]
    Config(String),
}

/// Result of this module.
pub type Result<T> = std::result::Result<T, Error>;

/// What [`Client::download`] did for one target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Downloaded {
    /// The file was fetched, verified and written at this path.
    Fetched(PathBuf),
    /// The file at this path already matched; nothing was fetched.
    Cached(PathBuf),
}

impl Downloaded {
    /// Where the target is.
    pub fn path(&self) -> &Path {
        match self {
            Self::Fetched(p) | Self::Cached(p) => p,
        }
    }
}

/// Stores `root_file` as the trusted root of the metadata directory
/// `metadata_dir` (created if missing), byte for byte.
///
/// The root must parse and carry a threshold of its own root keys'
/// signatures; it may have expired (the refresh replaces it). No network.
pub fn init(metadata_dir: &Path, root_file: &Path) -> Result<()> {
    let bytes = fs::read(root_file).map_err(|source| io_error(root_file, source))?;
    TrustedSet::new(&bytes, OffsetDateTime::now_utc())?;
    fs::create_dir_all(metadata_dir).map_err(|source| io_error(metadata_dir, source))?;
    write_atomic(metadata_dir, "root.json", &bytes)
}

/// A TUF client of one repository, keeping its trusted metadata in a directory.
#[derive(Debug)]
pub struct Client {
    metadata_dir: PathBuf,
    metadata_url: String,
    transport: HttpTransport,
    runtime: tokio::runtime::Runtime,
    config: Config,
}

impl Client {
    /// A client of the repository whose metadata is under `metadata_url`
    /// (`http://` or `https://`; a trailing `/` is optional), with trusted
    /// metadata in `metadata_dir` (which must hold `root.json`, see [`init`]).
    pub fn new(metadata_dir: &Path, metadata_url: &str) -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::Config(format!("cannot start the I/O runtime: {e}")))?;
        // reqwest's client must be built inside a runtime context.
        let transport = {
            let _guard = runtime.enter();
            HttpTransport::new(DEFAULT_TIMEOUT, None)
                .map_err(|e| Error::Config(format!("cannot set up TLS: {e}")))?
        };
        Ok(Self {
            metadata_dir: metadata_dir.to_owned(),
            metadata_url: base_url(metadata_url)?,
            transport,
            runtime,
            config: Config::default(),
        })
    }

    /// Runs the TUF client workflow with `now` as the update start time,
    /// and returns the refreshed [`Updater`] (for [`Self::download`]).
    ///
    /// Every cache operation is applied as the workflow emits it, also when
    /// the refresh then fails.
    pub fn refresh(&self, now: OffsetDateTime) -> Result<Updater> {
        let root_path = self.metadata_dir.join("root.json");
        let root = fs::read(&root_path).map_err(|source| io_error(&root_path, source))?;
        let mut updater = Updater::new(&root, now, self.config.clone())?;
        loop {
            match updater.poll()? {
                Step::Fetch(request) => {
                    let response = self.fetch_metadata(&request)?;
                    updater.answer(response);
                }
                Step::Cache(op) => self.apply(&op)?,
                Step::Done(()) => return Ok(updater),
            }
        }
    }

    /// Looks `target_path` up in the refreshed `updater` (loading delegated
    /// roles as needed) and makes sure `target_dir` holds it, verified.
    ///
    /// `target_base_url` is where the repository's targets are; the file is
    /// fetched as `<target_base_url>/<dir>/<hash>.<basename>` with
    /// consistent snapshots.
    pub fn download(
        &self,
        updater: &mut Updater,
        target_path: &str,
        target_dir: &Path,
        target_base_url: &str,
    ) -> Result<Downloaded> {
        let target_file = self.find(updater, target_path)?;
        let local = target_dir.join(encode_role(target_path));
        if let Some(bytes) = read_capped(&local, target_file.length) {
            if verify_target(&target_file, target_path, &bytes).is_ok() {
                return Ok(Downloaded::Cached(local));
            }
        }
        let url = format!(
            "{}{}",
            base_url(target_base_url)?,
            updater.target_remote_name(target_path, &target_file)
        );
        let bytes = self
            .get(&url, target_file.length)?
            .ok_or_else(|| Error::Http {
                url: url.clone(),
                message: "not found".into(),
            })?;
        // Nothing unverified reaches the disk.
        verify_target(&target_file, target_path, &bytes)?;
        fs::create_dir_all(target_dir).map_err(|source| io_error(target_dir, source))?;
        write_atomic(target_dir, &encode_role(target_path), &bytes)?;
        Ok(Downloaded::Fetched(local))
    }

    /// The target's description from the most trusted role listing it.
    fn find(&self, updater: &mut Updater, target_path: &str) -> Result<TargetFile> {
        let mut search = updater.search(target_path)?;
        loop {
            match search.poll()? {
                Step::Fetch(request) => {
                    let response = self.fetch_metadata(&request)?;
                    search.answer(response);
                }
                Step::Cache(op) => self.apply(&op)?,
                Step::Done(Lookup::Found { target_file, .. }) => return Ok(target_file),
                Step::Done(Lookup::NotFound) => {
                    return Err(Error::TargetNotFound(target_path.to_owned()))
                }
            }
        }
    }

    /// Answers a request of the workflow: from the metadata directory (any
    /// failure to read is "not found") or from the repository.
    fn fetch_metadata(&self, request: &Request) -> Result<Response> {
        if request.is_local() {
            let path = self.metadata_dir.join(request.cache_name());
            return Ok(read_capped(&path, request.max_length()).into());
        }
        let url = format!("{}{}", self.metadata_url, request.remote_name());
        Ok(self.get(&url, request.max_length())?.into())
    }

    /// GETs `url`: `Some(bytes)` (at most `max_length` + 1 of them) on 200,
    /// `None` on 403 or 404.
    fn get(&self, url: &str, max_length: u64) -> Result<Option<Vec<u8>>> {
        let http = |message: String| Error::Http {
            url: url.to_owned(),
            message,
        };
        match self
            .runtime
            .block_on(self.transport.get(url, max_length, None))
        {
            Ok(Fetched::Bytes { bytes, .. }) => Ok(Some(bytes)),
            Ok(Fetched::NotFound) => Ok(None),
            Ok(Fetched::NotModified) => Err(http("HTTP 304".into())),
            Err(TransportError::Status { status, .. }) => Err(http(format!("HTTP {status}"))),
            Err(
                TransportError::Unreachable { message, .. }
                | TransportError::Refused { message, .. },
            ) => Err(http(message)),
            Err(e) => Err(http(e.to_string())),
        }
    }

    fn apply(&self, op: &CacheOp) -> Result<()> {
        match op {
            CacheOp::Store { name, bytes } => write_atomic(&self.metadata_dir, name, bytes),
            CacheOp::Delete { name } => {
                let path = self.metadata_dir.join(name);
                match fs::remove_file(&path) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_error(&path, e)),
                    _ => Ok(()),
                }
            }
        }
    }
}

/// `url` with exactly one trailing `/`, if it is an HTTP(S) URL.
fn base_url(url: &str) -> Result<String> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| Error::Config(format!("`{url}` is not an http:// or https:// URL")))?;
    if rest.is_empty() || rest.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Error::Config(format!(
            "`{url}` has no host or contains spaces"
        )));
    }
    Ok(format!("{}/", url.trim_end_matches('/')))
}

/// Reads at most `max_length` + 1 bytes of a file; `None` if it cannot be read.
fn read_capped(path: &Path, max_length: u64) -> Option<Vec<u8>> {
    let mut bytes = Vec::new();
    fs::File::open(path)
        .ok()?
        .take(max_length.saturating_add(1))
        .read_to_end(&mut bytes)
        .ok()?;
    Some(bytes)
}

/// Replaces `dir/name` with `bytes` (mode 0600) with
/// [`keyshare_fsio::write_atomically`].
fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    keyshare_fsio::write_atomically(&dir.join(name), bytes, 0o600)
        .map_err(|e| io_error(&e.path, e.source))
}

fn io_error(path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        path: path.to_owned(),
        source,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn tuf_base_urls_get_one_trailing_slash_and_must_be_http() {
        assert_eq!(base_url("http://h/m").ok().as_deref(), Some("http://h/m/"));
        assert_eq!(
            base_url("https://h/m//").ok().as_deref(),
            Some("https://h/m/")
        );
        assert!(base_url("ftp://h/m").is_err());
        assert!(base_url("http://").is_err());
        assert!(base_url("http://h/a b").is_err());
    }

    #[test]
    fn tuf_atomic_writes_leave_only_the_named_file() {
        let dir = tempfile::tempdir().unwrap();
        write_atomic(dir.path(), "x.json", b"one").unwrap();
        write_atomic(dir.path(), "x.json", b"two").unwrap();
        let names: Vec<String> = fs::read_dir(dir.path())
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["x.json"]);
        assert_eq!(
            fs::read(dir.path().join("x.json")).ok(),
            Some(b"two".to_vec())
        );
    }
}
