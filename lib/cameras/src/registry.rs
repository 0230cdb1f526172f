//! The camera registry: the `[[cameras]]` of the city's registry file, as the
//! gates, the detector, caption and the simulator share them.
//!
//! ```toml
//! [[cameras]]
//! id = "seoul-gangnam-01"
//! region = "seoul"
//! latitude = 37.4979
//! longitude = 127.0276
//! source = "http://127.0.0.1:8701/cameras/seoul-gangnam-01.mjpg"
//! name = "Gangnam Station crossing"     # optional place names (caption)
//! name_ko = "강남역 사거리"
//! raw_snapshots = false                 # true: this camera's snapshots leave the
//!                                       # detector unblurred (operator opt-in)
//!
//! [[cameras.masks]]                     # motion here is ignored by the gate
//! name = "tree"                         # optional, names it in errors
//! points = [[0.0, 0.0], [0.25, 0.0], [0.25, 0.4], [0.0, 0.4]]
//!
//! [[cameras.zones]]                     # named areas for the detector's rules
//! name = "crossing"                     # a-z, 0-9, `-`
//! label = "the crossing"                # optional words for captions
//! label_ko = "횡단보도"
//! points = [[0.1, 0.6], [0.9, 0.6], [0.9, 1.0], [0.1, 1.0]]
//!
//! [cameras.sim]                         # optional: the simulator's scene (opaque here)
//! seed = 7
//! ```
//!
//! Coordinates are relative to the frame (0..=1, `x` from the left, `y` from
//! the top). Unknown keys in a camera are errors. Other top-level tables (the
//! gate's `[gate]`) belong to their readers and are ignored by
//! [`CameraRegistry`].

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use safecity_events::Camera;
use safecity_events::incident::check_zone_name;
use serde::{Deserialize, Serialize};

use crate::geometry::{Point, Polygon};

/// Errors loading or validating a registry.
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
    /// A value is out of range: names the field, the camera and the zone or mask.
    #[error("camera registry `{path}`: `{field}` {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Which field, e.g. `cameras[2].zones[0]` (camera `a`, zone `crossing`).
        field: String,
        /// What is wrong.
        reason: String,
    },
}

/// A motion mask: motion inside it is ignored by the gate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mask {
    /// Optional name (a swaying tree, a TV screen), used in errors.
    #[serde(default)]
    pub name: Option<String>,
    /// The area, in relative frame coordinates.
    pub points: Polygon,
}

/// A named zone of a camera's view (`crossing`, `school-gate`, `platform-edge`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Zone {
    /// The zone's name: `a-z`, `0-9` and `-` (it travels in events).
    pub name: String,
    /// How people call it in English (captions); the name when absent.
    #[serde(default)]
    pub label: Option<String>,
    /// How people call it in Korean (captions); the English label when absent.
    #[serde(default)]
    pub label_ko: Option<String>,
    /// The area, in relative frame coordinates.
    pub points: Polygon,
}

impl Zone {
    /// Whether the point (relative coordinates) is inside the zone.
    pub fn contains(&self, point: Point) -> bool {
        self.points.contains(point)
    }

    /// The English words for the zone.
    pub fn english(&self) -> String {
        self.label
            .clone()
            .unwrap_or_else(|| self.name.replace('-', " "))
    }

    /// The Korean words for the zone.
    pub fn korean(&self) -> String {
        self.label_ko.clone().unwrap_or_else(|| self.english())
    }
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
    /// The place in English (caption's text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The place in Korean (caption's text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_ko: Option<String>,
    /// Areas where the gate ignores motion.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub masks: Vec<Mask>,
    /// Named areas for the detector's zone rules and the events' `zones`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub zones: Vec<Zone>,
    /// Operator opt-in: this camera's snapshots leave the detector without
    /// people pixelated (default false: privacy at the source).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub raw_snapshots: bool,
    /// How the CCTV simulator renders this camera (its scene); no product
    /// component reads it (see `safecity-cctv-sim`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sim: Option<toml::Table>,
}

impl CameraEntry {
    /// A camera with no place names, masks, zones or scene.
    pub fn new(id: &str, region: &str, latitude: f64, longitude: f64, source: &str) -> Self {
        CameraEntry {
            id: id.to_owned(),
            region: region.to_owned(),
            latitude,
            longitude,
            source: source.to_owned(),
            name: None,
            name_ko: None,
            masks: Vec::new(),
            zones: Vec::new(),
            raw_snapshots: false,
            sim: None,
        }
    }

