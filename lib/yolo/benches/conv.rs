//! `FusedConv2d` against candle's conv2d + bias + activation (the baseline the
//! model used before), on every convolution of YOLOv4-tiny @416, batch 1,
//! plus OpenCV DNN's whole-network time on the same machine in the same run.
//!
//! `cargo bench -p safecity-yolo --bench conv` (set `SAFECITY_BENCH_REPS` for
//! more repetitions; `SAFECITY_YOLO_ASSETS` for another asset folder).

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use candle_core::{Device, Tensor};
use safecity_yolo::activation::Activation;
use safecity_yolo::kernels::{ConvAlgorithm, FusedConv2d};

/// One `[convolutional]` of yolov4-tiny.cfg at 416x416: its Darknet layer
/// index, input `(C, H, W)`, filters, kernel size, stride and activation
/// (pad = size / 2 everywhere; groups = 1).
struct Layer {
    index: usize,
    c: usize,
    h: usize,
    o: usize,
    k: usize,
    stride: usize,
    activation: Activation,
}

/// The 21 convolutions of yolov4-tiny @416, following the routes (the
/// `groups=2 group_id=1` routes halve the channels), max-pools and upsample.
#[rustfmt::skip]
const TINY_416: [(usize, usize, usize, usize, usize, usize, bool); 21] = [
    // (layer, C, H=W, O, K, stride, leaky?)
    (0, 3, 416, 32, 3, 2, true), (1, 32, 208, 64, 3, 2, true), (2, 64, 104, 64, 3, 1, true),
    (4, 32, 104, 32, 3, 1, true), (5, 32, 104, 32, 3, 1, true), (7, 64, 104, 64, 1, 1, true),
    (10, 128, 52, 128, 3, 1, true), (12, 64, 52, 64, 3, 1, true), (13, 64, 52, 64, 3, 1, true),
    (15, 128, 52, 128, 1, 1, true), (18, 256, 26, 256, 3, 1, true), (20, 128, 26, 128, 3, 1, true),
    (21, 128, 26, 128, 3, 1, true), (23, 256, 26, 256, 1, 1, true), (26, 512, 13, 512, 3, 1, true),
    (27, 512, 13, 256, 1, 1, true), (28, 256, 13, 512, 3, 1, true), (29, 512, 13, 255, 1, 1, false),
    (32, 256, 13, 128, 1, 1, true), (35, 384, 26, 256, 3, 1, true), (36, 256, 26, 255, 1, 1, false),
];

fn layers() -> Vec<Layer> {
    TINY_416
        .iter()
        .map(|&(index, c, h, o, k, stride, leaky)| Layer {
            index,
            c,
            h,
            o,
            k,
            stride,
            activation: if leaky {
                Activation::Leaky
            } else {
                Activation::Linear
            },
        })
        .collect()
}

/// Deterministic values in [-0.5, 0.5).
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        })
        .collect()
}

