//! The air-gap commands of `keyshare-server`: `export`, `import`,
//! `init --replica` and `serve --replica`.
//!
//! `export`, `import` and `init --replica` hold the data directory's lock
//! ([`crate::lock`]) while they run; `serve --replica` only reads and takes
//! none, so imports run next to it.

use std::fs;
use std::io::{self, IsTerminal, Write};
use std::path::Path;
use std::sync::Arc;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use time::OffsetDateTime;

use keyshare_policy::datetime::rfc3339;

use super::{
    init_data_dir, init_logging, lock_data_dir, open_publisher, report, require_repository,
    serve_until_stopped, shutdown_signal, CliError, Listening, OutputFormat,
};
use crate::airgap::{export, ExportLimits, Replica, ReplicaFiles};
use crate::config::{Config, Flags};

/// A byte progress bar on stderr, only when stderr is a terminal; drawn
/// from the first report on (when the total is known).
struct Progress {
    bar: Option<ProgressBar>,
    enabled: bool,
    what: &'static str,
}

impl Progress {
    fn new(what: &'static str) -> Self {
        Self {
            bar: None,
            enabled: io::stderr().is_terminal(),
            what,
        }
    }

    fn update(&mut self, done: u64, total: u64) {
        if !self.enabled {
            return;
        }
        let what = self.what;
        let bar = self.bar.get_or_insert_with(|| {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            if let Ok(style) =
                ProgressStyle::with_template("{msg} [{bar:40}] {bytes}/{total_bytes} {eta}")
            {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_message(what);
            bar
        });
        bar.set_position(done);
    }

    fn finish(self) {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}

/// What `export` says when a server (or another writer) holds the data
/// directory.
const EXPORT_IN_USE: &str = "export through the running server instead: POST /api/v1/export \
     with an org-admin token (docs/airgap.md#export)";

/// `export --out FILE [--valid-for DURATION] [--force]`: writes a bundle of
/// the repository in `dir` to `out` (through a temporary file, so a failed
/// export leaves nothing behind). Refuses an existing `FILE` unless
/// `force`, before anything is signed; refuses a data directory another
/// process holds (a running `serve`: export through it).
pub fn export_cmd(
    dir: &Path,
    out_path: &Path,
    valid_for: Option<&str>,
    force: bool,
    format: OutputFormat,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let config = Config::load(dir, &Flags::default())?;
    let window = ExportLimits::from_config(&config).window(valid_for)?;
    refuse_existing(out_path, force)?;
    require_repository(dir, &config)?;
    let lock = lock_data_dir(dir, "export", EXPORT_IN_USE)?;
    let publisher = open_publisher(dir, &config, &lock)?;
    let mut progress = Progress::new("exporting");
    let result = keyshare_fsio::write_atomically_with(out_path, 0o644, |file, tmp| {
        let mut writer = io::BufWriter::new(file);
        let exported = export(
            &publisher,
            "cli:export",
            window,
            OffsetDateTime::now_utc(),
            &mut writer,
            &mut |done, total| progress.update(done, total),
        )?;
        writer.flush().map_err(|source| CliError::Io {
            path: tmp.to_owned(),
            source,
        })?;
        // Again: the file may have appeared while the bundle was written.
        refuse_existing(out_path, force)?;
        Ok::<_, CliError>(exported)
    });
    progress.finish();
    let exported = result?;
    let value = serde_json::json!({
        "file": out_path,
        "entries": exported.entries,
        "bytes": exported.bytes,
        "timestamp_version": exported.timestamp_version,
        "expires": rfc3339(exported.expires),
    });
    report(out, format, &value, || {
        format!(
            "exported {}: {} entries, {} bytes, timestamp version {}, valid until {}",
            out_path.display(),
            exported.entries,
            exported.bytes,
            exported.timestamp_version,
            rfc3339(exported.expires)
        )
    })
}

/// Refuses to replace `path` unless `force`.
fn refuse_existing(path: &Path, force: bool) -> Result<(), CliError> {
    if !force && path.symlink_metadata().is_ok() {
        return Err(CliError::Other(format!(
            "{} exists; refusing to overwrite it (choose another --out, or pass --force to replace it)",
            path.display()
        )));
    }
    Ok(())
}

/// `init --replica --root FILE`: makes `dir` a replica pinned to the root
/// in `root_path`. The directory is created with mode 0700 (an existing
/// one loses group and other access) and locked while it is set up
/// (`super::init_data_dir`).
pub fn init_replica(
    dir: &Path,
    root_path: &Path,
    format: OutputFormat,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let root = fs::read(root_path).map_err(|source| CliError::Io {
        path: root_path.to_owned(),
        source,
    })?;
    let (version, sha256) = init_data_dir(dir, "init --replica", || {
        Replica::init(dir, &root).map_err(CliError::from)
    })?;
    let value = serde_json::json!({
        "data_dir": dir,
        "replica": true,
        "root_version": version,
        "root_sha256": sha256,
    });
    report(out, format, &value, || {
        format!(
            "replica initialised in {}, pinned to root version {version}\nroot sha256: {sha256}",
            dir.display()
        )
    })
}

/// `import FILE`: streams the bundle into the replica's directory while
/// checking it, verifies it against the replica's pinned root and current
/// state, then swaps it in. Memory stays bounded whatever the file claims.
pub fn import_cmd(
    dir: &Path,
    bundle: &Path,
    format: OutputFormat,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let replica = Replica::open(dir)?;
    // Two imports at once could each check against the same current state
    // and the older one be renamed in last.
    let _lock = lock_data_dir(dir, "import", "one import at a time: wait for it to finish")?;
    let file = fs::File::open(bundle).map_err(|source| CliError::Io {
        path: bundle.to_owned(),
        source,
    })?;
    let mut input = io::BufReader::with_capacity(1 << 20, file);
    let mut progress = Progress::new("importing");
    let imported =
        replica.import_from(&mut input, OffsetDateTime::now_utc(), &mut |done, total| {
            progress.update(done, total)
        });
    progress.finish();
    let imported = imported.map_err(|e| CliError::Other(format!("{}: {e}", bundle.display())))?;
    let value = serde_json::json!({
        "file": bundle,
        "timestamp_version": imported.timestamp_version,
        "previous_timestamp_version": imported.previous,
        "files": imported.files,
        "expires": rfc3339(imported.expires),
    });
    report(out, format, &value, || {
        let previous = imported
            .previous
            .map_or_else(|| "none".to_owned(), |v| v.to_string());
        format!(
            "imported {}: timestamp version {} (was {previous}), {} files, valid until {}",
            bundle.display(),
            imported.timestamp_version,
            imported.files,
            rfc3339(imported.expires)
        )
    })
}

/// `serve --replica`: serves the imported state read-only until SIGINT or
/// SIGTERM; a new import is picked up on the next request.
pub fn serve_replica(
    dir: &Path,
    flags: &Flags,
    format: OutputFormat,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let config = Config::load(dir, flags)?;
    init_logging(&config)?;
    let tls = super::tls(&config)?;
    let files = Arc::new(ReplicaFiles::open(Replica::open(dir)?)?);
    let listening = Listening::bind(&config, tls)?.announced_as(format);
    serve_until_stopped(
        listening,
        "keyshare-server replica listening",
        dir,
        out,
        shutdown_signal,
        move |listener, tls, stop| crate::http::run_replica(listener, tls, files, stop),
    )
}
