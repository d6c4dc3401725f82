//! OIDC ID tokens: signature checks against the issuer's JWKS, then the
//! claims (`iss`, `aud`, `exp`, `nbf`, `iat`, and `sub`, which must be
//! there) against the configuration and a given time.
//!
//! Only asymmetric algorithms are accepted (RS256, RS384, RS512, ES256,
//! ES384); `none` and every HMAC algorithm are refused before any key is
//! looked at. Signatures are checked with `jsonwebtoken` through an OpenSSL
//! crypto provider ([`super::jwt_openssl`]), the crypto stack of the rest
//! of keyshare. [`check_token`] is pure: it takes the
//! JWKS and the time. [`Oidc`] adds the key sets: read from a configured
//! file, or fetched through the issuer's discovery document
//! (`<issuer>/.well-known/openid-configuration` → `jwks_uri`) on first use
//! and again when a token names a `kid` the cached set lacks (at most once
//! per `ci.jwks_min_refresh` per issuer). Tokens are never logged or kept.
//!
//! Fetches are not steered inward: both URLs must be `https://` to public
//! addresses — checked as written and again on every address a host name
//! resolves to — unless `ci.allow_private_addresses` is set; redirects are
//! not followed; and the `jwks_uri` must stay on the issuer's host and port
//! unless its host is one of the issuer's `jwks_hosts`.

use std::collections::HashMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};
use time::{Duration, OffsetDateTime};

use super::{CiError, TokenTime};
use crate::config::ci::{check_fetch_url, IssuerConfig};

/// Algorithms accepted in ID tokens.
pub const ALGORITHMS: [&str; 5] = ["RS256", "RS384", "RS512", "ES256", "ES384"];

/// An ID token whose signature, issuer, audience and times were checked.
#[derive(Clone, Debug)]
pub struct VerifiedToken {
    /// `iss`.
    pub issuer: String,
    /// `sub`, exactly (tokens without one are refused).
    pub subject: String,
    /// Every claim of the payload.
    pub claims: Map<String, Value>,
    /// What identifies this token for replay detection: `jti:<jti>`, or
    /// `sha256:<hex of the token>` when it has no `jti`.
    pub replay_key: String,
    /// `exp`.
    pub expires_at: OffsetDateTime,
}

/// Decodes unpadded base64url.
fn base64url(part: &str) -> Option<Vec<u8>> {
    if part.len() > 64 * 1024 {
        return None;
    }
    let mut text: String = part
        .chars()
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            c => c,
        })
        .collect();
    if text.contains(['=', '\n', '\r']) {
        return None;
    }
    while text.len() % 4 != 0 {
        text.push('=');
    }
    let decoded = openssl::base64::decode_block(&text).ok();
    let _ = openssl::error::ErrorStack::get();
    decoded
}

/// The header and payload of a compact JWS, unverified.
/// A JSON object of a token (header or payload).
type Object = Map<String, Value>;

fn split(token: &str) -> Result<(Object, Object), CiError> {
    let malformed = |m: &str| CiError::MalformedToken(m.to_owned());
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed("not a compact JWS (three base64url parts)"));
    };
    let decode = |part: &str, what: &str| -> Result<Map<String, Value>, CiError> {
        let bytes =
            base64url(part).ok_or_else(|| malformed(&format!("{what} is not base64url")))?;
        serde_json::from_slice(&bytes)
            .map_err(|_| malformed(&format!("{what} is not a JSON object")))
    };
    Ok((decode(h, "header")?, decode(p, "payload")?))
}

/// The `iss` claim of a token, unverified (to choose the issuer's keys).
pub fn unverified_issuer(token: &str) -> Result<String, CiError> {
    let (_, payload) = split(token)?;
    payload
        .get("iss")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| CiError::WrongIssuer("the token has no `iss` claim".into()))
}

/// What [`check_token`] needs from the key set.
#[derive(Debug)]
pub enum KeyMiss {
    /// The key set has no key the token's header names.
    UnknownKid(String),
}

