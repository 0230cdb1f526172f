//! Why a [`FusedConv2d`](super::FusedConv2d) could not be built.

/// A convolution's parameters that the fused kernel cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KernelError {
    /// A size that must be at least 1 is 0.
    #[error("fused conv: {what} must be at least 1, found 0")]
    Zero {
        /// The parameter: "stride", "groups", "output channels", ...
        what: &'static str,
    },
    /// `groups` does not divide the output channel count.
    #[error("fused conv: {groups} groups do not divide {out_channels} output channels")]
    GroupsMismatch {
        /// The output channel count `O`.
        out_channels: usize,
        /// The group count.
        groups: usize,
    },
    /// The weight slice does not hold `O * C/groups * KH * KW` floats.
    #[error("fused conv: weight shape {shape:?} needs {expected} floats, found {found}")]
    WeightLength {
        /// The declared `(O, C/groups, KH, KW)`.
        shape: (usize, usize, usize, usize),
        /// `O * C/groups * KH * KW`.
        expected: usize,
        /// The slice length.
        found: usize,
    },
    /// The bias slice does not hold `O` floats.
    #[error("fused conv: bias needs {expected} floats (one per output channel), found {found}")]
    BiasLength {
        /// `O`.
        expected: usize,
        /// The slice length.
        found: usize,
    },
    /// The input tensor is not `(N, C, H, W)` f32 with `C = groups * C/groups`.
    #[error("fused conv: expected an f32 (N, {channels}, H, W) input, found {found}")]
    Input {
        /// The input channel count the weights need.
        channels: usize,
        /// What the tensor was.
        found: String,
    },
    /// The padded input is smaller than the kernel.
    #[error(
        "fused conv: input {height}x{width} with padding {padding} is smaller than the {kh}x{kw} kernel"
    )]
    TooSmall {
        /// Input height.
        height: usize,
        /// Input width.
        width: usize,
        /// Zero padding on every side.
        padding: usize,
        /// Kernel height.
        kh: usize,
        /// Kernel width.
        kw: usize,
    },
}
