//! `keyshare-server serve`: the repository, the admin API and the CI
//! endpoints over HTTP(S) until SIGINT or SIGTERM, with the maintenance
//! task and the CI expiry sweeper beside it. One [`Clock`] (the system's,
//! or a test's through [`run`]) reaches all of them.

use std::future::Future;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use super::{
    init_logging, lock_data_dir, open_publisher, require_repository, serve_until_stopped,
    shutdown_signal, CliError, Listening, OutputFormat,
};
use crate::clock::{self, Clock};
use crate::config::{Config, Flags};
use crate::http::tls::warn_if_plain_http_off_loopback;
use crate::http::{self, AppState};
use crate::publisher::Publisher;
use crate::store::{PostgresUrl, PublishListener};

/// How often `serve` re-signs expiring metadata and sweeps expired
/// ephemeral keys, at most ([`maintenance_interval`]).
pub const MAINTENANCE_INTERVAL: StdDuration = StdDuration::from_secs(60);

/// `serve`: serves the repository in `dir` until SIGINT or SIGTERM, then
/// stops gracefully. Writes `listening on http://ADDR` (or `https://` when
/// `tls.cert` and `tls.key` are set) to `out` once bound (with the real
/// port when the configured one is 0); with `format` JSON, one JSON line
/// `{"listening": URL, "address", "tls"}` instead.
pub fn serve(
    dir: &Path,
    flags: &Flags,
    format: OutputFormat,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let config = Config::load(dir, flags)?;
    init_logging(&config)?;
    run_as(dir, &config, clock::system(), shutdown_signal, format, out)
}

/// What `serve` does once its configuration is loaded and logging set up:
/// serves the repository in `dir` until the future `shutdown` makes (on
/// the server's runtime) resolves. `clock` is the one clock of the whole
/// server: the HTTP handlers, CI issuance, the maintenance task and the CI
/// expiry sweeper all read it (tests pass their own).
pub fn run<S: Future<Output = ()> + 'static>(
    dir: &Path,
    config: &Config,
    clock: Clock,
    shutdown: impl FnOnce() -> Result<S, CliError>,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    run_as(dir, config, clock, shutdown, OutputFormat::Text, out)
}

/// [`run`], the address announced as `format` asks.
fn run_as<S: Future<Output = ()> + 'static>(
    dir: &Path,
    config: &Config,
    clock: Clock,
    shutdown: impl FnOnce() -> Result<S, CliError>,
    format: OutputFormat,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let tls = super::tls(config)?;
    require_repository(dir, config)?;
    // Held until serve returns: every other writer of this directory
    // refuses meanwhile, naming this process.
    let lock = lock_data_dir(
        dir,
        "serve",
        "one process writes a data directory: stop that one first, or serve another --data-dir",
    )?;
    let publisher = Arc::new(open_publisher(dir, config, &lock)?);
    let listening = Listening::bind(config, tls)?.announced_as(format);
    lock.set_detail(&format!("listening on {}", listening.url()))
        .map_err(|e| CliError::Other(e.to_string()))?;
    if !listening.is_tls() {
        warn_if_plain_http_off_loopback(listening.addr());
    }
    let mut state = AppState::new(publisher.clone());
    state.clock = clock.clone();
    state.body_limit = config.body_limit;
    state.waiters = Arc::new(crate::http::read::Waiters::new(config.max_waiters));
    state.allow_private_peers = config.allow_private_peers;
    state.export = crate::airgap::ExportLimits::from_config(config);
    // Session cookies are `Secure` when the server runs TLS.
    state.portal = Arc::new(crate::http::portal::Portal::new(
        crate::http::portal::SessionLimits {
            idle: config.portal.session_idle,
            absolute: config.portal.session_lifetime,
            ..crate::http::portal::SessionLimits::default()
        },
        listening.is_tls(),
    ));
    if config.tsa.enabled {
        state.tsa = Some(Arc::new(open_tsa(dir, config, &publisher, clock())?));
    }
    let resign_before = config.expiry.resign_before;
    let ci_sweep = match &config.ci {
        Some(ci) => {
            let service = crate::ci::CiService::new(
                ci.clone(),
                dir,
                config.keys.pin_file.as_deref(),
                publisher.clone(),
                clock.clone(),
            )
            .map_err(|e| CliError::Other(e.to_string()))?;
            state.ci = Some(Arc::new(service));
            Some(StdDuration::from_secs(
                u64::try_from(ci.sweep_interval.whole_seconds()).unwrap_or(1),
            ))
        }
        None => None,
    };
    let tsa_ready = state
        .tsa
        .as_ref()
        .map(|t| (t.certificate_sha256().to_owned(), config.tsa.policy.clone()));
    // Held here so that this thread drops them last (below).
    let keys_held = (publisher.clone(), state.tsa.clone());
    // Once nothing above can fail: a failed start is one line on stderr.
    tracing::info!(url = %format!("{}{}", listening.url(), crate::http::portal::PORTAL_PATH), "portal");
    let served = serve_until_stopped(
        listening,
        "keyshare-server listening",
        dir,
        out,
        shutdown,
        move |listener, tls, stop| {
            // Logged once serving, so a start-up failure stays one line.
            if let Some((certificate, policy)) = &tsa_ready {
                tracing::info!(
                    certificate_sha256 = %certificate,
                    policy = %policy,
                    "timestamp authority at POST /api/v1/timestamp"
                );
            }
            // Stopped with the server, or when it is given up on.
            let background = Background::spawn(publisher, clock, resign_before, ci_sweep);
            async move {
                let _background = background;
                match tls {
                    Some(tls) => http::run_tls(listener, tls, state, stop).await,
                    None => http::run(listener, state, stop).await,
                }
            }
        },
    );
    // The HTTP workers may still be dropping their copies of the state
    // when the server has stopped. Whoever drops the last copy closes the
    // online keys' PKCS#11 sessions, and that must not race the process's
    // exit (the module's own teardown): this thread waits for the others'
    // copies, then drops the last one itself.
    let (publisher, tsa) = keys_held;
    drop_last(publisher);
    if let Some(tsa) = tsa {
        drop_last(tsa);
    }
    drop(lock);
    served
}

