//! The `[ci]` section of `keyshare.toml`: OIDC issuers, claim rules,
//! delegation lifetimes, limits and the optional CI certificate authority.
//!
//! The section is read from the file only (no `KEYSHARE_*` variables or
//! flags: its lists do not fit in one variable). Unknown keys are refused.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Deserializer};
use time::Duration;

use keyshare_policy::datetime::parse_duration;
use keyshare_policy::outbound::{Origin, Refusal};
use keyshare_policy::trust::NamespaceName;

/// The resolved `[ci]` section.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CiConfig {
    /// Lifetime of a delegation when the request names none (`10m`).
    #[serde(default = "default_ttl", deserialize_with = "duration")]
    pub default_ttl: Duration,
    /// Longest lifetime a request may ask for; longer asks are cut to it (`1h`).
    #[serde(default = "max_ttl", deserialize_with = "duration")]
    pub max_ttl: Duration,
    /// Clock skew tolerated on `exp`, `nbf` and `iat` of ID tokens (`30s`).
    #[serde(default = "clock_skew", deserialize_with = "duration")]
    pub clock_skew: Duration,
    /// Lifetime of a nonce from `POST /api/v1/ci/nonce` (`2m`).
    #[serde(default = "nonce_ttl", deserialize_with = "duration")]
    pub nonce_ttl: Duration,
    /// How often the sweeper removes expired delegations and republishes (`30s`).
    #[serde(default = "sweep_interval", deserialize_with = "duration")]
    pub sweep_interval: Duration,
    /// Delegation requests allowed per identity per `rate_window` (`60`).
    #[serde(default = "rate_limit")]
    pub rate_limit: u32,
    /// The window of `rate_limit` (`1m`).
    #[serde(default = "rate_window", deserialize_with = "duration")]
    pub rate_window: Duration,
    /// Extra time, in milliseconds, the publishing thread waits for more
    /// delegations once its queue is empty before it publishes (`0`: none;
    /// delegations that arrive while a publish runs share the next one
    /// anyway).
    #[serde(default = "batch_wait_ms")]
    pub batch_wait_ms: u64,
    /// Most changes in one publish (`512`).
    #[serde(default = "batch_max")]
    pub batch_max: usize,
    /// Least time between two JWKS fetches of one issuer when a token names
    /// an unknown `kid` (`1m`).
    #[serde(default = "jwks_refresh", deserialize_with = "duration")]
    pub jwks_min_refresh: Duration,
    /// The CI certificate authority; without it no certificates are issued.
    #[serde(default)]
    pub ca: Option<CaConfig>,
    /// Allow issuers (and their `jwks_uri`) on private or loopback
    /// addresses, and `http://` to loopback: tests and a local issuer only.
    /// Off: every URL the server fetches keys from is `https://` to a
    /// public host.
    #[serde(default)]
    pub allow_private_addresses: bool,
    /// Trusted OIDC issuers.
    #[serde(default)]
    pub issuers: Vec<IssuerConfig>,
    /// Claim rules: which jobs may sign for which namespaces.
    #[serde(default)]
    pub rules: Vec<ClaimRule>,
}

impl Default for CiConfig {
    fn default() -> Self {
        Self {
            default_ttl: default_ttl(),
            max_ttl: max_ttl(),
            clock_skew: clock_skew(),
            nonce_ttl: nonce_ttl(),
            sweep_interval: sweep_interval(),
            rate_limit: rate_limit(),
            rate_window: rate_window(),
            batch_wait_ms: batch_wait_ms(),
            batch_max: batch_max(),
            jwks_min_refresh: jwks_refresh(),
            ca: None,
            allow_private_addresses: false,
            issuers: Vec::new(),
            rules: Vec::new(),
        }
    }
}

