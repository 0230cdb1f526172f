//! The detector end to end: a real RabbitMQ (own vhost per test), the real
//! COCO yolov4-tiny (`scripts/fetch-yolo-assets.sh`) and its sample photos
//! published as camera frames. A test class map turns COCO classes into city
//! events: bus/truck -> accident, person -> knife (test mapping only).

mod support;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use chrono::{DateTime, Utc};
use safecity_detector::incidents::incident_id;
use safecity_detector::{
    BatchPolicy, ClassMap, DetectorConfig, DetectorFunction, DetectorMetrics, Settings, YoloModel,
};
use safecity_events::dead_letter::header;
use safecity_events::headers::get_str;
use safecity_events::{Camera, CloudEvent, EventType, Frame, SafetyEvent};
use safecity_runtime::testing::{TestFunction, eventually};
use support::{bind_event_queue, queue_name};
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(60);
const REGION: &str = "busan";

const TEST_CLASSES: &str = r#"
[classes.bus]
event = "accident"
min_confidence = 0.5

[classes.truck]
event = "accident"
min_confidence = 0.5

[classes.person]
event = "knife"
min_confidence = 0.5
"#;

use safecity_yolo::assets::checked_dir as assets;

fn photo(name: &str) -> Vec<u8> {
    std::fs::read(assets().join(name)).expect("sample photo")
}

/// Settings from the real configuration path, with test overrides.
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
            // These tests publish single photos: one frame may open an
            // incident (tracking over frames: tests/lifecycle.rs).
            .or_else(|| (name == "SAFECITY_DETECTOR_MIN_TRACK_FRAMES").then(|| "1".to_owned()))
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

struct Harness {
    function: TestFunction,
    metrics: std::sync::Arc<DetectorMetrics>,
}

impl Harness {
    async fn start(test: &str, classes: &str, overrides: &[(&str, &str)]) -> Self {
        let config = config(overrides);
        let model = model();
        let class_names = model.class_names().to_vec();
        let class_map =
            ClassMap::parse(classes, Path::new("test-classes.toml")).expect("test class map");
        let function = DetectorFunction::new(
            model,
            &class_names,
            &class_map,
            Settings::from(&config),
            CancellationToken::new(),
        )
        .expect("the class map fits the model");
        let metrics = function.metrics();
        let function = TestFunction::start(test, function, &[("SAFECITY_CONCURRENCY", "8")]).await;
        for event in EventType::ALL {
            bind_event_queue(&function.client, event).await;
        }
        Harness { function, metrics }
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
        self.function.client.publish_frame(&frame).await;
    }

    fn handled(&self) -> f64 {
        self.function
            .metric("safecity_events_succeeded_total", "\"frames\"")
    }

    async fn until_handled(&self, frames: f64) {
        eventually(WAIT, &format!("{frames} frames handled"), || {
            self.handled() >= frames
        })
        .await;
    }

    /// The next event routed with `event`'s key.
    async fn next_event(&self, event: EventType) -> SafetyEvent {
        let message = self
            .function
            .client
            .wait_get(&queue_name(event), WAIT)
            .await
            .unwrap_or_else(|| panic!("an {event} event"));
        let cloud = CloudEvent::<SafetyEvent>::from_json(&message.delivery.data).expect("valid");
        assert_eq!(message.delivery.routing_key.as_str(), event.as_str());
        assert_eq!(cloud.attributes.event_type, event);
        assert_eq!(
            cloud.attributes.incident_id.as_deref(),
            Some(cloud.data.incident_id.as_str())
        );
        cloud.data
    }

    async fn pending_events(&self, event: EventType) -> u32 {
        self.function.client.ready_count(&queue_name(event)).await
    }
}

fn at(seconds: i64) -> DateTime<Utc> {
    "2026-12-02T09:00:00Z"
        .parse::<DateTime<Utc>>()
        .expect("time")
        + chrono::Duration::seconds(seconds)
}

