//! Faults: cameras cut, stalled or sending corrupt JPEG; the broker away or
//! nobody listening. Real MJPEG streams on loopback, real RabbitMQ.

mod support;

use std::time::Duration;

use safecity_events::frame::{JPEG_CONTENT_TYPE, header};
use support::*;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

const LONG: Duration = Duration::from_secs(60);

/// A scene that always has motion: a walker entering every 20 frames.
fn busy(fps: f64, seed: u64) -> safecity_cctv_sim::scene::SceneSpec {
    let mut spec = street(fps, seed);
    for k in 0..1000 {
        spec.objects.push(walker(k * 20, Some(k * 20 + 60)));
    }
    spec
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_frames_arrive_with_camera_headers_and_the_region_as_key() {
    let vhost = TestVhost::new("headers");
    let mut tap = vhost.frames(REGION).await;
    let cancel = CancellationToken::new();
    let (_sim, cameras) = simulator(vec![("seoul-gangnam-03", busy(30.0, 1))], &cancel).await;
    let before = chrono::Utc::now();
    let gate = gate(&vhost.url, cameras, params(500), &cancel).await;
    let (frame, routing_key, content_type) = tap.next(LONG).await.expect("a forwarded frame");
    assert_eq!(routing_key, REGION);
    assert_eq!(content_type.as_deref(), Some(JPEG_CONTENT_TYPE));
    assert_eq!(frame.camera.id, "seoul-gangnam-03");
    assert_eq!(frame.camera.region, REGION);
    assert_eq!(frame.camera.latitude, 37.4979);
    assert_eq!(frame.camera.longitude, 127.0276);
    assert!(frame.captured_at >= before && frame.captured_at <= chrono::Utc::now());
    let image = image::load_from_memory_with_format(&frame.jpeg, image::ImageFormat::Jpeg)
        .expect("the body is the camera's JPEG");
    assert_eq!((image.width(), image.height()), (160, 90));
    let (next, _, _) = tap.next(LONG).await.expect("a second frame");
    assert!(
        next.sequence > frame.sequence,
        "{} header increases",
        header::SEQUENCE
    );
    assert_eq!(http_get(gate.http_addr, "/healthz").await.0, 200);
    assert_eq!(http_get(gate.http_addr, "/readyz").await.0, 200);
    let metrics = http_get(gate.http_addr, "/metrics").await.1;
    for name in [
        "safecity_gate_frames_read_total",
        "safecity_gate_frames_forwarded_total",
        "safecity_gate_frames_published_total",
        "safecity_gate_forward_ratio",
        "safecity_gate_frame_seconds_bucket",
        "safecity_gate_camera_up",
    ] {
        assert!(metrics.contains(name), "{name} missing from\n{metrics}");
    }
    cancel.cancel();
    gate.wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_camera_resumes_without_affecting_the_others() {
    let vhost = TestVhost::new("cut");
    let cancel = CancellationToken::new();
    let (sim, cameras) = simulator(
        vec![("cut", street(40.0, 1)), ("steady", street(40.0, 2))],
        &cancel,
    )
    .await;
    let gate = gate(&vhost.url, cameras, params(500), &cancel).await;
    let read = |id: &'static str| {
        let gate = &gate;
        async move {
            metric(
                gate,
                "safecity_gate_frames_read_total",
                &format!("camera=\"{id}\""),
            )
            .await
        }
    };
    wait_metric(
        &gate,
        "safecity_gate_frames_read_total",
        "camera=\"cut\"",
        10.0,
        LONG,
    )
    .await;
    wait_metric(
        &gate,
        "safecity_gate_camera_up",
        "camera=\"cut\"",
        1.0,
        LONG,
    )
    .await;

    sim.control.cut("cut");
    let deadline = Instant::now() + LONG;
    while metric(&gate, "safecity_gate_camera_up", "camera=\"cut\"").await != 0.0 {
        assert!(Instant::now() < deadline, "cut camera never reported down");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // While it is down (and being retried with backoff), the other camera goes on.
    let steady_before = read("steady").await;
    let cut_before = read("cut").await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(
        read("steady").await >= steady_before + 5.0,
        "the steady camera stalled"
    );
    assert_eq!(read("cut").await, cut_before, "no frames from a cut camera");

    sim.control.restore("cut");
    wait_metric(
        &gate,
        "safecity_gate_frames_read_total",
        "camera=\"cut\"",
        cut_before + 10.0,
        LONG,
    )
    .await;
    assert_eq!(
        metric(&gate, "safecity_gate_camera_up", "camera=\"cut\"").await,
        1.0
    );
    assert!(
        metric(
            &gate,
            "safecity_gate_camera_reconnects_total",
            "camera=\"cut\""
        )
        .await
            >= 1.0
    );
    assert!(sim.control.connections("cut") >= 2);
    cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_camera_is_reconnected() {
    let vhost = TestVhost::new("stall");
    let cancel = CancellationToken::new();
    let (sim, cameras) = simulator(vec![("stall", street(40.0, 1))], &cancel).await;
    let gate = gate(&vhost.url, cameras, params(500), &cancel).await;
    wait_metric(
        &gate,
        "safecity_gate_frames_read_total",
        "camera=\"stall\"",
        5.0,
        LONG,
    )
    .await;
    sim.control.stall("stall", true);
    // Stall timeout 700 ms in the tests: the gate gives up on the silent
    // connection and reconnects; the new connection is silent too.
    wait_metric(
        &gate,
        "safecity_gate_camera_reconnects_total",
        "camera=\"stall\"",
        1.0,
        LONG,
    )
    .await;
    assert_eq!(
        metric(&gate, "safecity_gate_camera_up", "camera=\"stall\"").await,
        0.0
    );
    let before = metric(&gate, "safecity_gate_frames_read_total", "camera=\"stall\"").await;
    sim.control.stall("stall", false);
    wait_metric(
        &gate,
        "safecity_gate_frames_read_total",
        "camera=\"stall\"",
        before + 5.0,
        LONG,
    )
    .await;
    assert_eq!(
        metric(&gate, "safecity_gate_camera_up", "camera=\"stall\"").await,
        1.0
    );
    cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_jpegs_are_skipped_without_dropping_the_stream() {
    let vhost = TestVhost::new("corrupt");
    let cancel = CancellationToken::new();
    let mut spec = street(60.0, 1);
    spec.corrupt_frames = vec![10, 11, 30];
    let (sim, cameras) = simulator(vec![("bad", spec)], &cancel).await;
    let gate = gate(&vhost.url, cameras, params(500), &cancel).await;
    wait_metric(
        &gate,
        "safecity_gate_frames_read_total",
        "camera=\"bad\"",
        45.0,
        LONG,
    )
    .await;
    assert_eq!(
        metric(
            &gate,
            "safecity_gate_frames_corrupt_total",
            "camera=\"bad\""
        )
        .await,
        3.0
    );
    assert_eq!(
        sim.control.connections("bad"),
        1,
        "no reconnect for a bad frame"
    );
    assert_eq!(
        metric(&gate, "safecity_gate_camera_up", "camera=\"bad\"").await,
        1.0
    );
    cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_broker_down_frames_are_buffered_then_dropped_oldest_first() {
    let cancel = CancellationToken::new();
    let (_sim, cameras) = simulator(vec![("busy", busy(60.0, 1))], &cancel).await;
    // Nothing listens on port 1: the broker is down for the whole test.
    let registry = safecity_motion_gate::Registry {
        gate: params(500),
        cameras,
    };
    let mut config = gate_config("amqp://guest:guest@127.0.0.1:1/%2f");
    config.buffer_frames = 5;
    let gate = safecity_motion_gate::start(config, &registry, cancel.clone())
        .await
        .expect("gate starts without a broker");
    wait_metric(
        &gate,
        "safecity_gate_frames_dropped_total",
        "reason=\"buffer_full\"",
        3.0,
        LONG,
    )
    .await;
    assert_eq!(gate.buffer.len(), 5, "the buffer stays bounded");
    let read = metric(&gate, "safecity_gate_frames_read_total", "busy").await;
    wait_metric(
        &gate,
        "safecity_gate_frames_read_total",
        "busy",
        read + 10.0,
        LONG,
    )
    .await;
    assert_eq!(metric(&gate, "safecity_gate_broker_up", "").await, 0.0);
    assert_eq!(http_get(gate.http_addr, "/readyz").await.0, 503);
    // Oldest first: the frames still buffered are the newest forwarded ones.
    let seqs: Vec<u64> = std::iter::from_fn(|| gate.buffer.try_pop().map(|f| f.sequence)).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    assert!(seqs[0] > 5, "old frames were dropped: {seqs:?}");
    cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unroutable_frames_are_counted_and_dropped_without_blocking() {
    let vhost = TestVhost::new("unroutable");
    let cancel = CancellationToken::new();
    let (_sim, cameras) = simulator(vec![("lonely", busy(60.0, 1))], &cancel).await;
    // No queue is bound to the frames exchange in this vhost.
    let gate = gate(&vhost.url, cameras, params(500), &cancel).await;
    wait_metric(
        &gate,
        "safecity_gate_frames_dropped_total",
        "reason=\"unroutable\"",
        3.0,
        LONG,
    )
    .await;
    let read = metric(&gate, "safecity_gate_frames_read_total", "lonely").await;
    wait_metric(
        &gate,
        "safecity_gate_frames_read_total",
        "lonely",
        read + 10.0,
        LONG,
    )
    .await;
    assert_eq!(metric(&gate, "safecity_gate_broker_up", "").await, 1.0);
    assert_eq!(
        metric(&gate, "safecity_gate_frames_published_total", "lonely").await,
        0.0
    );
    // A detector queue appears: frames flow.
    let mut tap = vhost.frames(REGION).await;
    assert!(
        tap.next(LONG).await.is_some(),
        "frames arrive once a queue is bound"
    );
    cancel.cancel();
}
