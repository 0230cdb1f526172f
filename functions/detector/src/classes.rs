//! The class map: which model classes become which safety events, and at what confidence.
//!
//! A TOML file with one table per model class under `classes`; the key is the
//! class name exactly as the model's names file spells it (quote names with
//! spaces: `[classes."cell phone"]`):
//!
//! ```toml
//! [classes.knife]
//! event = "knife"          # accident | fire | gun | knife
//! min_confidence = 0.40    # detections below this are ignored (0..=1)
//!
//! [classes.bus]
//! event = "accident"
//! min_confidence = 0.50
//! zones = ["crossing"]     # optional: only where the ground point is in one
//!                          # of these zones of the camera (registry `zones`)
//! ```
//!
//! `zones` restricts a class to named zones of the camera registry
//! (`SAFECITY_CAMERA_REGISTRY`): a detection counts only when its ground
//! point (bottom centre of its box, or of the person carrying it) is inside
//! one of them on its camera; on a camera without any of them the class
//! never counts. A zone that no camera has is an error at start.
//!
//! Classes that are not in the map are ignored. The map is checked against the
//! model's class names at start ([`ClassMap::resolve`]): a class the model does
//! not know is an error naming it, so a typo fails the deployment instead of
//! silently never alerting.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use safecity_cameras::CameraRegistry;
use safecity_events::EventType;
use safecity_events::incident::check_zone_name;
use serde::Deserialize;

/// Why a class map cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ClassMapError {
    /// The file cannot be read.
    #[error("class map {path}: cannot read it: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML of the expected shape (the message names line and column).
    #[error("class map {path}: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// An entry has a value out of range.
    #[error("class map {path}: [classes.{class}]: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The class whose entry is wrong.
        class: String,
        /// What is wrong.
        reason: String,
    },
    /// The map names a class the model does not have.
    #[error(
        "class map {path}: [classes.{class}]: the model has no class `{class}` \
         (its names file lists {count} classes, e.g. {examples})"
    )]
    UnknownClass {
        /// The file.
        path: PathBuf,
        /// The unknown class name.
        class: String,
        /// How many classes the model has.
        count: usize,
        /// A few of the model's class names.
        examples: String,
    },
    /// A class requires a zone that no camera of the registry has.
    #[error(
        "class map {path}: [classes.{class}]: zone `{zone}` is not a zone of any camera in the camera registry{registry}"
    )]
    UnknownZone {
        /// The file.
        path: PathBuf,
        /// The class.
        class: String,
        /// The zone.
        zone: String,
        /// ` (<path>)`, or a hint when no registry is configured.
        registry: String,
    },
    /// The map maps no class at all: the detector would never emit anything.
    #[error("class map {path}: no [classes.<name>] entry; map at least one model class")]
    Empty {
        /// The file.
        path: PathBuf,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileFormat {
    classes: BTreeMap<String, Entry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    event: EventType,
    min_confidence: f32,
    #[serde(default)]
    zones: Vec<String>,
}

/// One mapped class.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassRule {
    /// The event a detection of this class raises.
    pub event: EventType,
    /// Detections below this confidence are ignored.
    pub min_confidence: f32,
    /// Detections count only inside one of these zones (none: anywhere).
    pub zones: Vec<String>,
}

impl ClassRule {
    /// Whether a detection touching `touched` zones satisfies the rule.
    pub fn allows(&self, touched: &[String]) -> bool {
        self.zones.is_empty() || self.zones.iter().any(|z| touched.contains(z))
    }
}

/// The class map as read from its file: class names to rules, not yet checked
/// against a model.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassMap {
    path: PathBuf,
    rules: BTreeMap<String, ClassRule>,
}

impl ClassMap {
    /// Reads and parses the class map at `path`.
    pub fn load(path: &Path) -> Result<Self, ClassMapError> {
        let text = std::fs::read_to_string(path).map_err(|source| ClassMapError::Read {
            path: path.to_owned(),
            source,
        })?;
        ClassMap::parse(&text, path)
    }

