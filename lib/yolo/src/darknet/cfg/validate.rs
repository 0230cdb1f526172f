//! Each layer section's keys: read, checked against what inference supports
//! and turned into its config; training-only keys are listed and ignored.

use super::error::CfgError;
use super::fields::Fields;
use super::layers::{
    ConvConfig, LayerConfig, MaxPoolConfig, RouteConfig, ShortcutConfig, UpsampleConfig, YoloConfig,
};
use super::lexer::Section;
use crate::activation::Activation;

/// `[net]` keys that only steer training or data augmentation.
pub(crate) const NET_TRAINING_KEYS: &[&str] = &[
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

/// Parses layer section number `index` (counted after `[net]`) by its name.
pub(crate) fn parse_layer(section: Section, index: usize) -> Result<LayerConfig, CfgError> {
    match section.name.as_str() {
        "convolutional" | "conv" => parse_conv(Fields::new(section)?),
        "maxpool" | "max" => parse_maxpool(Fields::new(section)?),
        "route" => parse_route(Fields::new(section)?, index),
        "shortcut" => parse_shortcut(Fields::new(section)?, index),
        "upsample" => parse_upsample(Fields::new(section)?),
        "yolo" => parse_yolo(Fields::new(section)?),
        _ => Err(CfgError::UnknownSection {
            section: section.name,
            line: section.line,
        }),
    }
}

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
    let mask = yolo_mask(&mut f, num)?;
    let anchors = yolo_anchors(&mut f, num)?;
    let scale_x_y = f.f32_or("scale_x_y", 1.0)?;
    if scale_x_y <= 0.0 {
        return Err(f.bad_value_of("scale_x_y", &scale_x_y.to_string(), "a positive number"));
    }
    let new_coords = f.flag("new_coords")?;
    let nms_kind = yolo_nms_kind(&mut f)?;
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

/// `[yolo] mask=`: the anchor indices (each below `num`) this head predicts;
/// all `num` anchors when absent.
fn yolo_mask(f: &mut Fields, num: usize) -> Result<Vec<usize>, CfgError> {
    let Some((value, _)) = f.take("mask") else {
        return Ok((0..num).collect());
    };
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
    Ok(mask)
}

/// `[yolo] anchors=` (required): `num` positive `width,height` pairs.
fn yolo_anchors(f: &mut Fields, num: usize) -> Result<Vec<(f32, f32)>, CfgError> {
    let Some((value, _)) = f.take("anchors") else {
        return Err(CfgError::MissingKey {
            section: f.name.clone(),
            line: f.line,
            key: "anchors",
        });
    };
    let parsed: Option<Vec<f32>> = value
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<f32>().ok().filter(|v| v.is_finite() && *v > 0.0))
        .collect();
    match parsed {
        Some(v) if v.len() == 2 * num => Ok(v.chunks(2).map(|c| (c[0], c[1])).collect()),
        _ => Err(f.bad_value_of(
            "anchors",
            &value,
            &format!(
                "{} positive numbers (num={num} width,height pairs)",
                2 * num
            ),
        )),
    }
}

/// `[yolo] nms_kind=` as written, checked against the kinds Darknet defines
/// (`default` when absent).
fn yolo_nms_kind(f: &mut Fields) -> Result<String, CfgError> {
    let Some((value, _)) = f.take("nms_kind") else {
        return Ok("default".to_string());
    };
    match value.as_str() {
        "default" | "greedynms" | "diounms" | "cornersnms" => Ok(value),
        _ => Err(f.bad_value_of(
            "nms_kind",
            &value,
            "one of default, greedynms, diounms, cornersnms",
        )),
    }
}