    /// The camera as frames and events describe it.
    pub fn camera(&self) -> Camera {
        Camera {
            id: self.id.clone(),
            region: self.region.clone(),
            latitude: self.latitude,
            longitude: self.longitude,
        }
    }

    /// The mask polygons.
    pub fn mask_polygons(&self) -> Vec<Polygon> {
        self.masks.iter().map(|m| m.points.clone()).collect()
    }

    /// The zone called `name`.
    pub fn zone(&self, name: &str) -> Option<&Zone> {
        self.zones.iter().find(|z| z.name == name)
    }

    /// Checks position, masks and zones; `(field, reason)` on error, the
    /// field relative to the camera (e.g. `zones[1]`).
    pub fn validate(&self) -> Result<(), (String, String)> {
        self.camera()
            .validate()
            .map_err(|(field, reason)| (field.trim_start_matches("camera.").to_owned(), reason))?;
        for (i, mask) in self.masks.iter().enumerate() {
            let named = mask
                .name
                .as_deref()
                .map_or_else(String::new, |n| format!(" `{n}`"));
            mask.points.validate().map_err(|e| {
                (
                    format!("masks[{i}]"),
                    format!("(camera `{}`, mask{named}) {e}", self.id),
                )
            })?;
        }
        let mut names = HashSet::new();
        for (i, zone) in self.zones.iter().enumerate() {
            let field = format!("zones[{i}]");
            let at = format!("(camera `{}`, zone `{}`)", self.id, zone.name);
            check_zone_name(&zone.name).map_err(|e| (field.clone(), format!("{at} {e}")))?;
            if !names.insert(zone.name.as_str()) {
                return Err((field, format!("{at} is listed twice")));
            }
            zone.points
                .validate()
                .map_err(|e| (field.clone(), format!("{at} {e}")))?;
        }
        Ok(())
    }
}

/// Validates every camera of a registry: positions, unique ids, masks and
/// zones. `path` only names the file in errors.
pub fn validate_cameras(cameras: &[CameraEntry], path: &Path) -> Result<(), RegistryError> {
    let mut ids = HashSet::new();
    for (i, entry) in cameras.iter().enumerate() {
        let invalid = |field: String, reason: String| RegistryError::Invalid {
            path: path.to_owned(),
            field: format!("cameras[{i}].{field}"),
            reason,
        };
        entry.validate().map_err(|(f, r)| invalid(f, r))?;
        if !ids.insert(entry.id.as_str()) {
            return Err(invalid(
                "id".to_owned(),
                format!("`{}` is listed twice", entry.id),
            ));
        }
    }
    Ok(())
}

#[derive(Debug, Deserialize)]
struct CamerasOnly {
    #[serde(default)]
    cameras: Vec<CameraEntry>,
}

/// The cameras of a registry file (other top-level tables are ignored).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CameraRegistry {
    /// Every camera, in file order.
    pub cameras: Vec<CameraEntry>,
}

