//! Turning `[yolo]` head logits into boxes, and non-maximum suppression
//! (pure functions on plain f32 data).
//!
//! Decoding follows Darknet's `yolo_layer.c` (for cell column `i`, row `j`,
//! anchor `n` of a `W x H` head):
//! `x = (i + sigmoid(tx) * s - (s - 1) / 2) / W`, likewise `y`;
//! `w = exp(tw) * anchor_w / net_w`, likewise `h`;
//! `confidence = sigmoid(to) * sigmoid(tc)`, kept when `> threshold`.
//! With `new_coords=1` the inputs are already logistic: no sigmoid, and
//! `w = 4 * tw^2 * anchor_w / net_w`.
//!
//! NMS is greedy and per class, like Darknet's `diounms_sort`: candidates in
//! descending confidence suppress later ones whose overlap exceeds the
//! threshold. Darknet's stock cfgs (`nms_kind=greedynms`) measure overlap with
//! DIoU, `IoU - (d^2 / c^2)^0.6`; plain IoU is the classic rule (OpenCV).

/// A box normalized to `[0, 1]`: centre and size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NormBox {
    /// Centre x.
    pub x: f32,
    /// Centre y.
    pub y: f32,
    /// Width.
    pub w: f32,
    /// Height.
    pub h: f32,
}

impl NormBox {
    /// Converts to source-image pixels (left, top, width, height), clamped to the image.
    pub fn to_pixels(&self, image_width: u32, image_height: u32) -> PixelBox {
        let (iw, ih) = (image_width as f32, image_height as f32);
        let left = ((self.x - self.w / 2.0) * iw).clamp(0.0, iw);
        let right = ((self.x + self.w / 2.0) * iw).clamp(0.0, iw);
        let top = ((self.y - self.h / 2.0) * ih).clamp(0.0, ih);
        let bottom = ((self.y + self.h / 2.0) * ih).clamp(0.0, ih);
        PixelBox {
            x: left,
            y: top,
            width: right - left,
            height: bottom - top,
        }
    }
}

/// A box in source-image pixels: left, top, width, height.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PixelBox {
    /// Left edge.
    pub x: f32,
    /// Top edge.
    pub y: f32,
    /// Width.
    pub width: f32,
    /// Height.
    pub height: f32,
}

/// One class hypothesis for one box.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    /// Class index.
    pub class_id: usize,
    /// `objectness * class probability`.
    pub confidence: f32,
    /// The box (normalized to the network input after [`decode`]).
    pub bbox: NormBox,
}

/// What the decoder needs to know about one `[yolo]` head.
#[derive(Debug, Clone, PartialEq)]
pub struct HeadLayout {
    /// The head's anchors (after `mask=`), `(width, height)` in network-input pixels.
    pub anchors: Vec<(f32, f32)>,
    /// Number of classes.
    pub classes: usize,
    /// `scale_x_y=`.
    pub scale_x_y: f32,
    /// `new_coords=1`.
    pub new_coords: bool,
}

/// One head's output for a batch: `batch x (anchors * (5 + classes)) x height x width`
/// floats, row-major (the layout of an NCHW tensor).
#[derive(Debug, Clone, Copy)]
pub struct HeadOutput<'a> {
    /// How to read the channels.
    pub layout: &'a HeadLayout,
    /// The raw values.
    pub data: &'a [f32],
    /// Images in the batch.
    pub batch: usize,
    /// Grid rows.
    pub height: usize,
    /// Grid columns.
    pub width: usize,
}

/// The overlap measure used by [`nms`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NmsKind {
    /// Intersection over union.
    Iou,
    /// Darknet's DIoU (`greedynms`): `IoU - (d^2/c^2)^`[`DIOU_BETA`], `d` the
    /// centre distance, `c` the diagonal of the enclosing box.
    #[default]
    Diou,
}

