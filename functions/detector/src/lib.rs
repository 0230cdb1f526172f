//! # safecity-detector
//!
//! The detector function: consumes camera frames through the safecity
//! runtime, runs them in dynamic batches through a Darknet model
//! ([`safecity_yolo`]), and emits one safety event per incident.
//!
//! For every frame, [`DetectorFunction::handle`]:
//!
//! 1. decodes the JPEG; a frame that is corrupt, empty or too large (bytes or
//!    pixels) is dead-lettered with the reason — the other frames of its batch
//!    are unaffected, because decoding happens before batching;
//! 2. submits the image to the [`batcher`], which runs the model once per
//!    batch of up to `SAFECITY_DETECTOR_BATCH_SIZE` frames or
//!    `SAFECITY_DETECTOR_BATCH_WAIT`; a model failure retries the batch's frames;
//! 3. keeps the detections whose class is in the [`classes`] map with at least
//!    its minimum confidence, grouped by event type;
//! 4. places each detection in the camera's view ([`zones`]: its ground
//!    point, the registry zones it touches, the class's required zones) and
//!    files the frame with the [`incidents`] tracker, which [`tracks`]
//!    objects across frames: a track seen in enough frames opens an incident
//!    (`opened`: a [`SafetyEvent`] with detections, boxes in frame pixels,
//!    frame size and a downscaled JPEG [`snapshot`], people pixelated), later
//!    frames may send `updated` (at most one per interval), and the
//!    [`closer`] sends `closed` when the incident was not seen for the
//!    window. Every publish is confirmed and mandatory, routed by event type.
//!
//! Batches fill only when the runtime runs enough handlers at once:
//! `SAFECITY_CONCURRENCY` (handlers and prefetch) must be at least the batch size.

pub mod batcher;
pub mod classes;
pub mod closer;
pub mod config;
pub mod incidents;
pub mod metrics;
pub mod model;
pub mod snapshot;
pub mod tracks;
pub mod zones;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use image::RgbImage;
use safecity_cameras::{CameraEntry, CameraRegistry};
use safecity_events::{
    BoundingBox, Detection, EventType, Frame, FrameAge, FrameSize, Jpeg, Lifecycle, SafetyEvent,
};
use safecity_runtime::{Context, Function, HandlerError, Subscription};
use safecity_yolo::preprocess::{self, ImageLimits, PreprocessError};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

pub use batcher::{BatchError, BatchModel, BatchPolicy, Batcher};
pub use classes::{ClassMap, ClassMapError, ResolvedClassMap};
pub use config::DetectorConfig;
pub use incidents::{IncidentTracker, LifecycleSettings, Verdict};
pub use metrics::DetectorMetrics;
pub use model::{ModelError, Sighting, YoloModel};
pub use snapshot::SnapshotSettings;

/// The name of the function: its queue is `safecity.fn.detector`.
pub const FUNCTION_NAME: &str = "detector";

/// How the function treats frames, apart from the model.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// The region whose frames are consumed, or all.
    pub region: Option<String>,
    /// Dynamic batching.
    pub batch: BatchPolicy,
    /// Silence that ends an incident.
    pub incident_window: Duration,
    /// How long incidents are remembered.
    pub incident_memory: Duration,
    /// Snapshot size and quality.
    pub snapshot: SnapshotSettings,
    /// Frames above these limits are dead-lettered.
    pub limits: ImageLimits,
    /// Frames at least twice this size are decoded at 1/2, 1/4 or 1/8
    /// scale, never below it (the model's input size).
    pub decode_at_least: Option<(u32, u32)>,
    /// Decoded pixels held at once across all frames in flight; a frame
    /// waits for room before it is decoded.
    pub decode_budget_pixels: u64,
    /// Tracks and updates.
    pub lifecycle: LifecycleSettings,
    /// The cameras' zones and privacy opt-ins (empty: no zones, people
    /// pixelated on every camera).
    pub cameras: CameraRegistry,
    /// Where the registry came from (named in errors).
    pub cameras_path: Option<std::path::PathBuf>,
    /// Model classes pixelated in snapshots (e.g. `person`).
    pub pixelate: Vec<String>,
}