/// Median wall time in ms of `reps` calls after two warm-up calls.
fn time_ms(
    reps: usize,
    mut f: impl FnMut() -> candle_core::Result<Tensor>,
) -> candle_core::Result<f64> {
    for _ in 0..2 {
        f()?;
    }
    let mut times = Vec::with_capacity(reps);
    for _ in 0..reps {
        let start = Instant::now();
        f()?;
        times.push(start.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

/// OpenCV DNN (the Python venv's cv2, 2 threads) on the whole network: the
/// median of 20 timed forwards of a 1x3x416x416 blob, in ms.
fn opencv_ms() -> Result<f64, String> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let assets = std::env::var_os("SAFECITY_YOLO_ASSETS")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/yolo-assets"));
    let script = r#"
import sys, time, numpy as np, cv2
cv2.setNumThreads(2)
net = cv2.dnn.readNetFromDarknet(sys.argv[1], sys.argv[2])
net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
blob = np.random.default_rng(0).random((1, 3, 416, 416), dtype=np.float32)
names = net.getUnconnectedOutLayersNames()
for _ in range(3):
    net.setInput(blob); net.forward(names)
times = []
for _ in range(20):
    t = time.perf_counter(); net.setInput(blob); net.forward(names); times.append(time.perf_counter() - t)
times.sort()
print(times[len(times) // 2] * 1e3)
"#;
    let output = Command::new(root.join(".venv/bin/python"))
        .arg("-c")
        .arg(script)
        .arg(assets.join("yolov4-tiny.cfg"))
        .arg(assets.join("yolov4-tiny.weights"))
        .output()
        .map_err(|e| format!("cannot run .venv/bin/python: {e}"))?;
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).trim().to_string());
    }
    let text = String::from_utf8_lossy(&output.stdout);
    text.trim()
        .parse()
        .map_err(|e| format!("unexpected OpenCV output {text:?}: {e}"))
}

fn main() -> candle_core::Result<()> {
    let reps = std::env::var("SAFECITY_BENCH_REPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let device = Device::Cpu;
    println!(
        "YOLOv4-tiny @416 convolutions, batch 1, median of {reps}; {} rayon threads",
        rayon::current_num_threads()
    );
    println!(
        "{:>5} {:>4} {:>4} {:>4} {:>3} {:>2} {:>7} {:>11} {:>9} {:>9} {:>8} {:>9} {:>7} {:>10}",
        "layer",
        "C",
        "HxW",
        "O",
        "K",
        "s",
        "GFLOP",
        "algorithm",
        "fused ms",
        "GFLOP/s",
        "candle",
        "GFLOP/s",
        "speedup",
        "im2col ms"
    );
    let (mut total_fused, mut total_candle, mut total_flop) = (0.0, 0.0, 0.0);
    for (i, l) in layers().iter().enumerate() {
        let pad = l.k / 2;
        let out = (l.h + 2 * pad - l.k) / l.stride + 1;
        let flop = 2.0 * (l.o * l.c * l.k * l.k * out * out) as f64 / 1e9;
        let x = Tensor::from_vec(
            values(l.c * l.h * l.h, 3 * i as u64 + 1),
            (1, l.c, l.h, l.h),
            &device,
        )?;
        let weight = values(l.o * l.c * l.k * l.k, 3 * i as u64 + 2);
        let bias = values(l.o, 3 * i as u64 + 3);
        let fused = FusedConv2d::new(
            &weight,
            (l.o, l.c, l.k, l.k),
            &bias,
            l.stride,
            pad,
            1,
            l.activation,
        )
        .map_err(candle_core::Error::wrap)?;
        let wt = Tensor::from_vec(weight.clone(), (l.o, l.c, l.k, l.k), &device)?;
        let bt = Tensor::from_vec(bias.clone(), (1, l.o, 1, 1), &device)?;
        let baseline = || {
            l.activation
                .forward(&x.conv2d(&wt, pad, l.stride, 1, 1)?.broadcast_add(&bt)?)
        };
        let candle_ms = time_ms(reps, baseline)?;
        let fused_ms = time_ms(reps, || fused.forward(&x))?;
        // The general path on the same layer, to show what Winograd buys.
        let im2col_ms = if fused.algorithm_for(1, l.h, l.h) == ConvAlgorithm::Im2colGemm {
            "-".to_string()
        } else {
            let general = FusedConv2d::with_algorithm(
                &weight,
                (l.o, l.c, l.k, l.k),
                &bias,
                l.stride,
                pad,
                1,
                l.activation,
                ConvAlgorithm::Im2colGemm,
            )
            .map_err(candle_core::Error::wrap)?;
            format!("{:.2}", time_ms(reps, || general.forward(&x))?)
        };
        total_fused += fused_ms;
        total_candle += candle_ms;
        total_flop += flop;
        println!(
            "{:>5} {:>4} {:>4} {:>4} {:>3} {:>2} {:>7.3} {:>11} {:>9.2} {:>9.1} {:>8.2} {:>9.1} {:>6.2}x {:>10}",
            l.index,
            l.c,
            l.h,
            l.o,
            l.k,
            l.stride,
            flop,
            format!("{:?}", fused.algorithm_for(1, l.h, l.h))
                .replace("Winograd4x4", "winograd")
                .replace("Im2colGemm", "im2col"),
            fused_ms,
            flop / fused_ms * 1e3,
            candle_ms,
            flop / candle_ms * 1e3,
            candle_ms / fused_ms,
            im2col_ms
        );
    }
    println!(
        "{:>5} {:>34.3} {:>11} {:>9.2} {:>9.1} {:>8.2} {:>9.1} {:>6.2}x",
        "total",
        total_flop,
        "",
        total_fused,
        total_flop / total_fused * 1e3,
        total_candle,
        total_flop / total_candle * 1e3,
        total_candle / total_fused
    );
    match opencv_ms() {
        Ok(ms) => println!(
            "reference: OpenCV DNN whole tiny@416 network, 2 threads: {ms:.2} ms; \
             fused convolutions alone: {total_fused:.2} ms = {:.2}x OpenCV's throughput",
            ms / total_fused
        ),
        Err(e) => println!("reference: OpenCV DNN not measured: {e}"),
    }
    Ok(())
}
