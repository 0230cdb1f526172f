//! One camera's gate: JPEG in, [`Frame`] out when it is worth a detector.
//!
//! decode (`image`'s JPEG decoder, into a reused buffer) -> [`MotionDetector`]
//! -> [`Trigger`] -> optional re-encode to a maximum size -> [`Frame`].
//! Synchronous and CPU-bound: the camera task runs it on the blocking pool.

use std::io::Cursor;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use image::codecs::jpeg::JpegDecoder;
use image::{ColorType, ImageDecoder, RgbImage, imageops};
use safecity_runtime::{Camera, Frame};

use crate::metrics::{CameraLabel, GateMetrics, Stage, StageLabel};
use crate::motion::{ImageView, MotionDetector, MotionError};
use crate::registry::GateParams;
use crate::scene::encode_jpeg;
use crate::trigger::{Decision, Trigger, TriggerError};

/// Why a frame was not processed.
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    /// The JPEG did not decode (skipped, counted as corrupt).
    #[error("corrupt frame: {0}")]
    Corrupt(String),
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
    /// A gate for `camera` with validated parameters.
    pub fn new(
        camera: Camera,
        params: &GateParams,
        output: OutputSettings,
        metrics: Arc<GateMetrics>,
    ) -> Result<Self, GateError> {
        Ok(CameraGate {
            label: GateMetrics::camera(&camera.id),
            camera,
            detector: MotionDetector::new(params.motion.clone())?,
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
        let (width, height, channels) = decode_into(&jpeg, &mut self.pixels)?;
        self.observe(Stage::Decode, started);
        let started = Instant::now();
        let measurement = self.detector.process(ImageView {
            width,
            height,
            channels,
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
        let jpeg = if self.too_large(width, height) {
            let started = Instant::now();
            let bytes = self.reencode(width, height, channels)?;
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

    fn reencode(&self, width: u32, height: u32, channels: u8) -> Result<Vec<u8>, GateError> {
        let rgb: Vec<u8> = if channels == 3 {
            self.pixels.clone()
        } else {
            self.pixels.iter().flat_map(|&v| [v, v, v]).collect()
        };
        let image = RgbImage::from_raw(width, height, rgb)
            .ok_or_else(|| GateError::Corrupt("pixel buffer size mismatch".into()))?;
        let max_w = self.output.max_width.unwrap_or(width).max(1);
        let max_h = self.output.max_height.unwrap_or(height).max(1);
        let scale = (f64::from(max_w) / f64::from(width)).min(f64::from(max_h) / f64::from(height));
        let w = ((f64::from(width) * scale).round() as u32).max(1);
        let h = ((f64::from(height) * scale).round() as u32).max(1);
        let small = imageops::resize(&image, w, h, imageops::FilterType::Triangle);
        encode_jpeg(&small, self.output.quality).map_err(|e| GateError::Corrupt(e.to_string()))
    }
}

/// Decodes a JPEG into `pixels` (resized as needed, reused across frames):
/// (width, height, channels) with 1 = gray, 3 = RGB.
pub fn decode_into(jpeg: &[u8], pixels: &mut Vec<u8>) -> Result<(u32, u32, u8), GateError> {
    let corrupt = |e: image::ImageError| GateError::Corrupt(e.to_string());
    let decoder = JpegDecoder::new(Cursor::new(jpeg)).map_err(corrupt)?;
    let (width, height) = decoder.dimensions();
    let channels = match decoder.color_type() {
        ColorType::L8 => 1,
        ColorType::Rgb8 => 3,
        other => {
            return Err(GateError::Corrupt(format!(
                "unsupported colour type {other:?}"
            )));
        }
    };
    let bytes = usize::try_from(decoder.total_bytes())
        .map_err(|_| GateError::Corrupt("image too large".into()))?;
    pixels.resize(bytes, 0);
    decoder.read_image(pixels).map_err(corrupt)?;
    Ok((width, height, channels))
}