/// Checks `token` against `issuer` with `jwks`, as of `now`, allowing
/// `skew` on the times. `Ok(Err(KeyMiss))` asks the caller to refresh the
/// key set and retry.
pub fn check_token(
    token: &str,
    issuer: &IssuerConfig,
    jwks: &JwkSet,
    now: OffsetDateTime,
    skew: Duration,
) -> Result<Result<VerifiedToken, KeyMiss>, CiError> {
    let (header, payload) = split(token)?;
    let alg = header.get("alg").and_then(Value::as_str).unwrap_or("");
    if !ALGORITHMS.contains(&alg) {
        return Err(CiError::BadSignature(format!(
            "algorithm `{alg}` is not accepted (accepted: {})",
            ALGORITHMS.join(", ")
        )));
    }
    let iss = payload.get("iss").and_then(Value::as_str).unwrap_or("");
    if iss != issuer.url {
        return Err(CiError::WrongIssuer(format!(
            "token issuer `{iss}` is not a configured issuer"
        )));
    }
    let alg = match alg {
        "RS256" => Algorithm::RS256,
        "RS384" => Algorithm::RS384,
        "RS512" => Algorithm::RS512,
        "ES256" => Algorithm::ES256,
        _ => Algorithm::ES384,
    };
    let kid = header.get("kid").and_then(Value::as_str);
    let candidates: Vec<&Jwk> = match kid {
        Some(kid) => jwks
            .keys
            .iter()
            .filter(|k| k.common.key_id.as_deref() == Some(kid))
            .collect(),
        None => jwks.keys.iter().collect(),
    };
    let candidates: Vec<&Jwk> = candidates
        .into_iter()
        .filter(|k| match &k.algorithm {
            AlgorithmParameters::RSA(_) => alg.family() == jsonwebtoken::AlgorithmFamily::Rsa,
            AlgorithmParameters::EllipticCurve(_) => {
                alg.family() == jsonwebtoken::AlgorithmFamily::Ec
            }
            _ => false,
        })
        .filter(|k| {
            k.common
                .public_key_use
                .as_ref()
                .is_none_or(|u| *u == PublicKeyUse::Signature)
        })
        .collect();
    if candidates.is_empty() {
        return Ok(Err(KeyMiss::UnknownKid(kid.unwrap_or("(none)").to_owned())));
    }
    super::jwt_openssl::install();
    let mut validation = Validation::new(alg);
    // Times, issuer and audience are checked below, against `now`.
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let mut verified = None;
    for jwk in candidates {
        let Ok(key) = DecodingKey::from_jwk(jwk) else {
            continue;
        };
        if let Ok(data) = jsonwebtoken::decode::<Object>(token, &key, &validation) {
            verified = Some(data.claims);
            break;
        }
    }
    let _ = openssl::error::ErrorStack::get();
    let Some(claims) = verified else {
        return Err(CiError::BadSignature(format!(
            "the token's {alg:?} signature does not verify with the issuer's key{}",
            kid.map(|k| format!(" `{k}`")).unwrap_or_default()
        )));
    };
    check_claims(token, issuer, claims, now, skew).map(Ok)
}

fn time_claim(claims: &Map<String, Value>, name: &str) -> Result<Option<OffsetDateTime>, CiError> {
    match claims.get(name) {
        None => Ok(None),
        Some(v) => v
            .as_i64()
            .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
            .map(Some)
            .ok_or_else(|| CiError::MalformedToken(format!("`{name}` is not a time in seconds"))),
    }
}

fn check_claims(
    token: &str,
    issuer: &IssuerConfig,
    claims: Map<String, Value>,
    now: OffsetDateTime,
    skew: Duration,
) -> Result<VerifiedToken, CiError> {
    let audience_ok = match claims.get("aud") {
        Some(Value::String(a)) => *a == issuer.audience,
        Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(&issuer.audience)),
        _ => false,
    };
    if !audience_ok {
        let got = claims
            .get("aud")
            .map_or("(none)".to_owned(), Value::to_string);
        return Err(CiError::WrongAudience(format!(
            "token audience {got} does not include `{}`",
            issuer.audience
        )));
    }
    let exp = time_claim(&claims, "exp")?
        .ok_or_else(|| CiError::MalformedToken("the token has no `exp` claim".into()))?;
    if now >= exp + skew {
        return Err(CiError::ExpiredToken(TokenTime::Expired { exp, now }));
    }
    if let Some(nbf) = time_claim(&claims, "nbf")? {
        if now + skew < nbf {
            return Err(CiError::ExpiredToken(TokenTime::NotYetValid { nbf, now }));
        }
    }
    if let Some(iat) = time_claim(&claims, "iat")? {
        if now + skew < iat {
            return Err(CiError::ExpiredToken(TokenTime::IssuedInFuture {
                iat,
                now,
            }));
        }
    }
    // The subject names the job: its delegations belong to it. A token
    // without one could not be told apart from another job's.
    let subject = match claims.get("sub") {
        Some(Value::String(sub)) if !sub.is_empty() => sub.clone(),
        _ => {
            return Err(CiError::MalformedToken(
                "the token has no `sub` claim (a non-empty string naming the job), which \
                 keyshare needs to know whose delegation it is"
                    .into(),
            ))
        }
    };
    let replay_key = match claims.get("jti").and_then(Value::as_str) {
        Some(jti) => format!("jti:{jti}"),
        None => format!(
            "sha256:{}",
            keyshare_policy::hash::sha256_hex(token.as_bytes())
        ),
    };
    Ok(VerifiedToken {
        issuer: issuer.url.clone(),
        subject,
        claims,
        replay_key,
        expires_at: exp,
    })
}

