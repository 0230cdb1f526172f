//! `[upsample]`: nearest-neighbour upsampling by an integer factor.

use candle_core::{Module, Tensor};

use crate::darknet::cfg::UpsampleConfig;

/// An upsampling layer.
#[derive(Debug, Clone)]
pub struct Upsample {
    stride: usize,
}

impl Upsample {
    /// Builds the layer from its cfg section.
    pub fn load(cfg: &UpsampleConfig) -> Upsample {
        Upsample { stride: cfg.stride }
    }
}

impl Module for Upsample {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let (_, _, h, w) = x.dims4()?;
        x.upsample_nearest2d(h * self.stride, w * self.stride)
    }
}
