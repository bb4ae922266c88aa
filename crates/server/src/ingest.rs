//! Group commit: one writer task takes the events of many concurrent requests and commits
//! them in one transaction, then answers each request. A request is answered only after its
//! events are durable.

use std::sync::Arc;

use nudge_core::engine::Engine;
use nudge_core::store::{Incoming, Ingested, Store, StoreError};
use nudge_core::time::Clock;
use tokio::sync::{mpsc, oneshot};

use crate::state::Wakeups;

/// Most events committed in one transaction.
const MAX_BATCH_EVENTS: usize = 512;
/// Requests that may wait for the writer before callers are slowed down.
const QUEUE_DEPTH: usize = 4096;

type Reply = oneshot::Sender<Result<Vec<Ingested>, StoreError>>;

struct Job {
    events: Vec<Incoming>,
    reply: Reply,
}

/// Handle to the writer task.
#[derive(Clone)]
pub struct IngestWriter {
    jobs: mpsc::Sender<Job>,
}

impl IngestWriter {
    pub fn start(
        store: Arc<dyn Store>,
        engine: Arc<Engine>,
        clock: Arc<dyn Clock>,
        wake: Arc<Wakeups>,
    ) -> IngestWriter {
        let (jobs, queue) = mpsc::channel(QUEUE_DEPTH);
        tokio::spawn(run(queue, store, engine, clock, wake));
        IngestWriter { jobs }
    }

    /// Stores and applies events; returns once they are committed.
    pub async fn submit(&self, events: Vec<Incoming>) -> Result<Vec<Ingested>, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job { events, reply })
            .await
            .map_err(|_| StoreError::Unavailable("the ingest writer has stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Unavailable("the ingest writer has stopped".into()))?
    }
}

async fn run(
    mut queue: mpsc::Receiver<Job>,
    store: Arc<dyn Store>,
    engine: Arc<Engine>,
    clock: Arc<dyn Clock>,
    wake: Arc<Wakeups>,
) {
    while let Some(first) = queue.recv().await {
        let mut jobs = vec![first];
        let mut size = jobs[0].events.len();
        while size < MAX_BATCH_EVENTS {
            match queue.try_recv() {
                Ok(job) => {
                    size += job.events.len();
                    jobs.push(job);
                }
                Err(_) => break,
            }
        }
        commit(&*store, &engine, &*clock, jobs).await;
        wake.timers.notify_one();
        store.notify_wakeup().await;
    }
}

async fn commit(store: &dyn Store, engine: &Engine, clock: &dyn Clock, jobs: Vec<Job>) {
    let events: Vec<Incoming> = jobs
        .iter()
        .flat_map(|job| job.events.iter().cloned())
        .collect();
    match store.ingest(engine, &events, clock.now()).await {
        Ok(results) => {
            let mut results = results.into_iter();
            for job in jobs {
                let answer: Vec<Ingested> = results.by_ref().take(job.events.len()).collect();
                metrics::counter!("nudge_events_ingested_total").increment(answer.len() as u64);
                let _ = job.reply.send(Ok(answer));
            }
        }
        Err(error) if jobs.len() > 1 && !matches!(error, StoreError::Unavailable(_)) => {
            // One bad event must not fail its neighbours: retry each request alone.
            tracing::warn!(%error, requests = jobs.len(), "batch commit failed; retrying requests one by one");
            for job in jobs {
                let result = store.ingest(engine, &job.events, clock.now()).await;
                let _ = job.reply.send(result);
            }
        }
        Err(error) => {
            let message = error.to_string();
            let unavailable = matches!(error, StoreError::Unavailable(_));
            for job in jobs {
                let copy = if unavailable {
                    StoreError::Unavailable(message.clone())
                } else {
                    StoreError::Other(message.clone())
                };
                let _ = job.reply.send(Err(copy));
            }
        }
    }
}
