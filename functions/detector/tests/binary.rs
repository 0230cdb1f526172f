//! The `detector` binary fails fast, naming what is wrong.

use std::process::Command;

use safecity_yolo::assets::checked_dir as assets;

fn detector(vars: &[(&str, String)]) -> (bool, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_detector"));
    command
        .env_clear()
        .env("SAFECITY_HTTP_ADDR", "off")
        // A closed port: the process must stop before it ever connects.
        .env("SAFECITY_AMQP_URL", "amqp://guest:guest@127.0.0.1:1/%2f");
    for (k, v) in vars {
        command.env(k, v);
    }
    let output = command.output().expect("the detector binary runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn a_missing_setting_is_named() {
    let (ok, stderr) = detector(&[]);
    assert!(!ok);
    assert!(
        stderr.contains("SAFECITY_DETECTOR_CFG") && stderr.contains("is required"),
        "{stderr}"
    );
}

#[test]
fn a_class_the_model_does_not_have_stops_the_start() {
    let dir = assets();
    let classes =
        std::env::temp_dir().join(format!("detector-classes-{}.toml", std::process::id()));
    std::fs::write(
        &classes,
        "[classes.knife]\nevent = \"knife\"\nmin_confidence = 0.4\n\
         [classes.fire]\nevent = \"fire\"\nmin_confidence = 0.5\n",
    )
    .expect("write");
    let path = |name: &str| dir.join(name).display().to_string();
    let (ok, stderr) = detector(&[
        ("SAFECITY_DETECTOR_CFG", path("yolov4-tiny.cfg")),
        ("SAFECITY_DETECTOR_WEIGHTS", path("yolov4-tiny.weights")),
        ("SAFECITY_DETECTOR_NAMES", path("coco.names")),
        ("SAFECITY_DETECTOR_CLASSES", classes.display().to_string()),
    ]);
    let _ = std::fs::remove_file(&classes);
    assert!(!ok);
    assert!(
        stderr.contains("[classes.fire]")
            && stderr.contains("no class `fire`")
            && stderr.contains("80 classes"),
        "{stderr}"
    );
}

/// Writes `text` to a temporary file named after `tag`; returns its path.
fn temp_file(tag: &str, text: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("detector-{tag}-{}.toml", std::process::id()));
    std::fs::write(&path, text).expect("write");
    path
}

const KNIFE_AT_THE_GATE: &str =
    "[classes.knife]\nevent = \"knife\"\nmin_confidence = 0.4\nzones = [\"school-gate\"]\n";

/// A camera of `busan` with one zone `name` of `points`.
fn registry_with_zone(name: &str, points: &str) -> String {
    format!(
        "[[cameras]]\nid = \"busan-01\"\nregion = \"busan\"\nlatitude = 35.1\nlongitude = 129.0\n\
         source = \"http://127.0.0.1:1/a.mjpg\"\n\
         [[cameras.zones]]\nname = \"{name}\"\npoints = {points}\n"
    )
}

fn model_vars(
    classes: &std::path::Path,
    registry: &std::path::Path,
) -> Vec<(&'static str, String)> {
    let dir = assets();
    let path = |name: &str| dir.join(name).display().to_string();
    vec![
        ("SAFECITY_DETECTOR_CFG", path("yolov4-tiny.cfg")),
        ("SAFECITY_DETECTOR_WEIGHTS", path("yolov4-tiny.weights")),
        ("SAFECITY_DETECTOR_NAMES", path("coco.names")),
        ("SAFECITY_DETECTOR_CLASSES", classes.display().to_string()),
        ("SAFECITY_CAMERA_REGISTRY", registry.display().to_string()),
    ]
}

#[test]
fn a_bad_zone_polygon_stops_the_start_naming_camera_and_zone() {
    let classes = temp_file("gate-classes", KNIFE_AT_THE_GATE);
    // A bow tie: edges 0 and 2 cross.
    let registry = temp_file(
        "bowtie",
        &registry_with_zone(
            "school-gate",
            "[[0.1, 0.1], [0.9, 0.9], [0.9, 0.1], [0.1, 0.9]]",
        ),
    );
    let (ok, stderr) = detector(&model_vars(&classes, &registry));
    let _ = std::fs::remove_file(&classes);
    let _ = std::fs::remove_file(&registry);
    assert!(!ok);
    assert!(
        stderr.contains("SAFECITY_CAMERA_REGISTRY")
            && stderr.contains("camera `busan-01`, zone `school-gate`")
            && stderr.contains("self-intersecting"),
        "{stderr}"
    );
    // Too few points, and a point out of the frame, are named the same way.
    for (points, why) in [
        ("[[0.1, 0.1], [0.9, 0.9]]", "3"),
        ("[[0.1, 0.1], [1.4, 0.1], [0.5, 0.9]]", "1.4"),
    ] {
        let classes = temp_file("gate-classes-2", KNIFE_AT_THE_GATE);
        let registry = temp_file("bad", &registry_with_zone("school-gate", points));
        let (ok, stderr) = detector(&model_vars(&classes, &registry));
        let _ = std::fs::remove_file(&classes);
        let _ = std::fs::remove_file(&registry);
        assert!(!ok);
        assert!(
            stderr.contains("camera `busan-01`, zone `school-gate`") && stderr.contains(why),
            "{points}: {stderr}"
        );
    }
}

#[test]
fn a_required_zone_no_camera_has_stops_the_start() {
    let classes = temp_file("gate-classes-3", KNIFE_AT_THE_GATE);
    let registry = temp_file(
        "crossing-only",
        &registry_with_zone(
            "crossing",
            "[[0.1, 0.6], [0.9, 0.6], [0.9, 1.0], [0.1, 1.0]]",
        ),
    );
    let (ok, stderr) = detector(&model_vars(&classes, &registry));
    let _ = std::fs::remove_file(&classes);
    let _ = std::fs::remove_file(&registry);
    assert!(!ok);
    assert!(
        stderr.contains("[classes.knife]") && stderr.contains("zone `school-gate`"),
        "{stderr}"
    );
}
