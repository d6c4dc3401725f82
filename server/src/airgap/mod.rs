//! Air-gapped sites: bundle export, verified import, and the replica's
//! served state (see `docs/airgap.md`).
//!
//! * [`export`] asks the publisher for a bundle edition of snapshot and
//!   timestamp valid for the chosen window
//!   ([`Publisher::sign_bundle_edition`]), walks the repository from root 1
//!   with policy's TUF client checks ([`keyshare_airgap::walk`]) to collect
//!   every file a client can reach, signs the manifest with the timestamp
//!   key and writes the bundle;
//! * [`Replica`] is a replica's data: the root pinned at `init --replica`
//!   and the current bundle. [`Replica::import_from`] streams a bundle
//!   into a temporary file next to the current one (memory bounded
//!   whatever the bundle claims: [`keyshare_airgap::read_bundle`]),
//!   verifies it against both (rollback, tampering) and swaps it in with
//!   one atomic rename;
//! * [`ReplicaFiles`] serves the current bundle's files, read from the
//!   bundle file as they are asked for, and notices a new import on the
//!   next request (`serve --replica`);
//!
//! Its HTTP (`POST /api/v1/export`, the replica's read-only application)
//! lives in `crate::http`, its commands in `crate::commands::airgap`.

use std::collections::BTreeMap;
use std::fs::{self, DirBuilder, File};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use time::{Duration, OffsetDateTime};

use keyshare_airgap::format::entry_for;
use keyshare_airgap::{
    read_bundle, verify, walk, write_bundle, Anchor, Manifest, Source, SourceReader,
    VerifiedBundle, MANIFEST_FORMAT, MANIFEST_TYPE,
};
use keyshare_policy::datetime::Expires;
use keyshare_policy::metadata::{Envelope, Root};
use keyshare_policy::verify::verify_root_self;

use crate::config::Config;
use crate::data_dir::{DataDir, CURRENT_BUNDLE, PINNED_ROOT};
use crate::publisher::{CachedFile, PublishError, Publisher};

