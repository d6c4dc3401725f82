//! Group commit: delegations arriving together share one publish.
//!
//! Requests go into a channel drained by one publishing thread. It blocks
//! until a change is pending, takes it with everything else already queued
//! (up to `max` changes) and hands them all to [`Publisher::apply_batch`]:
//! one store transaction, one re-signing of the affected roles, snapshot
//! and timestamp. Each change is checked alone there, so a bad one (of any
//! tenant) is refused with its own error and the others publish.
//!
//! There is no timer: a change that arrives while nothing is being
//! published is published at once, alone; changes that arrive while a
//! publish runs gather in the channel and form the next batch, published
//! as soon as the running one is committed. So the next batch gathers
//! while the current one is published, and a request waits for at most
//! the publish in flight and then its own. `max_wait` (`ci.batch_wait_ms`,
//! default 0) adds an optional wait for more changes after the queue is
//! drained, for servers that prefer fewer publishes to lower latency.
//!
//! The commit overlaps too: the publishing thread commits a batch without
//! waiting for the disk ([`Publisher::apply_batch_deferred`]) and goes on
//! to the next one, while a second thread syncs the store's log and then
//! serves the batch and answers its requests ([`Publisher::serve`]). One
//! sync covers every batch committed before it.
//!
//! A change is answered only after the publish holding it is committed
//! and synced (durably, in the store) or refused: nothing is granted, and
//! no version served, before it is on disk.

use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::clock::Clock;
use crate::publisher::{Applied, Batched, Held, PublishError, Publisher};

type Reply = oneshot::Sender<Result<Applied, PublishError>>;

/// A committed batch's granted changes, answered once it is synced.
type Granted = (Held, Vec<(Reply, Applied)>);

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
        self.tx.send((change, reply)).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

/// `first` and whatever is queued behind it (at most `max` in all); with a
/// `max_wait`, also whatever arrives within it once the queue is empty.
fn gather<T>(rx: &mpsc::Receiver<T>, first: T, max_wait: Duration, max: usize) -> Vec<T> {
    let deadline = Instant::now() + max_wait;
    let mut jobs = vec![first];
    while jobs.len() < max {
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
    jobs
}

fn run(
    rx: &mpsc::Receiver<(Batched, Reply)>,
    publisher: &Arc<Publisher>,
    clock: &Clock,
    max_wait: Duration,
    max: usize,
) {
    let (granted, to_answer) = mpsc::channel::<Granted>();
    let answering = {
        let publisher = Arc::clone(publisher);
        std::thread::Builder::new()
            .name("keyshare-ci-sync".into())
            .spawn(move || answer(&to_answer, &publisher))
    };
    let answering = match answering {
        Ok(thread) => Some(thread),
        Err(e) => {
            // Without the second thread, each batch is synced at commit.
            tracing::warn!(error = %e, "could not start the CI sync thread; commits are not overlapped");
            None
        }
    };
    while let Ok(first) = rx.recv() {
        let jobs = gather(rx, first, max_wait, max);
        let (changes, replies): (Vec<Batched>, Vec<Reply>) = jobs.into_iter().unzip();
        let count = changes.len();
        let published = match answering {
            Some(_) => publisher.apply_batch_deferred(changes, clock()),
            None => publisher
                .apply_batch(changes, clock())
                .map(|results| (results, None)),
        };
        match published {
            Ok((results, held)) => {
                tracing::debug!(changes = count, "published a batch of CI changes");
                let mut waiting = Vec::with_capacity(count);
                for (reply, result) in replies.into_iter().zip(results) {
                    match (result, held) {
                        (Ok(applied), Some(_)) => waiting.push((reply, applied)),
                        // Refused (nothing of it was written), or synced.
                        (result, _) => {
                            let _ = reply.send(result);
                        }
                    }
                }
                if let Some(held) = held {
                    // Sent even with nothing granted, so the batch is
                    // served; the thread is gone only when it panicked.
                    if let Err(mpsc::SendError((_, waiting))) = granted.send((held, waiting)) {
                        for (reply, _) in waiting {
                            let _ = reply.send(Err(stopped()));
                        }
                    }
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
    drop(granted);
    if let Some(thread) = answering {
        let _ = thread.join();
    }
}

/// The second thread: syncs the store's log past every batch committed so
/// far (one sync for all that are waiting), then answers their requests;
/// when the sync fails, they get the error and nothing of them is served.
fn answer(batches: &mpsc::Receiver<Granted>, publisher: &Publisher) {
    while let Ok(first) = batches.recv() {
        let mut ready = vec![first];
        ready.extend(batches.try_iter());
        let last = ready.iter().map(|(held, _)| *held).max();
        let served = last.map_or(Ok(()), |held| publisher.serve(held));
        let failed = served.err().map(|e| e.to_string());
        for (reply, applied) in ready.into_iter().flat_map(|(_, waiting)| waiting) {
            let _ = reply.send(match &failed {
                None => Ok(applied),
                Some(why) => Err(PublishError::Broken(why.clone())),
            });
        }
    }
}

fn stopped() -> PublishError {
    PublishError::Broken("the publishing thread stopped".into())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_batch_is_what_is_queued_without_waiting_and_at_most_max() {
        let (tx, rx) = mpsc::channel();
        for i in 1..=5 {
            tx.send(i).unwrap();
        }
        // Nothing more will come: with no wait, gathering does not wait
        // for it (the sender is still open).
        let started = Instant::now();
        assert_eq!(gather(&rx, 0, Duration::ZERO, 4), [0, 1, 2, 3]);
        assert_eq!(gather(&rx, 10, Duration::ZERO, 4), [10, 4, 5]);
        assert!(started.elapsed() < Duration::from_secs(1));
        // With a wait, what arrives within it joins.
        let late = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            tx.send(7).unwrap();
        });
        assert_eq!(gather(&rx, 6, Duration::from_secs(5), 2), [6, 7]);
        late.join().unwrap();
    }
}
