//! Incident tracking: one alert per incident, however many frames show it.
//!
//! One file on purpose (about 900 lines of code, the rest tests): the rule,
//! the per-incident state and the claim-before-emit protocol are one state
//! machine whose invariants (one `opened` per incident, at most one `updated`
//! per interval, `closed` once) are read and changed together. The parts with
//! their own names live beside it: `tracks.rs` (association), `zones.rs`
//! (ground points and zone movement), `closer.rs` (closing on time).
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
//!
//! # Tracks and the lifecycle ([`IncidentTracker::observe_frame`])
//!
//! Each frame's mapped detections are first filed with the camera's
//! [`tracks`](crate::tracks). A detection **opens** an incident only when its
//! track was seen in `min_hits` frames, its class's required zones (if any)
//! contain its ground point, and its track never opened or joined an
//! incident before — so a parked car (a stationary track, remembered for
//! long) never re-opens one. A detection whose track already belongs to the
//! incident it falls in extends it without qualifying again (the knife
//! carrier who walks out of the zone keeps the incident open while seen).
//!
//! An incident's events: `opened` (the claim above), then at most one
//! `updated` per `update_interval` of capture time when something changed
//! since its last event — a frame better by 10 % (confidence x box area),
//! a new zone, more people in view, a new movement towards or away from a
//! zone — and `closed` once the camera's capture clock is `window` past its
//! last detection ([`IncidentTracker::due_closures`], run by the
//! [`closer`](crate::closer)). The camera's capture clock advances with wall
//! time since its newest frame, so a queue backlog does not close incidents
//! early. `closed` carries the best frame an event of the incident carried.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use safecity_cameras::{Point, Zone};
use safecity_events::{
    CloudEvent, Detection, EventType, FrameSize, Lifecycle, SafetyEvent, TraceParent, UpdateReason,
    ZoneMovement,
};
use sha2::{Digest, Sha256};

use crate::tracks::{CameraTracks, Observed, TrackSettings};
use crate::zones;

/// A frame must beat the best frame an event carried by this factor to be
/// an `updated` of reason `better-snapshot`.
pub const BETTER_SNAPSHOT_GAIN: f32 = 1.10;
/// Frames remembered per camera to recognise redeliveries.
const SEEN_FRAMES: usize = 128;

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

/// Whether an incident is over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Seen within the window (or its `closed` not yet confirmed).
    Open,
    /// Its `closed` event went out.
    Closed,
}

#[derive(Debug)]
struct Incident {
    id: String,
    first: DateTime<Utc>,
    last: DateTime<Utc>,
    alert: Alert,
    phase: Phase,
    /// A handler holds an `updated` claim.
    updating: bool,
    /// The closer holds a `closed` claim.
    closing: bool,
    /// What the incident's events said so far.
    sent: Option<SentState>,
    /// Every zone its counted detections touched.
    all_zones: BTreeSet<String>,
}

#[derive(Debug, Clone)]
struct SentState {
    at: DateTime<Utc>,
    best_score: f32,
    best: Arc<SafetyEvent>,
    zones: BTreeSet<String>,
    people: usize,
    movement: Vec<ZoneMovement>,
    track: Option<u64>,
    trace: Option<TraceParent>,
}

impl Incident {
    fn new(camera: &str, event: EventType, at: DateTime<Utc>) -> Self {
        Incident {
            id: incident_id(camera, event, at),
            first: at,
            last: at,
            alert: Alert::Pending,
            phase: Phase::Open,
            updating: false,
            closing: false,
            sent: None,
            all_zones: BTreeSet::new(),
        }
    }
}

/// One camera's tracks, recent frames and capture clock.
#[derive(Debug, Default)]
struct CameraState {
    tracks: CameraTracks,
    seen: VecDeque<(u64, DateTime<Utc>)>,
    /// Newest capture time, and when it was filed.
    clock: Option<(DateTime<Utc>, Instant)>,
    touched: Option<Instant>,
}

impl CameraState {
    fn tick(&mut self, at: DateTime<Utc>, now: Instant) {
        if self.clock.is_none_or(|(newest, _)| at > newest) {
            self.clock = Some((at, now));
        }
        self.touched = Some(now);
    }

