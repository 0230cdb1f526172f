//! Shared helpers of the gate's black-box tests: a throw-away RabbitMQ vhost
//! per test, a frames consumer, the simulator and the gate on 127.0.0.1:0.
#![allow(dead_code, missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use lapin::options::{BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{FieldTable, ShortString};
use lapin::{Connection, ConnectionProperties};
use safecity_cctv_sim::scene::{Background, Scene, SceneObject, SceneSpec};
use safecity_cctv_sim::server::{CctvSim, SimCamera, SimMode};
use safecity_events::Frame;
use safecity_events::topology::{FRAMES_EXCHANGE, declare_exchanges};
use safecity_motion_gate::camera::CameraSettings;
use safecity_motion_gate::gate::OutputSettings;
use safecity_motion_gate::publisher::PublisherSettings;
use safecity_motion_gate::registry::{CameraEntry, GateParams, Registry};
use safecity_motion_gate::{GateConfig, RunningGate, start};
use safecity_shell::LogFormat;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub(crate) const REGION: &str = "seoul";

/// Whether the long variants run (CI sets SAFECITY_SLOW_TESTS=1).
pub(crate) fn slow() -> bool {
    std::env::var("SAFECITY_SLOW_TESTS").is_ok_and(|v| v == "1")
}

pub(crate) use safecity_runtime::testing::{TestVhost, http_get};

/// The gate's helpers on a test vhost.
#[allow(async_fn_in_trait)]
pub(crate) trait GateVhost {
    /// Binds an exclusive queue to the frames exchange for `region` and
    /// streams decoded frames (with the raw headers checked by `Frame::decode`).
    async fn frames(&self, region: &str) -> FrameTap;
}

