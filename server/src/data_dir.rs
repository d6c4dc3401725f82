//! The data directory: what lives where in it, and the one way the server
//! replaces a file ([`write_atomically`]), in the data directory and in
//! the directories it writes for others (`publish --to`, `export --out`).
//!
//! ```text
//! DIR/keyshare.toml            configuration (CONFIG_FILE)
//! DIR/keyshare.db (-wal, -shm) the SQLite store (DB_NAME)
//! DIR/keys/                    online keys, the root key, ci-secret (KEYS_DIR)
//! DIR/keyshare.lock            one writer at a time (LOCK_FILE)
//! DIR/replica/                 an air-gap replica instead (REPLICA_DIR):
//!     pinned-root.json         the root pinned at `init --replica`
//!     current.bundle           the bundle last imported
//! ```
//!
//! On the ground floor of `server/src`: it imports nothing from the crate.
//! Its errors carry the path; callers wrap them in their own.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The configuration file's name inside the data directory.
pub const CONFIG_FILE: &str = "keyshare.toml";
/// The SQLite store's file name inside the data directory.
pub const DB_NAME: &str = "keyshare.db";
/// The keys directory's name inside the data directory.
pub const KEYS_DIR: &str = "keys";
/// The lock file's name inside the data directory.
pub const LOCK_FILE: &str = "keyshare.lock";
/// The replica's directory inside the data directory.
pub const REPLICA_DIR: &str = "replica";
/// The pinned root, in the replica directory.
pub const PINNED_ROOT: &str = "pinned-root.json";
/// The current bundle, in the replica directory.
pub const CURRENT_BUNDLE: &str = "current.bundle";

/// The paths of one data directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DataDir<'a>(&'a Path);

impl<'a> DataDir<'a> {
    /// The data directory at `path`.
    pub fn new(path: &'a Path) -> Self {
        Self(path)
    }

    /// The directory itself.
    pub fn path(&self) -> &'a Path {
        self.0
    }

    /// `keyshare.toml`.
    pub fn config(&self) -> PathBuf {
        self.0.join(CONFIG_FILE)
    }

    /// `keyshare.db`.
    pub fn db(&self) -> PathBuf {
        self.0.join(DB_NAME)
    }

    /// `keys/`.
    pub fn keys(&self) -> PathBuf {
        self.0.join(KEYS_DIR)
    }

    /// `keyshare.lock`.
    pub fn lock(&self) -> PathBuf {
        self.0.join(LOCK_FILE)
    }

    /// `replica/`.
    pub fn replica(&self) -> PathBuf {
        self.0.join(REPLICA_DIR)
    }
}

/// A file operation failed; names the file.
#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", path.display())]
pub struct WriteError {
    /// The file or directory.
    pub path: PathBuf,
    /// Why.
    #[source]
    pub source: io::Error,
}

fn at(path: &Path) -> impl FnOnce(io::Error) -> WriteError + '_ {
    move |source| WriteError {
        path: path.to_owned(),
        source,
    }
}

/// Creates `path` (which must not exist) with `mode`, writes `bytes` and
/// syncs it.
pub fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), WriteError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(at(path))?;
    file.write_all(bytes).map_err(at(path))?;
    file.sync_all().map_err(at(path))
}

/// Replaces `path` with `bytes` (file mode `mode`): see
/// [`write_atomically_with`].
pub fn write_atomically(path: &Path, bytes: &[u8], mode: u32) -> Result<(), WriteError> {
    write_atomically_with(path, mode, |mut file, tmp| {
        file.write_all(bytes).map_err(at(tmp))
    })
}

/// Replaces `path` with what `write` puts into a temporary file next to it
/// (`.NAME.tmp-PID`, created with `mode`, open for reading and writing):
/// then syncs the file, renames it over `path` and syncs the directory.
/// Readers see the old file or the new one, never a part; a crash leaves
/// the old file (and perhaps a temporary one, see
/// [`remove_temporaries`]). When `write` or any step fails, the temporary
/// file is removed and `path` is untouched. `write` gets the file and its
/// path (for errors), and may refuse by returning an error.
pub fn write_atomically_with<T, E: From<WriteError>>(
    path: &Path,
    mode: u32,
    write: impl FnOnce(&File, &Path) -> Result<T, E>,
) -> Result<T, E> {
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let Some(name) = path.file_name() else {
        return Err(WriteError {
            path: path.to_owned(),
            source: io::Error::new(io::ErrorKind::InvalidInput, "not a file name"),
        }
        .into());
    };
    let tmp = parent.join(format!(
        ".{}{TMP_INFIX}{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    // A leftover of a process with the same id that was killed.
    let _ = fs::remove_file(&tmp);
    let result = (|| {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)
            .map_err(at(&tmp))?;
        let value = write(&file, &tmp)?;
        file.sync_all().map_err(at(&tmp))?;
        fs::rename(&tmp, path).map_err(at(path))?;
        File::open(parent)
            .and_then(|d| d.sync_all())
            .map_err(at(parent))?;
        Ok(value)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// What every temporary file's name holds, between `.NAME` and the id of
/// the process that wrote it.
const TMP_INFIX: &str = ".tmp-";

/// Removes the temporary files killed writers left in `dir` (best effort),
/// and the `.import-*` ones of earlier versions.
pub fn remove_temporaries(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') && name.contains(TMP_INFIX) || name.starts_with(".import-") {
            let _ = fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn an_atomic_write_replaces_the_file_with_its_mode_and_leaves_no_temporary() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("a.json");
        fs::write(&path, "old").unwrap();
        write_atomically(&path, b"new", 0o600).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(names(tmp.path()), ["a.json"]);
    }

    #[test]
    fn a_refused_atomic_write_leaves_the_old_file_and_no_temporary() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("a.json");
        fs::write(&path, "old").unwrap();
        let e = write_atomically_with(&path, 0o644, |mut file, _| {
            file.write_all(b"half").unwrap();
            Err::<(), _>(WriteError {
                path: path.clone(),
                source: io::Error::other("refused"),
            })
        })
        .unwrap_err();
        assert_eq!(e.to_string(), format!("{}: refused", path.display()));
        assert_eq!(fs::read(&path).unwrap(), b"old");
        assert_eq!(names(tmp.path()), ["a.json"]);
    }

    #[test]
    fn an_atomic_write_into_a_missing_directory_names_the_temporary_file() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("missing/a.json");
        let e = write_atomically(&path, b"x", 0o644).unwrap_err();
        let expected = format!(".a.json.tmp-{}", std::process::id());
        assert_eq!(e.path, tmp.path().join("missing").join(expected));
    }

    #[test]
    fn leftover_temporaries_are_removed_and_nothing_else() {
        let tmp = tempfile::tempdir().unwrap();
        for name in [
            ".current.bundle.tmp-12",
            ".import-7-x",
            "current.bundle",
            ".hidden",
        ] {
            fs::write(tmp.path().join(name), "x").unwrap();
        }
        remove_temporaries(tmp.path());
        assert_eq!(names(tmp.path()), [".hidden", "current.bundle"]);
    }
}
