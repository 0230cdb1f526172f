//! `[maxpool]` with Darknet semantics.
//!
//! Darknet's window starts at `-padding/2` and ignores cells outside the
//! input. Zero padding would be wrong (activations can be negative). On the
//! CPU a custom op pools each plane directly, separably (the max over rows of
//! the max over columns: `2·size` comparisons per output instead of
//! `size²`, which matters for YOLOv4's 13x13 SPP windows); on other devices
//! (and with [`KernelChoice::Portable`]) the input is replicate-padded and
//! pooled with candle's op, both of which have CUDA kernels: exactly
//! equivalent, because any window that covers a padding cell also covers the
//! edge cell it copies.

use candle_core::{CpuStorage, CustomOp1, DType, Layout, Module, Shape, Tensor};
use rayon::prelude::*;

use crate::darknet::cfg::MaxPoolConfig;
use crate::kernels::KernelChoice;

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
        self.forward_with(x, KernelChoice::Native)
    }
}

impl MaxPool {
    /// Pools with the chosen implementation: the separable CPU op for an f32
    /// CPU tensor with [`KernelChoice::Native`], else
    /// [`MaxPool::forward_portable`].
    pub fn forward_with(&self, x: &Tensor, kernels: KernelChoice) -> candle_core::Result<Tensor> {
        if self.size == 1 && self.stride == 1 {
            return Ok(x.clone());
        }
        if kernels == KernelChoice::Native && x.device().is_cpu() && x.dtype() == DType::F32 {
            return x.contiguous()?.apply_op1_no_bwd(self);
        }
        self.forward_portable(x)
    }

    /// The device-independent path: replicate padding, then candle's pooling
    /// (tensor ops with kernels on every device and float dtype).
    pub fn forward_portable(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        if self.size == 1 && self.stride == 1 {
            return Ok(x.clone());
        }
        let padded = self.pad(&self.pad(x, 2)?, 3)?;
        padded.max_pool2d_with_stride(self.size, self.stride)
    }
}

impl MaxPool {
    /// Pools one `h × w` plane into `dst` (`out_h × out_w`), using `rows`
    /// (`h × out_w`) for the column maxima.
    fn pool_plane(&self, src: &[f32], (h, w): (usize, usize), rows: &mut [f32], dst: &mut [f32]) {
        let out_w = rows.len() / h;
        let left = self.padding / 2;
        // The input cells `[start, end)` of output position `o` along a length.
        let window = |o: usize, len: usize| {
            let start = (o * self.stride).saturating_sub(left);
            let end = (o * self.stride + self.size).saturating_sub(left).min(len);
            (start, end)
        };
        for (src_row, row) in src.chunks_exact(w).zip(rows.chunks_exact_mut(out_w)) {
            if (self.size, self.stride, left) == (2, 2, 0) && w >= 2 * out_w {
                for (v, pair) in row.iter_mut().zip(src_row.chunks_exact(2)) {
                    *v = pair[0].max(pair[1]);
                }
                continue;
            }
            for (ox, v) in row.iter_mut().enumerate() {
                let (start, end) = window(ox, w);
                *v = src_row[start..end]
                    .iter()
                    .copied()
                    .fold(f32::NEG_INFINITY, f32::max);
            }
        }
        for (oy, dst_row) in dst.chunks_exact_mut(out_w).enumerate() {
            let (start, end) = window(oy, h);
            dst_row.fill(f32::NEG_INFINITY);
            for row in rows.chunks_exact(out_w).take(end).skip(start) {
                for (d, v) in dst_row.iter_mut().zip(row) {
                    *d = d.max(*v);
                }
            }
        }
    }
}

impl CustomOp1 for MaxPool {
    fn name(&self) -> &'static str {
        "darknet-maxpool"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (CpuStorage::F32(data), Some((start, end))) = (storage, layout.contiguous_offsets())
        else {
            candle_core::bail!("maxpool: the input must be a contiguous f32 CPU tensor");
        };
        let &[n, c, h, w] = layout.dims() else {
            candle_core::bail!("maxpool: expected (N, C, H, W), got {:?}", layout.dims());
        };
        let (Some(out_h), Some(out_w)) = (self.output_len(h), self.output_len(w)) else {
            candle_core::bail!(
                "maxpool size {} does not fit a {h}x{w} input with padding {}",
                self.size,
                self.padding
            );
        };
        let input = &data[start..end];
        let mut out = vec![0f32; n * c * out_h * out_w];
        if !out.is_empty() {
            out.par_chunks_mut(out_h * out_w)
                .zip(input.par_chunks(h * w))
                .for_each_init(
                    || vec![0f32; h * out_w],
                    |rows, (dst, src)| self.pool_plane(src, (h, w), rows, dst),
                );
        }
        Ok((CpuStorage::F32(out), Shape::from((n, c, out_h, out_w))))
    }
}

#[cfg(test)]
mod tests {
    use candle_core::Device;

    use super::*;

    #[test]
    fn the_cpu_op_matches_the_padded_candle_path() {
        // (size, stride, padding): tiny's 2/2 (padding defaults to size - 1),
        // yolov4's SPP 5/9/13 stride 1, odd sizes and explicit paddings.
        let cases = [
            (2, 2, 1),
            (2, 2, 0),
            (2, 1, 1),
            (3, 2, 2),
            (5, 1, 4),
            (9, 1, 8),
            (13, 1, 12),
            (3, 3, 0),
        ];
        for (h, w) in [(13, 13), (104, 104), (7, 10), (19, 19)] {
            let x = Tensor::randn(0f32, 1f32, (2, 3, h, w), &Device::Cpu).unwrap();
            for (size, stride, padding) in cases {
                let pool = MaxPool {
                    size,
                    stride,
                    padding,
                };
                if pool.output_len(h).is_none() || pool.output_len(w).is_none() {
                    continue;
                }
                let ours = pool.forward(&x).unwrap();
                let reference = pool.forward_portable(&x).unwrap();
                assert_eq!(
                    ours.dims(),
                    reference.dims(),
                    "{size}/{stride}/{padding} on {h}x{w}"
                );
                let diff = (ours - reference)
                    .unwrap()
                    .abs()
                    .unwrap()
                    .max_all()
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap();
                assert_eq!(diff, 0.0, "{size}/{stride}/{padding} on {h}x{w}");
            }
        }
    }
}