/// Why the detector cannot start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The class map does not fit the model or the registry.
    #[error(transparent)]
    ClassMap(#[from] ClassMapError),
    /// `SAFECITY_DETECTOR_PIXELATE` names a class the model does not have.
    #[error(
        "SAFECITY_DETECTOR_PIXELATE: the model has no class `{class}` to pixelate (its names file lists {count} classes)"
    )]
    UnknownPixelateClass {
        /// The class.
        class: String,
        /// How many classes the model has.
        count: usize,
    },
}

/// The pixel budget is counted in blocks of this many pixels.
const BUDGET_BLOCK: u64 = 4096;

fn budget_blocks(settings: &Settings) -> u64 {
    (settings.decode_budget_pixels / BUDGET_BLOCK).max(1)
}

impl From<&DetectorConfig> for Settings {
    fn from(config: &DetectorConfig) -> Self {
        Settings {
            region: config.region.clone(),
            batch: config.batch,
            incident_window: config.incident_window,
            incident_memory: config.incident_memory,
            snapshot: config.snapshot,
            limits: ImageLimits {
                max_bytes: config.max_frame_bytes,
                max_pixels: config.max_frame_pixels,
            },
            decode_at_least: None,
            decode_budget_pixels: config.decode_budget_pixels,
            lifecycle: config.lifecycle,
            cameras: CameraRegistry::default(),
            cameras_path: config.camera_registry.clone(),
            pixelate: config.pixelate.clone(),
        }
    }
}

/// A mapped detection of a frame with its rule.
struct Mapped<'a> {
    event: EventType,
    rule: &'a classes::ClassRule,
    detection: Detection,
}

/// The detector function, generic over the model so that the batching and
/// incident logic can be exercised on its own.
pub struct DetectorFunction<M: BatchModel<Item = RgbImage, Output = Vec<Sighting>>> {
    settings: Settings,
    classes: ResolvedClassMap,
    batcher: Batcher<M>,
    incidents: IncidentTracker,
    metrics: Arc<DetectorMetrics>,
    decode_budget: Arc<Semaphore>,
    /// Model class ids pixelated in snapshots.
    pixelate: Vec<usize>,
    /// Model class id of people (carriers, head counts), if the model has one.
    person: Option<usize>,
}

