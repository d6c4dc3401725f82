//! What the state machines ask of their caller, and what the caller answers.

use crate::ids::RoleName;
use crate::layout::{metadata_name, remote_metadata_name};

/// Where a requested file is read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Source {
    /// The client's own metadata cache, by [`Request::cache_name`]. A
    /// missing, unreadable or invalid cached file is never an error: answer
    /// [`Response::NotFound`] and the machine goes to the repository.
    Local,
    /// The repository, by [`Request::remote_name`].
    Remote,
}

/// One metadata file of the repository, with the version the workflow
/// expects of it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum MetadataFile {
    /// Root version `version` (always fetched by version: `N.root.json`).
    Root {
        /// The version asked for: trusted version + 1.
        version: u64,
    },
    /// The timestamp (always `timestamp.json`).
    Timestamp,
    /// The snapshot the trusted timestamp lists.
    Snapshot {
        /// Version listed by the timestamp.
        version: u64,
    },
    /// The top-level targets role (`role` is `targets`) or a delegated role.
    Targets {
        /// The role's name.
        role: RoleName,
        /// Version listed by the snapshot.
        version: u64,
    },
}

impl MetadataFile {
    /// The role the file holds.
    pub fn role(&self) -> &str {
        match self {
            Self::Root { .. } => RoleName::ROOT,
            Self::Timestamp => RoleName::TIMESTAMP,
            Self::Snapshot { .. } => RoleName::SNAPSHOT,
            Self::Targets { role, .. } => role.as_str(),
        }
    }

    /// The version the workflow expects (none for the timestamp).
    pub fn version(&self) -> Option<u64> {
        match self {
            Self::Root { version } | Self::Snapshot { version } | Self::Targets { version, .. } => {
                Some(*version)
            }
            Self::Timestamp => None,
        }
    }

    /// The file's name in the client's cache: `root.json`, `timestamp.json`,
    /// `snapshot.json`, `targets.json`, `<encoded role>.json` (see [`crate::layout::encode_role`]).
    pub fn cache_name(&self) -> String {
        metadata_name(self.role())
    }

    /// The file's name in the repository's metadata directory.
    ///
    /// Roots are always `N.root.json` and the timestamp always
    /// `timestamp.json`; snapshot and targets roles are `V.<encoded role>.json`
    /// with consistent snapshots and `<encoded role>.json` without.
    pub fn remote_name(&self, consistent_snapshot: bool) -> String {
        remote_metadata_name(self.role(), self.version(), consistent_snapshot)
    }
}

/// A file the caller must read (from its cache) or fetch (from the
/// repository), then give to the machine's `answer`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    file: MetadataFile,
    source: Source,
    max_length: u64,
    consistent_snapshot: bool,
}

impl Request {
    pub(crate) fn new(
        file: MetadataFile,
        source: Source,
        max_length: u64,
        consistent_snapshot: bool,
    ) -> Self {
        Self {
            file,
            source,
            max_length,
            consistent_snapshot,
        }
    }

    /// The file asked for.
    pub fn file(&self) -> &MetadataFile {
        &self.file
    }

    /// The role the file holds.
    pub fn role(&self) -> &str {
        self.file.role()
    }

    /// Cache or repository.
    pub fn source(&self) -> Source {
        self.source
    }

    /// True for a read of the client's cache.
    pub fn is_local(&self) -> bool {
        self.source == Source::Local
    }

    /// The most bytes the file may have.
    ///
    /// A transport should stop reading after `max_length + 1` bytes (the
    /// endless-data defence) and hand over what it read: the machine refuses
    /// anything longer than `max_length` with [`crate::Error::Oversized`]
    /// before parsing it.
    pub fn max_length(&self) -> u64 {
        self.max_length
    }

    /// The name in the repository, following the trusted root's
    /// `consistent_snapshot` (see [`MetadataFile::remote_name`]).
    pub fn remote_name(&self) -> String {
        self.file.remote_name(self.consistent_snapshot)
    }

    /// The name in the client's cache (see [`MetadataFile::cache_name`]).
    pub fn cache_name(&self) -> String {
        self.file.cache_name()
    }

    /// The name to read: [`Self::cache_name`] for [`Source::Local`],
    /// [`Self::remote_name`] for [`Source::Remote`].
    pub fn file_name(&self) -> String {
        match self.source {
            Source::Local => self.cache_name(),
            Source::Remote => self.remote_name(),
        }
    }
}

/// The caller's answer to a [`Request`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Response {
    /// The file's bytes (at most `max_length + 1` of them).
    Bytes(Vec<u8>),
    /// No such file: HTTP 404 or 403, a missing file in a directory or a
    /// bundle. For a [`Source::Local`] read, any failure to read.
    NotFound,
}

impl From<Option<Vec<u8>>> for Response {
    fn from(bytes: Option<Vec<u8>>) -> Self {
        bytes.map_or(Self::NotFound, Self::Bytes)
    }
}

/// A change the caller must make to its metadata cache.
///
/// Writes should be atomic (write a temporary file, then rename), so that an
/// interrupted write never leaves a truncated file behind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CacheOp {
    /// Write `bytes` as `name` (a [`MetadataFile::cache_name`]).
    Store {
        /// The cache file name.
        name: String,
        /// The verified bytes, exactly as received.
        bytes: Vec<u8>,
    },
    /// Remove `name` from the cache; a missing file is fine.
    Delete {
        /// The cache file name.
        name: String,
    },
}

impl CacheOp {
    /// The cache file the operation is about.
    pub fn name(&self) -> &str {
        match self {
            Self::Store { name, .. } | Self::Delete { name } => name,
        }
    }
}

/// What a machine wants next; `T` is what it ends with.
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub enum Step<T> {
    /// Read or fetch this file, then call `answer`.
    Fetch(Request),
    /// Apply this change to the cache, then call `poll` again.
    Cache(CacheOp),
    /// Finished. Polling again returns the same.
    Done(T),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_remote_names_follow_consistent_snapshot() {
        let role = |r: &str| MetadataFile::Targets {
            role: RoleName::new(r),
            version: 7,
        };
        assert_eq!(
            MetadataFile::Root { version: 3 }.remote_name(false),
            "3.root.json"
        );
        assert_eq!(MetadataFile::Timestamp.remote_name(true), "timestamp.json");
        assert_eq!(
            MetadataFile::Snapshot { version: 5 }.remote_name(true),
            "5.snapshot.json"
        );
        assert_eq!(
            MetadataFile::Snapshot { version: 5 }.remote_name(false),
            "snapshot.json"
        );
        assert_eq!(role("targets").remote_name(true), "7.targets.json");
        assert_eq!(role("ns/team a").remote_name(true), "7.ns%2Fteam%20a.json");
        assert_eq!(role("ns/team a").remote_name(false), "ns%2Fteam%20a.json");
    }

    #[test]
    fn client_cache_names_have_no_version() {
        assert_eq!(MetadataFile::Root { version: 9 }.cache_name(), "root.json");
        assert_eq!(MetadataFile::Timestamp.cache_name(), "timestamp.json");
        assert_eq!(
            MetadataFile::Snapshot { version: 2 }.cache_name(),
            "snapshot.json"
        );
        let t = MetadataFile::Targets {
            role: RoleName::new("a/b"),
            version: 2,
        };
        assert_eq!(t.cache_name(), "a%2Fb.json");
        assert_eq!(t.role(), "a/b");
        assert_eq!(t.version(), Some(2));
    }
}