/// How long [`drop_last`] waits for the other holders.
const RELEASE_WAIT: StdDuration = StdDuration::from_secs(5);

/// Drops `held` once it is the last reference, waiting for the other
/// holders (threads stopping) for at most [`RELEASE_WAIT`]; past that it is
/// dropped anyway, with a warning.
fn drop_last<T>(held: Arc<T>) {
    let deadline = std::time::Instant::now() + RELEASE_WAIT;
    while Arc::strong_count(&held) > 1 {
        if std::time::Instant::now() >= deadline {
            tracing::warn!("a thread still holds the server's keys at exit");
            break;
        }
        std::thread::sleep(StdDuration::from_millis(5));
    }
    drop(held);
}

/// The timestamp authority of `dir`: its key and chain (what is missing at
/// the default places is made and audited, for a data directory made
/// before the TSA), with its own store connection.
fn open_tsa(
    dir: &Path,
    config: &Config,
    publisher: &Publisher,
    now: time::OffsetDateTime,
) -> Result<crate::tsa::Tsa, CliError> {
    let tsa_error = |e: crate::tsa::TsaError| CliError::Other(e.to_string());
    let (material, made) =
        crate::tsa::setup::prepare(&config.tsa, config.keys.pin_file.as_deref(), dir, now, true)
            .map_err(tsa_error)?;
    crate::tsa::audit_setup(publisher, &material, made, &config.tsa, now)?;
    let db = crate::data_dir::DataDir::new(dir).db();
    let store = super::open_store(&db, config)?;
    crate::tsa::Tsa::new(material, &config.tsa, store).map_err(tsa_error)
}

/// `serve`'s background tasks: maintenance, and the CI expiry sweeper when
/// `[ci]` is set. Aborted when dropped.
struct Background(Vec<tokio::task::JoinHandle<()>>);