    /// Parses class-map TOML; `path` only names the file in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ClassMapError> {
        let file: FileFormat = toml::from_str(text).map_err(|e| ClassMapError::Syntax {
            path: path.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        if file.classes.is_empty() {
            return Err(ClassMapError::Empty {
                path: path.to_owned(),
            });
        }
        let mut rules = BTreeMap::new();
        for (class, entry) in file.classes {
            if !(0.0..=1.0).contains(&entry.min_confidence) {
                return Err(ClassMapError::Invalid {
                    path: path.to_owned(),
                    class,
                    reason: format!("min_confidence = {} is outside 0..=1", entry.min_confidence),
                });
            }
            for zone in &entry.zones {
                check_zone_name(zone).map_err(|reason| ClassMapError::Invalid {
                    path: path.to_owned(),
                    class: class.clone(),
                    reason: format!("zones: {reason}"),
                })?;
            }
            rules.insert(
                class,
                ClassRule {
                    event: entry.event,
                    min_confidence: entry.min_confidence,
                    zones: entry.zones,
                },
            );
        }
        Ok(ClassMap {
            path: path.to_owned(),
            rules,
        })
    }

    /// The mapped classes by name.
    pub fn rules(&self) -> &BTreeMap<String, ClassRule> {
        &self.rules
    }

    /// Checks every mapped class against the model's class names and indexes
    /// the rules by class id.
    pub fn resolve(&self, model_classes: &[String]) -> Result<ResolvedClassMap, ClassMapError> {
        let mut by_id = vec![None; model_classes.len()];
        for (class, rule) in &self.rules {
            let Some(id) = model_classes.iter().position(|name| name == class) else {
                let examples = model_classes
                    .iter()
                    .take(5)
                    .map(|n| format!("`{n}`"))
                    .collect::<Vec<_>>()
                    .join(", ");
                return Err(ClassMapError::UnknownClass {
                    path: self.path.clone(),
                    class: class.clone(),
                    count: model_classes.len(),
                    examples,
                });
            };
            by_id[id] = Some(rule.clone());
        }
        Ok(ResolvedClassMap {
            path: self.path.clone(),
            by_id,
            names: model_classes.to_vec(),
        })
    }
}

/// A class map checked against a model: rules indexed by the model's class ids.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedClassMap {
    path: PathBuf,
    by_id: Vec<Option<ClassRule>>,
    names: Vec<String>,
}

impl ResolvedClassMap {
    /// The event a detection of class `class_id` with `confidence` raises, if any.
    pub fn event_for(&self, class_id: usize, confidence: f32) -> Option<EventType> {
        self.rule_for(class_id, confidence).map(|rule| rule.event)
    }

    /// The rule a detection of class `class_id` with `confidence` falls under, if any.
    pub fn rule_for(&self, class_id: usize, confidence: f32) -> Option<&ClassRule> {
        self.by_id
            .get(class_id)
            .and_then(Option::as_ref)
            .filter(|rule| confidence >= rule.min_confidence)
    }

    /// Checks that every required zone is a zone of some camera of
    /// `registry` (`registry_path` names it in the error; `None`: no
    /// registry is configured).
    pub fn check_zones(
        &self,
        registry: &CameraRegistry,
        registry_path: Option<&Path>,
    ) -> Result<(), ClassMapError> {
        for (id, rule) in self.by_id.iter().enumerate() {
            let Some(rule) = rule else { continue };
            if let Some(zone) = rule.zones.iter().find(|z| !registry.has_zone(z)) {
                return Err(ClassMapError::UnknownZone {
                    path: self.path.clone(),
                    class: self.names[id].clone(),
                    zone: zone.clone(),
                    registry: registry_path.map_or_else(
                        || " (none is configured: set SAFECITY_CAMERA_REGISTRY)".to_owned(),
                        |p| format!(" ({})", p.display()),
                    ),
                });
            }
        }
        Ok(())
    }

    /// One line per (class, camera) where the class requires zones the
    /// camera lacks entirely: the class never counts on that camera.
    pub fn cameras_without_required_zones(&self, registry: &CameraRegistry) -> Vec<String> {
        let mut lines = Vec::new();
        for (id, rule) in self.by_id.iter().enumerate() {
            let Some(rule) = rule.as_ref().filter(|r| !r.zones.is_empty()) else {
                continue;
            };
            for camera in &registry.cameras {
                if !rule.zones.iter().any(|z| camera.zone(z).is_some()) {
                    lines.push(format!(
                        "class `{}` requires zones {:?}; camera `{}` has none of them, so it never raises {} there",
                        self.names[id], rule.zones, camera.id, rule.event
                    ));
                }
            }
        }
        lines
    }

    /// The lowest `min_confidence` of the map (to compare with the model's threshold).
    pub fn lowest_min_confidence(&self) -> Option<f32> {
        self.by_id
            .iter()
            .flatten()
            .map(|rule| rule.min_confidence)
            .reduce(f32::min)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        ["person", "bicycle", "car", "bus", "truck", "knife"]
            .into_iter()
            .map(str::to_owned)
            .collect()
    }

    fn parse(text: &str) -> Result<ClassMap, ClassMapError> {
        ClassMap::parse(text, Path::new("classes.toml"))
    }

