//! What the `keyshare-server` commands do: `init`, `serve` and `publish`.
//! `main.rs` only parses arguments and calls these.
//!
//! Output for the user goes to the writer given (stdout from `main`); logs
//! go to stderr through `tracing`. Every error is a [`CliError`] whose
//! `Display` is one line.
//!
//! Every command that writes the data directory holds its lock
//! ([`crate::lock`]) while it runs (`serve` for its whole life), so a
//! second writer refuses at once naming the first; [`open_publisher`]
//! takes the lock as proof. `publish --to` next to a running server reads
//! the store without writing it ([`Store::open_existing`]).

use std::fs::{self, DirBuilder};
use std::io::{self, IsTerminal, Write};
use std::net::TcpListener;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration as StdDuration;

use openssl::sha::sha256;
use time::OffsetDateTime;

use crate::clock::Clock;
use crate::data_dir::{self, DataDir, WriteError, DB_NAME};
use crate::config::{self, Config, ConfigError, Flags, LogFormat};
use crate::http::tls::{tls_acceptor, warn_if_plain_http_off_loopback, TlsError};
use crate::http::{self, AppState};
use crate::keys::{self, KeyError};
use crate::lock::{DataDirLock, LockError};
use crate::publisher::{PublishError, Publisher};
use crate::store::{self, Store, TokenKind};

/// How often `serve` re-signs expiring metadata and sweeps expired
/// ephemeral keys.
pub const MAINTENANCE_INTERVAL: StdDuration = StdDuration::from_secs(60);

/// How long `serve` waits, after SIGINT or SIGTERM, for the server to stop
/// before exiting anyway (the server itself gives requests in flight 10 s).
pub const STOP_DEADLINE: StdDuration = StdDuration::from_secs(12);

/// Why a command failed. `Display` is one line.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CliError {
    /// The configuration is bad.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A key file is missing, unreadable, too open or bad.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The store could not be opened.
    #[error("{}: {source}", path.display())]
    Store {
        /// The database file.
        path: PathBuf,
        /// Why.
        source: store::Error,
    },
    /// The publisher failed.
    #[error(transparent)]
    Publish(#[from] PublishError),
    /// Another keyshare-server process writes the data directory.
    #[error("{source}; {advice}")]
    InUse {
        /// Who holds the data directory ([`LockError::Held`]).
        source: LockError,
        /// What to do instead.
        advice: &'static str,
    },
    /// The TLS certificate or key cannot be used.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// A file operation failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// Anything else, explained.
    #[error("{0}")]
    Other(String),
}

impl From<WriteError> for CliError {
    fn from(e: WriteError) -> Self {
        CliError::Io {
            path: e.path,
            source: e.source,
        }
    }
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> CliError + '_ {
    move |source| CliError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Takes the lock on data directory `dir` for `keyshare-server <command>`;
/// when another process holds it, the error names that process and gives
/// `advice`.
pub(crate) fn lock_data_dir(
    dir: &Path,
    command: &str,
    advice: &'static str,
) -> Result<DataDirLock, CliError> {
    DataDirLock::acquire(dir, command).map_err(|e| match e {
        held @ LockError::Held { .. } => CliError::InUse {
            source: held,
            advice,
        },
        LockError::Io { path, source } => CliError::Io { path, source },
    })
}

/// Runs `work`, which makes a repository or a replica in data directory
/// `dir`, for `keyshare-server <command>` (`init`, `init --replica`):
/// creates `dir` (and missing parents) with mode 0700, locks it (refusing
/// a directory another process holds), and takes group and other access
/// away from a directory that existed. If `work` fails, the directory gets
/// its mode back (and the lock file goes, as always when a holder exits).
pub(crate) fn init_data_dir<T>(
    dir: &Path,
    command: &str,
    work: impl FnOnce() -> Result<T, CliError>,
) -> Result<T, CliError> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io_at(dir))?;
    let _lock = lock_data_dir(
        dir,
        command,
        "refusing to initialise a data directory in use",
    )?;
    let mode = fs::metadata(dir).map_err(io_at(dir))?.permissions().mode() & 0o7777;
    let set_mode =
        |mode: u32| fs::set_permissions(dir, fs::Permissions::from_mode(mode)).map_err(io_at(dir));
    let result = if mode & 0o077 != 0 {
        set_mode(mode & 0o7700).and_then(|()| work())
    } else {
        work()
    };
    if result.is_err() {
        // Best effort, like init's own clean-up.
        let _ = set_mode(mode);
    }
    result
}

