//! The network's plan: every layer's inputs and output shape, worked out
//! from the cfg alone, so that a cfg whose layers do not fit together fails
//! before any weight is read, naming the layer at fault.

use super::maxpool::MaxPool;
use crate::darknet::cfg::{
    ConvConfig, LayerConfig, MaxPoolConfig, NetConfig, RouteConfig, ShortcutConfig, YoloConfig,
};
use crate::darknet::weights::ConvShape;
use crate::error::LoadError;

/// `(channels, height, width)` of one layer's output for one image.
type Chw = (usize, usize, usize);

/// Shapes and wiring derived from the cfg before any weight is read.
pub(crate) struct Plan {
    /// Input layer indices of each layer; `None` means the network input.
    pub(crate) inputs: Vec<Vec<Option<usize>>>,
    /// Each layer's output shape.
    pub(crate) shapes: Vec<Chw>,
    in_channels: Vec<usize>,
    /// The shape of every convolution's weights, in cfg order.
    pub(crate) convs: Vec<ConvShape>,
    /// Indices of the `[yolo]` layers.
    pub(crate) heads: Vec<usize>,
    /// Classes every `[yolo]` head predicts.
    pub(crate) classes: usize,
}

impl Plan {
    /// Walks the layers in cfg order, checking that each one fits the output
    /// of the layers it reads.
    pub(crate) fn new(cfg: &NetConfig) -> Result<Plan, LoadError> {
        let mut inputs = Vec::with_capacity(cfg.layers.len());
        let mut shapes: Vec<Chw> = Vec::with_capacity(cfg.layers.len());
        let mut in_channels = Vec::with_capacity(cfg.layers.len());
        let mut convs = Vec::new();
        let mut heads = Vec::new();
        let mut classes = None;
        for (index, layer) in cfg.layers.iter().enumerate() {
            let shape_error = |message: String| LoadError::Shape {
                layer: index,
                section: layer.section_name(),
                line: layer.line(),
                message,
            };
            let prev = index.checked_sub(1);
            let input = match prev {
                None => (cfg.channels, cfg.height, cfg.width),
                Some(p) => shapes[p],
            };
            let (layer_inputs, shape) = match layer {
                LayerConfig::Convolutional(conv) => {
                    let (shape, weights) = conv_output(conv, index, input).map_err(shape_error)?;
                    convs.push(weights);
                    (vec![prev], shape)
                }
                LayerConfig::MaxPool(m) => {
                    (vec![prev], maxpool_output(m, input).map_err(shape_error)?)
                }
                LayerConfig::Route(r) => {
                    let shape = route_output(r, &shapes).map_err(shape_error)?;
                    (r.layers.iter().map(|&l| Some(l)).collect(), shape)
                }
                LayerConfig::Shortcut(s) => {
                    check_shortcut(s, input, &shapes).map_err(shape_error)?;
                    let mut v = vec![prev];
                    v.extend(s.from.iter().map(|&l| Some(l)));
                    (v, input)
                }
                LayerConfig::Upsample(u) => {
                    let (c, h, w) = input;
                    (vec![prev], (c, h * u.stride, w * u.stride))
                }
                LayerConfig::Yolo(y) => {
                    check_yolo_input(y, input).map_err(shape_error)?;
                    classes = Some(same_classes(classes, y)?);
                    heads.push(index);
                    (vec![prev], input)
                }
            };
            inputs.push(layer_inputs);
            shapes.push(shape);
            in_channels.push(input.0);
        }
        let classes = classes.ok_or(LoadError::NoYoloLayer)?;
        Ok(Plan {
            inputs,
            shapes,
            in_channels,
            convs,
            heads,
            classes,
        })
    }

    /// Input channels of layer `index` (the previous output, or the network input).
    pub(crate) fn input_channels(&self, index: usize) -> usize {
        self.in_channels[index]
    }
}

