//! Scenes built from real photos (the yolov4-tiny wheel's samples, fetched by
//! `scripts/fetch-yolo-assets.sh`): written to a folder, gated through the
//! `dir://` source (every frame, in order, stream time = index / fps), and
//! published to a real RabbitMQ. Seeded scenes: the frames, and so the
//! forwarded sequence numbers, are the same on every run.

mod support;

use std::time::Duration;

use safecity_cctv_sim::scene::{Background, Scene, SceneObject, SceneSpec};
use safecity_cctv_sim::server::write_frames;
use support::*;
use tokio_util::sync::CancellationToken;

const FPS: f64 = 30.0;
/// 300 ms at 30 fps.
const HOLD_OFF_MS: u64 = 300;
const HOLD_OFF_FRAMES: u64 = 9;
/// Frames for any ghost in the background to fade: a difference of at most
/// 255 gray levels falls to the threshold 25 after k frames with
/// 255 * 0.95^k <= 25, k = 46 (alpha 0.05), plus one for fixed-point rounding.
const FADE_FRAMES: u64 = 47;

/// A 320x180 view of `zidane.jpg` (1280x720) with sensor noise: the gate
/// area-averages it 2x2 down to its 160x90 work image.
fn photo_scene(seed: u64, background: Background) -> SceneSpec {
    SceneSpec {
        width: 320,
        height: 180,
        fps: FPS,
        seed,
        noise: 4,
        background,
        ..SceneSpec::default()
    }
}

fn still(photo: std::path::PathBuf) -> Background {
    Background::Photo {
        path: photo,
        pan_px_per_frame: 0.0,
        pan_from: 0,
        pan_until: None,
    }
}

/// Gates the first `frames` frames of `spec`; returns the sequence numbers
/// (= frame indices) that reached the broker, in order.
async fn gate_photo_scene(test: &str, spec: SceneSpec, frames: u64) -> Vec<u64> {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("{test}-{}", uuid::Uuid::new_v4().simple()));
    let scene = Scene::new(spec).expect("photo scene");
    write_frames(&scene, &dir, frames).expect("frames written");

    let vhost = TestVhost::new(test);
    let mut tap = vhost.frames(REGION).await;
    let cancel = CancellationToken::new();
    let source = format!("dir://{}?fps={FPS}&pace=false", dir.display());
    let gate = gate(
        &vhost.url,
        vec![entry("photo", source)],
        params(HOLD_OFF_MS),
        &cancel,
    )
    .await;
    wait_metric(
        &gate,
        "safecity_gate_frames_read_total",
        "photo",
        frames as f64,
        Duration::from_secs(120),
    )
    .await;
    let forwarded = metric(&gate, "safecity_gate_frames_forwarded_total", "photo").await;
    wait_metric(
        &gate,
        "safecity_gate_frames_published_total",
        "photo",
        forwarded,
        Duration::from_secs(10),
    )
    .await;
    let mut seqs = Vec::new();
    while (seqs.len() as f64) < forwarded {
        let (frame, _, _) = tap
            .next(Duration::from_secs(10))
            .await
            .unwrap_or_else(|| panic!("{forwarded} frames published, {seqs:?} received"));
        seqs.push(frame.sequence);
    }
    assert_eq!(
        metric(&gate, "safecity_gate_frames_corrupt_total", "photo").await,
        0.0
    );
    cancel.cancel();
    gate.wait().await;
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!("{test}: forwarded {seqs:?}");
    seqs
}

/// `seqs` is one burst `first..=last` without gaps.
fn one_burst(seqs: &[u64]) -> (u64, u64) {
    let (first, last) = (
        *seqs.first().expect("frames were forwarded"),
        *seqs.last().expect("frames"),
    );
    assert_eq!(
        seqs,
        (first..=last).collect::<Vec<_>>(),
        "one contiguous burst"
    );
    (first, last)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_still_photo_with_sensor_noise_forwards_nothing() {
    let (_, zidane) = sample_photos();
    let frames = if slow() { 1500 } else { 150 };
    let seqs = gate_photo_scene("photo-still", photo_scene(7, still(zidane)), frames).await;
    assert!(seqs.is_empty(), "noise on a photo forwarded {seqs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pan_forwards_while_the_view_moves_and_stops_after_the_hold_off() {
    let (_, zidane) = sample_photos();
    // The camera turns 2 px a frame (1 work pixel) during frames 31..=60,
    // then stands still on the new view.
    const FROM: u64 = 30;
    const UNTIL: u64 = 60;
    let spec = photo_scene(
        8,
        Background::Photo {
            path: zidane,
            pan_px_per_frame: 2.0,
            pan_from: FROM,
            pan_until: Some(UNTIL),
        },
    );
    let seqs = gate_photo_scene("photo-pan", spec, 150).await;
    let (first, last) = one_burst(&seqs);
    // Frame 31 is the first moved view; trigger_frames = 2 -> forwarded at 32.
    assert_eq!(first, FROM + 2, "the pan is global motion: {seqs:?}");
    // Every frame while the view moves is forwarded (no rate limit here),
    // and the hold-off after the last motion frame.
    assert!(
        last >= UNTIL + HOLD_OFF_FRAMES,
        "forwarding stopped mid-pan or without the hold-off: {seqs:?}"
    );
    // After the pan the background learns the new view (the smeared ghost of
    // the pan fades), then the 9-frame hold-off, then the gate re-arms for good.
    assert!(
        last <= UNTIL + FADE_FRAMES + HOLD_OFF_FRAMES,
        "forwarding went on after the pan ended at {UNTIL}: {seqs:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_photo_with_a_pasted_object_forwards_while_it_moves() {
    let (bus, zidane) = sample_photos();
    const ENTER: u64 = 40;
    const LEAVE: u64 = 80;
    let mut spec = photo_scene(9, still(zidane));
    // bus.jpg shrunk to 48x64, crossing left to right at 6 px a frame.
    spec.objects.push(SceneObject {
        enter: ENTER,
        leave: Some(LEAVE),
        x: -20.0,
        y: 80.0,
        vx: 6.0,
        vy: 0.0,
        width: 48,
        height: 64,
        color: [0, 0, 0],
        sprite: Some(bus),
        ..SceneObject::default()
    });
    let seqs = gate_photo_scene("photo-object", spec, 150).await;
    let (first, last) = one_burst(&seqs);
    assert!(
        (ENTER + 1..=ENTER + 2).contains(&first),
        "first forwarded frame {first}, the bus entered at {ENTER}: {seqs:?}"
    );
    assert!(
        last >= LEAVE + HOLD_OFF_FRAMES,
        "forwarding stopped while it moved or without the hold-off: {seqs:?}"
    );
    assert!(
        last <= LEAVE + FADE_FRAMES + HOLD_OFF_FRAMES,
        "forwarding went on after the bus left at {LEAVE}: {seqs:?}"
    );
}
