//! safecity-yolo against OpenCV DNN (opencv-python-headless 4.14 in `.venv`)
//! as the oracle, on the same input tensor.
//!
//! How the comparison is made:
//! - Our preprocessing (`preprocess::decode` + `to_planar`, Darknet stretch)
//!   produces the input; the exact f32 tensor is written to a file and the
//!   oracle script (`tests/oracle/*.py`) feeds it to OpenCV with
//!   `net.setInput`, so only the network and the post-processing are compared.
//! - OpenCV's Darknet importer uses BN epsilon 1e-6 (Darknet: 1e-5): our model
//!   is loaded with `OPENCV_BN_EPSILON` for every comparison.
//! - OpenCV runs on the CPU with Winograd off (exact f32 convolutions) and, for
//!   raw outputs, fusion off. Head logits are the inputs of the `[yolo]`
//!   layers, named `conv_{L-1}` in OpenCV for a `[yolo]` at layer L
//!   (yolov4-tiny: conv_29, conv_36; yolov4: conv_138, conv_149, conv_160).
//! - Agreement of a head: `rel = max|ours - opencv| / max|opencv|` over the
//!   whole head tensor (all images of the batch); `abs = max|ours - opencv|`
//!   is reported too.

mod support;

use std::time::Instant;

use candle_core::{Device, Tensor};
use safecity_yolo::darknet::cfg::NetConfig;
use safecity_yolo::darknet::weights::OPENCV_BN_EPSILON;
use safecity_yolo::detector::{Detector, DetectorOptions, ObjectDetection};
use safecity_yolo::model::{Darknet, LoadOptions};
use safecity_yolo::preprocess::{self, ImageLimits, Resize};
use support::python::ScratchDir;
use support::{assets, cfg_text, python, random_weights, tensor_file};

/// The two sample photos, in batch order, with their file names.
const PHOTOS: [&str; 2] = ["bus.jpg", "zidane.jpg"];

/// Max relative error allowed on real yolov4-tiny weights (f32 vs f32).
const TINY_HEAD_REL: f32 = 1e-4;
/// Max relative error allowed on full YOLOv4 (162 layers, random weights).
const V4_HEAD_REL: f32 = 3e-3;

/// Loads a model whose BN folding matches OpenCV's importer.
fn load_like_opencv(cfg: &str, weights: &[u8]) -> Darknet {
    let cfg = NetConfig::parse(cfg).expect("cfg parses");
    let options = LoadOptions {
        bn_epsilon: OPENCV_BN_EPSILON,
        ..LoadOptions::default()
    };
    Darknet::load_with(&cfg, weights, &Device::Cpu, &options).expect("model loads")
}

/// Decodes the sample photos.
fn photos() -> Vec<image::RgbImage> {
    PHOTOS
        .iter()
        .map(|name| {
            preprocess::decode(&assets::read(name), &ImageLimits::default()).expect("photo decodes")
        })
        .collect()
}

/// Our preprocessed input for IMAGES at the model's size: (N, 3, H, W) data.
fn input_of(model: &Darknet, images: &[image::RgbImage]) -> (Vec<usize>, Vec<f32>) {
    let (w, h) = model.input_size();
    let planes: Vec<Vec<f32>> = images
        .iter()
        .map(|i| preprocess::to_planar(i, w, h, Resize::Stretch).0)
        .collect();
    (vec![images.len(), 3, h, w], planes.concat())
}

/// OpenCV's layer name for the logits of each `[yolo]` head.
fn head_names(model: &Darknet) -> Vec<String> {
    model
        .head_layers()
        .iter()
        .map(|l| format!("conv_{}", l - 1))
        .collect()
}

/// `(max abs, max abs / max|oracle|)` between two equally long tensors.
fn errors(ours: &[f32], oracle: &[f32]) -> (f32, f32) {
    assert_eq!(ours.len(), oracle.len());
    let max_abs = ours
        .iter()
        .zip(oracle)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    let scale = oracle.iter().map(|b| b.abs()).fold(0.0f32, f32::max);
    (max_abs, max_abs / scale)
}

/// Root mean square of a tensor's values.
fn rms(values: &[f32]) -> f32 {
    (values.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>() / values.len() as f64).sqrt() as f32
}

