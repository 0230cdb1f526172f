//! Where the fetched YOLO assets live: the crate's own `testkit` helpers.

pub use safecity_yolo::assets::*;
