//! The Darknet `.cfg` parser.
//!
//! A cfg is a list of `[section]`s of `key=value` lines. The first section is
//! `[net]` (input size); every later section is one layer, numbered from 0.
//! Keys that only matter for training (`batch`, `jitter`, `ignore_thresh`, ...)
//! are accepted and ignored. Anything that would change inference and is not
//! implemented here — an unknown section, an unknown key, a value such as
//! `activation=swish` or `dilation=2` — is an error naming the section, its
//! line and the key, so a city never runs a silently different network.

use std::collections::HashSet;

use crate::activation::Activation;

/// A parse or validation failure, naming the section and line at fault.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CfgError {
    /// The cfg contains no sections at all.
    #[error("the cfg is empty: expected a [net] section followed by layers")]
    Empty,
    /// The first section is not `[net]`/`[network]`.
    #[error("[{section}] at line {line}: the first section must be [net]")]
    MissingNet {
        /// The name of the first section.
        section: String,
        /// Its line (1-based).
        line: usize,
    },
    /// `[net]` is not followed by any layer.
    #[error("[net] at line {line} is not followed by any layer section")]
    NoLayers {
        /// The line of `[net]`.
        line: usize,
    },
    /// A line that is neither a comment, a `[section]` header nor `key=value`.
    #[error("line {line}: expected `[section]` or `key=value`, found `{text}`")]
    Syntax {
        /// The offending line (1-based).
        line: usize,
        /// Its text, trimmed.
        text: String,
    },
    /// A section this implementation does not know (e.g. `[crop]`).
    #[error("[{section}] at line {line}: unsupported section")]
    UnknownSection {
        /// The section name, without brackets.
        section: String,
        /// Its line (1-based).
        line: usize,
    },
    /// A key Darknet does not define for this section, or one whose effect on
    /// inference is not implemented.
    #[error("[{section}] at line {line}: unknown key `{key}` (line {key_line})")]
    UnknownKey {
        /// The section name.
        section: String,
        /// The section's line.
        line: usize,
        /// The key.
        key: String,
        /// The key's own line.
        key_line: usize,
    },
    /// The same key twice in one section.
    #[error("[{section}] at line {line}: key `{key}` repeated at line {key_line}")]
    DuplicateKey {
        /// The section name.
        section: String,
        /// The section's line.
        line: usize,
        /// The key.
        key: String,
        /// The line of the repetition.
        key_line: usize,
    },
    /// A required key is absent.
    #[error("[{section}] at line {line}: missing required key `{key}`")]
    MissingKey {
        /// The section name.
        section: String,
        /// The section's line.
        line: usize,
        /// The key.
        key: &'static str,
    },
    /// A value that does not parse or is out of range.
    #[error("[{section}] at line {line}: bad value `{key}={value}`: expected {expected}")]
    BadValue {
        /// The section name.
        section: String,
        /// The section's line.
        line: usize,
        /// The key.
        key: String,
        /// The value as written.
        value: String,
        /// What would have been accepted.
        expected: String,
    },
    /// A `layers=`/`from=` entry that does not name an earlier layer.
    #[error(
        "[{section}] at line {line}: `{key}` refers to layer {reference}, which resolves to {resolved}; \
         layer {index} may only use layers 0..{index}"
    )]
    BadLayerRef {
        /// The section name.
        section: String,
        /// The section's line.
        line: usize,
        /// `layers` or `from`.
        key: &'static str,
        /// The reference as written (negative: relative).
        reference: i64,
        /// The absolute layer it resolves to.
        resolved: i64,
        /// The index of the layer holding the reference.
        index: usize,
    },
}

/// The parsed network: input geometry and the layers in cfg order.
#[derive(Debug, Clone, PartialEq)]
pub struct NetConfig {
    /// Network input width (`[net] width=`).
    pub width: usize,
    /// Network input height (`[net] height=`).
    pub height: usize,
    /// Network input channels (`[net] channels=`, default 3).
    pub channels: usize,
    /// `[net] letter_box=1`: Darknet letterboxes instead of stretching.
    pub letter_box: bool,
    /// The layers, Darknet numbering: index 0 is the first section after `[net]`.
    pub layers: Vec<LayerConfig>,
}

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