impl Background {
    fn spawn(
        publisher: Arc<Publisher>,
        clock: Clock,
        resign_before: time::Duration,
        ci_sweep: Option<StdDuration>,
    ) -> Self {
        let mut tasks = Vec::new();
        if let Some(every) = ci_sweep {
            tasks.push(tokio::spawn(crate::ci::sweeper::run(
                publisher.clone(),
                clock.clone(),
                every,
            )));
        }
        if let Some(url) = publisher.read(crate::store::Store::postgres_url) {
            tasks.push(tokio::spawn(follow(publisher.clone(), url)));
        }
        tasks.push(tokio::spawn(maintain(publisher, clock, resign_before)));
        Self(tasks)
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

/// How often a server on a PostgreSQL store looks for what other servers
/// sharing the database published ([`Publisher::follow_store`]) when no
/// notification came: the poll that covers a notification or a listening
/// connection lost.
pub const FOLLOW_INTERVAL: StdDuration = StdDuration::from_secs(1);

/// How long a server whose listening connection could not be made polls
/// before it tries again.
const LISTEN_RETRY: StdDuration = StdDuration::from_secs(30);

/// On a PostgreSQL store: as soon as another server sharing the database
/// publishes (its commit notifies [`PUBLISHED_CHANNEL`], which a
/// connection of this server's own listens on), and every
/// [`FOLLOW_INTERVAL`] when nothing was notified, one indexed query for the
/// newest timestamp version recorded; when another server published, the
/// publisher takes in what it published and caches its files
/// ([`Publisher::follow_store`]), so reads (and the revocation watchers
/// waiting on this server) serve it. Without the listening connection
/// (it failed or was lost), polling goes on every second and listening is
/// tried again every [`LISTEN_RETRY`]. A failure to read the store (the
/// database gone) is logged and the cache kept: reads go on serving what
/// this server last saw.
///
/// [`PUBLISHED_CHANNEL`]: crate::store::PUBLISHED_CHANNEL
async fn follow(publisher: Arc<Publisher>, url: PostgresUrl) {
    let mut listener: Option<PublishListener> = None;
    let mut listen_after = tokio::time::Instant::now();
    let mut failing = false;
    loop {
        listener = match listener.take() {
            Some(l) => wait_for_publish(l).await,
            None => {
                tokio::time::sleep(FOLLOW_INTERVAL).await;
                if tokio::time::Instant::now() < listen_after {
                    None
                } else {
                    let url = url.clone();
                    match tokio::task::spawn_blocking(move || PublishListener::connect(&url)).await
                    {
                        Ok(Ok(l)) => Some(l),
                        Ok(Err(e)) => {
                            tracing::warn!(error = %e, "cannot listen for other servers' publishes; polling every second");
                            listen_after = tokio::time::Instant::now() + LISTEN_RETRY;
                            None
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "listening for other servers' publishes failed");
                            listen_after = tokio::time::Instant::now() + LISTEN_RETRY;
                            None
                        }
                    }
                }
            }
        };
        let p = publisher.clone();
        match tokio::task::spawn_blocking(move || p.follow_store()).await {
            Ok(Ok(Some(version))) => {
                failing = false;
                tracing::info!(timestamp = version, "caught up with the shared store");
            }
            Ok(Ok(None)) => failing = false,
            Ok(Err(e)) => {
                if !failing {
                    tracing::warn!(error = %e, "cannot read the shared store; serving the cached repository");
                }
                failing = true;
            }
            Err(e) => tracing::error!(error = %e, "following the shared store failed"),
        }
    }
}

/// Waits on a blocking thread until `listener` is notified of a publish or
/// [`FOLLOW_INTERVAL`] passes; the listener back, or `None` when its
/// connection was lost.
async fn wait_for_publish(mut listener: PublishListener) -> Option<PublishListener> {
    let waited =
        tokio::task::spawn_blocking(move || listener.wait(FOLLOW_INTERVAL).map(|_| listener)).await;
    match waited {
        Ok(Ok(listener)) => Some(listener),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "lost the connection listening for other servers' publishes; polling every second");
            None
        }
        Err(e) => {
            tracing::error!(error = %e, "listening for other servers' publishes failed");
            None
        }
    }
}

/// How often the maintenance task runs: every minute, or a quarter of
/// `resign_before` when that is shorter (short timestamps), but not more
/// often than every 5 seconds; so a role is re-signed at least three runs
/// before it expires.
pub fn maintenance_interval(resign_before: time::Duration) -> StdDuration {
    let quarter: time::Duration = resign_before / 4;
    let quarter = u64::try_from(quarter.whole_milliseconds()).unwrap_or(0);
    StdDuration::from_millis(quarter).clamp(StdDuration::from_secs(5), MAINTENANCE_INTERVAL)
}

/// Every [`maintenance_interval`] (and once at start): re-sign what expires within
/// `resign_before`, sweep expired ephemeral keys, and delete published
/// versions superseded longer ago than `store.keep_superseded` (publishes
/// do that too; this covers a server with no writes). Runs on a blocking
/// thread; errors are logged and retried at the next tick.
async fn maintain(publisher: Arc<Publisher>, clock: Clock, resign_before: time::Duration) {
    let mut ticks = tokio::time::interval(maintenance_interval(resign_before));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maintenance_runs_at_least_four_times_per_resign_window() {
        let every = |d: time::Duration| maintenance_interval(d).as_millis();
        assert_eq!(every(time::Duration::hours(6)), 60_000);
        assert_eq!(every(time::Duration::seconds(150)), 37_500);
        assert_eq!(every(time::Duration::minutes(1)), 15_000);
        // Never busier than every 5 seconds.
        assert_eq!(every(time::Duration::seconds(4)), 5_000);
    }
}
