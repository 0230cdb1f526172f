//! Fast CPU convolution: conv + bias + activation in one candle custom op.
//!
//! [`FusedConv2d`] runs f32 NCHW convolutions (any batch size, stride,
//! padding and group count; 1x1 and 3x3 kernels in the Darknet cfgs) with the
//! batch-norm-folded bias and the activation applied in the pass that writes
//! the output, so the output is written once.
//!
//! # Algorithm
//!
//! - **3x3, stride 1, at least [`MIN_WINOGRAD_CHANNELS`] input channels per
//!   group** (most of YOLOv4's FLOPs): Winograd F(4x4, 3x3). The filters are
//!   transformed once at construction into 36 packed `(O/g × C/g)`
//!   matrices; each call runs three parallel passes over per-thread scratch
//!   buffers: the input transform into `V (point, C/g, tiles)`, eight tiles
//!   per vector (each input row split into its four column phases first, so
//!   the tiles' columns load as whole vectors), one task per input channel;
//!   36 GEMMs `M = U · V`, one task per transform point; the output
//!   transform, which adds the bias and applies the activation while it
//!   writes NCHW rows, one task per output plane. 36 multiplies per 16
//!   outputs instead of 144. Batches run a few images per pass so `V` and
//!   `M` stay bounded.
//! - **everything else** (1x1, stride 2, an image's 3 channels, tiny
//!   inputs): the output is cut into items (a block of at most 256 pixels of
//!   one image × a range of output channels). An item fills its im2col
//!   block pass by pass (256 rows of depth) straight in the micro-kernel's
//!   column slivers (a 1x1 stride-1 row is one copy of the input row),
//!   multiplies it with the packed `(O/g, C/g·KH·KW)` weights and writes
//!   `act(C + bias)` into its output rows. When a block is shared by
//!   several items (few pixels, many channels), it is filled once, in
//!   parallel, before them.
//!
//! Both paths share one GEMM (`microkernel.rs`): weights packed at load in
//! 12-row panels stored pass by pass, the other operand in 32-column
//! slivers, a 12 × 32 block of the result in 24 AVX-512 registers (four
//! 6 × 16 blocks with AVX2 + FMA, a portable loop elsewhere), chosen at run
//! time by `pulp`. In cache it runs at 93-95 % of the core's FMA peak. The
//! crate forbids `unsafe`; `pulp` holds the only `unsafe` (its
//! feature-detected dispatch).
//!
//! Every task body is a `pulp::WithSimd` struct with `inline(always)` down
//! to its loops, dispatched once per task: a closure handed to
//! `Arch::dispatch` is compiled as a function of its own, for the baseline
//! instruction set, which is how the transforms, the im2col copies and mish
//! ran as SSE2 scalar code until this round. Mish's `exp` builds `2^k`
//! without a float-to-int `as` cast (it saturates, and LLVM does not
//! vectorise saturating casts).
//!
//! Inputs with fewer than [`MIN_WINOGRAD_TILES`] 4x4 output blocks take
//! im2col even for 3x3 stride 1: there the 36 GEMMs are too thin to pay for
//! streaming the transformed filters.
//!
//! # Measured speed
//!
//! `cargo bench -p safecity-yolo --bench conv` times every convolution of
//! YOLOv4-tiny @416 at batch 1 against candle's conv2d + bias + activation,
//! and `--bench detect` the whole network against OpenCV DNN, with GFLOP/s
//! per kind of layer against the measured FMA peak ([`fma_peak`]); the
//! numbers are in `docs/benchmarks.md`. `examples/conv_loop.rs` times one
//! shape with either algorithm, `examples/forward_loop.rs` loops a model
//! for `perf`.

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
