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
//! 4. files each group with the [`incidents`] tracker: the first detection of
//!    an incident emits a [`SafetyEvent`] (detections, boxes in frame pixels,
//!    frame size, a downscaled JPEG [`snapshot`]) with a confirmed, mandatory
//!    publish routed by event type; later detections of the incident are silent.
//!
//! Batches fill only when the runtime runs enough handlers at once:
//! `SAFECITY_CONCURRENCY` (handlers and prefetch) must be at least the batch size.

pub mod batcher;
pub mod classes;
pub mod config;
pub mod incidents;
pub mod metrics;
pub mod model;
pub mod snapshot;

use std::collections::BTreeMap;
use std::sync::Arc;

use image::RgbImage;
use safecity_events::{Detection, EventType, Frame, FrameSize, Jpeg, SafetyEvent};
use safecity_runtime::{Context, Function, HandlerError, Subscription};
use safecity_yolo::preprocess::{self, ImageLimits, PreprocessError};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

pub use batcher::{BatchError, BatchModel, BatchPolicy, Batcher};
pub use classes::{ClassMap, ClassMapError, ResolvedClassMap};
pub use config::DetectorConfig;
pub use incidents::{IncidentTracker, Verdict};
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
    pub incident_window: std::time::Duration,
    /// How long incidents are remembered.
    pub incident_memory: std::time::Duration,
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
        }
    }
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
    /// error naming it) and starts the batcher on the current tokio runtime; it
    /// stops waiting for batches to fill when `shutdown` fires.
    pub fn new(
        model: M,
        class_names: &[String],
        class_map: &ClassMap,
        settings: Settings,
        shutdown: CancellationToken,
    ) -> Result<Self, ClassMapError> {
        let classes = class_map.resolve(class_names)?;
        let metrics = Arc::new(DetectorMetrics::new());
        let batcher = Batcher::spawn(Arc::new(model), settings.batch, metrics.clone(), shutdown);
        let incidents = IncidentTracker::new(settings.incident_window, settings.incident_memory);
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

    /// The mapped detections of one frame by event type, highest confidence first.
    fn classify(&self, sightings: &[Sighting]) -> BTreeMap<EventType, Vec<Detection>> {
        let mut groups: BTreeMap<EventType, Vec<Detection>> = BTreeMap::new();
        for sighting in sightings {
            if let Some(event) = self
                .classes
                .event_for(sighting.class_id, sighting.confidence)
            {
                groups.entry(event).or_default().push(Detection {
                    class: sighting.class_name.clone(),
                    confidence: sighting.confidence.clamp(0.0, 1.0),
                    bounding_box: sighting.bounding_box,
                });
            }
        }
        for detections in groups.values_mut() {
            detections.sort_by(|a, b| b.confidence.total_cmp(&a.confidence));
        }
        groups
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

    async fn snapshot(&self, image: &Arc<RgbImage>) -> Option<Jpeg> {
        let image = image.clone();
        let settings = self.settings.snapshot;
        match tokio::task::spawn_blocking(move || snapshot::encode(&image, settings)).await {
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
        let groups = self.classify(&sightings);
        if groups.is_empty() {
            debug!(camera = %camera.id, sequence = frame.sequence, found = sightings.len(), "nothing mapped");
            return Ok(());
        }
        let frame_size = FrameSize {
            width: image.width(),
            height: image.height(),
        };
        let image = Arc::new(image);
        let mut snapshot = None;
        for (event_type, detections) in groups {
            self.metrics.sighting(event_type);
            let claim = match self
                .incidents
                .observe(&camera.id, event_type, frame.captured_at)
            {
                Verdict::Known { incident_id } => {
                    debug!(camera = %camera.id, %event_type, incident = %incident_id, "incident goes on");
                    continue;
                }
                Verdict::Alert(claim) => claim,
            };
            if snapshot.is_none() {
                snapshot = self.snapshot(&image).await;
            }
            let incident_id = claim.incident_id().to_owned();
            let event = SafetyEvent {
                event_type,
                incident_id: incident_id.clone(),
                camera: camera.clone(),
                detections,
                captured_at: frame.captured_at,
                frame_size,
                snapshot: snapshot.clone(),
            };
            // On failure the claim is dropped: the retried frame (or the next
            // detection of the incident) alerts instead.
            ctx.emit(event.into_cloud_event()).await.map_err(|error| {
                HandlerError::retry(format!(
                    "publishing the {event_type} alert of incident {incident_id}: {error}"
                ))
            })?;
            claim.sent();
            self.metrics.alert(event_type);
            info!(camera = %camera.id, %event_type, incident = %incident_id, "alerted a new incident");
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
