//! Prometheus metrics of one function, labelled by function and event type.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `safecity_events_received_total` | counter | function, event_type |
//! | `safecity_events_succeeded_total` | counter | function, event_type |
//! | `safecity_events_retried_total` | counter | function, event_type |
//! | `safecity_events_deferred_total` | counter | function, event_type (handed back for later, no attempt spent) |
//! | `safecity_events_dead_lettered_total` | counter | function, event_type, reason (`decode`, `rejected`, `exhausted`) |
//! | `safecity_events_in_flight` | gauge | function, event_type |
//! | `safecity_handle_duration_seconds` | histogram | function, event_type |
//! | `safecity_event_age_seconds` | histogram | function, event_type (now minus the event's `time` when handling starts) |
//! | `safecity_consuming` | gauge | function (1 while consuming) |
//! | `safecity_broker_reconnects_total` | counter | function |
//! | `safecity_start_to_consuming_seconds` | gauge | function (process start to first consume) |
//! | `safecity_cold_start_seconds` | histogram | function (once per process: for the first input published before the process started, handling start minus the event's `time`) |
//!
//! Decode failures are labelled `event_type="invalid"`: the type is what could not be read.
//!
//! A function adds its own metrics to the same registry, and so to `/metrics`,
//! with [`Function::register_metrics`](crate::Function::register_metrics).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use safecity_events::DeadLetterCause;

/// Event-type label of messages that could not be decoded.
pub(crate) const INVALID_KIND: &str = "invalid";

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FunctionLabels {
    function: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabels {
    function: String,
    event_type: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeadLetterLabels {
    function: String,
    event_type: String,
    reason: String,
}

fn duration_histogram() -> Histogram {
    // 1 ms .. ~65 s
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        0.001, 2.0, 17,
    ))
}

fn age_histogram() -> Histogram {
    // 5 ms .. ~1.4 h
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        0.005, 2.0, 21,
    ))
}

/// Handles of one (function, event type) pair, resolved once and cached.
#[derive(Debug)]
pub(crate) struct KindMetrics {
    /// Inputs received.
    pub received: Counter,
    /// Inputs handled successfully.
    pub succeeded: Counter,
    /// Attempts that failed and were scheduled for retry.
    pub retried: Counter,
    /// Inputs the handler deferred.
    pub deferred: Counter,
    /// Handlers running now.
    pub in_flight: Gauge,
    /// Handler durations.
    pub duration: Histogram,
    /// Age of events when handling starts.
    pub age: Histogram,
    dead_lettered: [Counter; 3],
}

impl KindMetrics {
    /// Counts one dead-lettered input.
    pub(crate) fn dead_lettered(&self, cause: DeadLetterCause) {
        let index = match cause {
            DeadLetterCause::Decode => 0,
            DeadLetterCause::Rejected => 1,
            DeadLetterCause::Exhausted => 2,
        };
        self.dead_lettered[index].inc();
    }
}

/// The metrics registry of one function process.
#[derive(Debug)]
pub(crate) struct Metrics {
    function: String,
    registry: Registry,
    received: Family<EventLabels, Counter>,
    succeeded: Family<EventLabels, Counter>,
    retried: Family<EventLabels, Counter>,
    deferred: Family<EventLabels, Counter>,
    dead_lettered: Family<DeadLetterLabels, Counter>,
    in_flight: Family<EventLabels, Gauge>,
    duration: Family<EventLabels, Histogram, fn() -> Histogram>,
    age: Family<EventLabels, Histogram, fn() -> Histogram>,
    /// 1 while the function is consuming.
    pub consuming: Gauge,
    /// Reconnects to the broker after a lost connection.
    pub reconnects: Counter,
    /// Seconds from process start to the first consume.
    pub start_to_consuming: Gauge<f64, AtomicU64>,
    cold_start: Histogram,
    started_at: DateTime<Utc>,
    cold_start_seen: AtomicBool,
    by_kind: RwLock<HashMap<&'static str, Arc<KindMetrics>>>,
}

