//! The network: one block per cfg section, run in cfg order.

mod conv;
mod dtype;
mod maxpool;
mod plan;
mod route;
mod shortcut;
mod upsample;
mod yolo;

pub use conv::ConvBlock;
pub use dtype::MODEL_DTYPE;
pub use maxpool::MaxPool;
pub use route::Route;
pub use shortcut::Shortcut;
pub use upsample::Upsample;
pub use yolo::YoloHead;

use std::time::{Duration, Instant};

use candle_core::{DType, Device, Module, Tensor};

use crate::darknet::cfg::{LayerConfig, NetConfig};
use crate::darknet::weights::{self, DARKNET_BN_EPSILON};
use crate::error::LoadError;
use crate::kernels::KernelChoice;
use plan::Plan;

/// Options for [`Darknet::load_with`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoadOptions {
    /// Batch-norm epsilon used when folding BN into the convolutions:
    /// [`DARKNET_BN_EPSILON`] (default) or
    /// [`OPENCV_BN_EPSILON`](crate::darknet::weights::OPENCV_BN_EPSILON) to match OpenCV DNN.
    pub bn_epsilon: f32,
    /// Element type of the weights and of every activation: [`MODEL_DTYPE`]
    /// (f32, default), or `F16`/`BF16` on a GPU. The fused CPU kernels run
    /// f32 only; other dtypes take candle's tensor ops.
    pub dtype: DType,
    /// Which implementation of the layers runs (see [`KernelChoice`]).
    pub kernels: KernelChoice,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            bn_epsilon: DARKNET_BN_EPSILON,
            dtype: MODEL_DTYPE,
            kernels: KernelChoice::Native,
        }
    }
}

/// One block of the network.
#[derive(Debug, Clone)]
pub(crate) enum Layer {
    Conv(ConvBlock),
    MaxPool(MaxPool),
    Route(Route),
    Shortcut(Shortcut),
    Upsample(Upsample),
    Yolo(YoloHead),
}

/// A Darknet network with its weights, on one device.
#[derive(Debug, Clone)]
pub struct Darknet {
    layers: Vec<Layer>,
    /// Input layer indices of each layer; `None` means the network input.
    inputs: Vec<Vec<Option<usize>>>,
    /// (channels, height, width) of each layer's output.
    shapes: Vec<(usize, usize, usize)>,
    /// The last layer that reads each layer's output.
    last_use: Vec<usize>,
    heads: Vec<usize>,
    width: usize,
    height: usize,
    channels: usize,
    classes: usize,
    device: Device,
    dtype: DType,
    kernels: KernelChoice,
}

impl Darknet {
    /// Builds the network from a parsed cfg and the bytes of its `.weights`,
    /// folding batch norm with Darknet's epsilon.
    pub fn load(cfg: &NetConfig, weights: &[u8], device: &Device) -> Result<Darknet, LoadError> {
        Darknet::load_with(cfg, weights, device, &LoadOptions::default())
    }

