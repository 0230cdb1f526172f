//! Tracks, zones, the incident lifecycle and privacy at the source, end to
//! end: the real COCO yolov4-tiny (`scripts/fetch-yolo-assets.sh`), frames
//! rendered by the camera simulator's scenes (`safecity-cctv-sim`) from the
//! sample photos, a real RabbitMQ (own vhost per test), the detector's
//! closer on its own connection. Every event is counted exactly: each test
//! drains its event queues and compares the whole list.
//!
//! Test class maps: `bus`/`truck` -> accident, `person` -> knife (test
//! mapping: COCO has no way to tell who carries a knife).

mod support;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use chrono::{DateTime, Utc};
use image::RgbImage;
use safecity_cameras::CameraRegistry;
use safecity_cameras::privacy::block_side;
use safecity_cctv_sim::scene::{Background, Scene, SceneObject, SceneSpec};
use safecity_detector::closer::{self, CloserSettings};
use safecity_detector::snapshot::{self, SnapshotSettings};
use safecity_detector::{
    BatchModel, ClassMap, DetectorConfig, DetectorFunction, DetectorMetrics, Settings, YoloModel,
};
use safecity_events::{
    BoundingBox, Camera, CloudEvent, EventType, Frame, Lifecycle, SafetyEvent, UpdateReason,
};
use safecity_runtime::RunningFunction;
use safecity_runtime::testing::{TestClient, TestVhost, eventually, metric};
use safecity_yolo::assets::checked_dir as assets;
use support::{bind_event_queue, queue_name};
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(60);
const REGION: &str = "busan";

fn config(overrides: &[(&str, &str)]) -> DetectorConfig {
    let dir = assets();
    let paths = [
        ("SAFECITY_DETECTOR_CFG", dir.join("yolov4-tiny.cfg")),
        ("SAFECITY_DETECTOR_WEIGHTS", dir.join("yolov4-tiny.weights")),
        ("SAFECITY_DETECTOR_NAMES", dir.join("coco.names")),
        (
            "SAFECITY_DETECTOR_CLASSES",
            PathBuf::from("test-classes.toml"),
        ),
    ];
    DetectorConfig::from_lookup(|name| {
        overrides
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| (*v).to_owned())
            .or_else(|| {
                paths
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, p)| p.display().to_string())
            })
    })
    .expect("valid test configuration")
}

/// The model, loaded once for the whole test binary.
fn model() -> YoloModel {
    static MODEL: OnceLock<YoloModel> = OnceLock::new();
    MODEL
        .get_or_init(|| YoloModel::load(&config(&[])).expect("yolov4-tiny loads"))
        .clone()
}

fn photo(name: &str) -> PathBuf {
    assets().join(name)
}

fn at(seconds: f64) -> DateTime<Utc> {
    "2026-12-02T09:00:00Z"
        .parse::<DateTime<Utc>>()
        .expect("time")
        + chrono::Duration::milliseconds((seconds * 1000.0).round() as i64)
}

/// A detector on its own vhost, its closer beside it, and a client with one
/// queue per event type.
struct Harness {
    vhost: TestVhost,
    client: TestClient,
    running: Option<RunningFunction>,
    metrics: std::sync::Arc<DetectorMetrics>,
    stop: CancellationToken,
    closer_stop: CancellationToken,
    closer: Option<tokio::task::JoinHandle<()>>,
}

impl Harness {
    async fn start(test: &str, classes: &str, registry: &str, overrides: &[(&str, &str)]) -> Self {
        let config = config(overrides);
        let model = model();
        let names = model.class_names().to_vec();
        let class_map =
            ClassMap::parse(classes, Path::new("test-classes.toml")).expect("test class map");
        let mut settings = Settings::from(&config);
        settings.cameras =
            CameraRegistry::parse(registry, Path::new("cameras.toml")).expect("test registry");
        let function = DetectorFunction::new(
            model,
            &names,
            &class_map,
            settings,
            CancellationToken::new(),
        )
        .expect("the class map fits the model and the registry");
        let metrics = function.metrics();
        let vhost = TestVhost::new(test);
        let closer_stop = CancellationToken::new();
        let closer = closer::spawn(
            function.incidents().clone(),
            CloserSettings::new(&vhost.url, config.incident_window),
            metrics.clone(),
            closer_stop.clone(),
        );
        let stop = CancellationToken::new();
        let running = safecity_runtime::start(
            function,
            vhost.config(&[("SAFECITY_CONCURRENCY", "8")]),
            stop.clone(),
        )
        .await
        .expect("the detector starts");
        eventually(WAIT, "the detector consumes", || running.is_ready()).await;
        let client = vhost.client().await;
        for event in EventType::ALL {
            bind_event_queue(&client, event).await;
        }
        Harness {
            vhost,
            client,
            running: Some(running),
            metrics,
            stop,
            closer_stop,
            closer: Some(closer),
        }
    }

