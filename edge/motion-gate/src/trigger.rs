//! The time half of the gate: when a camera's motion measurements become
//! forwarded frames. Pure state machine, driven by the frame's stream time.
//!
//! ```text
//!            N consecutive motion frames            no motion for hold_off
//!  Armed ───────────────────────────────> Active ──────────────────────────> Armed (re-armed)
//!  (forwards nothing)                     (forwards at most max_fps frames/s)
//! ```
//!
//! A quiet frame while arming resets the streak. While active, every motion
//! frame restarts the hold-off; frames during the hold-off are still forwarded
//! (the detector sees the scene settle), then the gate re-arms and needs N
//! consecutive motion frames again.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Errors of the trigger parameters.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TriggerError {
    /// A parameter is out of its range.
    #[error("trigger parameter `{field}` {reason}")]
    InvalidConfig {
        /// The parameter's name (as in the registry's `[gate.trigger]` table).
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

/// Parameters of the trigger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TriggerConfig {
    /// Consecutive motion frames needed to start forwarding.
    pub trigger_frames: u32,
    /// Keep forwarding this long after the last motion frame, then re-arm.
    #[serde(with = "humantime_serde_compat")]
    pub hold_off: Duration,
    /// At most this many forwarded frames per second per camera (0 = no limit).
    pub max_fps: f64,
}

impl Default for TriggerConfig {
    fn default() -> Self {
        TriggerConfig {
            trigger_frames: 2,
            hold_off: Duration::from_secs(1),
            max_fps: 5.0,
        }
    }
}

impl TriggerConfig {
    /// Checks every parameter's range.
    pub fn validate(&self) -> Result<(), TriggerError> {
        if self.trigger_frames == 0 {
            return Err(TriggerError::InvalidConfig {
                field: "trigger_frames",
                reason: "must be at least 1".to_owned(),
            });
        }
        if !(self.max_fps >= 0.0 && self.max_fps <= 1000.0) {
            return Err(TriggerError::InvalidConfig {
                field: "max_fps",
                reason: "must be within 0..=1000 (0 = no limit)".to_owned(),
            });
        }
        Ok(())
    }
}

/// (De)serialises a `Duration` as humantime text, e.g. `"1s"`, `"250ms"`.
pub mod humantime_serde_compat {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes `"1s 500ms"`-style text.
    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&humantime::format_duration(*value).to_string())
    }

    /// Reads `"1s"`, `"250ms"`, ...
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(deserializer)?;
        safecity_shell::env::parse_duration(&text).map_err(serde::de::Error::custom)
    }
}

/// Where the trigger is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GateState {
    /// Waiting for motion; `streak` consecutive motion frames seen so far.
    Armed {
        /// Consecutive motion frames so far.
        streak: u32,
    },
    /// Forwarding; the last motion frame was at `last_motion`.
    Active {
        /// Stream time of the last motion frame.
        last_motion: Duration,
    },
}

/// What to do with one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Publish it.
    Forward,
    /// Nothing worth a detector (armed, or arming).
    Quiet,
    /// Active, but over the `max_fps` budget.
    RateLimited,
}

/// The trigger of one camera.
#[derive(Debug, Clone)]
pub struct Trigger {
    config: TriggerConfig,
    interval: Duration,
    state: GateState,
    next_due: Option<Duration>,
}

impl Trigger {
    /// A trigger with validated parameters, armed.
    pub fn new(config: TriggerConfig) -> Result<Self, TriggerError> {
        config.validate()?;
        let interval = if config.max_fps > 0.0 {
            Duration::from_secs_f64(1.0 / config.max_fps)
        } else {
            Duration::ZERO
        };
        Ok(Trigger {
            config,
            interval,
            state: GateState::Armed { streak: 0 },
            next_due: None,
        })
    }

    /// The current state.
    pub fn state(&self) -> GateState {
        self.state
    }

    /// Back to armed (e.g. after the camera reconnected).
    pub fn reset(&mut self) {
        self.state = GateState::Armed { streak: 0 };
    }

