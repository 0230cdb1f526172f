//! The simulator's view of a camera registry file: for each camera, its id,
//! region, source URL and `sim` table (its [`SceneSpec`]). Everything else in
//! the file belongs to the gate and is ignored here.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::scene::SceneSpec;

/// Errors reading the registry.
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
    /// The TOML is malformed, or a camera lacks a field the simulator needs.
    #[error("camera registry `{path}`: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A camera's `sim` table or source is unusable.
    #[error("camera registry `{path}`: `{field}` {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Which field, e.g. `cameras[2].sim`.
        field: String,
        /// What is wrong.
        reason: String,
    },
}

/// One camera as the simulator sees it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct SimEntry {
    /// Camera id.
    pub id: String,
    /// Edge region.
    pub region: String,
    /// Its source URL; `http://host:port/path` cameras are served.
    pub source: String,
    /// How to render it (a still street scene by default).
    #[serde(default)]
    pub sim: Option<SceneSpec>,
}

impl SimEntry {
    /// The scene to render: the `sim` table, or the default scene.
    pub fn scene_spec(&self) -> SceneSpec {
        self.sim.clone().unwrap_or_default()
    }

    /// Where to serve it, for `http://` sources: the listen address and the path.
    pub fn http_endpoint(&self) -> Option<Result<(SocketAddr, String), String>> {
        let rest = self.source.strip_prefix("http://")?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
        Some(
            authority
                .parse::<SocketAddr>()
                .map(|addr| (addr, path.to_owned()))
                .map_err(|_| format!("`{authority}` is not an IP:port the simulator can bind")),
        )
    }
}

#[derive(Debug, Deserialize)]
struct File {
    cameras: Vec<SimEntry>,
}

/// The cameras of a registry file.
#[derive(Debug, Clone, PartialEq)]
pub struct SimRegistry {
    /// Every camera, in file order.
    pub cameras: Vec<SimEntry>,
}

impl SimRegistry {
    /// Reads `path`; relative photo paths in `sim` tables are resolved
    /// against the file's folder, and every scene is validated.
    pub fn load(path: &Path) -> Result<Self, RegistryError> {
        let text = std::fs::read_to_string(path).map_err(|source| RegistryError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut registry = Self::parse(&text, path)?;
        let base = path.parent().unwrap_or(Path::new("."));
        for camera in &mut registry.cameras {
            if let Some(sim) = &mut camera.sim {
                sim.resolve_paths(base);
            }
        }
        Ok(registry)
    }

    /// Parses registry text (`path` only names it in errors).
    pub fn parse(text: &str, path: &Path) -> Result<Self, RegistryError> {
        let file: File = toml::from_str(text).map_err(|e| RegistryError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        for (i, camera) in file.cameras.iter().enumerate() {
            let invalid = |field: &str, reason: String| RegistryError::Invalid {
                path: path.to_owned(),
                field: format!("cameras[{i}].{field}"),
                reason,
            };
            if let Some(sim) = &camera.sim {
                sim.validate().map_err(|e| invalid("sim", e.to_string()))?;
            }
            if let Some(Err(reason)) = camera.http_endpoint() {
                return Err(invalid("source", reason));
            }
        }
        Ok(SimRegistry {
            cameras: file.cameras,
        })
    }

    /// The camera `id`.
    pub fn camera(&self, id: &str) -> Option<&SimEntry> {
        self.cameras.iter().find(|c| c.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gate_fields_are_ignored_and_endpoints_parsed() {
        let text = r#"
[gate.motion]
threshold = 25

[[cameras]]
id = "a"
region = "seoul"
latitude = 37.0
longitude = 127.0
source = "http://127.0.0.1:8701/cameras/a.mjpg"
[cameras.sim]
seed = 3
"#;
        let registry = SimRegistry::parse(text, Path::new("r.toml")).expect("valid");
        let (addr, path) = registry.cameras[0]
            .http_endpoint()
            .expect("http")
            .expect("valid");
        assert_eq!(addr.port(), 8701);
        assert_eq!(path, "/cameras/a.mjpg");
        assert_eq!(registry.camera("a").expect("a").scene_spec().seed, 3);
    }

    #[test]
    fn a_bad_scene_names_the_camera() {
        let text = r#"
[[cameras]]
id = "a"
region = "seoul"
source = "http://127.0.0.1:8701/a"
[cameras.sim]
fps = 0.0
"#;
        let error = SimRegistry::parse(text, Path::new("r.toml")).expect_err("fps 0");
        assert!(error.to_string().contains("cameras[0].sim"), "{error}");
    }
}
