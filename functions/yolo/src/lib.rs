//! # safecity-yolo
//!
//! Runs a Darknet detector — the `.cfg`, `.weights` and names file a city
//! trained — on candle, on the CPU or (feature `cuda`) a CUDA device.

pub mod activation;
