//! [`FusedConv2d`]: convolution + bias + activation as one candle custom op.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, DType, Layout, Shape, Tensor};

use super::error::KernelError;
use super::geometry::{ConvDims, Geometry};
use super::microkernel::PackedRows;
use super::{im2col, winograd};
use crate::activation::Activation;

/// Below this many 4x4 output blocks per call, Winograd's 36 thin GEMMs
/// (each streaming its whole transformed filter, 4x the size of the plain
/// one, for a few columns padded to a multiple of 32) lose to one im2col
/// GEMM. Measured with `examples/conv_loop.rs` (2 threads, AVX-512, mish or
/// leaky): 256->256 at 12x12 (9 blocks) 1.1-1.4 ms through im2col against
/// 1.3-1.4 ms through Winograd; 512->512 at 13x13 (16 blocks) 4.4-4.5 ms
/// against 3.6 ms.
pub const MIN_WINOGRAD_TILES: usize = 16;

/// Below this many input channels per group, a 3x3 stride-1 convolution
/// takes im2col: Winograd's transforms cost per channel what its GEMM saves,
/// and with 3 channels the GEMM is almost nothing. YOLOv4's first layer
/// (3->32 at 416x416, mish) ran 21.8 ms through Winograd and 11.3 ms through
/// im2col (2 threads, AVX-512); from 32 channels up the two were within 10%.
pub const MIN_WINOGRAD_CHANNELS: usize = 16;

/// How a [`FusedConv2d`] computes its output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConvAlgorithm {
    /// im2col (skipped for 1x1 stride-1 kernels: the input already is the
    /// matrix) then one GEMM per group. Any kernel, stride and padding.
    Im2colGemm,
    /// Winograd F(4x4, 3x3) with 36 batched GEMMs. 3x3 stride-1 kernels only.
    Winograd4x4,
}

/// A convolution with its bias and activation fused into the output pass, for
/// f32 NCHW tensors on the CPU.
///
/// The weights are repacked at construction (GEMM rows per group, or the
/// Winograd-domain filters), so a forward pass only transforms the input.
#[derive(Debug, Clone)]
pub struct FusedConv2d {
    pub(crate) dims: ConvDims,
    pub(crate) activation: Activation,
    pub(crate) bias: Vec<f32>,
    pub(crate) algorithm: ConvAlgorithm,
    /// Built by [`FusedConv2d::new`]: small inputs may take im2col instead of Winograd.
    pub(crate) adaptive: bool,
    /// The packed `(O/g × C/g·KH·KW)` weights of each group, for
    /// [`ConvAlgorithm::Im2colGemm`].
    pub(crate) gemm_weights: Vec<PackedRows>,
    /// The packed `(O/g × C/g)` matrix of every transform point, indexed
    /// `group * 36 + point`, for [`ConvAlgorithm::Winograd4x4`].
    pub(crate) winograd_weights: Vec<PackedRows>,
}

impl FusedConv2d {
    /// Prepares a convolution from `(O, C/groups, KH, KW)` row-major weights
    /// and `O` biases (batch norm already folded in), choosing the fastest
    /// algorithm for the shape: Winograd for 3x3 stride 1 with at least
    /// [`MIN_WINOGRAD_CHANNELS`] input channels per group (im2col + GEMM when
    /// an input has fewer than [`MIN_WINOGRAD_TILES`] 4x4 output blocks), else
    /// im2col + GEMM.
    pub fn new(
        weight: &[f32],
        weight_shape: (usize, usize, usize, usize),
        bias: &[f32],
        stride: usize,
        padding: usize,
        groups: usize,
        activation: Activation,
    ) -> Result<Self, KernelError> {
        let (_, cg, kh, kw) = weight_shape;
        let algorithm = if (kh, kw) == (3, 3) && stride == 1 && cg >= MIN_WINOGRAD_CHANNELS {
            ConvAlgorithm::Winograd4x4
        } else {
            ConvAlgorithm::Im2colGemm
        };
        let mut conv = Self::with_algorithm(
            weight,
            weight_shape,
            bias,
            stride,
            padding,
            groups,
            activation,
            algorithm,
        )?;
        conv.adaptive = true;
        Ok(conv)
    }

