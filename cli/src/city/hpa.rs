//! The replica arithmetic of the Kubernetes HorizontalPodAutoscaler, as KEDA
//! drives it for an external metric with an `AverageValue` target, and
//! KEDA's own activation and cooldown around it (pure; no clock of its own).
//!
//! - desired = `ceil(metric / target)`, unless the usage ratio
//!   `metric / (target × current)` is within the tolerance (10 %) of 1;
//! - stabilization: the highest recommendation of the scale-down window
//!   (default 300 s) and the lowest of the scale-up window (default 0 s);
//! - rate policies per direction (default up: max(+4 pods, +100 %) per 15 s;
//!   down: −100 % per 15 s), `selectPolicy` Max, Min or Disabled;
//! - clamped to `[max(min, 1), max]` while active; 0 ↔ 1 is KEDA's:
//!   activation from zero at once, back to zero after `cooldownPeriod`
//!   without activity.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

/// The HPA's default tolerance on the usage ratio.
pub const TOLERANCE: f64 = 0.1;

/// What a policy limits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PolicyKind {
    /// At most this many pods per period.
    Pods,
    /// At most this percentage of the current pods per period.
    Percent,
}

/// One scaling policy (`behavior.scaleUp.policies[]`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Policy {
    /// Pods or Percent.
    pub kind: PolicyKind,
    /// The amount.
    pub value: u32,
    /// The period it applies to.
    pub period: Duration,
}

/// How the policies of one direction combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Select {
    /// The policy allowing the biggest change.
    Max,
    /// The policy allowing the smallest change.
    Min,
    /// No scaling in this direction.
    Disabled,
}

/// `behavior.scaleUp` or `behavior.scaleDown`.
#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    /// Recommendations considered over this window.
    pub stabilization: Duration,
    /// How the policies combine.
    pub select: Select,
    /// The policies.
    pub policies: Vec<Policy>,
}

/// Both directions.
#[derive(Debug, Clone, PartialEq)]
pub struct Behavior {
    /// Scaling up.
    pub scale_up: Rules,
    /// Scaling down.
    pub scale_down: Rules,
}

impl Default for Behavior {
    /// The HPA's defaults.
    fn default() -> Self {
        Behavior {
            scale_up: Rules {
                stabilization: Duration::ZERO,
                select: Select::Max,
                policies: vec![
                    Policy {
                        kind: PolicyKind::Pods,
                        value: 4,
                        period: Duration::from_secs(15),
                    },
                    Policy {
                        kind: PolicyKind::Percent,
                        value: 100,
                        period: Duration::from_secs(15),
                    },
                ],
            },
            scale_down: Rules {
                stabilization: Duration::from_secs(300),
                select: Select::Max,
                policies: vec![Policy {
                    kind: PolicyKind::Percent,
                    value: 100,
                    period: Duration::from_secs(15),
                }],
            },
        }
    }
}

/// The HPA's raw recommendation for `current` replicas seeing `metric`
/// against an `AverageValue` `target`.
pub fn recommend(current: u32, metric: f64, target: f64) -> u32 {
    if target <= 0.0 || !metric.is_finite() {
        return current;
    }
    if current > 0 {
        let ratio = metric / (target * f64::from(current));
        if (ratio - 1.0).abs() <= TOLERANCE {
            return current;
        }
    }
    (metric / target).ceil().clamp(0.0, f64::from(u32::MAX)) as u32
}

/// The stabilization and rate-limit memory of one scale target.
#[derive(Debug, Default)]
pub struct Hpa {
    recommendations: VecDeque<(Instant, u32)>,
    /// Replica changes made: (when, from, to).
    changes: VecDeque<(Instant, u32, u32)>,
}

impl Hpa {
    /// The replicas to run now: `recommendation` stabilized, rate-limited by
    /// `behavior` and clamped to `min..=max` (the caller handles 0 ↔ 1).
    pub fn next(
        &mut self,
        now: Instant,
        current: u32,
        recommendation: u32,
        min: u32,
        max: u32,
        behavior: &Behavior,
    ) -> u32 {
        let keep = behavior
            .scale_down
            .stabilization
            .max(behavior.scale_up.stabilization)
            .max(Duration::from_secs(600));
        self.recommendations.push_back((now, recommendation));
        self.recommendations
            .retain(|(at, _)| now.saturating_duration_since(*at) <= keep);
        self.changes
            .retain(|(at, _, _)| now.saturating_duration_since(*at) <= keep);
        let in_window = |window: Duration| {
            self.recommendations
                .iter()
                .filter(move |(at, _)| now.saturating_duration_since(*at) <= window)
                .map(|(_, r)| *r)
        };
        // Down: the highest recommendation of the window; up: the lowest. A
        // zero window is this recommendation alone (not earlier ones made
        // at the same instant).
        let highest = if behavior.scale_down.stabilization.is_zero() {
            recommendation
        } else {
            in_window(behavior.scale_down.stabilization)
                .max()
                .unwrap_or(recommendation)
        };
        let lowest = if behavior.scale_up.stabilization.is_zero() {
            recommendation
        } else {
            in_window(behavior.scale_up.stabilization)
                .min()
                .unwrap_or(recommendation)
        };
        let stabilized = if recommendation < current {
            highest.min(current)
        } else if recommendation > current {
            lowest.max(current)
        } else {
            current
        };
        let limited = if stabilized > current {
            stabilized
                .min(self.limit_up(now, current, &behavior.scale_up))
                .max(current)
        } else if stabilized < current {
            stabilized.max(self.limit_down(now, current, &behavior.scale_down))
        } else {
            current
        };
        let target = limited.clamp(min.max(1).min(max), max.max(1));
        if target != current {
            self.changes.push_back((now, current, target));
        }
        target
    }

