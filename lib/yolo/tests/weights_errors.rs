//! The weights reader consumes the file exactly and says by how many floats it is off.

use candle_core::Device;
use safecity_yolo::LoadError;
use safecity_yolo::darknet::cfg::NetConfig;
use safecity_yolo::darknet::weights::WeightsError;
use safecity_yolo::model::Darknet;

/// Floats in the official yolov4-tiny.weights after its 20-byte header.
const TINY_FLOATS: usize = 6_062_814;

use safecity_yolo::assets::checked_dir as assets;

fn tiny() -> (String, Vec<u8>) {
    let dir = assets();
    (
        std::fs::read_to_string(dir.join("yolov4-tiny.cfg")).unwrap(),
        std::fs::read(dir.join("yolov4-tiny.weights")).unwrap(),
    )
}

fn load(cfg: &str, weights: &[u8]) -> Result<Darknet, LoadError> {
    Darknet::load(&NetConfig::parse(cfg)?, weights, &Device::Cpu)
}

#[test]
fn the_official_tiny_weights_fit_exactly() {
    let (cfg, weights) = tiny();
    assert_eq!(weights.len(), 20 + 4 * TINY_FLOATS);
    let model = load(&cfg, &weights).unwrap();
    assert_eq!(model.num_classes(), 80);
    assert_eq!(model.head_layers(), &[30, 37]);
}

#[test]
fn truncated_weights_report_expected_and_found_floats() {
    let (cfg, weights) = tiny();
    let cut = &weights[..weights.len() - 4 * 1000];
    match load(&cfg, cut) {
        Err(LoadError::Weights(WeightsError::Truncated {
            expected,
            found,
            layer,
            line,
        })) => {
            assert_eq!((expected, found), (TINY_FLOATS, TINY_FLOATS - 1000));
            // The last [convolutional] (layer 36, the 26x26 head) is the incomplete one.
            assert_eq!(layer, 36);
            assert!(line > 0);
            let text = WeightsError::Truncated {
                expected,
                found,
                layer,
                line,
            }
            .to_string();
            assert!(
                text.contains("expected 6062814 floats, found 6061814"),
                "{text}"
            );
        }
        other => panic!("expected Truncated, got {other:?}"),
    }
}

#[test]
fn oversized_weights_report_the_leftover() {
    let (cfg, mut weights) = tiny();
    weights.extend_from_slice(&[0u8; 12]);
    let err = load(&cfg, &weights).unwrap_err();
    assert!(
        matches!(
            err,
            LoadError::Weights(WeightsError::TooLong {
                expected: TINY_FLOATS,
                found
            }) if found == TINY_FLOATS + 3
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("3 left over"), "{err}");
}

#[test]
fn weights_of_a_different_cfg_are_rejected() {
    let (cfg, weights) = tiny();
    // Same architecture with 64 instead of 32 filters in layer 0: the file is too short.
    let wider = cfg.replacen("filters=32", "filters=64", 1);
    let err = load(&wider, &weights).unwrap_err();
    assert!(
        matches!(
            err,
            LoadError::Weights(WeightsError::Truncated {
                found: TINY_FLOATS,
                ..
            })
        ),
        "{err:?}"
    );
    // A custom 4-class head (filters=27 before each [yolo]): the file is too long.
    let custom = cfg
        .replace("filters=255", "filters=27")
        .replace("classes=80", "classes=4");
    let err = load(&custom, &weights).unwrap_err();
    match err {
        LoadError::Weights(WeightsError::TooLong { expected, found }) => {
            assert_eq!(found, TINY_FLOATS);
            // Each head loses (255 - 27) * (1 + C*k*k) floats: C = 512 (13x13) and 256 (26x26).
            assert_eq!(expected, TINY_FLOATS - 228 * (1 + 512) - 228 * (1 + 256));
        }
        other => panic!("expected TooLong, got {other:?}"),
    }
}

#[test]
fn a_yolo_head_after_the_wrong_filter_count_is_a_shape_error() {
    let (cfg, weights) = tiny();
    // classes=4 without changing filters=255: the head expects 3 * (5 + 4) = 27 channels.
    let bad = cfg.replace("classes=80", "classes=4");
    let err = load(&bad, &weights).unwrap_err();
    match &err {
        LoadError::Shape {
            layer,
            section,
            line,
            ..
        } => {
            assert_eq!((*layer, *section), (30, "yolo"));
            assert!(*line > 0);
        }
        other => panic!("expected Shape, got {other:?}"),
    }
    assert!(
        err.to_string().contains("expects 27 input channels"),
        "{err}"
    );
}

#[test]
fn headers_shorter_than_their_version_needs_are_rejected() {
    let cfg = "[net]\nwidth=8\nheight=8\n[convolutional]\nfilters=6\n[yolo]\nmask=0\nanchors=1,1\nclasses=1\n";
    // Version 0.2 needs a 64-bit `seen`: 20 bytes.
    let mut bytes = Vec::new();
    for v in [0i32, 2, 5, 0] {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    let err = load(cfg, &bytes).unwrap_err();
    assert!(
        matches!(
            err,
            LoadError::Weights(WeightsError::HeaderTooShort {
                expected: 20,
                found: 16
            })
        ),
        "{err:?}"
    );
    // Version 0.1 has a 32-bit `seen`: the same 16 bytes are a complete header,
    // followed by no floats for a conv that needs 6 biases + 6*3 weights.
    bytes[4..8].copy_from_slice(&1i32.to_le_bytes());
    let err = load(cfg, &bytes).unwrap_err();
    assert!(
        matches!(
            err,
            LoadError::Weights(WeightsError::Truncated {
                expected: 24,
                found: 0,
                layer: 0,
                line: 4
            })
        ),
        "{err:?}"
    );
    // A body that is not a whole number of floats.
    bytes.extend_from_slice(&[0u8; 6]);
    let err = load(cfg, &bytes).unwrap_err();
    assert!(
        matches!(
            err,
            LoadError::Weights(WeightsError::Misaligned {
                bytes: 6,
                header: 16
            })
        ),
        "{err:?}"
    );
}

#[test]
fn full_yolov4_needs_the_published_float_count() {
    let cfg = std::fs::read_to_string(assets().join("yolov4.cfg")).unwrap();
    // A header and nothing else: the shapes of all 162 layers fit, and the
    // reader asks for the float count of the official yolov4.weights
    // (257,717,640 bytes = 20 + 4 * 64,429,405).
    let mut header = Vec::new();
    for v in [0i32, 2, 5] {
        header.extend_from_slice(&v.to_le_bytes());
    }
    header.extend_from_slice(&0u64.to_le_bytes());
    let err = load(&cfg, &header).unwrap_err();
    assert!(
        matches!(
            err,
            LoadError::Weights(WeightsError::Truncated {
                expected: 64_429_405,
                found: 0,
                layer: 0,
                ..
            })
        ),
        "{err:?}"
    );
}
