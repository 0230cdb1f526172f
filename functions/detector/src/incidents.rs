//! Incident tracking: one alert per incident, however many frames show it.
//!
//! # The rule
//!
//! An incident is a run of detections of **one event type** from **one
//! camera** with no gap longer than the window `W`
//! (`SAFECITY_DETECTOR_INCIDENT_WINDOW`), measured in **capture time** (the
//! frame's `captured-at`), not in processing time: queueing, batching and
//! retries do not split or merge incidents.
//!
//! - A detection captured at `t` belongs to a remembered incident of its
//!   (camera, event type) when `first - W <= t <= last + W`, where `first` and
//!   `last` are the incident's earliest and latest detections; it widens
//!   `first`/`last`. Otherwise it opens a new incident.
//! - Only the incident's first detection alerts (emits an event); later ones
//!   extend it silently. After `W` of silence the next detection opens a new
//!   incident and alerts again.
//! - The incident id is deterministic: a UUID (version 8) made of the SHA-256
//!   of camera id, event type and the capture time of the opening frame.
//!
//! # At-least-once delivery and concurrent handlers
//!
//! The alert is claimed under a lock: of several handlers (or batch members)
//! seeing the same incident at once, exactly one gets an [`AlertClaim`]; the
//! others see [`Verdict::Known`]. The claim holder emits the event and calls
//! [`AlertClaim::sent`] once the broker confirmed it. If the emit fails (the
//! frame is retried) or the handler is dropped, the claim is released and the
//! next detection of that incident — the retried frame or a later one —
//! alerts instead: an incident is alerted at least once.
//!
//! A redelivered frame (e.g. its ack was lost after the event went out) finds
//! its incident already alerted and emits nothing. Incidents are remembered for
//! `SAFECITY_DETECTOR_INCIDENT_MEMORY` of capture time after their last
//! detection, so late retries are recognised too. After a restart, memory is
//! empty; a redelivered *opening* frame then recomputes the same incident id,
//! and the downstream functions, which deduplicate by incident id (fire-post's
//! ledger, map-pin's upsert), do not act twice.
//!
//! The state lives in the process: with several detector replicas, frames of
//! one camera should reach one replica (see the crate README).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use safecity_events::EventType;
use sha2::{Digest, Sha256};

/// How many observations pass between sweeps of forgotten cameras.
const SWEEP_EVERY: u32 = 256;

/// The deterministic id of the incident that `camera` opened for `event` with
/// a frame captured at `opened_at`.
pub fn incident_id(camera: &str, event: EventType, opened_at: DateTime<Utc>) -> String {
    let mut digest = Sha256::new();
    digest.update(b"safecity-detector-incident\0");
    digest.update(camera.as_bytes());
    digest.update([0]);
    digest.update(event.as_str().as_bytes());
    digest.update([0]);
    digest.update(
        opened_at
            .to_rfc3339_opts(SecondsFormat::Nanos, true)
            .as_bytes(),
    );
    let hash = digest.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&hash[..16]);
    uuid::Builder::from_custom_bytes(bytes)
        .into_uuid()
        .to_string()
}

/// Where an incident's alert stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Alert {
    /// Not alerted yet: the next detection claims the alert.
    Pending,
    /// A handler holds the claim and is emitting.
    Emitting,
    /// The broker confirmed the event.
    Sent,
}

#[derive(Debug)]
struct Incident {
    id: String,
    first: DateTime<Utc>,
    last: DateTime<Utc>,
    alert: Alert,
}

#[derive(Debug)]
struct Stream {
    incidents: Vec<Incident>,
    touched: Instant,
}

type Key = (String, EventType);

#[derive(Debug, Default)]
struct State {
    streams: HashMap<Key, Stream>,
    since_sweep: u32,
}

#[derive(Debug)]
struct Shared {
    window: chrono::Duration,
    memory: chrono::Duration,
    memory_wall: Duration,
    state: Mutex<State>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn set_alert(&self, key: &Key, id: &str, from: Alert, to: Alert) {
        let mut state = self.lock();
        if let Some(incident) = state
            .streams
            .get_mut(key)
            .and_then(|s| s.incidents.iter_mut().find(|i| i.id == id))
            && incident.alert == from
        {
            incident.alert = to;
        }
    }
}

/// What a detection means for its incident.
#[derive(Debug)]
pub enum Verdict {
    /// The detection opens an incident (or its alert is still owed): emit the
    /// event, then call [`AlertClaim::sent`].
    Alert(AlertClaim),
    /// The incident is alerted (or being alerted by another handler): nothing to emit.
    Known {
        /// The incident the detection extends.
        incident_id: String,
    },
}

/// The right, and duty, to emit an incident's alert. Dropping it without
/// [`AlertClaim::sent`] hands the alert to the next detection of the incident.
#[derive(Debug)]
pub struct AlertClaim {
    shared: Arc<Shared>,
    key: Key,
    incident_id: String,
    sent: bool,
}

impl AlertClaim {
    /// The incident to alert.
    pub fn incident_id(&self) -> &str {
        &self.incident_id
    }

