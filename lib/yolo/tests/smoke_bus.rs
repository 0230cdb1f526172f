//! Loads the official COCO yolov4-tiny and detects on bus.jpg: a quick check
//! that parser, loader, network, decoding and NMS agree with Darknet's
//! published result (`darknet detector test`, thresh 0.25, DIoU NMS 0.45).
//! The strict numeric comparison against OpenCV lives in the oracle tests.

use candle_core::Device;
use safecity_yolo::preprocess::{self, ImageLimits};
use safecity_yolo::{Detector, DetectorOptions};

use safecity_yolo::assets::checked_dir as assets;

#[test]
fn yolov4_tiny_finds_the_people_and_the_bus_on_bus_jpg() {
    let dir = assets();
    let detector = Detector::from_files(
        &dir.join("yolov4-tiny.cfg"),
        &dir.join("yolov4-tiny.weights"),
        &dir.join("coco.names"),
        Device::Cpu,
        DetectorOptions::default(),
    )
    .expect("load yolov4-tiny");
    assert_eq!(detector.model().input_size(), (416, 416));
    assert_eq!(detector.class_names().len(), 80);

    let bytes = std::fs::read(dir.join("bus.jpg")).expect("read bus.jpg");
    let image = preprocess::decode(&bytes, &ImageLimits::default()).expect("decode bus.jpg");
    assert_eq!(image.dimensions(), (810, 1080));

    let results = detector
        .detect(std::slice::from_ref(&image))
        .expect("detect");
    assert_eq!(results.len(), 1);
    let found: Vec<(String, f32)> = results[0]
        .iter()
        .map(|d| (d.class_name.clone(), d.confidence))
        .collect();
    println!("{found:?}");

    // Darknet's reference detections for this image (see shared notes).
    let expected = [
        ("person", 0.993),
        ("person", 0.934),
        ("person", 0.783),
        ("bus", 0.663),
        ("truck", 0.563),
        ("skateboard", 0.433),
    ];
    assert_eq!(found.len(), expected.len(), "detections: {found:?}");
    for (name, confidence) in expected {
        assert!(
            found
                .iter()
                .any(|(n, c)| n == name && (c - confidence).abs() <= 0.02),
            "no {name} near {confidence} in {found:?}"
        );
    }
    for d in &results[0] {
        let b = d.bbox;
        assert!(
            b.x >= 0.0 && b.y >= 0.0 && b.width > 0.0 && b.height > 0.0,
            "{d:?}"
        );
        assert!(b.x + b.width <= 810.0 && b.y + b.height <= 1080.0, "{d:?}");
    }
    // The bus spans most of the image width.
    let bus = results[0]
        .iter()
        .find(|d| d.class_name == "bus")
        .expect("bus");
    assert!(bus.bbox.width > 500.0, "{bus:?}");
}