    /// [`Darknet::load`] with explicit [`LoadOptions`].
    pub fn load_with(
        cfg: &NetConfig,
        weights: &[u8],
        device: &Device,
        options: &LoadOptions,
    ) -> Result<Darknet, LoadError> {
        let plan = Plan::new(cfg)?;
        let (_, mut params) = weights::read(weights, &plan.convs, options.bn_epsilon)?;
        let mut params = params.drain(..);
        let mut layers = Vec::with_capacity(cfg.layers.len());
        for (index, layer) in cfg.layers.iter().enumerate() {
            layers.push(match layer {
                LayerConfig::Convolutional(c) => {
                    let in_channels = plan.input_channels(index);
                    let p = params
                        .next()
                        .expect("the weights reader returns one entry per convolution");
                    Layer::Conv(ConvBlock::load_as(
                        c,
                        in_channels,
                        p,
                        device,
                        options.dtype,
                        options.kernels,
                    )?)
                }
                LayerConfig::MaxPool(c) => Layer::MaxPool(MaxPool::load(c)),
                LayerConfig::Route(c) => Layer::Route(Route::load(c)),
                LayerConfig::Shortcut(c) => Layer::Shortcut(Shortcut::load(c)),
                LayerConfig::Upsample(c) => Layer::Upsample(Upsample::load(c)),
                LayerConfig::Yolo(c) => Layer::Yolo(YoloHead::load(c)),
            });
        }
        let mut last_use: Vec<usize> = (0..layers.len()).collect();
        for (index, inputs) in plan.inputs.iter().enumerate() {
            for &i in inputs.iter().flatten() {
                last_use[i] = last_use[i].max(index);
            }
        }
        Ok(Darknet {
            layers,
            inputs: plan.inputs,
            shapes: plan.shapes,
            last_use,
            heads: plan.heads,
            width: cfg.width,
            height: cfg.height,
            channels: cfg.channels,
            classes: plan.classes,
            device: device.clone(),
            dtype: options.dtype,
            kernels: options.kernels,
        })
    }

    /// `(width, height)` of the network input.
    pub fn input_size(&self) -> (usize, usize) {
        (self.width, self.height)
    }

    /// Input channels (3 for RGB).
    pub fn input_channels(&self) -> usize {
        self.channels
    }

    /// Classes every `[yolo]` head predicts.
    pub fn num_classes(&self) -> usize {
        self.classes
    }

    /// The device every tensor of the model lives on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The element type of the weights and activations.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Which implementation of the layers the model runs.
    pub fn kernels(&self) -> KernelChoice {
        self.kernels
    }

    /// A short description of a layer for profiles: the section name, and
    /// for convolutions `KxK/stride`, e.g. `conv 3x3/2`.
    pub fn layer_kind(&self, layer: usize) -> Option<String> {
        Some(match self.layers.get(layer)? {
            Layer::Conv(c) => {
                let k = c.weight.dim(3).unwrap_or(0);
                format!("conv {k}x{k}/{}", c.stride)
            }
            Layer::MaxPool(_) => "maxpool".into(),
            Layer::Route(_) => "route".into(),
            Layer::Shortcut(_) => "shortcut".into(),
            Layer::Upsample(_) => "upsample".into(),
            Layer::Yolo(_) => "yolo".into(),
        })
    }

    /// Number of layers (sections after `[net]`).
    pub fn num_layers(&self) -> usize {
        self.layers.len()
    }

    /// `(channels, height, width)` of a layer's output for one image.
    pub fn output_shape(&self, layer: usize) -> Option<(usize, usize, usize)> {
        self.shapes.get(layer).copied()
    }

    /// Indices of the `[yolo]` layers, in cfg order.
    pub fn head_layers(&self) -> &[usize] {
        &self.heads
    }

    /// The `[yolo]` heads, in cfg order (same order as [`Darknet::forward_heads`]).
    pub fn heads(&self) -> Vec<&YoloHead> {
        self.heads
            .iter()
            .filter_map(|&i| match &self.layers[i] {
                Layer::Yolo(h) => Some(h),
                _ => None,
            })
            .collect()
    }

    /// Every convolution block with its layer index, in cfg order.
    pub fn conv_blocks(&self) -> Vec<(usize, &ConvBlock)> {
        self.layers
            .iter()
            .enumerate()
            .filter_map(|(i, l)| match l {
                Layer::Conv(c) => Some((i, c)),
                _ => None,
            })
            .collect()
    }

    /// Raw logits of every `[yolo]` layer's input, in cfg order, each
    /// `(N, anchors*(5+classes), H, W)`, f32 (converted on the model's device
    /// when the model runs another dtype).
    pub fn forward_heads(&self, input: &Tensor) -> candle_core::Result<Vec<Tensor>> {
        self.forward_layers(input, &self.heads)?
            .into_iter()
            .map(|head| head.to_dtype(DType::F32))
            .collect()
    }

