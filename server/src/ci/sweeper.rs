//! The expiry sweeper: every `ci.sweep_interval`, removes the ephemeral
//! keys whose `not_after` has passed ([`Publisher::sweep_ephemeral`]) and
//! republishes the namespaces they were in. Verifiers refuse an expired
//! ephemeral key before the sweep too; the sweep keeps the published
//! documents small and current.

use std::sync::Arc;

use crate::clock::Clock;
use crate::publisher::Publisher;

/// Sweeps every `interval`, the first time after one interval, until the
/// task is dropped. Errors are logged and retried at the next tick.
pub async fn run(publisher: Arc<Publisher>, clock: Clock, interval: std::time::Duration) {
    let start = tokio::time::Instant::now() + interval;
    let mut ticks = tokio::time::interval_at(start, interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let p = publisher.clone();
        let now = clock();
        match tokio::task::spawn_blocking(move || p.sweep_ephemeral(now)).await {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => tracing::info!(keys = n, "removed expired CI delegations"),
            Ok(Err(e)) => tracing::error!(error = %e, "sweeping CI delegations failed"),
            Err(e) => tracing::error!(error = %e, "sweeper task failed"),
        }
    }
}
