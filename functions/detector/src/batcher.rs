//! Dynamic batching: up to `B` items or `T` after the first, whichever comes
//! first, then one model run for the whole batch.
//!
//! Handlers [`submit`](Batcher::submit) one item each and await its result.
//! A single task collects items from a channel: it takes the first, then more
//! until the batch holds `max_batch` items or `max_wait` has passed since the
//! first arrived, and runs the model on the batch in
//! [`tokio::task::spawn_blocking`] (inference is CPU-heavy and must not stall
//! the async workers). Items that arrive meanwhile wait in the channel for the
//! next batch. Every submitter gets its item back with its own output, or the
//! batch's error.
//!
//! Batches fill only if enough handlers run at once: the runtime's
//! `SAFECITY_CONCURRENCY` (the prefetch) must be at least `max_batch`.
//!
//! When the shutdown token fires, the batcher stops waiting for batches to
//! fill (handlers still draining get their results at once) and runs until
//! every [`Batcher`] handle is dropped.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument as _, debug, info_span, warn};

use crate::metrics::DetectorMetrics;

/// A model that processes items in batches.
pub trait BatchModel: Send + Sync + 'static {
    /// One input (e.g. a decoded frame).
    type Item: Send + 'static;
    /// The result for one input.
    type Output: Send + 'static;
    /// A failure of the whole batch.
    type Error: std::fmt::Display;

    /// Processes a batch; result `i` belongs to `items[i]`.
    fn run(&self, items: &[Self::Item]) -> Result<Vec<Self::Output>, Self::Error>;
}

/// Why a submitted item has no result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// The model failed on the item's batch.
    #[error("inference failed on a batch of {batch} frames: {reason}")]
    Model {
        /// Size of the failed batch.
        batch: usize,
        /// The model's error.
        reason: String,
    },
    /// The model panicked on the item's batch.
    #[error("inference panicked on a batch of {batch} frames")]
    Panicked {
        /// Size of the batch.
        batch: usize,
    },
    /// The batcher has stopped.
    #[error("the batcher has stopped")]
    Stopped,
}

/// How batches are formed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchPolicy {
    /// Most items per batch (at least 1).
    pub max_batch: usize,
    /// Longest wait after a batch's first item before it runs anyway.
    pub max_wait: Duration,
}

type Answer<M> = Result<(<M as BatchModel>::Item, <M as BatchModel>::Output), BatchError>;

struct Job<M: BatchModel> {
    item: M::Item,
    reply: oneshot::Sender<Answer<M>>,
}

/// The submitting side of a batcher; clone it freely.
pub struct Batcher<M: BatchModel> {
    jobs: mpsc::Sender<Job<M>>,
}

impl<M: BatchModel> Clone for Batcher<M> {
    fn clone(&self) -> Self {
        Batcher {
            jobs: self.jobs.clone(),
        }
    }
}

impl<M: BatchModel> std::fmt::Debug for Batcher<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher")
            .field("closed", &self.jobs.is_closed())
            .finish()
    }
}

impl<M: BatchModel> Batcher<M> {
    /// Starts the batching task on the current tokio runtime.
    pub fn spawn(
        model: Arc<M>,
        policy: BatchPolicy,
        metrics: Arc<DetectorMetrics>,
        shutdown: CancellationToken,
    ) -> Self {
        let policy = BatchPolicy {
            max_batch: policy.max_batch.max(1),
            ..policy
        };
        // Room for a few batches; more submitters wait (back-pressure).
        let (jobs, receiver) = mpsc::channel(policy.max_batch * 4);
        tokio::spawn(collect(model, policy, metrics, shutdown, receiver));
        Batcher { jobs }
    }

    /// Submits one item and waits for its result; the item comes back with it.
    pub async fn submit(&self, item: M::Item) -> Answer<M> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job { item, reply })
            .await
            .map_err(|_| BatchError::Stopped)?;
        answer.await.map_err(|_| BatchError::Stopped)?
    }
}

