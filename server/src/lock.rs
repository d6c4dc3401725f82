//! One writer per data directory.
//!
//! Every `keyshare-server` command that writes a data directory (`init`,
//! `serve`, `export`, `init --replica`, `import`, and `publish --to` when
//! nothing else holds the directory) first takes an exclusive advisory lock
//! (`flock(2)`) on `DIR/keyshare.lock`, and keeps it until it exits: `serve`
//! for its whole life. The holder writes one line into the file saying who
//! it is (the command, its pid, and for `serve` the address it listens on),
//! so a second writer refuses at once with one line naming it, instead of
//! publishing versions the first one also publishes. The kernel releases
//! the lock when the process ends, however it ends (SIGKILL included): a
//! crashed server never leaves a stale lock behind. A holder that exits
//! normally removes the file before it releases the lock, so the file
//! exists while a process holds it (one killed leaves it behind, unlocked:
//! the next writer takes it over). A lock taken on a file that was removed
//! meanwhile is not a lock, so [`DataDirLock::acquire`] checks that the
//! path still names the file it locked, and tries again if not.
//!
//! The lock binds `keyshare-server` processes only (it is advisory):
//! another program opening `keyshare.db` is not stopped by it. `serve
//! --replica` takes no lock: it only reads, and imports run next to it.
//!
//! `flock(2)` comes from `rustix` (already in the build through
//! `tempfile`); the standard library's `File::try_lock` needs a newer Rust
//! than the workspace's declared `rust-version`.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::{flock, FlockOperation};

use crate::data_dir::LOCK_FILE;

/// At most this much of a holder's line is read (and shown).
const HOLDER_MAX: u64 = 256;

/// How often [`DataDirLock::acquire`] tries again when the lock file was
/// replaced while it locked it.
const ATTEMPTS: usize = 8;

/// Why the data directory could not be locked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LockError {
    /// Another process holds the lock.
    #[error("{} is in use by {holder}", dir.display())]
    Held {
        /// The data directory.
        dir: PathBuf,
        /// Who holds it, as the holder described itself (one line).
        holder: String,
    },
    /// The lock file could not be opened or locked.
    #[error("cannot lock {}: {source}", path.display())]
    Io {
        /// The lock file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
}

/// The exclusive lock on a data directory, held until dropped (or the
/// process ends).
#[derive(Debug)]
pub struct DataDirLock {
    file: File,
    path: PathBuf,
    command: String,
}

impl DataDirLock {
    /// Takes the lock on `dir` (which must exist) for `keyshare-server
    /// <command>`, without waiting: [`LockError::Held`] names the holder
    /// when another process has it.
    pub fn acquire(dir: &Path, command: &str) -> Result<Self, LockError> {
        let path = dir.join(LOCK_FILE);
        let io_err = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        for _ in 0..ATTEMPTS {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(&path)
                .map_err(io_err)?;
            if let Some(lock) = Self::lock_opened(file, dir, command)? {
                return Ok(lock);
            }
        }
        Err(io_err(io::Error::other(
            "the lock file keeps being replaced while it is locked",
        )))
    }

    /// Locks `file`, opened as `dir`'s lock file; `None` when the path no
    /// longer names it (the holder before removed it between the open and
    /// the lock: a lock on it would be a lock nobody else takes).
    fn lock_opened(file: File, dir: &Path, command: &str) -> Result<Option<Self>, LockError> {
        let path = dir.join(LOCK_FILE);
        let io_err = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        match flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(e) if e == rustix::io::Errno::WOULDBLOCK => {
                return Err(LockError::Held {
                    dir: dir.to_owned(),
                    holder: read_holder(&file),
                });
            }
            Err(e) => return Err(io_err(e.into())),
        }
        let locked = file.metadata().map_err(io_err)?;
        let named = match fs::metadata(&path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(e)),
        };
        if (locked.dev(), locked.ino()) != (named.dev(), named.ino()) {
            return Ok(None);
        }
        let lock = Self {
            file,
            path: path.clone(),
            command: command.to_owned(),
        };
        lock.describe(None).map_err(io_err)?;
        Ok(Some(lock))
    }

    /// Records, for a process that finds the directory locked, what the
    /// holder is doing besides its command and pid (`serve`: the address it
    /// listens on, `listening on http://127.0.0.1:8439`).
    pub fn set_detail(&self, detail: &str) -> Result<(), LockError> {
        self.describe(Some(detail)).map_err(|source| LockError::Io {
            path: self.path.clone(),
            source,
        })
    }

    fn describe(&self, detail: Option<&str>) -> io::Result<()> {
        let pid = std::process::id();
        let line = match detail {
            Some(d) => format!("keyshare-server {} (pid {pid}, {d})\n", self.command),
            None => format!("keyshare-server {} (pid {pid})\n", self.command),
        };
        self.file.set_len(0)?;
        self.file.write_all_at(line.as_bytes(), 0)
    }
}