    async fn publish(
        &self,
        camera: &str,
        captured_at: DateTime<Utc>,
        sequence: u64,
        jpeg: Vec<u8>,
    ) {
        let frame = Frame {
            camera: Camera {
                id: camera.to_owned(),
                region: REGION.to_owned(),
                latitude: 35.1587,
                longitude: 129.1604,
            },
            captured_at,
            sequence,
            jpeg,
        };
        self.client.publish_frame(&frame).await;
    }

    fn handled(&self) -> f64 {
        let text = self.running.as_ref().expect("running").metrics_text();
        metric(&text, "safecity_events_succeeded_total", "\"frames\"").unwrap_or(0.0)
    }

    async fn until_handled(&self, frames: f64) {
        eventually(WAIT, &format!("{frames} frames handled"), || {
            self.handled() >= frames
        })
        .await;
    }

    /// Every event waiting in `event`'s queue, in order.
    async fn drain(&self, event: EventType) -> Vec<CloudEvent<SafetyEvent>> {
        let mut out = Vec::new();
        while let Some(message) = self.client.get(&queue_name(event)).await {
            let cloud = CloudEvent::<SafetyEvent>::from_json(&message.delivery.data)
                .expect("the detector's events decode");
            assert_eq!(cloud.attributes.event_type, event);
            out.push(cloud);
        }
        out
    }

    /// The lifecycle states of every event waiting in `event`'s queue.
    async fn states(&self, event: EventType) -> Vec<Lifecycle> {
        self.drain(event)
            .await
            .iter()
            .map(|e| e.attributes.lifecycle())
            .collect()
    }

    async fn stop(mut self) {
        self.stop.cancel();
        if let Some(running) = self.running.take() {
            running.join().await.expect("the detector stops cleanly");
        }
        self.closer_stop.cancel();
        if let Some(closer) = self.closer.take() {
            let _ = closer.await;
        }
        drop(self.vhost);
    }
}

/// The pitch photo (two people, feet at the bottom: Ancelotti left of
/// centre, Zidane right) as a still 640x360 camera view.
fn pitch() -> Scene {
    Scene::new(SceneSpec {
        width: 640,
        height: 360,
        noise: 2,
        background: Background::Photo {
            path: photo("zidane.jpg"),
            pan_px_per_frame: 0.0,
            pan_from: 0,
            pan_until: None,
        },
        ..SceneSpec::default()
    })
    .expect("scene")
}

const PEOPLE_AS_KNIVES: &str = r#"
[classes.person]
event = "knife"
min_confidence = 0.5
zones = ["school-gate"]
"#;

/// Two cameras filming the same pitch: `cam-far`'s school gate is the top
/// left corner (nobody stands there), `cam-near`'s the right half of the
/// ground (Zidane stands there).
const GATES: &str = r#"
[[cameras]]
id = "cam-far"
region = "busan"
latitude = 35.1587
longitude = 129.1604
source = "http://127.0.0.1:1/far.mjpg"
[[cameras.zones]]
name = "school-gate"
points = [[0.0, 0.0], [0.2, 0.0], [0.2, 0.3], [0.0, 0.3]]

[[cameras]]
id = "cam-near"
region = "busan"
latitude = 35.1587
longitude = 129.1604
source = "http://127.0.0.1:1/near.mjpg"
[[cameras.zones]]
name = "school-gate"
points = [[0.55, 0.6], [1.0, 0.6], [1.0, 1.0], [0.55, 1.0]]
"#;

