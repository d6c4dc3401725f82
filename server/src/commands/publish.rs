//! `keyshare-server publish --to OUT`: the repository as static files.

use std::fs;
use std::io::{self, Write};
use std::path::Path;

use super::{
    io_at, open_publisher, open_publisher_alongside, report, require_repository, CliError,
    OutputFormat,
};
use crate::config::{Config, Flags};
use crate::lock::{DataDirLock, LockError};

/// What `publish` wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Published {
    /// Files written (new or, for `timestamp.json`, changed).
    pub written: usize,
    /// Files already present with the same bytes.
    pub unchanged: usize,
}

/// `publish --to OUT [--output json]`: [`publish`], then prints what it
/// wrote as `format` asks.
pub fn publish_cmd(
    dir: &Path,
    out_dir: &Path,
    format: OutputFormat,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let published = publish(dir, out_dir)?;
    let value = serde_json::json!({
        "to": out_dir,
        "written": published.written,
        "unchanged": published.unchanged,
    });
    report(out, format, &value, || {
        format!(
            "published to {}: {} file(s) written, {} unchanged",
            out_dir.display(),
            published.written,
            published.unchanged
        )
    })
}

/// `publish --to OUT`: writes the current consistent-snapshot tree into
/// `out_dir` for a static file server.
///
/// Every file is written to a temporary name and renamed into place, and
/// `metadata/timestamp.json` is written last, so a client reading `OUT`
/// meanwhile sees either the old or the new repository, never a timestamp
/// that points at missing files. Files already present with the same bytes
/// are left alone (running it twice changes nothing); an immutable file
/// present with other bytes is an error (`OUT` holds another repository).
/// Old versions already in `OUT` are kept.
pub fn publish(dir: &Path, out_dir: &Path) -> Result<Published, CliError> {
    let config = Config::load(dir, &Flags::default())?;
    require_repository(dir, &config)?;
    // Alone, publish may write the store (a migration, documents to bring
    // to their current shape); next to a running server (or another
    // writer), it only reads what that one published.
    let lock = match DataDirLock::acquire(dir, "publish") {
        Ok(lock) => Some(lock),
        Err(LockError::Held { .. }) => None,
        Err(LockError::Io { path, source }) => return Err(CliError::Io { path, source }),
    };
    let publisher = match &lock {
        Some(lock) => open_publisher(dir, &config, lock)?,
        None => open_publisher_alongside(dir, &config)?,
    };
    let mut files = publisher.current_files()?;
    // Immutable files first, timestamp.json last.
    files.sort_by_key(|f| !f.immutable);
    let mut done = Published::default();
    for file in &files {
        let relative = safe_relative(&file.path)?;
        let path = out_dir.join(relative);
        match fs::read(&path) {
            Ok(existing) if existing.as_slice() == &*file.bytes => {
                done.unchanged += 1;
                continue;
            }
            Ok(_) if file.immutable => {
                return Err(CliError::Other(format!(
                    "{} exists with different content: {} holds another repository",
                    path.display(),
                    out_dir.display()
                )));
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_at(&path)(e)),
        }
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(io_at(parent))?;
        }
        keyshare_fsio::write_atomically(&path, &file.bytes, 0o644)?;
        done.written += 1;
    }
    Ok(done)
}

/// Refuses paths that could leave the output directory.
fn safe_relative(path: &str) -> Result<&Path, CliError> {
    let p = Path::new(path);
    let ok = !path.is_empty()
        && p.components()
            .all(|c| matches!(c, std::path::Component::Normal(_)));
    if ok {
        Ok(p)
    } else {
        Err(CliError::Other(format!(
            "refusing to write unsafe path {path:?}"
        )))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::commands::init;

    #[test]
    fn unsafe_paths_are_refused() {
        assert!(safe_relative("metadata/1.root.json").is_ok());
        for bad in ["", "/etc/passwd", "../x", "metadata/../../x", "./x"] {
            assert!(safe_relative(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn init_then_publish_twice_is_idempotent() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        let mut out = Vec::new();
        init(&dir, None, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("root sha256: "), "{text}");
        let e = init(&dir, None, &mut Vec::new()).unwrap_err().to_string();
        assert!(e.contains("already holds a repository"), "{e}");

        let to = tmp.path().join("out");
        let first = publish(&dir, &to).unwrap();
        assert!(first.written > 0 && first.unchanged == 0, "{first:?}");
        let second = publish(&dir, &to).unwrap();
        assert_eq!(second.written, 0, "{second:?}");
        assert_eq!(second.unchanged, first.written);
        assert!(to.join("metadata/timestamp.json").is_file());
    }
}