/// The exponent of the DIoU penalty in Darknet's greedy NMS.
pub const DIOU_BETA: f32 = 0.6;

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// Decodes every head into candidates whose confidence exceeds `threshold`,
/// per image of the batch. Boxes are normalized to the network input.
///
/// # Panics
/// When a head's `data` length does not match its declared shape, or the
/// heads disagree on the batch size.
pub fn decode(
    heads: &[HeadOutput<'_>],
    net_width: usize,
    net_height: usize,
    threshold: f32,
) -> Vec<Vec<Candidate>> {
    let batch = heads.first().map_or(0, |h| h.batch);
    let mut out = vec![Vec::new(); batch];
    for head in heads {
        assert_eq!(head.batch, batch, "all heads must have the same batch size");
        let layout = head.layout;
        let entries = 5 + layout.classes;
        let plane = head.height * head.width;
        let per_image = layout.anchors.len() * entries * plane;
        assert_eq!(
            head.data.len(),
            batch * per_image,
            "head data does not match (batch {batch}, {} anchors x {entries}, {}x{})",
            layout.anchors.len(),
            head.height,
            head.width
        );
        for (b, candidates) in out.iter_mut().enumerate() {
            let image = &head.data[b * per_image..(b + 1) * per_image];
            for row in 0..head.height {
                for col in 0..head.width {
                    let cell = row * head.width + col;
                    for n in 0..layout.anchors.len() {
                        let at = |k: usize| image[(n * entries + k) * plane + cell];
                        let place = CellPlace {
                            col,
                            row,
                            anchor: n,
                        };
                        decode_cell(
                            head,
                            place,
                            at,
                            (net_width, net_height),
                            threshold,
                            candidates,
                        );
                    }
                }
            }
        }
    }
    out
}

/// Where a cell sits in its head: column, row and anchor (after `mask=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct CellPlace {
    col: usize,
    row: usize,
    anchor: usize,
}

/// Decodes one anchor of one grid cell, whose entry `k` (`tx, ty, tw, th,
/// objectness, classes...`) is `at(k)`, into `candidates`. Both [`decode`]
/// and [`decode_cells`] run this, so they give the same numbers.
fn decode_cell(
    head: &HeadOutput<'_>,
    place: CellPlace,
    at: impl Fn(usize) -> f32,
    (net_width, net_height): (usize, usize),
    threshold: f32,
    candidates: &mut Vec<Candidate>,
) {
    let layout = head.layout;
    let s = layout.scale_x_y;
    let activate = |v: f32| if layout.new_coords { v } else { sigmoid(v) };
    let objectness = activate(at(4));
    if objectness <= threshold {
        return;
    }
    let (anchor_w, anchor_h) = layout.anchors[place.anchor];
    let (tx, ty, tw, th) = (at(0), at(1), at(2), at(3));
    let sx = activate(tx) * s - 0.5 * (s - 1.0);
    let sy = activate(ty) * s - 0.5 * (s - 1.0);
    let (w, h) = if layout.new_coords {
        (tw * tw * 4.0 * anchor_w, th * th * 4.0 * anchor_h)
    } else {
        (tw.exp() * anchor_w, th.exp() * anchor_h)
    };
    let bbox = NormBox {
        x: (place.col as f32 + sx) / head.width as f32,
        y: (place.row as f32 + sy) / head.height as f32,
        w: w / net_width as f32,
        h: h / net_height as f32,
    };
    for class_id in 0..layout.classes {
        let confidence = objectness * activate(at(5 + class_id));
        if confidence > threshold {
            candidates.push(Candidate {
                class_id,
                confidence,
                bbox,
            });
        }
    }
}

/// The activated objectness of a raw entry, as [`decode`] computes it: the
/// sigmoid, or the value itself with `new_coords=1`. A cell can only give a
/// candidate when this exceeds the threshold.
pub fn objectness(layout: &HeadLayout, logit: f32) -> f32 {
    if layout.new_coords {
        logit
    } else {
        sigmoid(logit)
    }
}

/// One anchor of one grid cell of a head, picked for decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CellIndex {
    /// Image of the batch.
    pub image: usize,
    /// `row * width + col` in the head's grid.
    pub cell: usize,
    /// Anchor (after `mask=`).
    pub anchor: usize,
}

/// Some cells of one head's output: the raw entries (`5 + classes` each) of
/// the cells whose objectness passed the threshold, in the order [`decode`]
/// visits them (image, row, column, anchor). What
/// [`gather_cells`](crate::detector::gather_cells) copies from a device
/// instead of the whole head.
#[derive(Debug, Clone, PartialEq)]
pub struct HeadCells {
    /// Images in the batch.
    pub batch: usize,
    /// Grid rows.
    pub height: usize,
    /// Grid columns.
    pub width: usize,
    /// The picked cells.
    pub cells: Vec<CellIndex>,
    /// `cells.len() * (5 + classes)` raw entries, one row per cell.
    pub values: Vec<f32>,
}

