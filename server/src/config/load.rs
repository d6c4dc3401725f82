//! Reading the configuration: `<data-dir>/keyshare.toml`, then the
//! `KEYSHARE_*` environment variables, then the command-line flags, each
//! overriding the one before; every value is parsed here into
//! [`Config`]'s typed fields.

use std::path::{Path, PathBuf};

use super::file::read_file;
use super::settings::{Raw, Setting, KEYS};
use super::{
    parse_duration, Config, ConfigError, KeyRef, LogFormat, Source, Tls, MIN_RESIGN_BEFORE,
};

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
                Setting::MaxWaiters => {
                    config.max_waiters = value
                        .parse::<usize>()
                        .map_err(|_| invalid("expected a number of readers (0: nobody waits)"))?;
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
                Setting::TsaEnabled => {
                    config.tsa.enabled =
                        parse_bool(value).ok_or_else(|| invalid("expected `true` or `false`"))?;
                }
                Setting::TsaKey => {
                    config.tsa.key = KeyRef::parse(value).map_err(|e| invalid(&e))?;
                }
                Setting::TsaCertChain => {
                    if value.is_empty() {
                        return Err(invalid("expected a file path"));
                    }
                    config.tsa.cert_chain = Some(PathBuf::from(value));
                }
                Setting::TsaPolicy => {
                    super::tsa::check_oid(value).map_err(|e| invalid(&e))?;
                    config.tsa.policy.clone_from(value);
                }
                Setting::TsaAccuracy => {
                    let d = parse_duration(value).map_err(|e| invalid(&e))?;
                    if d < time::Duration::seconds(1) || d.subsec_nanoseconds() != 0 {
                        return Err(invalid("expected whole seconds, at least 1s"));
                    }
                    config.tsa.accuracy = d;
                }
                Setting::TsaRateLimit => {
                    config.tsa.rate_limit = value
                        .parse::<u32>()
                        .map_err(|_| invalid("expected a number of requests (0: no limit)"))?;
                }
                Setting::TsaRateWindow => {
                    let d = parse_duration(value).map_err(|e| invalid(&e))?;
                    if d <= time::Duration::ZERO {
                        return Err(invalid("expected a positive duration"));
                    }
                    config.tsa.rate_window = d;
                }
                Setting::PortalSessionIdle | Setting::PortalSessionLifetime => {
                    let d = parse_duration(value).map_err(|e| invalid(&e))?;
                    if d < time::Duration::minutes(1) {
                        return Err(invalid("expected a duration of at least 1m"));
                    }
                    if key == Setting::PortalSessionIdle {
                        config.portal.session_idle = d;
                    } else {
                        config.portal.session_lifetime = d;
                    }
                }
                Setting::StoreUrl => {
                    config.store_url = if value.is_empty() {
                        None
                    } else if value.starts_with("postgres://") || value.starts_with("postgresql://")
                    {
                        Some(super::StoreUrl(value.clone()))
                    } else {
                        // The value may hold a password: never shown.
                        return Err(ConfigError::Invalid {
                            key: key.name(),
                            value: "(not shown)".into(),
                            origin: source.clone(),
                            expected: "a postgres:// or postgresql:// URL, or empty for the \
                                       SQLite file in the data directory"
                                .into(),
                        });
                    };
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
        if config.portal.session_idle > config.portal.session_lifetime {
            return Err(ConfigError::Conflict(format!(
                "portal.session_idle ({}) must not be longer than portal.session_lifetime ({})",
                config.portal.session_idle, config.portal.session_lifetime
            )));
        }
        if config.airgap.valid_for > config.airgap.max_valid_for {
            return Err(ConfigError::Conflict(format!(
                "airgap.valid_for ({}) must not be longer than airgap.max_valid_for ({})",
                config.airgap.valid_for, config.airgap.max_valid_for
            )));
        }
        if !raw.contains_key(&Setting::ExpiryResignBefore) {
            // Half the timestamp's lifetime when that is shorter than the
            // default: short timestamps need no second setting.
            config.expiry.resign_before =
                config.expiry.resign_before.min(config.expiry.timestamp / 2);
        }
        if config.expiry.resign_before < MIN_RESIGN_BEFORE {
            return Err(ConfigError::Conflict(format!(
                "expiry.resign_before ({}) must be at least {MIN_RESIGN_BEFORE}: the server re-signs on a timer, \
                 and a timestamp must not expire between two runs (expiry.timestamp at least {} then)",
                config.expiry.resign_before,
                MIN_RESIGN_BEFORE * 2
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

    use time::Duration;

    use super::*;
    use crate::config::{Keys, DEFAULT_FILE};

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
            ("KEYSHARE_MAX_WAITERS", "0"),
        ];
        let c = resolve(Some(file), &env, &Flags::default()).unwrap();
        assert_eq!(c.max_waiters, 0);
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
        let e = error(Some("[limits]\nmax_waiters = -3\n"), &[], &Flags::default());
        assert!(e.contains("limits.max_waiters"), "{e}");
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
    fn store_url_is_a_postgres_url_never_shown() {
        assert_eq!(Config::default().store_url, None);
        let c = resolve(
            Some("[store]\nurl = \"postgres://ks:s3cret@db.example/ks\"\n"),
            &[],
            &Flags::default(),
        )
        .unwrap();
        let url = c.store_url.clone().unwrap();
        assert_eq!(url.expose(), "postgres://ks:s3cret@db.example/ks");
        assert!(!format!("{c:?}").contains("s3cret"));
        let c = resolve(
            Some("[store]\nurl = \"postgres://x/y\"\n"),
            &[("KEYSHARE_STORE_URL", "")],
            &Flags::default(),
        )
        .unwrap();
        assert_eq!(c.store_url, None, "empty: the SQLite file");
        let e = error(
            None,
            &[("KEYSHARE_STORE_URL", "mysql://ks:s3cret@db/ks")],
            &Flags::default(),
        );
        assert!(e.contains("store.url") && e.contains("postgres://"), "{e}");
        assert!(!e.contains("s3cret"), "{e}");
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
    fn short_timestamps_are_re_signed_at_half_their_lifetime_unless_told_otherwise() {
        let c = resolve(
            None,
            &[("KEYSHARE_EXPIRY_TIMESTAMP", "5m")],
            &Flags::default(),
        )
        .unwrap();
        assert_eq!(c.expiry.timestamp, Duration::minutes(5));
        assert_eq!(c.expiry.resign_before, Duration::seconds(150));
        let c = resolve(Some(DEFAULT_FILE), &[], &Flags::default()).unwrap();
        assert_eq!(c.expiry.resign_before, Duration::hours(6));
        let c = resolve(
            None,
            &[
                ("KEYSHARE_EXPIRY_TIMESTAMP", "5m"),
                ("KEYSHARE_EXPIRY_RESIGN_BEFORE", "4m"),
            ],
            &Flags::default(),
        )
        .unwrap();
        assert_eq!(c.expiry.resign_before, Duration::minutes(4));
        // Too short to be re-signed on the timer in time.
        let e = error(
            None,
            &[("KEYSHARE_EXPIRY_TIMESTAMP", "90s")],
            &Flags::default(),
        );
        assert!(
            e.contains("expiry.resign_before") && e.contains("at least"),
            "{e}"
        );
        let e = error(
            None,
            &[
                ("KEYSHARE_EXPIRY_TIMESTAMP", "10m"),
                ("KEYSHARE_EXPIRY_RESIGN_BEFORE", "30s"),
            ],
            &Flags::default(),
        );
        assert!(e.contains("at least"), "{e}");
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
    fn portal_session_lengths_from_file_and_env_and_their_refusals() {
        let c = resolve(Some(DEFAULT_FILE), &[], &Flags::default()).unwrap();
        assert_eq!(c.portal.session_idle, Duration::minutes(30));
        assert_eq!(c.portal.session_lifetime, Duration::hours(12));
        let c = resolve(
            Some(DEFAULT_FILE),
            &[
                ("KEYSHARE_PORTAL_SESSION_IDLE", "10m"),
                ("KEYSHARE_PORTAL_SESSION_LIFETIME", "1h"),
            ],
            &Flags::default(),
        )
        .unwrap();
        assert_eq!(c.portal.session_idle, Duration::minutes(10));
        assert_eq!(c.portal.session_lifetime, Duration::hours(1));
        for env in [
            [
                ("KEYSHARE_PORTAL_SESSION_IDLE", "2h"),
                ("KEYSHARE_PORTAL_SESSION_LIFETIME", "1h"),
            ],
            [
                ("KEYSHARE_PORTAL_SESSION_IDLE", "10s"),
                ("KEYSHARE_PORTAL_SESSION_LIFETIME", "1h"),
            ],
            [
                ("KEYSHARE_PORTAL_SESSION_IDLE", "soon"),
                ("KEYSHARE_PORTAL_SESSION_LIFETIME", "1h"),
            ],
        ] {
            let e = resolve(Some(DEFAULT_FILE), &env, &Flags::default()).unwrap_err();
            assert!(e.to_string().contains("portal.session_idle"), "{e}");
        }
    }

    #[test]
    fn tsa_settings_from_file_and_env_and_their_refusals() {
        let c = resolve(Some(DEFAULT_FILE), &[], &Flags::default()).unwrap();
        assert!(c.tsa.enabled);
        assert_eq!(c.tsa.policy, crate::config::DEFAULT_POLICY);
        // The commented-out lines of the [tsa] table, enabled.
        let file = DEFAULT_FILE
            .replace(
                "# key = \"pkcs11:token=keyshare;object=tsa",
                "key = \"pkcs11:token=keyshare;object=tsa",
            )
            .replace("# cert_chain = ", "cert_chain = ");
        let c = resolve(
            Some(&file),
            &[
                ("KEYSHARE_TSA_POLICY", "1.2.3.4"),
                ("KEYSHARE_TSA_ACCURACY", "2s"),
                ("KEYSHARE_TSA_RATE_LIMIT", "0"),
                ("KEYSHARE_TSA_ENABLED", "false"),
            ],
            &Flags::default(),
        )
        .unwrap();
        assert!(c.tsa.key.is_pkcs11(), "{:?}", c.tsa.key);
        assert_eq!(c.tsa.cert_chain, Some(PathBuf::from("tsa/chain.pem")));
        assert_eq!(c.tsa.policy, "1.2.3.4");
        assert_eq!(c.tsa.accuracy, Duration::seconds(2));
        assert_eq!(c.tsa.rate_limit, 0);
        assert!(!c.tsa.enabled);
        for (var, value) in [
            (
                "KEYSHARE_TSA_POLICY",
                "2.25.96320766088623288303540650397250267126",
            ),
            ("KEYSHARE_TSA_POLICY", "policy-1"),
            ("KEYSHARE_TSA_ACCURACY", "0s"),
            ("KEYSHARE_TSA_RATE_LIMIT", "-1"),
            ("KEYSHARE_TSA_RATE_WINDOW", "0s"),
            ("KEYSHARE_TSA_ENABLED", "yes"),
            ("KEYSHARE_TSA_KEY", "pkcs11:token=t"),
        ] {
            let e = error(None, &[(var, value)], &Flags::default());
            assert!(e.contains("tsa.") && e.contains(var), "{e}");
        }
        let e = error(
            Some(
                "[tsa]
serial = 1
",
            ),
            &[],
            &Flags::default(),
        );
        assert!(e.contains("unknown key `tsa.serial`"), "{e}");
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