    /// Replicas at the start of `period`: now minus the changes made since.
    fn replicas_period_ago(&self, now: Instant, current: u32, period: Duration) -> u32 {
        self.changes
            .iter()
            .find(|(at, _, _)| now.saturating_duration_since(*at) <= period)
            .map_or(current, |(_, from, _)| *from)
    }

    /// The most replicas the scale-up policies allow.
    fn limit_up(&self, now: Instant, current: u32, rules: &Rules) -> u32 {
        let limits = rules.policies.iter().map(|policy| {
            let base = self.replicas_period_ago(now, current, policy.period);
            match policy.kind {
                PolicyKind::Pods => base.saturating_add(policy.value),
                PolicyKind::Percent => {
                    (f64::from(base) * (1.0 + f64::from(policy.value) / 100.0)).ceil() as u32
                }
            }
        });
        match rules.select {
            Select::Max => limits.max().unwrap_or(current),
            Select::Min => limits.min().unwrap_or(current),
            Select::Disabled => current,
        }
    }

    /// The fewest replicas the scale-down policies allow.
    fn limit_down(&self, now: Instant, current: u32, rules: &Rules) -> u32 {
        let limits = rules.policies.iter().map(|policy| {
            let base = self.replicas_period_ago(now, current, policy.period);
            match policy.kind {
                PolicyKind::Pods => base.saturating_sub(policy.value),
                PolicyKind::Percent => {
                    (f64::from(base) * (1.0 - f64::from(policy.value) / 100.0)).floor() as u32
                }
            }
        });
        match rules.select {
            // Max: the policy allowing the biggest change, the fewest replicas.
            Select::Max => limits.min().unwrap_or(current),
            Select::Min => limits.max().unwrap_or(current),
            Select::Disabled => current,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_recommendation_is_the_ceiling_outside_the_tolerance() {
        assert_eq!(recommend(1, 25.0, 10.0), 3);
        assert_eq!(recommend(2, 21.0, 10.0), 2, "within 10 %: no change");
        assert_eq!(recommend(2, 23.0, 10.0), 3, "15 % above");
        assert_eq!(recommend(4, 0.0, 10.0), 0);
        assert_eq!(recommend(0, 5.0, 10.0), 1, "from zero: no ratio");
    }

    #[tokio::test(start_paused = true)]
    async fn scale_up_is_limited_to_four_pods_or_double_per_15_s() {
        let behavior = Behavior::default();
        let mut hpa = Hpa::default();
        let now = Instant::now();
        // From 1 to a recommendation of 20: max(1 + 4, 1 x 2) = 5.
        assert_eq!(hpa.next(now, 1, 20, 1, 100, &behavior), 5);
        // 5 s later, still inside the period that started at 1 replica.
        let later = now + Duration::from_secs(5);
        assert_eq!(hpa.next(later, 5, 20, 1, 100, &behavior), 5);
        // A new period: from 5, max(5 + 4, 10) = 10.
        let next_period = now + Duration::from_secs(16);
        assert_eq!(hpa.next(next_period, 5, 20, 1, 100, &behavior), 10);
    }

    #[tokio::test(start_paused = true)]
    async fn scale_down_waits_for_the_stabilization_window() {
        let behavior = Behavior::default();
        let mut hpa = Hpa::default();
        let start = Instant::now();
        assert_eq!(hpa.next(start, 4, 4, 1, 10, &behavior), 4);
        // The load falls: the 300 s window still holds the recommendation 4.
        let mut now = start;
        for _ in 0..10 {
            now += Duration::from_secs(30);
            assert_eq!(
                hpa.next(now, 4, 1, 1, 10, &behavior),
                4,
                "at {:?}",
                now - start
            );
        }
        now += Duration::from_secs(30);
        assert_eq!(hpa.next(now, 4, 1, 1, 10, &behavior), 1, "after the window");
    }

    #[tokio::test(start_paused = true)]
    async fn a_short_window_scales_down_at_once_within_min_and_max() {
        let behavior = Behavior {
            scale_down: Rules {
                stabilization: Duration::ZERO,
                ..Behavior::default().scale_down
            },
            ..Behavior::default()
        };
        let mut hpa = Hpa::default();
        let now = Instant::now();
        assert_eq!(hpa.next(now, 3, 1, 2, 10, &behavior), 2, "min 2");
        assert_eq!(hpa.next(now, 2, 50, 1, 3, &behavior), 3, "max 3");
    }
}
