//! Place names of cameras, from the city's camera registry (TOML).
//!
//! The same file drives the motion gates, the detector and the demo (its
//! model is `safecity-cameras`, where `name`, `name_ko` and the zones'
//! `label`, `label_ko` are part of the format); caption reads only
//! `[[cameras]]` entries' `id`, the optional `name` (English) and `name_ko`
//! (Korean) place names and their `[[cameras.zones]]`' `name`, `label` and
//! `label_ko`, and ignores everything else — so a places-only file (ids and
//! names, as deployments keep for caption) works as well as the full registry.

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
    #[serde(default)]
    zones: Vec<ZoneEntry>,
}

#[derive(Deserialize)]
struct ZoneEntry {
    name: String,
    #[serde(default)]
    label: Option<String>,
    #[serde(default)]
    label_ko: Option<String>,
}

/// How people call the place a camera watches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    /// English name.
    pub english: String,
    /// Korean name.
    pub korean: String,
}

/// Camera id to place name, and (camera, zone) to the zone's words.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CameraRegistry {
    places: HashMap<String, Place>,
    zones: HashMap<(String, String), Place>,
}

impl CameraRegistry {
    /// Parses registry TOML.
    pub fn parse(text: &str, path: &str) -> Result<Self, RegistryError> {
        let file: RegistryFile = toml::from_str(text).map_err(|e| RegistryError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        let mut places = HashMap::new();
        let mut zones = HashMap::new();
        for camera in file.cameras {
            for zone in camera.zones {
                let english = zone
                    .label
                    .clone()
                    .unwrap_or_else(|| zone.name.replace('-', " "));
                let korean = zone.label_ko.unwrap_or_else(|| english.clone());
                zones.insert((camera.id.clone(), zone.name), Place { english, korean });
            }
            if let Some(english) = camera.name.or_else(|| camera.name_ko.clone()) {
                let korean = camera.name_ko.unwrap_or_else(|| english.clone());
                places.insert(camera.id, Place { english, korean });
            }
        }
        Ok(CameraRegistry { places, zones })
    }

    /// Reads a registry file.
    pub fn load(path: &str) -> Result<Self, RegistryError> {
        let text = std::fs::read_to_string(path).map_err(|source| RegistryError::Read {
            path: path.to_owned(),
            source,
        })?;
        CameraRegistry::parse(&text, path)
    }

    /// How people call `zone` of `camera_id`: its labels, or its name with
    /// spaces for `-` when the registry has none.
    pub fn zone(&self, camera_id: &str, zone: &str) -> Place {
        self.zones
            .get(&(camera_id.to_owned(), zone.to_owned()))
            .cloned()
            .unwrap_or_else(|| {
                let words = zone.replace('-', " ");
                Place {
                    english: words.clone(),
                    korean: words,
                }
            })
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
            [[cameras.zones]]
            name = "school-gate"
            label = "the school gate"
            label_ko = "학교 정문"
            points = [[0.5, 0.5], [1.0, 0.5], [1.0, 1.0]]
            [[cameras.zones]]
            name = "platform-edge"
            points = [[0.0, 0.5], [0.2, 0.5], [0.2, 1.0]]
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
        assert_eq!(
            registry.zone("busan-haeundae-01", "school-gate"),
            Place {
                english: "the school gate".into(),
                korean: "학교 정문".into()
            }
        );
        assert_eq!(
            registry.zone("busan-haeundae-01", "platform-edge").english,
            "platform edge"
        );
        assert_eq!(registry.zone("seoul-01", "crossing").korean, "crossing");
        assert_eq!(registry.place("unknown").korean, "unknown 카메라");
    }

    #[test]
    fn a_broken_file_names_itself() {
        let err = CameraRegistry::parse("[[cameras]]\nid = 3", "x.toml").expect_err("bad id");
        assert!(err.to_string().contains("x.toml"), "{err}");
    }
}
