//! The numbers KEDA gets: activity and the metric value.
//!
//! - pending = ready + in-flight
//! - pending now = pending at the sample + events tapped since the sample
//! - active ⇔ pending now > `activationPending`
//! - metric (default) = pending now, target = `targetPendingPerReplica`
//! - metric (with `targetDrainSeconds`) = pending × mean handling seconds,
//!   target = `targetDrainSeconds`; the HPA then asks for
//!   ceil(backlog seconds / targetDrainSeconds) replicas. Before any handling
//!   time was observed, the mean is taken as `targetDrainSeconds /
//!   targetPendingPerReplica` (the scaling matches the pending target).

use crate::metadata::TriggerSpec;
use crate::state::PendingWork;

/// Pending work including events tapped after the sample (`tap_count` now).
pub fn estimated_pending(work: &PendingWork, tap_count: u64) -> u64 {
    work.total() + tap_count.saturating_sub(work.tap_count_at_sample)
}

/// Whether the function has work (never `false` while anything is in flight
/// unless `activationPending` says so).
pub fn is_active(spec: &TriggerSpec, work: &PendingWork, tap_count: u64) -> bool {
    estimated_pending(work, tap_count) as f64 > spec.activation_pending
}

/// The metric value for `spec`: pending messages (with events tapped since
/// the sample), or seconds of backlog.
pub fn metric_value(spec: &TriggerSpec, work: &PendingWork, tap_count: u64) -> f64 {
    let pending = estimated_pending(work, tap_count) as f64;
    match spec.target_drain_seconds {
        None => pending,
        Some(target) => {
            let mean = work
                .mean_handling_seconds
                .unwrap_or(target / spec.target_pending_per_replica);
            pending * mean
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn spec(pairs: &[(&str, &str)]) -> TriggerSpec {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        TriggerSpec::parse("f", &map).unwrap()
    }

    fn work(ready: u64, in_flight: u64, mean: Option<f64>) -> PendingWork {
        PendingWork {
            ready,
            in_flight,
            consumers: 1,
            queue_exists: true,
            mean_handling_seconds: mean,
            sampled_at: tokio::time::Instant::now(),
            tap_count_at_sample: 7,
            management_at: tokio::time::Instant::now(),
        }
    }

    #[test]
    fn in_flight_alone_is_active() {
        let s = spec(&[("eventType", "fire")]);
        assert!(is_active(&s, &work(0, 3, None), 7));
        assert!(!is_active(&s, &work(0, 0, None), 7));
        assert!(
            is_active(&s, &work(0, 0, None), 8),
            "a tapped event activates"
        );
        let threshold = spec(&[("eventType", "fire"), ("activationPending", "3")]);
        assert!(!is_active(&threshold, &work(1, 2, None), 7));
        assert!(is_active(&threshold, &work(2, 2, None), 7));
    }

    #[test]
    fn drain_time_metric() {
        let plain = spec(&[("eventType", "fire")]);
        assert_eq!(metric_value(&plain, &work(4, 2, Some(9.0)), 7), 6.0);
        assert_eq!(
            metric_value(&plain, &work(4, 2, Some(9.0)), 9),
            8.0,
            "events tapped after the sample count"
        );
        let drain = spec(&[("eventType", "fire"), ("targetDrainSeconds", "30")]);
        // 6 pending x 2.5 s = 15 s of backlog: ceil(15 / 30) = 1 replica.
        assert_eq!(metric_value(&drain, &work(4, 2, Some(2.5)), 7), 15.0);
        // No observation yet: 30 s / 10 per replica = 3 s each.
        assert_eq!(metric_value(&drain, &work(4, 2, None), 7), 18.0);
    }
}
