//! The whole pipeline on real frames, as a newcomer runs it: the real
//! `safecity up --once` process (debug binaries) on the local broker, with
//! the camera simulator's scenes, the motion gates, the detector (YOLOv4-tiny
//! on candle) and the functions scaled from zero through the real scaler.
//!
//! Its report (`--report`) gives the raw facts; this test draws its own
//! conclusions from them instead of trusting the run's checks alone:
//! motion -> detector event -> function effect (a pin, an outbox post), and
//! a static scene -> no detector work.

use std::process::Command;

use safecity_cli::city::summary::Report;
use safecity_e2e::{build_binaries, root};

#[test]
fn frames_with_motion_become_pins_and_posts_and_a_still_scene_costs_no_detector_work() {
    let bin = build_binaries();
    let assets = root().join("target/yolo-assets");
    assert!(
        assets.join("yolov4-tiny.weights").is_file(),
        "{} is missing: run scripts/fetch-yolo-assets.sh",
        assets.display()
    );
    let work = std::env::temp_dir().join(format!("safecity-e2e-pipeline-{}", std::process::id()));
    std::fs::create_dir_all(&work).expect("work folder");
    let report_file = work.join("report.json");
    let vhost = format!("safecity-e2e-pipeline-{}", std::process::id());
    let output = Command::new(bin.join("safecity"))
        .current_dir(root())
        .args(["up", "--once", "--bin-dir"])
        .arg(&bin)
        .args(["--vhost", &vhost, "--timeout", "240s", "--report"])
        .arg(&report_file)
        // Not the user's discovery file: a city may be running beside the tests.
        .env("SAFECITY_CITY_FILE", work.join("city.json"))
        .output()
        .expect("safecity up runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "safecity up --once failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Report =
        serde_json::from_slice(&std::fs::read(&report_file).expect("the report")).expect("JSON");

    let failed: Vec<_> = report.checks.iter().filter(|c| !c.ok).collect();
    assert!(failed.is_empty(), "failed checks: {failed:?}");
    assert!(
        report.checks.len() >= 15,
        "every check ran: {:?}",
        report.checks
    );

    // A static scene: nothing forwarded, so the detector analysed exactly
    // the frames of the cameras with motion.
    let still = report.cameras["seoul-jongno-02"];
    assert!(still.read > 50.0, "the still camera was read ({still:?})");
    assert_eq!(still.forwarded, 0.0, "a static scene forwards nothing");
    let forwarded: f64 = report.cameras.values().map(|c| c.forwarded).sum();
    assert!(forwarded > 0.0, "motion was forwarded");
    assert_eq!(
        report.detector_frames, forwarded,
        "the detector analysed every forwarded frame and nothing else"
    );

    // Motion -> detector event -> function effect.
    let accidents = report
        .detector_events
        .get("accident")
        .copied()
        .unwrap_or(0.0);
    assert!(
        accidents >= 2.0,
        "a bus crossing each bus camera: {:?}",
        report.detector_events
    );
    let pins: Vec<_> = report
        .incidents
        .iter()
        .filter(|p| p["event_type"] == "accident")
        .collect();
    assert_eq!(
        pins.len() as f64,
        accidents,
        "one pin per accident incident"
    );
    for camera in ["seoul-gangnam-01", "daejeon-yuseong-02"] {
        assert_eq!(
            pins.iter().filter(|p| p["camera_id"] == camera).count(),
            1,
            "{camera}: one pin"
        );
    }
    assert!(
        report
            .incidents
            .iter()
            .all(|p| p["camera_id"] != "daejeon-dunsan-01"),
        "people are no city event"
    );
    let keys: Vec<&str> = report
        .posts
        .iter()
        .filter_map(|p| p["idempotency_key"].as_str())
        .collect();
    assert_eq!(
        keys.iter().filter(|k| k.starts_with("fire-post-")).count(),
        1,
        "{keys:?}"
    );
    assert_eq!(
        keys.iter().filter(|k| k.starts_with("caption-")).count(),
        1,
        "{keys:?}"
    );
    assert!(
        report.dead_letters.get("map-pin").copied().unwrap_or(0) >= 1,
        "the malformed event was dead-lettered: {:?}",
        report.dead_letters
    );

    // FaaS: every function woke from zero and went back.
    for function in ["detector", "map-pin", "fire-post", "caption"] {
        let (activations, replicas) = report.functions[function];
        assert!(activations >= 1, "{function} was activated");
        assert_eq!(replicas, 0, "{function} is back at zero");
    }
    let _ = std::fs::remove_dir_all(&work);
}