    #[test]
    fn mapped_classes_raise_their_event_above_their_confidence() {
        let map = parse(
            "[classes.knife]\nevent = \"knife\"\nmin_confidence = 0.4\n\
             [classes.bus]\nevent = \"accident\"\nmin_confidence = 0.6\n",
        )
        .expect("valid");
        let resolved = map.resolve(&names()).expect("known classes");
        assert_eq!(resolved.event_for(5, 0.4), Some(EventType::Knife));
        assert_eq!(resolved.event_for(5, 0.39), None);
        assert_eq!(resolved.event_for(3, 0.7), Some(EventType::Accident));
        assert_eq!(resolved.event_for(0, 0.99), None, "person is not mapped");
        assert_eq!(resolved.event_for(99, 0.99), None, "out of range id");
        assert_eq!(resolved.lowest_min_confidence(), Some(0.4));
    }

    #[test]
    fn an_unknown_class_is_named_with_the_models_classes() {
        let map = parse("[classes.fire]\nevent = \"fire\"\nmin_confidence = 0.5\n").expect("ok");
        let err = map.resolve(&names()).expect_err("coco has no fire");
        let text = err.to_string();
        assert!(text.contains("[classes.fire]"), "{text}");
        assert!(text.contains("no class `fire`"), "{text}");
        assert!(text.contains("6 classes"), "{text}");
        assert!(text.contains("`person`"), "{text}");
    }

    #[test]
    fn bad_files_are_named_with_line_and_key() {
        let err = parse("[classes.knife]\nevent = \"stabbing\"\nmin_confidence = 0.5\n")
            .expect_err("unknown event");
        let text = err.to_string();
        assert!(
            text.contains("classes.toml") && text.contains("stabbing") && text.contains("line 2"),
            "{text}"
        );

        let err =
            parse("[classes.knife]\nevent = \"knife\"\nmin_confidence = 1.5\n").expect_err("range");
        assert!(
            err.to_string()
                .contains("[classes.knife]: min_confidence = 1.5 is outside 0..=1"),
            "{err}"
        );

        let err = parse("[classes.knife]\nevent = \"knife\"\n").expect_err("missing");
        assert!(err.to_string().contains("min_confidence"), "{err}");

        let err = parse("[classes.knife]\nevent = \"knife\"\nmin_confidence = 0.5\ncolour = 1\n")
            .expect_err("unknown key");
        assert!(err.to_string().contains("colour"), "{err}");

        let err = parse("[classes]\n").expect_err("empty");
        assert!(matches!(err, ClassMapError::Empty { .. }), "{err}");
    }

    #[test]
    fn required_zones_must_exist_on_some_camera() {
        let map = parse(
            "[classes.knife]\nevent = \"knife\"\nmin_confidence = 0.4\nzones = [\"school-gate\"]\n",
        )
        .expect("valid");
        let rule = map.rules()["knife"].clone();
        assert!(rule.allows(&["school-gate".to_owned()]));
        assert!(!rule.allows(&["crossing".to_owned()]) && !rule.allows(&[]));
        let resolved = map.resolve(&names()).expect("known");
        let registry = CameraRegistry::parse(
            r#"
[[cameras]]
id = "a"
region = "seoul"
latitude = 37.0
longitude = 127.0
source = "http://127.0.0.1:1/a"
[[cameras.zones]]
name = "school-gate"
points = [[0.5, 0.5], [1.0, 0.5], [1.0, 1.0]]
[[cameras]]
id = "b"
region = "seoul"
latitude = 37.0
longitude = 127.0
source = "http://127.0.0.1:1/b"
"#,
            Path::new("cameras.toml"),
        )
        .expect("registry");
        resolved
            .check_zones(&registry, Some(Path::new("cameras.toml")))
            .expect("the zone exists");
        let lines = resolved.cameras_without_required_zones(&registry);
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0].contains("camera `b`"), "{lines:?}");
        let err = resolved
            .check_zones(&CameraRegistry::default(), None)
            .expect_err("no registry");
        let text = err.to_string();
        assert!(
            text.contains("[classes.knife]")
                && text.contains("zone `school-gate`")
                && text.contains("SAFECITY_CAMERA_REGISTRY"),
            "{text}"
        );
        let err = parse(
            "[classes.knife]\nevent = \"knife\"\nmin_confidence = 0.4\nzones = [\"School Gate\"]\n",
        )
        .expect_err("bad zone name");
        assert!(err.to_string().contains("not a zone name"), "{err}");
    }

    #[test]
    fn the_coco_example_is_valid_for_coco() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
        let map = ClassMap::load(&dir.join("classes.coco.toml")).expect("example parses");
        let coco: Vec<String> =
            std::fs::read_to_string(dir.join("../../target/yolo-assets/coco.names"))
                .map(|text| text.lines().map(str::to_owned).collect())
                .unwrap_or_else(|_| {
                    panic!("coco.names is missing: run scripts/fetch-yolo-assets.sh")
                });
        let resolved = map
            .resolve(&coco)
            .expect("every mapped class is a COCO class");
        let knife = coco.iter().position(|n| n == "knife").expect("knife");
        assert_eq!(resolved.event_for(knife, 0.99), Some(EventType::Knife));
    }
}
