//! The `keyshare-server` commands, one file each: [`mod@init`],
//! [`mod@serve`], [`mod@publish`], the air-gap ones ([`airgap`]: `export`,
//! `import`, `init --replica`, `serve --replica`) and [`generate`]
//! (`completions`, `man`). `main.rs` only parses arguments and calls these;
//! this module holds what they share: [`CliError`], [`OutputFormat`] and
//! the printing of a result, the data directory's lock and set-up, opening
//! the repository, logging, and the start-up of a serving command
//! (`Listening`, `serve_until_stopped`).
//!
//! Output for the user goes to the writer given (stdout from `main`), as
//! text or one JSON document (`--output`); logs go to stderr through
//! `tracing`. Every error is a [`CliError`] whose `Display` is one line.
//!
//! Every command that writes the data directory holds its lock
//! ([`crate::lock`]) while it runs (`serve` for its whole life), so a
//! second writer refuses at once naming the first; `open_publisher`
//! takes the lock as proof. `publish --to` next to a running server reads
//! the store without writing it ([`Store::open_existing`]).
//!
//! The top floor of `server/src`: it may import from every other module;
//! none imports from it.

pub mod airgap;
pub mod generate;
pub mod init;
pub mod migrate_store;
pub mod publish;
pub mod serve;

use std::fs::{self, DirBuilder};
use std::future::Future;
use std::io::{self, IsTerminal, Write};
use std::net::{SocketAddr, TcpListener};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration as StdDuration;

use openssl::ssl::SslAcceptorBuilder;

use crate::airgap::AirgapError;
use crate::config::{Config, ConfigError, LogFormat};
use crate::data_dir::{DataDir, DB_NAME};
use crate::http::tls::{tls_acceptor, TlsError};
use crate::keys::{self, KeyError};
use crate::lock::{DataDirLock, LockError};
use crate::publisher::{PublishError, Publisher};
use crate::store::{self, Store};

pub use init::init;
pub use publish::{publish, Published};
pub use serve::serve;

/// How long `serve` and `serve --replica` wait, after SIGINT or SIGTERM,
/// for the server to stop before exiting anyway (the server itself gives
/// requests in flight 10 s).
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

impl From<keyshare_fsio::Error> for CliError {
    fn from(e: keyshare_fsio::Error) -> Self {
        CliError::Io {
            path: e.path,
            source: e.source,
        }
    }
}

pub(crate) fn io_at(path: &Path) -> impl FnOnce(io::Error) -> CliError + '_ {
    move |source| CliError::Io {
        path: path.to_owned(),
        source,
    }
}

impl From<AirgapError> for CliError {
    fn from(e: AirgapError) -> Self {
        match e {
            AirgapError::Publish(p) => CliError::Publish(p),
            AirgapError::Io { path, source } => CliError::Io { path, source },
            other => CliError::Other(other.to_string()),
        }
    }
}

/// How a command prints its result: `--output text|json`, as `keyshare`'s
/// commands take it (docs/cli.md#json-output).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum OutputFormat {
    /// A short summary for people.
    #[default]
    Text,
    /// One JSON document (a line per event for `serve`).
    Json,
}

/// Prints the result: `value` as one pretty JSON document, or `text()` as
/// lines for people.
pub(crate) fn report(
    out: &mut dyn Write,
    format: OutputFormat,
    value: &serde_json::Value,
    text: impl FnOnce() -> String,
) -> Result<(), CliError> {
    match format {
        OutputFormat::Json => {
            let json = serde_json::to_string_pretty(value)
                .map_err(|e| CliError::Other(format!("cannot encode the result: {e}")))?;
            say(out, &json)
        }
        OutputFormat::Text => say(out, &text()),
    }
    .and_then(|()| {
        out.flush().map_err(|source| CliError::Io {
            path: "<stdout>".into(),
            source,
        })
    })
}

