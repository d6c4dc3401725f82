//! The server's configuration: `<data-dir>/keyshare.toml`, overridden by
//! `KEYSHARE_*` environment variables, overridden by command-line flags
//! (the table in `docs/server.md`).
//!
//! Every value is parsed once, here, into typed fields; a bad value or an
//! unknown key in the file is one readable error that names the key and
//! where it came from. Durations are written `<number><unit>` with the units
//! `s`, `m`, `h`, `d` and `w`, and may be combined (`1d12h`).
//!
//! * this module: the whole file, the environment and the flags ([`Config`]);
//! * [`ci`]: the `[ci]` table ([`CiConfig`]: issuers, claim rules, the CI CA).
//!
//! Durations, in the file and on the command line, are parsed by
//! [`parse_duration`] (`keyshare_policy::datetime`, re-exported here).
//!
//! On the ground floor of `server/src`: it imports nothing from the crate
//! outside this folder.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use keyshare_hsm::Pkcs11Uri;
use keyshare_policy::repo::{Expiries, Options};
use time::Duration;

pub mod ci;

pub use ci::CiConfig;
pub use keyshare_policy::datetime::parse_duration;

/// How long superseded published files are kept by default
/// (`store.keep_superseded`): 1 hour. A client needs an older version only
/// between reading a timestamp and fetching what it lists (seconds), or
/// while a cache in front of the server still hands out an older
/// timestamp; an hour covers both with a wide margin. See
/// `docs/operations/store.md`.
pub const DEFAULT_RETENTION: Duration = Duration::hours(1);

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

/// Where one online key is: a PKCS#8 PEM file or a key in a PKCS#11 token.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum KeyRef {
    /// `keys/<role>.pem` in the data directory (what `init` generates).
    #[default]
    Default,
    /// A PKCS#8 PEM file (`file:PATH` or a bare path); a relative path is
    /// relative to the data directory.
    File(PathBuf),
    /// A private key in a PKCS#11 token, named by an RFC 7512 URI with a
    /// `module-path`.
    Pkcs11(Pkcs11Uri),
}

impl KeyRef {
    /// Parses a key reference: `pkcs11:...`, `file:PATH` or a path.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.starts_with("pkcs11:") {
            let uri = Pkcs11Uri::parse(text).map_err(|e| e.to_string())?;
            if uri.module_path.is_none() {
                return Err("the PKCS#11 URI needs a `module-path`".into());
            }
            if uri.token.is_none() && uri.slot_id.is_none() {
                return Err("the PKCS#11 URI names no token (`token` or `slot-id`)".into());
            }
            if uri.object.is_none() && uri.id.is_none() {
                return Err("the PKCS#11 URI names no key (`object` or `id`)".into());
            }
            return Ok(Self::Pkcs11(uri));
        }
        let path = text.strip_prefix("file:").unwrap_or(text);
        if path.is_empty() {
            return Err("expected `pkcs11:...`, `file:PATH` or a path".into());
        }
        Ok(Self::File(PathBuf::from(path)))
    }

    /// True for a key in a PKCS#11 token.
    pub fn is_pkcs11(&self) -> bool {
        matches!(self, Self::Pkcs11(_))
    }
}

/// The online keys' references (`[keys]`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Keys {
    /// `keys.targets`.
    pub targets: KeyRef,
    /// `keys.snapshot`.
    pub snapshot: KeyRef,
    /// `keys.timestamp`.
    pub timestamp: KeyRef,
    /// `keys.namespaces`.
    pub namespaces: KeyRef,
    /// `keys.pin_file`: the token PIN for URIs without `pin-source`.
    pub pin_file: Option<PathBuf>,
}

impl Keys {
    /// Each role's setting name and reference, in the order of
    /// `OnlineKeys`' fields.
    pub fn roles(&self) -> [(&'static str, &KeyRef); 4] {
        [
            ("keys.targets", &self.targets),
            ("keys.snapshot", &self.snapshot),
            ("keys.timestamp", &self.timestamp),
            ("keys.namespaces", &self.namespaces),
        ]
    }
}

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
    /// Where the online keys are.
    pub keys: Keys,
    /// Air-gap bundle windows.
    pub airgap: Airgap,
    /// `[ci]`: CI delegations (file only); `None` when the section is absent.
    pub ci: Option<CiConfig>,
    /// How long superseded published files are kept (`None`: forever).
    pub keep_superseded: Option<Duration>,
    /// `peers.allow_private_addresses`: accept peer URLs on private or
    /// loopback addresses (and `http://` to loopback). Off: peers must be
    /// `https://` to public hosts.
    pub allow_private_peers: bool,
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
            keys: Keys::default(),
            airgap: Airgap {
                valid_for: Duration::days(7),
                max_valid_for: Duration::days(30),
            },
            ci: None,
            keep_superseded: Some(DEFAULT_RETENTION),
            allow_private_peers: false,
        }
    }
}

