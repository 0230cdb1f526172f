//! The detector facade on the official yolov4-tiny: batching, letterbox, loading errors.

use std::sync::OnceLock;

use candle_core::Device;
use image::RgbImage;
use safecity_yolo::LoadError;
use safecity_yolo::detector::{Detector, DetectorOptions, ObjectDetection, parse_names};
use safecity_yolo::preprocess::{ImageLimits, Resize, decode};

use safecity_yolo::assets::checked_dir as assets;

fn image(name: &str) -> RgbImage {
    decode(
        &std::fs::read(assets().join(name)).unwrap(),
        &ImageLimits::default(),
    )
    .unwrap()
}

fn detector(options: DetectorOptions) -> Detector {
    let dir = assets();
    Detector::from_files(
        &dir.join("yolov4-tiny.cfg"),
        &dir.join("yolov4-tiny.weights"),
        &dir.join("coco.names"),
        Device::Cpu,
        options,
    )
    .unwrap()
}

fn stretch() -> &'static Detector {
    static DETECTOR: OnceLock<Detector> = OnceLock::new();
    DETECTOR.get_or_init(|| detector(DetectorOptions::default()))
}

fn same(a: &[ObjectDetection], b: &[ObjectDetection]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            x.class_id == y.class_id
                && (x.confidence - y.confidence).abs() < 1e-4
                && (x.bbox.x - y.bbox.x).abs() < 0.05
                && (x.bbox.y - y.bbox.y).abs() < 0.05
                && (x.bbox.width - y.bbox.width).abs() < 0.05
                && (x.bbox.height - y.bbox.height).abs() < 0.05
        })
}

#[test]
fn one_batch_gives_the_same_detections_as_single_images() {
    let detector = stretch();
    let bus = image("bus.jpg");
    let zidane = image("zidane.jpg");
    let batch = detector.detect(&[bus.clone(), zidane.clone()]).unwrap();
    assert_eq!(batch.len(), 2);
    let alone_bus = detector.detect(&[bus]).unwrap().remove(0);
    let alone_zidane = detector.detect(&[zidane]).unwrap().remove(0);
    assert!(same(&batch[0], &alone_bus), "{:?}\n{alone_bus:?}", batch[0]);
    assert!(
        same(&batch[1], &alone_zidane),
        "{:?}\n{alone_zidane:?}",
        batch[1]
    );
    // zidane.jpg (1280x720): yolov4-tiny at 416 finds the man on the right and
    // his tie (OpenCV DNN on the same weights agrees).
    for class in ["person", "tie"] {
        assert!(
            batch[1].iter().any(|d| d.class_name == class),
            "no {class} in {:?}",
            batch[1]
        );
    }
    for d in &batch[1] {
        assert!(d.bbox.x + d.bbox.width <= 1280.0 && d.bbox.y + d.bbox.height <= 720.0);
    }
    assert!(detector.detect(&[]).unwrap().is_empty());
}

#[test]
fn letterbox_maps_boxes_back_to_the_source_image() {
    let detector = detector(DetectorOptions {
        resize: Resize::Letterbox,
        ..DetectorOptions::default()
    });
    let bus = image("bus.jpg");
    let letterboxed = detector
        .detect(std::slice::from_ref(&bus))
        .unwrap()
        .remove(0);
    let stretched = stretch().detect(&[bus]).unwrap().remove(0);
    // The most confident person is found either way, at about the same place.
    let best = |v: &[ObjectDetection]| {
        v.iter()
            .find(|d| d.class_name == "person")
            .cloned()
            .unwrap()
    };
    let (l, s) = (best(&letterboxed), best(&stretched));
    for (a, b) in [
        (l.bbox.x, s.bbox.x),
        (l.bbox.y, s.bbox.y),
        (l.bbox.width, s.bbox.width),
        (l.bbox.height, s.bbox.height),
    ] {
        assert!((a - b).abs() < 40.0, "letterbox {l:?} vs stretch {s:?}");
    }
}

#[test]
fn the_names_must_match_the_classes() {
    let dir = assets();
    let cfg = std::fs::read_to_string(dir.join("yolov4-tiny.cfg")).unwrap();
    let weights = std::fs::read(dir.join("yolov4-tiny.weights")).unwrap();
    let names = parse_names("fire\ngun\n\nknife\naccident\n");
    assert_eq!(names, vec!["fire", "gun", "knife", "accident"]);
    let err = Detector::load(
        &cfg,
        &weights,
        names,
        Device::Cpu,
        DetectorOptions::default(),
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            LoadError::ClassCount {
                classes: 80,
                names: 4
            }
        ),
        "{err:?}"
    );
}

#[test]
fn missing_files_are_named() {
    let dir = assets();
    let missing = dir.join("no-such.weights");
    let err = Detector::from_files(
        &dir.join("yolov4-tiny.cfg"),
        &missing,
        &dir.join("coco.names"),
        Device::Cpu,
        DetectorOptions::default(),
    )
    .unwrap_err();
    assert!(
        matches!(&err, LoadError::Io { path, .. } if *path == missing),
        "{err:?}"
    );
    assert!(err.to_string().contains("no-such.weights"), "{err}");
}

#[test]
fn out_of_range_thresholds_are_refused_at_load() {
    let dir = assets();
    let cfg = std::fs::read_to_string(dir.join("yolov4-tiny.cfg")).unwrap();
    let weights = std::fs::read(dir.join("yolov4-tiny.weights")).unwrap();
    let names = stretch().class_names().to_vec();
    for (options, field) in [
        (
            DetectorOptions {
                confidence_threshold: 1.5,
                ..DetectorOptions::default()
            },
            "confidence_threshold",
        ),
        (
            DetectorOptions {
                nms_threshold: f32::NAN,
                ..DetectorOptions::default()
            },
            "nms_threshold",
        ),
    ] {
        let err = Detector::load(&cfg, &weights, names.clone(), Device::Cpu, options).unwrap_err();
        assert!(
            matches!(&err, LoadError::InvalidOption { name, .. } if *name == field),
            "{err:?}"
        );
    }
}
