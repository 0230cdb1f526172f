//! The detector facade: images in, labelled boxes in source pixels out.

use std::path::Path;

use candle_core::Device;
use image::RgbImage;
use rayon::prelude::*;

use crate::darknet::cfg::NetConfig;
use crate::error::LoadError;
use crate::model::{Darknet, LoadOptions};
use crate::postprocess::{self, HeadOutput, NmsKind};
use crate::preprocess::{self, ImageLimits, Resize};

pub use crate::postprocess::PixelBox;

/// Thresholds and input handling.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DetectorOptions {
    /// Minimum `objectness * class probability` (Darknet default 0.25).
    pub confidence_threshold: f32,
    /// Overlap above which NMS suppresses a box (Darknet default 0.45).
    pub nms_threshold: f32,
    /// Overlap measure for NMS (Darknet's stock cfgs: DIoU).
    pub nms: NmsKind,
    /// How images are fitted to the network input.
    pub resize: Resize,
    /// Limits on encoded images (for callers that decode with [`preprocess::decode`]).
    pub limits: ImageLimits,
}

impl DetectorOptions {
    /// Checks that the thresholds are usable: confidence in `[0, 1)`, NMS in `(0, 1]`.
    pub fn validate(&self) -> Result<(), LoadError> {
        if !(0.0..1.0).contains(&self.confidence_threshold) {
            return Err(LoadError::InvalidOption {
                name: "confidence_threshold",
                value: self.confidence_threshold,
                expected: "a number in [0, 1)",
            });
        }
        if !(self.nms_threshold > 0.0 && self.nms_threshold <= 1.0) {
            return Err(LoadError::InvalidOption {
                name: "nms_threshold",
                value: self.nms_threshold,
                expected: "a number in (0, 1]",
            });
        }
        Ok(())
    }
}

impl Default for DetectorOptions {
    fn default() -> Self {
        DetectorOptions {
            confidence_threshold: 0.25,
            nms_threshold: 0.45,
            nms: NmsKind::Diou,
            resize: Resize::Stretch,
            limits: ImageLimits::default(),
        }
    }
}

/// One detected object.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectDetection {
    /// Index into the class names.
    pub class_id: usize,
    /// The class name from the names file.
    pub class_name: String,
    /// `objectness * class probability`.
    pub confidence: f32,
    /// In source-image pixels: left, top, width, height (clamped to the image).
    pub bbox: PixelBox,
}

/// Why a detection run failed.
#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    /// An image has no pixels.
    #[error("image {index} is empty (0x0)")]
    EmptyImage {
        /// Its position in the batch.
        index: usize,
    },
    /// The forward pass failed.
    #[error("forward pass failed: {0}")]
    Candle(#[from] candle_core::Error),
}

/// A loaded network with its class names and options.
#[derive(Debug, Clone)]
pub struct Detector {
    model: Darknet,
    class_names: Vec<String>,
    options: DetectorOptions,
}

impl Detector {
    /// Builds a detector from the cfg text, the weights bytes and one class
    /// name per class; the number of names must equal the cfg's `classes=`.
    pub fn load(
        cfg_text: &str,
        weights: &[u8],
        class_names: Vec<String>,
        device: Device,
        options: DetectorOptions,
    ) -> Result<Detector, LoadError> {
        let cfg = NetConfig::parse(cfg_text)?;
        let model = Darknet::load_with(&cfg, weights, &device, &LoadOptions::default())?;
        Detector::from_model(model, class_names, options)
    }

    /// Wraps an already loaded model (e.g. one loaded with custom [`LoadOptions`]).
    pub fn from_model(
        model: Darknet,
        class_names: Vec<String>,
        options: DetectorOptions,
    ) -> Result<Detector, LoadError> {
        options.validate()?;
        if class_names.len() != model.num_classes() {
            return Err(LoadError::ClassCount {
                classes: model.num_classes(),
                names: class_names.len(),
            });
        }
        Ok(Detector {
            model,
            class_names,
            options,
        })
    }

    /// Reads the cfg, weights and names files and calls [`Detector::load`].
    pub fn from_files(
        cfg: &Path,
        weights: &Path,
        names: &Path,
        device: Device,
        options: DetectorOptions,
    ) -> Result<Detector, LoadError> {
        let read = |path: &Path| {
            std::fs::read(path).map_err(|source| LoadError::Io {
                path: path.to_path_buf(),
                source,
            })
        };
        let text = |path: &Path| {
            String::from_utf8(read(path)?).map_err(|_| LoadError::NotText {
                path: path.to_path_buf(),
            })
        };
        let cfg_text = text(cfg)?;
        let names_text = text(names)?;
        let weights = read(weights)?;
        Detector::load(
            &cfg_text,
            &weights,
            parse_names(&names_text),
            device,
            options,
        )
    }

    /// The class names, indexed by class id.
    pub fn class_names(&self) -> &[String] {
        &self.class_names
    }

    /// The options in use.
    pub fn options(&self) -> &DetectorOptions {
        &self.options
    }

    /// The network.
    pub fn model(&self) -> &Darknet {
        &self.model
    }

    /// Detects objects in every image with one forward pass for the whole
    /// batch; result `i` belongs to `images[i]`, sorted by descending confidence.
    pub fn detect(&self, images: &[RgbImage]) -> Result<Vec<Vec<ObjectDetection>>, DetectError> {
        if images.is_empty() {
            return Ok(Vec::new());
        }
        if let Some(index) = images
            .iter()
            .position(|i| i.width() == 0 || i.height() == 0)
        {
            return Err(DetectError::EmptyImage { index });
        }
        let (width, height) = self.model.input_size();
        let resize = self.options.resize;
        let (planes, placements): (Vec<_>, Vec<_>) = images
            .par_iter()
            .map(|image| preprocess::to_planar(image, width, height, resize))
            .unzip();
        let input = preprocess::batch(&planes, width, height, self.model.device())?;
        drop(planes);
        let logits = self.model.forward_heads(&input)?;
        let mut data = Vec::with_capacity(logits.len());
        for tensor in &logits {
            let (n, _, h, w) = tensor.dims4()?;
            let values = tensor
                .to_dtype(candle_core::DType::F32)?
                .flatten_all()?
                .to_vec1::<f32>()?;
            data.push((values, n, h, w));
        }
        let heads = self.model.heads();
        let outputs: Vec<HeadOutput<'_>> = heads
            .iter()
            .zip(&data)
            .map(|(head, (values, n, h, w))| HeadOutput {
                layout: head.layout(),
                data: values,
                batch: *n,
                height: *h,
                width: *w,
            })
            .collect();
        let per_image =
            postprocess::decode(&outputs, width, height, self.options.confidence_threshold);
        Ok(per_image
            .into_iter()
            .zip(&placements)
            .map(|(candidates, placement)| {
                // NMS in source-normalized coordinates, as Darknet does after correct_yolo_boxes.
                let candidates = candidates
                    .into_iter()
                    .map(|mut c| {
                        c.bbox = placement.to_source(c.bbox);
                        c
                    })
                    .collect();
                postprocess::nms(candidates, self.options.nms, self.options.nms_threshold)
                    .into_iter()
                    .map(|c| ObjectDetection {
                        class_id: c.class_id,
                        class_name: self.class_names[c.class_id].clone(),
                        confidence: c.confidence,
                        bbox: c
                            .bbox
                            .to_pixels(placement.source_width, placement.source_height),
                    })
                    .collect()
            })
            .collect())
    }
}

/// Parses a Darknet names file: one class name per non-empty line, trimmed.
pub fn parse_names(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}