async fn collect<M: BatchModel>(
    model: Arc<M>,
    policy: BatchPolicy,
    metrics: Arc<DetectorMetrics>,
    shutdown: CancellationToken,
    mut receiver: mpsc::Receiver<Job<M>>,
) {
    let mut sequence: u64 = 0;
    while let Some(first) = receiver.recv().await {
        let opened = Instant::now();
        let deadline = opened + policy.max_wait;
        let mut batch = vec![first];
        while batch.len() < policy.max_batch {
            // Take what is already queued; wait for more only until the deadline,
            // and not at all once shutting down.
            match receiver.try_recv() {
                Ok(job) => {
                    batch.push(job);
                    continue;
                }
                Err(mpsc::error::TryRecvError::Disconnected) => break,
                Err(mpsc::error::TryRecvError::Empty) if shutdown.is_cancelled() => break,
                Err(mpsc::error::TryRecvError::Empty) => {}
            }
            tokio::select! {
                job = receiver.recv() => match job {
                    Some(job) => batch.push(job),
                    None => break,
                },
                () = tokio::time::sleep_until(deadline) => break,
                () = shutdown.cancelled() => break,
            }
        }
        sequence += 1;
        let waited = opened.elapsed();
        let span = info_span!(
            "batch",
            batch = sequence,
            size = batch.len(),
            waited_ms = waited.as_secs_f64() * 1000.0,
            inference_ms = tracing::field::Empty,
        );
        run_batch(&model, batch, &metrics).instrument(span).await;
    }
    debug!("batcher stopped: every handle is gone");
}