/// The data directory: the one given, else `$XDG_DATA_HOME/keyshare`, else
/// `$HOME/.local/share/keyshare`.
pub fn data_dir(given: Option<PathBuf>) -> Result<PathBuf, CliError> {
    if let Some(dir) = given {
        return Ok(dir);
    }
    let non_empty = |name| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(xdg) = non_empty("XDG_DATA_HOME") {
        return Ok(PathBuf::from(xdg).join("keyshare"));
    }
    if let Some(home) = non_empty("HOME") {
        return Ok(PathBuf::from(home).join(".local/share/keyshare"));
    }
    Err(CliError::Other(
        "no data directory: pass --data-dir or set KEYSHARE_DATA_DIR, XDG_DATA_HOME or HOME".into(),
    ))
}

/// `init`: creates a new repository in `dir` and writes, to `out`, the
/// pinned root hash and the org-admin token (shown only here).
///
/// The directory is created with mode 0700 (an existing one loses group
/// and other access) and locked. Refuses a directory that another
/// keyshare-server process holds, or that already holds a database, a
/// `keys/` directory or a replica. A `keyshare.toml` already there is kept
/// and used (so the expiries can be chosen before the first publish);
/// otherwise the defaults are written. If anything fails, what `init`
/// created is removed again.
pub fn init(dir: &Path, root: Option<&Path>, out: &mut dyn Write) -> Result<(), CliError> {
    init_data_dir(dir, "init", || init_locked(dir, root, out))
}

fn init_locked(dir: &Path, root: Option<&Path>, out: &mut dyn Write) -> Result<(), CliError> {
    let layout = DataDir::new(dir);
    let db = layout.db();
    let keys_dir = layout.keys();
    let config_path = layout.config();
    for existing in [&db, &keys_dir, &layout.replica()] {
        if existing.exists() {
            return Err(CliError::Other(format!(
                "{} already holds a repository ({} exists); refusing to overwrite it",
                dir.display(),
                existing.display()
            )));
        }
    }
    let wrote_config = !config_path.exists();
    if wrote_config {
        data_dir::write_new(&config_path, config::DEFAULT_FILE.as_bytes(), 0o644)?;
    }
    let result = init_repository(dir, &db, root, out);
    if result.is_err() {
        // Best effort: leave the directory as init found it.
        let _ = fs::remove_dir_all(&keys_dir);
        for suffix in ["", "-wal", "-shm"] {
            let _ = fs::remove_file(dir.join(format!("{DB_NAME}{suffix}")));
        }
        if wrote_config {
            let _ = fs::remove_file(&config_path);
        }
    }
    result
}

