//! The committer: records send outcomes on a thread of its own, so that an SMTP exchange
//! never waits for a durable commit, while bounding how many sent messages a crash can
//! leave unrecorded.

use super::{Outcome, Store};
use crate::error::Result;
use chrono::{DateTime, Utc};
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Records send outcomes on a thread of its own, in order. Each commit takes everything
/// queued by the time the previous one finished, without waiting for more: one outcome
/// per commit when the server is slow, larger groups by themselves when it is fast.
/// Commits are durable ([`Store::record_outcomes`]).
///
/// A message is handed to the transport only with a place in the committer's window, which
/// it keeps until its outcome is committed: the window's size bounds how many messages a
/// crash can leave sent but unrecorded.
pub struct Committer {
    queue: tokio::sync::mpsc::Sender<(Outcome, Option<OwnedSemaphorePermit>)>,
    window: Arc<Semaphore>,
    thread: tokio::task::JoinHandle<Result<()>>,
}

impl Committer {
    /// Starts the committer on the blocking pool of the current tokio runtime.
    pub fn start(store: Arc<Store>, now: DateTime<Utc>, window: usize) -> Committer {
        // The outcomes of sent messages hold places, so the queue seldom fills; when it
        // does the send loop waits for this thread, which never waits for the loop.
        let (queue, mut queued) = tokio::sync::mpsc::channel(window.max(1));
        let thread = tokio::task::spawn_blocking(move || {
            let mut group = Vec::with_capacity(window);
            let mut places = Vec::with_capacity(window);
            while let Some(first) = queued.blocking_recv() {
                for (outcome, place) in
                    std::iter::once(first).chain(std::iter::from_fn(|| queued.try_recv().ok()))
                {
                    group.push(outcome);
                    places.push(place);
                }
                // On an error the receiver is dropped with the rest, which the send loop sees.
                store.record_outcomes(&group, now)?;
                group.clear();
                // Committed: their places are free for the next messages.
                places.clear();
            }
            Ok(())
        });
        Committer { queue, window: Arc::new(Semaphore::new(window.max(1))), thread }
    }

    /// A place in the window, waited for while every place is taken.
    pub async fn place(&self) -> OwnedSemaphorePermit {
        Arc::clone(&self.window).acquire_owned().await.expect("the window is never closed")
    }

    /// Queues an outcome with the place its message held; false once the committer has
    /// stopped on an error.
    pub async fn queue(&self, outcome: Outcome, place: Option<OwnedSemaphorePermit>) -> bool {
        self.queue.send((outcome, place)).await.is_ok()
    }

    /// Whether the committer stopped on an error.
    pub fn failed(&self) -> bool {
        self.queue.is_closed()
    }

    /// Waits until every queued outcome is committed; the commit's error, if one failed.
    pub async fn finish(self) -> Result<()> {
        drop(self.queue);
        joined(self.thread.await)
    }
}

/// What a blocking task returned. Its panic, a bug, goes on here; it cannot have been
/// cancelled, as that happens only when the runtime shuts down, and this runs on it.
pub fn joined<T>(result: std::result::Result<T, tokio::task::JoinError>) -> T {
    result.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::PaperId;
    use crate::store::{Item, Kind, NewDelivery};
    use std::time::{Duration, Instant};

    fn planned(store: &Store, n: usize, now: DateTime<Utc>) -> Vec<i64> {
        let rows: Vec<NewDelivery> = (0..n)
            .map(|i| NewDelivery {
                subscriber: format!("reader{i}@example.org"),
                edition: now.date_naive(),
                kind: Kind::Digest,
                message_id: format!("<{i}@example.org>"),
                items: vec![Item {
                    id: PaperId(format!("2411.{i}")),
                    score: 1.0,
                    topic: None,
                    matched: vec![],
                }],
            })
            .collect();
        store.insert_deliveries(&rows, now).unwrap().into_iter().map(Option::unwrap).collect()
    }

    fn now() -> DateTime<Utc> {
        "2024-11-27T07:00:00Z".parse().unwrap()
    }

    #[tokio::test]
    async fn everything_queued_is_committed_by_the_time_the_committer_finishes() {
        let store = Arc::new(Store::open_in_memory().unwrap());
        let ids = planned(&store, 200, now());
        store.mark_sending(&ids, now()).unwrap();
        let committer = Committer::start(Arc::clone(&store), now(), 8);
        for (n, id) in ids.iter().enumerate() {
            let outcome = if n % 10 == 0 {
                Outcome::Deferred { id: *id, error: "451".into() }
            } else {
                Outcome::Sent { id: *id }
            };
            // Eight places: the ninth message waits until the first are committed.
            let place = committer.place().await;
            assert!(committer.queue(outcome, Some(place)).await);
        }
        committer.finish().await.unwrap();
        let count = |sql: &str| store.conn().query_row(sql, [], |r| r.get::<_, i64>(0)).unwrap();
        assert_eq!(count("SELECT COUNT(*) FROM deliveries WHERE status = 'sent'"), 180);
        assert_eq!(count("SELECT COUNT(*) FROM deliveries WHERE status = 'deferred'"), 20);
        assert_eq!(count("SELECT COUNT(*) FROM seen"), 180);
    }

    #[tokio::test]
    async fn a_failed_commit_closes_the_queue_and_finish_returns_the_error() {
        let store = Arc::new(Store::open_in_memory().unwrap());
        let ids = planned(&store, 2, now());
        store
            .conn()
            .execute_batch(
                "CREATE TRIGGER no_sent BEFORE UPDATE OF status ON deliveries WHEN NEW.status = 'sent'
                 BEGIN SELECT RAISE(ABORT, 'disk on fire'); END;",
            )
            .unwrap();
        let committer = Committer::start(Arc::clone(&store), now(), 4);
        assert!(committer.queue(Outcome::Sent { id: ids[0] }, None).await);
        let waited = Instant::now();
        while !committer.failed() {
            assert!(waited.elapsed() < Duration::from_secs(10), "the committer did not stop");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert!(
            !committer.queue(Outcome::Sent { id: ids[1] }, None).await,
            "nothing is queued after a failure"
        );
        let err = committer.finish().await.unwrap_err();
        assert!(err.to_string().contains("disk on fire"), "{err}");
    }
}