/// The text `init` writes as `keyshare.toml`: every default, spelled out.
pub const DEFAULT_FILE: &str = r#"# keyshare-server configuration (see docs/server.md).
# KEYSHARE_* environment variables and command-line flags override it.

listen = "127.0.0.1:8439"

# HTTPS: with both set, serve speaks TLS only (1.2 or later).
# cert is a PEM chain (server certificate first), key an unencrypted PEM key.
# [tls]
# cert = "/path/to/cert.pem"
# key = "/path/to/key.pem"

[log]
format = "text"
level = "info"

[expiry]
timestamp = "1d"
snapshot = "7d"
targets = "90d"
root = "365d"
resign_before = "6h"

[limits]
body_bytes = 65536

# Air-gap bundles (docs/airgap.md): the validity window of an export when
# --valid-for is not given, and the longest one allowed.
[airgap]
valid_for = "7d"
max_valid_for = "30d"
# Superseded published versions (older snapshots, timestamps, role
# versions) stay served this long, then are deleted; roots and current
# files are kept forever. A duration, or "forever".
[store]
keep_superseded = "1h"

# Peer services (PUT /api/v1/peers) must be https:// to public hosts.
# Private and loopback addresses (and http:// to loopback) only for tests
# and local sidecars:
# [peers]
# allow_private_addresses = false

# Online keys (targets, snapshot, timestamp, namespaces): a PKCS#8 PEM file
# (`file:PATH` or a path, relative to the data directory) or a key in a
# PKCS#11 token (an RFC 7512 URI with module-path; the PIN from the URI's
# pin-source, else from pin_file). Default: keys/<role>.pem.
# [keys]
# targets = "pkcs11:token=keyshare;object=targets;type=private?module-path=/usr/lib/softhsm/libsofthsm2.so"
# pin_file = "/etc/keyshare/token.pin"

# CI delegations (docs/ci.md): short-lived signing keys for CI jobs, which
# prove who they are with an OIDC ID token or a scoped CI token
# (`keyshare admin token create --ci NAMESPACE`). Without a [ci] table every
# CI endpoint answers 404 ci_not_configured, for CI tokens too. Uncomment
# [ci] alone to accept CI tokens; for OIDC add the issuers your CI platform
# signs tokens with and the claim rules that map jobs to namespaces, then
# restart serve. Every setting and its default is in docs/ci.md.
# [ci]
# default_ttl = "10m"
# max_ttl = "1h"
# [[ci.issuers]]
# url = "https://token.actions.githubusercontent.com"
# audience = "https://keyshare.example.org"
# [[ci.rules]]
# issuer = "https://token.actions.githubusercontent.com"
# namespaces = ["team-a"]
# claims = { repository = "example/app", ref = "refs/heads/main" }
"#;

/// Why the configuration could not be read. Each is one line naming the
/// key and where its value came from.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file exists but cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not TOML.
    #[error("{path}: not valid TOML: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The parser's message, on one line.
        message: String,
    },
    /// The file has a key this version does not know.
    #[error("{path}: unknown key `{key}`")]
    UnknownKey {
        /// The file.
        path: PathBuf,
        /// The dotted key.
        key: String,
    },
    /// A value does not parse.
    #[error("invalid {key} {value:?} (from {origin}): {expected}")]
    Invalid {
        /// The dotted key.
        key: &'static str,
        /// The value as given.
        value: String,
        /// Where it came from.
        origin: Source,
        /// What was expected.
        expected: String,
    },
    /// Values that are fine alone but not together.
    #[error("{0}")]
    Conflict(String),
}

/// Where a value came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// The built-in default.
    Default,
    /// The configuration file.
    File(PathBuf),
    /// An environment variable.
    Env(&'static str),
    /// A command-line flag.
    Flag(&'static str),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Default => f.write_str("the default"),
            Self::File(p) => write!(f, "{}", p.display()),
            Self::Env(name) => write!(f, "environment variable {name}"),
            Self::Flag(name) => write!(f, "flag {name}"),
        }
    }
}

/// One setting: its dotted key, environment variable and flag.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Setting {
    Listen,
    TlsCert,
    TlsKey,
    LogFormat,
    LogLevel,
    ExpiryTimestamp,
    ExpirySnapshot,
    ExpiryTargets,
    ExpiryRoot,
    ExpiryResignBefore,
    BodyBytes,
    KeyTargets,
    KeySnapshot,
    KeyTimestamp,
    KeyNamespaces,
    KeyPinFile,
    AirgapValidFor,
    AirgapMaxValidFor,
    StoreKeepSuperseded,
    PeersAllowPrivateAddresses,
}