    /// Feeds one frame's verdict at stream time `at` (non-decreasing).
    pub fn update(&mut self, motion: bool, at: Duration) -> Decision {
        match self.state {
            GateState::Armed { streak } => {
                if !motion {
                    self.state = GateState::Armed { streak: 0 };
                    return Decision::Quiet;
                }
                let streak = streak + 1;
                if streak < self.config.trigger_frames {
                    self.state = GateState::Armed { streak };
                    return Decision::Quiet;
                }
                self.state = GateState::Active { last_motion: at };
                self.rate_limited(at)
            }
            GateState::Active { last_motion } => {
                if motion {
                    self.state = GateState::Active { last_motion: at };
                } else if at.saturating_sub(last_motion) >= self.config.hold_off {
                    self.state = GateState::Armed { streak: 0 };
                    return Decision::Quiet;
                }
                self.rate_limited(at)
            }
        }
    }

    fn rate_limited(&mut self, at: Duration) -> Decision {
        // A frame is due up to a tenth of the interval early, so 30 fps frames
        // (33.3 ms apart) limited to 5 fps forward every 6th frame, not every 7th.
        let early = self.interval / 10;
        match self.next_due {
            Some(due) if at + early < due => Decision::RateLimited,
            Some(due) => {
                self.next_due = Some(if at > due + self.interval {
                    at + self.interval
                } else {
                    due + self.interval
                });
                Decision::Forward
            }
            None => {
                self.next_due = Some(at + self.interval);
                Decision::Forward
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    fn trigger(frames: u32, hold_ms: u64, fps: f64) -> Trigger {
        Trigger::new(TriggerConfig {
            trigger_frames: frames,
            hold_off: ms(hold_ms),
            max_fps: fps,
        })
        .expect("config")
    }

    #[test]
    fn needs_consecutive_motion_frames() {
        let mut t = trigger(3, 100, 0.0);
        assert_eq!(t.update(true, ms(0)), Decision::Quiet);
        assert_eq!(t.update(true, ms(10)), Decision::Quiet);
        assert_eq!(t.update(false, ms(20)), Decision::Quiet);
        assert_eq!(t.state(), GateState::Armed { streak: 0 });
        assert_eq!(t.update(true, ms(30)), Decision::Quiet);
        assert_eq!(t.update(true, ms(40)), Decision::Quiet);
        assert_eq!(t.update(true, ms(50)), Decision::Forward);
        assert_eq!(
            t.state(),
            GateState::Active {
                last_motion: ms(50)
            }
        );
    }

    #[test]
    fn hold_off_keeps_forwarding_then_re_arms() {
        let mut t = trigger(1, 100, 0.0);
        assert_eq!(t.update(true, ms(0)), Decision::Forward);
        assert_eq!(t.update(false, ms(50)), Decision::Forward);
        assert_eq!(
            t.update(true, ms(60)),
            Decision::Forward,
            "motion restarts the hold-off"
        );
        assert_eq!(t.update(false, ms(150)), Decision::Forward);
        assert_eq!(t.update(false, ms(160)), Decision::Quiet, "100 ms after 60");
        assert_eq!(t.state(), GateState::Armed { streak: 0 });
        assert_eq!(t.update(true, ms(170)), Decision::Forward, "re-armed");
    }

    #[test]
    fn rate_limit_forwards_every_sixth_frame_of_30_fps_at_5_fps() {
        let mut t = trigger(1, 10_000, 5.0);
        let forwarded: Vec<u64> = (0..31u64)
            .filter(|&i| {
                let at = Duration::from_secs_f64(i as f64 / 30.0);
                t.update(true, at) == Decision::Forward
            })
            .collect();
        assert_eq!(forwarded, vec![0, 6, 12, 18, 24, 30]);
    }

    #[test]
    fn rate_limit_does_not_burst_after_a_gap() {
        let mut t = trigger(1, 10_000, 10.0);
        assert_eq!(t.update(true, ms(0)), Decision::Forward);
        assert_eq!(t.update(true, ms(1000)), Decision::Forward);
        assert_eq!(t.update(true, ms(1050)), Decision::RateLimited);
        assert_eq!(t.update(true, ms(1100)), Decision::Forward);
    }

    #[test]
    fn zero_trigger_frames_is_rejected() {
        assert!(
            Trigger::new(TriggerConfig {
                trigger_frames: 0,
                ..TriggerConfig::default()
            })
            .is_err()
        );
    }
}
