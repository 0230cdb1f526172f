//! The detector facade: images in, labelled boxes in source pixels out.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use image::RgbImage;
use rayon::prelude::*;

use crate::darknet::cfg::NetConfig;
use crate::error::LoadError;
use crate::kernels::KernelChoice;
use crate::model::{Darknet, LoadOptions};
use crate::postprocess::{self, CellIndex, HeadCells, HeadLayout, HeadOutput, NmsKind};
use crate::preprocess::{self, ImageLimits, Placement, Resize};

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
        self.detect_input(&input, &placements)
    }

    /// Runs the network and the post-processing on an already prepared input
    /// batch (`(N, C, H, W)` on the model's device, as
    /// [`preprocess::batch`] makes it), one [`Placement`] per image.
    ///
    /// On the CPU with [`KernelChoice::Native`] the whole head logits are
    /// decoded on the host. Otherwise (a CUDA device, or the portable path)
    /// only the objectness of every cell, then the entries of the cells that
    /// pass the threshold, are copied to the host ([`gather_cells`]): the
    /// same candidates, without moving the whole heads off the device.
    pub fn detect_input(
        &self,
        input: &Tensor,
        placements: &[Placement],
    ) -> Result<Vec<Vec<ObjectDetection>>, DetectError> {
        let batch = input.dim(0)?;
        if placements.len() != batch {
            return Err(DetectError::Candle(candle_core::Error::Msg(format!(
                "{} placements for a batch of {batch}",
                placements.len()
            ))));
        }
        let (width, height) = self.model.input_size();
        let threshold = self.options.confidence_threshold;
        let logits = self.model.forward_heads(input)?;
        let heads = self.model.heads();
        let on_host = self.model.device().is_cpu() && self.model.kernels() == KernelChoice::Native;
        let per_image = if on_host {
            let mut data = Vec::with_capacity(logits.len());
            for tensor in &logits {
                let (n, _, h, w) = tensor.dims4()?;
                let values = tensor.flatten_all()?.to_vec1::<f32>()?;
                data.push((values, n, h, w));
            }
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
            postprocess::decode(&outputs, width, height, threshold)
        } else {
            let cells = heads
                .iter()
                .zip(&logits)
                .map(|(head, tensor)| gather_cells(tensor, head.layout(), threshold))
                .collect::<candle_core::Result<Vec<_>>>()?;
            let pairs: Vec<_> = heads.iter().map(|h| h.layout()).zip(&cells).collect();
            postprocess::decode_cells(&pairs, width, height, threshold)
        };
        Ok(per_image
            .into_iter()
            .zip(placements)
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

/// Copies from a head's logits (`(N, anchors * (5 + classes), H, W)`, on any
/// device) only what decoding at `threshold` needs: first the objectness
/// entry of every cell (`N * anchors * H * W` values), then, for the cells
/// whose [`postprocess::objectness`] exceeds the threshold, their
/// `5 + classes` entries, gathered on the device with `index_select`. The
/// cells come in [`postprocess::decode`]'s order, so
/// [`postprocess::decode_cells`] gives exactly its candidates.
pub fn gather_cells(
    logits: &Tensor,
    layout: &HeadLayout,
    threshold: f32,
) -> candle_core::Result<HeadCells> {
    let (batch, channels, height, width) = logits.dims4()?;
    let anchors = layout.anchors.len();
    let entries = 5 + layout.classes;
    if channels != anchors * entries {
        candle_core::bail!(
            "head has {channels} channels; {anchors} anchors x (5 + {} classes) need {}",
            layout.classes,
            anchors * entries
        );
    }
    let plane = height * width;
    let logits = logits
        .to_dtype(DType::F32)?
        .reshape((batch, anchors, entries, plane))?;
    // (N, anchors, plane) objectness logits: the only full-size copy, 1/entries of the head.
    let objectness = logits.narrow(2, 4, 1)?.flatten_all()?.to_vec1::<f32>()?;
    let mut cells = Vec::new();
    let mut rows = Vec::new();
    for image in 0..batch {
        for cell in 0..plane {
            for anchor in 0..anchors {
                let row = (image * anchors + anchor) * plane + cell;
                if postprocess::objectness(layout, objectness[row]) > threshold {
                    cells.push(CellIndex {
                        image,
                        cell,
                        anchor,
                    });
                    rows.push(u32::try_from(row).map_err(candle_core::Error::wrap)?);
                }
            }
        }
    }
    let values = if rows.is_empty() {
        Vec::new()
    } else {
        let count = rows.len();
        let ids = Tensor::from_vec(rows, count, logits.device())?;
        logits
            .transpose(2, 3)?
            .reshape((batch * anchors * plane, entries))?
            .index_select(&ids, 0)?
            .flatten_all()?
            .to_vec1::<f32>()?
    };
    Ok(HeadCells {
        batch,
        height,
        width,
        cells,
        values,
    })
}

/// Parses a Darknet names file: one class name per non-empty line, trimmed.
pub fn parse_names(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}
