//! [`MotionError`]: a parameter out of range, or a frame buffer that does
//! not match its declared size.

/// Errors of the pixel pipeline.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MotionError {
    /// A parameter is out of its range.
    #[error("motion parameter `{field}` {reason}")]
    InvalidConfig {
        /// The parameter's name (as in the registry's `[gate.motion]` table).
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A motion mask is not a usable polygon.
    #[error("motion mask {index}: {error}")]
    InvalidMask {
        /// Index of the mask (as listed for the camera).
        index: usize,
        /// What is wrong with it.
        error: safecity_cameras::PolygonError,
    },
    /// The image buffer does not match its declared size.
    #[error("image buffer has {actual} bytes, {width}x{height}x{channels} needs {expected}")]
    BadImage {
        /// Declared width.
        width: u32,
        /// Declared height.
        height: u32,
        /// Declared channels.
        channels: u8,
        /// Bytes needed.
        expected: usize,
        /// Bytes given.
        actual: usize,
    },
}