const KEYS: [Setting; 20] = [
    Setting::Listen,
    Setting::TlsCert,
    Setting::TlsKey,
    Setting::LogFormat,
    Setting::LogLevel,
    Setting::ExpiryTimestamp,
    Setting::ExpirySnapshot,
    Setting::ExpiryTargets,
    Setting::ExpiryRoot,
    Setting::ExpiryResignBefore,
    Setting::BodyBytes,
    Setting::KeyTargets,
    Setting::KeySnapshot,
    Setting::KeyTimestamp,
    Setting::KeyNamespaces,
    Setting::KeyPinFile,
    Setting::AirgapValidFor,
    Setting::AirgapMaxValidFor,
    Setting::StoreKeepSuperseded,
    Setting::PeersAllowPrivateAddresses,
];

impl Setting {
    fn name(self) -> &'static str {
        match self {
            Self::Listen => "listen",
            Self::TlsCert => "tls.cert",
            Self::TlsKey => "tls.key",
            Self::LogFormat => "log.format",
            Self::LogLevel => "log.level",
            Self::ExpiryTimestamp => "expiry.timestamp",
            Self::ExpirySnapshot => "expiry.snapshot",
            Self::ExpiryTargets => "expiry.targets",
            Self::ExpiryRoot => "expiry.root",
            Self::ExpiryResignBefore => "expiry.resign_before",
            Self::BodyBytes => "limits.body_bytes",
            Self::KeyTargets => "keys.targets",
            Self::KeySnapshot => "keys.snapshot",
            Self::KeyTimestamp => "keys.timestamp",
            Self::KeyNamespaces => "keys.namespaces",
            Self::KeyPinFile => "keys.pin_file",
            Self::AirgapValidFor => "airgap.valid_for",
            Self::AirgapMaxValidFor => "airgap.max_valid_for",
            Self::StoreKeepSuperseded => "store.keep_superseded",
            Self::PeersAllowPrivateAddresses => "peers.allow_private_addresses",
        }
    }

    fn env(self) -> &'static str {
        match self {
            Self::Listen => "KEYSHARE_LISTEN",
            Self::TlsCert => "KEYSHARE_TLS_CERT",
            Self::TlsKey => "KEYSHARE_TLS_KEY",
            Self::LogFormat => "KEYSHARE_LOG_FORMAT",
            Self::LogLevel => "KEYSHARE_LOG",
            Self::ExpiryTimestamp => "KEYSHARE_EXPIRY_TIMESTAMP",
            Self::ExpirySnapshot => "KEYSHARE_EXPIRY_SNAPSHOT",
            Self::ExpiryTargets => "KEYSHARE_EXPIRY_TARGETS",
            Self::ExpiryRoot => "KEYSHARE_EXPIRY_ROOT",
            Self::ExpiryResignBefore => "KEYSHARE_EXPIRY_RESIGN_BEFORE",
            Self::BodyBytes => "KEYSHARE_BODY_LIMIT",
            Self::KeyTargets => "KEYSHARE_KEY_TARGETS",
            Self::KeySnapshot => "KEYSHARE_KEY_SNAPSHOT",
            Self::KeyTimestamp => "KEYSHARE_KEY_TIMESTAMP",
            Self::KeyNamespaces => "KEYSHARE_KEY_NAMESPACES",
            Self::KeyPinFile => "KEYSHARE_PIN_FILE",
            Self::AirgapValidFor => "KEYSHARE_AIRGAP_VALID_FOR",
            Self::AirgapMaxValidFor => "KEYSHARE_AIRGAP_MAX_VALID_FOR",
            Self::StoreKeepSuperseded => "KEYSHARE_STORE_KEEP_SUPERSEDED",
            Self::PeersAllowPrivateAddresses => "KEYSHARE_PEERS_ALLOW_PRIVATE_ADDRESSES",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        KEYS.into_iter().find(|k| k.name() == name)
    }
}

/// Values given on the command line (each overrides file and environment).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Flags {
    /// `--listen`.
    pub listen: Option<String>,
    /// `--tls-cert`.
    pub tls_cert: Option<String>,
    /// `--tls-key`.
    pub tls_key: Option<String>,
    /// `--log-format`.
    pub log_format: Option<String>,
}

/// A raw value and where it came from, before parsing.
type Raw = std::collections::BTreeMap<Setting, (String, Source)>;