    /// Outputs of the given layers (Darknet numbering: sections after `[net]`
    /// from 0), in the order asked, in the model's dtype, for debugging and
    /// oracle tests.
    pub fn forward_layers(
        &self,
        input: &Tensor,
        layers: &[usize],
    ) -> candle_core::Result<Vec<Tensor>> {
        self.run(input, layers, None)
    }

    /// Runs the whole network once and returns the wall time of every layer
    /// (Darknet numbering), for profiling.
    pub fn profile_layers(&self, input: &Tensor) -> candle_core::Result<Vec<Duration>> {
        let mut timings = Vec::with_capacity(self.layers.len());
        self.run(input, &self.heads, Some(&mut timings))?;
        Ok(timings)
    }

    /// The forward pass behind [`Darknet::forward_layers`], timing each layer
    /// into `timings` when given.
    fn run(
        &self,
        input: &Tensor,
        layers: &[usize],
        mut timings: Option<&mut Vec<Duration>>,
    ) -> candle_core::Result<Vec<Tensor>> {
        let Some(&last) = layers.iter().max() else {
            return Ok(Vec::new());
        };
        if last >= self.layers.len() {
            candle_core::bail!(
                "layer {last} requested, but the network has {} layers",
                self.layers.len()
            );
        }
        let input = self.check_input(input)?;
        let mut outputs: Vec<Option<Tensor>> = vec![None; last + 1];
        for index in 0..=last {
            let inputs = self.inputs[index]
                .iter()
                .map(|i| match i {
                    None => Ok(&input),
                    Some(i) => outputs[*i].as_ref().ok_or_else(|| {
                        candle_core::Error::Msg(format!(
                            "layer {index}: output of layer {i} was dropped"
                        ))
                    }),
                })
                .collect::<candle_core::Result<Vec<&Tensor>>>()?;
            let started = timings.as_ref().map(|_| Instant::now());
            // Upsample (nearest), route (narrow + cat) and the heads are
            // tensor ops on every device; the others pick their kernels.
            let kernels = self.kernels;
            let out = match &self.layers[index] {
                Layer::Conv(l) => l.forward_with(inputs[0], kernels)?,
                Layer::MaxPool(l) => l.forward_with(inputs[0], kernels)?,
                Layer::Upsample(l) => l.forward(inputs[0])?,
                Layer::Yolo(l) => l.forward(inputs[0])?,
                Layer::Route(l) => l.forward_many(&inputs)?,
                Layer::Shortcut(l) => l.forward_many_with(&inputs, kernels)?,
            };
            if let (Some(timings), Some(started)) = (timings.as_deref_mut(), started) {
                timings.push(started.elapsed());
            }
            outputs[index] = Some(out);
            // Free outputs nobody reads any more (unless asked for).
            for i in self.inputs[index].iter().flatten() {
                if self.last_use[*i] <= index && !layers.contains(i) {
                    outputs[*i] = None;
                }
            }
        }
        layers
            .iter()
            .map(|&i| {
                outputs[i].clone().ok_or_else(|| {
                    candle_core::Error::Msg(format!("output of layer {i} was dropped"))
                })
            })
            .collect()
    }

    /// Checks the input's device and shape and converts it to the model's dtype.
    fn check_input(&self, input: &Tensor) -> candle_core::Result<Tensor> {
        if !input.device().same_device(&self.device) {
            candle_core::bail!(
                "input is on {:?} but the model is on {:?}",
                input.device(),
                self.device
            );
        }
        let (_, c, h, w) = input.dims4()?;
        if (c, h, w) != (self.channels, self.height, self.width) {
            candle_core::bail!(
                "input is (N, {c}, {h}, {w}) but the network expects (N, {}, {}, {})",
                self.channels,
                self.height,
                self.width
            );
        }
        input.to_dtype(self.dtype)
    }
}