impl<M: BatchModel<Item = RgbImage, Output = Vec<Sighting>>> std::fmt::Debug
    for DetectorFunction<M>
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DetectorFunction")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl<M: BatchModel<Item = RgbImage, Output = Vec<Sighting>>> DetectorFunction<M> {
    /// Builds the function around `model`, whose classes are `class_names`.
    ///
    /// Checks `class_map` against the model's classes (an unknown class is an
    /// error naming it) and its required zones against the camera registry,
    /// checks the classes to pixelate, and starts the batcher on the current
    /// tokio runtime; it stops waiting for batches to fill when `shutdown`
    /// fires.
    pub fn new(
        model: M,
        class_names: &[String],
        class_map: &ClassMap,
        settings: Settings,
        shutdown: CancellationToken,
    ) -> Result<Self, StartError> {
        let classes = class_map.resolve(class_names)?;
        classes.check_zones(&settings.cameras, settings.cameras_path.as_deref())?;
        for line in classes.cameras_without_required_zones(&settings.cameras) {
            warn!("{line}");
        }
        let pixelate = settings
            .pixelate
            .iter()
            .map(|class| {
                class_names.iter().position(|n| n == class).ok_or_else(|| {
                    StartError::UnknownPixelateClass {
                        class: class.clone(),
                        count: class_names.len(),
                    }
                })
            })
            .collect::<Result<Vec<usize>, StartError>>()?;
        let person = class_names.iter().position(|n| n == zones::CARRIER_CLASS);
        let metrics = Arc::new(DetectorMetrics::new());
        let batcher = Batcher::spawn(Arc::new(model), settings.batch, metrics.clone(), shutdown);
        let incidents = IncidentTracker::with_lifecycle(
            settings.incident_window,
            settings.incident_memory,
            settings.lifecycle,
        );
        let blocks = budget_blocks(&settings);
        let decode_budget = Arc::new(Semaphore::new(
            usize::try_from(blocks).unwrap_or(Semaphore::MAX_PERMITS),
        ));
        Ok(DetectorFunction {
            settings,
            classes,
            batcher,
            incidents,
            metrics,
            decode_budget,
            pixelate,
            person,
        })
    }

    /// The detector's own metrics (batch sizes, inference time, alerts).
    pub fn metrics(&self) -> Arc<DetectorMetrics> {
        self.metrics.clone()
    }

    /// The incident tracker.
    pub fn incidents(&self) -> &IncidentTracker {
        &self.incidents
    }

    /// The detections of one frame that the class map turns into events.
    fn mapped(&self, sightings: &[Sighting]) -> Vec<Mapped<'_>> {
        sightings
            .iter()
            .filter_map(|sighting| {
                let rule = self
                    .classes
                    .rule_for(sighting.class_id, sighting.confidence)?;
                Some(Mapped {
                    event: rule.event,
                    rule,
                    detection: Detection {
                        class: sighting.class_name.clone(),
                        confidence: sighting.confidence.clamp(0.0, 1.0),
                        bounding_box: sighting.bounding_box,
                    },
                })
            })
            .collect()
    }

    /// Decodes a frame within the pixel budget: checks what needs no pixels
    /// first, then waits for room for the decoded image, then decodes off the
    /// async threads. The permit is held as long as the image lives.
    async fn decode(
        &self,
        jpeg: Vec<u8>,
    ) -> Result<(RgbImage, OwnedSemaphorePermit), PreprocessError> {
        let probe = preprocess::probe(&jpeg, &self.settings.limits, self.settings.decode_at_least)?;
        let blocks = probe.output_pixels().div_ceil(BUDGET_BLOCK).max(1);
        let budget = self.decode_budget.clone();
        // A frame bigger than the whole budget takes all of it (alone).
        let wanted = u32::try_from(blocks)
            .unwrap_or(u32::MAX)
            .min(u32::try_from(budget_blocks(&self.settings)).unwrap_or(u32::MAX));
        let permit = budget
            .acquire_many_owned(wanted)
            .await
            .expect("the decode budget is never closed");
        let image = tokio::task::spawn_blocking(move || probe.decode(&jpeg))
            .await
            .map_err(|panic| PreprocessError::Corrupt {
                format: probe.format,
                reason: format!("the decoder failed: {panic}"),
            })??;
        Ok((image, permit))
    }

    /// The frame's snapshot, with the boxes of the classes to pixelate
    /// hidden unless the camera opted in to raw snapshots.
    async fn snapshot(
        &self,
        image: &Arc<RgbImage>,
        sightings: &[Sighting],
        entry: Option<&CameraEntry>,
    ) -> Option<Jpeg> {
        let image = image.clone();
        let settings = self.settings.snapshot;
        let hidden: Vec<BoundingBox> = if entry.is_some_and(|e| e.raw_snapshots) {
            Vec::new()
        } else {
            sightings
                .iter()
                .filter(|s| self.pixelate.contains(&s.class_id))
                .map(|s| s.bounding_box)
                .collect()
        };
        match tokio::task::spawn_blocking(move || snapshot::encode(&image, settings, &hidden)).await
        {
            Ok(Ok(jpeg)) => Some(Jpeg(jpeg)),
            Ok(Err(error)) => {
                warn!(%error, "alerting without a snapshot");
                None
            }
            Err(error) => {
                warn!(%error, "snapshot encoding panicked; alerting without a snapshot");
                None
            }
        }
    }
}

impl<M: BatchModel<Item = RgbImage, Output = Vec<Sighting>>> Function for DetectorFunction<M> {
    type Input = Frame;

    /// Serves the detector's batch, inference, rejection, sighting and alert
    /// metrics on the runtime's `/metrics`.
    fn register_metrics(&self, registry: &mut prometheus_client::registry::Registry) {
        self.metrics.register(registry);
    }

