//! The one source of the current time in the server: a [`Clock`] is made
//! once at start-up ([`system`]) and handed to everything that asks what
//! time it is (the HTTP handlers, CI issuance, the maintenance task and
//! the CI expiry sweeper), so a test that injects its own clock moves all
//! of them at once.
//!
//! The ground floor: imports nothing from the rest of the crate.

use std::sync::Arc;

use time::OffsetDateTime;

/// A source of the current time.
pub type Clock = Arc<dyn Fn() -> OffsetDateTime + Send + Sync>;

/// The system clock (UTC).
pub fn system() -> Clock {
    Arc::new(OffsetDateTime::now_utc)
}
