//! The portal's sessions: a bounded table in memory (a restart signs
//! everyone out), keyed by a 256-bit random id from OpenSSL's RNG.
//!
//! A session holds the id of the token it was opened with (never its
//! secret), its CSRF token and its times. The token is looked up again on
//! every request ([`super::signed_in`]), so revoking it ends its sessions.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use time::{Duration, OffsetDateTime};

/// Sessions kept at most; past it, expired ones are dropped, then the
/// least recently used.
pub(crate) const DEFAULT_MAX_SESSIONS: usize = 10_000;
/// A session unused this long ends.
pub(crate) const DEFAULT_IDLE: Duration = Duration::minutes(30);
/// A session ends this long after sign-in, however busy.
pub(crate) const DEFAULT_ABSOLUTE: Duration = Duration::hours(12);

/// How long sessions last and how many are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLimits {
    /// Ends a session unused this long.
    pub idle: Duration,
    /// Ends a session this long after sign-in.
    pub absolute: Duration,
    /// Most sessions kept.
    pub max_sessions: usize,
}

impl Default for SessionLimits {
    fn default() -> Self {
        Self {
            idle: DEFAULT_IDLE,
            absolute: DEFAULT_ABSOLUTE,
            max_sessions: DEFAULT_MAX_SESSIONS,
        }
    }
}

/// One signed-in browser.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    /// The id of the token it was opened with.
    pub(crate) token_id: String,
    /// The synchronizer token every form of the session carries.
    pub(crate) csrf: String,
    created: OffsetDateTime,
    last_seen: OffsetDateTime,
}

/// The table.
#[derive(Debug)]
pub(crate) struct Sessions {
    limits: SessionLimits,
    table: Mutex<HashMap<String, Session>>,
}

/// 32 random bytes from OpenSSL's RNG, hex.
pub(crate) fn random_id() -> Result<String, openssl::error::ErrorStack> {
    let mut bytes = [0u8; 32];
    openssl::rand::rand_bytes(&mut bytes)?;
    Ok(hex::encode(bytes))
}

impl Sessions {
    pub(crate) fn new(limits: SessionLimits) -> Self {
        Self {
            limits,
            table: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn limits(&self) -> SessionLimits {
        self.limits
    }

    fn live(&self, s: &Session, now: OffsetDateTime) -> bool {
        now < s.created + self.limits.absolute && now < s.last_seen + self.limits.idle
    }

    /// Opens a session for token `token_id`; returns its id.
    pub(crate) fn open(
        &self,
        token_id: &str,
        now: OffsetDateTime,
    ) -> Result<(String, Session), openssl::error::ErrorStack> {
        let id = random_id()?;
        let session = Session {
            token_id: token_id.to_owned(),
            csrf: random_id()?,
            created: now,
            last_seen: now,
        };
        let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        if table.len() >= self.limits.max_sessions {
            table.retain(|_, s| self.live(s, now));
        }
        while table.len() >= self.limits.max_sessions.max(1) {
            let oldest = table
                .iter()
                .min_by_key(|(_, s)| s.last_seen)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => table.remove(&k),
                None => break,
            };
        }
        table.insert(id.clone(), session.clone());
        Ok((id, session))
    }

    /// The live session `id`, its last use moved to `now`; an expired
    /// one is dropped.
    pub(crate) fn touch(&self, id: &str, now: OffsetDateTime) -> Option<Session> {
        let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        let live = table.get(id).map(|s| self.live(s, now))?;
        if !live {
            table.remove(id);
            return None;
        }
        let s = table.get_mut(id)?;
        s.last_seen = now;
        Some(s.clone())
    }

    /// Ends session `id`.
    pub(crate) fn end(&self, id: &str) {
        self.table
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id);
    }

    /// Ends every session of token `token_id`.
    pub(crate) fn end_token(&self, token_id: &str) {
        self.table
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|_, s| s.token_id != token_id);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.table
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// Whether two secrets are equal, in time independent of where they
/// differ (OpenSSL's `CRYPTO_memcmp`; the lengths are not secret).
pub(crate) fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len() && openssl::memcmp::eq(a.as_bytes(), b.as_bytes())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use time::macros::datetime;

    use super::*;

    const T: OffsetDateTime = datetime!(2030-01-01 0:00 UTC);

    #[test]
    fn sessions_expire_idle_and_absolute_and_the_table_is_bounded() {
        let s = Sessions::new(SessionLimits {
            idle: Duration::minutes(10),
            absolute: Duration::minutes(30),
            max_sessions: 2,
        });
        let (a, session) = s.open("tok-a", T).unwrap();
        assert_eq!(a.len(), 64);
        assert_eq!(session.csrf.len(), 64);
        assert_ne!(a, session.csrf);
        // Kept alive by use, up to the absolute limit.
        for m in [9, 18, 27] {
            assert!(s.touch(&a, T + Duration::minutes(m)).is_some());
        }
        assert!(s.touch(&a, T + Duration::minutes(30)).is_none());
        // Idle.
        let (b, _) = s.open("tok-b", T).unwrap();
        assert!(s.touch(&b, T + Duration::minutes(10)).is_none());
        // Bounded: the least recently used goes.
        let (c, _) = s.open("tok-c", T).unwrap();
        let (d, _) = s.open("tok-d", T + Duration::seconds(1)).unwrap();
        let (e, _) = s.open("tok-e", T + Duration::seconds(2)).unwrap();
        assert_eq!(s.len(), 2);
        assert!(s.touch(&c, T + Duration::seconds(3)).is_none());
        assert!(s.touch(&d, T + Duration::seconds(3)).is_some());
        s.end_token("tok-e");
        assert!(s.touch(&e, T + Duration::seconds(3)).is_none());
        s.end(&d);
        assert!(s.touch(&d, T + Duration::seconds(3)).is_none());
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "ab"));
        assert!(!same_secret("", "a"));
    }
}
