//! A scene built from real photos (the yolov4-tiny wheel's samples), written
//! to a folder and gated through the `dir://` source, published to RabbitMQ.

mod support;

use std::time::Duration;

use safecity_motion_gate::scene::{Background, Scene, SceneObject, SceneSpec};
use safecity_motion_gate::sim::write_frames;
use support::*;
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_photo_scene_forwards_only_when_a_pasted_object_moves_in() {
    let (bus, zidane) = sample_photos();
    const ENTER: u64 = 40;
    const FRAMES: u64 = 90;
    let spec = SceneSpec {
        width: 160,
        height: 90,
        fps: 30.0,
        seed: 9,
        noise: 3,
        background: Background::Photo {
            path: zidane,
            pan_px_per_frame: 0.0,
        },
        objects: vec![SceneObject {
            enter: ENTER,
            leave: None,
            x: -10.0,
            y: 40.0,
            vx: 3.0,
            vy: 0.0,
            width: 24,
            height: 32,
            color: [0, 0, 0],
            sprite: Some(bus),
        }],
        ..SceneSpec::default()
    };
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("photo-scene-{}", uuid::Uuid::new_v4().simple()));
    let scene = Scene::new(spec).expect("photo scene");
    write_frames(&scene, &dir, FRAMES).expect("frames written");

    let vhost = TestVhost::new("photos");
    let mut tap = vhost.frames(REGION).await;
    let cancel = CancellationToken::new();
    let source = format!("dir://{}?fps=30&pace=false", dir.display());
    let gate = gate(
        &vhost.url,
        vec![entry("photo", source)],
        params(300),
        &cancel,
    )
    .await;
    wait_metric(
        &gate,
        "safecity_gate_frames_read_total",
        "photo",
        FRAMES as f64,
        Duration::from_secs(60),
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
    tokio::time::sleep(Duration::from_millis(200)).await;
    let seqs: Vec<u64> = tap.drain().iter().map(|f| f.sequence).collect();
    let first = *seqs.first().expect("the pasted bus was forwarded");
    assert!(
        (ENTER..=ENTER + 3).contains(&first),
        "first forwarded frame {first}, the bus entered at {ENTER}: {seqs:?}"
    );
    cancel.cancel();
    let _ = std::fs::remove_dir_all(&dir);
}
