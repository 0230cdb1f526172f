//! [`SceneError`]: a spec out of range, a photo that does not load, a frame
//! that does not encode.

use std::path::PathBuf;

/// Errors building or rendering a scene.
#[derive(Debug, thiserror::Error)]
pub enum SceneError {
    /// A parameter is out of range.
    #[error("scene parameter `{field}` {reason}")]
    InvalidSpec {
        /// The parameter's name.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A photo could not be read or decoded.
    #[error("scene photo `{path}`: {source}")]
    Photo {
        /// The photo's path.
        path: PathBuf,
        /// Why.
        #[source]
        source: image::ImageError,
    },
    /// JPEG encoding failed.
    #[error("encoding frame {frame} as JPEG: {source}")]
    Encode {
        /// Frame index.
        frame: u64,
        /// Why.
        #[source]
        source: image::ImageError,
    },
}
