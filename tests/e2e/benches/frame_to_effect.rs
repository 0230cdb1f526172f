//! Frame -> effect latency, warm: a camera frame published to the frames
//! exchange, through a running detector (yolov4-tiny@416, the city's
//! `classes.coco.toml`, default settings: 50 ms batch wait, two frames per
//! track before an incident opens) to a running map-pin, until the pin is in
//! map-pin's store.
//!
//! ```text
//! scripts/fetch-yolo-assets.sh
//! cargo bench -p safecity-e2e --bench frame_to_effect     # BENCH_FRAME_PROBES (20)
//! ```
//!
//! Each probe is a new incident: a camera of its own sends `bus.jpg` (COCO
//! `bus` -> `accident`, demo mapping); the frames before the one that can
//! open the incident are sent first and waited for, then the opening frame
//! is timed from just before its publish (confirm included) to the moment
//! the pin's row is visible (the store polled every 2 ms). Both functions
//! run in this process on the real runtime and the local RabbitMQ, each
//! with its own broker connections; a process per function, as in the city,
//! adds no step on this path. The baseline, measured in the same run, is
//! the floor of that path: the model alone (`Detector::detect`: resize,
//! forward, decode, NMS) on the same decoded frame, on the same threads.
//! Everything else — JPEG decode, the 50 ms batch wait, incident filing,
//! the snapshot, two confirmed publishes, map-pin's SQLite upsert — is the
//! difference.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::Utc;
use safecity_bench_rows::{Better, Row};
use safecity_detector::{BatchModel as _, ClassMap, DetectorConfig, DetectorFunction, Settings};
use safecity_detector::{YoloModel, batcher::BatchPolicy};
use safecity_events::{Camera, Frame};
use safecity_map_pin::{MapPin, PinStore};
use safecity_runtime::testing::{TestVhost, metric};
use tokio_util::sync::CancellationToken;

const GROUP: &str = "frame-to-effect";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn assets() -> PathBuf {
    let dir = std::env::var_os("SAFECITY_YOLO_ASSETS")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/yolo-assets"));
    assert!(
        dir.join("yolov4-tiny.weights").is_file(),
        "YOLO assets missing in {}: run scripts/fetch-yolo-assets.sh",
        dir.display()
    );
    dir
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let index = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[index]
}