/// A person with a "knife" (test mapping) outside the camera's school-gate
/// zone raises nothing; inside it, exactly one `opened` event carrying the
/// zone and only the detection inside it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_knife_outside_the_zone_raises_nothing_and_inside_exactly_one_event() {
    let harness = Harness::start(
        "lifecycle-zones",
        PEOPLE_AS_KNIVES,
        GATES,
        &[
            ("SAFECITY_DETECTOR_MIN_TRACK_FRAMES", "2"),
            ("SAFECITY_DETECTOR_UPDATE_INTERVAL", "1h"),
        ],
    )
    .await;
    let scene = pitch();
    for n in 0..3u64 {
        let jpeg = scene.jpeg(n).expect("jpeg");
        harness
            .publish("cam-far", at(n as f64 * 0.5), n, jpeg.clone())
            .await;
        harness
            .publish("cam-near", at(n as f64 * 0.5), n, jpeg)
            .await;
    }
    harness.until_handled(6.0).await;
    let knives = harness.drain(EventType::Knife).await;
    assert_eq!(knives.len(), 1, "one event in all: {knives:?}");
    let event = &knives[0];
    assert_eq!(event.data.camera.id, "cam-near");
    assert_eq!(event.attributes.lifecycle(), Lifecycle::Opened);
    assert_eq!(event.attributes.zones, ["school-gate"]);
    assert!(event.attributes.track_id.is_some());
    assert_eq!(
        event.data.detections.len(),
        1,
        "only the person inside the zone counts: {:?}",
        event.data.detections
    );
    let person = event.data.detections[0].bounding_box;
    assert!(
        person.x + person.width / 2.0 > 0.55 * 640.0,
        "the person on the right: {person:?}"
    );
    let text = harness.metrics.encode();
    assert!(
        text.contains(r#"safecity_detector_alerts_total{event_type="knife"} 1"#),
        "{text}"
    );
    harness.stop().await;
}

/// Frames of a bus photo (a track) seen in fewer than N = 3 frames open no
/// incident; the third frame opens exactly one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_track_seen_in_fewer_than_n_frames_opens_no_incident() {
    let harness = Harness::start(
        "lifecycle-min-frames",
        "[classes.bus]\nevent = \"accident\"\nmin_confidence = 0.5\n",
        "",
        &[
            ("SAFECITY_DETECTOR_MIN_TRACK_FRAMES", "3"),
            ("SAFECITY_DETECTOR_UPDATE_INTERVAL", "1h"),
        ],
    )
    .await;
    let bus = std::fs::read(photo("bus.jpg")).expect("bus.jpg");
    harness.publish("cam-bus", at(0.0), 1, bus.clone()).await;
    harness.publish("cam-bus", at(0.5), 2, bus.clone()).await;
    harness.until_handled(2.0).await;
    // The second frame again, as if redelivered: still two sightings.
    harness.publish("cam-bus", at(0.5), 2, bus.clone()).await;
    harness.until_handled(3.0).await;
    assert!(
        harness.drain(EventType::Accident).await.is_empty(),
        "two frames are not enough"
    );
    harness.publish("cam-bus", at(1.0), 3, bus).await;
    harness.until_handled(4.0).await;
    let events = harness.drain(EventType::Accident).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].attributes.lifecycle(), Lifecycle::Opened);
    assert_eq!(
        events[0].data.captured_at,
        at(1.0),
        "opened by the third frame"
    );
    harness.stop().await;
}

