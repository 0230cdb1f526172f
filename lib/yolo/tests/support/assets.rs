//! Where the fetched YOLO assets live: the crate's own `testkit` helpers.

pub(crate) use safecity_yolo::assets::*;