impl NetConfig {
    /// Parses and validates a Darknet cfg.
    pub fn parse(text: &str) -> Result<NetConfig, CfgError> {
        let sections = split_sections(text)?;
        let mut iter = sections.into_iter();
        let net = iter.next().ok_or(CfgError::Empty)?;
        if net.name != "net" && net.name != "network" {
            return Err(CfgError::MissingNet {
                section: net.name,
                line: net.line,
            });
        }
        let net_line = net.line;
        let mut fields = Fields::new(net)?;
        let width = fields.positive_required("width")?;
        let height = fields.positive_required("height")?;
        let channels = fields.positive_or("channels", 3)?;
        let letter_box = fields.flag("letter_box")?;
        fields.finish(NET_TRAINING_KEYS)?;

        let mut layers = Vec::new();
        for section in iter {
            let index = layers.len();
            let layer = match section.name.as_str() {
                "convolutional" | "conv" => parse_conv(Fields::new(section)?)?,
                "maxpool" | "max" => parse_maxpool(Fields::new(section)?)?,
                "route" => parse_route(Fields::new(section)?, index)?,
                "shortcut" => parse_shortcut(Fields::new(section)?, index)?,
                "upsample" => parse_upsample(Fields::new(section)?)?,
                "yolo" => parse_yolo(Fields::new(section)?)?,
                _ => {
                    return Err(CfgError::UnknownSection {
                        section: section.name,
                        line: section.line,
                    });
                }
            };
            layers.push(layer);
        }
        if layers.is_empty() {
            return Err(CfgError::NoLayers { line: net_line });
        }
        Ok(NetConfig {
            width,
            height,
            channels,
            letter_box,
            layers,
        })
    }

    /// Indices of the `[yolo]` layers, in cfg order.
    pub fn yolo_layers(&self) -> Vec<usize> {
        self.layers
            .iter()
            .enumerate()
            .filter(|(_, l)| matches!(l, LayerConfig::Yolo(_)))
            .map(|(i, _)| i)
            .collect()
    }
}

/// `[net]` keys that only steer training or data augmentation.
const NET_TRAINING_KEYS: &[&str] = &[
    "batch",
    "subdivisions",
    "momentum",
    "decay",
    "angle",
    "saturation",
    "exposure",
    "hue",
    "learning_rate",
    "burn_in",
    "max_batches",
    "policy",
    "steps",
    "scales",
    "step",
    "gamma",
    "power",
    "mosaic",
    "mosaic_bound",
    "cutmix",
    "mixup",
    "blur",
    "gaussian_noise",
    "flip",
    "aspect",
    "min_crop",
    "max_crop",
    "jitter",
    "inputs",
    "max_chart_loss",
    "adam",
    "B1",
    "B2",
    "eps",
    "label_smooth_eps",
    "resize_step",
    "track",
    "time_steps",
    "augment_speed",
    "sequential_subdivisions",
    "try_fix_nan",
    "optimized_memory",
    "workspace_size_limit_MB",
    "use_cuda_graph",
    "dynamic_minibatch",
    "loss_scale",
    "adversarial_lr",
    "attention",
    "contrastive",
    "contrastive_jit_flip",
    "contrastive_color",
    "unsupervised",
    "show_receptive_field",
    "random",
    "num_boxes",
    "rotate",
];

/// `[convolutional]` keys that only matter for training.
const CONV_TRAINING_KEYS: &[&str] = &[
    "stopbackward",
    "dont_update",
    "burnin_update",
    "train_only_bn",
    "learning_rate",
    "train",
];

const MAXPOOL_TRAINING_KEYS: &[&str] = &["stopbackward", "train_only_bn"];
const ROUTE_TRAINING_KEYS: &[&str] = &["stopbackward"];
const SHORTCUT_TRAINING_KEYS: &[&str] = &["stopbackward"];
const UPSAMPLE_TRAINING_KEYS: &[&str] = &["stopbackward"];

