//! Detection throughput of safecity-yolo against OpenCV DNN (the baseline),
//! measured in the same run on the same machine with the same thread count.
//!
//! `cargo bench -p safecity-yolo --bench detect` prints:
//! 1. images/s of our `Darknet::forward_heads` and of OpenCV's `net.forward`
//!    (`benches/opencv_detect.py`, default OpenCV settings, its in-layer
//!    decode + NMS included) on same-size blobs, for yolov4-tiny @416 (COCO
//!    weights) and yolov4 @416 / @608 (deterministic random weights: speed does
//!    not depend on the values), at batch 1, 4 and 8; ratio = ours / OpenCV
//!    in images/s (> 1: we are faster); then batch 4's time per image
//!    against batch 1's;
//! 2. our end-to-end `Detector::detect` on the two sample photos (decode of
//!    the JPEGs excluded; resize, forward, decode, NMS included);
//! 3. every model's batch-1 forward by kind of layer (1x1, 3x3 stride 1,
//!    3x3 stride 2, ...): time, share, GFLOP/s and the fraction of the FMA
//!    peak of the same threads, measured in the run (`kernels::fma_peak`);
//! 4. a per-layer profile of our yolov4-tiny @416 forward: every conv block
//!    timed on its real input, the rest (route, maxpool, upsample) as the
//!    remainder of a full forward.
//!
//! Needs the assets (`scripts/fetch-yolo-assets.sh`) and `.venv` with OpenCV.
//! `SAFECITY_BENCH_FILTER=tiny` (a substring of the row label) runs a subset;
//! `SAFECITY_BENCH_LAYERS=1` adds the per-layer profile of the full models.
//! Iteration counts are small: v4 @608 batch 8 alone is minutes on 2 cores.
//!
//! Quick mode (`SAFECITY_BENCH_QUICK=1`): tiny @416 batch 1 (3 iterations)
//! and yolov4 @416 batch 1 (1 iteration) only, no profiles. With
//! `SAFECITY_BENCH_ROWS` set, each row of the table is also appended as a
//! row for `safecity bench` (images/s, ours against OpenCV, issue 15's
//! targets).

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use candle_core::{Device, Module, Tensor};
use safecity_yolo::darknet::cfg::NetConfig;
use safecity_yolo::detector::{Detector, DetectorOptions};
use safecity_yolo::kernels::fma_peak;
use safecity_yolo::model::Darknet;
use safecity_yolo::preprocess::{self, ImageLimits};
use support::python::ScratchDir;
use support::{assets, cfg_text, python, random_weights};

/// Threads for both sides (the CI/dev machine has 2 cores).
const THREADS: usize = 2;

/// One benchmarked network.
struct Net {
    label: &'static str,
    size: usize,
    cfg: std::path::PathBuf,
    weights: std::path::PathBuf,
    /// (batch, timed iterations)
    runs: Vec<(usize, usize)>,
}

/// One row of the table.
struct Row {
    label: String,
    batch: usize,
    iterations: usize,
    ours_s: f64,
    opencv_s: f64,
}

/// A seeded uniform [0, 1) input of shape (batch, 3, size, size).
fn blob(batch: usize, size: usize) -> Tensor {
    let mut rng = random_weights::SplitMix64::new(42);
    let data: Vec<f32> = (0..batch * 3 * size * size)
        .map(|_| rng.uniform(0.0, 1.0))
        .collect();
    Tensor::from_vec(data, (batch, 3, size, size), &Device::Cpu).expect("input tensor")
}

/// Seconds per `forward_heads` of BATCH images (one warm-up, then ITERATIONS).
fn time_ours(model: &Darknet, batch: usize, iterations: usize, warm_up: bool) -> f64 {
    let (size, _) = model.input_size();
    let input = blob(batch, size);
    if warm_up {
        model.forward_heads(&input).expect("forward");
    }
    let started = Instant::now();
    for _ in 0..iterations {
        model.forward_heads(&input).expect("forward");
    }
    started.elapsed().as_secs_f64() / iterations as f64
}

/// Seconds per batch of OpenCV DNN for each (batch, iterations) of NET.
fn time_opencv(net: &Net) -> Vec<f64> {
    let mut args: Vec<String> = vec![
        net.cfg.display().to_string(),
        net.weights.display().to_string(),
        net.size.to_string(),
        THREADS.to_string(),
    ];
    args.extend(net.runs.iter().map(|(b, i)| format!("{b}:{i}")));
    let out = python::run(&python::script("benches", "opencv_detect.py"), args);
    out.lines()
        .map(|line| {
            let v: serde_json::Value =
                serde_json::from_str(line).expect("opencv_detect.py prints JSON lines");
            v["seconds_per_batch"].as_f64().expect("seconds_per_batch")
        })
        .collect()
}