impl Drop for DataDirLock {
    /// Removes the file, then releases the lock (closing the file). A
    /// process that opened the file meanwhile finds, once it has locked
    /// it, that the path no longer names it, and starts again.
    fn drop(&mut self) {
        // Best effort: a file left behind is taken over by the next writer.
        let _ = fs::remove_file(&self.path);
    }
}

/// The holder's line, printable characters only; a holder that has not
/// written it yet is "another keyshare-server process".
fn read_holder(mut file: &File) -> String {
    let mut bytes = Vec::new();
    let _ = file.by_ref().take(HOLDER_MAX).read_to_end(&mut bytes);
    let text = String::from_utf8_lossy(&bytes);
    let line: String = text
        .split(['\n', '\r'])
        .next()
        .unwrap_or_default()
        .chars()
        .filter(|c| !c.is_control())
        .collect();
    let line = line.trim();
    if line.is_empty() {
        "another keyshare-server process".to_owned()
    } else {
        line.to_owned()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use super::*;

    #[test]
    fn a_second_lock_on_the_same_directory_is_refused_naming_the_holder() {
        let tmp = tempfile::tempdir().unwrap();
        let first = DataDirLock::acquire(tmp.path(), "serve").unwrap();
        first
            .set_detail("listening on http://127.0.0.1:8439")
            .unwrap();
        // flock(2) locks belong to the open file: a second open in the same
        // process conflicts just as another process would.
        match DataDirLock::acquire(tmp.path(), "export") {
            Err(LockError::Held { dir, holder }) => {
                assert_eq!(dir, tmp.path());
                assert_eq!(
                    holder,
                    format!(
                        "keyshare-server serve (pid {}, listening on http://127.0.0.1:8439)",
                        std::process::id()
                    )
                );
            }
            other => panic!("{other:?}"),
        }
        drop(first);
        let again = DataDirLock::acquire(tmp.path(), "export").unwrap();
        drop(again);
        assert!(
            !tmp.path().join(LOCK_FILE).exists(),
            "a holder that exits removes the file"
        );
    }

    #[test]
    fn a_lock_file_left_by_a_killed_holder_is_taken_over() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(
            tmp.path().join(LOCK_FILE),
            "keyshare-server serve (pid 1, listening on http://127.0.0.1:8439)\n",
        )
        .unwrap();
        let lock = DataDirLock::acquire(tmp.path(), "export").unwrap();
        assert_eq!(
            std::fs::read_to_string(tmp.path().join(LOCK_FILE)).unwrap(),
            format!("keyshare-server export (pid {})\n", std::process::id())
        );
        drop(lock);
    }

    #[test]
    fn a_lock_file_removed_between_open_and_lock_is_not_taken_as_the_lock() {
        let tmp = tempfile::tempdir().unwrap();
        let first = DataDirLock::acquire(tmp.path(), "init").unwrap();
        // A second process opened the file while `init` held it ...
        let stale = OpenOptions::new()
            .read(true)
            .write(true)
            .open(tmp.path().join(LOCK_FILE))
            .unwrap();
        // ... `init` exited, removing the file ...
        drop(first);
        assert!(!tmp.path().join(LOCK_FILE).exists());
        // ... and a third process took the lock on a new file.
        let third = DataDirLock::acquire(tmp.path(), "serve").unwrap();
        // The second can lock the file it opened, but that is not the lock.
        assert!(DataDirLock::lock_opened(stale, tmp.path(), "export")
            .unwrap()
            .is_none());
        // Trying again from the start, it finds the third holding the lock.
        let Err(LockError::Held { holder, .. }) = DataDirLock::acquire(tmp.path(), "export") else {
            panic!("not refused")
        };
        assert!(holder.starts_with("keyshare-server serve "), "{holder}");
        drop(third);
    }

    #[test]
    fn a_holder_line_with_control_characters_is_shown_as_one_plain_line() {
        let tmp = tempfile::tempdir().unwrap();
        let held = DataDirLock::acquire(tmp.path(), "serve").unwrap();
        std::fs::write(
            tmp.path().join(LOCK_FILE),
            format!("evil\x1b[2J holder\rmore\nsecond line{}", "x".repeat(1000)),
        )
        .unwrap();
        let Err(LockError::Held { holder, .. }) = DataDirLock::acquire(tmp.path(), "init") else {
            panic!("not refused")
        };
        assert_eq!(holder, "evil[2J holder");
        std::fs::write(tmp.path().join(LOCK_FILE), "").unwrap();
        let Err(e) = DataDirLock::acquire(tmp.path(), "init") else {
            panic!("not refused")
        };
        assert!(
            e.to_string()
                .ends_with("is in use by another keyshare-server process"),
            "{e}"
        );
        drop(held);
    }
}
