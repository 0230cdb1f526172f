//! The model behind the batcher: the Darknet detector of [`safecity_yolo`],
//! and what one detection looks like to the function.

use std::sync::Arc;

use image::RgbImage;
use safecity_events::BoundingBox;
use safecity_yolo::detector::{DetectError, Detector, DetectorOptions, ObjectDetection};
use safecity_yolo::device::{self, DeviceError};
use safecity_yolo::error::LoadError;
use safecity_yolo::preprocess::ImageLimits;

use crate::batcher::BatchModel;
use crate::config::DetectorConfig;

/// One object the model found in a frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Sighting {
    /// Index of the class in the model's names.
    pub class_id: usize,
    /// The class name.
    pub class_name: String,
    /// Confidence in 0..=1.
    pub confidence: f32,
    /// Left, top, width, height in pixels of the frame.
    pub bounding_box: BoundingBox,
}

impl From<ObjectDetection> for Sighting {
    /// Both sides use the same convention: left, top, width, height in pixels
    /// of the analysed (source) image.
    fn from(detection: ObjectDetection) -> Self {
        Sighting {
            class_id: detection.class_id,
            class_name: detection.class_name,
            confidence: detection.confidence,
            bounding_box: BoundingBox {
                x: detection.bbox.x,
                y: detection.bbox.y,
                width: detection.bbox.width,
                height: detection.bbox.height,
            },
        }
    }
}

/// The model could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The device cannot be opened.
    #[error("SAFECITY_DETECTOR_DEVICE: {0}")]
    Device(#[from] DeviceError),
    /// The files do not make a model.
    #[error("loading the model (cfg {cfg}, weights {weights}, names {names}): {source}")]
    Load {
        /// The cfg path.
        cfg: String,
        /// The weights path.
        weights: String,
        /// The names path.
        names: String,
        /// What went wrong.
        #[source]
        source: Box<LoadError>,
    },
}

/// The YOLO detector as a batch model: one forward pass per batch.
#[derive(Debug, Clone)]
pub struct YoloModel {
    detector: Arc<Detector>,
}

impl YoloModel {
    /// Wraps a loaded detector.
    pub fn new(detector: Detector) -> Self {
        YoloModel {
            detector: Arc::new(detector),
        }
    }

    /// Loads the model the configuration names, on its device.
    pub fn load(config: &DetectorConfig) -> Result<Self, ModelError> {
        let device = device::select(config.device)?;
        let options = DetectorOptions {
            confidence_threshold: config.confidence,
            nms_threshold: config.nms,
            limits: ImageLimits {
                max_bytes: config.max_frame_bytes,
                max_pixels: config.max_frame_pixels,
            },
            ..DetectorOptions::default()
        };
        let files = &config.model;
        let detector =
            Detector::from_files(&files.cfg, &files.weights, &files.names, device, options)
                .map_err(|source| ModelError::Load {
                    cfg: files.cfg.display().to_string(),
                    weights: files.weights.display().to_string(),
                    names: files.names.display().to_string(),
                    source: Box::new(source),
                })?;
        Ok(YoloModel::new(detector))
    }

    /// The model's class names, indexed by class id.
    pub fn class_names(&self) -> &[String] {
        self.detector.class_names()
    }

    /// The wrapped detector.
    pub fn detector(&self) -> &Detector {
        &self.detector
    }
}

impl BatchModel for YoloModel {
    type Item = RgbImage;
    type Output = Vec<Sighting>;
    type Error = DetectError;

    fn run(&self, images: &[RgbImage]) -> Result<Vec<Vec<Sighting>>, DetectError> {
        Ok(self
            .detector
            .detect(images)?
            .into_iter()
            .map(|found| found.into_iter().map(Sighting::from).collect())
            .collect())
    }
}
