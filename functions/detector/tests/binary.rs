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
