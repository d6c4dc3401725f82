//! In-memory, single-process state of CI issuance: single-use nonces,
//! tokens already used (replay), and per-identity rate limits. Every
//! function takes the time as a parameter.
//!
//! The state is lost on restart: a token used just before a restart could
//! be used once more within its lifetime (it still needs a fresh nonce and
//! a proof of possession by the key it delegates to).

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, PoisonError};

use time::{Duration, OffsetDateTime};

use super::CiError;

/// Server-issued single-use nonces.
#[derive(Debug)]
pub struct Nonces {
    ttl: Duration,
    max: usize,
    live: Mutex<HashMap<String, OffsetDateTime>>,
}

impl Nonces {
    /// Nonces valid for `ttl`, at most `max` outstanding.
    pub fn new(ttl: Duration, max: usize) -> Self {
        Self {
            ttl,
            max,
            live: Mutex::new(HashMap::new()),
        }
    }

    /// A fresh nonce (32 random bytes, hex) and when it expires.
    pub fn issue(&self, now: OffsetDateTime) -> Result<(String, OffsetDateTime), CiError> {
        let mut bytes = [0u8; 32];
        openssl::rand::rand_bytes(&mut bytes).map_err(|e| CiError::Internal(e.to_string()))?;
        let nonce = hex::encode(bytes);
        let expires = now + self.ttl;
        let mut live = self.live.lock().unwrap_or_else(PoisonError::into_inner);
        if live.len() >= self.max {
            live.retain(|_, e| *e > now);
            if live.len() >= self.max {
                return Err(CiError::RateLimited(
                    "too many outstanding nonces; try again shortly".into(),
                ));
            }
        }
        live.insert(nonce.clone(), expires);
        Ok((nonce, expires))
    }

    /// Uses up `nonce`: `Ok` once for an issued, unexpired nonce.
    pub fn consume(&self, nonce: &str, now: OffsetDateTime) -> Result<(), CiError> {
        let mut live = self.live.lock().unwrap_or_else(PoisonError::into_inner);
        match live.remove(nonce) {
            Some(expires) if expires > now => Ok(()),
            Some(_) => Err(CiError::BadNonce(
                "the nonce expired; ask for a new one".into(),
            )),
            None => Err(CiError::BadNonce(
                "unknown or already used nonce; ask POST /api/v1/ci/nonce for a new one".into(),
            )),
        }
    }
}

/// ID tokens already used for a delegation, until they expire.
#[derive(Debug, Default)]
pub struct ReplayCache {
    seen: Mutex<HashMap<String, OffsetDateTime>>,
}

impl ReplayCache {
    /// Records `key` (valid until `until`); refuses a key seen before.
    pub fn check_and_record(
        &self,
        key: &str,
        until: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<(), CiError> {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        if seen.len() >= 4096 {
            seen.retain(|_, u| *u > now);
        }
        if seen.get(key).is_some_and(|u| *u > now) {
            return Err(CiError::Replay(
                "this ID token was already used for a delegation; each job token gets one".into(),
            ));
        }
        seen.insert(key.to_owned(), until);
        Ok(())
    }
}

/// At most `limit` requests per identity per `window` (sliding window).
#[derive(Debug)]
pub struct RateLimiter {
    limit: usize,
    window: Duration,
    recent: Mutex<HashMap<String, VecDeque<OffsetDateTime>>>,
}

impl RateLimiter {
    /// A limiter of `limit` per `window`.
    pub fn new(limit: u32, window: Duration) -> Self {
        Self {
            limit: usize::try_from(limit).unwrap_or(usize::MAX),
            window,
            recent: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one request of `identity`; refuses it over the limit.
    pub fn admit(&self, identity: &str, now: OffsetDateTime) -> Result<(), CiError> {
        let mut recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
        if recent.len() >= 4096 {
            let window = self.window;
            recent.retain(|_, q| q.back().is_some_and(|t| *t > now - window));
        }
        let q = recent.entry(identity.to_owned()).or_default();
        while q.front().is_some_and(|t| *t <= now - self.window) {
            q.pop_front();
        }
        if q.len() >= self.limit {
            return Err(CiError::RateLimited(format!(
                "more than {} delegation requests in {} by this identity",
                self.limit, self.window
            )));
        }
        q.push_back(now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use time::macros::datetime;

    use super::*;

    const T: OffsetDateTime = datetime!(2030-01-01 0:00 UTC);

    #[test]
    fn a_nonce_is_good_once_and_only_before_it_expires() {
        let n = Nonces::new(Duration::minutes(2), 10);
        let (a, _) = n.issue(T).unwrap();
        n.consume(&a, T).unwrap();
        assert!(matches!(n.consume(&a, T), Err(CiError::BadNonce(_))));
        let (b, _) = n.issue(T).unwrap();
        assert!(matches!(
            n.consume(&b, T + Duration::minutes(2)),
            Err(CiError::BadNonce(_))
        ));
        assert!(matches!(n.consume("made-up", T), Err(CiError::BadNonce(_))));
    }

    #[test]
    fn outstanding_nonces_are_capped() {
        let n = Nonces::new(Duration::minutes(2), 2);
        n.issue(T).unwrap();
        n.issue(T).unwrap();
        assert!(matches!(n.issue(T), Err(CiError::RateLimited(_))));
        // Expired ones make room.
        n.issue(T + Duration::minutes(3)).unwrap();
    }

    #[test]
    fn a_token_is_refused_the_second_time_until_it_expires() {
        let r = ReplayCache::default();
        let until = T + Duration::minutes(5);
        r.check_and_record("jti:1", until, T).unwrap();
        assert!(matches!(
            r.check_and_record("jti:1", until, T + Duration::minutes(1)),
            Err(CiError::Replay(_))
        ));
        r.check_and_record("jti:2", until, T).unwrap();
    }

    #[test]
    fn rate_limit_is_per_identity_and_slides() {
        let l = RateLimiter::new(2, Duration::minutes(1));
        l.admit("a", T).unwrap();
        l.admit("a", T).unwrap();
        assert!(matches!(l.admit("a", T), Err(CiError::RateLimited(_))));
        l.admit("b", T).unwrap();
        l.admit("a", T + Duration::minutes(1)).unwrap();
    }
}
