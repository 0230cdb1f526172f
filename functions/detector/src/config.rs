//! The detector's settings, read once from the environment into a typed struct.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `SAFECITY_DETECTOR_CFG` | required | Darknet `.cfg` of the model |
//! | `SAFECITY_DETECTOR_WEIGHTS` | required | Darknet `.weights` |
//! | `SAFECITY_DETECTOR_NAMES` | required | class names, one a line (e.g. `coco.names`) |
//! | `SAFECITY_DETECTOR_CLASSES` | required | class map (TOML): model class -> event type, minimum confidence |
//! | `SAFECITY_DETECTOR_DEVICE` | `cpu` | `cpu`, `cuda`, `cuda:N` or `auto` (CUDA needs the `cuda` feature) |
//! | `SAFECITY_DETECTOR_BATCH_SIZE` | `4` | most frames per model run; keep `SAFECITY_CONCURRENCY` >= this |
//! | `SAFECITY_DETECTOR_BATCH_WAIT` | `50ms` | longest wait after a batch's first frame |
//! | `SAFECITY_DETECTOR_INCIDENT_WINDOW` | `30s` | silence (capture time) that ends an incident |
//! | `SAFECITY_DETECTOR_INCIDENT_MEMORY` | `10m` | how long an incident is remembered after its last detection (late and redelivered frames); at least the window |
//! | `SAFECITY_DETECTOR_SNAPSHOT_MAX_SIDE` | `640` | longest side of the event's snapshot, pixels |
//! | `SAFECITY_DETECTOR_SNAPSHOT_QUALITY` | `80` | JPEG quality of the snapshot, 1-100 |
//! | `SAFECITY_DETECTOR_CONFIDENCE` | `0.25` | the model's detection threshold (class-map minimums apply on top) |
//! | `SAFECITY_DETECTOR_NMS` | `0.45` | non-maximum suppression threshold |
//! | `SAFECITY_DETECTOR_REGION` | all | consume the frames of one region only |
//! | `SAFECITY_DETECTOR_MAX_FRAME_BYTES` | `20971520` | larger frames are dead-lettered (bytes, or e.g. `20MiB`) |
//! | `SAFECITY_DETECTOR_MAX_FRAME_PIXELS` | `40000000` | frames with more pixels are dead-lettered (checked before decoding) |
//! | `SAFECITY_DETECTOR_DECODE_BUDGET_PIXELS` | `48000000` | decoded pixels held at once by all frames in flight (3 bytes each: 144 MB); frames wait for room |
//! | `SAFECITY_CAMERA_REGISTRY` | none | the camera registry (zones, `raw_snapshots`); needed when the class map requires zones |
//! | `SAFECITY_DETECTOR_MIN_TRACK_FRAMES` | `2` | frames a tracked object must be seen in before it can open an incident |
//! | `SAFECITY_DETECTOR_TRACK_MEMORY` | `5s` | a moving object unseen this long (capture time) is a new object when it reappears |
//! | `SAFECITY_DETECTOR_STATIONARY_AFTER` | `10s` | an object that has not moved this long is stationary (never re-opens an incident) |
//! | `SAFECITY_DETECTOR_STATIONARY_MEMORY` | `1h` | how long a stationary object is remembered unseen |
//! | `SAFECITY_DETECTOR_UPDATE_INTERVAL` | `10s` | at most one `updated` event per incident per this much capture time |
//! | `SAFECITY_DETECTOR_PIXELATE` | `person` | model classes pixelated in every snapshot (comma-separated; `none` = off) |
//!
//! The runtime's own variables (`SAFECITY_CONCURRENCY`, …) are read by
//! [`safecity_runtime::RuntimeConfig`].

use std::path::PathBuf;
use std::time::Duration;

use safecity_shell::env::{Env, EnvError, process_env};
use safecity_yolo::device::DevicePreference;

use crate::batcher::BatchPolicy;
use crate::incidents::LifecycleSettings;
use crate::snapshot::SnapshotSettings;
use crate::tracks::TrackSettings;