/// Writes one line of the command's output to `out`.
pub(crate) fn say(out: &mut dyn Write, text: &str) -> Result<(), CliError> {
    writeln!(out, "{text}").map_err(|source| CliError::Io {
        path: "<stdout>".into(),
        source,
    })
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

/// Opens (creating and migrating if needed) the store: the PostgreSQL
/// database of `store.url` when it is set, else the SQLite file `db`.
pub(crate) fn open_store(db: &Path, config: &Config) -> Result<Store, CliError> {
    let Some(url) = &config.store_url else {
        return Store::open(db).map_err(|source| CliError::Store {
            path: db.to_owned(),
            source,
        });
    };
    let url = crate::store::PostgresUrl::parse(url.expose())
        .map_err(|e| CliError::Other(format!("store.url: {e}")))?;
    Store::open_postgres(&url).map_err(|source| match source {
        // Already names the database (without its password).
        e @ crate::store::Error::Connect { .. } => CliError::Other(e.to_string()),
        source => CliError::Store {
            path: PathBuf::from(url.redacted()),
            source,
        },
    })
}

/// Refuses a data directory `init` did not make. (With `store.url`, the
/// repository is in PostgreSQL: the keys in the directory are checked
/// when the publisher opens.)
pub(crate) fn require_repository(dir: &Path, config: &Config) -> Result<(), CliError> {
    if config.store_url.is_some() || DataDir::new(dir).db().exists() {
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
    require_repository(dir, config)?;
    let db = DataDir::new(dir).db();
    let online = keys::load_online(&config.keys, dir)?;
    let store = open_store(&db, config)?;
    let mut publisher = Publisher::open(store, online, config.repo_options())?;
    publisher.set_retention(config.keep_superseded);
    // A repository whose bins delegate to namespace roles: list every
    // trust document in its bin, in one publish of its own.
    if let Some(migrated) = publisher.migrate_layout(time::OffsetDateTime::now_utc())? {
        tracing::info!(
            files = migrated.files.len(),
            audit_seq = migrated.audit_seq,
            "migrated the repository: trust documents listed in their hashed bins, namespace roles undelegated"
        );
    }
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
pub(crate) fn open_publisher_alongside(dir: &Path, config: &Config) -> Result<Publisher, CliError> {
    require_repository(dir, config)?;
    let db = DataDir::new(dir).db();
    let online = keys::load_online(&config.keys, dir)?;
    let store = match config.store_url {
        // PostgreSQL: another connection like the writer's.
        Some(_) => open_store(&db, config)?,
        None => Store::open_existing(&db).map_err(|source| CliError::Store {
            path: db.clone(),
            source,
        })?,
    };
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

/// The TLS acceptor `config` asks for (`tls.cert` and `tls.key`), if any.
/// A serving command builds it before anything else: a bad certificate or
/// key is the operator's first problem to hear about.
pub(crate) fn tls(config: &Config) -> Result<Option<SslAcceptorBuilder>, CliError> {
    Ok(config.tls.as_ref().map(tls_acceptor).transpose()?)
}

/// A serving command's bound listener.
pub(crate) struct Listening {
    listener: TcpListener,
    addr: SocketAddr,
    tls: Option<SslAcceptorBuilder>,
    format: OutputFormat,
}

impl Listening {
    /// Binds `config.listen` (port 0: any free port), to serve with `tls`
    /// when given.
    pub(crate) fn bind(config: &Config, tls: Option<SslAcceptorBuilder>) -> Result<Self, CliError> {
        let cannot =
            |e: io::Error| CliError::Other(format!("cannot listen on {}: {e}", config.listen));
        let listener = TcpListener::bind(config.listen).map_err(cannot)?;
        let addr = listener.local_addr().map_err(cannot)?;
        Ok(Self {
            listener,
            addr,
            tls,
            format: OutputFormat::Text,
        })
    }

    /// Announces the address as `format` asks: `listening on URL`, or one
    /// JSON line `{"listening": URL, "address", "tls"}`.
    pub(crate) fn announced_as(mut self, format: OutputFormat) -> Self {
        self.format = format;
        self
    }

    /// The address bound (with the real port).
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Whether it serves TLS.
    pub(crate) fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    fn scheme(&self) -> &'static str {
        if self.is_tls() {
            "https"
        } else {
            "http"
        }
    }

    /// `http://ADDR` or `https://ADDR`.
    pub(crate) fn url(&self) -> String {
        format!("{}://{}", self.scheme(), self.addr)
    }
}

/// What a serving command stops on: resolves once, then the server stops.
pub(crate) type Stop = std::pin::Pin<Box<dyn Future<Output = ()>>>;

/// The start-up every serving command shares (`serve`, `serve --replica`):
/// on a new actix system, makes the `shutdown` future (SIGINT or SIGTERM
/// from `main`), logs `label` and writes `listening on URL` to `out`, then
/// runs the server `serve` makes from the listener, the TLS acceptor and
/// the stop future, until it stops; waits at most [`STOP_DEADLINE`] after
/// `shutdown` resolves, even if requests in flight (or the server) never
/// finish. Returns once blocking work still in flight has finished.
pub(crate) fn serve_until_stopped<S, Fut>(
    listening: Listening,
    label: &'static str,
    dir: &Path,
    out: &mut dyn Write,
    shutdown: impl FnOnce() -> Result<S, CliError>,
    serve: impl FnOnce(TcpListener, Option<SslAcceptorBuilder>, Stop) -> Fut,
) -> Result<(), CliError>
where
    S: Future<Output = ()> + 'static,
    Fut: Future<Output = io::Result<()>>,
{
    let runtime = actix_web::rt::System::new();
    let served = runtime.block_on(async move {
        let shutdown = shutdown()?;
        let url = listening.url();
        let Listening {
            listener,
            addr,
            tls,
            format,
        } = listening;
        let scheme = if tls.is_some() { "https" } else { "http" };
        tracing::info!(%addr, scheme, data_dir = %dir.display(), "{label}");
        let announce = match format {
            OutputFormat::Text => format!("listening on {url}"),
            OutputFormat::Json => serde_json::json!({
                "listening": url,
                "address": addr.to_string(),
                "tls": tls.is_some(),
            })
            .to_string(),
        };
        // For whoever started us (tests pass port 0); the log has it too,
        // so a closed stdout is not a reason to stop.
        if let Err(e) = writeln!(out, "{announce}").and_then(|()| out.flush()) {
            tracing::warn!(error = %e, "cannot write the address to stdout");
        }
        // Stop waiting for the server STOP_DEADLINE after the signal.
        let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
        let stop: Stop = Box::pin(async move {
            shutdown.await;
            let _ = stopping_tx.send(());
        });
        let deadline = async move {
            if stopping_rx.await.is_ok() {
                tokio::time::sleep(STOP_DEADLINE).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        let server = serve(listener, tls, stop);
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
        result.map_err(|e| CliError::Other(format!("server failed: {e}")))?;
        tracing::info!("stopped");
        Ok(())
    });
    // Dropping the runtime waits for blocking work still in flight (a
    // publish); only then may another writer have the directory.
    drop(runtime);
    served
}