impl GateVhost for TestVhost {
    async fn frames(&self, region: &str) -> FrameTap {
        let connection = Connection::connect(&self.url, ConnectionProperties::default())
            .await
            .expect("test client connects");
        let channel = connection.create_channel().await.expect("channel");
        declare_exchanges(&channel).await.expect("exchanges");
        let queue = channel
            .queue_declare(
                ShortString::from(""),
                QueueDeclareOptions {
                    exclusive: true,
                    auto_delete: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("queue");
        let name = queue.name().clone();
        channel
            .queue_bind(
                name.clone(),
                ShortString::from(FRAMES_EXCHANGE),
                ShortString::from(region),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("bind");
        let mut consumer = channel
            .basic_consume(
                name,
                ShortString::from(""),
                BasicConsumeOptions {
                    no_ack: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("consume");
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Some(Ok(delivery)) = consumer.next().await {
                let content_type = delivery
                    .properties
                    .content_type()
                    .as_ref()
                    .map(|c| c.to_string());
                let frame = Frame::decode(&delivery.data, delivery.properties.headers().as_ref())
                    .expect("frames on the broker decode with their headers");
                let routing_key = delivery.routing_key.to_string();
                if tx.send((frame, routing_key, content_type)).is_err() {
                    break;
                }
            }
        });
        FrameTap {
            _connection: connection,
            rx,
        }
    }
}

/// Frames arriving on the broker: (frame, routing key, content type).
pub(crate) struct FrameTap {
    _connection: Connection,
    pub rx: mpsc::UnboundedReceiver<(Frame, String, Option<String>)>,
}

impl FrameTap {
    /// Everything received so far.
    pub(crate) fn drain(&mut self) -> Vec<Frame> {
        let mut out = Vec::new();
        while let Ok((frame, _, _)) = self.rx.try_recv() {
            out.push(frame);
        }
        out
    }

    /// The next frame within `timeout`.
    pub(crate) async fn next(
        &mut self,
        timeout: Duration,
    ) -> Option<(Frame, String, Option<String>)> {
        tokio::time::timeout(timeout, self.rx.recv())
            .await
            .ok()
            .flatten()
    }
}

/// A 160x90 street with noise 4 at `fps` (small: tests run unoptimised,
/// where JPEG coding dominates; the pipeline is the same at any size).
pub(crate) fn street(fps: f64, seed: u64) -> SceneSpec {
    SceneSpec {
        width: 160,
        height: 90,
        fps,
        seed,
        noise: 4,
        background: Background::Street,
        ..SceneSpec::default()
    }
}

/// A bright box entering from the left at `enter`, gone at `leave`.
pub(crate) fn walker(enter: u64, leave: Option<u64>) -> SceneObject {
    SceneObject {
        enter,
        leave,
        x: -10.0,
        y: 50.0,
        vx: 3.0,
        vy: 0.0,
        width: 20,
        height: 25,
        color: [250, 250, 250],
        sprite: None,
        ..SceneObject::default()
    }
}

pub(crate) fn entry(id: &str, source: String) -> CameraEntry {
    CameraEntry::new(id, REGION, 37.4979, 127.0276, &source)
}

/// Gate parameters for tests: every forwarded frame is visible (no rate limit).
pub(crate) fn params(hold_off_ms: u64) -> GateParams {
    let mut params = GateParams::default();
    params.trigger.max_fps = 0.0;
    params.trigger.hold_off = Duration::from_millis(hold_off_ms);
    params
}

pub(crate) fn gate_config(amqp_url: &str) -> GateConfig {
    GateConfig {
        region: REGION.to_owned(),
        http_addr: "127.0.0.1:0".parse().expect("addr"),
        buffer_frames: 256,
        camera: CameraSettings {
            stall_timeout: Duration::from_millis(700),
            reconnect_min: Duration::from_millis(50),
            reconnect_max: Duration::from_millis(300),
        },
        publisher: PublisherSettings {
            amqp_url: amqp_url.to_owned(),
            reconnect_min: Duration::from_millis(50),
            reconnect_max: Duration::from_millis(300),
            publish_timeout: Duration::from_secs(5),
        },
        output: OutputSettings::default(),
        log_format: LogFormat::Text,
    }
}

/// A simulator with one camera per scene (replay mode: deterministic).
pub(crate) async fn simulator(
    scenes: Vec<(&str, SceneSpec)>,
    cancel: &CancellationToken,
) -> (CctvSim, Vec<CameraEntry>) {
    let cameras: Vec<SimCamera> = scenes
        .into_iter()
        .map(|(id, spec)| SimCamera {
            id: id.to_owned(),
            path: format!("/cameras/{id}.mjpg"),
            scene: Arc::new(Scene::new(spec).expect("scene")),
        })
        .collect();
    let sim = CctvSim::bind(
        "127.0.0.1:0".parse().expect("addr"),
        cameras.clone(),
        SimMode::Replay,
        cancel.clone(),
    )
    .await
    .expect("simulator binds");
    let entries = cameras
        .iter()
        .map(|c| entry(&c.id, format!("http://{}{}", sim.addr, c.path)))
        .collect();
    (sim, entries)
}

pub(crate) async fn gate(
    amqp_url: &str,
    cameras: Vec<CameraEntry>,
    params: GateParams,
    cancel: &CancellationToken,
) -> RunningGate {
    let registry = Registry {
        gate: params,
        cameras,
    };
    start(gate_config(amqp_url), &registry, cancel.clone())
        .await
        .expect("gate starts")
}

/// Reads a counter/gauge sample from the gate's /metrics text.
pub(crate) async fn metric(gate: &RunningGate, name: &str, labels: &str) -> f64 {
    let text = http_get(gate.http_addr, "/metrics").await.1;
    text.lines()
        .filter(|l| l.starts_with(name) && l.contains(labels))
        .find_map(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0)
}

/// Polls `metric` until it reaches `at_least`.
pub(crate) async fn wait_metric(
    gate: &RunningGate,
    name: &str,
    labels: &str,
    at_least: f64,
    timeout: Duration,
) {
    let deadline = Instant::now() + timeout;
    loop {
        let v = metric(gate, name, labels).await;
        if v >= at_least {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {name}{{{labels}}} >= {at_least} (now {v})"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The two sample photos (`bus.jpg` 810x1080, `zidane.jpg` 1280x720) of the
/// yolov4-tiny wheel, put by `scripts/fetch-yolo-assets.sh` (the test script
/// runs it first) in `target/yolo-assets`, or in `$SAFECITY_YOLO_ASSETS`.
/// Tests never download: missing photos are a setup error.
pub(crate) fn sample_photos() -> (std::path::PathBuf, std::path::PathBuf) {
    let dir = std::env::var_os("SAFECITY_YOLO_ASSETS").map_or_else(
        || std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/yolo-assets"),
        std::path::PathBuf::from,
    );
    let (bus, zidane) = (dir.join("bus.jpg"), dir.join("zidane.jpg"));
    for photo in [&bus, &zidane] {
        assert!(
            photo.is_file(),
            "{} is missing: run scripts/fetch-yolo-assets.sh (it fetches the sample photos \
             into target/yolo-assets, or $SAFECITY_YOLO_ASSETS)",
            photo.display()
        );
    }
    (bus, zidane)
}