impl Config {
    /// Reads `<data_dir>/keyshare.toml` (absent: defaults only), then the
    /// process environment, then `flags`.
    pub fn load(data_dir: &Path, flags: &Flags) -> Result<Self, ConfigError> {
        let path = crate::data_dir::DataDir::new(data_dir).config();
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => Some(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(source) => return Err(ConfigError::Read { path, source }),
        };
        Self::resolve(
            text.as_deref().map(|t| (path.as_path(), t)),
            |name| std::env::var(name).ok(),
            flags,
        )
    }

    /// Resolves a configuration from the file text (with its path, for
    /// messages), an environment lookup and flags: file < env < flag.
    pub fn resolve(
        file: Option<(&Path, &str)>,
        env: impl Fn(&str) -> Option<String>,
        flags: &Flags,
    ) -> Result<Self, ConfigError> {
        let mut raw = Raw::new();
        let mut ci = None;
        if let Some((path, text)) = file {
            ci = read_file(path, text, &mut raw)?;
        }
        for key in KEYS {
            if let Some(value) = env(key.env()) {
                raw.insert(key, (value, Source::Env(key.env())));
            }
        }
        let flag_values = [
            (Setting::Listen, "--listen", &flags.listen),
            (Setting::TlsCert, "--tls-cert", &flags.tls_cert),
            (Setting::TlsKey, "--tls-key", &flags.tls_key),
            (Setting::LogFormat, "--log-format", &flags.log_format),
        ];
        for (key, flag, value) in flag_values {
            if let Some(value) = value {
                raw.insert(key, (value.clone(), Source::Flag(flag)));
            }
        }
        let mut config = Self::from_raw(&raw)?;
        config.ci = ci;
        Ok(config)
    }

    fn from_raw(raw: &Raw) -> Result<Self, ConfigError> {
        let mut config = Self::default();
        for (&key, (value, source)) in raw {
            let invalid = |expected: &str| ConfigError::Invalid {
                key: key.name(),
                // A PKCS#11 URI may carry a `pin-value`: never show it.
                value: redact_pin_value(value),
                origin: source.clone(),
                expected: redact_pin_value(expected),
            };
            match key {
                Setting::Listen => {
                    config.listen = value
                        .parse()
                        .map_err(|_| invalid("expected an address like 127.0.0.1:8439"))?;
                }
                Setting::TlsCert | Setting::TlsKey => {
                    if value.is_empty() {
                        return Err(invalid("expected a file path"));
                    }
                }
                Setting::LogFormat => {
                    config.log_format = match value.as_str() {
                        "text" => LogFormat::Text,
                        "json" => LogFormat::Json,
                        _ => return Err(invalid("expected `text` or `json`")),
                    };
                }
                Setting::LogLevel => {
                    tracing_subscriber::EnvFilter::try_new(value)
                        .map_err(|e| invalid(&format!("not a tracing filter ({e})")))?;
                    config.log_level.clone_from(value);
                }
                Setting::ExpiryTimestamp
                | Setting::ExpirySnapshot
                | Setting::ExpiryTargets
                | Setting::ExpiryRoot
                | Setting::ExpiryResignBefore => {
                    let d = parse_duration(value).map_err(|e| invalid(&e))?;
                    let slot = match key {
                        Setting::ExpiryTimestamp => &mut config.expiry.timestamp,
                        Setting::ExpirySnapshot => &mut config.expiry.snapshot,
                        Setting::ExpiryTargets => &mut config.expiry.targets,
                        Setting::ExpiryRoot => &mut config.expiry.root,
                        _ => &mut config.expiry.resign_before,
                    };
                    *slot = d;
                }
                Setting::BodyBytes => {
                    config.body_limit = value
                        .parse::<usize>()
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or_else(|| invalid("expected a positive number of bytes"))?;
                }
                Setting::KeyTargets
                | Setting::KeySnapshot
                | Setting::KeyTimestamp
                | Setting::KeyNamespaces => {
                    let key_ref = KeyRef::parse(value).map_err(|e| invalid(&e))?;
                    let slot = match key {
                        Setting::KeyTargets => &mut config.keys.targets,
                        Setting::KeySnapshot => &mut config.keys.snapshot,
                        Setting::KeyTimestamp => &mut config.keys.timestamp,
                        _ => &mut config.keys.namespaces,
                    };
                    *slot = key_ref;
                }
                Setting::AirgapValidFor | Setting::AirgapMaxValidFor => {
                    let d = parse_duration(value).map_err(|e| invalid(&e))?;
                    if key == Setting::AirgapValidFor {
                        config.airgap.valid_for = d;
                    } else {
                        config.airgap.max_valid_for = d;
                    }
                }
                Setting::KeyPinFile => {
                    if value.is_empty() {
                        return Err(invalid("expected a file path"));
                    }
                    config.keys.pin_file = Some(PathBuf::from(value));
                }
                Setting::PeersAllowPrivateAddresses => {
                    config.allow_private_peers =
                        parse_bool(value).ok_or_else(|| invalid("expected `true` or `false`"))?;
                }
                Setting::StoreKeepSuperseded => {
                    config.keep_superseded = if value == "forever" {
                        None
                    } else {
                        Some(
                            parse_duration(value)
                                .map_err(|e| invalid(&format!("{e}, or `forever`")))?,
                        )
                    };
                }
            }
        }
        match (raw.get(&Setting::TlsCert), raw.get(&Setting::TlsKey)) {
            (Some((cert, _)), Some((key, _))) => {
                config.tls = Some(Tls {
                    cert: cert.into(),
                    key: key.into(),
                });
            }
            (None, None) => {}
            _ => {
                return Err(ConfigError::Conflict(
                    "tls.cert and tls.key must be set together".into(),
                ))
            }
        }
        if config.airgap.valid_for > config.airgap.max_valid_for {
            return Err(ConfigError::Conflict(format!(
                "airgap.valid_for ({}) must not be longer than airgap.max_valid_for ({})",
                config.airgap.valid_for, config.airgap.max_valid_for
            )));
        }
        if config.expiry.resign_before >= config.expiry.timestamp {
            return Err(ConfigError::Conflict(format!(
                "expiry.resign_before ({}) must be shorter than expiry.timestamp ({}), \
                 or every timestamp would be re-signed at once",
                config.expiry.resign_before, config.expiry.timestamp
            )));
        }
        Ok(config)
    }

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

/// Flattens the TOML file into `raw`, refusing unknown keys and values that
/// are neither strings nor integers; returns the `[ci]` section, parsed.
fn read_file(path: &Path, text: &str, raw: &mut Raw) -> Result<Option<CiConfig>, ConfigError> {
    let mut table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        let line = e
            .span()
            .and_then(|s| text.get(..s.start))
            .map(|before| format!("line {}: ", before.matches('\n').count() + 1))
            .unwrap_or_default();
        let message: Vec<&str> = e.message().lines().map(str::trim).collect();
        ConfigError::Syntax {
            path: path.to_owned(),
            message: format!("{line}{}", message.join("; ")),
        }
    })?;
    let ci = match table.remove("ci") {
        None => None,
        Some(toml::Value::Table(ci)) => Some(
            CiConfig::from_toml(ci)
                .map_err(|e| ConfigError::Conflict(format!("{}: [ci]: {e}", path.display())))?,
        ),
        Some(_) => {
            return Err(ConfigError::Conflict(format!(
                "{}: `ci` must be a table ([ci])",
                path.display()
            )))
        }
    };
    flatten(path, "", &table, raw)?;
    Ok(ci)
}