    /// The camera's capture time now: its newest frame's, advanced by the
    /// wall time since.
    fn capture_now(&self, now: Instant) -> Option<DateTime<Utc>> {
        self.clock.map(|(newest, filed)| {
            newest
                + chrono::Duration::from_std(now.saturating_duration_since(filed))
                    .unwrap_or(chrono::Duration::MAX)
        })
    }
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
    cameras: HashMap<String, CameraState>,
    since_sweep: u32,
}

#[derive(Debug)]
struct Shared {
    window: chrono::Duration,
    memory: chrono::Duration,
    memory_wall: Duration,
    lifecycle: LifecycleSettings,
    state: Mutex<State>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn with_incident(&self, key: &Key, id: &str, change: impl FnOnce(&mut Incident)) {
        let mut state = self.lock();
        if let Some(incident) = state
            .streams
            .get_mut(key)
            .and_then(|s| s.incidents.iter_mut().find(|i| i.id == id))
        {
            change(incident);
        }
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

/// The right, and duty, to emit an incident's `opened` (or `updated`)
/// event. Dropping it without [`AlertClaim::sent`] hands the `opened` to the
/// next detection of the incident (an `updated` is then owed again).
#[derive(Debug)]
pub struct AlertClaim {
    shared: Arc<Shared>,
    key: Key,
    incident_id: String,
    state: Lifecycle,
    sent: bool,
}

/// What an `opened` or `updated` event said, recorded when the broker
/// confirmed it (the next update is measured against it; `closed` carries
/// the best frame).
#[derive(Debug, Clone)]
pub struct SentReport {
    /// Capture time of the frame the event described.
    pub at: DateTime<Utc>,
    /// The frame's score (see [`frame_score`]).
    pub score: f32,
    /// The event's payload (snapshot included).
    pub event: Arc<SafetyEvent>,
    /// The zones it carried.
    pub zones: Vec<String>,
    /// People in view.
    pub people: usize,
    /// The movement it carried.
    pub movement: Vec<ZoneMovement>,
    /// The track it carried.
    pub track: Option<u64>,
    /// Its trace context (the `closed` event continues it).
    pub trace: Option<TraceParent>,
}

impl AlertClaim {
    /// The incident to alert.
    pub fn incident_id(&self) -> &str {
        &self.incident_id
    }

    /// `opened` or `updated`.
    pub fn state(&self) -> Lifecycle {
        self.state
    }

    /// Records that the broker confirmed the alert: later detections stay silent.
    pub fn sent(mut self) {
        self.sent = true;
        self.shared
            .set_alert(&self.key, &self.incident_id, Alert::Emitting, Alert::Sent);
    }

    /// Records that the broker confirmed the event, and what it said.
    pub fn sent_with(mut self, report: SentReport) {
        self.sent = true;
        let opened = self.state == Lifecycle::Opened;
        self.shared
            .with_incident(&self.key, &self.incident_id, |incident| {
                if opened {
                    if incident.alert == Alert::Emitting {
                        incident.alert = Alert::Sent;
                    }
                } else {
                    incident.updating = false;
                }
                match &mut incident.sent {
                    None => {
                        incident.sent = Some(SentState {
                            at: report.at,
                            best_score: report.score,
                            best: report.event,
                            zones: report.zones.into_iter().collect(),
                            people: report.people,
                            movement: report.movement,
                            track: report.track,
                            trace: report.trace,
                        });
                    }
                    Some(sent) => {
                        sent.at = sent.at.max(report.at);
                        if report.score > sent.best_score {
                            sent.best_score = report.score;
                            sent.best = report.event;
                        }
                        sent.zones.extend(report.zones);
                        sent.people = sent.people.max(report.people);
                        sent.movement = report.movement;
                        sent.track = sent.track.or(report.track);
                        sent.trace = sent.trace.or(report.trace);
                    }
                }
            });
    }
}

impl Drop for AlertClaim {
    fn drop(&mut self) {
        if self.sent {
            return;
        }
        if self.state == Lifecycle::Opened {
            self.shared.set_alert(
                &self.key,
                &self.incident_id,
                Alert::Emitting,
                Alert::Pending,
            );
        } else {
            self.shared
                .with_incident(&self.key, &self.incident_id, |i| i.updating = false);
        }
    }
}

/// The right, and duty, to emit an incident's `closed` event; dropping it
/// unsent leaves the incident open (the closer tries again).
#[derive(Debug)]
pub struct CloseClaim {
    shared: Arc<Shared>,
    key: Key,
    event: CloudEvent<SafetyEvent>,
    sent: bool,
}

impl CloseClaim {
    /// The `closed` event to publish.
    pub fn event(&self) -> &CloudEvent<SafetyEvent> {
        &self.event
    }

    /// Records that the broker confirmed it: the incident is closed.
    pub fn sent(mut self) {
        self.sent = true;
        let id = self.event.data.incident_id.clone();
        self.shared.with_incident(&self.key, &id, |i| {
            i.closing = false;
            i.phase = Phase::Closed;
        });
    }
}

impl Drop for CloseClaim {
    fn drop(&mut self) {
        if !self.sent {
            let id = self.event.data.incident_id.clone();
            self.shared
                .with_incident(&self.key, &id, |i| i.closing = false);
        }
    }
}

/// How incidents live: the window and memory of [`IncidentTracker::new`]
/// plus tracking and updates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LifecycleSettings {
    /// Frames a track needs before it can open an incident.
    pub min_hits: u32,
    /// How tracks are kept.
    pub tracks: TrackSettings,
    /// At most one `updated` per incident per this much capture time.
    pub update_interval: chrono::Duration,
}

impl Default for LifecycleSettings {
    /// One frame opens an incident; tracks kept 5 s (1 h stationary after
    /// 10 s); an update every 10 s at most.
    fn default() -> Self {
        LifecycleSettings {
            min_hits: 1,
            tracks: TrackSettings {
                memory: chrono::Duration::seconds(5),
                stationary_after: chrono::Duration::seconds(10),
                stationary_memory: chrono::Duration::hours(1),
            },
            update_interval: chrono::Duration::seconds(10),
        }
    }
}

/// One mapped detection of a frame, placed in the camera's view.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameSighting {
    /// The event it raises.
    pub event: EventType,
    /// Class, confidence and box.
    pub detection: Detection,
    /// Where it stands (relative): [`zones::ground_point`].
    pub ground: Point,
    /// The zones containing its ground point.
    pub zones: Vec<String>,
    /// Its class's required zones (if any) contain its ground point.
    pub in_required_zone: bool,
}

