//! Shared helpers of the safecity-yolo oracle tests and the `detect` bench:
//! asset paths, the Python (OpenCV DNN) runner, raw f32 tensor files, cfg
//! edits and the deterministic random `.weights` writer.
//!
//! The bench includes this module with `#[path]`; each target uses a subset.
#![allow(dead_code, missing_docs)]

pub(crate) mod assets;
pub(crate) mod cfg_text;
pub(crate) mod python;
pub(crate) mod random_weights;
pub(crate) mod tensor_file;