/// A convolution (layer `index`) on a `(c, h, w)` input: its output shape and
/// the shape of its weights; the error message when groups or kernel do not fit.
// `%` kept from the check this was cut out of (clippy only suggests
// `is_multiple_of` outside a loop): a hand-built cfg with `groups=0` still
// panics here instead of passing the check.
#[allow(clippy::manual_is_multiple_of)]
fn conv_output(
    conv: &ConvConfig,
    index: usize,
    (c, h, w): Chw,
) -> Result<(Chw, ConvShape), String> {
    if c % conv.groups != 0 || conv.filters % conv.groups != 0 {
        return Err(format!(
            "groups={} must divide both the {c} input channels and filters={}",
            conv.groups, conv.filters
        ));
    }
    let out = |len: usize| {
        (len + 2 * conv.padding)
            .checked_sub(conv.size)
            .map(|v| v / conv.stride + 1)
    };
    let (Some(oh), Some(ow)) = (out(h), out(w)) else {
        return Err(format!(
            "kernel size {} does not fit the {h}x{w} input with padding {}",
            conv.size, conv.padding
        ));
    };
    let weights = ConvShape {
        layer: index,
        line: conv.line,
        filters: conv.filters,
        channels_per_group: c / conv.groups,
        size: conv.size,
        batch_normalize: conv.batch_normalize,
    };
    Ok(((conv.filters, oh, ow), weights))
}

/// A max-pool on a `(c, h, w)` input: its output shape, or why its windows
/// do not fit the input.
fn maxpool_output(m: &MaxPoolConfig, (c, h, w): Chw) -> Result<Chw, String> {
    let pool = MaxPool::load(m);
    let (Some(oh), Some(ow)) = (pool.output_len(h), pool.output_len(w)) else {
        return Err(format!(
            "window size {} does not fit the {h}x{w} input with padding {}",
            m.size, m.padding
        ));
    };
    // Darknet fills a window with no input cell with -FLT_MAX; refuse such cfgs.
    let left = m.padding / 2;
    let last_start = |out: usize| (out - 1) * m.stride;
    if left >= m.size || last_start(oh) >= h + left || last_start(ow) >= w + left {
        return Err(format!(
            "padding={} leaves some size={} windows entirely outside the {h}x{w} input",
            m.padding, m.size
        ));
    }
    Ok((c, oh, ow))
}

/// A route's output shape: its sources' channel groups side by side, all of
/// the same height and width.
fn route_output(r: &RouteConfig, shapes: &[Chw]) -> Result<Chw, String> {
    let (_, h0, w0) = shapes[r.layers[0]];
    let mut total = 0;
    for &src in &r.layers {
        let (sc, sh, sw) = shapes[src];
        if (sh, sw) != (h0, w0) {
            return Err(format!(
                "layer {src} is {sh}x{sw} but layer {} is {h0}x{w0}: routed layers must match",
                r.layers[0]
            ));
        }
        if sc % r.groups != 0 {
            return Err(format!(
                "groups={} does not divide the {sc} channels of layer {src}",
                r.groups
            ));
        }
        total += sc / r.groups;
    }
    Ok((total, h0, w0))
}

/// A shortcut adds layers of exactly its input's shape.
fn check_shortcut(s: &ShortcutConfig, input: Chw, shapes: &[Chw]) -> Result<(), String> {
    let (c, h, w) = input;
    for &src in &s.from {
        if shapes[src] != input {
            let (sc, sh, sw) = shapes[src];
            return Err(format!(
                "adds layer {src} ({sc}x{sh}x{sw}) to the previous output ({c}x{h}x{w}); \
                 only equal shapes are supported"
            ));
        }
    }
    Ok(())
}

/// A `[yolo]` head reads `mask.len() * (5 + classes)` channels.
fn check_yolo_input(y: &YoloConfig, (c, _, _): Chw) -> Result<(), String> {
    if c != y.expected_channels() {
        return Err(format!(
            "expects {} input channels (mask of {} anchors x (5 + classes={})), \
             but the previous layer outputs {c}: check `filters=` before this [yolo]",
            y.expected_channels(),
            y.mask.len(),
            y.classes
        ));
    }
    Ok(())
}

/// The class count of the heads so far (`None` before the first) after head
/// `y`: every head must predict the same classes.
fn same_classes(classes: Option<usize>, y: &YoloConfig) -> Result<usize, LoadError> {
    match classes {
        Some(expected) if expected != y.classes => Err(LoadError::InconsistentClasses {
            expected,
            found: y.classes,
            line: y.line,
        }),
        _ => Ok(y.classes),
    }
}