/// A bus that drives in and parks (the simulator's `stop`), seen for 4 s
/// of capture time, then again at minutes 1, 2 and 3 (people walking past
/// wake the gate): one incident, opened once and closed once after the
/// window, never re-opened.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_car_opens_one_incident_not_one_per_minute() {
    let harness = Harness::start(
        "lifecycle-parked",
        "[classes.bus]\nevent = \"accident\"\nmin_confidence = 0.5\n",
        "",
        &[
            ("SAFECITY_DETECTOR_MIN_TRACK_FRAMES", "2"),
            ("SAFECITY_DETECTOR_INCIDENT_WINDOW", "2s"),
            ("SAFECITY_DETECTOR_STATIONARY_AFTER", "2s"),
            ("SAFECITY_DETECTOR_UPDATE_INTERVAL", "1h"),
        ],
    )
    .await;
    let mut spec = SceneSpec {
        width: 640,
        height: 360,
        noise: 2,
        background: Background::Flat { level: 90 },
        ..SceneSpec::default()
    };
    // 10 fps: the bus drives in from the left for 3 frames and parks.
    spec.objects.push(SceneObject {
        x: 100.0,
        y: 30.0,
        vx: 20.0,
        width: 240,
        height: 320,
        sprite: Some(photo("bus.jpg")),
        stop: Some(3),
        ..SceneObject::default()
    });
    let scene = Scene::new(spec).expect("scene");
    for n in 0..=8u64 {
        let jpeg = scene.jpeg(n).expect("jpeg");
        harness
            .publish("cam-lot", at(n as f64 * 0.5), n, jpeg)
            .await;
    }
    harness.until_handled(9.0).await;
    // Silence: the closer closes it a window (2 s) after the last sighting.
    let mut states = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while !states.contains(&Lifecycle::Closed) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never closed: {states:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        states.extend(harness.states(EventType::Accident).await);
    }
    assert_eq!(states, [Lifecycle::Opened, Lifecycle::Closed]);
    // Minutes later the bus is still parked there, seen twice a minute.
    let parked = scene.jpeg(40).expect("jpeg");
    for minute in 1..=3u64 {
        let t = 60.0 * minute as f64;
        harness
            .publish("cam-lot", at(t), 100 + 2 * minute, parked.clone())
            .await;
        harness
            .publish("cam-lot", at(t + 0.5), 101 + 2 * minute, parked.clone())
            .await;
    }
    harness.until_handled(15.0).await;
    // Two closer ticks and more: nothing re-opens, nothing closes again.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let later: Vec<String> = harness
        .drain(EventType::Accident)
        .await
        .iter()
        .map(|e| {
            format!(
                "{} {} at {} track {:?} boxes {:?}",
                e.attributes.lifecycle(),
                e.data.incident_id,
                e.data.captured_at,
                e.attributes.track_id,
                e.data
                    .detections
                    .iter()
                    .map(|d| d.bounding_box)
                    .collect::<Vec<_>>()
            )
        })
        .collect();
    assert!(later.is_empty(), "the parked bus re-alerted: {later:#?}");
    let text = harness.metrics.encode();
    for line in [
        r#"safecity_detector_alerts_total{event_type="accident"} 1"#,
        r#"safecity_detector_incident_events_total{event_type="accident",state="opened"} 1"#,
        r#"safecity_detector_incident_events_total{event_type="accident",state="closed"} 1"#,
    ] {
        assert!(text.contains(line), "no `{line}` in\n{text}");
    }
    harness.stop().await;
}

/// The bus photo pasted at `width` x `height` on a gray 640x360 frame, its
/// top-left at (`x`, `y`), as a JPEG.
fn bus_frame(x: u32, y: u32, width: u32, height: u32) -> Vec<u8> {
    let bus = image::open(photo("bus.jpg")).expect("bus.jpg").to_rgb8();
    let bus = image::imageops::resize(&bus, width, height, image::imageops::FilterType::Triangle);
    let mut canvas = RgbImage::from_pixel(640, 360, image::Rgb([90, 90, 90]));
    image::imageops::overlay(&mut canvas, &bus, i64::from(x), i64::from(y));
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 90)
        .encode_image(&canvas)
        .expect("encode");
    jpeg
}

