//! Handling one delivery: decode, run the handler in its layers, settle the message.
//!
//! Layers around the author's handler, outermost first: metrics, tracing span,
//! panic catch, timeout, hard-stop on an expired shutdown grace. The verdict then
//! settles the delivery through its [`Settlement`]:
//!
//! | outcome | settlement |
//! |---|---|
//! | `Ok(())` | ack |
//! | `Retry`, timeout, panic, attempts left | republish to the retry queue for the delay, then ack |
//! | same, no attempts left | publish to the dead-letter queue (cause `exhausted`), then ack |
//! | `DeadLetter` | publish to the dead-letter queue (cause `rejected`), then ack |
//! | `Defer` | republish to the retry queue for the delay, attempts unchanged, then ack |
//! | decode error | publish to the dead-letter queue (cause `decode`), then ack |
//! | shutdown grace expired | nack with requeue (redelivered, not counted as an attempt) |
//!
//! A republish that fails (broker gone) leaves the delivery unacked: it comes back.

use std::any::Any;
use std::collections::HashSet;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use futures_util::FutureExt as _;
use lapin::BasicProperties;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicNackOptions};
use safecity_events::dead_letter::one_line;
use safecity_events::topology::{self, FunctionQueues, TopologyError};
use safecity_events::{DeadLetterCause, FailureRecord, Publisher, TraceParent};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument as _, debug, warn};

use crate::config::RuntimeConfig;
use crate::context::{AttemptInfo, Context};
use crate::function::{Function, HandlerError, Input, Message};
use crate::metrics::{INVALID_KIND, KindMetrics, Metrics};

/// State shared by every delivery of the process.
pub(crate) struct Shared<F> {
    pub(crate) function: F,
    pub(crate) name: Arc<str>,
    pub(crate) queues: FunctionQueues,
    pub(crate) config: RuntimeConfig,
    pub(crate) metrics: Arc<Metrics>,
    /// Fires when shutdown starts; handlers see it through their context.
    pub(crate) shutdown: CancellationToken,
    /// Fires when the shutdown grace expires: unfinished handlers are abandoned.
    pub(crate) hard_stop: CancellationToken,
}

/// Per-connection handles: deliveries settle on the session they came from.
#[derive(Clone)]
pub(crate) struct Session {
    pub(crate) publisher: Publisher,
    /// Retry queues declared on this connection (the configured ones at start).
    pub(crate) retry_queues: Arc<Mutex<HashSet<Duration>>>,
}

impl Session {
    /// A session publishing on `publisher`, whose configured retry queues exist.
    pub(crate) fn new(publisher: Publisher, retry_delays: &[Duration]) -> Self {
        Session {
            publisher,
            retry_queues: Arc::new(Mutex::new(retry_delays.iter().copied().collect())),
        }
    }
}

enum Outcome {
    Done,
    Failed {
        reason: String,
        after: Option<Duration>,
    },
    Rejected {
        reason: String,
    },
    Deferred {
        reason: String,
        after: Duration,
    },
    Abandoned,
}

impl Outcome {
    /// The same outcome with its reason on one line (for logs and headers).
    fn one_line(self) -> Self {
        match self {
            Outcome::Failed { reason, after } => Outcome::Failed {
                reason: one_line(&reason),
                after,
            },
            Outcome::Rejected { reason } => Outcome::Rejected {
                reason: one_line(&reason),
            },
            Outcome::Deferred { reason, after } => Outcome::Deferred {
                reason: one_line(&reason),
                after,
            },
            other => other,
        }
    }
}

/// Handles one delivery to the end: exactly one of ack, retry, dead-letter or requeue.
pub(crate) async fn handle_delivery<F: Function>(
    shared: Arc<Shared<F>>,
    session: Session,
    delivery: Delivery,
) {
    let headers = delivery.properties.headers().as_ref();
    let record = FailureRecord::read(
        headers,
        delivery.exchange.as_str(),
        delivery.routing_key.as_str(),
    );
    let message = Message {
        body: &delivery.data,
        content_type: delivery
            .properties
            .content_type()
            .as_ref()
            .map(|c| c.as_str()),
        headers,
        routing_key: &record.original_routing_key,
    };
    let decoded = F::Input::decode(&message);
    let kind = shared.metrics.kind(match &decoded {
        Ok(input) => input.kind(),
        Err(_) => INVALID_KIND,
    });
    kind.received.inc();
    let settlement = Settlement {
        shared: &shared,
        session: &session,
        delivery: &delivery,
        record: &record,
        kind: &kind,
    };
    let input = match decoded {
        Ok(input) => input,
        Err(error) => {
            warn!(
                function = %shared.name,
                routing_key = %record.original_routing_key,
                %error,
                "undecodable input, dead-lettering"
            );
            settlement
                .dead_letter(DeadLetterCause::Decode, &error.to_string())
                .await;
            return;
        }
    };
    shared.metrics.handling_starts(&kind, input.occurred_at());

    let attributes = input.attributes().cloned();
    let parent = attributes.as_ref().and_then(|a| a.traceparent);
    let trace = parent.map_or_else(TraceParent::new_root, |p| p.child());
    // Few, cheap fields: this span is created for every delivery.
    let span = tracing::info_span!(
        "handle",
        event_id = %input.id(),
        trace_id = %trace.trace_id_display(),
    );
    if let Some(parent) = parent {
        debug!(parent: &span, parent_span_id = %parent.parent_id_hex(), "continuing trace");
    }
    let ctx = Context::for_broker(
        AttemptInfo {
            function: shared.name.clone(),
            attributes,
            attempt: record.attempt(),
            timeout: shared.config.handler_timeout,
            shutdown: shared.shutdown.clone(),
            span: span.clone(),
            trace,
            frame_budget: shared.config.frame_bounds.budget,
        },
        session.publisher.clone(),
    );
    let outcome = run_handler(&shared, input, ctx, &kind)
        .instrument(span.clone())
        .await;
    settlement.settle(outcome).instrument(span).await;
}

