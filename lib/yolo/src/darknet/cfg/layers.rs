//! The parsed cfg's types: the network ([`NetConfig`](super::NetConfig)) holds
//! one [`LayerConfig`] per layer section, each with its own config struct.

use crate::activation::Activation;

/// One layer section.
#[derive(Debug, Clone, PartialEq)]
pub enum LayerConfig {
    /// `[convolutional]` / `[conv]`.
    Convolutional(ConvConfig),
    /// `[maxpool]` / `[max]`.
    MaxPool(MaxPoolConfig),
    /// `[route]`.
    Route(RouteConfig),
    /// `[shortcut]`.
    Shortcut(ShortcutConfig),
    /// `[upsample]`.
    Upsample(UpsampleConfig),
    /// `[yolo]`.
    Yolo(YoloConfig),
}

impl LayerConfig {
    /// The 1-based cfg line of the section header.
    pub fn line(&self) -> usize {
        match self {
            LayerConfig::Convolutional(c) => c.line,
            LayerConfig::MaxPool(c) => c.line,
            LayerConfig::Route(c) => c.line,
            LayerConfig::Shortcut(c) => c.line,
            LayerConfig::Upsample(c) => c.line,
            LayerConfig::Yolo(c) => c.line,
        }
    }

    /// The section name as Darknet spells it.
    pub fn section_name(&self) -> &'static str {
        match self {
            LayerConfig::Convolutional(_) => "convolutional",
            LayerConfig::MaxPool(_) => "maxpool",
            LayerConfig::Route(_) => "route",
            LayerConfig::Shortcut(_) => "shortcut",
            LayerConfig::Upsample(_) => "upsample",
            LayerConfig::Yolo(_) => "yolo",
        }
    }
}

/// `[convolutional]`: convolution, optional batch norm, activation.
#[derive(Debug, Clone, PartialEq)]
pub struct ConvConfig {
    /// Section line.
    pub line: usize,
    /// Output channels (`filters=`, default 1).
    pub filters: usize,
    /// Square kernel size (`size=`, default 1).
    pub size: usize,
    /// Stride (`stride=`, default 1).
    pub stride: usize,
    /// Zero padding on each side: `size/2` when `pad=1`, else `padding=` (default 0).
    pub padding: usize,
    /// Channel groups (`groups=`, default 1).
    pub groups: usize,
    /// `batch_normalize=1`: the weights file carries BN scales, means and variances.
    pub batch_normalize: bool,
    /// `activation=` (Darknet's default is `logistic`).
    pub activation: Activation,
}

/// `[maxpool]` with Darknet semantics: padding cells are ignored, not zero.
#[derive(Debug, Clone, PartialEq)]
pub struct MaxPoolConfig {
    /// Section line.
    pub line: usize,
    /// Window size (`size=`, default `stride`).
    pub size: usize,
    /// Stride (`stride=`, default 1).
    pub stride: usize,
    /// Total padding (`padding=`, default `size-1`); the window starts at `-padding/2`.
    pub padding: usize,
}

/// `[route]`: concatenation of (slices of) earlier outputs along channels.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteConfig {
    /// Section line.
    pub line: usize,
    /// Absolute indices of the source layers.
    pub layers: Vec<usize>,
    /// `groups=` (default 1): each input is split in this many channel groups...
    pub groups: usize,
    /// `group_id=` (default 0): ...and only this group is taken.
    pub group_id: usize,
}

/// `[shortcut]`: element-wise sum of the previous output and earlier outputs.
#[derive(Debug, Clone, PartialEq)]
pub struct ShortcutConfig {
    /// Section line.
    pub line: usize,
    /// Absolute indices of the added layers (`from=`).
    pub from: Vec<usize>,
    /// `activation=` applied to the sum (default `linear`).
    pub activation: Activation,
}

/// `[upsample]`: nearest-neighbour upsampling.
#[derive(Debug, Clone, PartialEq)]
pub struct UpsampleConfig {
    /// Section line.
    pub line: usize,
    /// Integer factor (`stride=`, default 2).
    pub stride: usize,
}

/// `[yolo]`: a detection head; at inference it passes its input through.
#[derive(Debug, Clone, PartialEq)]
pub struct YoloConfig {
    /// Section line.
    pub line: usize,
    /// Indices into `anchors` this head predicts (`mask=`, default all).
    pub mask: Vec<usize>,
    /// All `num` anchors as (width, height) in network-input pixels.
    pub anchors: Vec<(f32, f32)>,
    /// Number of classes (`classes=`, default 20).
    pub classes: usize,
    /// Box-centre scaling (`scale_x_y=`, default 1).
    pub scale_x_y: f32,
    /// `new_coords=1` (Scaled-YOLOv4 style): the input is already logistic and
    /// sizes decode as `4 * t^2 * anchor`.
    pub new_coords: bool,
    /// `nms_kind=` as written (`greedynms`, `diounms`, `cornersnms`, default `default`).
    pub nms_kind: String,
    /// `beta_nms=` (default 0.6).
    pub beta_nms: f32,
}

impl YoloConfig {
    /// The anchors this head uses, in mask order.
    pub fn masked_anchors(&self) -> Vec<(f32, f32)> {
        self.mask.iter().map(|&m| self.anchors[m]).collect()
    }

    /// Channels the head expects from its input: `mask.len() * (5 + classes)`.
    pub fn expected_channels(&self) -> usize {
        self.mask.len() * (5 + self.classes)
    }
}
