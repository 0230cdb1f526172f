//! # caption
//!
//! Gun and knife events become a warning in Korean and English — where
//! (place name from the camera registry, region, part of the view), what
//! (weapon, how many people), moving towards or away from a zone of the
//! camera (the detector's track, in the event's `movement`; else the growth
//! of boxes over earlier sightings: towards or away from the camera), when,
//! and how confident — posted once per incident (`closed` posts nothing)
//! through the same [`Notifier`] as fire-post, with people in the snapshot
//! pixelated.
//!
//! The words come from a [`Captioner`]: [`TemplateCaptioner`] by default
//! (deterministic, no model weights).

pub mod captioner;
pub mod config;
pub mod registry;

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use chrono::Utc;
use safecity_events::{EventType, Lifecycle};
use safecity_runtime::{CloudEvent, Context, Function, HandlerError, SafetyEvent, Subscription};
use safecity_social::post::public_snapshot;
use safecity_social::{AlertOutcome, IncidentState, Ledger, Notifier, Post, PostOnce, StormLimit};
use tracing::info;

pub use captioner::{Caption, Captioner, Scene, Sighting, TemplateCaptioner, ZoneMove};
pub use config::CaptionConfig;
pub use registry::CameraRegistry;

/// Incidents whose sightings are remembered for the movement estimate.
const TRACKED_INCIDENTS: usize = 1024;

/// Earlier sightings per incident, bounded (oldest incidents forgotten first).
#[derive(Debug, Default)]
struct Tracks {
    by_incident: HashMap<String, Vec<Sighting>>,
    order: VecDeque<String>,
}

impl Tracks {
    fn get(&self, incident: &str) -> Vec<Sighting> {
        self.by_incident.get(incident).cloned().unwrap_or_default()
    }

    fn add(&mut self, incident: &str, sighting: Sighting) {
        if !self.by_incident.contains_key(incident) {
            if self.order.len() == TRACKED_INCIDENTS
                && let Some(oldest) = self.order.pop_front()
            {
                self.by_incident.remove(&oldest);
            }
            self.order.push_back(incident.to_owned());
        }
        self.by_incident
            .entry(incident.to_owned())
            .or_default()
            .push(sighting);
    }
}

/// The caption function.
#[derive(Debug)]
pub struct CaptionFunction<N, C> {
    poster: PostOnce<N>,
    captioner: C,
    registry: CameraRegistry,
    hide_people: bool,
    tracks: Mutex<Tracks>,
}

impl<N: Notifier, C: Captioner> CaptionFunction<N, C> {
    /// A caption function posting through `notifier`.
    pub fn new(
        notifier: N,
        captioner: C,
        ledger: Ledger,
        registry: CameraRegistry,
        hide_people: bool,
    ) -> Self {
        CaptionFunction {
            poster: PostOnce::new(notifier, ledger, StormLimit::UNLIMITED),
            captioner,
            registry,
            hide_people,
            tracks: Mutex::new(Tracks::default()),
        }
    }

    fn remember(&self, event: &SafetyEvent) {
        let weapon = event.event_type.as_str();
        if let Some(detection) = event
            .detections
            .iter()
            .find(|d| d.class == weapon)
            .or(event.detections.first())
        {
            self.tracks
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .add(
                    &event.incident_id,
                    Sighting {
                        at: event.captured_at,
                        bounding_box: detection.bounding_box,
                    },
                );
        }
    }
}

impl<N: Notifier, C: Captioner> Function for CaptionFunction<N, C> {
    type Input = CloudEvent<SafetyEvent>;

    fn name(&self) -> &str {
        "caption"
    }

    fn subscriptions(&self) -> Vec<Subscription> {
        vec![EventType::Gun.into(), EventType::Knife.into()]
    }

    async fn handle(&self, event: Self::Input, _ctx: Context) -> Result<(), HandlerError> {
        let scene_event = &event.data;
        let incident = scene_event.incident_id.as_str();
        if event.attributes.lifecycle() == Lifecycle::Closed {
            info!(incident, "closed: nothing to post");
            return Ok(());
        }
        let region = scene_event.camera.region.as_str();
        if matches!(
            self.poster.ledger().state(incident).await?,
            Some(IncidentState::Posted | IncidentState::Merged)
        ) {
            self.remember(scene_event);
            info!(incident, "already posted, nothing to do");
            return Ok(());
        }
        let track = self
            .tracks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(incident);
        let zone_moves: Vec<ZoneMove> = event
            .attributes
            .movement
            .iter()
            .map(|m| ZoneMove {
                movement: m.movement,
                zone: self.registry.zone(&scene_event.camera.id, &m.zone),
            })
            .collect();
        let scene = Scene {
            event_type: scene_event.event_type,
            place: self.registry.place(&scene_event.camera.id),
            region,
            captured_at: scene_event.captured_at,
            detections: &scene_event.detections,
            frame_size: scene_event.frame_size,
            track: &track,
            zone_moves: &zone_moves,
            snapshot: scene_event.snapshot.as_ref().map(|s| s.0.as_slice()),
        };
        let caption = self
            .captioner
            .caption(&scene)
            .map_err(HandlerError::dead_letter)?;
        let post = Post {
            text: caption.text(),
            language: "ko".to_owned(),
            media: public_snapshot(
                scene_event,
                self.hide_people,
                caption
                    .english
                    .lines()
                    .last()
                    .unwrap_or_default()
                    .to_owned(),
            ),
            idempotency_key: format!("caption-{incident}"),
        };
        let summary = caption.english.lines().nth(1).unwrap_or_default();
        let outcome = self
            .poster
            .alert(incident, region, summary, &post, Utc::now())
            .await?;
        self.remember(scene_event);
        let published = match outcome {
            AlertOutcome::Posted(published) => published,
            other => {
                info!(incident, outcome = ?other, "not posted again");
                return Ok(());
            }
        };
        info!(incident, post = %published.id, "posted a caption");
        Ok(())
    }
}