/// `[yolo]` keys that only matter for training (loss, augmentation, tracking).
const YOLO_TRAINING_KEYS: &[&str] = &[
    "jitter",
    "ignore_thresh",
    "truth_thresh",
    "random",
    "iou_thresh",
    "iou_thresh_kind",
    "cls_normalizer",
    "iou_normalizer",
    "obj_normalizer",
    "delta_normalizer",
    "uc_normalizer",
    "iou_loss",
    "max_delta",
    "resize",
    "counters_per_class",
    "label_smooth_eps",
    "focal_loss",
    "max",
    "objectness_smooth",
    "map",
    "track_history_size",
    "sim_thresh",
    "dets_for_track",
    "dets_for_show",
    "track_ciou_norm",
    "embedding_layer",
    "show_details",
    "stopbackward",
];

fn parse_conv(mut f: Fields) -> Result<LayerConfig, CfgError> {
    let filters = f.positive_or("filters", 1)?;
    let size = f.positive_or("size", 1)?;
    let stride = f.positive_or("stride", 1)?;
    let pad = f.flag("pad")?;
    let padding = f.usize_or("padding", 0)?;
    let groups = f.positive_or("groups", 1)?;
    let batch_normalize = f.flag("batch_normalize")?;
    let activation = f.activation_or("activation", Activation::Logistic)?;
    // Keys that change inference but are only supported at their neutral value.
    f.neutral("stride_x", stride as f64)?;
    f.neutral("stride_y", stride as f64)?;
    f.neutral("dilation", 1.0)?;
    for key in [
        "binary",
        "xnor",
        "flipped",
        "antialiasing",
        "coordconv",
        "deform",
        "sway",
        "rotate",
        "stretch",
        "stretch_sway",
        "assisted_excitation",
        "dot",
    ] {
        f.neutral(key, 0.0)?;
    }
    f.finish(CONV_TRAINING_KEYS)?;
    Ok(LayerConfig::Convolutional(ConvConfig {
        line: f.line,
        filters,
        size,
        stride,
        padding: if pad { size / 2 } else { padding },
        groups,
        batch_normalize,
        activation,
    }))
}

fn parse_maxpool(mut f: Fields) -> Result<LayerConfig, CfgError> {
    let stride = f.positive_or("stride", 1)?;
    let size = f.positive_or("size", stride)?;
    let padding = f.usize_or("padding", size - 1)?;
    f.neutral("stride_x", stride as f64)?;
    f.neutral("stride_y", stride as f64)?;
    f.neutral("maxpool_depth", 0.0)?;
    f.neutral("antialiasing", 0.0)?;
    f.finish(MAXPOOL_TRAINING_KEYS)?;
    Ok(LayerConfig::MaxPool(MaxPoolConfig {
        line: f.line,
        size,
        stride,
        padding,
    }))
}

fn parse_route(mut f: Fields, index: usize) -> Result<LayerConfig, CfgError> {
    let layers = f.layer_refs("layers", index)?;
    let groups = f.positive_or("groups", 1)?;
    let group_id = f.usize_or("group_id", 0)?;
    if group_id >= groups {
        return Err(f.bad_value_of(
            "group_id",
            &group_id.to_string(),
            &format!("an integer below groups={groups}"),
        ));
    }
    f.finish(ROUTE_TRAINING_KEYS)?;
    Ok(LayerConfig::Route(RouteConfig {
        line: f.line,
        layers,
        groups,
        group_id,
    }))
}

fn parse_shortcut(mut f: Fields, index: usize) -> Result<LayerConfig, CfgError> {
    let from = f.layer_refs("from", index)?;
    if index == 0 {
        // A shortcut adds the previous layer's output; layer 0 has none.
        return Err(CfgError::BadLayerRef {
            section: f.name.clone(),
            line: f.line,
            key: "from",
            reference: -1,
            resolved: -1,
            index,
        });
    }
    let activation = f.activation_or("activation", Activation::Linear)?;
    for key in ["weights_type", "weights_normalization"] {
        if let Some((value, _)) = f.take(key)
            && value != "none"
        {
            return Err(f.bad_value_of(
                key,
                &value,
                "`none` (weighted shortcuts are not supported)",
            ));
        }
    }
    f.finish(SHORTCUT_TRAINING_KEYS)?;
    Ok(LayerConfig::Shortcut(ShortcutConfig {
        line: f.line,
        from,
        activation,
    }))
}