fn flatten(
    path: &Path,
    prefix: &str,
    table: &toml::Table,
    raw: &mut Raw,
) -> Result<(), ConfigError> {
    for (name, value) in table {
        let dotted = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        if let toml::Value::Table(inner) = value {
            if matches!(
                dotted.as_str(),
                "tls" | "log" | "expiry" | "limits" | "keys" | "airgap" | "store" | "peers"
            ) {
                flatten(path, &dotted, inner, raw)?;
                continue;
            }
        }
        let Some(key) = Setting::from_name(&dotted) else {
            return Err(ConfigError::UnknownKey {
                path: path.to_owned(),
                key: dotted,
            });
        };
        let text = match value {
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            other => {
                return Err(ConfigError::Invalid {
                    key: key.name(),
                    value: other.to_string(),
                    origin: Source::File(path.to_owned()),
                    expected: format!("expected a string, not a {}", other.type_str()),
                })
            }
        };
        raw.insert(key, (text, Source::File(path.to_owned())));
    }
    Ok(())
}

/// `true`/`false` (also `1`/`0`, as environment variables are often set).
fn parse_bool(text: &str) -> Option<bool> {
    match text.trim() {
        "true" | "1" => Some(true),
        "false" | "0" => Some(false),
        _ => None,
    }
}