fn init_repository(
    dir: &Path,
    db: &Path,
    root: Option<&Path>,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let config = Config::load(dir, &Flags::default())?;
    let now = OffsetDateTime::now_utc();
    let publisher = match root {
        // The embedded default: a local root key, threshold 1.
        None => {
            let (online, root_key) = keys::init_online(&config.keys, dir)?;
            let store = open_store(db)?;
            Publisher::init(store, online, &[root_key], 1, config.repo_options(), now)?
        }
        // A root from the offline ceremony; no root key on this machine.
        Some(path) => {
            let bytes = fs::read(path).map_err(io_at(path))?;
            let online = keys::init_online_for_root(&config.keys, dir)?;
            let store = open_store(db)?;
            Publisher::init_with_root(store, online, &bytes, config.repo_options(), now)?
        }
    };
    // The CI secret (nonces, principals), whether or not `[ci]` is set yet.
    keys::generate_ci_secret(&DataDir::new(dir).keys())?;
    let root_hash = publisher
        .file("metadata/1.root.json")
        .map(|f| hex::encode(sha256(&f.bytes)))
        .ok_or_else(|| CliError::Other("init published no metadata/1.root.json".into()))?;
    let token = publisher.create_token(
        "system",
        TokenKind::OrgAdmin,
        Some("created by init".into()),
        now,
    )?;
    let stdout = |e: io::Error| CliError::Io {
        path: PathBuf::from("<stdout>"),
        source: e,
    };
    writeln!(
        out,
        "initialized a keyshare repository in {}",
        dir.display()
    )
    .map_err(stdout)?;
    writeln!(out, "root sha256: {root_hash}").map_err(stdout)?;
    writeln!(
        out,
        "org-admin token (id {}); it will not be shown again:",
        token.token.id
    )
    .map_err(stdout)?;
    writeln!(out, "{}", token.secret.expose()).map_err(stdout)?;
    out.flush().map_err(stdout)?;
    Ok(())
}

fn open_store(db: &Path) -> Result<Store, CliError> {
    Store::open(db).map_err(|source| CliError::Store {
        path: db.to_owned(),
        source,
    })
}

/// Refuses a data directory `init` did not make.
pub(crate) fn require_repository(dir: &Path) -> Result<(), CliError> {
    if DataDir::new(dir).db().exists() {
        return Ok(());
    }
    Err(CliError::Other(format!(
        "{} holds no repository (no {DB_NAME}): run `keyshare-server init --data-dir {}` first",
        dir.display(),
        dir.display()
    )))
}

/// Opens the repository in `dir` (which `init` made) to write it: the
/// caller holds the directory's lock. Migrates the store, and publishes
/// documents a migration left in an earlier shape.
pub(crate) fn open_publisher(
    dir: &Path,
    config: &Config,
    _lock: &DataDirLock,
) -> Result<Publisher, CliError> {
    require_repository(dir)?;
    let db = DataDir::new(dir).db();
    let online = keys::load_online(&config.keys, dir)?;
    let store = open_store(&db)?;
    let mut publisher = Publisher::open(store, online, config.repo_options())?;
    publisher.set_retention(config.keep_superseded);
    // A store migrated by this build may hold documents in a shape the
    // repository has not published yet (revocations by key material).
    let republished = publisher.republish_outdated(time::OffsetDateTime::now_utc())?;
    if !republished.is_empty() {
        tracing::info!(files = ?republished, "published documents in their current shape");
    }
    Ok(publisher)
}

/// Opens the repository in `dir` to read it, next to the process that
/// holds the directory's lock and writes it: nothing is created, migrated
/// or published.
fn open_publisher_alongside(dir: &Path, config: &Config) -> Result<Publisher, CliError> {
    require_repository(dir)?;
    let db = DataDir::new(dir).db();
    let online = keys::load_online(&config.keys, dir)?;
    let store = Store::open_existing(&db).map_err(|source| CliError::Store {
        path: db.clone(),
        source,
    })?;
    Ok(Publisher::open(store, online, config.repo_options())?)
}

/// Sets up `tracing` to stderr with the configured format and filter.
pub(crate) fn init_logging(config: &Config) -> Result<(), CliError> {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log_level)
        .map_err(|e| CliError::Other(format!("log.level: {e}")))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr)
        .with_ansi(io::stderr().is_terminal())
        // A closed stderr must not bring the server down (the default
        // reports write errors with eprintln!, which panics then).
        .log_internal_errors(false);
    let result = match config.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    result.map_err(|e| CliError::Other(format!("cannot set up logging: {e}")))
}

