//! # safecity-yolo
//!
//! Runs a Darknet detector — the `.cfg`, `.weights` and names file a city
//! trained — on candle, on the CPU or (feature `cuda`) a CUDA device.
//!
//! - [`darknet`]: the cfg parser and the weights reader (BN folded at load).
//! - [`model`]: the network, one block per cfg section.
//! - [`preprocess`] / [`postprocess`]: image decoding and placement; box
//!   decoding and NMS.
//! - [`detector`]: the facade — images in, labelled pixel boxes out.
//! - [`device`]: picking the CPU or a CUDA device.

pub mod activation;
#[cfg(feature = "testkit")]
pub mod assets;
pub mod darknet;
pub mod detector;
pub mod device;
pub mod error;
pub mod kernels;
pub mod model;
pub mod postprocess;
pub mod preprocess;

pub use detector::{Detector, DetectorOptions, ObjectDetection};
pub use error::LoadError;
