//! One camera's gate: JPEG in, [`Frame`] out when it is worth a detector.
//!
//! decode (luma only, into a reused buffer, DC-only at 8x the work size or
//! more: [`crate::decode::decode_for_work`]) ->
//! [`MotionDetector`] -> [`Trigger`] -> optional re-encode to a maximum size
//! (full colour, with the `image` crate) -> [`Frame`].
//! Synchronous and CPU-bound: the camera task runs it on the blocking pool.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use image::{ImageFormat, imageops};
use safecity_events::{Camera, Frame};

use crate::decode::{DecodeError, decode_for_work};
use crate::metrics::{CameraLabel, GateMetrics, Stage, StageLabel};
use crate::motion::{ImageView, MotionDetector, MotionError};
use crate::registry::GateParams;
use crate::trigger::{Decision, Trigger, TriggerError};

/// Why a frame was not processed.
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    /// The JPEG did not decode (skipped, counted as corrupt).
    #[error("corrupt frame: {0}")]
    Corrupt(#[from] DecodeError),
    /// A forwarded frame could not be scaled and re-encoded (skipped).
    #[error("re-encoding a forwarded frame: {0}")]
    Reencode(#[source] image::ImageError),
    /// Invalid motion parameters.
    #[error(transparent)]
    Motion(#[from] MotionError),
    /// Invalid trigger parameters.
    #[error(transparent)]
    Trigger(#[from] TriggerError),
}

/// How forwarded frames are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputSettings {
    /// Frames wider than this are scaled down and re-encoded (None = never).
    pub max_width: Option<u32>,
    /// Frames taller than this are scaled down and re-encoded (None = never).
    pub max_height: Option<u32>,
    /// JPEG quality of re-encoded frames.
    pub quality: u8,
}

impl Default for OutputSettings {
    fn default() -> Self {
        OutputSettings {
            max_width: None,
            max_height: None,
            quality: 85,
        }
    }
}

/// The gate of one camera.
#[derive(Debug)]
pub struct CameraGate {
    camera: Camera,
    label: CameraLabel,
    detector: MotionDetector,
    trigger: Trigger,
    output: OutputSettings,
    pixels: Vec<u8>,
    sequence: u64,
    read: u64,
    forwarded: u64,
    metrics: Arc<GateMetrics>,
}

impl CameraGate {
    /// A gate for `camera`, ignoring motion inside `masks` (relative
    /// polygons from the registry), with validated parameters.
    pub fn new(
        camera: Camera,
        masks: Vec<safecity_cameras::Polygon>,
        params: &GateParams,
        output: OutputSettings,
        metrics: Arc<GateMetrics>,
    ) -> Result<Self, GateError> {
        Ok(CameraGate {
            label: GateMetrics::camera(&camera.id),
            camera,
            detector: MotionDetector::with_masks(params.motion.clone(), masks)?,
            trigger: Trigger::new(params.trigger.clone())?,
            output,
            pixels: Vec::new(),
            sequence: 0,
            read: 0,
            forwarded: 0,
            metrics,
        })
    }

    /// The camera.
    pub fn camera(&self) -> &Camera {
        &self.camera
    }

    /// Forgets background and trigger state (after a reconnect).
    pub fn reset(&mut self) {
        self.detector.reset();
        self.trigger.reset();
    }

    /// Processes one JPEG at stream time `at`; `Some(frame)` when it is to be published.
    ///
    /// Every call consumes one sequence number, so `frame-seq` counts frames read.
    pub fn process(
        &mut self,
        jpeg: Vec<u8>,
        at: Duration,
        captured_at: DateTime<Utc>,
    ) -> Result<Option<Frame>, GateError> {
        let sequence = self.sequence;
        self.sequence += 1;
        self.read += 1;
        self.metrics.frames_read.get_or_create(&self.label).inc();
        let started = Instant::now();
        let config = self.detector.config();
        let decoded = decode_for_work(
            &jpeg,
            &mut self.pixels,
            config.work_width,
            config.work_height,
        )?;
        self.observe(Stage::Decode, started);
        let started = Instant::now();
        let measurement = self.detector.process(ImageView {
            width: decoded.width,
            height: decoded.height,
            channels: decoded.channels,
            data: &self.pixels,
        })?;
        let decision = self.trigger.update(measurement.motion, at);
        self.observe(Stage::Motion, started);
        let forward = decision == Decision::Forward;
        if forward {
            self.forwarded += 1;
            self.metrics
                .frames_forwarded
                .get_or_create(&self.label)
                .inc();
        }
        self.metrics
            .forward_ratio
            .get_or_create(&self.label)
            .set(self.forwarded as f64 / self.read as f64);
        if !forward {
            return Ok(None);
        }
        let jpeg = if self.too_large(decoded.source_width, decoded.source_height) {
            let started = Instant::now();
            let bytes = self.reencode(&jpeg)?;
            self.observe(Stage::Reencode, started);
            bytes
        } else {
            jpeg
        };
        Ok(Some(Frame {
            camera: self.camera.clone(),
            captured_at,
            sequence,
            jpeg,
        }))
    }

    fn observe(&self, stage: Stage, started: Instant) {
        self.metrics
            .frame_seconds
            .get_or_create(&StageLabel { stage })
            .observe(started.elapsed().as_secs_f64());
    }

    fn too_large(&self, width: u32, height: u32) -> bool {
        self.output.max_width.is_some_and(|m| width > m)
            || self.output.max_height.is_some_and(|m| height > m)
    }

    /// Scales a forwarded frame to the size limit and re-encodes it. The
    /// gate decoded luma only: forwarded frames (a few per second at most)
    /// are decoded again, in colour, with the `image` crate.
    fn reencode(&self, jpeg: &[u8]) -> Result<Vec<u8>, GateError> {
        let image = image::load_from_memory_with_format(jpeg, ImageFormat::Jpeg)
            .map_err(GateError::Reencode)?
            .to_rgb8();
        let (width, height) = image.dimensions();
        let max_w = self.output.max_width.unwrap_or(width).max(1);
        let max_h = self.output.max_height.unwrap_or(height).max(1);
        let scale = (f64::from(max_w) / f64::from(width)).min(f64::from(max_h) / f64::from(height));
        let w = ((f64::from(width) * scale).round() as u32).max(1);
        let h = ((f64::from(height) * scale).round() as u32).max(1);
        let small = imageops::resize(&image, w, h, imageops::FilterType::Triangle);
        let mut bytes = Vec::with_capacity(small.as_raw().len() / 8);
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, self.output.quality)
            .encode_image(&small)
            .map_err(GateError::Reencode)?;
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use safecity_cctv_sim::scene::{Background, Scene, SceneObject, SceneSpec, corrupt};

    fn gate(output: OutputSettings) -> CameraGate {
        let mut params = GateParams::default();
        params.trigger.max_fps = 0.0;
        let metrics = Arc::new(GateMetrics::new(
            &mut prometheus_client::registry::Registry::default(),
        ));
        let camera = Camera {
            id: "cam".into(),
            region: "seoul".into(),
            latitude: 37.5,
            longitude: 127.0,
        };
        CameraGate::new(camera, Vec::new(), &params, output, metrics).expect("gate")
    }

    /// A gray 320x180 frame; from frame 1 a white box fills its left half.
    fn scene() -> Scene {
        scene_of(320, 180)
    }

    /// A gray frame; from frame 1 a white box fills its left half.
    fn scene_of(width: u32, height: u32) -> Scene {
        let mut spec = SceneSpec {
            width,
            height,
            noise: 0,
            background: Background::Flat { level: 60 },
            ..SceneSpec::default()
        };
        spec.objects.push(SceneObject {
            enter: 1,
            leave: None,
            x: 0.0,
            y: 0.0,
            vx: 0.0,
            vy: 0.0,
            width: width / 2,
            height,
            color: [250, 250, 250],
            sprite: None,
            ..SceneObject::default()
        });
        Scene::new(spec).expect("scene")
    }

    fn run(gate: &mut CameraGate, jpegs: &[Vec<u8>]) -> Vec<Option<Frame>> {
        jpegs
            .iter()
            .enumerate()
            .map(|(n, jpeg)| {
                let at = Duration::from_millis(33 * n as u64);
                gate.process(jpeg.clone(), at, Utc::now()).expect("frame")
            })
            .collect()
    }

    #[test]
    fn forwarded_frames_keep_their_jpeg_or_are_scaled_to_the_limit() {
        let scene = scene();
        let jpegs: Vec<Vec<u8>> = (0..3).map(|n| scene.jpeg(n).expect("jpeg")).collect();
        // Frame 0 learns the background, 1 and 2 move: trigger_frames = 2.
        let out = run(&mut gate(OutputSettings::default()), &jpegs);
        assert!(out[0].is_none() && out[1].is_none());
        let frame = out[2].as_ref().expect("frame 2 forwarded");
        assert_eq!((frame.sequence, &frame.jpeg), (2, &jpegs[2]));

        let small = OutputSettings {
            max_width: Some(160),
            max_height: None,
            quality: 80,
        };
        let out = run(&mut gate(small), &jpegs);
        let frame = out[2].as_ref().expect("frame 2 forwarded");
        let image = image::load_from_memory_with_format(&frame.jpeg, ImageFormat::Jpeg)
            .expect("re-encoded JPEG")
            .to_rgb8();
        assert_eq!(image.dimensions(), (160, 90));
        // Re-encoded from the colour frame, not from the gate's luma.
        let left = image.get_pixel(20, 45).0;
        let right = image.get_pixel(140, 45).0;
        assert!(left.iter().all(|&c| c > 240), "left half white: {left:?}");
        assert!(
            right.iter().all(|&c| c.abs_diff(60) <= 3),
            "right gray: {right:?}"
        );
    }

    #[test]
    fn a_reduced_decode_still_limits_the_frame_by_its_own_size() {
        // 1280x720 is 8x the 160x90 work size: the gate decodes it DC-only
        // to 160x90, but the size limit applies to the 1280x720 JPEG.
        let scene = scene_of(1280, 720);
        let jpegs: Vec<Vec<u8>> = (0..3).map(|n| scene.jpeg(n).expect("jpeg")).collect();
        let limit = OutputSettings {
            max_width: Some(640),
            max_height: None,
            quality: 80,
        };
        let mut gate = gate(limit);
        let out = run(&mut gate, &jpegs);
        assert_eq!(gate.detector.work_image().1, 160);
        let frame = out[2].as_ref().expect("frame 2 forwarded");
        let image = image::load_from_memory_with_format(&frame.jpeg, ImageFormat::Jpeg)
            .expect("re-encoded JPEG");
        assert_eq!((image.width(), image.height()), (640, 360));
    }

    #[test]
    fn a_corrupt_frame_is_an_error_and_the_stream_goes_on() {
        let scene = scene();
        let mut gate = gate(OutputSettings::default());
        let first = scene.jpeg(0).expect("jpeg");
        assert!(
            gate.process(first.clone(), Duration::ZERO, Utc::now())
                .expect("frame")
                .is_none()
        );
        let mut bad = scene.jpeg(1).expect("jpeg");
        corrupt(&mut bad, 3);
        assert!(matches!(
            gate.process(bad, Duration::from_millis(33), Utc::now()),
            Err(GateError::Corrupt(_))
        ));
        // The still frame again: no motion against the kept background.
        assert!(
            gate.process(first, Duration::from_millis(66), Utc::now())
                .expect("frame")
                .is_none()
        );
        assert_eq!(gate.sequence, 3, "every frame read takes a sequence number");
    }
}