/// Runs our heads and OpenCV's on the same input and checks every head's
/// relative error against `max_rel`. Returns the oracle heads.
fn compare_heads(
    label: &str,
    model: &Darknet,
    cfg: &std::path::Path,
    weights: &std::path::Path,
    shape: &[usize],
    input: &[f32],
    max_rel: f32,
) -> Vec<Vec<f32>> {
    let scratch = ScratchDir::new(label);
    let input_path = scratch.join("input.f32");
    tensor_file::write(&input_path, shape, input);
    let names = head_names(model);

    let started = Instant::now();
    let tensor = Tensor::from_slice(input, shape, model.device()).unwrap();
    let ours = model.forward_heads(&tensor).expect("our forward");
    let ours_s = started.elapsed().as_secs_f32();

    let started = Instant::now();
    let mut args = vec![cfg.as_os_str().to_owned(), weights.as_os_str().to_owned()];
    args.push(input_path.into_os_string());
    args.push(scratch.path().as_os_str().to_owned());
    args.extend(names.iter().map(Into::into));
    python::run(&python::script("tests/oracle", "heads.py"), args);
    let opencv_s = started.elapsed().as_secs_f32();
    eprintln!("{label}: our forward {ours_s:.2} s, OpenCV (load + forward) {opencv_s:.2} s");

    let mut oracle_heads = Vec::new();
    for (name, head) in names.iter().zip(&ours) {
        let (oracle_shape, oracle) = tensor_file::read(&scratch.join(&format!("{name}.f32")));
        assert_eq!(
            head.dims(),
            oracle_shape.as_slice(),
            "{label} {name}: shape"
        );
        let ours = head.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let (abs, rel) = errors(&ours, &oracle);
        eprintln!(
            "{label} {name} {oracle_shape:?}: max abs {abs:.3e}, rel {rel:.3e} (limit {max_rel:.0e}); \
             oracle max {:.3}, rms {:.3}",
            abs / rel,
            rms(&oracle)
        );
        assert!(
            rel <= max_rel,
            "{label} {name}: relative error {rel:.3e} > {max_rel:.0e} (max abs {abs:.3e})"
        );
        oracle_heads.push(oracle);
    }
    oracle_heads
}

#[test]
fn yolov4_tiny_heads_match_opencv_on_the_sample_photos() {
    let model = load_like_opencv(
        &assets::text("yolov4-tiny.cfg"),
        &assets::read("yolov4-tiny.weights"),
    );
    assert_eq!(head_names(&model), ["conv_29", "conv_36"]);
    let (shape, input) = input_of(&model, &photos());
    compare_heads(
        "tiny-heads",
        &model,
        &assets::path("yolov4-tiny.cfg"),
        &assets::path("yolov4-tiny.weights"),
        &shape,
        &input,
        TINY_HEAD_REL,
    );
}

/// One oracle detection, as `tests/oracle/detections.py` writes it.
#[derive(Debug, Clone, serde::Deserialize)]
struct OracleDetection {
    class_id: usize,
    confidence: f32,
    x: f32,
    y: f32,
    width: f32,
    height: f32,
}

/// Left, top, right, bottom of a box.
fn edges(x: f32, y: f32, w: f32, h: f32) -> [f32; 4] {
    [x, y, x + w, y + h]
}

/// The final detections equal the oracle's: the same number, the same
/// classes, confidences within 0.01 and every box edge within 1% of the
/// image's size along that axis.
fn assert_same_detections(
    photo: &str,
    size: (u32, u32),
    ours: &[ObjectDetection],
    oracle: &[OracleDetection],
) {
    let tolerance = [
        size.0 as f32 * 0.01,
        size.1 as f32 * 0.01,
        size.0 as f32 * 0.01,
        size.1 as f32 * 0.01,
    ];
    assert_eq!(
        ours.len(),
        oracle.len(),
        "{photo}: {} detections, OpenCV oracle {}:\nours {ours:#?}\noracle {oracle:#?}",
        ours.len(),
        oracle.len()
    );
    let mut unmatched: Vec<&ObjectDetection> = ours.iter().collect();
    for want in oracle {
        let want_edges = edges(want.x, want.y, want.width, want.height);
        let close = |d: &&ObjectDetection| {
            let got = edges(d.bbox.x, d.bbox.y, d.bbox.width, d.bbox.height);
            d.class_id == want.class_id
                && (d.confidence - want.confidence).abs() <= 0.01
                && got
                    .iter()
                    .zip(&want_edges)
                    .zip(&tolerance)
                    .all(|((g, w), t)| (g - w).abs() <= *t)
        };
        let Some(at) = unmatched.iter().position(close) else {
            panic!("{photo}: no detection of ours matches the oracle's {want:?}; ours: {ours:#?}");
        };
        unmatched.swap_remove(at);
    }
}