/// One frame's facts for [`IncidentTracker::observe_frame`].
#[derive(Debug, Clone)]
pub struct FrameFacts<'a> {
    /// Camera id.
    pub camera: &'a str,
    /// The frame's sequence number (with the capture time: its identity).
    pub sequence: u64,
    /// Capture time.
    pub captured_at: DateTime<Utc>,
    /// Size of the analysed frame.
    pub frame_size: FrameSize,
    /// People in view (detections of [`zones::CARRIER_CLASS`]).
    pub people: usize,
    /// The mapped detections.
    pub sightings: Vec<FrameSighting>,
    /// The camera's zones (for movement).
    pub zones: &'a [Zone],
}

/// What a frame means for one event type's incident.
#[derive(Debug)]
pub struct Outcome {
    /// The event type.
    pub event: EventType,
    /// The incident.
    pub incident_id: String,
    /// `Some` when an event is owed: emit it, then [`AlertClaim::sent_with`].
    pub claim: Option<AlertClaim>,
    /// The detections that count for the incident, highest confidence first.
    pub detections: Vec<Detection>,
    /// The track of the best detection.
    pub track: Option<u64>,
    /// The zones the counted detections touched.
    pub zones: Vec<String>,
    /// The best detection's track's movement relative to zones.
    pub movement: Vec<ZoneMovement>,
    /// Why an `updated` is owed (empty for `opened` and silence).
    pub reasons: Vec<UpdateReason>,
    /// The frame's score for the incident ([`frame_score`]).
    pub score: f32,
    /// People in view.
    pub people: usize,
}

/// How good a frame is as an incident's picture: the best detection's
/// confidence times the share of the frame its box covers ("highest
/// confidence, largest box").
pub fn frame_score(detections: &[Detection], frame: FrameSize) -> f32 {
    let area = (frame.width.max(1) as f32) * (frame.height.max(1) as f32);
    detections
        .iter()
        .map(|d| {
            d.confidence * (d.bounding_box.width * d.bounding_box.height / area).clamp(0.0, 1.0)
        })
        .fold(0.0, f32::max)
}