/// Where the model comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelFiles {
    /// Darknet cfg.
    pub cfg: PathBuf,
    /// Darknet weights.
    pub weights: PathBuf,
    /// Class names.
    pub names: PathBuf,
}

/// Every detector setting, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct DetectorConfig {
    /// The model's files.
    pub model: ModelFiles,
    /// The class map file.
    pub classes: PathBuf,
    /// The device.
    pub device: DevicePreference,
    /// Dynamic batching.
    pub batch: BatchPolicy,
    /// Silence that ends an incident.
    pub incident_window: Duration,
    /// How long incidents are remembered after their last detection.
    pub incident_memory: Duration,
    /// Snapshot size and quality.
    pub snapshot: SnapshotSettings,
    /// The model's confidence threshold.
    pub confidence: f32,
    /// The NMS threshold.
    pub nms: f32,
    /// The region whose frames are consumed, or all.
    pub region: Option<String>,
    /// Largest frame body accepted, bytes.
    pub max_frame_bytes: usize,
    /// Largest frame accepted, pixels.
    pub max_frame_pixels: u64,
    /// Decoded pixels held at once by all frames in flight.
    pub decode_budget_pixels: u64,
    /// The camera registry file (zones, privacy opt-ins), if any.
    pub camera_registry: Option<PathBuf>,
    /// Tracks, updates.
    pub lifecycle: LifecycleSettings,
    /// Model classes pixelated in snapshots.
    pub pixelate: Vec<String>,
}

impl DetectorConfig {
    /// Reads the settings from the process environment.
    pub fn from_env() -> Result<Self, EnvError> {
        DetectorConfig::from_lookup(process_env)
    }