/// `serve`: serves the repository in `dir` until SIGINT or SIGTERM, then
/// stops gracefully. Writes `listening on http://ADDR` (or `https://` when
/// `tls.cert` and `tls.key` are set) to `out` once bound (with the real
/// port when the configured one is 0).
pub fn serve(dir: &Path, flags: &Flags, out: &mut dyn Write) -> Result<(), CliError> {
    let config = Config::load(dir, flags)?;
    init_logging(&config)?;
    // Before the repository is opened: a bad certificate or key is the
    // operator's first problem to hear about.
    let tls = config.tls.as_ref().map(tls_acceptor).transpose()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    require_repository(dir)?;
    // Held until serve returns: every other writer of this directory
    // refuses meanwhile, naming this process.
    let lock = lock_data_dir(
        dir,
        "serve",
        "one process writes a data directory: stop that one first, or serve another --data-dir",
    )?;
    let publisher = Arc::new(open_publisher(dir, &config, &lock)?);
    let listener = TcpListener::bind(config.listen)
        .map_err(|e| CliError::Other(format!("cannot listen on {}: {e}", config.listen)))?;
    let addr = listener
        .local_addr()
        .map_err(|e| CliError::Other(format!("cannot listen on {}: {e}", config.listen)))?;
    lock.set_detail(&format!("listening on {scheme}://{addr}"))
        .map_err(|e| CliError::Other(e.to_string()))?;
    if tls.is_none() {
        warn_if_plain_http_off_loopback(addr);
    }
    let mut state = AppState::new(publisher.clone());
    state.body_limit = config.body_limit;
    state.allow_private_peers = config.allow_private_peers;
    state.export = crate::airgap::ExportLimits::from_config(&config);
    let resign_before = config.expiry.resign_before;
    let ci_sweep = match &config.ci {
        Some(ci) => {
            let service = crate::ci::CiService::new(
                ci.clone(),
                dir,
                config.keys.pin_file.as_deref(),
                publisher.clone(),
                state.clock.clone(),
            )
            .map_err(|e| CliError::Other(e.to_string()))?;
            state.ci = Some(Arc::new(service));
            Some(std::time::Duration::from_secs(
                u64::try_from(ci.sweep_interval.whole_seconds()).unwrap_or(1),
            ))
        }
        None => None,
    };

    let runtime = actix_web::rt::System::new();
    let served = runtime.block_on(async move {
        let shutdown = shutdown_signal()?;
        tracing::info!(%addr, scheme, data_dir = %dir.display(), "keyshare-server listening");
        // For whoever started us (tests pass port 0); the log has it too,
        // so a closed stdout is not a reason to stop.
        if let Err(e) = writeln!(out, "listening on {scheme}://{addr}").and_then(|()| out.flush()) {
            tracing::warn!(error = %e, "cannot write the address to stdout");
        }
        let sweeper = ci_sweep.map(|every| {
            tokio::spawn(crate::ci::sweeper::run(
                publisher.clone(),
                state.clock.clone(),
                every,
            ))
        });
        let maintenance = tokio::spawn(maintain(publisher, state.clock.clone(), resign_before));
        // Stop waiting for the server STOP_DEADLINE after the signal, even
        // if requests in flight (or the server) never finish.
        let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
        let shutdown = async move {
            shutdown.await;
            let _ = stopping_tx.send(());
        };
        let deadline = async move {
            if stopping_rx.await.is_ok() {
                tokio::time::sleep(STOP_DEADLINE).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        let server = async move {
            match tls {
                Some(tls) => http::run_tls(listener, tls, state, shutdown).await,
                None => http::run(listener, state, shutdown).await,
            }
        };
        let result = tokio::select! {
            result = server => result,
            () = deadline => {
                tracing::warn!(
                    seconds = STOP_DEADLINE.as_secs(),
                    "server did not stop in time after the signal; exiting anyway"
                );
                Ok(())
            }
        };
        maintenance.abort();
        if let Some(sweeper) = sweeper {
            sweeper.abort();
        }
        result.map_err(|e| CliError::Other(format!("server failed: {e}")))?;
        tracing::info!("stopped");
        Ok(())
    });
    // Dropping the runtime waits for blocking work still in flight (a
    // publish); only then may another writer have the directory.
    drop(runtime);
    drop(lock);
    served
}

/// Resolves at the first SIGINT or SIGTERM. The handlers are installed
/// before this returns, so no signal is lost once the server runs.
pub(crate) fn shutdown_signal() -> Result<impl std::future::Future<Output = ()>, CliError> {
    use tokio::signal::unix::{signal, SignalKind};
    let err = |e: io::Error| CliError::Other(format!("cannot install signal handlers: {e}"));
    let mut term = signal(SignalKind::terminate()).map_err(err)?;
    let mut int = signal(SignalKind::interrupt()).map_err(err)?;
    Ok(async move {
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        tracing::info!(signal = name, "shutdown requested");
    })
}

/// Every minute (and once at start): re-sign what expires within
/// `resign_before`, sweep expired ephemeral keys, and delete published
/// versions superseded longer ago than `store.keep_superseded` (publishes
/// do that too; this covers a server with no writes). Runs on a blocking
/// thread; errors are logged and retried at the next tick.
async fn maintain(publisher: Arc<Publisher>, clock: Clock, resign_before: time::Duration) {
    let mut ticks = tokio::time::interval(MAINTENANCE_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let p = publisher.clone();
        let now = clock();
        let work = tokio::task::spawn_blocking(move || {
            (
                p.refresh_expiring(resign_before, now),
                p.sweep_ephemeral(now),
                p.prune(now),
            )
        });
        match work.await {
            Ok((refreshed, swept, pruned)) => {
                match pruned {
                    Ok(n) if n > 0 => tracing::info!(files = n, "pruned superseded versions"),
                    Ok(_) => {}
                    Err(e) => tracing::error!(error = %e, "pruning superseded versions failed"),
                }
                match refreshed {
                    Ok(files) if !files.is_empty() => {
                        tracing::info!(files = files.len(), "re-signed expiring metadata");
                    }
                    Ok(_) => {}
                    Err(e) => tracing::error!(error = %e, "re-signing expiring metadata failed"),
                }
                match swept {
                    Ok(n) if n > 0 => tracing::info!(keys = n, "removed expired ephemeral keys"),
                    Ok(_) => {}
                    Err(e) => tracing::error!(error = %e, "sweeping ephemeral keys failed"),
                }
            }
            Err(e) => tracing::error!(error = %e, "maintenance task failed"),
        }
    }
}

/// What `publish` wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Published {
    /// Files written (new or, for `timestamp.json`, changed).
    pub written: usize,
    /// Files already present with the same bytes.
    pub unchanged: usize,
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
    require_repository(dir)?;
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
        data_dir::write_atomically(&path, &file.bytes, 0o644)?;
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

    #[test]
    fn unsafe_paths_are_refused() {
        assert!(safe_relative("metadata/1.root.json").is_ok());
        for bad in ["", "/etc/passwd", "../x", "metadata/../../x", "./x"] {
            assert!(safe_relative(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn init_writes_a_configuration_that_loads_with_a_ci_stub_to_uncomment() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        init(&dir, None, &mut Vec::new()).unwrap();
        let path = DataDir::new(&dir).config();
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.contains("\n# [ci]\n"), "{text}");
        assert!(text.contains("ci_not_configured") && text.contains("docs/ci.md"));
        assert_eq!(Config::load(&dir, &Flags::default()).unwrap().ci, None);
        // Uncommenting the one line turns CI on (CI tokens; no issuers yet).
        fs::write(&path, text.replace("\n# [ci]\n", "\n[ci]\n")).unwrap();
        let ci = Config::load(&dir, &Flags::default()).unwrap().ci.unwrap();
        assert!(ci.issuers.is_empty() && ci.rules.is_empty());
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
