//! The server's configuration: `<data-dir>/keyshare.toml`, overridden by
//! `KEYSHARE_*` environment variables, overridden by command-line flags
//! (the table in `docs/server.md`).
//!
//! Every value is parsed once, here, into typed fields; a bad value or an
//! unknown key in the file is one readable error that names the key and
//! where it came from. Durations are written `<number><unit>` with the units
//! `s`, `m`, `h`, `d` and `w`, and may be combined (`1d12h`).
//!
//! * this module: the resolved configuration ([`Config`]) and its parts;
//! * [`ci`]: the `[ci]` table ([`CiConfig`]: issuers, claim rules, the CI CA);
//! * `load`: reading it: the file, the environment and the flags, in that
//!   order ([`Config::load`], [`Config::resolve`], [`Flags`]);
//! * `settings`: every setting's dotted key and environment variable;
//! * `file`: the TOML file, flattened into settings;
//! * `keys`: where the online keys are ([`KeyRef`], [`Keys`]);
//! * `tsa`: the timestamp authority's `[tsa]` ([`TsaConfig`]);
//! * `error`: why it could not be read ([`ConfigError`], [`Source`]);
//! * `default_file`: the file `init` writes ([`DEFAULT_FILE`]).
//!
//! Durations, in the file and on the command line, are parsed by
//! [`parse_duration`] (`keyshare_policy::datetime`, re-exported here).
//!
//! On the ground floor of `server/src`: it imports nothing from the crate
//! outside this folder.

use std::net::SocketAddr;
use std::path::PathBuf;

use keyshare_policy::repo::{Expiries, Options};
use time::Duration;

pub mod ci;
mod default_file;
mod error;
mod file;
mod keys;
mod load;
mod settings;
mod tsa;

pub use ci::CiConfig;
pub use default_file::DEFAULT_FILE;
pub use error::{ConfigError, Source};
pub use keys::{KeyRef, Keys};
pub use keyshare_policy::datetime::parse_duration;
pub use load::Flags;
pub use tsa::{TsaConfig, DEFAULT_POLICY};

/// How long superseded published files are kept by default
/// (`store.keep_superseded`): 1 hour. A client needs an older version only
/// between reading a timestamp and fetching what it lists (seconds), or
/// while a cache in front of the server still hands out an older
/// timestamp; an hour covers both with a wide margin. See
/// `docs/operations/store.md`.
pub const DEFAULT_RETENTION: Duration = Duration::hours(1);

/// `store.url`: a `postgres://` or `postgresql://` URL. It may hold a
/// password, so it is never shown: `Debug` and errors leave it out.
#[derive(Clone, PartialEq, Eq)]
pub struct StoreUrl(String);

impl StoreUrl {
    /// The URL, to connect with (never to show).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for StoreUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreUrl(..)")
    }
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// TLS certificate and key files: with both set, `serve` speaks HTTPS only
/// (TLS 1.2 or later) on `listen`. Relative paths are relative to the
/// working directory of `serve`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tls {
    /// PEM certificate chain: the server's certificate first, then any
    /// intermediates.
    pub cert: PathBuf,
    /// PEM private key (unencrypted; PKCS#8 or the key type's own form).
    pub key: PathBuf,
}

/// Metadata validity periods.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Expiry {
    /// Each signed timestamp.
    pub timestamp: Duration,
    /// Snapshot.
    pub snapshot: Duration,
    /// Top-level targets and namespace roles.
    pub targets: Duration,
    /// Root (embedded default only).
    pub root: Duration,
    /// Re-sign a role this long before it expires.
    pub resign_before: Duration,
}

/// Air-gap bundles (`[airgap]`, see docs/airgap.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Airgap {
    /// Validity window of an exported bundle when none is asked for.
    pub valid_for: Duration,
    /// Longest window an export may ask for.
    pub max_valid_for: Duration,
}

/// The portal's sessions (`[portal]`, see docs/portal.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Portal {
    /// A session unused this long ends.
    pub session_idle: Duration,
    /// A session ends this long after sign-in, however busy.
    pub session_lifetime: Duration,
}

/// The shortest `expiry.resign_before`: the server re-signs on a timer
/// (`commands::serve::maintenance_interval`), at most a quarter of it apart.
pub const MIN_RESIGN_BEFORE: Duration = Duration::minutes(1);

/// The default of `limits.max_waiters`: readers waiting for the next
/// publish at once.
pub const DEFAULT_MAX_WAITERS: usize = 10_000;

/// The resolved configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Address to serve on.
    pub listen: SocketAddr,
    /// TLS files, when both are set.
    pub tls: Option<Tls>,
    /// Log line format.
    pub log_format: LogFormat,
    /// A `tracing` filter such as `info` or `keyshare_server=debug`.
    pub log_level: String,
    /// Metadata validity periods.
    pub expiry: Expiry,
    /// Largest accepted request body, bytes.
    pub body_limit: usize,
    /// `limits.max_waiters`: readers that may wait for the next publish at
    /// once (`GET /metadata/timestamp.json` with `Prefer: wait`).
    pub max_waiters: usize,
    /// Where the online keys are.
    pub keys: Keys,
    /// Air-gap bundle windows.
    pub airgap: Airgap,
    /// `[ci]`: CI delegations (file only); `None` when the section is absent.
    pub ci: Option<CiConfig>,
    /// How long superseded published files are kept (`None`: forever).
    pub keep_superseded: Option<Duration>,
    /// `store.url`: the PostgreSQL database of the store; `None` (the
    /// default): the SQLite file in the data directory.
    pub store_url: Option<StoreUrl>,
    /// `peers.allow_private_addresses`: accept peer URLs on private or
    /// loopback addresses (and `http://` to loopback). Off: peers must be
    /// `https://` to public hosts.
    pub allow_private_peers: bool,
    /// `[tsa]`: the RFC 3161 timestamp authority.
    pub tsa: TsaConfig,
    /// `[portal]`: how long the portal's sessions last.
    pub portal: Portal,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8439)),
            tls: None,
            log_format: LogFormat::Text,
            log_level: "info".into(),
            expiry: Expiry {
                timestamp: Duration::days(1),
                snapshot: Duration::days(7),
                targets: Duration::days(90),
                root: Duration::days(365),
                resign_before: Duration::hours(6),
            },
            body_limit: 65_536,
            max_waiters: DEFAULT_MAX_WAITERS,
            keys: Keys::default(),
            airgap: Airgap {
                valid_for: Duration::days(7),
                max_valid_for: Duration::days(30),
            },
            ci: None,
            keep_superseded: Some(DEFAULT_RETENTION),
            store_url: None,
            allow_private_peers: false,
            tsa: TsaConfig::default(),
            portal: Portal {
                session_idle: Duration::minutes(30),
                session_lifetime: Duration::hours(12),
            },
        }
    }
}

impl Config {
    /// The repository options these expiries mean.
    pub fn repo_options(&self) -> Options {
        Options {
            expiries: Expiries {
                root: self.expiry.root,
                targets: self.expiry.targets,
                delegated: self.expiry.targets,
                snapshot: self.expiry.snapshot,
                timestamp: self.expiry.timestamp,
            },
            ..Options::default()
        }
    }
}
