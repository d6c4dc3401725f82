//! keyshare-fsio: the one way keyshare writes a file that must survive a
//! crash, for every crate that writes files (the server's data directory,
//! the directories it publishes and exports into, the client's caches and
//! exports, key files).
//!
//! - [`write_atomically`] and [`write_atomically_with`] replace a file:
//!   a temporary file next to it (`.NAME.tmp-PID-N`, created with the
//!   given mode), synced, renamed over the file, then the directory synced.
//!   Readers see the old file or the new one, never a part.
//! - [`write_atomically_unsynced`] is the same rename without the syncs,
//!   for files whose content is checked when read (content-addressed
//!   caches): a crash may lose them, never half-write them.
//! - [`write_new`] creates a file that must not exist yet (key files,
//!   secrets, a first configuration), synced with its directory.
//! - [`remove_temporaries`] removes what killed writers left behind.
//!
//! Modes (`0o600` for secrets) apply on Unix, where they are subject to
//! the umask as for any new file; elsewhere they are ignored.
//!
//! At the bottom of the workspace: it depends on no keyshare crate, and
//! `keyshare-policy` stays free of IO. Errors name the file
//! ([`Error`]); callers map them into their own.

#![forbid(unsafe_code)]

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A file operation failed; names the file or directory.
#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", path.display())]
pub struct Error {
    /// The file or directory.
    pub path: PathBuf,
    /// Why.
    #[source]
    pub source: io::Error,
}

/// The error-mapping closure for `path`: `.map_err(fsio::at(path))`.
pub fn at(path: &Path) -> impl FnOnce(io::Error) -> Error + '_ {
    move |source| Error {
        path: path.to_owned(),
        source,
    }
}

fn open_options(mode: u32) -> OpenOptions {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    options
}

