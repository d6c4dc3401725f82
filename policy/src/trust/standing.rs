//! How a listed key stands at a given time, for listings (`keyshare list`,
//! the admin API's namespace view): revoked (by the organization or by its
//! namespace, when and why), expired, not yet valid, or expiring within a
//! horizon. This is a summary for people, not a trust decision: whether a
//! signature is trusted depends on when it was made ([`super::TrustSet::decide`]).

use time::{Duration, OffsetDateTime};

use super::namespace::TrustedKey;
use super::revocations::Revocation;

/// Who revoked a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RevokedBy {
    /// The organization, in `org/revocations.json`: in every namespace.
    Organization,
    /// The namespace the key is listed in, in its own trust document: in
    /// that namespace only.
    Namespace,
}

impl RevokedBy {
    /// `organization` or `namespace`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Organization => "organization",
            Self::Namespace => "namespace",
        }
    }
}

/// The revocation that applies to a listed key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyRevocation<'a> {
    /// Who revoked it.
    pub by: RevokedBy,
    /// When and why.
    pub revocation: &'a Revocation,
}

impl<'a> KeyRevocation<'a> {
    /// Of two revocations of one key (the organization's and the
    /// namespace's), the one that takes effect first; the organization's on
    /// a tie.
    pub fn earliest(
        organization: Option<&'a Revocation>,
        namespace: Option<&'a Revocation>,
    ) -> Option<Self> {
        let org = organization.map(|revocation| Self {
            by: RevokedBy::Organization,
            revocation,
        });
        let ns = namespace.map(|revocation| Self {
            by: RevokedBy::Namespace,
            revocation,
        });
        match (org, ns) {
            (Some(o), Some(n)) if n.revocation.revoked_at < o.revocation.revoked_at => Some(n),
            (Some(o), _) => Some(o),
            (None, n) => n,
        }
    }
}

/// A listed key's state at a time, most serious first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KeyState {
    /// Revoked, and the revocation has taken effect.
    Revoked,
    /// Past its `not_after`.
    Expired,
    /// Before its `not_before`.
    NotYetValid,
    /// Valid, but `not_after` is within the horizon.
    ExpiresSoon,
    /// Valid, and not expiring within the horizon.
    Active,
}

impl KeyState {
    /// `revoked`, `expired`, `not_yet_valid`, `expires_soon` or `active`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Revoked => "revoked",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::ExpiresSoon => "expires_soon",
            Self::Active => "active",
        }
    }
}

/// How a listed key stands at `now` ([`KeyStanding::of`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyStanding<'a> {
    /// The one-word summary.
    pub state: KeyState,
    /// The revocation that applies to the key, if any (in effect or, with a
    /// `revoked_at` after `now`, to come).
    pub revocation: Option<KeyRevocation<'a>>,
    /// `now` is at or after `not_after`: the key signs nothing new (and an
    /// ephemeral key's signatures are no longer trusted at all).
    pub expired: bool,
    /// Not expired, and `not_after` is at most the horizon away.
    pub expires_soon: bool,
}

impl<'a> KeyStanding<'a> {
    /// The standing of `key` at `now`, given the revocation that applies
    /// to its material (see [`KeyRevocation::earliest`]); a key expiring
    /// within `horizon` of `now` is flagged.
    pub fn of(
        key: &TrustedKey,
        revocation: Option<KeyRevocation<'a>>,
        now: OffsetDateTime,
        horizon: Duration,
    ) -> Self {
        let expired = key.not_after.is_some_and(|t| now >= t);
        let expires_soon = !expired && key.not_after.is_some_and(|t| t - now <= horizon);
        let not_yet_valid = key.not_before.is_some_and(|t| now < t);
        let state = if revocation.is_some_and(|r| now >= r.revocation.revoked_at) {
            KeyState::Revoked
        } else if expired {
            KeyState::Expired
        } else if not_yet_valid {
            KeyState::NotYetValid
        } else if expires_soon {
            KeyState::ExpiresSoon
        } else {
            KeyState::Active
        };
        Self {
            state,
            revocation,
            expired,
            expires_soon,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use time::macros::datetime;

    use super::*;
    use crate::keys::Key;
    use crate::metadata::KeyId;
    use crate::trust::{RevokedSubject, Sha256Hex};

    const NOW: OffsetDateTime = datetime!(2030-06-01 0:00 UTC);

    fn key(not_before: Option<OffsetDateTime>, not_after: Option<OffsetDateTime>) -> TrustedKey {
        let key: Key = serde_json::from_value(serde_json::json!({
            "keytype": "ed25519", "scheme": "ed25519",
            "keyval": {"public": "72463b5abbd3bd6e9a0f7667d5bc003b0aa31cba40c94de03b18f85f56f231b4"}
        }))
        .unwrap();
        TrustedKey {
            id: KeyId::new("k"),
            key,
            not_before,
            not_after,
            ephemeral: false,
            description: None,
            principal: None,
            layout_root: false,
        }
    }

    fn revocation(at: OffsetDateTime) -> Revocation {
        Revocation {
            subject: RevokedSubject::Key(Sha256Hex::of(b"k")),
            revoked_at: at,
            reason: "stolen".into(),
        }
    }

    #[test]
    fn a_key_stands_by_its_revocation_then_its_window_then_the_horizon() {
        let d = Duration::days;
        let horizon = d(30);
        let state = |k: &TrustedKey, r: Option<KeyRevocation<'_>>| {
            KeyStanding::of(k, r, NOW, horizon).state
        };
        assert_eq!(state(&key(None, None), None), KeyState::Active);
        assert_eq!(state(&key(None, Some(NOW + d(31))), None), KeyState::Active);
        assert_eq!(
            state(&key(None, Some(NOW + d(30))), None),
            KeyState::ExpiresSoon
        );
        assert_eq!(state(&key(None, Some(NOW)), None), KeyState::Expired);
        assert_eq!(
            state(&key(Some(NOW + d(1)), None), None),
            KeyState::NotYetValid
        );
        let past = revocation(NOW - d(1));
        let revoked = Some(KeyRevocation {
            by: RevokedBy::Namespace,
            revocation: &past,
        });
        assert_eq!(
            state(&key(None, Some(NOW - d(2))), revoked),
            KeyState::Revoked
        );
        // A revocation still to come is shown, the key is not revoked yet.
        let future = revocation(NOW + d(1));
        let to_come = Some(KeyRevocation {
            by: RevokedBy::Organization,
            revocation: &future,
        });
        let s = KeyStanding::of(&key(None, None), to_come, NOW, horizon);
        assert_eq!((s.state, s.revocation.is_some()), (KeyState::Active, true));
        let s = KeyStanding::of(&key(None, Some(NOW + d(2))), None, NOW, horizon);
        assert!(s.expires_soon && !s.expired);
    }

    #[test]
    fn of_two_revocations_the_earlier_applies_and_the_organization_on_a_tie() {
        let early = revocation(NOW - Duration::days(2));
        let late = revocation(NOW);
        let e = KeyRevocation::earliest(Some(&late), Some(&early)).unwrap();
        assert_eq!(e.by, RevokedBy::Namespace);
        let e = KeyRevocation::earliest(Some(&early), Some(&late)).unwrap();
        assert_eq!(e.by, RevokedBy::Organization);
        let e = KeyRevocation::earliest(Some(&late), Some(&late)).unwrap();
        assert_eq!(e.by, RevokedBy::Organization);
        assert_eq!(KeyRevocation::earliest(None, None), None);
    }
}
