//! Fast CPU convolution: conv + bias + activation in one candle custom op.
//!
//! [`FusedConv2d`] runs f32 NCHW convolutions (any batch size, stride,
//! padding and group count; 1x1 and 3x3 kernels in the Darknet cfgs) with the
//! batch-norm-folded bias and the activation applied in the pass that writes
//! the output, so the output is written once.
//!
//! # Algorithm
//!
//! - **3x3, stride 1** (most of YOLOv4's FLOPs): Winograd F(4x4, 3x3). The
//!   filters are transformed once at construction into 36 packed
//!   `(O/g × C/g)` matrices; each call runs three parallel passes over
//!   per-thread scratch buffers: the input transform into
//!   `V (point, C/g, tiles)`, eight tiles per vector, one task per input
//!   channel; 36 GEMMs `M = U · V`, one task per transform point; the output
//!   transform, which adds the bias and applies the activation while it
//!   writes NCHW, one task per output plane. 36 multiplies per 16 outputs
//!   instead of 144. Batches run a few images per pass so `V` and `M` stay
//!   cache-sized.
//! - **everything else** (1x1, stride 2, tiny inputs): the output is cut into
//!   items (a block of at most 256 pixels of one image × a range of output
//!   channels); each item fills its im2col block in scratch, multiplies it
//!   with the packed `(O/g, C/g·KH·KW)` weights in passes of at most 512 rows
//!   of depth, and writes `act(C + bias)` into its output rows.
//!
//! Both paths share one GEMM micro-kernel (`microkernel.rs`): safe SIMD
//! through `pulp`, which picks AVX-512, AVX2+FMA or a portable loop at run
//! time, with the `MR × 2·lanes` block of the result in registers. The
//! crate forbids `unsafe`; `pulp` holds the only `unsafe` (its
//! feature-detected dispatch).
//!
//! Inputs with fewer than [`MIN_WINOGRAD_TILES`] 4x4 output blocks take
//! im2col even for 3x3 stride 1: there the 36 GEMMs are too thin to pay for
//! streaming the transformed filters.
//!
//! # Measured speed
//!
//! `cargo bench -p safecity-yolo --bench conv` times every convolution of
//! YOLOv4-tiny @416 at batch 1 against candle's conv2d + bias + activation,
//! and `--bench detect` the whole network against OpenCV DNN; the numbers
//! are in `docs/benchmarks.md`.

mod epilogue;
mod error;
mod fused_conv;
mod geometry;
mod im2col;
mod microkernel;
mod peak;
mod scratch;
mod winograd;

pub use error::KernelError;
pub use fused_conv::{ConvAlgorithm, FusedConv2d, MIN_WINOGRAD_CHANNELS, MIN_WINOGRAD_TILES};
pub use peak::{FmaPeak, fma_peak};

/// Which implementation of the layers a model runs.
///
/// Every layer has two: the CPU custom ops of this module (fused
/// convolution, separable max pooling, element-wise Darknet activations),
/// which only run on f32 CPU tensors, and a composition of candle tensor ops
/// that runs on any device and dtype, so a model on a CUDA device never
/// copies to the host mid-forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum KernelChoice {
    /// The CPU custom ops where they apply (f32 on the CPU), candle's tensor
    /// ops everywhere else (CUDA, f16).
    #[default]
    Native,
    /// candle's tensor ops everywhere: exactly what a CUDA device runs. On the
    /// CPU this checks that path without a GPU (slower than `Native`).
    Portable,
}