async fn until(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done().await {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn frame(camera: &str, sequence: u64, jpeg: &[u8]) -> Frame {
    Frame {
        camera: Camera {
            id: camera.to_owned(),
            region: "busan".to_owned(),
            latitude: 35.1587,
            longitude: 129.1604,
        },
        captured_at: Utc::now(),
        sequence,
        jpeg: jpeg.to_vec(),
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    // `cargo bench` passes --bench; anything else (a test run) has nothing to do.
    if !args.iter().any(|a| a == "--bench") || args.iter().any(|a| a == "--test" || a == "--list") {
        return;
    }
    let probes: usize = safecity_bench_rows::setting("BENCH_FRAME_PROBES", 20, 5).max(1);
    let dir = assets();
    let classes = root().join("functions/detector/classes.coco.toml");
    let config = DetectorConfig::from_lookup(|key| match key {
        "SAFECITY_DETECTOR_CFG" => Some(dir.join("yolov4-tiny.cfg").display().to_string()),
        "SAFECITY_DETECTOR_WEIGHTS" => Some(dir.join("yolov4-tiny.weights").display().to_string()),
        "SAFECITY_DETECTOR_NAMES" => Some(dir.join("coco.names").display().to_string()),
        "SAFECITY_DETECTOR_CLASSES" => Some(classes.display().to_string()),
        _ => None,
    })
    .expect("detector configuration");
    let class_map = ClassMap::load(&config.classes).expect("class map");
    let model = YoloModel::load(&config).expect("the model loads");
    let class_names = model.class_names().to_vec();
    let (width, height) = model.detector().model().input_size();
    let settings = Settings {
        decode_at_least: Some((width as u32, height as u32)),
        ..Settings::from(&config)
    };
    let BatchPolicy {
        max_batch,
        max_wait,
    } = settings.batch;
    let opening_frame = settings.lifecycle.min_hits.max(1) as u64;
    let jpeg = std::fs::read(dir.join("bus.jpg")).expect("bus.jpg");

    let vhost = TestVhost::new("bench-frame-effect");
    let stop = CancellationToken::new();
    let detector = DetectorFunction::new(
        model.clone(),
        &class_names,
        &class_map,
        settings,
        stop.clone(),
    )
    .expect("the class map fits the model");
    let detector = safecity_runtime::start(
        detector,
        vhost.config(&[("SAFECITY_CONCURRENCY", "8")]),
        stop.clone(),
    )
    .await
    .expect("the detector starts");
    let work = std::env::temp_dir().join(format!("safecity-bench-frame-{}", std::process::id()));
    std::fs::create_dir_all(&work).expect("work folder");
    let store = PinStore::open(&format!(
        "sqlite://{}?mode=rwc",
        work.join("pins.db").display()
    ))
    .await
    .expect("pin store");
    let map_pin =
        safecity_runtime::start(MapPin::new(store.clone()), vhost.config(&[]), stop.clone())
            .await
            .expect("map-pin starts");
    until("both functions consume", async || {
        detector.is_ready() && map_pin.is_ready()
    })
    .await;
    let client = vhost.client().await;
    let handled = || {
        metric(
            &detector.metrics_text(),
            "safecity_events_succeeded_total",
            "\"frames\"",
        )
        .unwrap_or(0.0)
    };
    println!(
        "frame -> map pin, warm: yolov4-tiny@{width} (batch {max_batch}, wait {} ms), an incident opens on frame {opening_frame} of a track; {probes} incidents (+1 warm-up)",
        max_wait.as_millis()
    );

    let mut latencies = Vec::new();
    for probe in 0..=probes {
        let camera = format!("bench-{probe:03}");
        for sequence in 1..opening_frame {
            let before = handled();
            client.publish_frame(&frame(&camera, sequence, &jpeg)).await;
            until("a priming frame handled", async || handled() > before).await;
        }
        let pins = store.count().await.expect("count");
        let started = Instant::now();
        client
            .publish_frame(&frame(&camera, opening_frame, &jpeg))
            .await;
        until("the pin", async || {
            store.count().await.expect("count") > pins
        })
        .await;
        let elapsed = started.elapsed().as_secs_f64() * 1e3;
        if probe > 0 {
            latencies.push(elapsed);
        }
    }
    latencies.sort_by(f64::total_cmp);

    // The floor: the model alone on the same frame, same threads, warm.
    let image = safecity_yolo::preprocess::decode(&jpeg, &Default::default()).expect("bus.jpg");
    let images = [image];
    model.run(&images).expect("detect");
    let mut model_ms: Vec<f64> = (0..probes)
        .map(|_| {
            let started = Instant::now();
            model.run(&images).expect("detect");
            started.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    model_ms.sort_by(f64::total_cmp);

    stop.cancel();
    detector.join().await.expect("the detector stops");
    map_pin.join().await.expect("map-pin stops");
    drop(vhost);
    let _ = std::fs::remove_dir_all(&work);

    println!(
        "frame -> pin per incident (ms): {}",
        latencies
            .iter()
            .map(|v| format!("{v:.0}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!("| measure | p50 | p99 |");
    println!("|---|---|---|");
    let (p50, p99) = (percentile(&latencies, 0.5), percentile(&latencies, 0.99));
    let (m50, m99) = (percentile(&model_ms, 0.5), percentile(&model_ms, 0.99));
    println!("| frame -> map pin, warm ({probes} incidents) | {p50:.1} ms | {p99:.1} ms |");
    println!(
        "| baseline: the model alone on the same frame ({probes} runs) | {m50:.1} ms | {m99:.1} ms |"
    );
    let baseline = "the model alone, same frame (Detector::detect)";
    for (quantile, value, floor) in [("p50", p50, m50), ("p99", p99, m99)] {
        Row::new(
            GROUP,
            format!(
                "frame -> map pin, warm, {quantile} (yolov4-tiny + map-pin, {probes} incidents)"
            ),
            value,
            "ms",
            Better::Lower,
        )
        .baseline(format!("{baseline}, {quantile}"), floor)
        .emit()
        .expect("bench rows");
    }
}