/// One issuer and its cached key set.
#[derive(Debug)]
struct Issuer {
    config: IssuerConfig,
    /// The key set and when it was fetched. Tokens are checked against a
    /// shared copy, outside the lock, so checks run side by side.
    jwks: Mutex<Option<(Arc<JwkSet>, OffsetDateTime)>>,
}

/// The configured issuers with their key sets.
#[derive(Debug)]
pub struct Oidc {
    issuers: HashMap<String, Issuer>,
    data_dir: PathBuf,
    skew: Duration,
    min_refresh: Duration,
    allow_private: bool,
}

impl Oidc {
    /// The issuers of the configuration; relative `jwks_file`s are
    /// relative to `data_dir`. Nothing is fetched yet. `allow_private` is
    /// `ci.allow_private_addresses`.
    pub fn new(
        issuers: &[IssuerConfig],
        data_dir: &Path,
        skew: Duration,
        min_refresh: Duration,
        allow_private: bool,
    ) -> Self {
        Self {
            issuers: issuers
                .iter()
                .map(|c| {
                    (
                        c.url.clone(),
                        Issuer {
                            config: c.clone(),
                            jwks: Mutex::new(None),
                        },
                    )
                })
                .collect(),
            data_dir: data_dir.to_owned(),
            skew,
            min_refresh,
            allow_private,
        }
    }

    /// Verifies `token` as of `now`. Blocking: may fetch the issuer's keys.
    pub fn verify(&self, token: &str, now: OffsetDateTime) -> Result<VerifiedToken, CiError> {
        let iss = unverified_issuer(token)?;
        let issuer = self.issuers.get(&iss).ok_or_else(|| {
            CiError::WrongIssuer(format!("token issuer `{iss}` is not a configured issuer"))
        })?;
        let jwks = {
            let mut cached = issuer.jwks.lock().unwrap_or_else(PoisonError::into_inner);
            if cached.is_none() {
                *cached = Some((Arc::new(self.fetch(&issuer.config)?), now));
            }
            let Some((jwks, _)) = cached.as_ref() else {
                return Err(CiError::IssuerUnavailable("no key set".into()));
            };
            jwks.clone()
        };
        let kid = match check_token(token, &issuer.config, &jwks, now, self.skew)? {
            Ok(v) => return Ok(v),
            Err(KeyMiss::UnknownKid(kid)) => kid,
        };
        // The issuer may have rotated its keys: fetch again (unless another
        // request did meanwhile), but not more often than min_refresh.
        let jwks = {
            let mut cached = issuer.jwks.lock().unwrap_or_else(PoisonError::into_inner);
            let Some((current, fetched)) = cached.as_ref() else {
                return Err(CiError::IssuerUnavailable("no key set".into()));
            };
            if Arc::ptr_eq(current, &jwks) {
                if now - *fetched < self.min_refresh {
                    return Err(CiError::BadSignature(format!(
                        "the issuer's key set has no key `{kid}`"
                    )));
                }
                let fresh = Arc::new(self.fetch(&issuer.config)?);
                *cached = Some((fresh.clone(), now));
                fresh
            } else {
                current.clone()
            }
        };
        match check_token(token, &issuer.config, &jwks, now, self.skew)? {
            Ok(v) => Ok(v),
            Err(KeyMiss::UnknownKid(kid)) => Err(CiError::BadSignature(format!(
                "the issuer's key set has no key `{kid}`"
            ))),
        }
    }