fn parse_upsample(mut f: Fields) -> Result<LayerConfig, CfgError> {
    let stride = f.positive_or("stride", 2)?;
    f.neutral("scale", 1.0)?;
    f.finish(UPSAMPLE_TRAINING_KEYS)?;
    Ok(LayerConfig::Upsample(UpsampleConfig {
        line: f.line,
        stride,
    }))
}

fn parse_yolo(mut f: Fields) -> Result<LayerConfig, CfgError> {
    let classes = f.usize_or("classes", 20)?;
    let num = f.positive_or("num", 1)?;
    let mask = match f.take("mask") {
        None => (0..num).collect(),
        Some((value, _)) => {
            let mut mask = Vec::new();
            for item in value.split(',').filter(|s| !s.is_empty()) {
                match item.parse::<usize>() {
                    Ok(m) if m < num => mask.push(m),
                    _ => {
                        return Err(f.bad_value_of(
                            "mask",
                            &value,
                            &format!("comma-separated anchor indices below num={num}"),
                        ));
                    }
                }
            }
            if mask.is_empty() {
                return Err(f.bad_value_of("mask", &value, "at least one anchor index"));
            }
            mask
        }
    };
    let anchors = match f.take("anchors") {
        None => {
            return Err(CfgError::MissingKey {
                section: f.name.clone(),
                line: f.line,
                key: "anchors",
            });
        }
        Some((value, _)) => {
            let parsed: Option<Vec<f32>> = value
                .split(',')
                .filter(|s| !s.is_empty())
                .map(|s| s.parse::<f32>().ok().filter(|v| v.is_finite() && *v > 0.0))
                .collect();
            match parsed {
                Some(v) if v.len() == 2 * num => v.chunks(2).map(|c| (c[0], c[1])).collect(),
                _ => {
                    return Err(f.bad_value_of(
                        "anchors",
                        &value,
                        &format!(
                            "{} positive numbers (num={num} width,height pairs)",
                            2 * num
                        ),
                    ));
                }
            }
        }
    };
    let scale_x_y = f.f32_or("scale_x_y", 1.0)?;
    if scale_x_y <= 0.0 {
        return Err(f.bad_value_of("scale_x_y", &scale_x_y.to_string(), "a positive number"));
    }
    let new_coords = f.flag("new_coords")?;
    let nms_kind = match f.take("nms_kind") {
        None => "default".to_string(),
        Some((value, _)) => match value.as_str() {
            "default" | "greedynms" | "diounms" | "cornersnms" => value,
            _ => {
                return Err(f.bad_value_of(
                    "nms_kind",
                    &value,
                    "one of default, greedynms, diounms, cornersnms",
                ));
            }
        },
    };
    let beta_nms = f.f32_or("beta_nms", 0.6)?;
    f.finish(YOLO_TRAINING_KEYS)?;
    Ok(LayerConfig::Yolo(YoloConfig {
        line: f.line,
        mask,
        anchors,
        classes,
        scale_x_y,
        new_coords,
        nms_kind,
        beta_nms,
    }))
}

/// A raw section: name, header line and its `key=value` entries.
struct Section {
    name: String,
    line: usize,
    entries: Vec<(String, String, usize)>,
}