    /// Like [`FusedConv2d::new`] with the algorithm forced for every input
    /// size; Winograd for a kernel it cannot run falls back to im2col + GEMM.
    #[allow(clippy::too_many_arguments)]
    pub fn with_algorithm(
        weight: &[f32],
        weight_shape: (usize, usize, usize, usize),
        bias: &[f32],
        stride: usize,
        padding: usize,
        groups: usize,
        activation: Activation,
        algorithm: ConvAlgorithm,
    ) -> Result<Self, KernelError> {
        let (out, cg, kh, kw) = weight_shape;
        for (what, v) in [
            ("output channels", out),
            ("input channels per group", cg),
            ("kernel height", kh),
            ("kernel width", kw),
            ("stride", stride),
            ("groups", groups),
        ] {
            if v == 0 {
                return Err(KernelError::Zero { what });
            }
        }
        if out % groups != 0 {
            return Err(KernelError::GroupsMismatch {
                out_channels: out,
                groups,
            });
        }
        let expected = out * cg * kh * kw;
        if weight.len() != expected {
            return Err(KernelError::WeightLength {
                shape: weight_shape,
                expected,
                found: weight.len(),
            });
        }
        if bias.len() != out {
            return Err(KernelError::BiasLength {
                expected: out,
                found: bias.len(),
            });
        }
        let algorithm = match algorithm {
            ConvAlgorithm::Winograd4x4 if (kh, kw) == (3, 3) && stride == 1 => algorithm,
            _ => ConvAlgorithm::Im2colGemm,
        };
        let og = out / groups;
        let rows = cg * kh * kw;
        // The GEMM rows are always kept (a 1x copy): small inputs of a
        // Winograd layer run through im2col too.
        let gemm_weights = weight
            .chunks_exact(og * rows)
            .map(|w| PackedRows::new(w, og, rows))
            .collect();
        let winograd_weights = match algorithm {
            ConvAlgorithm::Im2colGemm => Vec::new(),
            ConvAlgorithm::Winograd4x4 => winograd::transform_weights(weight, out, cg, groups),
        };
        Ok(FusedConv2d {
            dims: ConvDims {
                out_channels: out,
                in_per_group: cg,
                kernel: (kh, kw),
                stride,
                padding,
                groups,
            },
            activation,
            bias: bias.to_vec(),
            algorithm,
            adaptive: false,
            gemm_weights,
            winograd_weights,
        })
    }

    /// The algorithm this convolution runs on large inputs.
    pub fn algorithm(&self) -> ConvAlgorithm {
        self.algorithm
    }

    /// The algorithm a `(batch, C, height, width)` input runs through.
    pub fn algorithm_for(&self, batch: usize, height: usize, width: usize) -> ConvAlgorithm {
        let ConvDims {
            kernel,
            stride,
            padding,
            ..
        } = self.dims;
        let p = 2 * padding;
        let out_h = (height + p).saturating_sub(kernel.0) / stride + 1;
        let out_w = (width + p).saturating_sub(kernel.1) / stride + 1;
        let tiles = batch * out_h.div_ceil(4) * out_w.div_ceil(4);
        match self.algorithm {
            ConvAlgorithm::Winograd4x4 if self.adaptive && tiles < MIN_WINOGRAD_TILES => {
                ConvAlgorithm::Im2colGemm
            }
            algorithm => algorithm,
        }
    }

    /// Output channels `O`.
    pub fn out_channels(&self) -> usize {
        self.dims.out_channels
    }

    /// Input channels the weights expect: `groups * C/groups`.
    pub fn in_channels(&self) -> usize {
        self.dims.in_channels()
    }

    /// Runs the convolution on an f32 `(N, C, H, W)` CPU tensor, giving `(N, O, H', W')`.
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        x.contiguous()?.apply_op1_no_bwd(self)
    }

    /// Checks the input layout and derives the output size.
    fn geometry(&self, layout: &Layout, dtype: DType) -> Result<Geometry, KernelError> {
        let dims = layout.dims();
        let bad = || KernelError::Input {
            channels: self.in_channels(),
            found: format!("{dtype:?} {dims:?}"),
        };
        let &[n, c, h, w] = dims else {
            return Err(bad());
        };
        if dtype != DType::F32 || c != self.in_channels() {
            return Err(bad());
        }
        let (kh, kw) = self.dims.kernel;
        let p = self.dims.padding;
        if h + 2 * p < kh || w + 2 * p < kw {
            return Err(KernelError::TooSmall {
                height: h,
                width: w,
                padding: p,
                kh,
                kw,
            });
        }
        let ho = (h + 2 * p - kh) / self.dims.stride + 1;
        let wo = (w + 2 * p - kw) / self.dims.stride + 1;
        Ok(Geometry { n, c, h, w, ho, wo })
    }
}

impl CustomOp1 for FusedConv2d {
    fn name(&self) -> &'static str {
        "fused-conv2d"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let geo = self
            .geometry(layout, storage.dtype())
            .map_err(candle_core::Error::wrap)?;
        let input = match (storage, layout.contiguous_offsets()) {
            (CpuStorage::F32(data), Some((start, end))) => &data[start..end],
            _ => {
                return Err(candle_core::Error::msg(
                    "fused conv: input must be a contiguous f32 CPU tensor",
                ));
            }
        };
        let out = if geo.n == 0 || geo.ho == 0 || geo.wo == 0 {
            Vec::new()
        } else {
            match self.algorithm_for(geo.n, geo.h, geo.w) {
                ConvAlgorithm::Im2colGemm => im2col::forward(
                    &self.dims,
                    &self.gemm_weights,
                    &self.bias,
                    self.activation,
                    input,
                    &geo,
                ),
                ConvAlgorithm::Winograd4x4 => winograd::forward(
                    &self.dims,
                    &self.winograd_weights,
                    &self.bias,
                    self.activation,
                    input,
                    &geo,
                ),
            }
        };
        Ok((
            CpuStorage::F32(out),
            Shape::from((geo.n, self.dims.out_channels, geo.ho, geo.wo)),
        ))
    }
}