/// The directory `path` is in (`.` for a bare file name).
fn parent_of(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Syncs directory `dir`, so a rename or a new entry in it survives a
/// crash. A no-op where directories cannot be opened (not Unix).
pub fn sync_dir(dir: &Path) -> Result<(), Error> {
    #[cfg(unix)]
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(at(dir))?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Creates `path` (which must not exist) with `mode`, writes `bytes`,
/// syncs it and its directory.
pub fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), Error> {
    let mut file = open_options(mode).open(path).map_err(at(path))?;
    file.write_all(bytes).map_err(at(path))?;
    file.sync_all().map_err(at(path))?;
    sync_dir(parent_of(path))
}

/// Replaces `path` with `bytes` (file mode `mode`): see
/// [`write_atomically_with`].
pub fn write_atomically(path: &Path, bytes: &[u8], mode: u32) -> Result<(), Error> {
    write_atomically_with(path, mode, |mut file, tmp| {
        file.write_all(bytes).map_err(at(tmp))
    })
}

/// Replaces `path` with `bytes` (file mode `mode`) by a rename, without
/// syncing the file or the directory: readers see the old file or the new
/// one, but a crash may leave either (or, on some file systems, an empty
/// one). Only for files whose content is checked when read, such as a
/// cache keyed by the content's hash.
pub fn write_atomically_unsynced(path: &Path, bytes: &[u8], mode: u32) -> Result<(), Error> {
    replace(path, mode, Sync::No, |mut file, tmp| {
        file.write_all(bytes).map_err(at(tmp))
    })
}

/// Replaces `path` with what `write` puts into a temporary file next to it
/// (`.NAME.tmp-PID-N`, created with `mode`, open for reading and writing):
/// then syncs the file, renames it over `path` and syncs the directory.
/// Readers see the old file or the new one, never a part; a crash leaves
/// the old file (and perhaps a temporary one, see
/// [`remove_temporaries`]). When `write` or any step fails, the temporary
/// file is removed and `path` is untouched. `write` gets the file and its
/// path (for errors), and may refuse by returning an error. Writers in
/// one process, even of the same `path`, never share a temporary file.
pub fn write_atomically_with<T, E: From<Error>>(
    path: &Path,
    mode: u32,
    write: impl FnOnce(&File, &Path) -> Result<T, E>,
) -> Result<T, E> {
    replace(path, mode, Sync::Yes, write)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Sync {
    Yes,
    No,
}

/// Numbers the temporary files of one process.
static NEXT_TMP: AtomicU64 = AtomicU64::new(0);

fn replace<T, E: From<Error>>(
    path: &Path,
    mode: u32,
    sync: Sync,
    write: impl FnOnce(&File, &Path) -> Result<T, E>,
) -> Result<T, E> {
    let parent = parent_of(path);
    let Some(name) = path.file_name() else {
        return Err(Error {
            path: path.to_owned(),
            source: io::Error::new(io::ErrorKind::InvalidInput, "not a file name"),
        }
        .into());
    };
    let tmp = parent.join(format!(
        ".{}{TMP_INFIX}{}-{}",
        name.to_string_lossy(),
        std::process::id(),
        NEXT_TMP.fetch_add(1, Ordering::Relaxed)
    ));
    // A leftover of a killed process that had the same id (no writer of
    // this process uses the name).
    let _ = fs::remove_file(&tmp);
    let result = (|| {
        let file = open_options(mode).read(true).open(&tmp).map_err(at(&tmp))?;
        let value = write(&file, &tmp)?;
        if sync == Sync::Yes {
            file.sync_all().map_err(at(&tmp))?;
        }
        drop(file);
        fs::rename(&tmp, path).map_err(at(path))?;
        if sync == Sync::Yes {
            sync_dir(parent)?;
        }
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
/// and the `.import-*` ones of earlier versions of the server. Only for
/// directories with one writer at a time: another writer's temporary file
/// would be removed under it.
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

#[cfg(all(test, unix))]
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

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn an_atomic_write_replaces_the_file_with_its_mode_and_leaves_no_temporary() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("a.json");
        fs::write(&path, "old").unwrap();
        write_atomically(&path, b"new", 0o600).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
        assert_eq!(mode(&path), 0o600);
        assert_eq!(names(tmp.path()), ["a.json"]);
    }

    #[test]
    fn an_unsynced_atomic_write_replaces_the_file_with_its_mode_and_leaves_no_temporary() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("a.json");
        fs::write(&path, "old").unwrap();
        write_atomically_unsynced(&path, b"new", 0o600).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
        assert_eq!(mode(&path), 0o600);
        assert_eq!(names(tmp.path()), ["a.json"]);
    }

    #[test]
    fn a_refused_atomic_write_leaves_the_old_file_and_no_temporary() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("a.json");
        fs::write(&path, "old").unwrap();
        let e = write_atomically_with(&path, 0o644, |mut file, _| {
            file.write_all(b"half").unwrap();
            Err::<(), _>(Error {
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
        assert_eq!(e.path.parent(), Some(tmp.path().join("missing").as_path()));
        let name = e.path.file_name().unwrap().to_string_lossy().into_owned();
        let expected = format!(".a.json.tmp-{}-", std::process::id());
        assert!(name.starts_with(&expected), "{name}");
    }

    #[test]
    fn writers_of_one_file_on_several_threads_never_mix() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("a.json");
        std::thread::scope(|s| {
            for i in 0..8u8 {
                let path = &path;
                s.spawn(move || {
                    for _ in 0..20 {
                        write_atomically(path, &[i; 4096], 0o600).unwrap();
                    }
                });
            }
        });
        let bytes = fs::read(&path).unwrap();
        assert_eq!(bytes.len(), 4096);
        assert!(bytes.iter().all(|b| Some(b) == bytes.first()));
        assert_eq!(names(tmp.path()), ["a.json"]);
    }

    #[test]
    fn a_new_file_gets_its_mode_and_an_existing_one_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("secret");
        write_new(&path, b"one", 0o600).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"one");
        assert_eq!(mode(&path), 0o600);
        let e = write_new(&path, b"two", 0o600).unwrap_err();
        assert_eq!(e.path, path);
        assert_eq!(e.source.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read(&path).unwrap(), b"one");
    }

    #[test]
    fn leftover_temporaries_are_removed_and_nothing_else() {
        let tmp = tempfile::tempdir().unwrap();
        for name in [
            ".current.bundle.tmp-12",
            ".current.bundle.tmp-12-3",
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