    /// Reads the settings through `lookup` (the environment, or a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, EnvError> {
        let env = Env::new(&lookup);
        let model = ModelFiles {
            cfg: env.path("SAFECITY_DETECTOR_CFG", "the Darknet .cfg of the model")?,
            weights: env.path("SAFECITY_DETECTOR_WEIGHTS", "the Darknet .weights")?,
            names: env.path("SAFECITY_DETECTOR_NAMES", "the class names file")?,
        };
        let classes = env.path("SAFECITY_DETECTOR_CLASSES", "the class map (TOML)")?;
        let device = env.from_str("SAFECITY_DETECTOR_DEVICE", "cpu")?;
        let max_batch = env.integer("SAFECITY_DETECTOR_BATCH_SIZE", "4", 1..=256usize)?;
        let max_wait = env.duration("SAFECITY_DETECTOR_BATCH_WAIT", "50ms")?;
        let incident_window = env.positive_duration("SAFECITY_DETECTOR_INCIDENT_WINDOW", "30s")?;
        let incident_memory = env.positive_duration("SAFECITY_DETECTOR_INCIDENT_MEMORY", "10m")?;
        if incident_memory < incident_window {
            return Err(EnvError::new(
                "SAFECITY_DETECTOR_INCIDENT_MEMORY",
                format!(
                    "{} is shorter than SAFECITY_DETECTOR_INCIDENT_WINDOW ({})",
                    humantime::format_duration(incident_memory),
                    humantime::format_duration(incident_window)
                ),
            ));
        }
        let max_side = env.integer("SAFECITY_DETECTOR_SNAPSHOT_MAX_SIDE", "640", 16..=8192u32)?;
        let quality = env.integer("SAFECITY_DETECTOR_SNAPSHOT_QUALITY", "80", 1..=100u8)?;
        let confidence = env.fraction("SAFECITY_DETECTOR_CONFIDENCE", "0.25")?;
        let nms = env.fraction("SAFECITY_DETECTOR_NMS", "0.45")?;
        let region = env
            .optional("SAFECITY_DETECTOR_REGION")
            .filter(|r| r != "*" && r != "#");
        if let Some(region) = &region
            && region.contains(['.', '*', '#', ' '])
        {
            return Err(EnvError::new(
                "SAFECITY_DETECTOR_REGION",
                format!("`{region}` is not a region name (no `.`, `*`, `#` or spaces)"),
            ));
        }
        let chrono = |d: Duration| chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX);
        let lifecycle = LifecycleSettings {
            min_hits: env.integer("SAFECITY_DETECTOR_MIN_TRACK_FRAMES", "2", 1..=1000u32)?,
            tracks: TrackSettings {
                memory: chrono(env.positive_duration("SAFECITY_DETECTOR_TRACK_MEMORY", "5s")?),
                stationary_after: chrono(
                    env.positive_duration("SAFECITY_DETECTOR_STATIONARY_AFTER", "10s")?,
                ),
                stationary_memory: chrono(
                    env.positive_duration("SAFECITY_DETECTOR_STATIONARY_MEMORY", "1h")?,
                ),
            },
            update_interval: chrono(env.duration("SAFECITY_DETECTOR_UPDATE_INTERVAL", "10s")?),
        };
        let pixelate_text = env.text("SAFECITY_DETECTOR_PIXELATE", "person");
        let pixelate: Vec<String> = if pixelate_text.trim() == "none" {
            Vec::new()
        } else {
            pixelate_text
                .split(',')
                .map(|c| c.trim().to_owned())
                .filter(|c| !c.is_empty())
                .collect()
        };
        if pixelate.is_empty() && pixelate_text.trim() != "none" {
            return Err(EnvError::new(
                "SAFECITY_DETECTOR_PIXELATE",
                "lists no class: name model classes (e.g. `person`) or say `none`",
            ));
        }
        let camera_registry = env.optional("SAFECITY_CAMERA_REGISTRY").map(PathBuf::from);
        let max_frame_bytes = env.size("SAFECITY_DETECTOR_MAX_FRAME_BYTES", "20971520")?;
        let max_frame_pixels = env.integer(
            "SAFECITY_DETECTOR_MAX_FRAME_PIXELS",
            "40000000",
            1..=u64::MAX,
        )?;
        Ok(DetectorConfig {
            model,
            classes,
            device,
            batch: BatchPolicy {
                max_batch,
                max_wait,
            },
            incident_window,
            incident_memory,
            snapshot: SnapshotSettings { max_side, quality },
            confidence,
            nms,
            region,
            max_frame_bytes: usize::try_from(max_frame_bytes).unwrap_or(usize::MAX),
            max_frame_pixels,
            decode_budget_pixels: env.integer(
                "SAFECITY_DETECTOR_DECODE_BUDGET_PIXELS",
                "48000000",
                1..=u64::MAX,
            )?,
            camera_registry,
            lifecycle,
            pixelate,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    const REQUIRED: [(&str, &str); 4] = [
        ("SAFECITY_DETECTOR_CFG", "/m/yolov4-tiny.cfg"),
        ("SAFECITY_DETECTOR_WEIGHTS", "/m/yolov4-tiny.weights"),
        ("SAFECITY_DETECTOR_NAMES", "/m/coco.names"),
        ("SAFECITY_DETECTOR_CLASSES", "/m/classes.toml"),
    ];

    fn from(vars: &[(&str, &str)]) -> Result<DetectorConfig, EnvError> {
        let mut map: HashMap<String, String> = REQUIRED
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        for (k, v) in vars {
            map.insert((*k).to_owned(), (*v).to_owned());
        }
        DetectorConfig::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn defaults() {
        let config = from(&[]).expect("defaults");
        assert_eq!(config.model.cfg, PathBuf::from("/m/yolov4-tiny.cfg"));
        assert_eq!(config.device, DevicePreference::Cpu);
        assert_eq!(config.batch.max_batch, 4);
        assert_eq!(config.batch.max_wait, Duration::from_millis(50));
        assert_eq!(config.incident_window, Duration::from_secs(30));
        assert_eq!(config.incident_memory, Duration::from_secs(600));
        assert_eq!(config.snapshot.max_side, 640);
        assert_eq!(config.snapshot.quality, 80);
        assert_eq!(config.confidence, 0.25);
        assert_eq!(config.nms, 0.45);
        assert_eq!(config.region, None);
        assert_eq!(config.max_frame_bytes, 20 * 1024 * 1024);
        assert_eq!(config.max_frame_pixels, 40_000_000);
        assert_eq!(config.lifecycle.min_hits, 2);
        assert_eq!(config.lifecycle.tracks.memory, chrono::Duration::seconds(5));
        assert_eq!(
            config.lifecycle.tracks.stationary_after,
            chrono::Duration::seconds(10)
        );
        assert_eq!(
            config.lifecycle.tracks.stationary_memory,
            chrono::Duration::hours(1)
        );
        assert_eq!(
            config.lifecycle.update_interval,
            chrono::Duration::seconds(10)
        );
        assert_eq!(
            config.pixelate,
            ["person"],
            "privacy at the source by default"
        );
        assert_eq!(config.camera_registry, None);
        let off = from(&[("SAFECITY_DETECTOR_PIXELATE", "none")]).expect("off");
        assert!(off.pixelate.is_empty());
        let two = from(&[("SAFECITY_DETECTOR_PIXELATE", "person, face")]).expect("two");
        assert_eq!(two.pixelate, ["person", "face"]);
    }

    #[test]
    fn values_are_parsed() {
        let config = from(&[
            ("SAFECITY_DETECTOR_DEVICE", "cuda:1"),
            ("SAFECITY_DETECTOR_BATCH_SIZE", "8"),
            ("SAFECITY_DETECTOR_BATCH_WAIT", "0ms"),
            ("SAFECITY_DETECTOR_INCIDENT_WINDOW", "2m"),
            ("SAFECITY_DETECTOR_INCIDENT_MEMORY", "2m"),
            ("SAFECITY_DETECTOR_REGION", "busan"),
            ("SAFECITY_DETECTOR_CONFIDENCE", "0.5"),
        ])
        .expect("valid");
        assert_eq!(config.device, DevicePreference::Cuda(1));
        assert_eq!(config.batch.max_batch, 8);
        assert_eq!(config.batch.max_wait, Duration::ZERO);
        assert_eq!(config.incident_window, Duration::from_secs(120));
        assert_eq!(config.region.as_deref(), Some("busan"));
        assert_eq!(config.confidence, 0.5);
    }

    #[test]
    fn each_bad_value_names_its_variable() {
        for (variable, value) in [
            ("SAFECITY_DETECTOR_CFG", ""),
            ("SAFECITY_DETECTOR_DEVICE", "tpu"),
            ("SAFECITY_DETECTOR_DEVICE", "cuda:x"),
            ("SAFECITY_DETECTOR_BATCH_SIZE", "0"),
            ("SAFECITY_DETECTOR_BATCH_WAIT", "soon"),
            ("SAFECITY_DETECTOR_INCIDENT_WINDOW", "0s"),
            ("SAFECITY_DETECTOR_INCIDENT_MEMORY", "10s"),
            ("SAFECITY_DETECTOR_SNAPSHOT_MAX_SIDE", "8"),
            ("SAFECITY_DETECTOR_SNAPSHOT_QUALITY", "101"),
            ("SAFECITY_DETECTOR_CONFIDENCE", "1.5"),
            ("SAFECITY_DETECTOR_NMS", "high"),
            ("SAFECITY_DETECTOR_REGION", "a.b"),
            ("SAFECITY_DETECTOR_MAX_FRAME_BYTES", "-1"),
            ("SAFECITY_DETECTOR_MAX_FRAME_PIXELS", "0"),
            ("SAFECITY_DETECTOR_MIN_TRACK_FRAMES", "0"),
            ("SAFECITY_DETECTOR_TRACK_MEMORY", "0s"),
            ("SAFECITY_DETECTOR_STATIONARY_AFTER", "later"),
            ("SAFECITY_DETECTOR_UPDATE_INTERVAL", "often"),
            ("SAFECITY_DETECTOR_PIXELATE", " , "),
        ] {
            let err = from(&[(variable, value)]).expect_err(variable);
            assert_eq!(err.variable, variable, "{err}");
            assert!(err.to_string().starts_with(variable), "{err}");
        }
        let missing = DetectorConfig::from_lookup(|_| None).expect_err("required");
        assert_eq!(missing.variable, "SAFECITY_DETECTOR_CFG");
        assert!(missing.to_string().contains("is required"), "{missing}");
    }
}
