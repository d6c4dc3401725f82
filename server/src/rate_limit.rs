//! A sliding-window rate limit per identity, in memory (a restart resets
//! it): CI issuance counts per principal (`ci.rate_limit`), the timestamp
//! authority per client address (`tsa.rate_limit`). Time is a parameter.
//!
//! On the ground floor of `server/src`: it imports nothing from the crate.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, PoisonError};

use time::{Duration, OffsetDateTime};

/// How many identities are kept before those with no request inside the
/// window are dropped.
const PRUNE_AT: usize = 4096;

/// A request over the limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("more than {limit} requests in {window}")]
pub struct RateLimited {
    /// Requests allowed per window.
    pub limit: usize,
    /// The window.
    pub window: Duration,
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

    /// Whether one more request of `identity` at `now` would be admitted,
    /// without counting it (for limits on failures only: check first,
    /// [`Self::admit`] once the request failed).
    pub fn would_admit(&self, identity: &str, now: OffsetDateTime) -> Result<(), RateLimited> {
        let recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
        let count = recent
            .get(identity)
            .map_or(0, |q| q.iter().filter(|t| **t > now - self.window).count());
        if count >= self.limit {
            return Err(RateLimited {
                limit: self.limit,
                window: self.window,
            });
        }
        Ok(())
    }

    /// Counts one request of `identity`; refuses it over the limit (a
    /// refused request is not counted).
    pub fn admit(&self, identity: &str, now: OffsetDateTime) -> Result<(), RateLimited> {
        let mut recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
        if recent.len() >= PRUNE_AT {
            let window = self.window;
            recent.retain(|_, q| q.back().is_some_and(|t| *t > now - window));
        }
        let q = recent.entry(identity.to_owned()).or_default();
        while q.front().is_some_and(|t| *t <= now - self.window) {
            q.pop_front();
        }
        if q.len() >= self.limit {
            return Err(RateLimited {
                limit: self.limit,
                window: self.window,
            });
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
    fn the_limit_is_per_identity_and_the_window_slides() {
        let l = RateLimiter::new(2, Duration::minutes(1));
        l.admit("a", T).unwrap();
        l.admit("a", T + Duration::seconds(30)).unwrap();
        assert_eq!(
            l.admit("a", T + Duration::seconds(59)),
            Err(RateLimited {
                limit: 2,
                window: Duration::minutes(1)
            })
        );
        l.admit("b", T).unwrap();
        // The first request left the window; the refused one never counted.
        l.admit("a", T + Duration::minutes(1)).unwrap();
        assert!(l.admit("a", T + Duration::minutes(1)).is_err());
    }

    #[test]
    fn identities_seen_long_ago_are_dropped() {
        let l = RateLimiter::new(1, Duration::minutes(1));
        for i in 0..PRUNE_AT {
            l.admit(&i.to_string(), T).unwrap();
        }
        l.admit("late", T + Duration::minutes(2)).unwrap();
        assert_eq!(l.recent.lock().unwrap().len(), 1);
    }
}
