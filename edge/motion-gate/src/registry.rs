//! The camera registry: one TOML file that drives the gates, the simulator and
//! the city demo.
//!
//! ```toml
//! [gate.motion]          # optional, see MotionConfig
//! threshold = 25
//! [gate.trigger]         # optional, see TriggerConfig
//! hold_off = "1s"
//!
//! [[cameras]]
//! id = "seoul-gangnam-01"
//! region = "seoul"
//! latitude = 37.4979
//! longitude = 127.0276
//! source = "http://127.0.0.1:8701/cameras/seoul-gangnam-01.mjpg"
//! [[cameras.masks]]      # optional: motion here is ignored (relative 0..=1 coordinates)
//! points = [[0.0, 0.0], [0.3, 0.0], [0.3, 0.4], [0.0, 0.4]]
//! [[cameras.zones]]      # optional: named areas for the detector (the gate ignores them)
//! name = "crossing"
//! points = [[0.1, 0.6], [0.9, 0.6], [0.9, 1.0], [0.1, 1.0]]
//! [cameras.sim]          # optional: how cctv-sim renders this camera (its SceneSpec)
//! seed = 7
//! ```
//!
//! The `[[cameras]]` model is `safecity-cameras`' (shared with the detector
//! and caption); this file adds the gate's `[gate]` table and source URLs.

use std::path::Path;

use serde::{Deserialize, Serialize};

pub use safecity_cameras::registry::validate_cameras;
pub use safecity_cameras::{CameraEntry, Mask, RegistryError, Zone};

use crate::motion::MotionConfig;
use crate::source::SourceUrl;
use crate::trigger::TriggerConfig;

/// Gate parameters shared by all cameras of the file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GateParams {
    /// Pixel pipeline.
    pub motion: MotionConfig,
    /// Trigger, hold-off and rate limit.
    pub trigger: TriggerConfig,
}

/// The parsed source URL of a camera.
pub fn source_url(entry: &CameraEntry) -> Result<SourceUrl, String> {
    entry.source.parse()
}

/// A parsed and validated registry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registry {
    /// Gate parameters.
    #[serde(default)]
    pub gate: GateParams,
    /// The cameras (the shared model of `safecity-cameras`: masks, zones,
    /// place names, the simulator's scene).
    pub cameras: Vec<CameraEntry>,
}

impl Registry {
    /// Reads and validates a registry file.
    pub fn load(path: &Path) -> Result<Self, RegistryError> {
        Self::parse(&safecity_cameras::registry::read_file(path)?, path)
    }

    /// Parses and validates registry text (`path` only names it in errors).
    pub fn parse(text: &str, path: &Path) -> Result<Self, RegistryError> {
        let registry: Registry = safecity_cameras::registry::parse_toml(text, path)?;
        registry.validate(path)?;
        Ok(registry)
    }

    fn validate(&self, path: &Path) -> Result<(), RegistryError> {
        let invalid = |field: String, reason: String| RegistryError::Invalid {
            path: path.to_owned(),
            field,
            reason,
        };
        self.gate
            .motion
            .validate()
            .map_err(|e| invalid("gate.motion".into(), e.to_string()))?;
        self.gate
            .trigger
            .validate()
            .map_err(|e| invalid("gate.trigger".into(), e.to_string()))?;
        validate_cameras(&self.cameras, path)?;
        for (i, entry) in self.cameras.iter().enumerate() {
            source_url(entry).map_err(|reason| invalid(format!("cameras[{i}].source"), reason))?;
        }
        Ok(())
    }

    /// The cameras of one region.
    pub fn region(&self, region: &str) -> Vec<&CameraEntry> {
        self.cameras.iter().filter(|c| c.region == region).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../cameras.example.toml");

    #[test]
    fn the_example_registry_is_valid() {
        let registry = Registry::parse(EXAMPLE, Path::new("cameras.example.toml")).expect("valid");
        for region in ["seoul", "busan", "daejeon"] {
            assert!(!registry.region(region).is_empty(), "{region}");
        }
    }

    #[test]
    fn errors_name_the_field() {
        let text = r#"
[[cameras]]
id = "a"
region = "seoul"
latitude = 137.0
longitude = 127.0
source = "http://127.0.0.1:1/a"
"#;
        let err = Registry::parse(text, Path::new("r.toml")).expect_err("invalid");
        assert!(err.to_string().contains("cameras[0].latitude"), "{err}");
        let text = text.replace("137.0", "37.0").replace("http://", "ftp://");
        let err = Registry::parse(&text, Path::new("r.toml")).expect_err("invalid");
        assert!(err.to_string().contains("cameras[0].source"), "{err}");
        let err = Registry::parse("[[cameras]]\nid = 1", Path::new("r.toml")).expect_err("bad");
        assert!(matches!(err, RegistryError::Parse { .. }), "{err}");
        let bad_mask = format!(
            "{}[[cameras.masks]]\nname = \"tv\"\npoints = [[0.1, 0.1], [0.2, 0.1]]\n",
            text.replace("ftp://", "http://")
        );
        let err = Registry::parse(&bad_mask, Path::new("r.toml")).expect_err("two points");
        let err = err.to_string();
        assert!(
            err.contains("cameras[0].masks[0]") && err.contains("camera `a`, mask `tv`"),
            "{err}"
        );
    }

    #[test]
    fn duplicate_ids_are_rejected() {
        let one = r#"
[[cameras]]
id = "a"
region = "seoul"
latitude = 37.0
longitude = 127.0
source = "http://127.0.0.1:1/a"
"#;
        let err = Registry::parse(&format!("{one}{one}"), Path::new("r.toml")).expect_err("dup");
        assert!(err.to_string().contains("listed twice"), "{err}");
    }
}