async fn run_batch<M: BatchModel>(model: &Arc<M>, batch: Vec<Job<M>>, metrics: &DetectorMetrics) {
    let size = batch.len();
    let (items, replies): (Vec<M::Item>, Vec<_>) =
        batch.into_iter().map(|job| (job.item, job.reply)).unzip();
    let model = model.clone();
    let started = Instant::now();
    let span = tracing::Span::current();
    let ran = tokio::task::spawn_blocking(move || {
        let _entered = span.enter();
        let result = model
            .run(&items)
            .map_err(|e| e.to_string())
            .and_then(|outputs| {
                if outputs.len() == items.len() {
                    Ok(outputs)
                } else {
                    Err(format!(
                        "the model returned {} results for {} inputs",
                        outputs.len(),
                        items.len()
                    ))
                }
            });
        (items, result)
    })
    .await;
    let elapsed = started.elapsed();
    tracing::Span::current().record("inference_ms", elapsed.as_secs_f64() * 1000.0);
    debug!(
        size,
        inference_ms = elapsed.as_secs_f64() * 1000.0,
        "batch done"
    );
    metrics.observe_batch(size, elapsed);
    match ran {
        Ok((items, Ok(outputs))) => {
            for ((reply, item), output) in replies.into_iter().zip(items).zip(outputs) {
                // A submitter that gave up (timeout, shutdown) no longer listens.
                let _ = reply.send(Ok((item, output)));
            }
        }
        Ok((_, Err(reason))) => {
            warn!(size, %reason, "inference failed; the batch's frames will be retried");
            metrics.batch_failed();
            for reply in replies {
                let _ = reply.send(Err(BatchError::Model {
                    batch: size,
                    reason: reason.clone(),
                }));
            }
        }
        Err(join) => {
            warn!(size, error = %join, "inference panicked; the batch's frames will be retried");
            metrics.batch_failed();
            for reply in replies {
                let _ = reply.send(Err(BatchError::Panicked { batch: size }));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// A deterministic fake model: these tests check how batches are formed
    /// (sizes, timeout, failure fan-out), not detection, so a real network
    /// would only add time. It doubles numbers and records each batch.
    #[derive(Default)]
    struct Doubler {
        batches: Mutex<Vec<Vec<u32>>>,
    }

    impl BatchModel for Doubler {
        type Item = u32;
        type Output = u32;
        type Error = String;

        fn run(&self, items: &[u32]) -> Result<Vec<u32>, String> {
            self.batches.lock().expect("lock").push(items.to_vec());
            if items.contains(&13) {
                return Err("unlucky batch".to_owned());
            }
            Ok(items.iter().map(|n| n * 2).collect())
        }
    }

    fn start(
        max_batch: usize,
        max_wait_ms: u64,
    ) -> (Arc<Doubler>, Batcher<Doubler>, CancellationToken) {
        let model = Arc::new(Doubler::default());
        let shutdown = CancellationToken::new();
        let batcher = Batcher::spawn(
            model.clone(),
            BatchPolicy {
                max_batch,
                max_wait: Duration::from_millis(max_wait_ms),
            },
            Arc::new(DetectorMetrics::new()),
            shutdown.clone(),
        );
        (model, batcher, shutdown)
    }

    fn sizes(model: &Doubler) -> Vec<usize> {
        model
            .batches
            .lock()
            .expect("lock")
            .iter()
            .map(Vec::len)
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_batch_runs_at_once_and_the_rest_waits_for_the_next() {
        let (model, batcher, _shutdown) = start(4, 10_000);
        let started = Instant::now();
        let tasks: Vec<_> = (0..5)
            .map(|n| {
                let batcher = batcher.clone();
                tokio::spawn(async move { batcher.submit(n).await })
            })
            .collect();
        let mut answers = Vec::new();
        for task in tasks.into_iter().take(4) {
            answers.push(task.await.expect("task").expect("answer"));
        }
        assert_eq!(answers, vec![(0, 0), (1, 2), (2, 4), (3, 6)]);
        assert!(
            started.elapsed() < Duration::from_millis(10_000),
            "a full batch does not wait"
        );
        assert_eq!(sizes(&model), vec![4]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_lone_item_runs_after_the_wait() {
        let (model, batcher, _shutdown) = start(4, 50);
        let started = Instant::now();
        let task = tokio::spawn(async move { batcher.submit(21).await });
        tokio::time::sleep(Duration::from_millis(49)).await;
        assert!(sizes(&model).is_empty(), "still waiting for company");
        assert_eq!(task.await.expect("task"), Ok((21, 42)));
        assert!(started.elapsed() >= Duration::from_millis(50));
        assert_eq!(sizes(&model), vec![1]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_batch_fails_each_of_its_items_and_only_those() {
        let (model, batcher, _shutdown) = start(2, 10);
        let (a, b) = tokio::join!(batcher.submit(13), batcher.submit(1));
        let expected = Err(BatchError::Model {
            batch: 2,
            reason: "unlucky batch".to_owned(),
        });
        assert_eq!(a, expected);
        assert_eq!(b, expected);
        assert_eq!(batcher.submit(5).await, Ok((5, 10)));
        assert_eq!(sizes(&model), vec![2, 1]);
    }

    #[tokio::test(start_paused = true)]
    async fn after_shutdown_batches_go_without_waiting() {
        let (model, batcher, shutdown) = start(4, 60_000);
        shutdown.cancel();
        let started = Instant::now();
        assert_eq!(batcher.submit(2).await, Ok((2, 4)));
        assert!(started.elapsed() < Duration::from_secs(60));
        assert_eq!(sizes(&model), vec![1]);
    }

    #[tokio::test(start_paused = true)]
    async fn the_batch_metrics_count_sizes() {
        let model = Arc::new(Doubler::default());
        let metrics = Arc::new(DetectorMetrics::new());
        let batcher = Batcher::spawn(
            model.clone(),
            BatchPolicy {
                max_batch: 3,
                max_wait: Duration::from_millis(5),
            },
            metrics.clone(),
            CancellationToken::new(),
        );
        let (a, b, c) = tokio::join!(batcher.submit(1), batcher.submit(2), batcher.submit(3));
        assert!(a.is_ok() && b.is_ok() && c.is_ok());
        assert_eq!(batcher.submit(4).await, Ok((4, 8)));
        assert_eq!(metrics.batches(), 2);
        assert_eq!(metrics.largest_batch(), 3);
        let text = metrics.encode();
        assert!(
            text.contains("safecity_detector_batch_size_count 2"),
            "{text}"
        );
    }
}
