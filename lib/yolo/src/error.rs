//! The error returned when a detector cannot be built from its cfg, weights and names.

use std::path::PathBuf;

use crate::darknet::cfg::CfgError;
use crate::darknet::weights::WeightsError;

/// Why a model or detector could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The cfg text is invalid.
    #[error("invalid cfg: {0}")]
    Cfg(#[from] CfgError),
    /// The weights do not fit the cfg.
    #[error("invalid weights: {0}")]
    Weights(#[from] WeightsError),
    /// Layer shapes do not fit together (e.g. a `[yolo]` head after a conv with the wrong `filters`).
    #[error("layer {layer} ([{section}] at line {line}): {message}")]
    Shape {
        /// Layer index (Darknet numbering).
        layer: usize,
        /// Section name.
        section: &'static str,
        /// Section line.
        line: usize,
        /// What does not fit, with expected and found values.
        message: String,
    },
    /// The cfg has no `[yolo]` layer, so there is nothing to detect with.
    #[error("the cfg has no [yolo] layer")]
    NoYoloLayer,
    /// The `[yolo]` layers disagree on `classes=`.
    #[error(
        "[yolo] at line {line} has classes={found}, but the first [yolo] has classes={expected}"
    )]
    InconsistentClasses {
        /// The first head's class count.
        expected: usize,
        /// This head's class count.
        found: usize,
        /// This head's line.
        line: usize,
    },
    /// The names file does not list one name per class.
    #[error(
        "the names list has {names} entries but the cfg's [yolo] layers have classes={classes}"
    )]
    ClassCount {
        /// `classes=` in the cfg.
        classes: usize,
        /// Non-empty lines in the names file.
        names: usize,
    },
    /// A [`DetectorOptions`](crate::detector::DetectorOptions) value is out of range.
    #[error("detector option {name}={value} is invalid: expected {expected}")]
    InvalidOption {
        /// The option's field name.
        name: &'static str,
        /// The value given.
        value: f32,
        /// The accepted range.
        expected: &'static str,
    },
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A file is not UTF-8 text (cfg, names).
    #[error("{path} is not UTF-8 text")]
    NotText {
        /// The file.
        path: PathBuf,
    },
    /// candle failed to create a tensor on the device.
    #[error("cannot create the model's tensors: {0}")]
    Candle(#[from] candle_core::Error),
}