/// [`decode`] for heads of which only some cells were copied: the same
/// candidates, in the same order, as long as every cell whose
/// [`objectness`] exceeds `threshold` is among them.
///
/// # Panics
/// When a head's `values` do not hold `5 + classes` entries per cell, or the
/// heads disagree on the batch size.
pub fn decode_cells(
    heads: &[(&HeadLayout, &HeadCells)],
    net_width: usize,
    net_height: usize,
    threshold: f32,
) -> Vec<Vec<Candidate>> {
    let batch = heads.first().map_or(0, |(_, h)| h.batch);
    let mut out = vec![Vec::new(); batch];
    for (layout, cells) in heads {
        assert_eq!(
            cells.batch, batch,
            "all heads must have the same batch size"
        );
        let entries = 5 + layout.classes;
        assert_eq!(
            cells.values.len(),
            cells.cells.len() * entries,
            "{} cells need {entries} entries each",
            cells.cells.len()
        );
        let head = HeadOutput {
            layout,
            data: &[],
            batch,
            height: cells.height,
            width: cells.width,
        };
        for (index, row) in cells.cells.iter().zip(cells.values.chunks_exact(entries)) {
            let place = CellPlace {
                col: index.cell % cells.width,
                row: index.cell / cells.width,
                anchor: index.anchor,
            };
            decode_cell(
                &head,
                place,
                |k| row[k],
                (net_width, net_height),
                threshold,
                &mut out[index.image],
            );
        }
    }
    out
}

/// Length of the overlap of two 1-D segments given by centre and size (Darknet's `overlap`).
fn overlap(c1: f32, w1: f32, c2: f32, w2: f32) -> f32 {
    let left = (c1 - w1 / 2.0).max(c2 - w2 / 2.0);
    let right = (c1 + w1 / 2.0).min(c2 + w2 / 2.0);
    right - left
}

/// Intersection over union (Darknet's `box_iou`).
pub fn iou(a: &NormBox, b: &NormBox) -> f32 {
    let w = overlap(a.x, a.w, b.x, b.w);
    let h = overlap(a.y, a.h, b.y, b.h);
    let intersection = if w <= 0.0 || h <= 0.0 { 0.0 } else { w * h };
    let union = a.w * a.h + b.w * b.h - intersection;
    if union <= 0.0 {
        0.0
    } else {
        intersection / union
    }
}

/// Darknet's `box_diou`: `IoU - (d^2/c^2)^0.6`, `d` the distance between the
/// centres, `c` the diagonal of the smallest box enclosing both.
pub fn diou(a: &NormBox, b: &NormBox) -> f32 {
    let left = (a.x - a.w / 2.0).min(b.x - b.w / 2.0);
    let right = (a.x + a.w / 2.0).max(b.x + b.w / 2.0);
    let top = (a.y - a.h / 2.0).min(b.y - b.h / 2.0);
    let bottom = (a.y + a.h / 2.0).max(b.y + b.h / 2.0);
    let c = (right - left).powi(2) + (bottom - top).powi(2);
    let iou = iou(a, b);
    if c == 0.0 {
        return iou;
    }
    let d = (a.x - b.x).powi(2) + (a.y - b.y).powi(2);
    iou - (d / c).powf(DIOU_BETA)
}

/// Greedy per-class NMS: within each class, in descending confidence, a
/// candidate is kept unless its overlap (by `kind`) with an already kept one
/// exceeds `threshold`. The result is sorted by descending confidence.
pub fn nms(candidates: Vec<Candidate>, kind: NmsKind, threshold: f32) -> Vec<Candidate> {
    let mut sorted = candidates;
    sorted.sort_by(|a, b| b.confidence.total_cmp(&a.confidence));
    let measure = match kind {
        NmsKind::Iou => iou,
        NmsKind::Diou => diou,
    };
    let mut kept: Vec<Candidate> = Vec::new();
    for candidate in sorted {
        let suppressed = kept.iter().any(|k| {
            k.class_id == candidate.class_id && measure(&k.bbox, &candidate.bbox) > threshold
        });
        if !suppressed {
            kept.push(candidate);
        }
    }
    kept
}
