//! The gate on scripted scenes: real MJPEG streams on loopback from the
//! simulator, real RabbitMQ. Frame sequence numbers equal scene frame indices
//! (replay mode, one connection).

mod support;

use std::time::Duration;

use safecity_cameras::{Mask, Polygon};
use safecity_cctv_sim::scene::{Drift, SceneObject, SceneSpec};
use safecity_events::Frame;
use support::*;
use tokio_util::sync::CancellationToken;

/// Runs `spec` through a gate until it has read `frames` frames; returns the
/// frames that reached the broker (sequence < frames), and the gate's
/// forwarded count.
async fn run_scene(test: &str, spec: SceneSpec, frames: u64, hold_off_ms: u64) -> Vec<Frame> {
    let vhost = TestVhost::new(test);
    let mut tap = vhost.frames(REGION).await;
    let cancel = CancellationToken::new();
    let (_sim, cameras) = simulator(vec![("cam", spec)], &cancel).await;
    let gate = gate(&vhost.url, cameras, params(hold_off_ms), &cancel).await;
    wait_metric(
        &gate,
        "safecity_gate_frames_read_total",
        "camera=\"cam\"",
        frames as f64,
        Duration::from_secs(120),
    )
    .await;
    // Let published frames arrive: published catches up with forwarded.
    let forwarded = metric(&gate, "safecity_gate_frames_forwarded_total", "cam").await;
    wait_metric(
        &gate,
        "safecity_gate_frames_published_total",
        "cam",
        forwarded,
        Duration::from_secs(10),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    cancel.cancel();
    let mut received: Vec<Frame> = tap
        .drain()
        .into_iter()
        .filter(|f| f.sequence < frames)
        .collect();
    received.sort_by_key(|f| f.sequence);
    received
}

fn frames(long: u64, short: u64) -> u64 {
    if slow() { long } else { short }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_static_noisy_scene_forwards_nothing() {
    let n = frames(3000, 150);
    let received = run_scene("static", street(200.0, 3), n, 500).await;
    let seqs: Vec<u64> = received.iter().map(|f| f.sequence).collect();
    assert!(seqs.is_empty(), "noise alone forwarded frames {seqs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_lighting_drift_forwards_nothing() {
    let n = frames(2400, 150);
    let mut spec = street(200.0, 4);
    // +-40 gray levels over 300 frames (10 s at 30 fps): a passing cloud, twice as
    // strong and fast as a typical one.
    spec.drift = Some(Drift {
        amplitude: 40.0,
        period_frames: 300,
    });
    let received = run_scene("drift", spec, n, 500).await;
    let seqs: Vec<u64> = received.iter().map(|f| f.sequence).collect();
    assert!(seqs.is_empty(), "lighting drift forwarded frames {seqs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_entering_forwards_within_n_frames_and_stopping_ends_after_the_hold_off() {
    const ENTER: u64 = 40;
    const LEAVE: u64 = 90;
    const FPS: f64 = 50.0;
    const HOLD_OFF_MS: u64 = 300; // 15 frames at 50 fps
    let mut spec = street(FPS, 5);
    spec.objects.push(walker(ENTER, Some(LEAVE)));
    let total = 200;
    let received = run_scene("enter", spec, total, HOLD_OFF_MS).await;
    let seqs: Vec<u64> = received.iter().map(|f| f.sequence).collect();
    let first = *seqs.first().expect("the object was forwarded");
    let last = *seqs.last().expect("frames");
    // trigger_frames = 2: the object is in frames 40 and 41 -> forwarded at 41.
    assert!(
        (ENTER..=ENTER + 2).contains(&first),
        "first forwarded frame {first}, object entered at {ENTER}: {seqs:?}"
    );
    // While it moves every frame is forwarded (no rate limit in this test).
    let during: Vec<u64> = (first..LEAVE).collect();
    assert!(
        during.iter().all(|s| seqs.contains(s)),
        "gaps while moving: {seqs:?}"
    );
    // After it left: its ghost in the background fades (alpha 0.05), then the
    // 300 ms hold-off (15 frames at 50 fps), then nothing.
    assert!(
        last > LEAVE,
        "the hold-off forwards past the exit: {seqs:?}"
    );
    assert!(
        last < LEAVE + 30 + 15 + 30,
        "forwarding went on too long after the object left at {LEAVE}: last {last}"
    );
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "one contiguous burst: {seqs:?}"
    );
}

/// A television in the top-left quarter of a 160x90 street: a bright screen
/// switching on and off every 2 frames (at 50 fps), for ever.
fn television() -> SceneObject {
    SceneObject {
        enter: 0,
        x: 12.0,
        y: 6.0,
        width: 40,
        height: 28,
        color: [250, 250, 250],
        blink_frames: 2,
        ..SceneObject::default()
    }
}

/// The mask an operator draws around the television, with a little margin
/// (relative coordinates: x 0.05..0.35, y 0.03..0.42 of the frame).
fn television_mask() -> Mask {
    Mask {
        name: Some("tv".to_owned()),
        points: Polygon::new(
            [[0.05, 0.03], [0.35, 0.03], [0.35, 0.42], [0.05, 0.42]]
                .into_iter()
                .map(Into::into)
                .collect(),
        ),
    }
}

/// The same flickering scene on two cameras, one with the television
/// masked: the unmasked camera forwards (the flicker is motion), the masked
/// one forwards nothing at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_masked_flickering_region_forwards_nothing() {
    let n = frames(1500, 150);
    let vhost = TestVhost::new("mask-flicker");
    let mut tap = vhost.frames(REGION).await;
    let cancel = CancellationToken::new();
    let mut spec = street(50.0, 8);
    spec.objects.push(television());
    let (_sim, mut cameras) =
        simulator(vec![("masked", spec.clone()), ("unmasked", spec)], &cancel).await;
    cameras[0].masks.push(television_mask());
    let gate = gate(&vhost.url, cameras, params(300), &cancel).await;
    for camera in ["masked", "unmasked"] {
        wait_metric(
            &gate,
            "safecity_gate_frames_read_total",
            &format!("camera=\"{camera}\""),
            n as f64,
            Duration::from_secs(120),
        )
        .await;
    }
    let forwarded = |camera: &'static str| {
        let gate = &gate;
        async move {
            metric(
                gate,
                "safecity_gate_frames_forwarded_total",
                &format!("camera=\"{camera}\""),
            )
            .await
        }
    };
    let unmasked = forwarded("unmasked").await;
    assert!(
        unmasked >= (n as f64) / 2.0,
        "the unmasked flicker is motion: {unmasked} of {n} frames forwarded"
    );
    wait_metric(
        &gate,
        "safecity_gate_frames_published_total",
        "camera=\"unmasked\"",
        unmasked,
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(forwarded("masked").await, 0.0);
    tokio::time::sleep(Duration::from_millis(200)).await;
    cancel.cancel();
    let received = tap.drain();
    let masked: Vec<u64> = received
        .iter()
        .filter(|f| f.camera.id == "masked")
        .map(|f| f.sequence)
        .collect();
    assert!(
        masked.is_empty(),
        "the masked flicker was forwarded: {masked:?}"
    );
    let reached = received
        .iter()
        .filter(|f| f.camera.id == "unmasked")
        .count() as f64;
    assert!(
        reached >= unmasked,
        "the unmasked camera's frames reached the broker ({reached} of at least {unmasked})"
    );
}

/// With the television masked, a person walking in the lower half (outside
/// the mask) is forwarded from the frame after they appear, as without a
/// mask; nothing is forwarded before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn motion_outside_the_mask_still_forwards() {
    const ENTER: u64 = 40;
    let vhost = TestVhost::new("mask-outside");
    let mut tap = vhost.frames(REGION).await;
    let cancel = CancellationToken::new();
    let mut spec = street(50.0, 9);
    spec.objects.push(television());
    spec.objects.push(walker(ENTER, Some(90)));
    let (_sim, mut cameras) = simulator(vec![("cam", spec)], &cancel).await;
    cameras[0].masks.push(television_mask());
    let gate = gate(&vhost.url, cameras, params(300), &cancel).await;
    let total = 150;
    wait_metric(
        &gate,
        "safecity_gate_frames_read_total",
        "camera=\"cam\"",
        total as f64,
        Duration::from_secs(120),
    )
    .await;
    let forwarded = metric(&gate, "safecity_gate_frames_forwarded_total", "cam").await;
    wait_metric(
        &gate,
        "safecity_gate_frames_published_total",
        "cam",
        forwarded,
        Duration::from_secs(10),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    cancel.cancel();
    let mut seqs: Vec<u64> = tap
        .drain()
        .into_iter()
        .filter(|f| f.sequence < total)
        .map(|f| f.sequence)
        .collect();
    seqs.sort_unstable();
    let first = *seqs.first().expect("the walker was forwarded");
    assert!(
        (ENTER..=ENTER + 2).contains(&first),
        "first forwarded frame {first}, the walker entered at {ENTER}: {seqs:?}"
    );
    assert!(
        (ENTER + 2..90).all(|s| seqs.contains(&s)),
        "every frame while the walker moves: {seqs:?}"
    );
}