/// Splits the text into sections; strips comments (`#`, `;`) and whitespace
/// (Darknet removes all whitespace from a line, so `layers = -1, -2` is valid).
fn split_sections(text: &str) -> Result<Vec<Section>, CfgError> {
    let mut sections: Vec<Section> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line_no = i + 1;
        let without_comment = raw.split('#').next().unwrap_or("");
        let line: String = without_comment
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        if line.is_empty() || line.starts_with(';') {
            continue;
        }
        if let Some(rest) = line.strip_prefix('[') {
            match rest.strip_suffix(']') {
                Some(name) if !name.is_empty() => sections.push(Section {
                    name: name.to_string(),
                    line: line_no,
                    entries: Vec::new(),
                }),
                _ => {
                    return Err(CfgError::Syntax {
                        line: line_no,
                        text: raw.trim().to_string(),
                    });
                }
            }
            continue;
        }
        let (key, value) = match (line.split_once('='), sections.last_mut()) {
            (Some((k, v)), Some(_)) if !k.is_empty() => (k.to_string(), v.to_string()),
            _ => {
                return Err(CfgError::Syntax {
                    line: line_no,
                    text: raw.trim().to_string(),
                });
            }
        };
        if let Some(section) = sections.last_mut() {
            section.entries.push((key, value, line_no));
        }
    }
    Ok(sections)
}

/// The entries of one section, consumed key by key; `finish` rejects leftovers.
struct Fields {
    name: String,
    line: usize,
    entries: Vec<(String, String, usize)>,
}

impl Fields {
    fn new(section: Section) -> Result<Fields, CfgError> {
        let mut seen = HashSet::new();
        for (key, _, key_line) in &section.entries {
            if !seen.insert(key.as_str()) {
                return Err(CfgError::DuplicateKey {
                    section: section.name.clone(),
                    line: section.line,
                    key: key.clone(),
                    key_line: *key_line,
                });
            }
        }
        Ok(Fields {
            name: section.name,
            line: section.line,
            entries: section.entries,
        })
    }

    /// Removes and returns `(value, line)` for `key`.
    fn take(&mut self, key: &str) -> Option<(String, usize)> {
        let pos = self.entries.iter().position(|(k, _, _)| k == key)?;
        let (_, value, line) = self.entries.remove(pos);
        Some((value, line))
    }

    fn bad_value_of(&self, key: &str, value: &str, expected: &str) -> CfgError {
        CfgError::BadValue {
            section: self.name.clone(),
            line: self.line,
            key: key.to_string(),
            value: value.to_string(),
            expected: expected.to_string(),
        }
    }

    fn usize_or(&mut self, key: &str, default: usize) -> Result<usize, CfgError> {
        match self.take(key) {
            None => Ok(default),
            Some((value, _)) => value
                .parse::<usize>()
                .map_err(|_| self.bad_value_of(key, &value, "a non-negative integer")),
        }
    }

    fn positive(&self, key: &str, value: &str) -> Result<usize, CfgError> {
        value
            .parse::<usize>()
            .ok()
            .filter(|v| *v > 0)
            .ok_or_else(|| self.bad_value_of(key, value, "a positive integer"))
    }

    fn positive_or(&mut self, key: &str, default: usize) -> Result<usize, CfgError> {
        match self.take(key) {
            None => Ok(default),
            Some((value, _)) => self.positive(key, &value),
        }
    }

    fn positive_required(&mut self, key: &'static str) -> Result<usize, CfgError> {
        match self.take(key) {
            None => Err(CfgError::MissingKey {
                section: self.name.clone(),
                line: self.line,
                key,
            }),
            Some((value, _)) => self.positive(key, &value),
        }
    }

