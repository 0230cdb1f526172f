//! `[convolutional]`: convolution with batch norm folded in, bias, activation.

use candle_core::{DType, Device, Module, Tensor};

use super::dtype::MODEL_DTYPE;
use crate::activation::Activation;
use crate::darknet::cfg::ConvConfig;
use crate::darknet::weights::ConvParams;
use crate::kernels::{FusedConv2d, KernelChoice};

/// One convolution block. The kernel is `(O, C/groups, K, K)`, contiguous,
/// with batch norm already folded in; the bias is `(O)`. Both live on the
/// model's device.
#[derive(Debug, Clone)]
pub struct ConvBlock {
    pub(crate) weight: Tensor,
    pub(crate) bias: Tensor,
    pub(crate) stride: usize,
    pub(crate) padding: usize,
    pub(crate) groups: usize,
    pub(crate) activation: Activation,
    /// The fused CPU kernel (conv + bias + activation in one pass), built at
    /// load when the model lives on the CPU in f32 with
    /// [`KernelChoice::Native`]; `None` elsewhere.
    pub(crate) fused: Option<FusedConv2d>,
}

impl ConvBlock {
    /// Builds the block from its cfg section, its input channel count and the
    /// parameters read from the weights file, in [`MODEL_DTYPE`] with
    /// [`KernelChoice::Native`].
    pub fn load(
        cfg: &ConvConfig,
        in_channels: usize,
        params: ConvParams,
        device: &Device,
    ) -> candle_core::Result<ConvBlock> {
        ConvBlock::load_as(
            cfg,
            in_channels,
            params,
            device,
            MODEL_DTYPE,
            KernelChoice::Native,
        )
    }

    /// [`ConvBlock::load`] with the tensors in `dtype`; the fused CPU kernel
    /// is only built for f32 CPU models with [`KernelChoice::Native`].
    pub fn load_as(
        cfg: &ConvConfig,
        in_channels: usize,
        params: ConvParams,
        device: &Device,
        dtype: DType,
        kernels: KernelChoice,
    ) -> candle_core::Result<ConvBlock> {
        let shape = (cfg.filters, in_channels / cfg.groups, cfg.size, cfg.size);
        let fused = if device.is_cpu() && dtype == DType::F32 && kernels == KernelChoice::Native {
            let (weight, bias) = (&params.weight, &params.bias);
            let fused = FusedConv2d::new(
                weight,
                shape,
                bias,
                cfg.stride,
                cfg.padding,
                cfg.groups,
                cfg.activation,
            );
            Some(fused.map_err(candle_core::Error::wrap)?)
        } else {
            None
        };
        let weight = Tensor::from_vec(params.weight, shape, device)?.to_dtype(dtype)?;
        let bias = Tensor::from_vec(params.bias, cfg.filters, device)?.to_dtype(dtype)?;
        Ok(ConvBlock {
            weight,
            bias,
            stride: cfg.stride,
            padding: cfg.padding,
            groups: cfg.groups,
            activation: cfg.activation,
            fused,
        })
    }

    /// The BN-folded kernel, `(O, C/groups, K, K)`.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// The BN-folded bias, `(O)`.
    pub fn bias(&self) -> &Tensor {
        &self.bias
    }

    /// Stride in both directions.
    pub fn stride(&self) -> usize {
        self.stride
    }

    /// Zero padding on every side.
    pub fn padding(&self) -> usize {
        self.padding
    }

    /// Channel groups.
    pub fn groups(&self) -> usize {
        self.groups
    }

    /// The activation after the bias.
    pub fn activation(&self) -> Activation {
        self.activation
    }
}

impl ConvBlock {
    /// Runs the block with the chosen implementation: the fused CPU kernel
    /// when there is one, `kernels` is [`KernelChoice::Native`] and `x` is an
    /// f32 CPU tensor; otherwise candle's `conv2d` (cuDNN with the `cudnn`
    /// feature), a broadcast bias add and [`Activation::forward_with`], all
    /// on `x`'s device.
    pub fn forward_with(&self, x: &Tensor, kernels: KernelChoice) -> candle_core::Result<Tensor> {
        if let Some(fused) = &self.fused
            && kernels == KernelChoice::Native
            && x.device().is_cpu()
            && x.dtype() == DType::F32
        {
            return fused.forward(x);
        }
        let out_channels = self.bias.dim(0)?;
        let y = x.conv2d(&self.weight, self.padding, self.stride, 1, self.groups)?;
        let y = y.broadcast_add(&self.bias.reshape((1, out_channels, 1, 1))?)?;
        self.activation.forward_with(&y, kernels)
    }
}

impl Module for ConvBlock {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        self.forward_with(x, KernelChoice::Native)
    }
}