/// Runs the handler inside its layers: in-flight gauge, duration, panic
/// catch, timeout, and the hard stop of an expired shutdown grace.
async fn run_handler<F: Function>(
    shared: &Shared<F>,
    input: F::Input,
    ctx: Context,
    kind: &KindMetrics,
) -> Outcome {
    kind.in_flight.inc();
    let started = Instant::now();
    let timeout = shared.config.handler_timeout;
    let attempt = AssertUnwindSafe(tokio::time::timeout(
        timeout,
        shared.function.handle(input, ctx),
    ))
    .catch_unwind();
    let outcome = tokio::select! {
        result = attempt => match result {
            Ok(Ok(Ok(()))) => Outcome::Done,
            Ok(Ok(Err(HandlerError::Retry { reason, after }))) => Outcome::Failed { reason, after },
            Ok(Ok(Err(HandlerError::DeadLetter { reason }))) => Outcome::Rejected { reason },
            Ok(Ok(Err(HandlerError::Defer { reason, after }))) => Outcome::Deferred { reason, after },
            Ok(Err(_elapsed)) => Outcome::Failed {
                reason: format!("handler timed out after {}", humantime::format_duration(timeout)),
                after: None,
            },
            Err(panic) => Outcome::Failed {
                reason: format!("handler panicked: {}", panic_message(&*panic)),
                after: None,
            },
        },
        () = shared.hard_stop.cancelled() => Outcome::Abandoned,
    };
    kind.duration.observe(started.elapsed().as_secs_f64());
    kind.in_flight.dec();
    outcome
}

/// The fate of one delivery: everything needed to ack, park, dead-letter or
/// requeue it, on the session it came from.
struct Settlement<'a, F> {
    shared: &'a Shared<F>,
    session: &'a Session,
    delivery: &'a Delivery,
    record: &'a FailureRecord,
    kind: &'a KindMetrics,
}