/// Reads a registry file, naming it in the error.
pub fn read_file(path: &Path) -> Result<String, RegistryError> {
    std::fs::read_to_string(path).map_err(|source| RegistryError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Parses registry TOML into `T` (the cameras alone, or a binary's whole
/// registry with the cameras in it); `path` only names it in errors.
pub fn parse_toml<T: serde::de::DeserializeOwned>(
    text: &str,
    path: &Path,
) -> Result<T, RegistryError> {
    toml::from_str(text).map_err(|e| RegistryError::Parse {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

impl CameraRegistry {
    /// Reads and validates a registry file.
    pub fn load(path: &Path) -> Result<Self, RegistryError> {
        Self::parse(&read_file(path)?, path)
    }

    /// Parses and validates registry text (`path` only names it in errors).
    pub fn parse(text: &str, path: &Path) -> Result<Self, RegistryError> {
        let file: CamerasOnly = parse_toml(text, path)?;
        validate_cameras(&file.cameras, path)?;
        Ok(CameraRegistry {
            cameras: file.cameras,
        })
    }

    /// The camera `id`.
    pub fn camera(&self, id: &str) -> Option<&CameraEntry> {
        self.cameras.iter().find(|c| c.id == id)
    }

    /// Whether any camera has a zone called `name`.
    pub fn has_zone(&self, name: &str) -> bool {
        self.cameras.iter().any(|c| c.zone(name).is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE: &str = r#"
[gate.motion]
threshold = 25

[[cameras]]
id = "busan-01"
region = "busan"
latitude = 35.1
longitude = 129.1
source = "http://127.0.0.1:1/a.mjpg"
name = "Haeundae Beach"
name_ko = "해운대 해수욕장"
[[cameras.masks]]
name = "tree"
points = [[0.0, 0.0], [0.25, 0.0], [0.25, 0.4], [0.0, 0.4]]
[[cameras.zones]]
name = "school-gate"
label = "the school gate"
label_ko = "학교 정문"
points = [[0.5, 0.5], [1.0, 0.5], [1.0, 1.0], [0.5, 1.0]]
[cameras.sim]
seed = 3
"#;

    fn parse(text: &str) -> Result<CameraRegistry, RegistryError> {
        CameraRegistry::parse(text, Path::new("cameras.toml"))
    }

    #[test]
    fn masks_zones_and_names_are_read_and_the_gate_table_ignored() {
        let registry = parse(ONE).expect("valid");
        let camera = registry.camera("busan-01").expect("camera");
        assert_eq!(camera.name.as_deref(), Some("Haeundae Beach"));
        assert_eq!(camera.mask_polygons().len(), 1);
        let gate = camera.zone("school-gate").expect("zone");
        assert!(gate.contains(Point { x: 0.75, y: 0.9 }));
        assert!(!gate.contains(Point { x: 0.25, y: 0.9 }));
        assert_eq!(
            (gate.english(), gate.korean()),
            ("the school gate".into(), "학교 정문".into())
        );
        assert!(registry.has_zone("school-gate") && !registry.has_zone("crossing"));
        assert!(!camera.raw_snapshots, "privacy by default");
        assert!(camera.sim.is_some());
    }

    #[test]
    fn bad_polygons_name_the_camera_and_the_zone() {
        let bow = ONE.replace(
            "[[0.5, 0.5], [1.0, 0.5], [1.0, 1.0], [0.5, 1.0]]",
            "[[0.5, 0.5], [1.0, 1.0], [1.0, 0.5], [0.5, 1.0]]",
        );
        let err = parse(&bow).expect_err("bow tie").to_string();
        assert!(
            err.contains("cameras[0].zones[0]")
                && err.contains("camera `busan-01`, zone `school-gate`")
                && err.contains("self-intersecting"),
            "{err}"
        );
        let two = ONE.replace(
            "[[0.5, 0.5], [1.0, 0.5], [1.0, 1.0], [0.5, 1.0]]",
            "[[0.5, 0.5], [1.0, 0.5]]",
        );
        let err = parse(&two).expect_err("two points").to_string();
        assert!(
            err.contains("zone `school-gate`") && err.contains("at least 3"),
            "{err}"
        );
        let out = ONE.replace("[0.25, 0.4], [0.0, 0.4]]", "[0.25, 1.4], [0.0, 0.4]]");
        let err = parse(&out).expect_err("outside").to_string();
        assert!(
            err.contains("cameras[0].masks[0]")
                && err.contains("mask `tree`")
                && err.contains("0..=1"),
            "{err}"
        );
        let bad_name = ONE.replace("name = \"school-gate\"", "name = \"School Gate\"");
        let err = parse(&bad_name).expect_err("name").to_string();
        assert!(err.contains("not a zone name"), "{err}");
        let twice = ONE.replace(
            "[cameras.sim]",
            "[[cameras.zones]]\nname = \"school-gate\"\npoints = [[0.0, 0.0], [0.1, 0.0], [0.1, 0.1]]\n[cameras.sim]",
        );
        let err = parse(&twice).expect_err("twice").to_string();
        assert!(
            err.contains("zones[1]") && err.contains("listed twice"),
            "{err}"
        );
    }

    #[test]
    fn unknown_keys_and_bad_positions_are_errors() {
        let typo = ONE.replace("name_ko =", "name_kr =");
        assert!(matches!(parse(&typo), Err(RegistryError::Parse { .. })));
        let far = ONE.replace("latitude = 35.1", "latitude = 135.1");
        let err = parse(&far).expect_err("latitude").to_string();
        assert!(err.contains("cameras[0].latitude"), "{err}");
        let err = parse(&format!(
            "{ONE}{}",
            &ONE[ONE.find("[[cameras]]").expect("camera")..]
        ))
        .expect_err("duplicate")
        .to_string();
        assert!(err.contains("listed twice"), "{err}");
    }
}