    fn f32_or(&mut self, key: &str, default: f32) -> Result<f32, CfgError> {
        match self.take(key) {
            None => Ok(default),
            Some((value, _)) => value
                .parse::<f32>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| self.bad_value_of(key, &value, "a finite number")),
        }
    }

    fn flag(&mut self, key: &str) -> Result<bool, CfgError> {
        match self.take(key) {
            None => Ok(false),
            Some((value, _)) => match value.as_str() {
                "0" => Ok(false),
                "1" => Ok(true),
                _ => Err(self.bad_value_of(key, &value, "0 or 1")),
            },
        }
    }

    fn activation_or(&mut self, key: &str, default: Activation) -> Result<Activation, CfgError> {
        match self.take(key) {
            None => Ok(default),
            Some((value, _)) => Activation::from_cfg(&value).ok_or_else(|| {
                self.bad_value_of(key, &value, "one of linear, leaky, mish, logistic")
            }),
        }
    }

    /// Accepts `key` only at its neutral (inference-preserving) value.
    fn neutral(&mut self, key: &str, neutral: f64) -> Result<(), CfgError> {
        if let Some((value, _)) = self.take(key)
            && value.parse::<f64>().ok() != Some(neutral)
        {
            return Err(self.bad_value_of(
                key,
                &value,
                &format!("{neutral} (other values change inference and are not supported)"),
            ));
        }
        Ok(())
    }

    /// Parses a comma-separated list of layer references, resolving negative
    /// (relative) ones against `index` and checking each names an earlier layer.
    fn layer_refs(&mut self, key: &'static str, index: usize) -> Result<Vec<usize>, CfgError> {
        let Some((value, _)) = self.take(key) else {
            return Err(CfgError::MissingKey {
                section: self.name.clone(),
                line: self.line,
                key,
            });
        };
        let mut out = Vec::new();
        for item in value.split(',').filter(|s| !s.is_empty()) {
            let reference: i64 = item
                .parse()
                .map_err(|_| self.bad_value_of(key, &value, "comma-separated layer indices"))?;
            let resolved = if reference < 0 {
                index as i64 + reference
            } else {
                reference
            };
            if resolved < 0 || resolved >= index as i64 {
                return Err(CfgError::BadLayerRef {
                    section: self.name.clone(),
                    line: self.line,
                    key,
                    reference,
                    resolved,
                    index,
                });
            }
            out.push(resolved as usize);
        }
        if out.is_empty() {
            return Err(self.bad_value_of(key, &value, "at least one layer index"));
        }
        Ok(out)
    }

    /// Fails on the first key neither consumed nor in `ignored`.
    fn finish(&self, ignored: &[&str]) -> Result<(), CfgError> {
        match self
            .entries
            .iter()
            .find(|(k, _, _)| !ignored.contains(&k.as_str()))
        {
            None => Ok(()),
            Some((key, _, key_line)) => Err(CfgError::UnknownKey {
                section: self.name.clone(),
                line: self.line,
                key: key.clone(),
                key_line: *key_line,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_small_net_with_relative_refs_and_defaults() {
        // `;` only starts a comment at the beginning of a line (as in Darknet).
        let cfg = "[net]\nwidth=64 ; trailing\nheight=8\n[maxpool]\n";
        assert!(matches!(
            NetConfig::parse(cfg),
            Err(CfgError::BadValue { .. })
        ));

        let cfg = "\
[net]
batch=64
width = 64
height=32
; a comment
[convolutional]
filters=8
size=3
pad=1
activation=leaky
[maxpool]
size=2
stride=2
[route]
layers = -1, 0
groups=2
group_id=1
[yolo]
mask=0
anchors=10,14, 23,27
num=2
classes=1
jitter=.3
";
        let net = NetConfig::parse(cfg).unwrap();
        assert_eq!((net.width, net.height, net.channels), (64, 32, 3));
        assert_eq!(net.layers.len(), 4);
        match &net.layers[0] {
            LayerConfig::Convolutional(c) => {
                assert_eq!(
                    (c.filters, c.size, c.stride, c.padding, c.groups),
                    (8, 3, 1, 1, 1)
                );
                assert_eq!(c.activation, Activation::Leaky);
                assert_eq!(c.line, 6);
            }
            other => panic!("expected conv, got {other:?}"),
        }
        match &net.layers[1] {
            LayerConfig::MaxPool(m) => assert_eq!((m.size, m.stride, m.padding), (2, 2, 1)),
            other => panic!("expected maxpool, got {other:?}"),
        }
        match &net.layers[2] {
            LayerConfig::Route(r) => {
                assert_eq!((r.layers.clone(), r.groups, r.group_id), (vec![1, 0], 2, 1))
            }
            other => panic!("expected route, got {other:?}"),
        }
        match &net.layers[3] {
            LayerConfig::Yolo(y) => {
                assert_eq!(y.masked_anchors(), vec![(10.0, 14.0)]);
                assert_eq!(y.expected_channels(), 6);
            }
            other => panic!("expected yolo, got {other:?}"),
        }
        assert_eq!(net.yolo_layers(), vec![3]);
    }
}
