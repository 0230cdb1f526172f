//! The detector's own Prometheus metrics.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `safecity_detector_batch_size` | histogram | frames per model run |
//! | `safecity_detector_inference_seconds` | histogram | duration of one model run (one batch) |
//! | `safecity_detector_batch_failures_total` | counter | model runs that failed (their frames are retried) |
//! | `safecity_detector_frames_rejected_total` | counter | frames dead-lettered as undecodable or too large |
//! | `safecity_detector_sightings_total` | counter | `event_type`: frames with a mapped detection |
//! | `safecity_detector_alerts_total` | counter | `event_type`: incidents opened (one `opened` event each) |
//! | `safecity_detector_incident_events_total` | counter | `event_type`, `state` = opened / updated / closed: lifecycle events emitted |
//! | `safecity_detector_frame_age_seconds` | histogram | capture to analysis, every analysed frame |
//! | `safecity_detector_late_events_total` | counter | events from a frame older than the frame budget (marked `late`) |
//!
//! They are served on the runtime's `/metrics`: the detector's
//! [`Function::register_metrics`](safecity_runtime::Function::register_metrics)
//! calls [`DetectorMetrics::register`]. [`DetectorMetrics::encode`] renders
//! them alone (for tests), and [`DetectorMetrics::log_every`] logs a summary
//! periodically.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use safecity_events::EventType;
use tokio_util::sync::CancellationToken;
use tracing::info;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabels {
    event_type: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LifecycleLabels {
    event_type: &'static str,
    state: &'static str,
}

/// Counters and histograms of one detector process.
#[derive(Debug)]
pub struct DetectorMetrics {
    registry: Registry,
    batch_size: Histogram,
    inference: Histogram,
    batch_failures: Counter,
    frames_rejected: Counter,
    sightings: Family<EventLabels, Counter>,
    alerts: Family<EventLabels, Counter>,
    lifecycle: Family<LifecycleLabels, Counter>,
    frame_age: Histogram,
    late_events: Counter,
    batches: AtomicU64,
    batched_frames: AtomicU64,
    largest_batch: AtomicU64,
    inference_micros: AtomicU64,
}

impl Default for DetectorMetrics {
    fn default() -> Self {
        DetectorMetrics::new()
    }
}

impl DetectorMetrics {
    /// Creates every metric, registered in its own registry (see [`DetectorMetrics::encode`]).
    pub fn new() -> Self {
        let mut metrics = DetectorMetrics {
            registry: Registry::default(),
            // 1, 2, 4, ..., 128 frames.
            batch_size: Histogram::new(exponential_buckets(1.0, 2.0, 8)),
            // 5 ms .. ~20 s.
            inference: Histogram::new(exponential_buckets(0.005, 2.0, 13)),
            batch_failures: Counter::default(),
            frames_rejected: Counter::default(),
            sightings: Family::default(),
            alerts: Family::default(),
            lifecycle: Family::default(),
            // 50 ms .. ~100 s.
            frame_age: Histogram::new(exponential_buckets(0.05, 2.0, 12)),
            late_events: Counter::default(),
            batches: AtomicU64::new(0),
            batched_frames: AtomicU64::new(0),
            inference_micros: AtomicU64::new(0),
            largest_batch: AtomicU64::new(0),
        };
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        metrics.registry = registry;
        metrics
    }

    /// Registers every metric (handles sharing their values with these) in
    /// `registry` under the `safecity_detector_` prefix: the runtime's
    /// registry, to serve them on `/metrics`.
    pub fn register(&self, registry: &mut Registry) {
        let prefixed = registry.sub_registry_with_prefix("safecity_detector");
        prefixed.register(
            "batch_size",
            "Frames per model run",
            self.batch_size.clone(),
        );
        prefixed.register(
            "inference_seconds",
            "Duration of one model run (one batch)",
            self.inference.clone(),
        );
        prefixed.register(
            "batch_failures",
            "Model runs that failed; their frames are retried",
            self.batch_failures.clone(),
        );
        prefixed.register(
            "frames_rejected",
            "Frames dead-lettered as undecodable or too large",
            self.frames_rejected.clone(),
        );
        prefixed.register(
            "sightings",
            "Frames with at least one mapped detection, by event type",
            self.sightings.clone(),
        );
        prefixed.register(
            "alerts",
            "Incidents opened (one `opened` event each), by event type",
            self.alerts.clone(),
        );
        prefixed.register(
            "incident_events",
            "Incident lifecycle events emitted, by event type and state (opened, updated, closed)",
            self.lifecycle.clone(),
        );
        prefixed.register(
            "frame_age_seconds",
            "Age of each analysed frame, from capture to analysis",
            self.frame_age.clone(),
        );
        prefixed.register(
            "late_events",
            "Events from a frame older than the frame budget (marked late)",
            self.late_events.clone(),
        );
    }

    /// Records the age of an analysed frame.
    pub fn frame_age(&self, age: Duration) {
        self.frame_age.observe(age.as_secs_f64());
    }

    /// Records an event emitted from a frame older than the frame budget.
    pub fn late_event(&self) {
        self.late_events.inc();
    }

    /// Records one model run of `size` frames that took `elapsed`.
    pub fn observe_batch(&self, size: usize, elapsed: Duration) {
        let size = u64::try_from(size).unwrap_or(u64::MAX);
        self.batch_size.observe(size as f64);
        self.inference.observe(elapsed.as_secs_f64());
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.batched_frames.fetch_add(size, Ordering::Relaxed);
        self.largest_batch.fetch_max(size, Ordering::Relaxed);
        self.inference_micros.fetch_add(
            u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// Records a failed model run.
    pub fn batch_failed(&self) {
        self.batch_failures.inc();
    }

    /// Records a dead-lettered frame.
    pub fn frame_rejected(&self) {
        self.frames_rejected.inc();
    }

    /// Records a frame with a mapped detection of `event`.
    pub fn sighting(&self, event: EventType) {
        self.sightings
            .get_or_create(&EventLabels {
                event_type: event.as_str(),
            })
            .inc();
    }

    /// Records an emitted alert of `event`.
    pub fn alert(&self, event: EventType) {
        self.alerts
            .get_or_create(&EventLabels {
                event_type: event.as_str(),
            })
            .inc();
    }

    /// Records an emitted lifecycle event (`opened` also counts as an alert).
    pub fn lifecycle(&self, event: EventType, state: safecity_events::Lifecycle) {
        if state == safecity_events::Lifecycle::Opened {
            self.alert(event);
        }
        self.lifecycle
            .get_or_create(&LifecycleLabels {
                event_type: event.as_str(),
                state: state.as_str(),
            })
            .inc();
    }

    /// Model runs so far.
    pub fn batches(&self) -> u64 {
        self.batches.load(Ordering::Relaxed)
    }

    /// Frames in all batches so far.
    pub fn batched_frames(&self) -> u64 {
        self.batched_frames.load(Ordering::Relaxed)
    }

    /// The largest batch so far.
    pub fn largest_batch(&self) -> u64 {
        self.largest_batch.load(Ordering::Relaxed)
    }

    /// Renders every metric in the Prometheus text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("encoding metrics into a String");
        out
    }

    /// Logs batches, frames, mean batch size and mean inference time of each
    /// `interval` (when there were batches) until `shutdown` fires.
    pub fn log_every(self: Arc<Self>, interval: Duration, shutdown: CancellationToken) {
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            ticks.tick().await;
            let mut last = (0, 0, 0);
            loop {
                tokio::select! {
                    _ = ticks.tick() => {}
                    () = shutdown.cancelled() => break,
                }
                let now = (
                    self.batches(),
                    self.batched_frames(),
                    self.inference_micros.load(Ordering::Relaxed),
                );
                let (batches, frames, micros) = (now.0 - last.0, now.1 - last.1, now.2 - last.2);
                last = now;
                if batches > 0 {
                    info!(
                        batches,
                        frames,
                        mean_batch = frames as f64 / batches as f64,
                        mean_inference_ms = micros as f64 / batches as f64 / 1000.0,
                        "inference summary"
                    );
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use safecity_runtime::prometheus_client::encoding::text::encode;
    use safecity_runtime::prometheus_client::registry::Registry;

    /// (Beside the runtime's own metrics on `/metrics`: tests/detector.rs.)
    #[test]
    fn registered_metrics_appear_in_the_registry_they_are_given() {
        let detector = DetectorMetrics::new();
        let mut registry = Registry::default();
        detector.register(&mut registry);
        detector.observe_batch(3, Duration::from_millis(40));
        detector.alert(EventType::Fire);
        detector.lifecycle(EventType::Gun, safecity_events::Lifecycle::Opened);
        detector.lifecycle(EventType::Gun, safecity_events::Lifecycle::Closed);
        detector.frame_rejected();
        let mut text = String::new();
        encode(&mut text, &registry).expect("encode");
        for line in [
            "safecity_detector_batch_size_count 1",
            "safecity_detector_batch_size_sum 3.0",
            "safecity_detector_inference_seconds_count 1",
            r#"safecity_detector_alerts_total{event_type="fire"} 1"#,
            r#"safecity_detector_alerts_total{event_type="gun"} 1"#,
            r#"safecity_detector_incident_events_total{event_type="gun",state="opened"} 1"#,
            r#"safecity_detector_incident_events_total{event_type="gun",state="closed"} 1"#,
            "safecity_detector_frames_rejected_total 1",
        ] {
            assert!(text.contains(line), "no `{line}` in\n{text}");
        }
        // The detector's own registry sees the same values.
        assert!(
            detector
                .encode()
                .contains("safecity_detector_frames_rejected_total 1")
        );
    }
}
