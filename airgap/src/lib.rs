//! keyshare-airgap: signed bundles that carry an organization's TUF
//! repository over an air gap.
//!
//! A bundle is one file ([`mod@format`]): a magic line, a signed
//! [`Manifest`] listing every entry's path, length and SHA-256, then the
//! entries' bytes in manifest order. It holds the complete root chain, the
//! bundle edition of timestamp and snapshot (signed at export with the
//! bundle's validity window as their expiry), every targets role and every
//! target file the metadata lists. `docs/airgap.md` explains the design
//! and what an attacker holding an old bundle can do.
//!
//! * [`write_bundle`] writes one (the server's `export` builds the files
//!   with [`walk`] and signs the manifest with the timestamp key);
//! * [`read_bundle`] reads one through once, with bounded memory: it
//!   checks every length the file claims against fixed caps before
//!   reading anything for it, verifies the root chain at the front of the
//!   bundle (holding the pinned root) and the manifest's signature by its
//!   timestamp role as soon as it has read them, then streams the other
//!   entries (copying them where the caller wants, for an importer its
//!   temporary file), hashing each against the manifest;
//! * [`verify`] runs policy's TUF client ([`keyshare_policy::client`])
//!   over the entries, read back one at a time from a [`Source`] (the
//!   bundle file or its copy), from root 1 to the newest root, anchored on
//!   the pinned root (and on what a replica already holds, against
//!   rollback), and checks that the manifest names exactly the verified
//!   metadata; [`open_bundle`] does both. The result, [`VerifiedBundle`],
//!   can only be made by verification; it keeps where each file is, not
//!   the files.
//!
//! Memory: at most about the manifest twice (it may be 16 MiB), one entry
//! (16 MiB) or one batch of delegated roles (16 MiB), and the verified TUF
//! metadata the TUF client keeps, whatever size a bundle claims
//! (`docs/airgap.md`, "Memory").
//!
//! Nothing here reads a clock: `now` is a parameter. The importer with its
//! atomic swap is the server's (`server/src/airgap/`).
//!
//! Tests: `cargo test -p keyshare-airgap` (the container on its own), and
//! `cargo test -p keyshare-server --test 'airgap_*'` (real exports: round
//! trip, every kind of tampering, rollback, expiry, SIGKILL during import,
//! crafted files claiming gigabytes given to the binary under a memory
//! limit).

#![forbid(unsafe_code)]

pub mod format;
mod manifest;
mod verify;

pub use format::{
    read_manifest, write_bundle, Source, SourceReader, MAGIC, MAX_BUNDLE_BYTES, MAX_ENTRY_BYTES,
    MAX_MANIFEST_BYTES,
};
pub use manifest::{Entry, Manifest, MANIFEST_FORMAT, MANIFEST_TYPE};
pub use verify::{
    open_bundle, read_bundle, verify, walk, Anchor, Fetch, RawBundle, VerifiedBundle, Walked,
};

pub use keyshare_policy as policy;

/// Why a bundle was refused. Every message names what is wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading the bundle failed (an IO error, not the content).
    #[error("cannot read the bundle: {0}")]
    Io(#[from] std::io::Error),
    /// Writing the copy of the bundle being read failed.
    #[error("cannot write the copy of the bundle: {0}")]
    Copy(std::io::Error),
    /// The file does not start with the bundle magic line.
    #[error("not a keyshare bundle (the file does not start with `keyshare-bundle/v1`)")]
    NotABundle,
    /// The container's structure is broken: truncated, a manifest length
    /// over the cap, trailing bytes.
    #[error("bundle container: {0}")]
    Container(String),
    /// The manifest does not parse, breaks a rule, or claims more than a
    /// bundle may hold.
    #[error("bundle manifest: {0}")]
    Manifest(String),
    /// An entry's bytes do not match the manifest.
    #[error("bundle entry {path}: {problem}")]
    Entry {
        /// The entry's path.
        path: String,
        /// What is wrong.
        problem: String,
    },
    /// The TUF metadata or a target file in the bundle failed the TUF
    /// client's checks.
    #[error("bundle metadata: {0}")]
    Tuf(#[from] keyshare_policy::Error),
    /// The manifest's signature does not verify against the timestamp
    /// role of the bundle's verified root.
    #[error("bundle manifest signature: {0}")]
    Signature(keyshare_policy::Error),
    /// The bundle's window is over.
    #[error("bundle expired at {expires} (now {now}); export a new one")]
    Expired {
        /// End of the window.
        expires: String,
        /// The time of the check.
        now: String,
    },
    /// The bundle does not lead to the pinned root, or is older than what
    /// the importer already has.
    #[error("bundle refused: {0}")]
    Anchor(String),
    /// The bundle is older than what the importer already has.
    #[error("bundle is older than the state already imported: {what} version {bundle} < {have}")]
    Rollback {
        /// `timestamp`, `snapshot` or `root`.
        what: &'static str,
        /// What the bundle has.
        bundle: u64,
        /// What the importer has.
        have: u64,
    },
}

/// Results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