    /// Records that the broker confirmed the alert: later detections stay silent.
    pub fn sent(mut self) {
        self.sent = true;
        self.shared
            .set_alert(&self.key, &self.incident_id, Alert::Emitting, Alert::Sent);
    }
}

impl Drop for AlertClaim {
    fn drop(&mut self) {
        if !self.sent {
            self.shared.set_alert(
                &self.key,
                &self.incident_id,
                Alert::Emitting,
                Alert::Pending,
            );
        }
    }
}

/// The incidents of every camera, shared by all handlers of the process.
#[derive(Debug, Clone)]
pub struct IncidentTracker {
    shared: Arc<Shared>,
}

impl IncidentTracker {
    /// A tracker with silence window `window`, remembering incidents for
    /// `memory` (at least `window`) after their last detection.
    pub fn new(window: Duration, memory: Duration) -> Self {
        let memory = memory.max(window);
        let chrono = |d: Duration| chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX);
        IncidentTracker {
            shared: Arc::new(Shared {
                window: chrono(window),
                memory: chrono(memory),
                memory_wall: memory,
                state: Mutex::default(),
            }),
        }
    }

    /// Files a detection of `event` by `camera` in a frame captured at `at`.
    pub fn observe(&self, camera: &str, event: EventType, at: DateTime<Utc>) -> Verdict {
        self.observe_at(camera, event, at, Instant::now())
    }

    /// Incidents remembered now, over all cameras (for tests and operators).
    pub fn remembered(&self) -> usize {
        self.shared
            .lock()
            .streams
            .values()
            .map(|s| s.incidents.len())
            .sum()
    }

    fn observe_at(
        &self,
        camera: &str,
        event: EventType,
        at: DateTime<Utc>,
        now: Instant,
    ) -> Verdict {
        let shared = &self.shared;
        let mut state = shared.lock();
        state.since_sweep += 1;
        if state.since_sweep >= SWEEP_EVERY {
            state.since_sweep = 0;
            let memory = shared.memory_wall;
            state
                .streams
                .retain(|_, s| now.saturating_duration_since(s.touched) <= memory);
        }
        let key: Key = (camera.to_owned(), event);
        let stream = state.streams.entry(key.clone()).or_insert_with(|| Stream {
            incidents: Vec::new(),
            touched: now,
        });
        stream.touched = now;
        let window = shared.window;
        let joined = stream
            .incidents
            .iter()
            .position(|i| i.first - window <= at && at <= i.last + window);
        let index = match joined {
            Some(index) => {
                let incident = &mut stream.incidents[index];
                incident.first = incident.first.min(at);
                incident.last = incident.last.max(at);
                index
            }
            None => {
                stream.incidents.push(Incident {
                    id: incident_id(camera, event, at),
                    first: at,
                    last: at,
                    alert: Alert::Pending,
                });
                stream.incidents.len() - 1
            }
        };
        let incident = &mut stream.incidents[index];
        let verdict = if incident.alert == Alert::Pending {
            incident.alert = Alert::Emitting;
            Verdict::Alert(AlertClaim {
                shared: shared.clone(),
                key,
                incident_id: incident.id.clone(),
                sent: false,
            })
        } else {
            Verdict::Known {
                incident_id: incident.id.clone(),
            }
        };
        // Forget incidents silent for longer than the memory (in capture time),
        // except one being alerted.
        let newest = stream.incidents.iter().map(|i| i.last).max().unwrap_or(at);
        let memory = shared.memory;
        stream
            .incidents
            .retain(|i| i.alert == Alert::Emitting || i.last + memory >= newest);
        verdict
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(seconds: f64) -> DateTime<Utc> {
        let base: DateTime<Utc> = "2026-12-02T10:00:00Z".parse().expect("time");
        base + chrono::Duration::milliseconds((seconds * 1000.0) as i64)
    }

    fn tracker() -> IncidentTracker {
        IncidentTracker::new(Duration::from_secs(10), Duration::from_secs(60))
    }

    /// Observes and confirms the alert at once; returns (alerted, incident id).
    fn see(tracker: &IncidentTracker, camera: &str, event: EventType, at: f64) -> (bool, String) {
        match tracker.observe(camera, event, t(at)) {
            Verdict::Alert(claim) => {
                let id = claim.incident_id().to_owned();
                claim.sent();
                (true, id)
            }
            Verdict::Known { incident_id } => (false, incident_id),
        }
    }

    #[test]
    fn detections_within_the_window_are_one_incident_and_alert_once() {
        let tracker = tracker();
        let (alerted, first) = see(&tracker, "cam-1", EventType::Fire, 0.0);
        assert!(alerted);
        assert_eq!(first, incident_id("cam-1", EventType::Fire, t(0.0)));
        // Each gap is at most the window, though the whole run is longer.
        for at in [4.0, 14.0, 24.0] {
            assert_eq!(
                see(&tracker, "cam-1", EventType::Fire, at),
                (false, first.clone())
            );
        }
        // More than the window of silence: a new incident, a new alert.
        let (alerted, second) = see(&tracker, "cam-1", EventType::Fire, 34.5);
        assert!(alerted);
        assert_ne!(second, first);
    }

    #[test]
    fn cameras_and_event_types_have_their_own_incidents() {
        let tracker = tracker();
        let (_, fire_1) = see(&tracker, "cam-1", EventType::Fire, 0.0);
        let (alerted, fire_2) = see(&tracker, "cam-2", EventType::Fire, 1.0);
        assert!(alerted);
        let (alerted, knife_1) = see(&tracker, "cam-1", EventType::Knife, 1.0);
        assert!(alerted);
        assert_ne!(fire_1, fire_2);
        assert_ne!(fire_1, knife_1);
        assert_eq!(tracker.remembered(), 3);
    }

    #[test]
    fn late_and_redelivered_frames_do_not_alert_again() {
        let tracker = tracker();
        let (_, first) = see(&tracker, "cam-1", EventType::Gun, 100.0);
        // The opening frame again (a redelivery), and an earlier frame that was
        // retried and arrives late but within the window.
        assert_eq!(
            see(&tracker, "cam-1", EventType::Gun, 100.0),
            (false, first.clone())
        );
        assert_eq!(
            see(&tracker, "cam-1", EventType::Gun, 95.0),
            (false, first.clone())
        );
        // A new incident later; then a late frame of the first one is still recognised.
        let (alerted, second) = see(&tracker, "cam-1", EventType::Gun, 130.0);
        assert!(alerted);
        assert_eq!(
            see(&tracker, "cam-1", EventType::Gun, 101.0),
            (false, first)
        );
        assert_ne!(second, incident_id("cam-1", EventType::Gun, t(101.0)));
    }

    #[test]
    fn a_failed_or_dropped_claim_passes_the_alert_on() {
        let tracker = tracker();
        let Verdict::Alert(claim) = tracker.observe("cam-1", EventType::Knife, t(0.0)) else {
            panic!("the first detection alerts");
        };
        let id = claim.incident_id().to_owned();
        // While the claim is held, others stay silent.
        assert!(matches!(
            tracker.observe("cam-1", EventType::Knife, t(1.0)),
            Verdict::Known { ref incident_id } if *incident_id == id
        ));
        drop(claim); // the emit failed
        let Verdict::Alert(again) = tracker.observe("cam-1", EventType::Knife, t(2.0)) else {
            panic!("the alert is still owed");
        };
        assert_eq!(again.incident_id(), id, "same incident");
        again.sent();
        assert!(matches!(
            tracker.observe("cam-1", EventType::Knife, t(3.0)),
            Verdict::Known { .. }
        ));
    }

    #[test]
    fn concurrent_handlers_claim_one_alert() {
        let tracker = tracker();
        let claims: Vec<bool> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|i| {
                    let tracker = tracker.clone();
                    scope.spawn(move || {
                        match tracker.observe("cam-1", EventType::Fire, t(f64::from(i) * 0.1)) {
                            Verdict::Alert(claim) => {
                                claim.sent();
                                true
                            }
                            Verdict::Known { .. } => false,
                        }
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("thread"))
                .collect()
        });
        assert_eq!(claims.iter().filter(|c| **c).count(), 1, "{claims:?}");
    }

    #[test]
    fn old_incidents_and_idle_cameras_are_forgotten() {
        let tracker = IncidentTracker::new(Duration::from_secs(10), Duration::from_secs(30));
        let start = Instant::now();
        let observe = |camera: &str, at: f64, now: Instant| {
            matches!(
                tracker.observe_at(camera, EventType::Fire, t(at), now),
                Verdict::Alert(_)
            )
        };
        assert!(observe("cam-1", 0.0, start));
        assert!(observe("cam-1", 20.0, start));
        // 45 s: the first incident (last seen at 0) is beyond the 30 s memory.
        assert!(observe("cam-1", 45.0, start));
        assert_eq!(tracker.remembered(), 2);
        // Idle cameras go in the periodic sweep.
        let later = start + Duration::from_secs(31);
        for i in 0..SWEEP_EVERY {
            observe(&format!("busy-{}", i % 2), f64::from(i), later);
        }
        assert!(
            !tracker
                .shared
                .lock()
                .streams
                .keys()
                .any(|(camera, _)| camera == "cam-1"),
            "cam-1 was idle for longer than the memory"
        );
    }

    #[test]
    fn incident_ids_are_uuids_and_deterministic() {
        let a = incident_id("cam-1", EventType::Fire, t(0.0));
        assert_eq!(a, incident_id("cam-1", EventType::Fire, t(0.0)));
        assert_ne!(a, incident_id("cam-1", EventType::Fire, t(0.001)));
        assert_ne!(a, incident_id("cam-1", EventType::Gun, t(0.0)));
        let parsed = uuid::Uuid::parse_str(&a).expect("a UUID");
        assert_eq!(parsed.get_version_num(), 8);
    }
}
