//! Darknet's file formats: the `.cfg` network description and the `.weights` blob.

pub mod cfg;
pub mod weights;