impl CiConfig {
    /// Parses the `[ci]` table and checks it.
    pub fn from_toml(table: toml::Table) -> Result<Self, String> {
        let config: Self = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| e.message().replace('\n', " "))?;
        config.check()?;
        Ok(config)
    }

    /// Checks what serde cannot: positive durations, rules naming
    /// configured issuers and existing-looking namespaces.
    pub fn check(&self) -> Result<(), String> {
        if self.default_ttl <= Duration::ZERO || self.default_ttl > self.max_ttl {
            return Err(format!(
                "ci.default_ttl ({}) must be positive and at most ci.max_ttl ({})",
                self.default_ttl, self.max_ttl
            ));
        }
        if self.sweep_interval < Duration::SECOND {
            return Err("ci.sweep_interval must be at least 1s".into());
        }
        if self.rate_limit == 0 || self.rate_window <= Duration::ZERO {
            return Err("ci.rate_limit and ci.rate_window must be positive".into());
        }
        if self.batch_max == 0 {
            return Err("ci.batch_max must be positive".into());
        }
        if self.nonce_ttl <= Duration::ZERO {
            return Err("ci.nonce_ttl must be positive".into());
        }
        let mut urls = Vec::new();
        for (i, issuer) in self.issuers.iter().enumerate() {
            if issuer.url.is_empty() || issuer.audience.is_empty() {
                return Err(format!(
                    "ci.issuers[{i}]: `url` and `audience` are required"
                ));
            }
            if urls.contains(&issuer.url.as_str()) {
                return Err(format!(
                    "ci.issuers[{i}]: issuer {} is listed twice",
                    issuer.url
                ));
            }
            urls.push(issuer.url.as_str());
            if issuer.jwks_file.is_none() {
                check_fetch_url(&issuer.url, self.allow_private_addresses)
                    .map_err(|e| format!("ci.issuers[{i}].url: {e}"))?;
            }
            for (j, host) in issuer.jwks_hosts.iter().enumerate() {
                let ok = Origin::parse(&format!("https://{host}"))
                    .is_ok_and(|o| o.port.is_none() && o.host.to_string() == *host);
                if !ok {
                    return Err(format!(
                        "ci.issuers[{i}].jwks_hosts[{j}]: `{host}` is not a lowercase host name"
                    ));
                }
            }
        }
        for (i, rule) in self.rules.iter().enumerate() {
            if !urls.contains(&rule.issuer.as_str()) {
                return Err(format!(
                    "ci.rules[{i}].issuer: {} is not one of ci.issuers",
                    rule.issuer
                ));
            }
            if rule.namespaces.is_empty() {
                return Err(format!(
                    "ci.rules[{i}].namespaces: name at least one namespace"
                ));
            }
            if rule.claims.is_empty() {
                return Err(format!(
                    "ci.rules[{i}].claims: a rule without claims would match every job of the issuer; name at least one claim"
                ));
            }
        }
        Ok(())
    }
}

/// Whether the server may fetch an issuer's discovery document or key set
/// from `url`: `https://` to a host not written as a private address; with
/// `allow_private` (`ci.allow_private_addresses`) also private hosts and
/// `http://` to loopback. Host names resolving to private addresses are
/// refused when fetching.
pub fn check_fetch_url(url: &str, allow_private: bool) -> Result<Origin, String> {
    keyshare_policy::outbound::check(url, allow_private).map_err(|refusal| match refusal {
        Refusal::Malformed(m) => m,
        other => format!(
            "{other}; issuers must be https:// on public addresses (private and loopback addresses only with ci.allow_private_addresses = true, for tests or a local issuer)"
        ),
    })
}

/// `[ci.ca]`: the organization's CI certificate authority.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaConfig {
    /// The CA certificate (PEM), followed by any intermediates up to (not
    /// including) the root; a relative path is relative to the data directory.
    pub cert: PathBuf,
    /// The CA's private key: a key reference as in `[keys]` (`file:PATH`,
    /// `PATH` or `pkcs11:...`); ECDSA P-256 or Ed25519.
    pub key: String,
}

/// `[[ci.issuers]]`: one trusted OIDC issuer.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerConfig {
    /// The issuer URL, exactly as in the tokens' `iss` claim.
    pub url: String,
    /// The audience tokens must be issued for (`aud`).
    pub audience: String,
    /// A static JWKS file instead of fetching the discovery document
    /// (sites without network to the issuer). Relative: to the data directory.
    #[serde(default)]
    pub jwks_file: Option<PathBuf>,
    /// Hosts other than the issuer's own that its discovery document's
    /// `jwks_uri` may name (e.g. `www.googleapis.com` for
    /// `https://accounts.google.com`). Empty: the key set must be on the
    /// issuer's host and port.
    #[serde(default)]
    pub jwks_hosts: Vec<String>,
}

/// `[[ci.rules]]`: jobs of `issuer` whose claims match every pattern of
/// `claims` may sign for `namespaces`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimRule {
    /// The issuer URL (one of `ci.issuers`).
    pub issuer: String,
    /// Claim name → pattern. A pattern matches the claim's value exactly,
    /// except that `*` matches any run of characters (including `/`) and `?`
    /// any one character. Boolean claims match `"true"` or `"false"`.
    pub claims: BTreeMap<String, String>,
    /// The namespaces a matching job may sign for.
    pub namespaces: Vec<NamespaceName>,
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    parse_duration(&text).map_err(serde::de::Error::custom)
}