fn check_event(
    event: &SafetyEvent,
    camera: &str,
    captured_at: DateTime<Utc>,
    size: (u32, u32),
    max_side: u32,
) {
    assert_eq!(event.camera.id, camera);
    assert_eq!(event.captured_at, captured_at);
    assert_eq!(
        event.incident_id,
        incident_id(camera, event.event_type, captured_at),
        "the opening frame names the incident"
    );
    assert_eq!((event.frame_size.width, event.frame_size.height), size);
    assert!(!event.detections.is_empty());
    for pair in event.detections.windows(2) {
        assert!(
            pair[0].confidence >= pair[1].confidence,
            "highest confidence first"
        );
    }
    for detection in &event.detections {
        assert!(detection.confidence >= 0.5, "{detection:?}");
        let b = detection.bounding_box;
        assert!(
            b.x >= 0.0 && b.y >= 0.0 && b.width > 0.0 && b.height > 0.0,
            "{b:?}"
        );
        assert!(
            b.x + b.width <= size.0 as f32 + 0.5,
            "{b:?} inside {size:?}"
        );
        assert!(
            b.y + b.height <= size.1 as f32 + 0.5,
            "{b:?} inside {size:?}"
        );
    }
    let snapshot = event.snapshot.as_ref().expect("a snapshot");
    let decoded = image::load_from_memory_with_format(&snapshot.0, image::ImageFormat::Jpeg)
        .expect("the snapshot is a JPEG");
    let (w, h) = (decoded.width(), decoded.height());
    assert_eq!(w.max(h), max_side, "scaled to the max side");
    let ratio = |a: u32, b: u32| f64::from(a) / f64::from(b);
    assert!(
        (ratio(w, h) - ratio(size.0, size.1)).abs() < 0.01,
        "aspect ratio kept"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_become_events_routed_by_type() {
    let harness = Harness::start(
        "detector-events",
        TEST_CLASSES,
        &[("SAFECITY_DETECTOR_SNAPSHOT_MAX_SIDE", "320")],
    )
    .await;
    harness.publish("cam-bus", at(0), 1, photo("bus.jpg")).await;
    harness
        .publish("cam-pitch", at(0), 1, photo("zidane.jpg"))
        .await;

    // bus.jpg: a bus (accident) and people (knife); zidane.jpg: people (knife).
    let accident = harness.next_event(EventType::Accident).await;
    check_event(&accident, "cam-bus", at(0), (810, 1080), 320);
    assert!(
        accident.detections.iter().any(|d| d.class == "bus"),
        "{:?}",
        accident.detections
    );
    let bus = accident
        .detections
        .iter()
        .find(|d| d.class == "bus")
        .expect("bus");
    assert!(
        bus.bounding_box.width > 405.0,
        "the bus spans most of the width: {bus:?}"
    );

    let mut knives = vec![
        harness.next_event(EventType::Knife).await,
        harness.next_event(EventType::Knife).await,
    ];
    knives.sort_by(|a, b| a.camera.id.cmp(&b.camera.id));
    check_event(&knives[0], "cam-bus", at(0), (810, 1080), 320);
    check_event(&knives[1], "cam-pitch", at(0), (1280, 720), 320);
    for knife in &knives {
        assert!(knife.detections.iter().all(|d| d.class == "person"));
    }
    assert!(knives[0].detections.len() >= 3, "three people by the bus");
    assert_ne!(
        knives[0].incident_id, accident.incident_id,
        "one incident per event type"
    );

    harness.until_handled(2.0).await;
    assert_eq!(harness.pending_events(EventType::Accident).await, 0);
    assert_eq!(harness.pending_events(EventType::Knife).await, 0);
    assert_eq!(harness.pending_events(EventType::Fire).await, 0);
    harness.function.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_say_how_old_their_frame_was_and_mark_frames_past_the_budget_late() {
    let harness = Harness::start(
        "detector-frame-age",
        TEST_CLASSES,
        &[("SAFECITY_DETECTOR_SNAPSHOT_MAX_SIDE", "320")],
    )
    .await;
    // The frames queue's message TTL keeps stale frames off the broker, but
    // a frame can still be analysed late (captured long before it was
    // published, or a slow batch): the event must say so.
    let fresh_at = Utc::now();
    harness
        .publish("cam-fresh", fresh_at, 1, photo("bus.jpg"))
        .await;
    let fresh = harness.next_event(EventType::Accident).await;
    let age = fresh
        .frame_age
        .expect("the detector measures the frame's age");
    assert!(!age.late, "a frame analysed at once is not late: {age:?}");
    assert!(age.milliseconds < 10_000, "{age:?}");

    let stale_at = Utc::now() - chrono::Duration::seconds(60);
    harness
        .publish("cam-stale", stale_at, 1, photo("bus.jpg"))
        .await;
    let stale = harness.next_event(EventType::Accident).await;
    assert_eq!(stale.camera.id, "cam-stale");
    let age = stale
        .frame_age
        .expect("the detector measures the frame's age");
    assert!(
        age.late,
        "a 60 s old frame is past the 10 s budget: {age:?}"
    );
    assert!(
        (60_000..120_000).contains(&age.milliseconds),
        "the event says how old: {age:?}"
    );
    let late = harness
        .function
        .metric("safecity_detector_late_events_total", "");
    assert!(late >= 1.0, "late events are counted: {late}");
    harness.function.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_frames_are_dead_lettered_and_their_batch_goes_on() {
    let harness = Harness::start(
        "detector-bad-frames",
        TEST_CLASSES,
        &[
            ("SAFECITY_DETECTOR_BATCH_WAIT", "1s"),
            ("SAFECITY_DETECTOR_MAX_FRAME_PIXELS", "1000000"),
        ],
    )
    .await;
    // A JPEG start-of-image marker followed by garbage: passes the runtime's
    // frame check, fails decoding.
    let mut corrupt = vec![0xFF, 0xD8, 0xFF, 0xE0];
    corrupt.extend(std::iter::repeat_n(0x5A, 512));
    // 1200x1000 = 1.2 megapixels, over the 1,000,000-pixel limit.
    let mut large = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut large, 50)
        .encode_image(&image::RgbImage::new(1200, 1000))
        .expect("encode");

    harness.publish("cam-bus", at(0), 7, photo("bus.jpg")).await;
    harness.publish("cam-broken", at(0), 8, corrupt).await;
    harness.publish("cam-huge", at(0), 9, large).await;
    harness
        .publish("cam-pitch", at(0), 3, photo("zidane.jpg"))
        .await;

    let mut reasons = Vec::new();
    for _ in 0..2 {
        let message = harness
            .function
            .client
            .wait_dead_letter("detector", WAIT)
            .await
            .expect("a dead letter");
        let headers = message.delivery.properties.headers().as_ref();
        assert_eq!(
            get_str(headers, header::DEAD_LETTER_CAUSE),
            Some("rejected")
        );
        reasons.push(
            get_str(headers, header::DEAD_LETTER_REASON)
                .expect("reason")
                .to_owned(),
        );
    }
    reasons.sort();
    assert!(
        reasons[0].contains("frame 8 of camera `cam-broken`")
            && reasons[0].contains("cannot decode"),
        "{reasons:?}"
    );
    assert!(
        reasons[1].contains("frame 9 of camera `cam-huge`")
            && reasons[1].contains("1200x1000")
            && reasons[1].contains("limit is 1000000"),
        "{reasons:?}"
    );

    // The good frames went through.
    let accident = harness.next_event(EventType::Accident).await;
    assert_eq!(accident.camera.id, "cam-bus");
    let mut cameras = vec![
        harness.next_event(EventType::Knife).await.camera.id,
        harness.next_event(EventType::Knife).await.camera.id,
    ];
    cameras.sort();
    assert_eq!(cameras, ["cam-bus", "cam-pitch"]);
    harness.until_handled(2.0).await;
    let text = harness.metrics.encode();
    assert!(
        text.contains("safecity_detector_frames_rejected_total 2"),
        "{text}"
    );
    // The runtime serves the detector's metrics beside its own.
    let served = harness.function.running().metrics_text();
    for line in [
        "safecity_detector_frames_rejected_total 2",
        r#"safecity_consuming{function="detector"} 1"#,
    ] {
        assert!(served.contains(line), "no `{line}` in\n{served}");
    }
    harness.function.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_event_per_incident() {
    let harness = Harness::start(
        "detector-incidents",
        "[classes.bus]\nevent = \"accident\"\nmin_confidence = 0.5\n",
        &[("SAFECITY_DETECTOR_INCIDENT_WINDOW", "10s")],
    )
    .await;
    let bus = photo("bus.jpg");

    // The incident opens.
    harness.publish("cam-a", at(0), 1, bus.clone()).await;
    let first = harness.next_event(EventType::Accident).await;
    assert_eq!(first.camera.id, "cam-a");
    assert_eq!(
        first.incident_id,
        incident_id("cam-a", EventType::Accident, at(0))
    );

    // Within the window: the same incident (no event), the opening frame
    // again (as if redelivered), and another camera (a new incident).
    harness.publish("cam-a", at(3), 2, bus.clone()).await;
    harness.publish("cam-a", at(0), 1, bus.clone()).await;
    harness.publish("cam-a", at(9), 3, bus.clone()).await;
    harness.publish("cam-b", at(4), 1, bus.clone()).await;
    let other = harness.next_event(EventType::Accident).await;
    assert_eq!(other.camera.id, "cam-b");
    assert_eq!(
        other.incident_id,
        incident_id("cam-b", EventType::Accident, at(4))
    );
    harness.until_handled(5.0).await;
    assert_eq!(
        harness.pending_events(EventType::Accident).await,
        0,
        "no re-alert"
    );

    // More than the window after the last detection (9 s): a new incident.
    harness
        .publish(
            "cam-a",
            at(19) + chrono::Duration::milliseconds(1),
            4,
            bus.clone(),
        )
        .await;
    let again = harness.next_event(EventType::Accident).await;
    assert_eq!(again.camera.id, "cam-a");
    assert_ne!(again.incident_id, first.incident_id);
    harness.until_handled(6.0).await;
    assert_eq!(harness.pending_events(EventType::Accident).await, 0);
    let text = harness.metrics.encode();
    assert!(
        text.contains(r#"safecity_detector_alerts_total{event_type="accident"} 3"#),
        "{text}"
    );
    assert!(
        text.contains(r#"safecity_detector_sightings_total{event_type="accident"} 6"#),
        "{text}"
    );
    harness.function.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_published_together_share_a_forward_and_a_lone_frame_goes_after_the_wait() {
    let harness = Harness::start(
        "detector-batching",
        TEST_CLASSES,
        &[
            ("SAFECITY_DETECTOR_BATCH_SIZE", "4"),
            ("SAFECITY_DETECTOR_BATCH_WAIT", "2s"),
        ],
    )
    .await;
    let policy = config(&[
        ("SAFECITY_DETECTOR_BATCH_SIZE", "4"),
        ("SAFECITY_DETECTOR_BATCH_WAIT", "2s"),
    ])
    .batch;
    assert_eq!(
        policy,
        BatchPolicy {
            max_batch: 4,
            max_wait: Duration::from_secs(2)
        }
    );
    for (i, camera) in ["cam-1", "cam-2", "cam-3", "cam-4"].into_iter().enumerate() {
        let name = if i % 2 == 0 { "bus.jpg" } else { "zidane.jpg" };
        harness.publish(camera, at(0), 1, photo(name)).await;
    }
    harness.until_handled(4.0).await;
    assert!(
        harness.metrics.largest_batch() > 1,
        "frames published together share a forward"
    );
    assert!(harness.metrics.batches() < 4, "fewer forwards than frames");
    assert_eq!(harness.metrics.batched_frames(), 4);

    // A lone frame cannot fill a batch of 4: it goes when the wait is over.
    let before = harness.metrics.batches();
    harness
        .publish("cam-5", at(0), 1, photo("zidane.jpg"))
        .await;
    harness.until_handled(5.0).await;
    assert_eq!(harness.metrics.batches(), before + 1);
    assert_eq!(harness.metrics.batched_frames(), 5, "a batch of one");
    harness.function.stop().await;
}

/// A field of `/proc/<pid>/status` in KiB (`VmRSS:`, `VmHWM:` the peak).
fn proc_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .expect("status")
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("the field")
}

/// A 16x16 JPEG whose frame header claims `width`x`height`, padded with
/// `padding` bytes of scan data and ended with an end-of-image marker.
fn inflated(width: u16, height: u16, padding: usize) -> Vec<u8> {
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 80)
        .encode_image(&image::RgbImage::from_fn(16, 16, |x, y| {
            image::Rgb([(x * 15) as u8, (y * 15) as u8, 90])
        }))
        .expect("encode");
    let sof = jpeg
        .windows(2)
        .position(|w| w == [0xFF, 0xC0])
        .expect("baseline");
    jpeg[sof + 5..sof + 7].copy_from_slice(&height.to_be_bytes());
    jpeg[sof + 7..sof + 9].copy_from_slice(&width.to_be_bytes());
    if padding > 0 {
        jpeg.truncate(jpeg.len() - 2);
        jpeg.extend((0..padding).map(|i| (i * 131 % 251) as u8 & 0x7F));
        jpeg.extend([0xFF, 0xD9]);
    }
    jpeg
}

/// A frame cut in half and one with damaged entropy data are dead-lettered
/// with a one-line reason and never analysed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_and_damaged_frames_are_refused_with_one_line_reasons() {
    let harness = Harness::start("detector-hostile", TEST_CLASSES, &[]).await;
    let bus = photo("bus.jpg");
    let half = bus[..bus.len() / 2].to_vec();
    let mut damaged = bus.clone();
    let scan = damaged
        .windows(2)
        .position(|w| w == [0xFF, 0xDA])
        .expect("scan");
    let middle = scan + (damaged.len() - scan) / 2;
    for byte in &mut damaged[middle..middle + 300] {
        *byte = 0xFE;
    }
    harness.publish("cam-cut", at(0), 1, half).await;
    harness.publish("cam-damaged", at(0), 2, damaged).await;
    let mut reasons = Vec::new();
    for _ in 0..2 {
        let message = harness
            .function
            .client
            .wait_dead_letter("detector", WAIT)
            .await
            .expect("a dead letter");
        let headers = message.delivery.properties.headers().as_ref();
        reasons.push(
            get_str(headers, header::DEAD_LETTER_REASON)
                .expect("reason")
                .to_owned(),
        );
    }
    reasons.sort();
    assert!(
        reasons[0].contains("`cam-cut`") && reasons[0].contains("end-of-image"),
        "{reasons:?}"
    );
    assert!(
        reasons[1].contains("`cam-damaged`") && reasons[1].contains("damaged entropy data"),
        "{reasons:?}"
    );
    assert!(reasons.iter().all(|r| !r.contains('\n')), "{reasons:?}");
    assert_eq!(harness.handled(), 0.0, "nothing was analysed");
    harness.function.stop().await;
}

/// 32 header-inflated frames (each 114 MiB of RGB if decoded at full size)
/// through the real `detector` binary: all dead-lettered, and the process's
/// peak resident memory stays within 64 MiB of where it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inflated_frames_leave_the_detector_binary_memory_flat() {
    let vhost = safecity_runtime::testing::TestVhost::new("detector-memory");
    let client = vhost.client().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let paths = [
        ("SAFECITY_DETECTOR_CFG", assets().join("yolov4-tiny.cfg")),
        (
            "SAFECITY_DETECTOR_WEIGHTS",
            assets().join("yolov4-tiny.weights"),
        ),
        ("SAFECITY_DETECTOR_NAMES", assets().join("coco.names")),
        (
            "SAFECITY_DETECTOR_CLASSES",
            Path::new(env!("CARGO_MANIFEST_DIR")).join("classes.coco.toml"),
        ),
    ];
    let mut detector = std::process::Command::new(env!("CARGO_BIN_EXE_detector"))
        .envs(paths.iter().map(|(k, v)| (*k, v.display().to_string())))
        .env("SAFECITY_AMQP_URL", &vhost.url)
        .env("SAFECITY_HTTP_ADDR", format!("127.0.0.1:{port}"))
        .env("SAFECITY_CONCURRENCY", "16")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("the detector starts");
    let pid = detector.id();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
        if tokio::net::TcpStream::connect(addr).await.is_ok()
            && safecity_runtime::testing::http_get(addr, "/readyz").await.0 == 200
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the detector never consumed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let before = proc_kib(pid, "VmRSS:");
    for n in 0..32u64 {
        // Half tiny (4 KB claiming 8000x5000), half padded to look plausible.
        let padding = if n % 2 == 0 { 0 } else { 100_000 };
        let frame = Frame {
            camera: Camera {
                id: "cam-inflated".into(),
                region: REGION.into(),
                latitude: 35.1587,
                longitude: 129.1604,
            },
            captured_at: at(1),
            sequence: n,
            jpeg: inflated(8000, 5000, padding),
        };
        client.publish_frame(&frame).await;
    }
    for _ in 0..32 {
        let message = client
            .wait_dead_letter("detector", WAIT)
            .await
            .expect("a dead letter per inflated frame");
        let headers = message.delivery.properties.headers().as_ref();
        let reason = get_str(headers, header::DEAD_LETTER_REASON).expect("reason");
        assert!(
            reason.contains("8000x5000") || reason.contains("damaged entropy data"),
            "{reason}"
        );
    }
    let peak = proc_kib(pid, "VmHWM:");
    detector.kill().expect("kill");
    let _ = detector.wait();
    let grown_mib = peak.saturating_sub(before) / 1024;
    assert!(
        grown_mib < 64,
        "the detector's peak RSS grew by {grown_mib} MiB over the 32 inflated frames"
    );
}
