//! # safecity-detector
//!
//! The detector function: consumes camera frames through the safecity
//! runtime, runs them in dynamic batches through a Darknet model
//! ([`safecity_yolo`]), and emits one safety event per incident.
