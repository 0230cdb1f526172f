//! The `detector` binary.

fn main() {}