    fn fetch(&self, issuer: &IssuerConfig) -> Result<JwkSet, CiError> {
        let unavailable = |m: String| CiError::IssuerUnavailable(format!("{}: {m}", issuer.url));
        let bytes = match &issuer.jwks_file {
            Some(file) => {
                let path = self.data_dir.join(file);
                std::fs::read(&path).map_err(|e| unavailable(format!("{}: {e}", path.display())))?
            }
            None => fetch_jwks(issuer, self.allow_private).map_err(unavailable)?,
        };
        let set: JwkSet =
            serde_json::from_slice(&bytes).map_err(|e| unavailable(format!("bad JWKS: {e}")))?;
        tracing::info!(issuer = %issuer.url, keys = set.keys.len(), "loaded OIDC key set");
        Ok(set)
    }
}

/// Resolves `netloc` (`host:port`) for a fetch, refusing every answer that
/// holds a private or loopback address unless `allow_private`: a public
/// name must not lead inward, whatever its DNS says.
fn resolve_public(netloc: &str, allow_private: bool) -> std::io::Result<Vec<SocketAddr>> {
    let addrs: Vec<SocketAddr> = netloc.to_socket_addrs()?.collect();
    if !allow_private {
        for addr in &addrs {
            if let Some(kind) = keyshare_policy::outbound::private_kind(addr.ip()) {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    format!(
                        "{netloc} resolves to {}, {kind} (allowed only with ci.allow_private_addresses = true)",
                        addr.ip()
                    ),
                ));
            }
        }
    }
    Ok(addrs)
}

/// Fetches the issuer's discovery document and then its `jwks_uri`.
fn fetch_jwks(issuer: &IssuerConfig, allow_private: bool) -> Result<Vec<u8>, String> {
    const LIMIT: u64 = 1 << 20;
    let agent = ureq::AgentBuilder::new()
        .timeout(std::time::Duration::from_secs(10))
        .redirects(0)
        .resolver(move |netloc: &str| resolve_public(netloc, allow_private))
        .build();
    let get = |url: &str| -> Result<Vec<u8>, String> {
        let response = agent
            .get(url)
            .call()
            .map_err(|e| format!("GET {url}: {}", keyshare_policy::error::one_line(&e)))?;
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(
            &mut std::io::Read::take(response.into_reader(), LIMIT + 1),
            &mut bytes,
        )
        .map_err(|e| format!("GET {url}: {e}"))?;
        if bytes.len() as u64 > LIMIT {
            return Err(format!("GET {url}: answer larger than {LIMIT} bytes"));
        }
        Ok(bytes)
    };
    let url = issuer.url.as_str();
    let issuer_origin = check_fetch_url(url, allow_private)?;
    let discovery_url = format!(
        "{}/.well-known/openid-configuration",
        url.trim_end_matches('/')
    );
    let discovery: Value = serde_json::from_slice(&get(&discovery_url)?)
        .map_err(|e| format!("{discovery_url}: not JSON: {e}"))?;
    if discovery.get("issuer").and_then(Value::as_str) != Some(url) {
        return Err(format!("{discovery_url} names another issuer"));
    }
    let jwks_uri = discovery
        .get("jwks_uri")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("{discovery_url} has no jwks_uri"))?;
    let jwks_origin =
        check_fetch_url(jwks_uri, allow_private).map_err(|e| format!("jwks_uri {e}"))?;
    let same_origin = jwks_origin.host == issuer_origin.host
        && jwks_origin.port_or_default() == issuer_origin.port_or_default();
    let listed = issuer
        .jwks_hosts
        .iter()
        .any(|h| jwks_origin.host.to_string() == *h);
    if !same_origin && !listed {
        return Err(format!(
            "jwks_uri `{jwks_uri}` is on another host than the issuer; list its host in the issuer's jwks_hosts to allow it"
        ));
    }
    get(jwks_uri)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn outbound_requests_steered_inward_names_resolving_to_loopback_are_refused() {
        // `localhost` resolves to a loopback address: refused by what it
        // resolves to, not by its spelling.
        let e = resolve_public("localhost:443", false).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::PermissionDenied);
        assert!(e.to_string().contains("a loopback address"), "{e}");
        assert!(!resolve_public("localhost:443", true).unwrap().is_empty());
        let e = resolve_public("169.254.169.254:80", false).unwrap_err();
        assert!(e.to_string().contains("link-local"), "{e}");
    }
}
