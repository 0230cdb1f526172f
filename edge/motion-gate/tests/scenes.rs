//! The gate on scripted scenes: real MJPEG streams on loopback from the
//! simulator, real RabbitMQ. Frame sequence numbers equal scene frame indices
//! (replay mode, one connection).

mod support;

use std::time::Duration;

use safecity_cctv_sim::scene::{Drift, SceneSpec};
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