fn load(cfg: &std::path::Path, weights: &std::path::Path) -> Darknet {
    let cfg = NetConfig::parse(&std::fs::read_to_string(cfg).expect("cfg")).expect("cfg parses");
    Darknet::load(
        &cfg,
        &std::fs::read(weights).expect("weights"),
        &Device::Cpu,
    )
    .expect("model loads")
}

fn print_table(rows: &[Row]) {
    println!();
    println!(
        "{:<16} {:>5} {:>5} {:>12} {:>10} {:>12} {:>10} {:>13}",
        "model",
        "batch",
        "iters",
        "ours ms/b",
        "ours img/s",
        "OpenCV ms/b",
        "OpenCV i/s",
        "ours/OpenCV"
    );
    for r in rows {
        let ours = r.batch as f64 / r.ours_s;
        let opencv = r.batch as f64 / r.opencv_s;
        println!(
            "{:<16} {:>5} {:>5} {:>12.1} {:>10.2} {:>12.1} {:>10.2} {:>12.3}x",
            r.label,
            r.batch,
            r.iterations,
            r.ours_s * 1e3,
            ours,
            r.opencv_s * 1e3,
            opencv,
            ours / opencv
        );
    }
}

/// Issue 15's target for a model at a batch size (ours / OpenCV in images/s).
fn target(label: &str, batch: usize) -> Option<&'static str> {
    match (label.starts_with("yolov4-tiny"), batch) {
        (true, 1) => Some(">= 1.5x"),
        (true, 8) => Some(">= 1.0x"),
        (false, 1) => Some(">= 1.2x"),
        _ => None,
    }
}

/// One row of the table for `safecity bench`.
fn emit_row(label: &str, batch: usize, iterations: usize, ours_s: f64, opencv_s: f64) {
    let row = safecity_bench_rows::Row::new(
        "detector",
        format!(
            "{label}, batch {batch}, CPU {THREADS} threads ({iterations} timed {})",
            if iterations == 1 { "run" } else { "runs" }
        ),
        batch as f64 / ours_s,
        "img/s",
        safecity_bench_rows::Better::Higher,
    )
    .baseline(
        format!("OpenCV DNN, {THREADS} threads"),
        batch as f64 / opencv_s,
    );
    match target(label, batch) {
        Some(target) => row.target(target),
        None => row,
    }
    .emit()
    .expect("bench rows");
}