/// The incidents of every camera, shared by all handlers of the process.
#[derive(Debug, Clone)]
pub struct IncidentTracker {
    shared: Arc<Shared>,
}

impl IncidentTracker {
    /// A tracker with silence window `window`, remembering incidents for
    /// `memory` (at least `window`) after their last detection, and the
    /// default [`LifecycleSettings`].
    pub fn new(window: Duration, memory: Duration) -> Self {
        Self::with_lifecycle(window, memory, LifecycleSettings::default())
    }

    /// [`IncidentTracker::new`] with tracking and update settings.
    pub fn with_lifecycle(
        window: Duration,
        memory: Duration,
        lifecycle: LifecycleSettings,
    ) -> Self {
        let memory = memory.max(window);
        let chrono = |d: Duration| chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX);
        IncidentTracker {
            shared: Arc::new(Shared {
                window: chrono(window),
                memory: chrono(memory),
                memory_wall: memory,
                lifecycle,
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
        sweep(&mut state, shared, now);
        let key: Key = (camera.to_owned(), event);
        let stream = state.streams.entry(key.clone()).or_insert_with(|| Stream {
            incidents: Vec::new(),
            touched: now,
        });
        stream.touched = now;
        let index = match joined(stream, at, shared.window) {
            Some(index) => index,
            None => {
                stream.incidents.push(Incident::new(camera, event, at));
                stream.incidents.len() - 1
            }
        };
        let incident = &mut stream.incidents[index];
        incident.first = incident.first.min(at);
        incident.last = incident.last.max(at);
        let verdict = if incident.alert == Alert::Pending {
            incident.alert = Alert::Emitting;
            Verdict::Alert(AlertClaim {
                shared: shared.clone(),
                key,
                incident_id: incident.id.clone(),
                state: Lifecycle::Opened,
                sent: false,
            })
        } else {
            Verdict::Known {
                incident_id: incident.id.clone(),
            }
        };
        forget_old(stream, at, shared.memory);
        verdict
    }

    /// Advances `camera`'s capture clock with a frame that had no mapped
    /// detection (it still tells that time passed there).
    pub fn tick(&self, camera: &str, at: DateTime<Utc>) {
        let mut state = self.shared.lock();
        state
            .cameras
            .entry(camera.to_owned())
            .or_default()
            .tick(at, Instant::now());
    }

    /// Files one frame's mapped detections: tracks them, and says per event
    /// type what the frame means for its incident (see the module docs).
    pub fn observe_frame(&self, facts: FrameFacts<'_>) -> Vec<Outcome> {
        self.observe_frame_at(facts, Instant::now())
    }

    fn observe_frame_at(&self, facts: FrameFacts<'_>, now: Instant) -> Vec<Outcome> {
        let shared = &self.shared;
        let settings = shared.lifecycle;
        let mut guard = shared.lock();
        let state = &mut *guard;
        sweep(state, shared, now);
        let at = facts.captured_at;
        let camera = state.cameras.entry(facts.camera.to_owned()).or_default();
        camera.tick(at, now);
        let frame_key = (facts.sequence, at);
        let redelivered = camera.seen.contains(&frame_key);
        if !redelivered {
            camera.seen.push_back(frame_key);
            if camera.seen.len() > SEEN_FRAMES {
                camera.seen.pop_front();
            }
        }
        let observed: Vec<Observed> = facts
            .sightings
            .iter()
            .map(|s| Observed {
                event: s.event,
                bounding_box: s.detection.bounding_box,
                ground: s.ground,
            })
            .collect();
        let track_ids: Vec<Option<u64>> = if redelivered {
            camera.tracks.peek(&observed)
        } else {
            camera
                .tracks
                .update(at, &observed, &settings.tracks)
                .into_iter()
                .map(Some)
                .collect()
        };
        let mut by_event: BTreeMap<EventType, Vec<usize>> = BTreeMap::new();
        for (i, s) in facts.sightings.iter().enumerate() {
            by_event.entry(s.event).or_default().push(i);
        }
        let mut outcomes = Vec::new();
        for (event, indices) in by_event {
            let key: Key = (facts.camera.to_owned(), event);
            let stream = state.streams.entry(key.clone()).or_insert_with(|| Stream {
                incidents: Vec::new(),
                touched: now,
            });
            stream.touched = now;
            let joined_at = joined(stream, at, shared.window);
            let joined_id = joined_at.map(|i| stream.incidents[i].id.clone());
            let mut counted = Vec::new();
            let mut opens = false;
            for &i in &indices {
                let track = track_ids[i].and_then(|id| camera.tracks.track(id));
                let attached = match (track, &joined_id) {
                    (Some(track), Some(joined)) => track.incident.as_ref() == Some(joined),
                    _ => false,
                };
                let qualifies = track
                    .is_some_and(|t| t.hits >= settings.min_hits && t.incident.is_none())
                    && facts.sightings[i].in_required_zone;
                if attached || qualifies {
                    counted.push(i);
                }
                opens |= qualifies;
            }
            if counted.is_empty() || (joined_at.is_none() && !opens) {
                continue;
            }
            let index = match joined_at {
                Some(index) => index,
                None => {
                    stream
                        .incidents
                        .push(Incident::new(facts.camera, event, at));
                    stream.incidents.len() - 1
                }
            };
            let incident = &mut stream.incidents[index];
            incident.first = incident.first.min(at);
            incident.last = incident.last.max(at);
            counted.sort_by(|&a, &b| {
                facts.sightings[b]
                    .detection
                    .confidence
                    .total_cmp(&facts.sightings[a].detection.confidence)
            });
            for &i in &counted {
                if let Some(track) = track_ids[i].and_then(|id| camera.tracks.track_mut(id))
                    && track.incident.is_none()
                {
                    track.incident = Some(incident.id.clone());
                }
            }
            let detections: Vec<Detection> = counted
                .iter()
                .map(|&i| facts.sightings[i].detection.clone())
                .collect();
            let zones: Vec<String> = counted
                .iter()
                .flat_map(|&i| facts.sightings[i].zones.iter().cloned())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            incident.all_zones.extend(zones.iter().cloned());
            let track = track_ids[counted[0]];
            let movement = track
                .and_then(|id| camera.tracks.track(id))
                .map(|t| zones::movement(&t.ground, facts.zones))
                .unwrap_or_default();
            let score = frame_score(&detections, facts.frame_size);
            let mut reasons = Vec::new();
            let claim = if incident.alert == Alert::Pending {
                incident.alert = Alert::Emitting;
                Some(Lifecycle::Opened)
            } else if let (Alert::Sent, Phase::Open, false, false, Some(sent)) = (
                incident.alert,
                incident.phase,
                incident.updating,
                incident.closing,
                &incident.sent,
            ) {
                if score > sent.best_score * BETTER_SNAPSHOT_GAIN {
                    reasons.push(UpdateReason::BetterSnapshot);
                }
                if zones.iter().any(|z| !sent.zones.contains(z)) {
                    reasons.push(UpdateReason::NewZone);
                }
                if facts.people > sent.people {
                    reasons.push(UpdateReason::MorePeople);
                }
                if movement.iter().any(|m| !sent.movement.contains(m)) {
                    reasons.push(UpdateReason::Movement);
                }
                if !reasons.is_empty() && at - sent.at >= settings.update_interval {
                    incident.updating = true;
                    Some(Lifecycle::Updated)
                } else {
                    reasons.clear();
                    None
                }
            } else {
                None
            };
            outcomes.push(Outcome {
                event,
                incident_id: incident.id.clone(),
                claim: claim.map(|state| AlertClaim {
                    shared: shared.clone(),
                    key,
                    incident_id: incident.id.clone(),
                    state,
                    sent: false,
                }),
                detections,
                track,
                zones,
                movement,
                reasons,
                score,
                people: facts.people,
            });
            forget_old(stream, at, shared.memory);
        }
        outcomes
    }

    /// The `closed` events owed now: incidents whose camera's capture clock
    /// is past their last detection plus the window.
    pub fn due_closures(&self) -> Vec<CloseClaim> {
        self.closures(Instant::now(), false)
    }

    /// `closed` events for every open incident (the detector is stopping:
    /// its memory is about to be lost).
    pub fn close_all(&self) -> Vec<CloseClaim> {
        self.closures(Instant::now(), true)
    }

    fn closures(&self, now: Instant, all: bool) -> Vec<CloseClaim> {
        let shared = &self.shared;
        let mut guard = shared.lock();
        let state = &mut *guard;
        let mut claims = Vec::new();
        for (key, stream) in &mut state.streams {
            let clock = state.cameras.get(&key.0).and_then(|c| c.capture_now(now));
            for incident in &mut stream.incidents {
                let due = all || clock.is_some_and(|now| incident.last + shared.window < now);
                if !due
                    || incident.alert != Alert::Sent
                    || incident.phase != Phase::Open
                    || incident.closing
                {
                    continue;
                }
                let Some(sent) = &incident.sent else {
                    continue;
                };
                incident.closing = true;
                let mut event = (*sent.best)
                    .clone()
                    .into_cloud_event()
                    .with_lifecycle(Lifecycle::Closed)
                    .with_zones(incident.all_zones.iter().cloned().collect());
                if let Some(track) = sent.track {
                    event = event.with_track_id(track.to_string());
                }
                if let Some(trace) = sent.trace {
                    event = event.with_traceparent(trace);
                }
                claims.push(CloseClaim {
                    shared: shared.clone(),
                    key: key.clone(),
                    event,
                    sent: false,
                });
            }
        }
        claims
    }

    /// Open incidents now (alerted, not yet closed), over all cameras.
    pub fn open_incidents(&self) -> usize {
        self.shared
            .lock()
            .streams
            .values()
            .flat_map(|s| &s.incidents)
            .filter(|i| i.alert == Alert::Sent && i.phase == Phase::Open)
            .count()
    }
}

/// The incident of `stream` a detection captured `at` belongs to.
fn joined(stream: &Stream, at: DateTime<Utc>, window: chrono::Duration) -> Option<usize> {
    stream
        .incidents
        .iter()
        .position(|i| i.first - window <= at && at <= i.last + window)
}

/// Forgets incidents silent for longer than the memory (in capture time),
/// except one being alerted or closed.
fn forget_old(stream: &mut Stream, at: DateTime<Utc>, memory: chrono::Duration) {
    let newest = stream.incidents.iter().map(|i| i.last).max().unwrap_or(at);
    stream.incidents.retain(|i| {
        i.alert == Alert::Emitting || i.updating || i.closing || i.last + memory >= newest
    });
}

/// Every [`SWEEP_EVERY`] observations: forgets cameras and streams idle for
/// longer than the memory (wall time), unless they hold open incidents.
fn sweep(state: &mut State, shared: &Shared, now: Instant) {
    state.since_sweep += 1;
    if state.since_sweep < SWEEP_EVERY {
        return;
    }
    state.since_sweep = 0;
    let memory = shared.memory_wall;
    let stationary = shared
        .lifecycle
        .tracks
        .stationary_memory
        .to_std()
        .unwrap_or(Duration::MAX)
        .max(memory);
    state.streams.retain(|_, s| {
        now.saturating_duration_since(s.touched) <= memory
            || s.incidents
                .iter()
                .any(|i| i.alert == Alert::Sent && i.phase == Phase::Open)
    });
    state.cameras.retain(|_, c| {
        c.touched
            .is_some_and(|t| now.saturating_duration_since(t) <= stationary)
    });
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

    // --- tracks and the lifecycle (observe_frame) ---

    fn lifecycle(min_hits: u32) -> IncidentTracker {
        IncidentTracker::with_lifecycle(
            Duration::from_secs(10),
            Duration::from_secs(600),
            LifecycleSettings {
                min_hits,
                update_interval: chrono::Duration::seconds(5),
                ..LifecycleSettings::default()
            },
        )
    }

    const FRAME: FrameSize = FrameSize {
        width: 640,
        height: 360,
    };

    fn car(x: f32, confidence: f32) -> FrameSighting {
        FrameSighting {
            event: EventType::Accident,
            detection: Detection {
                class: "car".into(),
                confidence,
                bounding_box: safecity_events::BoundingBox {
                    x,
                    y: 200.0,
                    width: 100.0,
                    height: 60.0,
                },
            },
            ground: Point {
                x: f64::from(x + 50.0) / 640.0,
                y: 260.0 / 360.0,
            },
            zones: Vec::new(),
            in_required_zone: true,
        }
    }

    struct Clock(Instant);

    impl Clock {
        fn at(&self, seconds: f64) -> Instant {
            self.0 + Duration::from_secs_f64(seconds)
        }
    }

    /// Files one frame at capture second `at` (wall clock in step); confirms
    /// every claim; returns the states of the events it sent.
    fn frame(
        tracker: &IncidentTracker,
        clock: &Clock,
        sequence: u64,
        at: f64,
        people: usize,
        sightings: Vec<FrameSighting>,
    ) -> Vec<(Lifecycle, Vec<UpdateReason>)> {
        let facts = FrameFacts {
            camera: "cam-1",
            sequence,
            captured_at: t(at),
            frame_size: FRAME,
            people,
            sightings,
            zones: &[],
        };
        let mut sent = Vec::new();
        for outcome in tracker.observe_frame_at(facts, clock.at(at)) {
            let Some(claim) = outcome.claim else { continue };
            sent.push((claim.state(), outcome.reasons.clone()));
            let event = SafetyEvent {
                event_type: outcome.event,
                incident_id: outcome.incident_id.clone(),
                camera: safecity_events::Camera {
                    id: "cam-1".into(),
                    region: "seoul".into(),
                    latitude: 37.5,
                    longitude: 127.0,
                },
                detections: outcome.detections.clone(),
                captured_at: t(at),
                frame_size: FRAME,
                snapshot: None,
                frame_age: None,
            };
            claim.sent_with(SentReport {
                at: t(at),
                score: outcome.score,
                event: Arc::new(event),
                zones: outcome.zones,
                people: outcome.people,
                movement: outcome.movement,
                track: outcome.track,
                trace: None,
            });
        }
        sent
    }

    fn close(tracker: &IncidentTracker, clock: &Clock, at: f64) -> Vec<CloudEvent<SafetyEvent>> {
        tracker
            .closures(clock.at(at), false)
            .into_iter()
            .map(|claim| {
                let event = claim.event().clone();
                claim.sent();
                event
            })
            .collect()
    }

    #[test]
    fn a_track_seen_in_fewer_than_min_hits_frames_opens_nothing() {
        let tracker = lifecycle(3);
        let clock = Clock(Instant::now());
        assert!(frame(&tracker, &clock, 1, 0.0, 0, vec![car(0.0, 0.9)]).is_empty());
        assert!(frame(&tracker, &clock, 2, 0.2, 0, vec![car(10.0, 0.9)]).is_empty());
        // The same frame again (a redelivery) is no third sighting.
        assert!(frame(&tracker, &clock, 2, 0.2, 0, vec![car(10.0, 0.9)]).is_empty());
        assert_eq!(tracker.open_incidents(), 0);
        let opened = frame(&tracker, &clock, 3, 0.4, 0, vec![car(20.0, 0.9)]);
        assert_eq!(opened, [(Lifecycle::Opened, vec![])]);
        assert_eq!(tracker.open_incidents(), 1);
    }

    #[test]
    fn updates_come_at_most_once_per_interval_with_their_reasons() {
        let tracker = lifecycle(1);
        let clock = Clock(Instant::now());
        assert_eq!(
            frame(&tracker, &clock, 1, 0.0, 1, vec![car(0.0, 0.6)]).len(),
            1
        );
        // More people and a better frame within the 5 s interval: nothing yet.
        assert!(frame(&tracker, &clock, 2, 1.0, 3, vec![car(10.0, 0.9)]).is_empty());
        // After it: one update naming both.
        let updated = frame(&tracker, &clock, 3, 5.5, 3, vec![car(20.0, 0.9)]);
        assert_eq!(
            updated,
            [(
                Lifecycle::Updated,
                vec![UpdateReason::BetterSnapshot, UpdateReason::MorePeople]
            )]
        );
        // Nothing new: no more updates, however long.
        assert!(frame(&tracker, &clock, 4, 9.0, 3, vec![car(30.0, 0.9)]).is_empty());
        assert!(frame(&tracker, &clock, 5, 12.0, 2, vec![car(40.0, 0.85)]).is_empty());
    }

    #[test]
    fn an_incident_closes_a_window_after_its_last_sighting_with_its_best_frame() {
        let tracker = lifecycle(1);
        let clock = Clock(Instant::now());
        frame(&tracker, &clock, 1, 0.0, 0, vec![car(0.0, 0.6)]);
        frame(&tracker, &clock, 2, 6.0, 0, vec![car(10.0, 0.95)]);
        assert!(
            close(&tracker, &clock, 15.0).is_empty(),
            "6 + 10 s not reached"
        );
        let closed = close(&tracker, &clock, 16.5);
        assert_eq!(closed.len(), 1);
        let event = &closed[0];
        assert_eq!(event.attributes.lifecycle(), Lifecycle::Closed);
        assert_eq!(event.attributes.track_id.as_deref(), Some("1"));
        assert_eq!(event.data.detections[0].confidence, 0.95, "the best frame");
        assert_eq!(event.data.captured_at, t(6.0));
        assert!(close(&tracker, &clock, 30.0).is_empty(), "closed once");
        assert_eq!(tracker.open_incidents(), 0);
        // A late frame of the closed incident changes nothing.
        assert!(frame(&tracker, &clock, 3, 5.0, 0, vec![car(8.0, 0.9)]).is_empty());
    }

    #[test]
    fn a_parked_car_opens_one_incident_not_one_per_minute() {
        let tracker = lifecycle(2);
        let clock = Clock(Instant::now());
        let mut opened = 0;
        // It drives in and parks at x = 300 from second 2; seen every second
        // for 20 s, then again briefly once a minute for ten minutes (people
        // walking past wake the gate).
        for n in 0..22u64 {
            let x = (n as f32 * 150.0).min(300.0);
            opened += frame(&tracker, &clock, n, n as f64, 0, vec![car(x, 0.9)]).len();
        }
        let mut closed = close(&tracker, &clock, 32.0).len();
        for minute in 1..=10u64 {
            let at = 60.0 * minute as f64;
            opened += frame(&tracker, &clock, 100 + minute, at, 0, vec![car(300.0, 0.9)]).len();
            opened += frame(
                &tracker,
                &clock,
                200 + minute,
                at + 0.5,
                0,
                vec![car(301.0, 0.9)],
            )
            .len();
            closed += close(&tracker, &clock, at + 12.0).len();
        }
        assert_eq!((opened, closed), (1, 1), "one opened, one closed");
        // A different car parking elsewhere is a new incident.
        frame(&tracker, &clock, 300, 700.0, 0, vec![car(0.0, 0.9)]);
        let second = frame(&tracker, &clock, 301, 700.5, 0, vec![car(0.0, 0.9)]);
        assert_eq!(second, [(Lifecycle::Opened, vec![])]);
    }

    #[test]
    fn zones_gate_opening_and_a_tracked_object_keeps_its_incident_outside() {
        let tracker = lifecycle(1);
        let clock = Clock(Instant::now());
        let outside = |x: f32| FrameSighting {
            in_required_zone: false,
            ..car(x, 0.9)
        };
        let inside = |x: f32| FrameSighting {
            zones: vec!["crossing".into()],
            ..car(x, 0.9)
        };
        assert!(frame(&tracker, &clock, 1, 0.0, 0, vec![outside(0.0)]).is_empty());
        assert!(frame(&tracker, &clock, 2, 0.5, 0, vec![outside(10.0)]).is_empty());
        assert_eq!(tracker.open_incidents(), 0, "outside the required zone");
        // The object outside the zone was tracked: it opens once inside.
        let opened = frame(&tracker, &clock, 3, 1.0, 0, vec![inside(20.0)]);
        assert_eq!(opened, [(Lifecycle::Opened, vec![])]);
        // Out of the zone again: it extends the incident (no new one).
        for n in 0..10u64 {
            let at = 2.0 + n as f64 * 2.0;
            assert!(
                frame(
                    &tracker,
                    &clock,
                    4 + n,
                    at,
                    0,
                    vec![outside(30.0 + n as f32)]
                )
                .is_empty()
            );
        }
        assert!(
            close(&tracker, &clock, 25.0).is_empty(),
            "seen at 20 s: still open"
        );
        let closed = close(&tracker, &clock, 31.0);
        assert_eq!(closed.len(), 1);
        assert_eq!(closed[0].attributes.zones, ["crossing"]);
    }
}