/// Why an export or import failed. One line each.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AirgapError {
    /// The publisher could not sign the bundle edition.
    #[error(transparent)]
    Publish(#[from] PublishError),
    /// The bundle was refused (or could not be built).
    #[error(transparent)]
    Bundle(#[from] keyshare_airgap::Error),
    /// A request that cannot be met (window too long, not a replica...).
    #[error("{0}")]
    Invalid(String),
    /// A file operation failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
}

impl From<keyshare_fsio::Error> for AirgapError {
    fn from(e: keyshare_fsio::Error) -> Self {
        AirgapError::Io {
            path: e.path,
            source: e.source,
        }
    }
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> AirgapError + '_ {
    move |source| AirgapError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Validity windows an export may use (from `[airgap]` and `[expiry]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExportLimits {
    /// Window when none is asked for.
    pub default: Duration,
    /// Longest window: `airgap.max_valid_for`, and shorter than
    /// `expiry.targets` (targets roles re-signed at export must outlive it).
    pub max: Duration,
}

impl Default for ExportLimits {
    fn default() -> Self {
        Self::from_config(&Config::default())
    }
}

impl ExportLimits {
    /// The limits a configuration sets.
    pub fn from_config(config: &Config) -> Self {
        let max = config
            .airgap
            .max_valid_for
            .min(config.expiry.targets - Duration::seconds(1));
        Self {
            default: config.airgap.valid_for.min(max),
            max,
        }
    }

    /// The window for `asked` (a duration like `30d`), or the default.
    pub fn window(&self, asked: Option<&str>) -> Result<Duration, AirgapError> {
        let Some(text) = asked else {
            return Ok(self.default);
        };
        let d = crate::config::parse_duration(text)
            .map_err(|e| AirgapError::Invalid(format!("valid_for: {e}")))?;
        if d <= Duration::ZERO {
            return Err(AirgapError::Invalid("valid_for: must be positive".into()));
        }
        if d > self.max {
            return Err(AirgapError::Invalid(format!(
                "valid_for: {d} is longer than the {} allowed (airgap.max_valid_for, and shorter than expiry.targets)",
                self.max
            )));
        }
        Ok(d)
    }
}

/// What an export wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exported {
    /// Bundle size in bytes.
    pub bytes: u64,
    /// Number of entries.
    pub entries: usize,
    /// The bundle edition's timestamp version.
    pub timestamp_version: u64,
    /// End of the window.
    pub expires: OffsetDateTime,
}

/// Exports the publisher's current state as a bundle valid for
/// `valid_for` into `out`, on behalf of `actor` (audit log).
/// `progress(done, total)` is called as bytes are written. Blocking.
pub fn export(
    publisher: &Publisher,
    actor: &str,
    valid_for: Duration,
    now: OffsetDateTime,
    out: &mut dyn Write,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Exported, AirgapError> {
    let valid_until = now + valid_for;
    let edition = publisher.sign_bundle_edition(actor, valid_until, now)?;
    let mut files: BTreeMap<String, Arc<[u8]>> = BTreeMap::new();
    let walked = walk(now, None, &mut |path| {
        let bytes = if path == "metadata/timestamp.json" {
            Some(edition.timestamp.clone())
        } else if path == edition.snapshot_path {
            Some(edition.snapshot.clone())
        } else {
            publisher.file(path).map(|f| f.bytes.clone())
        };
        if let Some(b) = &bytes {
            files.insert(path.to_owned(), b.clone());
        }
        Ok(bytes)
    })?;
    let trusted = &walked.trusted;
    let timestamp_version = trusted.timestamp().map_or(0, |t| t.signed().version);
    let manifest = Manifest {
        type_: MANIFEST_TYPE.into(),
        format: MANIFEST_FORMAT.into(),
        created: Expires::new(now),
        expires: Expires::new(valid_until),
        root_version: trusted.root().version,
        timestamp_version,
        snapshot_version: trusted.snapshot().map_or(0, |s| s.signed().version),
        timestamp_sha256: keyshare_policy::hash::sha256_hex(&edition.timestamp),
        entries: walked
            .paths
            .iter()
            .filter_map(|path| files.get(path).map(|bytes| entry_for(path, bytes)))
            .collect(),
    };
    let entries = manifest.entries.len();
    let total: u64 = manifest.entries.iter().map(|e| e.length).sum();
    let signed = keyshare_policy::sign::sign(manifest, &[edition.timestamp_signer.as_ref()])
        .map_err(keyshare_airgap::Error::from)?;
    let bytes = write_bundle(out, &signed, &files, &mut |done| progress(done, total))?;
    Ok(Exported {
        bytes,
        entries,
        timestamp_version,
        expires: Expires::new(valid_until).time(),
    })
}

/// A replica's data: `DIR/replica/pinned-root.json` and
/// `DIR/replica/current.bundle`.
#[derive(Clone, Debug)]
pub struct Replica {
    dir: PathBuf,
}

/// What an import did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Imported {
    /// The new state's timestamp version.
    pub timestamp_version: u64,
    /// The timestamp version replaced, if any.
    pub previous: Option<u64>,
    /// End of the new state's window.
    pub expires: OffsetDateTime,
    /// Number of files served.
    pub files: usize,
}

impl Replica {
    /// The replica of data directory `data_dir`; fails if it was not made
    /// with `init --replica`.
    pub fn open(data_dir: &Path) -> Result<Self, AirgapError> {
        let dir = DataDir::new(data_dir).replica();
        if !dir.join(PINNED_ROOT).exists() {
            return Err(AirgapError::Invalid(format!(
                "{} is not a replica: run `keyshare-server init --replica --root ROOT.json` first",
                data_dir.display()
            )));
        }
        Ok(Self { dir })
    }

    /// Makes `data_dir` a replica pinned to `root` (the organization's
    /// root, any version, as published: `metadata/N.root.json`). Refuses a
    /// data directory that holds a repository or a replica already, and a
    /// root that is not signed by its own threshold. Returns the root's
    /// version and SHA-256.
    pub fn init(data_dir: &Path, root: &[u8]) -> Result<(u64, String), AirgapError> {
        let refused = |e: keyshare_policy::Error| {
            AirgapError::Invalid(format!("the root to pin is not a signed TUF root: {e}"))
        };
        let envelope = Envelope::<Root>::parse("root", root).map_err(refused)?;
        let version = envelope.signed.version;
        verify_root_self(envelope).map_err(refused)?;
        for existing in [
            DataDir::new(data_dir).db(),
            DataDir::new(data_dir).replica(),
        ] {
            if existing.exists() {
                return Err(AirgapError::Invalid(format!(
                    "{} already holds a repository or replica ({} exists); refusing to overwrite it",
                    data_dir.display(),
                    existing.display()
                )));
            }
        }
        let dir = DataDir::new(data_dir).replica();
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(io_at(&dir))?;
        keyshare_fsio::write_atomically(&dir.join(PINNED_ROOT), root, 0o600)?;
        Ok((version, keyshare_policy::hash::sha256_hex(root)))
    }

    /// The pinned root's bytes.
    pub fn pinned_root(&self) -> Result<Vec<u8>, AirgapError> {
        let path = self.dir.join(PINNED_ROOT);
        fs::read(&path).map_err(io_at(&path))
    }

    /// The current state, verified again (at its export time: signatures,
    /// hashes and completeness; expiry is the clients' to judge), or
    /// `None` before the first import. Its files are read from the bundle
    /// file when asked for.
    pub fn current(&self) -> Result<Option<VerifiedBundle>, AirgapError> {
        let path = self.dir.join(CURRENT_BUNDLE);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_at(&path)(e)),
        };
        let pinned = self.pinned_root()?;
        load_verified(file, &pinned).map(Some)
    }

    /// Imports the bundle in `bytes` at `now`: [`Self::import_from`].
    pub fn import(&self, bytes: &[u8], now: OffsetDateTime) -> Result<Imported, AirgapError> {
        self.import_from(&mut &bytes[..], now, &mut |_, _| {})
    }

    /// Imports the bundle read from `input` at `now`, with bounded memory
    /// whatever the bundle claims: streams it into a temporary file next
    /// to the current one while checking it
    /// ([`keyshare_airgap::read_bundle`]: caps, root chain, the manifest's
    /// signature, every entry's length and SHA-256), verifies it from
    /// that file against the pinned root and the current state (no
    /// rollback), then replaces the current state with one atomic rename.
    /// On any error the current state is untouched and the temporary file
    /// removed. `progress(done, total)` is called as the bundle is read.
    pub fn import_from(
        &self,
        input: &mut dyn Read,
        now: OffsetDateTime,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<Imported, AirgapError> {
        let pinned = self.pinned_root()?;
        let previous = self.current()?;
        // Leftovers of an import that was killed.
        keyshare_fsio::remove_temporaries(&self.dir);
        let path = self.dir.join(CURRENT_BUNDLE);
        keyshare_fsio::write_atomically_with(&path, 0o600, |file, tmp| {
            let mut copy = BufWriter::with_capacity(1 << 20, file);
            let raw = read_bundle(input, &mut copy, &pinned, progress)?;
            copy.flush().map_err(io_at(tmp))?;
            drop(copy);
            let source: Arc<dyn Source> = Arc::new(file.try_clone().map_err(io_at(tmp))?);
            let verified = verify(
                raw,
                source,
                Anchor {
                    pinned_root: &pinned,
                    previous: previous.as_ref(),
                },
                now,
            )?;
            Ok(Imported {
                timestamp_version: verified.manifest().timestamp_version,
                previous: previous.as_ref().map(|p| p.manifest().timestamp_version),
                expires: verified.expires(),
                files: verified.manifest().entries.len(),
            })
        })
    }
}

/// Verifies a stored bundle at its own export time, reading it from
/// `file` (once through, then each entry when asked for).
fn load_verified(file: File, pinned: &[u8]) -> Result<VerifiedBundle, AirgapError> {
    let source: Arc<dyn Source> = Arc::new(file);
    let raw = read_bundle(
        &mut SourceReader::new(&*source),
        &mut io::sink(),
        pinned,
        &mut |_, _| {},
    )?;
    let at = raw.manifest().created.time();
    Ok(verify(
        raw,
        source,
        Anchor {
            pinned_root: pinned,
            previous: None,
        },
        at,
    )?)
}

/// Identity of the current bundle file, to notice a new import.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    ino: u64,
    len: u64,
    mtime: i64,
    mtime_nsec: i64,
}

impl Stamp {
    fn of(meta: &fs::Metadata) -> Self {
        Self {
            ino: meta.ino(),
            len: meta.len(),
            mtime: meta.mtime(),
            mtime_nsec: meta.mtime_nsec(),
        }
    }
}

/// A loaded state: the verified bundle, whose files are read from its
/// file (held open, so it stays readable after an import replaced it).
#[derive(Debug, Default)]
struct Loaded {
    stamp: Option<Stamp>,
    bundle: Option<VerifiedBundle>,
}

impl Loaded {
    fn file(&self, path: &str) -> Option<Arc<CachedFile>> {
        let bundle = self.bundle.as_ref()?;
        let etag = format!("\"{}\"", bundle.entry(path)?.sha256);
        match bundle.file(path) {
            Ok(bytes) => bytes.map(|bytes| {
                Arc::new(CachedFile {
                    path: path.to_owned(),
                    bytes: bytes.into(),
                    etag,
                    immutable: path != "metadata/timestamp.json",
                })
            }),
            Err(e) => {
                tracing::error!(error = %e, path, "cannot read a file of the replica's bundle");
                None
            }
        }
    }
}

/// The files a running `serve --replica` serves: the current bundle's,
/// reloaded (and verified again) when an import replaced it, each read
/// from the bundle file (and checked against the manifest) when asked
/// for. Files of the state before are still served by path (except
/// `timestamp.json`), so a client in the middle of a refresh across an
/// import finishes it.
#[derive(Debug)]
pub struct ReplicaFiles {
    replica: Replica,
    pinned: Vec<u8>,
    current: RwLock<Arc<Loaded>>,
    previous: RwLock<Arc<Loaded>>,
    reload: Mutex<()>,
}

impl ReplicaFiles {
    /// Loads the replica's current state (none yet is fine: every file is
    /// then 404 until the first import).
    pub fn open(replica: Replica) -> Result<Self, AirgapError> {
        let pinned = replica.pinned_root()?;
        let this = Self {
            replica,
            pinned,
            current: RwLock::new(Arc::new(Loaded::default())),
            previous: RwLock::new(Arc::new(Loaded::default())),
            reload: Mutex::new(()),
        };
        this.refresh()?;
        Ok(this)
    }

    fn stamp(&self) -> Option<Stamp> {
        let meta = fs::metadata(self.replica.dir.join(CURRENT_BUNDLE)).ok()?;
        Some(Stamp::of(&meta))
    }

    /// Reloads the state if the bundle file changed since it was loaded.
    /// On failure the state loaded before stays served.
    pub fn refresh(&self) -> Result<(), AirgapError> {
        let stamp = self.stamp();
        if self.loaded().stamp == stamp {
            return Ok(());
        }
        let _guard = self.reload.lock().unwrap_or_else(PoisonError::into_inner);
        if self.loaded().stamp == stamp {
            return Ok(());
        }
        let path = self.replica.dir.join(CURRENT_BUNDLE);
        let file = File::open(&path).map_err(io_at(&path))?;
        // The stamp of the file opened (an import may rename another one
        // into place meanwhile: the next request notices that).
        let stamp = file.metadata().map(|m| Stamp::of(&m)).ok().or(stamp);
        let verified = load_verified(file, &self.pinned)?;
        tracing::info!(
            timestamp_version = verified.manifest().timestamp_version,
            "replica state loaded"
        );
        let loaded = Arc::new(Loaded {
            stamp,
            bundle: Some(verified),
        });
        let old = std::mem::replace(
            &mut *self.current.write().unwrap_or_else(PoisonError::into_inner),
            loaded,
        );
        *self
            .previous
            .write()
            .unwrap_or_else(PoisonError::into_inner) = old;
        Ok(())
    }

    fn loaded(&self) -> Arc<Loaded> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// A served file by repository path.
    pub fn file(&self, path: &str) -> Option<Arc<CachedFile>> {
        if let Err(e) = self.refresh() {
            tracing::error!(error = %e, "cannot load the replica's new state; serving the old one");
        }
        if let Some(f) = self.loaded().file(path) {
            return Some(f);
        }
        if path == "metadata/timestamp.json" {
            return None;
        }
        let previous = self
            .previous
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        previous.file(path)
    }

    /// The served timestamp version and window end, if a state is loaded.
    pub fn status(&self) -> (Option<u64>, Option<OffsetDateTime>) {
        let l = self.loaded();
        l.bundle.as_ref().map_or((None, None), |b| {
            (Some(b.manifest().timestamp_version), Some(b.expires()))
        })
    }
}