/// Per-layer profile of our forward at the model's size, batch 1.
fn profile(model: &Darknet, label: &str) {
    let (size, _) = model.input_size();
    let input = blob(1, size);
    let all: Vec<usize> = (0..model.num_layers()).collect();
    let outputs = model.forward_layers(&input, &all).expect("forward_layers");
    let repeats = 3;
    let full = (0..repeats)
        .map(|_| {
            let started = Instant::now();
            model.forward_heads(&input).expect("forward");
            started.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min);
    println!();
    println!(
        "per-layer profile, {label} batch 1 (conv blocks on their real input; min of {repeats})"
    );
    println!(
        "{:>5} {:<20} {:>7} {:>16} {:>9} {:>8} {:>7}",
        "layer", "conv", "act", "out (C,H,W)", "ms", "GFLOP/s", "share"
    );
    let mut conv_total = 0.0;
    for (index, block) in model.conv_blocks() {
        let x = if index == 0 {
            &input
        } else {
            &outputs[index - 1]
        };
        let seconds = (0..repeats)
            .map(|_| {
                let started = Instant::now();
                block.forward(x).expect("conv forward");
                started.elapsed().as_secs_f64()
            })
            .fold(f64::INFINITY, f64::min);
        conv_total += seconds;
        let w = block.weight().dims().to_vec();
        let (c, h, wd) = model.output_shape(index).expect("shape");
        let flops = 2.0 * (w[0] * w[1] * w[2] * w[3]) as f64 * (h * wd) as f64;
        println!(
            "{index:>5} {:<20} {:>7} {:>16} {:>9.2} {:>8.1} {:>6.1}%",
            format!(
                "{}x{}/{} {}->{}",
                w[2],
                w[3],
                block.stride(),
                w[1] * block.groups(),
                w[0]
            ),
            format!("{:?}", block.activation()),
            format!("({c},{h},{wd})"),
            seconds * 1e3,
            flops / seconds / 1e9,
            100.0 * seconds / full
        );
    }
    println!(
        "isolated convs {:.1} ms vs full forward {:.1} ms",
        conv_total * 1e3,
        full * 1e3
    );
    // Every layer timed inside real forwards (min of the repeats per layer).
    let mut best: Vec<f64> = vec![f64::INFINITY; model.num_layers()];
    for _ in 0..repeats {
        let timings = model.profile_layers(&input).expect("profile");
        for (b, t) in best.iter_mut().zip(timings) {
            *b = b.min(t.as_secs_f64());
        }
    }
    let conv_layers: Vec<usize> = model.conv_blocks().iter().map(|(i, _)| *i).collect();
    let in_forward_convs: f64 = conv_layers.iter().map(|&i| best[i]).sum();
    let others: f64 = best.iter().sum::<f64>() - in_forward_convs;
    let mut slow_others: Vec<(usize, f64)> = best
        .iter()
        .enumerate()
        .filter(|(i, _)| !conv_layers.contains(i))
        .map(|(i, t)| (i, *t))
        .collect();
    slow_others.sort_by(|a, b| b.1.total_cmp(&a.1));
    println!(
        "inside the forward: convs {:.1} ms, other layers {:.1} ms (slowest: {})",
        in_forward_convs * 1e3,
        others * 1e3,
        slow_others
            .iter()
            .take(4)
            .map(|(i, t)| format!("layer {i} {:.2} ms", t * 1e3))
            .collect::<Vec<_>>()
            .join(", ")
    );
}

/// Prints, per model, batch 4's time per image against batch 1's (issue
/// 15: batching must not cost per image).
fn batch_check(rows: &[Row]) {
    let per_image = |label: &str, batch: usize| {
        rows.iter()
            .find(|r| r.label == label && r.batch == batch)
            .map(|r| r.ours_s / batch as f64)
    };
    let mut labels: Vec<&str> = rows.iter().map(|r| r.label.as_str()).collect();
    labels.dedup();
    for label in labels {
        if let (Some(one), Some(four)) = (per_image(label, 1), per_image(label, 4)) {
            println!(
                "{label}: batch 4 {:.1} ms/image vs batch 1 {:.1} ms/image ({:.2}x) {}",
                four * 1e3,
                one * 1e3,
                one / four,
                if four <= one {
                    "ok"
                } else {
                    "SLOWER per image"
                }
            );
        }
    }
}

/// Floating-point operations of layer `index` of `model` for one image
/// when it is a convolution (two per multiply-add of a direct convolution).
fn conv_flops(model: &Darknet, index: usize) -> Option<f64> {
    let (_, block) = model.conv_blocks().into_iter().find(|(i, _)| *i == index)?;
    let w = block.weight().dims().to_vec();
    let (_, h, wd) = model.output_shape(index)?;
    Some(2.0 * (w[0] * w[1] * w[2] * w[3]) as f64 * (h * wd) as f64)
}

/// A batch-1 forward of `net` by kind of layer: time, share, and for
/// convolutions GFLOP/s and the fraction of `peak` (GFLOP/s of all threads).
fn by_kind(model: &Darknet, net: &Net, peak: f64) {
    let input = blob(1, net.size);
    model.profile_layers(&input).expect("profile");
    let mut best: Vec<f64> = vec![f64::INFINITY; model.num_layers()];
    for _ in 0..2 {
        let timings = model.profile_layers(&input).expect("profile");
        for (b, t) in best.iter_mut().zip(timings) {
            *b = b.min(t.as_secs_f64());
        }
    }
    // (kind, seconds, layers, flops)
    let mut kinds: Vec<(String, f64, usize, f64)> = Vec::new();
    for (layer, seconds) in best.iter().enumerate() {
        let kind = model.layer_kind(layer).expect("layer");
        let flops = conv_flops(model, layer).unwrap_or(0.0);
        match kinds.iter_mut().find(|(k, ..)| *k == kind) {
            Some(entry) => {
                entry.1 += seconds;
                entry.2 += 1;
                entry.3 += flops;
            }
            None => kinds.push((kind, *seconds, 1, flops)),
        }
    }
    kinds.sort_by(|a, b| b.1.total_cmp(&a.1));
    let total: f64 = kinds.iter().map(|k| k.1).sum();
    println!();
    println!(
        "{} batch 1, {:.1} ms by kind of layer (best of 2 per layer):",
        net.label,
        total * 1e3
    );
    println!(
        "  {:<14} {:>4} {:>9} {:>6} {:>8} {:>9}",
        "kind", "n", "ms", "share", "GFLOP/s", "of peak"
    );
    for (kind, seconds, count, flops) in kinds {
        let (rate, of_peak) = if flops > 0.0 {
            let rate = flops / seconds / 1e9;
            (format!("{rate:.1}"), format!("{:.0}%", 100.0 * rate / peak))
        } else {
            ("-".into(), "-".into())
        };
        println!(
            "  {kind:<14} {count:>4} {:>9.1} {:>5.1}% {rate:>8} {of_peak:>9}",
            seconds * 1e3,
            100.0 * seconds / total
        );
    }
}

fn main() {
    rayon::ThreadPoolBuilder::new()
        .num_threads(THREADS)
        .build_global()
        .ok();
    let candle_threads = candle_core::utils::get_num_threads();
    println!("threads: ours {candle_threads} (candle) / rayon {THREADS}, OpenCV {THREADS}");
    if candle_threads != THREADS {
        println!(
            "note: candle uses {candle_threads} threads; run with RAYON_NUM_THREADS={THREADS} for equal threads"
        );
    }
    let filter = std::env::var("SAFECITY_BENCH_FILTER").unwrap_or_default();
    let quick = safecity_bench_rows::quick();
    let scratch = ScratchDir::new("bench");
    let stock = assets::text("yolov4.cfg");
    let v4_weights = scratch.join("yolov4-random.weights");
    std::fs::write(&v4_weights, random_weights::generate(&stock, 0x5AFE_C17F))
        .expect("write weights");
    let mut nets = vec![Net {
        label: "yolov4-tiny@416",
        size: 416,
        cfg: assets::path("yolov4-tiny.cfg"),
        weights: assets::path("yolov4-tiny.weights"),
        runs: if quick {
            vec![(1, 3)]
        } else {
            vec![(1, 10), (4, 3), (8, 2)]
        },
    }];
    let full_runs = if quick {
        vec![(416, vec![(1, 1)])]
    } else {
        vec![
            (416, vec![(1, 3), (4, 2), (8, 1)]),
            (608, vec![(1, 2), (4, 1), (8, 1)]),
        ]
    };
    for (size, runs) in full_runs {
        let cfg = scratch.join(&format!("yolov4-{size}.cfg"));
        std::fs::write(&cfg, cfg_text::with_input_size(&stock, size, size)).expect("write cfg");
        nets.push(Net {
            label: if size == 416 {
                "yolov4@416"
            } else {
                "yolov4@608"
            },
            size,
            cfg,
            weights: v4_weights.clone(),
            runs,
        });
    }
    nets.retain(|n| n.label.contains(&filter));

    let mut rows = Vec::new();
    for net in &nets {
        let opencv = time_opencv(net);
        let model = load(&net.cfg, &net.weights);
        for (i, (&(batch, iterations), opencv_s)) in net.runs.iter().zip(opencv).enumerate() {
            let ours_s = time_ours(&model, batch, iterations, i == 0);
            eprintln!(
                "{} batch {batch}: ours {:.1} ms, OpenCV {:.1} ms",
                net.label,
                ours_s * 1e3,
                opencv_s * 1e3
            );
            emit_row(net.label, batch, iterations, ours_s, opencv_s);
            rows.push(Row {
                label: net.label.to_string(),
                batch,
                iterations,
                ours_s,
                opencv_s,
            });
        }
    }
    print_table(&rows);
    batch_check(&rows);
    if quick {
        return;
    }

    // Where a batch-1 forward spends its time, by kind of layer, against
    // the FMA peak of the threads both sides use.
    let peak: f64 = rayon::broadcast(|_| fma_peak(Duration::from_millis(300)))
        .iter()
        .map(|p| p.gflops)
        .sum();
    let lanes = fma_peak(Duration::from_millis(10)).lanes;
    println!();
    println!(
        "FMA peak of {THREADS} threads together, {lanes}-lane f32 vectors: {peak:.0} GFLOP/s \
         (GFLOP/s below count a direct convolution's multiply-adds; Winograd does fewer)"
    );
    for net in &nets {
        let model = load(&net.cfg, &net.weights);
        by_kind(&model, net, peak);
        if std::env::var_os("SAFECITY_BENCH_LAYERS").is_some() && !net.label.contains("tiny") {
            profile(&model, net.label);
        }
    }

    if "yolov4-tiny@416".contains(&filter) {
        let names = assets::coco_names();
        let detector = Detector::from_files(
            &assets::path("yolov4-tiny.cfg"),
            &assets::path("yolov4-tiny.weights"),
            &assets::path("coco.names"),
            Device::Cpu,
            DetectorOptions::default(),
        )
        .expect("detector");
        assert_eq!(detector.class_names().len(), names.len());
        let images: Vec<_> = ["bus.jpg", "zidane.jpg"]
            .iter()
            .map(|n| preprocess::decode(&assets::read(n), &ImageLimits::default()).expect("photo"))
            .collect();
        detector.detect(&images).expect("detect");
        let iterations = 3;
        let started = Instant::now();
        for _ in 0..iterations {
            detector.detect(&images).expect("detect");
        }
        let per_batch = started.elapsed().as_secs_f64() / iterations as f64;
        println!();
        println!(
            "Detector::detect yolov4-tiny@416, bus.jpg + zidane.jpg in one batch: {:.1} ms/batch, {:.2} img/s",
            per_batch * 1e3,
            2.0 / per_batch
        );
        profile(detector.model(), "yolov4-tiny@416");
    }
}
