//! Group commit: delegations arriving together share one publish.
//!
//! Requests go into a channel drained by one thread. It takes the first
//! pending change, gathers whatever else arrives within `max_wait` (up to
//! `max` changes), and hands them all to [`Publisher::apply_batch`]: one
//! store transaction, one re-signing of the affected roles, snapshot and
//! timestamp. Each change is checked alone there, so a bad one (of any
//! tenant) is refused with its own error and the others publish. Changes
//! that arrive while a publish runs wait in the channel and form the next
//! batch, so under load a batch grows to what arrived during one publish
//! and the wait adds nothing.

use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::clock::Clock;
use crate::publisher::{Applied, Batched, PublishError, Publisher};

type Reply = oneshot::Sender<Result<Applied, PublishError>>;

/// The sending side; cheap to share. The thread stops when it is dropped.
#[derive(Debug)]
pub struct Batcher {
    tx: mpsc::Sender<(Batched, Reply)>,
}

impl Batcher {
    /// Starts the publishing thread.
    pub fn start(
        publisher: Arc<Publisher>,
        clock: Clock,
        max_wait: Duration,
        max: usize,
    ) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel::<(Batched, Reply)>();
        std::thread::Builder::new()
            .name("keyshare-ci-batch".into())
            .spawn(move || run(&rx, &publisher, &clock, max_wait, max.max(1)))?;
        Ok(Self { tx })
    }

    /// Publishes `change` with whatever else is pending; resolves when it
    /// is committed (or refused).
    pub async fn submit(&self, change: Batched) -> Result<Applied, PublishError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send((change, reply))
            .map_err(|_| PublishError::Broken("the publishing thread stopped".into()))?;
        answer
            .await
            .map_err(|_| PublishError::Broken("the publishing thread stopped".into()))?
    }
}

fn run(
    rx: &mpsc::Receiver<(Batched, Reply)>,
    publisher: &Publisher,
    clock: &Clock,
    max_wait: Duration,
    max: usize,
) {
    while let Ok(first) = rx.recv() {
        let deadline = Instant::now() + max_wait;
        let mut jobs = vec![first];
        while jobs.len() < max {
            // Everything already queued, then whatever comes before the deadline.
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(mpsc::TryRecvError::Disconnected) => break,
                Err(mpsc::TryRecvError::Empty) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    match rx.recv_timeout(left) {
                        Ok(job) => jobs.push(job),
                        Err(_) => break,
                    }
                }
            }
        }
        let (changes, replies): (Vec<Batched>, Vec<Reply>) = jobs.into_iter().unzip();
        let count = changes.len();
        match publisher.apply_batch(changes, clock()) {
            Ok(results) => {
                tracing::debug!(changes = count, "published a batch of CI changes");
                for (reply, result) in replies.into_iter().zip(results) {
                    let _ = reply.send(result);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, changes = count, "publishing a batch failed");
                let message = e.to_string();
                for reply in replies {
                    let _ = reply.send(Err(PublishError::Broken(message.clone())));
                }
            }
        }
    }
}
