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
//! [cameras.sim]          # optional: how cctv-sim renders this camera (its SceneSpec)
//! seed = 7
//! ```

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use safecity_events::Camera;
use serde::{Deserialize, Serialize};

use crate::motion::MotionConfig;
use crate::source::SourceUrl;
use crate::trigger::TriggerConfig;

/// Errors loading a registry.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The file could not be read.
    #[error("reading camera registry `{path}`: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The TOML is malformed or has unknown/missing fields.
    #[error("camera registry `{path}`: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A value is out of range.
    #[error("camera registry `{path}`: `{field}` {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Which field, e.g. `cameras[2].latitude`.
        field: String,
        /// What is wrong.
        reason: String,
    },
}

/// Gate parameters shared by all cameras of the file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GateParams {
    /// Pixel pipeline.
    pub motion: MotionConfig,
    /// Trigger, hold-off and rate limit.
    pub trigger: TriggerConfig,
}

/// One camera of the registry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CameraEntry {
    /// Stable id, e.g. `busan-haeundae-01`.
    pub id: String,
    /// Edge region (the routing key of its frames).
    pub region: String,
    /// WGS 84 latitude.
    pub latitude: f64,
    /// WGS 84 longitude.
    pub longitude: f64,
    /// `http://host:port/path` (MJPEG) or `dir:///path?fps=15` (JPEG files).
    pub source: String,
    /// How the CCTV simulator renders this camera (its scene); the gate
    /// does not read it (see `safecity-cctv-sim`).
    #[serde(default)]
    pub sim: Option<toml::Table>,
}

impl CameraEntry {
    /// The camera as frames describe it.
    pub fn camera(&self) -> Camera {
        Camera {
            id: self.id.clone(),
            region: self.region.clone(),
            latitude: self.latitude,
            longitude: self.longitude,
        }
    }

    /// The parsed source URL.
    pub fn source_url(&self) -> Result<SourceUrl, String> {
        self.source.parse()
    }
}

/// A parsed and validated registry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registry {
    /// Gate parameters.
    #[serde(default)]
    pub gate: GateParams,
    /// The cameras.
    pub cameras: Vec<CameraEntry>,
}

impl Registry {
    /// Reads and validates a registry file.
    pub fn load(path: &Path) -> Result<Self, RegistryError> {
        let text = std::fs::read_to_string(path).map_err(|source| RegistryError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses and validates registry text (`path` only names it in errors).
    pub fn parse(text: &str, path: &Path) -> Result<Self, RegistryError> {
        let registry: Registry = toml::from_str(text).map_err(|e| RegistryError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
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
        let mut ids = HashSet::new();
        for (i, entry) in self.cameras.iter().enumerate() {
            entry.camera().validate().map_err(|(field, reason)| {
                invalid(
                    format!("cameras[{i}].{}", field.trim_start_matches("camera.")),
                    reason,
                )
            })?;
            if !ids.insert(entry.id.as_str()) {
                return Err(invalid(
                    format!("cameras[{i}].id"),
                    format!("`{}` is listed twice", entry.id),
                ));
            }
            entry
                .source_url()
                .map_err(|reason| invalid(format!("cameras[{i}].source"), reason))?;
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
