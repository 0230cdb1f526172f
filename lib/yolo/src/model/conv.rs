//! `[convolutional]`: convolution with batch norm folded in, bias, activation.

use candle_core::{DType, Device, Module, Tensor};

use super::dtype::MODEL_DTYPE;
use crate::activation::Activation;
use crate::darknet::cfg::ConvConfig;
use crate::darknet::weights::ConvParams;
use crate::kernels::FusedConv2d;

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
    /// load when the model lives on the CPU; `None` elsewhere.
    pub(crate) fused: Option<FusedConv2d>,
}

impl ConvBlock {
    /// Builds the block from its cfg section, its input channel count and the
    /// parameters read from the weights file.
    pub fn load(
        cfg: &ConvConfig,
        in_channels: usize,
        params: ConvParams,
        device: &Device,
    ) -> candle_core::Result<ConvBlock> {
        let shape = (cfg.filters, in_channels / cfg.groups, cfg.size, cfg.size);
        let fused = if device.is_cpu() && MODEL_DTYPE == DType::F32 {
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
        let weight = Tensor::from_vec(params.weight, shape, device)?.to_dtype(MODEL_DTYPE)?;
        let bias = Tensor::from_vec(params.bias, cfg.filters, device)?.to_dtype(MODEL_DTYPE)?;
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

impl Module for ConvBlock {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        if let Some(fused) = &self.fused
            && x.device().is_cpu()
            && x.dtype() == DType::F32
        {
            return fused.forward(x);
        }
        let out_channels = self.bias.dim(0)?;
        let y = x.conv2d(&self.weight, self.padding, self.stride, 1, self.groups)?;
        let y = y.broadcast_add(&self.bias.reshape((1, out_channels, 1, 1))?)?;
        self.activation.forward(&y)
    }
}