impl Metrics {
    /// Creates and registers every metric of `function`.
    pub(crate) fn new(function: &str) -> Self {
        let mut registry = Registry::default();
        let received = Family::<EventLabels, Counter>::default();
        let succeeded = Family::<EventLabels, Counter>::default();
        let retried = Family::<EventLabels, Counter>::default();
        let deferred = Family::<EventLabels, Counter>::default();
        let dead_lettered = Family::<DeadLetterLabels, Counter>::default();
        let in_flight = Family::<EventLabels, Gauge>::default();
        let duration = Family::<EventLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            duration_histogram,
        );
        let age = Family::<EventLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            age_histogram,
        );
        let labels = FunctionLabels {
            function: function.to_owned(),
        };
        let consuming_family = Family::<FunctionLabels, Gauge>::default();
        let reconnects_family = Family::<FunctionLabels, Counter>::default();
        let start_family = Family::<FunctionLabels, Gauge<f64, AtomicU64>>::default();
        let consuming = consuming_family.get_or_create(&labels).clone();
        let reconnects = reconnects_family.get_or_create(&labels).clone();
        let start_to_consuming = start_family.get_or_create(&labels).clone();
        let cold_start_family =
            Family::<FunctionLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                age_histogram,
            );
        let cold_start = cold_start_family.get_or_create(&labels).clone();

        let prefixed = registry.sub_registry_with_prefix("safecity");
        prefixed.register(
            "events_received",
            "Inputs received from the broker",
            received.clone(),
        );
        prefixed.register(
            "events_succeeded",
            "Inputs handled successfully and acknowledged",
            succeeded.clone(),
        );
        prefixed.register(
            "events_retried",
            "Failed attempts scheduled for a retry",
            retried.clone(),
        );
        prefixed.register(
            "events_deferred",
            "Inputs handed back for later without spending an attempt",
            deferred.clone(),
        );
        prefixed.register(
            "events_dead_lettered",
            "Inputs sent to the dead-letter queue",
            dead_lettered.clone(),
        );
        prefixed.register(
            "events_in_flight",
            "Handlers running now",
            in_flight.clone(),
        );
        prefixed.register(
            "handle_duration_seconds",
            "Duration of one handler attempt",
            duration.clone(),
        );
        prefixed.register(
            "event_age_seconds",
            "Now minus the event's time, when handling starts",
            age.clone(),
        );
        prefixed.register(
            "consuming",
            "1 while the function consumes from its queue",
            consuming_family,
        );
        prefixed.register(
            "broker_reconnects",
            "Reconnects after a lost broker connection",
            reconnects_family,
        );
        prefixed.register(
            "start_to_consuming_seconds",
            "Seconds from process start to the first consume",
            start_family,
        );
        prefixed.register(
            "cold_start_seconds",
            "Once per process: the first input published before the process started, from its time to handling",
            cold_start_family,
        );

        Metrics {
            function: function.to_owned(),
            registry,
            received,
            succeeded,
            retried,
            deferred,
            dead_lettered,
            in_flight,
            duration,
            age,
            consuming,
            reconnects,
            start_to_consuming,
            cold_start,
            started_at: Utc::now(),
            cold_start_seen: AtomicBool::new(false),
            by_kind: RwLock::new(HashMap::new()),
        }
    }

    /// Observes the age of an input whose handling starts now; the first
    /// input that was published before this process started is the one that
    /// woke it (or waited for it): its age is the process's cold start.
    pub(crate) fn handling_starts(&self, kind: &KindMetrics, occurred_at: DateTime<Utc>) {
        let age = (Utc::now() - occurred_at).as_seconds_f64().max(0.0);
        kind.age.observe(age);
        if occurred_at < self.started_at && !self.cold_start_seen.swap(true, Ordering::Relaxed) {
            self.cold_start.observe(age);
        }
    }

    /// The cached handles for one event type.
    pub(crate) fn kind(&self, kind: &'static str) -> Arc<KindMetrics> {
        if let Some(found) = self
            .by_kind
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(kind)
        {
            return found.clone();
        }
        let labels = EventLabels {
            function: self.function.clone(),
            event_type: kind.to_owned(),
        };
        let dead = |cause: DeadLetterCause| {
            self.dead_lettered
                .get_or_create(&DeadLetterLabels {
                    function: self.function.clone(),
                    event_type: kind.to_owned(),
                    reason: cause.label().to_owned(),
                })
                .clone()
        };
        let handles = Arc::new(KindMetrics {
            received: self.received.get_or_create(&labels).clone(),
            succeeded: self.succeeded.get_or_create(&labels).clone(),
            retried: self.retried.get_or_create(&labels).clone(),
            deferred: self.deferred.get_or_create(&labels).clone(),
            in_flight: self.in_flight.get_or_create(&labels).clone(),
            duration: self.duration.get_or_create(&labels).clone(),
            age: self.age.get_or_create(&labels).clone(),
            dead_lettered: [
                dead(DeadLetterCause::Decode),
                dead(DeadLetterCause::Rejected),
                dead(DeadLetterCause::Exhausted),
            ],
        });
        self.by_kind
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .entry(kind)
            .or_insert(handles)
            .clone()
    }

    /// The registry, to add metrics before the process serves them; the
    /// runtime hands it to [`Function::register_metrics`](crate::Function::register_metrics).
    pub(crate) fn registry_mut(&mut self) -> &mut Registry {
        &mut self.registry
    }

    /// Renders every metric in the Prometheus text format.
    pub(crate) fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("encoding metrics into a String");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_appear_in_the_text_format() {
        let metrics = Metrics::new("map-pin");
        let accident = metrics.kind("accident");
        accident.received.inc();
        accident.received.inc();
        accident.dead_lettered(DeadLetterCause::Rejected);
        accident.duration.observe(0.02);
        metrics
            .kind(INVALID_KIND)
            .dead_lettered(DeadLetterCause::Decode);
        metrics.consuming.set(1);
        let text = metrics.encode();
        assert!(
            text.contains(
                r#"safecity_events_received_total{function="map-pin",event_type="accident"} 2"#
            ),
            "{text}"
        );
        assert!(text.contains(
            r#"safecity_events_dead_lettered_total{function="map-pin",event_type="accident",reason="rejected"} 1"#
        ));
        assert!(text.contains(
            r#"safecity_events_dead_lettered_total{function="map-pin",event_type="invalid",reason="decode"} 1"#
        ));
        assert!(text.contains(r#"safecity_consuming{function="map-pin"} 1"#));
        assert!(text.contains("safecity_handle_duration_seconds_bucket"));
        assert!(Arc::ptr_eq(&accident, &metrics.kind("accident")));
    }
}
