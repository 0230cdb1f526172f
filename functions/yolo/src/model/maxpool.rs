//! `[maxpool]` with Darknet semantics.
//!
//! Darknet's window starts at `-padding/2` and ignores cells outside the
//! input. Zero padding would be wrong (activations can be negative);
//! replicating the edge is exactly equivalent, because any window that covers
//! a padding cell also covers the edge cell it copies.

use candle_core::{Module, Tensor};

use crate::darknet::cfg::MaxPoolConfig;

/// A max-pooling layer.
#[derive(Debug, Clone)]
pub struct MaxPool {
    size: usize,
    stride: usize,
    padding: usize,
}

impl MaxPool {
    /// Builds the layer from its cfg section.
    pub fn load(cfg: &MaxPoolConfig) -> MaxPool {
        MaxPool {
            size: cfg.size,
            stride: cfg.stride,
            padding: cfg.padding,
        }
    }

    /// Darknet's output length for an input length: `(len + padding - size) / stride + 1`,
    /// `None` when the window does not fit.
    pub fn output_len(&self, len: usize) -> Option<usize> {
        (len + self.padding)
            .checked_sub(self.size)
            .map(|v| v / self.stride + 1)
    }

    /// Replicate-pads one spatial dimension so a plain pooling gives Darknet's output length.
    fn pad(&self, x: &Tensor, dim: usize) -> candle_core::Result<Tensor> {
        let len = x.dim(dim)?;
        let Some(out) = self.output_len(len) else {
            candle_core::bail!(
                "maxpool size {} does not fit an input of length {len} with padding {}",
                self.size,
                self.padding
            );
        };
        let left = self.padding / 2;
        let needed = (out - 1) * self.stride + self.size;
        let right = needed.saturating_sub(len + left);
        if left == 0 && right == 0 {
            Ok(x.clone())
        } else {
            x.pad_with_same(dim, left, right)
        }
    }
}

impl Module for MaxPool {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        if self.size == 1 && self.stride == 1 {
            return Ok(x.clone());
        }
        let padded = self.pad(&self.pad(x, 2)?, 3)?;
        padded.max_pool2d_with_stride(self.size, self.stride)
    }
}
