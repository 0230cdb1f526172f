//! Runs one model's forward in a loop, for a profiler:
//!
//! ```sh
//! cargo build --release -p safecity-yolo --example forward_loop
//! RAYON_NUM_THREADS=2 perf record -o /tmp/perf.data target/release/examples/forward_loop \
//!     target/yolo-assets/yolov4-tiny.cfg target/yolo-assets/yolov4-tiny.weights 1 5
//! perf report -i /tmp/perf.data --no-children --sort srcline
//! ```
//!
//! The input is uniform noise of the cfg's size; prints ms per batch.

use std::time::{Duration, Instant};

use candle_core::{Device, Tensor};
use safecity_yolo::darknet::cfg::NetConfig;
use safecity_yolo::model::Darknet;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, cfg, weights, batch, seconds] = &args[..] else {
        eprintln!("usage: forward_loop CFG WEIGHTS BATCH SECONDS");
        std::process::exit(2);
    };
    let cfg = NetConfig::parse(&std::fs::read_to_string(cfg).expect("cfg")).expect("cfg parses");
    let model = Darknet::load(
        &cfg,
        &std::fs::read(weights).expect("weights"),
        &Device::Cpu,
    )
    .expect("model loads");
    let batch: usize = batch.parse().expect("batch");
    let (size, _) = model.input_size();
    let input = Tensor::rand(0f32, 1f32, (batch, 3, size, size), &Device::Cpu).expect("input");
    model.forward_heads(&input).expect("forward");
    let until = Instant::now() + Duration::from_secs_f64(seconds.parse().expect("seconds"));
    let (mut runs, started) = (0, Instant::now());
    while Instant::now() < until {
        model.forward_heads(&input).expect("forward");
        runs += 1;
    }
    println!(
        "{:.1} ms per batch of {batch} ({runs} runs)",
        started.elapsed().as_secs_f64() * 1e3 / runs as f64
    );
}
