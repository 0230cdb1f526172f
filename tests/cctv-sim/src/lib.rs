//! # safecity-cctv-sim
//!
//! The logical CCTV of the local city and of the tests: it serves scripted,
//! deterministic scenes as MJPEG streams over HTTP, the way IP cameras do.
//! It is a fixture, not part of the product: the motion gate never depends
//! on it, only its tests and the local city do.
//!
//! - [`scene`]: frame `n` of a scene as a picture (background, noise,
//!   lighting drift, moving objects, photo sprites), and [`scene::encode_jpeg`].
//! - [`server`]: MJPEG over HTTP, live or replay clock, fault injection.
//! - [`registry`]: the cameras of a camera registry file that have a `sim`
//!   table, read the simulator's way (the gate reads the same file its own way).
//! - [`mjpeg`]: one multipart part.
//! - [`cli`]: the `cctv-sim` command.

pub mod cli;
pub mod mjpeg;
pub mod registry;
pub mod scene;
pub mod server;

pub use scene::{Scene, SceneSpec};
pub use server::{CctvSim, SimCamera, SimControl, SimMode};
