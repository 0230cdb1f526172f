//! `StreamIsActive`: one spawned task per stream pushes `result=true` to KEDA.
//!
//! - at once when the tap sees an event of the trigger's type while the last
//!   sample showed the function idle (at most one push per `min_push_gap`);
//!   while it showed work, at most one per `resend`. A tapped event inside a
//!   gap is pushed when the gap ends, never dropped;
//! - when a sample turns the function active (frames and queue-only triggers);
//! - every `resend` while work is pending (KEDA drops a `true` it cannot map yet);
//!   an idle stream has no timer running, so a thousand idle streams cost
//!   nothing between changes of their queue's work.
//!
//! The stream holds a [`StreamLease`] on its trigger: a trigger with an open
//! stream is never pruned.
//!
//! `false` is never sent (KEDA ignores it). On shutdown the task ends, the
//! channel closes and tonic ends the stream with status OK.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::formula;
use crate::metadata::TriggerSpec;
use crate::metrics::ScalerMetrics;
use crate::pb::IsActiveResponse;
use crate::registry::StreamLease;
use crate::state::{BrokerHealth, PendingWork, ScalerState, WatchedQueue};

/// Timing of the pushes.
#[derive(Debug, Clone, Copy)]
pub struct PushTiming {
    /// Re-send `true` this often while work is pending.
    pub resend: Duration,
    /// Tap-driven pushes are at least this far apart.
    pub min_push_gap: Duration,
}

/// The stream returned to tonic.
pub type ActivationStream = ReceiverStream<Result<IsActiveResponse, tonic::Status>>;

/// Spawns the push task of one stream and returns the stream.
pub fn spawn(
    state: Arc<ScalerState>,
    metrics: Arc<ScalerMetrics>,
    lease: StreamLease,
    timing: PushTiming,
    cancel: CancellationToken,
) -> ActivationStream {
    let (tx, rx) = mpsc::channel(2);
    metrics.open_streams.inc();
    tokio::spawn(async move {
        let registration = lease.registration();
        push_loop(
            &state,
            &metrics,
            &registration.queue,
            &registration.spec,
            timing,
            &cancel,
            &tx,
        )
        .await;
        metrics.open_streams.dec();
        debug!(queue = %registration.queue.name, "activation stream ended");
        drop(lease);
    });
    ReceiverStream::new(rx)
}

async fn tap_changed(tap: &mut Option<watch::Receiver<u64>>) -> bool {
    match tap {
        Some(rx) => rx.changed().await.is_ok(),
        None => std::future::pending().await,
    }
}

async fn sleep_until_deferred(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Starts the re-send timer afresh when the trigger turns active (a timer left
/// idle would fire at once), stops it when it turns idle.
fn arm(resending: &mut bool, active: bool, resend: &mut tokio::time::Interval) {
    if active && !*resending {
        resend.reset();
    }
    *resending = active;
}

async fn push_loop(
    state: &ScalerState,
    metrics: &ScalerMetrics,
    queue: &WatchedQueue,
    spec: &TriggerSpec,
    timing: PushTiming,
    cancel: &CancellationToken,
    tx: &mpsc::Sender<Result<IsActiveResponse, tonic::Status>>,
) {
    let mut pending = queue.subscribe();
    let mut tap = queue.event_type().map(|t| state.tap_counter(t));
    let tap_now = |tap: &Option<watch::Receiver<u64>>| tap.as_ref().map_or(0, |rx| *rx.borrow());
    // Before the first sample, count taps from the moment the stream opened.
    let opened_tap_count = tap_now(&tap);
    let label = spec.source.label();
    let sample_or_open = |work: Option<PendingWork>| {
        work.unwrap_or(PendingWork {
            ready: 0,
            in_flight: 0,
            consumers: 0,
            queue_exists: false,
            mean_handling_seconds: None,
            sampled_at: Instant::now(),
            tap_count_at_sample: opened_tap_count,
            management_at: Instant::now(),
        })
    };
    let push = |last_push: &mut Option<Instant>| {
        // A full channel already holds a `true`: nothing is lost by skipping.
        if tx.try_send(Ok(IsActiveResponse { result: true })).is_ok() {
            metrics.activation_pushed(label);
        }
        *last_push = Some(Instant::now());
    };
    let mut last_push: Option<Instant> = None;
    // A tapped event that fell inside the gap is pushed when the gap ends.
    let mut deferred: Option<Instant> = None;
    let mut resend = tokio::time::interval(timing.resend);
    resend.set_missed_tick_behavior(MissedTickBehavior::Delay);
    resend.tick().await;

    let work = sample_or_open(*pending.borrow_and_update());
    let mut was_active = formula::is_active(spec, &work, tap_now(&tap));
    if was_active {
        push(&mut last_push);
    }
    // The re-send timer runs only while the trigger is active (by sample or tap).
    let mut resending = was_active;
    loop {
        tokio::select! {
            biased;
            () = cancel.cancelled() => return,
            () = tx.closed() => return,
            alive = tap_changed(&mut tap) => {
                if !alive {
                    return;
                }
                let work = sample_or_open(*pending.borrow());
                let active = formula::is_active(spec, &work, tap_now(&tap));
                arm(&mut resending, active, &mut resend);
                if active {
                    // Idle at the last sample: KEDA may hold the function at zero, push
                    // now. Busy: KEDA knows already, one push per `resend` suffices.
                    let idle_at_sample = work.total() as f64 <= spec.activation_pending;
                    let gap = if idle_at_sample { timing.min_push_gap } else { timing.resend };
                    match last_push {
                        Some(at) if at.elapsed() < gap => {
                            let due = at + gap;
                            deferred = Some(deferred.map_or(due, |d| d.min(due)));
                        }
                        _ => {
                            deferred = None;
                            push(&mut last_push);
                        }
                    }
                }
            }
            () = sleep_until_deferred(deferred) => {
                deferred = None;
                push(&mut last_push);
            }
            changed = pending.changed() => {
                if changed.is_err() {
                    return;
                }
                let work = sample_or_open(*pending.borrow_and_update());
                let active = formula::is_active(spec, &work, tap_now(&tap));
                arm(&mut resending, active, &mut resend);
                if active && !was_active {
                    deferred = None;
                    push(&mut last_push);
                } else if let (Some(due), Some(at)) = (deferred, last_push) {
                    // A tapped event still owes a push: once idle, the short gap applies.
                    if work.total() as f64 <= spec.activation_pending {
                        deferred = Some(due.min(at + timing.min_push_gap));
                    }
                }
                was_active = active;
            }
            _ = resend.tick(), if resending => {
                let work = sample_or_open(*pending.borrow());
                let active = formula::is_active(spec, &work, tap_now(&tap));
                if state.broker_health() == BrokerHealth::Up && active {
                    push(&mut last_push);
                }
                resending = active;
            }
        }
    }
}
