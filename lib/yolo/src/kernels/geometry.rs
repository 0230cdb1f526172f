//! The sizes the convolution strategies share: the fixed shape of a
//! convolution ([`ConvDims`]) and the input and output sizes of one call
//! ([`Geometry`]).
//!
//! The dispatcher (`fused_conv.rs`) builds both and hands them to a
//! strategy (`im2col.rs`, `winograd.rs`); the strategies import them from
//! here, never from the dispatcher, so the dependency only goes one way.

/// What a convolution is, independent of its input: channels, kernel,
/// stride, padding and groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ConvDims {
    /// Output channels `O`.
    pub(crate) out_channels: usize,
    /// Input channels of each group, `C/g`.
    pub(crate) in_per_group: usize,
    /// `(KH, KW)`.
    pub(crate) kernel: (usize, usize),
    pub(crate) stride: usize,
    /// Zero padding on each side.
    pub(crate) padding: usize,
    pub(crate) groups: usize,
}

impl ConvDims {
    /// Input channels the weights expect: `groups * C/groups`.
    pub(crate) fn in_channels(&self) -> usize {
        self.groups * self.in_per_group
    }
}

/// Input and output sizes of one call.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Geometry {
    pub(crate) n: usize,
    pub(crate) c: usize,
    pub(crate) h: usize,
    pub(crate) w: usize,
    pub(crate) ho: usize,
    pub(crate) wo: usize,
}