/// A bus seen twice opens the incident; coming closer (a bigger box, 1 s
/// later: past the update interval) it is `updated` with a better
/// snapshot; then nobody sees it and it is `closed` a window later,
/// carrying that best frame. Exactly three events, in that order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_update_close_in_order_with_the_best_frame_last() {
    let harness = Harness::start(
        "lifecycle-sequence",
        "[classes.bus]\nevent = \"accident\"\nmin_confidence = 0.5\n",
        "",
        &[
            ("SAFECITY_DETECTOR_MIN_TRACK_FRAMES", "2"),
            ("SAFECITY_DETECTOR_INCIDENT_WINDOW", "2s"),
            ("SAFECITY_DETECTOR_UPDATE_INTERVAL", "1s"),
        ],
    )
    .await;
    let far = bus_frame(220, 80, 180, 240);
    harness.publish("cam-road", at(0.0), 1, far.clone()).await;
    harness.until_handled(1.0).await;
    harness.publish("cam-road", at(0.5), 2, far).await;
    harness.until_handled(2.0).await;
    harness
        .publish("cam-road", at(1.5), 3, bus_frame(200, 30, 240, 320))
        .await;
    harness.until_handled(3.0).await;
    let mut events = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while !events
        .iter()
        .any(|e: &CloudEvent<SafetyEvent>| e.attributes.lifecycle() == Lifecycle::Closed)
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never closed: {events:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        events.extend(harness.drain(EventType::Accident).await);
    }
    tokio::time::sleep(Duration::from_millis(1000)).await;
    events.extend(harness.drain(EventType::Accident).await);
    let states: Vec<Lifecycle> = events.iter().map(|e| e.attributes.lifecycle()).collect();
    assert_eq!(
        states,
        [Lifecycle::Opened, Lifecycle::Updated, Lifecycle::Closed]
    );
    let incident = &events[0].data.incident_id;
    assert!(
        events.iter().all(|e| &e.data.incident_id == incident),
        "one incident"
    );
    assert_eq!(events[0].data.captured_at, at(0.5));
    assert_eq!(
        events[1].attributes.update_reasons,
        [UpdateReason::BetterSnapshot]
    );
    assert_eq!(events[1].data.captured_at, at(1.5));
    assert_eq!(
        events[2].data.captured_at,
        at(1.5),
        "closed carries the best frame, not the first"
    );
    assert!(events[2].data.snapshot.is_some());
    let tracks: Vec<_> = events
        .iter()
        .map(|e| e.attributes.track_id.clone())
        .collect();
    assert!(
        tracks.iter().all(|t| t.is_some() && *t == tracks[0]),
        "{tracks:?}"
    );
    harness.stop().await;
}

/// Luma variance of `image` over `x0..x1` x `y0..y1`.
fn variance(image: &RgbImage, x0: u32, y0: u32, x1: u32, y1: u32) -> f64 {
    let values: Vec<f64> = (y0..y1)
        .flat_map(|y| (x0..x1).map(move |x| (x, y)))
        .map(|(x, y)| {
            let [r, g, b] = image.get_pixel(x, y).0;
            0.299 * f64::from(r) + 0.587 * f64::from(g) + 0.114 * f64::from(b)
        })
        .collect();
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / values.len() as f64
}

/// Mean over the pixelation blocks of each person box (scaled to the
/// snapshot, as the detector scales them) of (raw variance, snapshot
/// variance, worst snapshot variance); blocks touching another person's box
/// are left out (overlapping pixelations cut each other's blocks).
fn person_blocks(
    raw: &RgbImage,
    snap: &RgbImage,
    people: &[BoundingBox],
    frame: (u32, u32),
) -> (f64, f64, f64, usize) {
    let (sx, sy) = (
        snap.width() as f32 / frame.0 as f32,
        snap.height() as f32 / frame.1 as f32,
    );
    let rects: Vec<(u32, u32, u32, u32)> = people
        .iter()
        .map(|b| {
            (
                (b.x * sx).floor().max(0.0) as u32,
                (b.y * sy).floor().max(0.0) as u32,
                (((b.x + b.width) * sx).ceil().max(0.0) as u32).min(snap.width()),
                (((b.y + b.height) * sy).ceil().max(0.0) as u32).min(snap.height()),
            )
        })
        .collect();
    let (mut raw_sum, mut snap_sum, mut worst, mut blocks) = (0.0, 0.0, 0.0f64, 0usize);
    for (i, &(x0, y0, x1, y1)) in rects.iter().enumerate() {
        let side = block_side(x1 - x0, y1 - y0);
        let mut by = y0;
        while by + side <= y1 {
            let mut bx = x0;
            while bx + side <= x1 {
                let touches_other = rects.iter().enumerate().any(|(j, &(ox0, oy0, ox1, oy1))| {
                    j != i && bx < ox1 && bx + side > ox0 && by < oy1 && by + side > oy0
                });
                if !touches_other {
                    // The block's inside (JPEG rings at its edges).
                    let (ix0, iy0, ix1, iy1) = (bx + 1, by + 1, bx + side - 1, by + side - 1);
                    raw_sum += variance(raw, ix0, iy0, ix1, iy1);
                    let v = variance(snap, ix0, iy0, ix1, iy1);
                    snap_sum += v;
                    worst = worst.max(v);
                    blocks += 1;
                }
                bx += side;
            }
            by += side;
        }
    }
    let n = blocks.max(1) as f64;
    (raw_sum / n, snap_sum / n, worst, blocks)
}