impl<F: Function> Settlement<'_, F> {
    /// Acks, retries, dead-letters or requeues according to the outcome.
    async fn settle(&self, outcome: Outcome) {
        match outcome.one_line() {
            Outcome::Done => {
                if self.ack().await {
                    self.kind.succeeded.inc();
                }
            }
            Outcome::Failed { reason, after } => {
                if self.record.attempt() < self.shared.config.max_attempts() {
                    self.retry(&reason, after).await;
                } else {
                    warn!(attempts = self.record.attempt(), %reason, "last attempt failed, dead-lettering");
                    let reason =
                        format!("gave up after {} attempts: {reason}", self.record.attempt());
                    self.dead_letter(DeadLetterCause::Exhausted, &reason).await;
                }
            }
            Outcome::Rejected { reason } => {
                warn!(%reason, "handler rejected the input, dead-lettering");
                self.dead_letter(DeadLetterCause::Rejected, &reason).await;
            }
            Outcome::Deferred { reason, after } => {
                let delay = whole_seconds(after).min(self.shared.config.max_retry_delay);
                let properties = self.record.deferred(&self.delivery.properties);
                if self.park(delay, properties).await {
                    debug!(%reason, delay = %humantime::format_duration(delay), "deferred");
                    if self.ack().await {
                        self.kind.deferred.inc();
                    }
                }
            }
            Outcome::Abandoned => {
                warn!(
                    "shutdown grace expired before the handler finished, returning the input to the queue"
                );
                self.requeue().await;
            }
        }
    }

    /// Acks; false when the channel is gone (the broker will redeliver).
    async fn ack(&self) -> bool {
        match self.delivery.acker.ack(BasicAckOptions::default()).await {
            Ok(_) => true,
            Err(error) => {
                warn!(%error, "ack failed: the channel is gone and the broker will redeliver");
                false
            }
        }
    }

    async fn requeue(&self) {
        let options = BasicNackOptions {
            requeue: true,
            ..BasicNackOptions::default()
        };
        if let Err(error) = self.delivery.acker.nack(options).await {
            debug!(%error, "requeue failed: the channel is gone and the broker requeues anyway");
        }
    }

    async fn retry(&self, reason: &str, requested: Option<Duration>) {
        let delay = retry_delay(&self.shared.config, self.record.failed_attempts, requested);
        let properties = self
            .record
            .after_failure(&self.delivery.properties, reason, Utc::now());
        if self.park(delay, properties).await {
            warn!(attempt = self.record.attempt(), %reason, delay = %humantime::format_duration(delay), "attempt failed, will retry");
            if self.ack().await {
                self.kind.retried.inc();
            }
        }
    }

    /// Parks a copy of the input in the retry queue for `delay`; false (and
    /// the input requeued) when that is impossible, so nothing is lost.
    async fn park(&self, delay: Duration, properties: BasicProperties) -> bool {
        let queue = match self.ensure_retry_queue(delay).await {
            Ok(queue) => queue,
            Err(error) => {
                warn!(%error, "cannot declare the retry queue; returning the input to the queue");
                self.requeue().await;
                return false;
            }
        };
        match self
            .session
            .publisher
            .publish("", &queue, &self.delivery.data, properties)
            .await
        {
            Ok(()) => true,
            Err(error) => {
                warn!(%error, "cannot park the input for later; returning it to the queue");
                self.requeue().await;
                false
            }
        }
    }

    async fn ensure_retry_queue(&self, delay: Duration) -> Result<String, TopologyError> {
        let queues = &self.shared.queues;
        let known = self
            .session
            .retry_queues
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .contains(&delay);
        if known {
            return Ok(queues.retry(delay));
        }
        let name = topology::declare_retry_queue(
            self.session.publisher.channel(),
            queues,
            self.shared.config.queue_type,
            delay,
        )
        .await?;
        self.session
            .retry_queues
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(delay);
        Ok(name)
    }

    async fn dead_letter(&self, cause: DeadLetterCause, reason: &str) {
        let properties = self.record.dead_letter(
            &self.delivery.properties,
            &self.shared.name,
            cause,
            reason,
            Utc::now(),
        );
        let published = self
            .session
            .publisher
            .publish(
                "",
                &self.shared.queues.dead_letter(),
                &self.delivery.data,
                properties,
            )
            .await;
        match published {
            Ok(()) => {
                if self.ack().await {
                    self.kind.dead_lettered(cause);
                }
            }
            Err(error) => {
                warn!(%error, "cannot dead-letter; returning the input to the queue");
                self.requeue().await;
            }
        }
    }
}

/// Rounds up to whole seconds (at least one), so ad-hoc delays reuse few retry queues.
fn whole_seconds(delay: Duration) -> Duration {
    Duration::from_secs((delay.as_secs() + u64::from(delay.subsec_nanos() > 0)).max(1))
}

fn panic_message(panic: &(dyn Any + Send)) -> String {
    if let Some(text) = panic.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = panic.downcast_ref::<String>() {
        text.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

/// The delay before the next attempt: the configured step for this attempt,
/// or the handler's own delay if longer, rounded up to whole seconds when it
/// is not a configured step, and capped.
pub(crate) fn retry_delay(
    config: &RuntimeConfig,
    failed_attempts: u32,
    requested: Option<Duration>,
) -> Duration {
    let step_index = usize::try_from(failed_attempts).unwrap_or(usize::MAX);
    let step = config
        .retry_delays
        .get(step_index)
        .or(config.retry_delays.last())
        .copied()
        .unwrap_or(Duration::from_secs(1));
    match requested {
        Some(requested) if requested > step => {
            whole_seconds(requested).min(config.max_retry_delay.max(step))
        }
        _ => step,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(delays: &str) -> RuntimeConfig {
        RuntimeConfig::from_lookup(|name| match name {
            "SAFECITY_RETRY_DELAYS" => Some(delays.to_owned()),
            "SAFECITY_MAX_RETRY_DELAY" => Some("10m".to_owned()),
            _ => None,
        })
        .expect("config")
    }

    #[test]
    fn delays_follow_the_schedule_then_stay_at_the_last_step() {
        let config = config("1s,5s,30s");
        assert_eq!(retry_delay(&config, 0, None), Duration::from_secs(1));
        assert_eq!(retry_delay(&config, 1, None), Duration::from_secs(5));
        assert_eq!(retry_delay(&config, 2, None), Duration::from_secs(30));
        assert_eq!(retry_delay(&config, 9, None), Duration::from_secs(30));
    }

    #[test]
    fn a_longer_requested_delay_wins_rounded_up_and_capped() {
        let config = config("1s,5s");
        assert_eq!(
            retry_delay(&config, 0, Some(Duration::from_millis(200))),
            Duration::from_secs(1)
        );
        assert_eq!(
            retry_delay(&config, 0, Some(Duration::from_millis(2500))),
            Duration::from_secs(3)
        );
        assert_eq!(
            retry_delay(&config, 0, Some(Duration::from_secs(3600))),
            Duration::from_secs(600)
        );
    }

    #[test]
    fn panic_payloads_become_text() {
        let caught = std::panic::catch_unwind(|| panic!("boom {}", 7)).expect_err("panicked");
        assert_eq!(panic_message(&*caught), "boom 7");
    }
}
