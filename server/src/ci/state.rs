//! Nonces and rate limits of CI issuance. Every function takes the time
//! as a parameter.
//!
//! Nonces are stateless: `n1.<expiry>.<random>.<mac>`, where the MAC is
//! HMAC-SHA256 under the nonce key ([`super::secret`]) over everything
//! before it. Issuing one stores nothing, so asking for nonces, however
//! often, takes nothing from anybody else. A nonce is checked by its MAC
//! (compared in constant time) and its expiry; that it was not used before
//! is checked in the store when the delegation it asks for is granted
//! (`crate::publisher::Change::DelegateCi`), in the same transaction, so
//! it holds across restarts.
//!
//! Rate-limit counters live in memory (`crate::rate_limit`): a restart
//! resets them.

use time::{Duration, OffsetDateTime};

use super::secret::{hmac_sha256, SecretKey};
use super::{CiError, NonceRefusal};
use crate::store::{SingleUse, SingleUseKind};

/// Longest text taken for a nonce (ours are 111 characters).
const MAX_NONCE_LEN: usize = 160;

/// Issues and checks stateless nonces.
#[derive(Debug)]
pub struct Nonces {
    key: SecretKey,
    ttl: Duration,
}

impl Nonces {
    /// Nonces MACed with `key`, valid for `ttl`.
    pub fn new(key: SecretKey, ttl: Duration) -> Self {
        Self { key, ttl }
    }

    fn mac(&self, body: &str) -> Result<String, CiError> {
        Ok(hex::encode(hmac_sha256(&self.key, body.as_bytes())?))
    }

    /// A fresh nonce and when it expires (whole seconds).
    pub fn issue(&self, now: OffsetDateTime) -> Result<(String, OffsetDateTime), CiError> {
        let mut random = [0u8; 16];
        openssl::rand::rand_bytes(&mut random).map_err(|e| CiError::Internal(e.to_string()))?;
        let expires = (now + self.ttl).unix_timestamp();
        let body = format!("n1.{expires}.{}", hex::encode(random));
        let mac = self.mac(&body)?;
        let expires = OffsetDateTime::from_unix_timestamp(expires)
            .map_err(|e| CiError::Internal(e.to_string()))?;
        Ok((format!("{body}.{mac}"), expires))
    }

    /// Checks that `nonce` is one of ours and has not expired; returns it
    /// as a value to use up with the delegation it grants.
    pub fn check(&self, nonce: &str, now: OffsetDateTime) -> Result<SingleUse, CiError> {
        let not_ours = || CiError::BadNonce(NonceRefusal::NotIssued);
        if nonce.len() > MAX_NONCE_LEN {
            return Err(not_ours());
        }
        let (body, mac) = nonce.rsplit_once('.').ok_or_else(not_ours)?;
        let expected = self.mac(body)?;
        // Constant time (the length is no secret: always 64).
        if mac.len() != expected.len() || !openssl::memcmp::eq(expected.as_bytes(), mac.as_bytes())
        {
            return Err(not_ours());
        }
        // Ours, so well formed; parsed with care all the same.
        let expires = body
            .strip_prefix("n1.")
            .and_then(|rest| rest.split_once('.'))
            .and_then(|(t, _)| t.parse::<i64>().ok())
            .and_then(|t| OffsetDateTime::from_unix_timestamp(t).ok())
            .ok_or_else(not_ours)?;
        if expires <= now {
            return Err(CiError::BadNonce(NonceRefusal::Expired));
        }
        Ok(SingleUse {
            kind: SingleUseKind::Nonce,
            digest: keyshare_policy::hash::sha256_hex(nonce.as_bytes()),
            expires_at: expires,
        })
    }
}

/// The rate limit of delegation requests per principal
/// (`ci.rate_limit` per `ci.rate_window`).
pub use crate::rate_limit::RateLimiter;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use time::macros::datetime;

    use super::*;

    const T: OffsetDateTime = datetime!(2030-01-01 0:00 UTC);

    fn nonces() -> Nonces {
        let secret = super::super::secret::CiSecret::derive([3; 32]).unwrap();
        Nonces::new(secret.nonce_key().clone(), Duration::minutes(2))
    }

    #[test]
    fn a_nonce_checks_until_it_expires_and_names_the_same_value_every_time() {
        let n = nonces();
        let (a, expires) = n.issue(T).unwrap();
        assert_eq!(expires, T + Duration::minutes(2));
        let used = n.check(&a, T).unwrap();
        assert_eq!(used.kind, SingleUseKind::Nonce);
        assert_eq!(used.expires_at, expires);
        assert_eq!(n.check(&a, T + Duration::seconds(119)).unwrap(), used);
        assert!(matches!(
            n.check(&a, T + Duration::minutes(2)),
            Err(CiError::BadNonce(NonceRefusal::Expired))
        ));
        let (b, _) = n.issue(T).unwrap();
        assert_ne!(n.check(&b, T).unwrap().digest, used.digest);
    }

    #[test]
    fn nonces_of_another_secret_or_altered_are_not_ours() {
        let n = nonces();
        let (a, _) = n.issue(T).unwrap();
        let other = Nonces::new(
            super::super::secret::CiSecret::derive([4; 32])
                .unwrap()
                .nonce_key()
                .clone(),
            Duration::minutes(2),
        );
        let (b, _) = other.issue(T).unwrap();
        let upper = {
            let (body, mac) = a.rsplit_once('.').unwrap();
            format!("{body}.{}", mac.to_uppercase())
        };
        for bad in [
            b.as_str(),
            "made-up",
            "",
            &upper,
            &a[..a.len() - 1],
            &format!("{a}0"),
        ] {
            assert!(
                matches!(
                    n.check(bad, T),
                    Err(CiError::BadNonce(NonceRefusal::NotIssued))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn rate_limit_is_per_identity_and_slides() {
        let l = RateLimiter::new(2, Duration::minutes(1));
        l.admit("a", T).unwrap();
        l.admit("a", T).unwrap();
        let refused = CiError::from(l.admit("a", T).unwrap_err());
        assert!(
            matches!(refused, CiError::RateLimited { limit: 2, .. }),
            "{refused:?}"
        );
        assert_eq!(
            refused.to_string(),
            "rate limited: more than 2 delegation requests in 1m by this identity"
        );
        l.admit("b", T).unwrap();
        l.admit("a", T + Duration::minutes(1)).unwrap();
    }
}