#[test]
fn yolov4_tiny_detections_match_opencv_on_the_sample_photos() {
    // Our side: the Detector facade (batch of both photos, Darknet defaults:
    // stretch, thresh 0.25, DIoU greedy NMS 0.45 per class in source-relative
    // coordinates). Oracle: OpenCV's own [yolo] decode of the same input
    // tensor, then the same Darknet rule (thresh, per-class greedy DIoU NMS,
    // beta 0.6) written independently in detections.py. Both sides follow
    // `darknet detector test`, so any difference is a bug on one side, and
    // the decode (sigmoid, scale_x_y, anchors, grid) is OpenCV's, not ours.
    let model = load_like_opencv(
        &assets::text("yolov4-tiny.cfg"),
        &assets::read("yolov4-tiny.weights"),
    );
    let options = DetectorOptions::default();
    assert_eq!(options.resize, Resize::Stretch);
    let images = photos();
    let (shape, input) = input_of(&model, &images);
    let detector = Detector::from_model(model, assets::coco_names(), options).expect("detector");
    let ours = detector.detect(&images).expect("detect");

    let scratch = ScratchDir::new("tiny-detections");
    let input_path = scratch.join("input.f32");
    tensor_file::write(&input_path, &shape, &input);
    let out = scratch.join("detections.json");
    let mut args: Vec<std::ffi::OsString> = vec![
        assets::path("yolov4-tiny.cfg").into(),
        assets::path("yolov4-tiny.weights").into(),
        input_path.into(),
        out.clone().into(),
        options.confidence_threshold.to_string().into(),
        options.nms_threshold.to_string().into(),
    ];
    args.extend(
        images
            .iter()
            .map(|i| format!("{},{}", i.width(), i.height()).into()),
    );
    python::run(&python::script("tests/oracle", "detections.py"), args);
    let oracle: Vec<Vec<OracleDetection>> =
        serde_json::from_slice(&std::fs::read(&out).expect("oracle output")).expect("oracle JSON");

    assert_eq!(oracle.len(), images.len());
    let names = detector.class_names();
    for (i, photo) in PHOTOS.iter().enumerate() {
        for d in &ours[i] {
            eprintln!(
                "{photo} ours   {:<12} {:.4} [{:.1} {:.1} {:.1} {:.1}]",
                d.class_name, d.confidence, d.bbox.x, d.bbox.y, d.bbox.width, d.bbox.height
            );
        }
        for d in &oracle[i] {
            eprintln!(
                "{photo} OpenCV {:<12} {:.4} [{:.1} {:.1} {:.1} {:.1}]",
                names[d.class_id], d.confidence, d.x, d.y, d.width, d.height
            );
        }
        assert!(
            !oracle[i].is_empty(),
            "{photo}: the oracle found nothing: the comparison would be empty"
        );
        assert_same_detections(photo, images[i].dimensions(), &ours[i], &oracle[i]);
    }
    // The bus photo's people are found (a sanity check of the oracle itself).
    let people = oracle[0]
        .iter()
        .filter(|d| names[d.class_id] == "person")
        .count();
    assert!(people >= 3, "bus.jpg: the oracle finds {people} people");
}

/// Full YOLOv4 input size for the test: 416 instead of the cfg's 608, to keep
/// CI time reasonable (the architecture and weights do not depend on it). The
/// whole test takes ~10-20 s on 2 cores (our forward + OpenCV + 257 MB of
/// weights written once), so it runs without SAFECITY_SLOW_TESTS.
const V4_SIZE: usize = 416;

#[test]
fn yolov4_random_weights_heads_match_opencv() {
    let stock = assets::text("yolov4.cfg");
    let cfg = cfg_text::with_input_size(&stock, V4_SIZE, V4_SIZE);
    let weights = random_weights::generate(&cfg, 0x5AFE_C17F);
    // 20-byte header + 64,429,405 floats: the size of the official yolov4.weights.
    assert_eq!(
        weights.len(),
        257_717_640,
        "random weights for the stock yolov4.cfg"
    );

    let scratch = ScratchDir::new("v4-assets");
    let (cfg_path, weights_path) = (
        scratch.join("yolov4-416.cfg"),
        scratch.join("yolov4-random.weights"),
    );
    std::fs::write(&cfg_path, &cfg).unwrap();
    std::fs::write(&weights_path, &weights).unwrap();

    let model = load_like_opencv(&cfg, &weights);
    drop(weights);
    assert_eq!(model.num_layers(), 162);
    assert_eq!(head_names(&model), ["conv_138", "conv_149", "conv_160"]);
    let (shape, input) = input_of(&model, &photos()[..1]);
    let oracle = compare_heads(
        "v4-heads",
        &model,
        &cfg_path,
        &weights_path,
        &shape,
        &input,
        V4_HEAD_REL,
    );
    // The calibration kept the logits O(1): the comparison is on real signal,
    // neither vanished nor exploded after 162 layers.
    for (name, head) in head_names(&model).iter().zip(&oracle) {
        let r = rms(head);
        assert!(
            (0.1..10.0).contains(&r),
            "{name}: oracle rms {r}: random weights badly calibrated"
        );
    }
}

#[test]
fn random_weights_activation_moments_match_closed_forms() {
    // The calibration of the random weights rests on these moments.
    let (mean, m2) = random_weights::activation_moments("linear");
    assert!(
        mean.abs() < 1e-9 && (m2 - 1.0).abs() < 1e-6,
        "linear: {mean} {m2}"
    );
    // leaky(0.1): mean 0.9 / sqrt(2 pi), mean square (1 + 0.01) / 2.
    let (mean, m2) = random_weights::activation_moments("leaky");
    assert!(
        (mean - 0.9 / (2.0 * std::f64::consts::PI).sqrt()).abs() < 1e-6,
        "leaky mean {mean}"
    );
    assert!((m2 - 0.505).abs() < 1e-6, "leaky mean square {m2}");
}