/// Replaces the value of every `pin-value=` attribute with `***`.
fn redact_pin_value(text: &str) -> String {
    const ATTR: &str = "pin-value=";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(ATTR) {
        let (before, after) = rest.split_at(at + ATTR.len());
        out.push_str(before);
        out.push_str("***");
        let end = after.find([';', '?', '&', '"', ' ']).unwrap_or(after.len());
        rest = after.get(end..).unwrap_or("");
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;

    fn resolve(
        file: Option<&str>,
        env: &[(&str, &str)],
        flags: &Flags,
    ) -> Result<Config, ConfigError> {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::resolve(
            file.map(|t| (Path::new("/d/keyshare.toml"), t)),
            |name| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()),
            flags,
        )
    }

    fn error(file: Option<&str>, env: &[(&str, &str)], flags: &Flags) -> String {
        let e = resolve(file, env, flags).unwrap_err().to_string();
        assert!(!e.contains('\n'), "not one line: {e}");
        e
    }

    #[test]
    fn defaults_without_file_env_or_flags() {
        assert_eq!(
            resolve(None, &[], &Flags::default()).unwrap(),
            Config::default()
        );
    }

    #[test]
    fn default_file_resolves_to_the_defaults() {
        let c = resolve(Some(DEFAULT_FILE), &[], &Flags::default()).unwrap();
        assert_eq!(c, Config::default());
    }

    #[test]
    fn file_overrides_default_env_overrides_file_flag_overrides_env() {
        let file =
            "listen = \"127.0.0.1:1000\"\n[log]\nformat = \"json\"\n[expiry]\ntimestamp = \"2d\"\n";
        let c = resolve(Some(file), &[], &Flags::default()).unwrap();
        assert_eq!(c.listen.port(), 1000);
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(c.expiry.timestamp, Duration::days(2));

        let env = [
            ("KEYSHARE_LISTEN", "127.0.0.1:2000"),
            ("KEYSHARE_EXPIRY_TIMESTAMP", "12h"),
            ("KEYSHARE_BODY_LIMIT", "1024"),
        ];
        let c = resolve(Some(file), &env, &Flags::default()).unwrap();
        assert_eq!(c.listen.port(), 2000);
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(c.expiry.timestamp, Duration::hours(12));
        assert_eq!(c.body_limit, 1024);

        let flags = Flags {
            listen: Some("127.0.0.1:3000".into()),
            log_format: Some("text".into()),
            ..Flags::default()
        };
        let c = resolve(Some(file), &env, &flags).unwrap();
        assert_eq!(c.listen.port(), 3000);
        assert_eq!(c.log_format, LogFormat::Text);
        assert_eq!(c.expiry.timestamp, Duration::hours(12));
    }

    #[test]
    fn tls_needs_both_files() {
        let flags = Flags {
            tls_cert: Some("c.pem".into()),
            ..Flags::default()
        };
        assert!(error(None, &[], &flags).contains("tls.cert and tls.key"));
        let c = resolve(None, &[("KEYSHARE_TLS_KEY", "k.pem")], &flags).unwrap();
        assert_eq!(
            c.tls,
            Some(Tls {
                cert: "c.pem".into(),
                key: "k.pem".into()
            })
        );
    }

    #[test]
    fn tls_from_the_file_as_the_default_file_shows_it() {
        // The commented-out [tls] table of DEFAULT_FILE, enabled.
        let file = DEFAULT_FILE
            .replace("# [tls]", "[tls]")
            .replace("# cert = ", "cert = ")
            .replace("# key = ", "key = ");
        let c = resolve(Some(&file), &[], &Flags::default()).unwrap();
        assert_eq!(
            c.tls,
            Some(Tls {
                cert: "/path/to/cert.pem".into(),
                key: "/path/to/key.pem".into()
            })
        );
        // Variables and flags override the file, one path at a time.
        let flags = Flags {
            tls_key: Some("flag-key.pem".into()),
            ..Flags::default()
        };
        let c = resolve(
            Some(&file),
            &[("KEYSHARE_TLS_CERT", "env-cert.pem")],
            &flags,
        )
        .unwrap();
        assert_eq!(
            c.tls,
            Some(Tls {
                cert: "env-cert.pem".into(),
                key: "flag-key.pem".into()
            })
        );
        let e = error(Some("[tls]\nkey = \"k.pem\"\n"), &[], &Flags::default());
        assert!(e.contains("tls.cert and tls.key"), "{e}");
    }

    #[test]
    fn unknown_key_in_file_is_named() {
        let e = error(Some("[log]\ncolour = \"red\"\n"), &[], &Flags::default());
        assert_eq!(e, "/d/keyshare.toml: unknown key `log.colour`");
        let e = error(Some("port = 1\n"), &[], &Flags::default());
        assert!(e.contains("unknown key `port`"), "{e}");
        let e = error(Some("[nope]\na = 1\n"), &[], &Flags::default());
        assert!(e.contains("unknown key `nope`"), "{e}");
    }

    #[test]
    fn bad_values_name_the_key_and_the_source() {
        let e = error(
            Some("[expiry]\nsnapshot = \"soon\"\n"),
            &[],
            &Flags::default(),
        );
        assert!(
            e.starts_with("invalid expiry.snapshot \"soon\" (from /d/keyshare.toml)"),
            "{e}"
        );
        let e = error(None, &[("KEYSHARE_LOG_FORMAT", "xml")], &Flags::default());
        assert!(
            e.contains("log.format") && e.contains("KEYSHARE_LOG_FORMAT"),
            "{e}"
        );
        let flags = Flags {
            listen: Some("localhost".into()),
            ..Flags::default()
        };
        let e = error(None, &[], &flags);
        assert!(e.contains("listen") && e.contains("flag --listen"), "{e}");
        let e = error(None, &[("KEYSHARE_BODY_LIMIT", "-1")], &Flags::default());
        assert!(e.contains("limits.body_bytes"), "{e}");
        let e = error(
            Some("[limits]\nbody_bytes = true\n"),
            &[],
            &Flags::default(),
        );
        assert!(e.contains("limits.body_bytes"), "{e}");
        let e = error(None, &[("KEYSHARE_LOG", "a=b=c")], &Flags::default());
        assert!(e.contains("log.level"), "{e}");
    }

    #[test]
    fn bad_toml_is_one_line() {
        let e = error(Some("listen = \n"), &[], &Flags::default());
        assert!(e.contains("not valid TOML") && e.contains("line 1"), "{e}");
        let e = error(
            Some("[log]\nlevel = \"info\"\nformat = = 1\n"),
            &[],
            &Flags::default(),
        );
        assert!(e.contains("line 3"), "{e}");
    }

    #[test]
    fn keep_superseded_is_a_duration_or_forever() {
        assert_eq!(Config::default().keep_superseded, Some(Duration::hours(1)));
        let c = resolve(
            Some("[store]\nkeep_superseded = \"10m\"\n"),
            &[],
            &Flags::default(),
        )
        .unwrap();
        assert_eq!(c.keep_superseded, Some(Duration::minutes(10)));
        let c = resolve(
            Some("[store]\nkeep_superseded = \"10m\"\n"),
            &[("KEYSHARE_STORE_KEEP_SUPERSEDED", "forever")],
            &Flags::default(),
        )
        .unwrap();
        assert_eq!(c.keep_superseded, None);
        let e = error(
            None,
            &[("KEYSHARE_STORE_KEEP_SUPERSEDED", "soon")],
            &Flags::default(),
        );
        assert!(
            e.contains("store.keep_superseded") && e.contains("forever"),
            "{e}"
        );
    }

    #[test]
    fn resign_before_must_be_shorter_than_timestamp_expiry() {
        let e = error(
            None,
            &[("KEYSHARE_EXPIRY_RESIGN_BEFORE", "1d")],
            &Flags::default(),
        );
        assert!(e.contains("expiry.resign_before"), "{e}");
    }

    const URI: &str = "pkcs11:token=ks;object=targets;type=private?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=/run/pin";

    #[test]
    fn keys_from_file_env_and_defaults() {
        let c = resolve(None, &[], &Flags::default()).unwrap();
        assert_eq!(c.keys, Keys::default());
        assert_eq!(c.keys.targets, KeyRef::Default);

        let file = format!(
            "[keys]\ntargets = \"{URI}\"\nsnapshot = \"file:/k/snap.pem\"\ntimestamp = \"ts.pem\"\npin_file = \"/p\"\n"
        );
        let c = resolve(Some(&file), &[], &Flags::default()).unwrap();
        let KeyRef::Pkcs11(uri) = &c.keys.targets else {
            panic!("{:?}", c.keys.targets);
        };
        assert_eq!(uri.token.as_deref(), Some("ks"));
        assert_eq!(uri.object.as_deref(), Some("targets"));
        assert_eq!(c.keys.snapshot, KeyRef::File("/k/snap.pem".into()));
        assert_eq!(c.keys.timestamp, KeyRef::File("ts.pem".into()));
        assert_eq!(c.keys.namespaces, KeyRef::Default);
        assert_eq!(c.keys.pin_file, Some(PathBuf::from("/p")));

        let env = [
            ("KEYSHARE_KEY_NAMESPACES", URI),
            ("KEYSHARE_KEY_TARGETS", "file:t.pem"),
            ("KEYSHARE_PIN_FILE", "/q"),
        ];
        let c = resolve(Some(&file), &env, &Flags::default()).unwrap();
        assert!(c.keys.namespaces.is_pkcs11());
        assert_eq!(c.keys.targets, KeyRef::File("t.pem".into()));
        assert_eq!(c.keys.pin_file, Some(PathBuf::from("/q")));
    }

    #[test]
    fn ci_stub_in_the_default_file_is_off_and_parses_when_uncommented() {
        assert_eq!(
            resolve(Some(DEFAULT_FILE), &[], &Flags::default())
                .unwrap()
                .ci,
            None
        );
        let stub = DEFAULT_FILE
            .split_once("\n# [ci]\n")
            .map(|(_, stub)| stub)
            .unwrap();
        // [ci] alone: CI tokens only.
        let alone = format!("{DEFAULT_FILE}[ci]\n");
        let ci = resolve(Some(&alone), &[], &Flags::default())
            .unwrap()
            .ci
            .unwrap();
        assert!(ci.issuers.is_empty() && ci.rules.is_empty());
        // Everything uncommented: one issuer, one rule.
        let uncommented: String = std::iter::once("[ci]")
            .chain(stub.lines().map(|l| l.strip_prefix("# ").unwrap()))
            .collect::<Vec<_>>()
            .join("\n");
        let file = format!("{DEFAULT_FILE}{uncommented}\n");
        let ci = resolve(Some(&file), &[], &Flags::default())
            .unwrap()
            .ci
            .unwrap();
        assert_eq!(ci.issuers.len(), 1);
        assert_eq!(ci.rules.len(), 1);
        assert_eq!(ci.max_ttl, Duration::hours(1));
    }

    #[test]
    fn keys_example_in_the_default_file_parses() {
        let file = DEFAULT_FILE
            .replace("# [keys]", "[keys]")
            .replace("# targets = ", "targets = ")
            .replace("# pin_file = ", "pin_file = ");
        let c = resolve(Some(&file), &[], &Flags::default()).unwrap();
        assert!(c.keys.targets.is_pkcs11(), "{:?}", c.keys.targets);
        assert_eq!(c.keys.snapshot, KeyRef::Default);
        assert_eq!(
            c.keys.pin_file,
            Some(PathBuf::from("/etc/keyshare/token.pin"))
        );
    }

    #[test]
    fn bad_key_references_are_refused_naming_the_setting() {
        let e = error(
            Some("[keys]\ntargets = \"pkcs11:token=ks;object=t\"\n"),
            &[],
            &Flags::default(),
        );
        assert!(
            e.starts_with("invalid keys.targets") && e.contains("module-path"),
            "{e}"
        );
        let e = error(
            None,
            &[("KEYSHARE_KEY_SNAPSHOT", "pkcs11:token=ks;bogus=1")],
            &Flags::default(),
        );
        assert!(
            e.contains("keys.snapshot") && e.contains("KEYSHARE_KEY_SNAPSHOT"),
            "{e}"
        );
        let e = error(
            None,
            &[(
                "KEYSHARE_KEY_TIMESTAMP",
                "pkcs11:object=t?module-path=/m.so",
            )],
            &Flags::default(),
        );
        assert!(e.contains("keys.timestamp") && e.contains("token"), "{e}");
        let e = error(
            Some("[keys]\nnamespaces = \"file:\"\n"),
            &[],
            &Flags::default(),
        );
        assert!(e.contains("keys.namespaces"), "{e}");
        let e = error(Some("[keys]\nroot = \"x.pem\"\n"), &[], &Flags::default());
        assert!(e.contains("unknown key `keys.root`"), "{e}");
        // A pin-value never appears in the message.
        let e = error(
            None,
            &[(
                "KEYSHARE_KEY_TARGETS",
                "pkcs11:token=ks?pin-value=s3cr3tpin&module-path=/m.so",
            )],
            &Flags::default(),
        );
        assert!(
            e.contains("keys.targets") && !e.contains("s3cr3tpin"),
            "{e}"
        );
    }

    #[test]
    fn private_peer_addresses_are_off_unless_configured_explicitly() {
        let none = resolve(None, &[], &Flags::default()).unwrap();
        assert!(!none.allow_private_peers);
        let file = "[peers]\nallow_private_addresses = true\n";
        assert!(
            resolve(Some(file), &[], &Flags::default())
                .unwrap()
                .allow_private_peers
        );
        let env = [("KEYSHARE_PEERS_ALLOW_PRIVATE_ADDRESSES", "0")];
        assert!(
            !resolve(Some(file), &env, &Flags::default())
                .unwrap()
                .allow_private_peers
        );
        let e = error(
            None,
            &[("KEYSHARE_PEERS_ALLOW_PRIVATE_ADDRESSES", "yes please")],
            &Flags::default(),
        );
        assert!(e.contains("peers.allow_private_addresses"), "{e}");
        let e = error(
            Some("[peers]\nallow_everything = true\n"),
            &[],
            &Flags::default(),
        );
        assert!(e.contains("peers.allow_everything"), "{e}");
    }
}