/// Privacy at the source: the snapshot of an event has every person box
/// pixelated (each block one colour, where the raw frame had detail) —
/// every person the model saw, not only those in the event; a camera the
/// operator opted in (`raw_snapshots = true`) keeps its detail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_leave_the_detector_with_every_person_pixelated() {
    let registry = r#"
[[cameras]]
id = "cam-private"
region = "busan"
latitude = 35.1587
longitude = 129.1604
source = "http://127.0.0.1:1/a.mjpg"

[[cameras]]
id = "cam-raw"
region = "busan"
latitude = 35.1587
longitude = 129.1604
source = "http://127.0.0.1:1/b.mjpg"
raw_snapshots = true
"#;
    let harness = Harness::start(
        "lifecycle-privacy",
        "[classes.tie]\nevent = \"knife\"\nmin_confidence = 0.3\n",
        registry,
        &[
            ("SAFECITY_DETECTOR_MIN_TRACK_FRAMES", "1"),
            ("SAFECITY_DETECTOR_SNAPSHOT_QUALITY", "95"),
            ("SAFECITY_DETECTOR_UPDATE_INTERVAL", "1h"),
        ],
    )
    .await;
    // zidane.jpg: people, and a tie (the mapped class): the people are not
    // in the event's detections, and must be pixelated all the same.
    let jpeg = std::fs::read(photo("zidane.jpg")).expect("zidane.jpg");
    harness
        .publish("cam-private", at(0.0), 1, jpeg.clone())
        .await;
    harness.publish("cam-raw", at(0.0), 1, jpeg.clone()).await;
    harness.until_handled(2.0).await;
    let mut events = harness.drain(EventType::Knife).await;
    events.sort_by(|a, b| a.data.camera.id.cmp(&b.data.camera.id));
    let cameras: Vec<&str> = events.iter().map(|e| e.data.camera.id.as_str()).collect();
    assert_eq!(cameras, ["cam-private", "cam-raw"]);
    assert!(
        events[0].data.detections.iter().all(|d| d.class == "tie"),
        "{:?}",
        events[0].data.detections
    );

    let frame = image::load_from_memory(&jpeg).expect("decode").to_rgb8();
    let sightings = model()
        .run(std::slice::from_ref(&frame))
        .expect("the model runs");
    let people: Vec<BoundingBox> = sightings[0]
        .iter()
        .filter(|s| s.class_name == "person")
        .map(|s| s.bounding_box)
        .collect();
    assert!(!people.is_empty(), "the model sees people: {people:?}");
    let settings = SnapshotSettings {
        max_side: 640,
        quality: 95,
    };
    let raw = snapshot::render(&frame, settings, &[]);
    let decode = |event: &CloudEvent<SafetyEvent>| {
        image::load_from_memory(&event.data.snapshot.as_ref().expect("a snapshot").0)
            .expect("a JPEG")
            .to_rgb8()
    };
    let (raw_mean, private_mean, private_worst, blocks) =
        person_blocks(&raw, &decode(&events[0]), &people, frame.dimensions());
    assert!(blocks >= 20, "enough blocks to judge: {blocks}");
    assert!(
        raw_mean > 100.0,
        "the raw frame has detail in the boxes: {raw_mean}"
    );
    assert!(
        private_worst < 15.0 && private_mean < raw_mean / 20.0,
        "every block inside a person box is one colour: worst variance {private_worst}, mean {private_mean} (raw {raw_mean})"
    );
    let (_, kept_mean, _, _) =
        person_blocks(&raw, &decode(&events[1]), &people, frame.dimensions());
    assert!(
        kept_mean > raw_mean / 2.0,
        "the opted-in camera keeps its detail: {kept_mean} (raw {raw_mean})"
    );
    harness.stop().await;
}