    fn name(&self) -> &str {
        FUNCTION_NAME
    }

    fn subscriptions(&self) -> Vec<Subscription> {
        vec![Subscription::Frames {
            region: self.settings.region.clone(),
        }]
    }

    async fn handle(&self, mut frame: Frame, ctx: Context) -> Result<(), HandlerError> {
        let jpeg = std::mem::take(&mut frame.jpeg);
        let camera = &frame.camera;
        let (image, _budget) = match self.decode(jpeg).await {
            Ok(decoded) => decoded,
            Err(error) => {
                self.metrics.frame_rejected();
                warn!(camera = %camera.id, sequence = frame.sequence, %error, "dead-lettering a bad frame");
                return Err(HandlerError::dead_letter(format!(
                    "frame {} of camera `{}`: {error}",
                    frame.sequence, camera.id
                )));
            }
        };
        let (image, sightings) = self
            .batcher
            .submit(image)
            .await
            .map_err(HandlerError::retry)?;
        let frame_age = FrameAge::of(frame.captured_at, Utc::now(), ctx.frame_budget());
        self.metrics
            .frame_age(Duration::from_millis(frame_age.milliseconds));
        let mapped = self.mapped(&sightings);
        if mapped.is_empty() {
            self.incidents.tick(&camera.id, frame.captured_at);
            debug!(camera = %camera.id, sequence = frame.sequence, found = sightings.len(), "nothing mapped");
            return Ok(());
        }
        let frame_size = FrameSize {
            width: image.width(),
            height: image.height(),
        };
        let mut seen_types: Vec<EventType> = mapped.iter().map(|m| m.event).collect();
        seen_types.sort();
        seen_types.dedup();
        for event_type in seen_types {
            self.metrics.sighting(event_type);
        }
        let entry = self.settings.cameras.camera(&camera.id);
        let camera_zones = entry.map_or(&[][..], |e| e.zones.as_slice());
        let people: Vec<BoundingBox> = sightings
            .iter()
            .filter(|s| Some(s.class_id) == self.person)
            .map(|s| s.bounding_box)
            .collect();
        let facts = incidents::FrameFacts {
            camera: &camera.id,
            sequence: frame.sequence,
            captured_at: frame.captured_at,
            frame_size,
            people: people.len(),
            sightings: mapped
                .iter()
                .map(|m| {
                    let ground = zones::ground_point(
                        m.event,
                        &m.detection.class,
                        &m.detection.bounding_box,
                        &people,
                        frame_size,
                    );
                    let touched = zones::zones_at(camera_zones, ground);
                    incidents::FrameSighting {
                        event: m.event,
                        detection: m.detection.clone(),
                        ground,
                        in_required_zone: m.rule.allows(&touched),
                        zones: touched,
                    }
                })
                .collect(),
            zones: camera_zones,
        };
        let outcomes = self.incidents.observe_frame(facts);
        let image = Arc::new(image);
        let mut snapshot = None;
        for outcome in outcomes {
            let Some(claim) = outcome.claim else {
                debug!(camera = %camera.id, event_type = %outcome.event, incident = %outcome.incident_id, "incident goes on");
                continue;
            };
            if snapshot.is_none() {
                snapshot = Some(self.snapshot(&image, &sightings, entry).await);
            }
            let state = claim.state();
            let event_type = outcome.event;
            let incident_id = outcome.incident_id;
            let event = SafetyEvent {
                event_type,
                incident_id: incident_id.clone(),
                camera: camera.clone(),
                detections: outcome.detections,
                captured_at: frame.captured_at,
                frame_size,
                snapshot: snapshot.clone().flatten(),
                frame_age: Some(frame_age),
            };
            let mut cloud = event
                .clone()
                .into_cloud_event()
                .with_lifecycle(state)
                .with_zones(outcome.zones.clone())
                .with_movement(outcome.movement.clone())
                .with_update_reasons(outcome.reasons.clone());
            if let Some(track) = outcome.track {
                cloud = cloud.with_track_id(track.to_string());
            }
            // On failure the claim is dropped: the retried frame (or the next
            // detection of the incident) emits instead.
            ctx.emit(cloud).await.map_err(|error| {
                HandlerError::retry(format!(
                    "publishing the {event_type} {state} event of incident {incident_id}: {error}"
                ))
            })?;
            claim.sent_with(incidents::SentReport {
                at: frame.captured_at,
                score: outcome.score,
                event: Arc::new(event),
                zones: outcome.zones,
                people: outcome.people,
                movement: outcome.movement,
                track: outcome.track,
                trace: Some(ctx.traceparent()),
            });
            self.metrics.lifecycle(event_type, state);
            if frame_age.late {
                self.metrics.late_event();
                warn!(camera = %camera.id, %event_type, incident = %incident_id, age_ms = frame_age.milliseconds, "the alert is late: its frame is older than the frame budget");
            }
            if state == Lifecycle::Opened {
                info!(camera = %camera.id, %event_type, incident = %incident_id, "alerted a new incident");
            } else {
                info!(camera = %camera.id, %event_type, incident = %incident_id, reasons = ?outcome.reasons, "updated an incident");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use safecity_events::Camera;
    use safecity_runtime::testing::TestContext;

    use super::*;

    /// A fake model that always fails. A real network cannot be made to fail
    /// on demand, and this test checks the handler's verdict on a model
    /// failure, not detection.
    struct Broken;

    impl BatchModel for Broken {
        type Item = RgbImage;
        type Output = Vec<Sighting>;
        type Error = String;

        fn run(&self, _images: &[RgbImage]) -> Result<Vec<Vec<Sighting>>, String> {
            Err("device lost".to_owned())
        }
    }

    fn frame(jpeg: Vec<u8>) -> Frame {
        Frame {
            camera: Camera {
                id: "cam-1".into(),
                region: "seoul".into(),
                latitude: 37.5,
                longitude: 127.0,
            },
            captured_at: "2026-12-02T10:00:00Z".parse().expect("time"),
            sequence: 4,
            jpeg,
        }
    }

    fn function() -> DetectorFunction<Broken> {
        let map = ClassMap::parse(
            "[classes.knife]\nevent = \"knife\"\nmin_confidence = 0.5\n",
            Path::new("classes.toml"),
        )
        .expect("map");
        // Only the required paths; the model is the fake above.
        let config = DetectorConfig::from_lookup(|name| {
            matches!(
                name,
                "SAFECITY_DETECTOR_CFG"
                    | "SAFECITY_DETECTOR_WEIGHTS"
                    | "SAFECITY_DETECTOR_NAMES"
                    | "SAFECITY_DETECTOR_CLASSES"
            )
            .then(|| "/unused".to_owned())
        })
        .expect("config");
        DetectorFunction::new(
            Broken,
            &["person".to_owned(), "knife".to_owned()],
            &map,
            Settings::from(&config),
            CancellationToken::new(),
        )
        .expect("function")
    }

    #[tokio::test]
    async fn a_model_failure_retries_the_frame_and_a_corrupt_frame_is_dead_lettered() {
        let function = function();
        let test = TestContext::new(FUNCTION_NAME);
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new(&mut jpeg)
            .encode_image(&RgbImage::new(64, 48))
            .expect("encode");
        let verdict = function
            .handle(frame(jpeg), test.context())
            .await
            .expect_err("the model failed");
        assert!(matches!(verdict, HandlerError::Retry { .. }), "{verdict:?}");
        assert!(verdict.reason().contains("device lost"), "{verdict}");

        let verdict = function
            .handle(frame(vec![0xFF, 0xD8, 0, 1, 2]), test.context())
            .await
            .expect_err("corrupt");
        assert!(
            matches!(verdict, HandlerError::DeadLetter { .. }),
            "{verdict:?}"
        );
        assert!(
            verdict.reason().contains("frame 4 of camera `cam-1`"),
            "{verdict}"
        );
        assert!(test.emitted().is_empty());
    }
}