fn default_ttl() -> Duration {
    Duration::minutes(10)
}
fn max_ttl() -> Duration {
    Duration::hours(1)
}
fn clock_skew() -> Duration {
    Duration::seconds(30)
}
fn nonce_ttl() -> Duration {
    Duration::minutes(2)
}
fn sweep_interval() -> Duration {
    Duration::seconds(30)
}
fn rate_limit() -> u32 {
    60
}
fn rate_window() -> Duration {
    Duration::minutes(1)
}
fn batch_wait_ms() -> u64 {
    0
}
fn batch_max() -> usize {
    512
}
fn jwks_refresh() -> Duration {
    Duration::minutes(1)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn parse(text: &str) -> Result<CiConfig, String> {
        let table: toml::Table = text.parse().unwrap();
        CiConfig::from_toml(table)
    }

    #[test]
    fn github_example_parses() {
        let c = parse(
            r#"
            default_ttl = "5m"
            [[issuers]]
            url = "https://token.actions.githubusercontent.com"
            audience = "https://keyshare.acme.io"
            [[rules]]
            issuer = "https://token.actions.githubusercontent.com"
            namespaces = ["team-a"]
            claims = { repository = "acme/team-a-*", ref = "refs/heads/main" }
            "#,
        )
        .unwrap();
        assert_eq!(c.default_ttl, Duration::minutes(5));
        assert_eq!(c.max_ttl, Duration::hours(1));
        assert_eq!(c.rules[0].claims["ref"], "refs/heads/main");
    }

    #[test]
    fn rule_for_an_unknown_issuer_or_without_claims_is_refused() {
        let e = parse(
            r#"
            [[rules]]
            issuer = "https://elsewhere"
            namespaces = ["a"]
            claims = { sub = "x" }
            "#,
        )
        .unwrap_err();
        assert!(e.contains("not one of ci.issuers"), "{e}");
        let e = parse(
            r#"
            [[issuers]]
            url = "https://i"
            audience = "a"
            [[rules]]
            issuer = "https://i"
            namespaces = ["a"]
            claims = {}
            "#,
        )
        .unwrap_err();
        assert!(e.contains("without claims"), "{e}");
    }

    #[test]
    fn unknown_keys_and_plain_http_issuers_are_refused() {
        assert!(parse("colour = \"red\"").unwrap_err().contains("colour"));
        let e =
            parse("[[issuers]]\nurl = \"http://issuer.example\"\naudience = \"a\"").unwrap_err();
        assert!(e.contains("https"), "{e}");
        // Plain http to loopback only where private addresses are allowed.
        let loopback = "[[issuers]]\nurl = \"http://127.0.0.1:8080\"\naudience = \"a\"";
        assert!(parse(loopback).is_err());
        parse(&format!("allow_private_addresses = true\n{loopback}")).unwrap();
    }

    #[test]
    fn outbound_requests_steered_inward_issuer_urls_must_be_https_to_public_hosts() {
        let config = |url: &str, extra: &str| {
            format!(
                "{extra}\n[[issuers]]\nurl = \"{url}\"\naudience = \"a\"\n[[rules]]\nissuer = \"{url}\"\nnamespaces = [\"a\"]\nclaims = {{ sub = \"x\" }}\n"
            )
        };
        for (url, allowed_with_opt_in) in [
            ("http://issuer.example", false),
            ("http://10.0.0.1", false),
            ("https://169.254.169.254", true),
            ("https://10.0.0.5/issuer", true),
            ("https://127.0.0.1:8443", true),
            ("https://localhost", true),
            ("https://[fd00::1]", true),
            ("http://127.0.0.1:9000", true),
        ] {
            let e = parse(&config(url, "")).unwrap_err();
            assert!(e.starts_with("ci.issuers[0].url: "), "{url}: {e}");
            assert!(e.contains(url), "{url}: {e}");
            assert!(!e.contains('\n'), "{url}: {e}");
            let opted_in = parse(&config(url, "allow_private_addresses = true"));
            assert_eq!(opted_in.is_ok(), allowed_with_opt_in, "{url}: {opted_in:?}");
        }
        parse(&config("https://token.actions.githubusercontent.com", "")).unwrap();
        // A static key set is never fetched: its issuer URL is a name only.
        let mut c = parse(&config("https://i.example", "")).unwrap();
        c.issuers[0].url = "https://10.0.0.5".into();
        c.rules[0].issuer = "https://10.0.0.5".into();
        c.issuers[0].jwks_file = Some("jwks.json".into());
        c.check().unwrap();
        // Other key set hosts are host names.
        c.issuers[0].jwks_hosts = vec!["www.googleapis.com".into()];
        c.check().unwrap();
        for bad in ["https://x", "x:443", "X.example", ""] {
            c.issuers[0].jwks_hosts = vec![bad.into()];
            let e = c.check().unwrap_err();
            assert!(e.contains("ci.issuers[0].jwks_hosts[0]"), "{bad}: {e}");
        }
    }
}
