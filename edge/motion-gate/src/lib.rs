//! # safecity-motion-gate
//!
//! The edge half of safecity's camera pipeline: a **motion gate** that reads
//! each camera's MJPEG stream, decides with cheap CPU work which frames are
//! worth a detector's time, and publishes only those to the broker's frames
//! exchange. (The cameras of the tests and the local city are simulated by
//! `safecity-cctv-sim`, a fixture this crate does not depend on.)
//!
//! - [`motion`]: the pixel pipeline (pure, integer, no per-frame allocation).
//! - [`trigger`]: consecutive-frame trigger, hold-off, re-arm, rate limit (pure).
//! - [`decode`]: JPEG to luma (zune-jpeg; `image` for the rare non-YCbCr frame);
//!   the reduced luma decode for frames 4x or 8x the work size is
//!   `safecity-jpeg` (shared with the detector).
//! - [`gate`]: decode + motion + trigger + re-encode for one camera.
//! - [`camera`]: one task per camera with reconnects; [`source`], [`mjpeg`]: inputs.
//! - [`publisher`]: bounded drop-oldest buffer and the confirmed publisher.
//! - [`registry`]: the camera registry file; [`config`]: process flags.

pub mod camera;
pub mod config;
pub mod decode;
pub mod gate;
pub mod metrics;
pub mod mjpeg;
pub mod motion;
pub mod publisher;
pub mod registry;
mod run;
pub mod source;
pub mod trigger;

pub use config::{GateArgs, GateConfig};
pub use motion::{ImageView, Measurement, MotionConfig, MotionDetector};
pub use registry::{CameraEntry, GateParams, Registry};
pub use run::{RunningGate, StartError, start};
pub use trigger::{Decision, Trigger, TriggerConfig};
