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
//!   filters are transformed once at construction into `(36, O/g, C/g)`; each
//!   call transforms the input into 6x6 tiles `(36, C/g, tiles)` in parallel
//!   over channels (rayon), runs 36 GEMMs, and the output transform adds the
//!   bias and applies the activation while it writes NCHW. 36 multiplies per
//!   16 outputs instead of 144.
//! - **everything else** (1x1, stride 2): im2col into `(C/g·KH·KW, N·H'·W')`
//!   built in parallel rows, one GEMM per group with the `(O/g, C/g·KH·KW)`
//!   weights, whose rows are already NCHW output planes; the fused pass adds
//!   bias + activation while copying them out.
//!
//! The GEMMs go through candle's CPU matmul (the `gemm` crate: AVX2/FMA
//! kernels chosen at run time, rayon-parallel), the only safe route to a tuned
//! GEMM: the crate forbids `unsafe`, and `gemm`'s own API is `unsafe fn`.
//!
//! Small inputs of a 3x3 stride-1 layer (fewer than [`MIN_WINOGRAD_TILES`]
//! 4x4 output blocks, e.g. 13x13 at batch 1) take im2col too: there the 36
//! GEMMs are too thin to pay for themselves.
//!
//! # Measured speed
//!
//! `cargo bench -p safecity-yolo --bench conv` times every convolution of
//! YOLOv4-tiny @416 at batch 1 against candle's conv2d + bias + activation.
//! On the 2-core AVX2 EPYC (shared, partly loaded, 2 Dec 2026): all 21
//! convolutions 57 ms fused vs 207 ms for candle (3.6x; 121 vs 33 effective
//! GFLOP/s; 2-10x per layer), with OpenCV DNN's whole network at 47 ms in the
//! same run (24 ms on a quiet machine). The 104x104 and 208x208 layers are
//! the slowest per FLOP: their GEMMs are thin (K = 27..576) and the
//! transformed tiles do not stay in cache.

mod epilogue;
mod error;
mod fused_conv;
mod gemm;
mod im2col;
mod winograd;

pub use error::KernelError;
pub use fused_conv::{ConvAlgorithm, FusedConv2d, MIN_WINOGRAD_TILES};
