//! Times one fused convolution shape in a loop: the tool behind the
//! algorithm thresholds of `kernels/fused_conv.rs` and a target for a
//! profiler.
//!
//! ```sh
//! cargo run --release -p safecity-yolo --example conv_loop -- C O K STRIDE H W BATCH SECONDS
//! # e.g. yolov4-tiny's 512->512 layer, each algorithm forced:
//! FORCE=winograd RAYON_NUM_THREADS=2 target/release/examples/conv_loop 512 512 3 1 13 13 1 2
//! FORCE=im2col   RAYON_NUM_THREADS=2 target/release/examples/conv_loop 512 512 3 1 13 13 1 2
//! ```
//!
//! `FORCE=winograd|im2col` forces the algorithm (default: what
//! `FusedConv2d::new` picks), `MISH=1` uses mish instead of leaky. Padding
//! is `K / 2`, as in the Darknet cfgs. Prints ms per call and GFLOP/s
//! (two per multiply-add of a direct convolution).

use std::time::{Duration, Instant};

use candle_core::{Device, Tensor};
use safecity_yolo::activation::Activation;
use safecity_yolo::kernels::{ConvAlgorithm, FusedConv2d};

fn main() {
    let numbers: Vec<usize> = std::env::args()
        .skip(1)
        .map_while(|a| a.parse().ok())
        .collect();
    let Ok([c, o, k, stride, h, w, batch, seconds]) = <[usize; 8]>::try_from(numbers) else {
        eprintln!("usage: conv_loop C O K STRIDE H W BATCH SECONDS (all integers)");
        std::process::exit(2);
    };
    let weight: Vec<f32> = (0..o * c * k * k)
        .map(|i| ((i * 7919) % 1000) as f32 / 1e4 - 0.05)
        .collect();
    let bias = vec![0.01f32; o];
    let activation = match std::env::var_os("MISH") {
        Some(_) => Activation::Mish,
        None => Activation::Leaky,
    };
    let shape = (o, c, k, k);
    let padding = k / 2;
    let forced = match std::env::var("FORCE").as_deref() {
        Ok("im2col") => Some(ConvAlgorithm::Im2colGemm),
        Ok("winograd") => Some(ConvAlgorithm::Winograd4x4),
        _ => None,
    };
    let conv = match forced {
        Some(algorithm) => FusedConv2d::with_algorithm(
            &weight, shape, &bias, stride, padding, 1, activation, algorithm,
        ),
        None => FusedConv2d::new(&weight, shape, &bias, stride, padding, 1, activation),
    }
    .expect("convolution");
    let x = Tensor::rand(0f32, 1f32, (batch, c, h, w), &Device::Cpu).expect("input");
    conv.forward(&x).expect("forward");
    let until = Instant::now() + Duration::from_secs(seconds as u64);
    let (mut runs, started) = (0u32, Instant::now());
    while runs == 0 || Instant::now() < until {
        conv.forward(&x).expect("forward");
        runs += 1;
    }
    let per_call = started.elapsed().as_secs_f64() / f64::from(runs);
    let ho = (h + 2 * padding - k) / stride + 1;
    let wo = (w + 2 * padding - k) / stride + 1;
    let flops = 2.0 * (o * c * k * k * ho * wo * batch) as f64;
    println!(
        "{c}->{o} {k}x{k}/{stride} {h}x{w} batch {batch}: {:.2} ms, {:.1} GFLOP/s ({:?})",
        per_call * 1e3,
        flops / per_call / 1e9,
        conv.algorithm_for(batch, h, w)
    );
}
