//! Place names of cameras, from the city's camera registry (TOML).
//!
//! The same file drives the motion gates and the demo; caption reads only
//! `[[cameras]]` entries' `id` and the optional `name` (English) and `name_ko`
//! (Korean) place names, and ignores everything else.

use std::collections::HashMap;

use serde::Deserialize;

/// A registry that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The file could not be read.
    #[error("cannot read camera registry `{path}`: {source}")]
    Read {
        /// The path.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a valid registry.
    #[error("camera registry `{path}` is invalid: {message}")]
    Parse {
        /// The path.
        path: String,
        /// The TOML error.
        message: String,
    },
}

#[derive(Deserialize)]
struct RegistryFile {
    #[serde(default)]
    cameras: Vec<CameraEntry>,
}

#[derive(Deserialize)]
struct CameraEntry {
    id: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    name_ko: Option<String>,
}

/// How people call the place a camera watches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    /// English name.
    pub english: String,
    /// Korean name.
    pub korean: String,
}

/// Camera id to place name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CameraRegistry {
    places: HashMap<String, Place>,
}

impl CameraRegistry {
    /// Parses registry TOML.
    pub fn parse(text: &str, path: &str) -> Result<Self, RegistryError> {
        let file: RegistryFile = toml::from_str(text).map_err(|e| RegistryError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        let places = file
            .cameras
            .into_iter()
            .filter_map(|c| {
                let english = c.name.or_else(|| c.name_ko.clone())?;
                let korean = c.name_ko.unwrap_or_else(|| english.clone());
                Some((c.id, Place { english, korean }))
            })
            .collect();
        Ok(CameraRegistry { places })
    }

    /// Reads a registry file.
    pub fn load(path: &str) -> Result<Self, RegistryError> {
        let text = std::fs::read_to_string(path).map_err(|source| RegistryError::Read {
            path: path.to_owned(),
            source,
        })?;
        CameraRegistry::parse(&text, path)
    }

    /// The place of `camera_id`, or the id itself when the registry has no name.
    pub fn place(&self, camera_id: &str) -> Place {
        self.places
            .get(camera_id)
            .cloned()
            .unwrap_or_else(|| Place {
                english: format!("camera {camera_id}"),
                korean: format!("{camera_id} 카메라"),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_read_and_other_keys_ignored() {
        let registry = CameraRegistry::parse(
            r#"
            [gate.motion]
            threshold = 25
            [[cameras]]
            id = "busan-haeundae-01"
            region = "busan"
            latitude = 35.1
            longitude = 129.1
            source = "http://127.0.0.1:1/a.mjpg"
            name = "Haeundae Beach"
            name_ko = "해운대 해수욕장"
            [[cameras]]
            id = "seoul-01"
            region = "seoul"
            latitude = 37.5
            longitude = 127.0
            source = "http://127.0.0.1:1/b.mjpg"
            "#,
            "cameras.toml",
        )
        .expect("valid");
        assert_eq!(
            registry.place("busan-haeundae-01"),
            Place {
                english: "Haeundae Beach".into(),
                korean: "해운대 해수욕장".into()
            }
        );
        assert_eq!(registry.place("seoul-01").english, "camera seoul-01");
        assert_eq!(registry.place("unknown").korean, "unknown 카메라");
    }

    #[test]
    fn a_broken_file_names_itself() {
        let err = CameraRegistry::parse("[[cameras]]\nid = 3", "x.toml").expect_err("bad id");
        assert!(err.to_string().contains("x.toml"), "{err}");
    }
}
