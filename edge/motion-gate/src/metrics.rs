//! The gate's Prometheus metrics (its own registry, served on `/metrics`).

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// A camera label.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CameraLabel {
    /// Camera id.
    pub camera: String,
}

/// Why a frame that was meant for the broker never got there.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum DropReason {
    /// The bounded buffer was full (broker down or slow): oldest dropped.
    BufferFull,
    /// No queue is bound to the frames exchange for the region.
    Unroutable,
    /// The broker refused it.
    Nacked,
    /// Published, then expired in the frames queue: older than the frame
    /// budget before a detector took it (counted from the broker's
    /// dead-letters, see `publisher::dropped`).
    Expired,
    /// Published, then pushed out of a full frames queue by newer frames.
    QueueFull,
}

impl EncodeLabelValue for DropReason {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        EncodeLabelValue::encode(
            &match self {
                DropReason::BufferFull => "buffer_full",
                DropReason::Unroutable => "unroutable",
                DropReason::Nacked => "nacked",
                DropReason::Expired => "expired",
                DropReason::QueueFull => "queue_full",
            },
            encoder,
        )
    }
}

/// A drop label.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DropLabel {
    /// Camera id.
    pub camera: String,
    /// Why.
    pub reason: DropReason,
}

/// Processing stage of a frame.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum Stage {
    /// JPEG decoding.
    Decode,
    /// The motion pipeline (grayscale .. area).
    Motion,
    /// Re-encoding a forwarded frame to the size limit.
    Reencode,
}

impl EncodeLabelValue for Stage {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        EncodeLabelValue::encode(
            &match self {
                Stage::Decode => "decode",
                Stage::Motion => "motion",
                Stage::Reencode => "reencode",
            },
            encoder,
        )
    }
}

/// A stage label.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StageLabel {
    /// The stage.
    pub stage: Stage,
}

/// All gate metrics.
#[derive(Debug)]
pub struct GateMetrics {
    /// Frames read from cameras.
    pub frames_read: Family<CameraLabel, Counter>,
    /// Frames the gate decided to forward (motion).
    pub frames_forwarded: Family<CameraLabel, Counter>,
    /// Frames confirmed by the broker.
    pub frames_published: Family<CameraLabel, Counter>,
    /// Frames that never reached a detector, by reason (the gate's own drops
    /// and those the broker reports from the bounded frames queue).
    pub frames_dropped: Family<DropLabel, Counter>,
    /// Frames that failed to decode.
    pub frames_corrupt: Family<CameraLabel, Counter>,
    /// `forwarded / read` per camera.
    pub forward_ratio: Family<CameraLabel, Gauge<f64, AtomicU64>>,
    /// Seconds per frame and stage.
    pub frame_seconds: Family<StageLabel, Histogram>,
    /// 1 while a camera's stream delivers, 0 while it is down.
    pub camera_up: Family<CameraLabel, Gauge>,
    /// Reconnects per camera.
    pub camera_reconnects: Family<CameraLabel, Counter>,
    /// Frames waiting for the broker.
    pub buffer_frames: Gauge,
    /// 1 while connected to the broker.
    pub broker_up: Gauge,
}

impl GateMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn new(registry: &mut Registry) -> Self {
        let metrics = GateMetrics {
            frames_read: Family::default(),
            frames_forwarded: Family::default(),
            frames_published: Family::default(),
            frames_dropped: Family::default(),
            frames_corrupt: Family::default(),
            forward_ratio: Family::default(),
            frame_seconds: Family::new_with_constructor(|| {
                Histogram::new([
                    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                ])
            }),
            camera_up: Family::default(),
            camera_reconnects: Family::default(),
            buffer_frames: Gauge::default(),
            broker_up: Gauge::default(),
        };
        let r = registry.sub_registry_with_prefix("safecity_gate");
        r.register(
            "frames_read",
            "Frames read from cameras",
            metrics.frames_read.clone(),
        );
        r.register(
            "frames_forwarded",
            "Frames with motion, handed to the publisher",
            metrics.frames_forwarded.clone(),
        );
        r.register(
            "frames_published",
            "Frames confirmed by the broker",
            metrics.frames_published.clone(),
        );
        r.register(
            "frames_dropped",
            "Forwarded frames that never reached the broker",
            metrics.frames_dropped.clone(),
        );
        r.register(
            "frames_corrupt",
            "Frames skipped because they did not decode",
            metrics.frames_corrupt.clone(),
        );
        r.register(
            "forward_ratio",
            "Forwarded / read frames per camera",
            metrics.forward_ratio.clone(),
        );
        r.register(
            "frame_seconds",
            "Processing time per frame and stage",
            metrics.frame_seconds.clone(),
        );
        r.register(
            "camera_up",
            "1 while the camera's stream delivers frames",
            metrics.camera_up.clone(),
        );
        r.register(
            "camera_reconnects",
            "Reconnects after a cut, stall or error",
            metrics.camera_reconnects.clone(),
        );
        r.register(
            "buffer_frames",
            "Forwarded frames waiting for the broker",
            metrics.buffer_frames.clone(),
        );
        r.register(
            "broker_up",
            "1 while connected to the broker",
            metrics.broker_up.clone(),
        );
        metrics
    }

    /// A camera label.
    pub fn camera(id: &str) -> CameraLabel {
        CameraLabel {
            camera: id.to_owned(),
        }
    }

    /// Counts a dropped frame.
    pub fn dropped(&self, camera: &str, reason: DropReason) {
        self.frames_dropped
            .get_or_create(&DropLabel {
                camera: camera.to_owned(),
                reason,
            })
            .inc();
    }
}
