//! # safecity-cameras
//!
//! The city's cameras as every component sees them. One registry file
//! (`cameras.toml`) drives the motion gates, the detector, caption and the
//! camera simulator; this crate is its one typed model, so that a mask or a
//! zone means the same thing everywhere.
//!
//! - [`registry`]: `[[cameras]]` entries — id, region, position, source,
//!   place names, motion `masks`, named `zones`, the `raw_snapshots` opt-in —
//!   validated with errors that name the camera and the zone.
//! - [`geometry`]: polygons in relative frame coordinates (0..=1, so they
//!   survive resolution changes): validation, point-in-polygon, distance to
//!   a polygon, and rasterising masks onto a grid. Pure functions.
//! - [`privacy`]: pixelating people in camera images, at the source (the
//!   detector) and again before public posts (safecity-social).

pub mod geometry;
pub mod privacy;
pub mod registry;

pub use geometry::{Point, Polygon, PolygonError};
pub use registry::{CameraEntry, CameraRegistry, Mask, RegistryError, Zone};
