//! What dynamic batching buys: frames per second through the batcher and the
//! real model at batch sizes 1 (the baseline: one forward per frame), 2, 4 and
//! 8, in one run.
//!
//! ```text
//! scripts/fetch-yolo-assets.sh
//! cargo bench -p safecity-detector --bench batching
//! ```
//!
//! `SAFECITY_BENCH_FRAMES` frames (default 16, alternating `bus.jpg` and
//! `zidane.jpg`, decoded beforehand) are submitted at once, as a queue backlog
//! would deliver them with `SAFECITY_CONCURRENCY` >= the batch size;
//! `SAFECITY_BENCH_MODEL` picks `yolov4-tiny` (default) or `yolov4` if its
//! weights are in the assets folder, `SAFECITY_DETECTOR_DEVICE` the device.
//! Each size runs twice, interleaved; the best round counts (the machine may be
//! shared).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use safecity_detector::{BatchPolicy, Batcher, DetectorConfig, DetectorMetrics, YoloModel};
use tokio_util::sync::CancellationToken;

fn assets() -> PathBuf {
    let dir = std::env::var_os("SAFECITY_YOLO_ASSETS")
        .map(PathBuf::from)
        .unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/yolo-assets").into());
    assert!(
        dir.join("coco.names").is_file(),
        "YOLO assets missing in {}: run scripts/fetch-yolo-assets.sh",
        dir.display()
    );
    dir
}

async fn run(model: &YoloModel, images: &[image::RgbImage], batch: usize) -> Duration {
    let batcher = Batcher::spawn(
        Arc::new(model.clone()),
        BatchPolicy {
            max_batch: batch,
            max_wait: Duration::from_millis(20),
        },
        Arc::new(DetectorMetrics::new()),
        CancellationToken::new(),
    );
    let started = Instant::now();
    let tasks: Vec<_> = images
        .iter()
        .cloned()
        .map(|image| {
            let batcher = batcher.clone();
            tokio::spawn(async move { batcher.submit(image).await })
        })
        .collect();
    for task in tasks {
        task.await.expect("task").expect("inference");
    }
    started.elapsed()
}

#[tokio::main]
async fn main() {
    let dir = assets();
    let name = std::env::var("SAFECITY_BENCH_MODEL").unwrap_or_else(|_| "yolov4-tiny".into());
    let frames: usize = std::env::var("SAFECITY_BENCH_FRAMES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(16);
    let device = std::env::var("SAFECITY_DETECTOR_DEVICE").unwrap_or_else(|_| "cpu".into());
    let config = DetectorConfig::from_lookup(|key| match key {
        "SAFECITY_DETECTOR_CFG" => Some(dir.join(format!("{name}.cfg")).display().to_string()),
        "SAFECITY_DETECTOR_WEIGHTS" => {
            Some(dir.join(format!("{name}.weights")).display().to_string())
        }
        "SAFECITY_DETECTOR_NAMES" => Some(dir.join("coco.names").display().to_string()),
        "SAFECITY_DETECTOR_CLASSES" => Some("unused".into()),
        "SAFECITY_DETECTOR_DEVICE" => Some(device.clone()),
        _ => None,
    })
    .expect("configuration");
    let model = YoloModel::load(&config).expect("the model loads");
    let photos = ["bus.jpg", "zidane.jpg"]
        .map(|p| image::open(dir.join(p)).expect("sample photo").to_rgb8());
    let images: Vec<_> = (0..frames).map(|i| photos[i % 2].clone()).collect();

    // Warm-up (allocations, first-touch of the weights).
    run(&model, &images[..2.min(frames)], 2).await;
    let sizes = [1usize, 2, 4, 8];
    let mut best = [Duration::MAX; 4];
    for _round in 0..2 {
        for (i, size) in sizes.iter().enumerate() {
            best[i] = best[i].min(run(&model, &images, *size).await);
        }
    }
    println!("model {name} on {device}, {frames} frames submitted at once, best of 2 rounds");
    println!("| batch size | seconds | frames/s | vs batch 1 |");
    println!("|---:|---:|---:|---:|");
    let baseline = best[0].as_secs_f64();
    for (size, elapsed) in sizes.iter().zip(best) {
        let seconds = elapsed.as_secs_f64();
        println!(
            "| {size} | {seconds:.2} | {:.1} | {:.2}x |",
            frames as f64 / seconds,
            baseline / seconds
        );
    }
}
