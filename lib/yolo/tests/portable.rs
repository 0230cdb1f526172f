//! The device path on the CPU: a model loaded with `KernelChoice::Portable`
//! runs every layer as candle tensor ops (what a CUDA device runs, where the
//! CPU custom ops do not exist) and decodes through `gather_cells` (what a
//! CUDA device copies to the host). It must give the numbers of the CPU fast
//! path (fused convolution, separable maxpool, element-wise activations, the
//! dense decode), so the composition is right even where no GPU is lent.

mod support;
mod synthetic;

use candle_core::{DType, Device, Tensor};
use safecity_yolo::darknet::cfg::NetConfig;
use safecity_yolo::detector::{Detector, DetectorOptions, ObjectDetection, gather_cells};
use safecity_yolo::kernels::KernelChoice;
use safecity_yolo::model::{Darknet, LoadOptions};
use safecity_yolo::postprocess::{self, HeadOutput};
use safecity_yolo::preprocess::{self, ImageLimits, Resize};
use support::{assets, cfg_text, random_weights};

fn load(cfg: &str, weights: &[u8], kernels: KernelChoice, dtype: DType) -> Darknet {
    let cfg = NetConfig::parse(cfg).expect("cfg parses");
    let options = LoadOptions {
        kernels,
        dtype,
        ..LoadOptions::default()
    };
    Darknet::load_with(&cfg, weights, &Device::Cpu, &options).expect("model loads")
}

/// `max|a - b| / max|b|` over two tensors of the same shape.
fn rel(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims());
    let a = a.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let b = b.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let scale = b.iter().fold(0f32, |m, v| m.max(v.abs()));
    let diff = a
        .iter()
        .zip(&b)
        .fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    assert!(diff.is_finite(), "non-finite difference");
    if scale == 0.0 { diff } else { diff / scale }
}

/// Every layer's output of both paths, compared, `(layer, kind, rel)` of the worst.
fn compare_all_layers(native: &Darknet, portable: &Darknet, input: &Tensor, limit: f32) {
    let all: Vec<usize> = (0..native.num_layers()).collect();
    let want = native.forward_layers(input, &all).unwrap();
    let got = portable.forward_layers(input, &all).unwrap();
    let mut worst = (0, 0f32);
    for (layer, (g, w)) in got.iter().zip(&want).enumerate() {
        let r = rel(g, w);
        assert!(
            r <= limit,
            "layer {layer} ({}): portable differs by {r:e} (limit {limit:e})",
            native.layer_kind(layer).unwrap()
        );
        if r > worst.1 {
            worst = (layer, r);
        }
    }
    println!(
        "worst layer {} ({}): rel {:e}",
        worst.0,
        native.layer_kind(worst.0).unwrap(),
        worst.1
    );
}

fn photos() -> Vec<image::RgbImage> {
    ["bus.jpg", "zidane.jpg"]
        .iter()
        .map(|name| {
            preprocess::decode(&assets::read(name), &ImageLimits::default()).expect("photo decodes")
        })
        .collect()
}

fn input_of(model: &Darknet, images: &[image::RgbImage]) -> Tensor {
    let (w, h) = model.input_size();
    let planes: Vec<Vec<f32>> = images
        .iter()
        .map(|i| preprocess::to_planar(i, w, h, Resize::Stretch).0)
        .collect();
    preprocess::batch(&planes, w, h, &Device::Cpu).unwrap()
}

#[test]
fn every_layer_kind_of_the_synthetic_net_matches_the_fast_path() {
    let (_, bytes) = synthetic::weights(9);
    let native = load(synthetic::CFG, &bytes, KernelChoice::Native, DType::F32);
    let portable = load(synthetic::CFG, &bytes, KernelChoice::Portable, DType::F32);
    assert_eq!(portable.kernels(), KernelChoice::Portable);
    let data: Vec<f32> = (1..=3).flat_map(|s| synthetic::input(s).data).collect();
    let x = Tensor::from_vec(data, (3, 3, 10, 10), &Device::Cpu).unwrap();
    compare_all_layers(&native, &portable, &x, 1e-5);
}

#[test]
fn yolov4_tiny_on_the_photos_matches_the_fast_path_layer_by_layer() {
    let cfg = assets::text("yolov4-tiny.cfg");
    let weights = assets::read("yolov4-tiny.weights");
    let native = load(&cfg, &weights, KernelChoice::Native, DType::F32);
    let portable = load(&cfg, &weights, KernelChoice::Portable, DType::F32);
    let x = input_of(&native, &photos());
    // Winograd F(4x4, 3x3) against candle's direct im2col GEMM: both f32,
    // differently rounded (the oracle allows 1e-4 against OpenCV).
    compare_all_layers(&native, &portable, &x, 1e-4);
}

#[test]
fn full_yolov4_with_random_weights_matches_the_fast_path() {
    // 256x256 keeps the test short; the SPP maxpools (5, 9, 13) still see an
    // 8x8 input, larger than the 5x5 window.
    let cfg = cfg_text::with_input_size(&assets::text("yolov4.cfg"), 256, 256);
    let weights = random_weights::generate(&cfg, 21);
    let native = load(&cfg, &weights, KernelChoice::Native, DType::F32);
    let portable = load(&cfg, &weights, KernelChoice::Portable, DType::F32);
    let x = input_of(&native, &photos()[..1]);
    compare_all_layers(&native, &portable, &x, 1e-3);
}

/// Same classes in the same order, box coordinates within `pixels`, confidences within `confidence`.
fn assert_same_detections(
    want: &[ObjectDetection],
    got: &[ObjectDetection],
    pixels: f32,
    confidence: f32,
) {
    assert_eq!(
        want.iter().map(|d| d.class_id).collect::<Vec<_>>(),
        got.iter().map(|d| d.class_id).collect::<Vec<_>>(),
        "classes"
    );
    for (w, g) in want.iter().zip(got) {
        let (a, b) = (w.bbox, g.bbox);
        for (x, y) in [
            (a.x, b.x),
            (a.y, b.y),
            (a.width, b.width),
            (a.height, b.height),
        ] {
            assert!((x - y).abs() <= pixels, "{w:?} vs {g:?}");
        }
        assert!(
            (w.confidence - g.confidence).abs() <= confidence,
            "{w:?} vs {g:?}"
        );
    }
}

fn tiny_detector(kernels: KernelChoice, dtype: DType) -> Detector {
    let cfg = assets::text("yolov4-tiny.cfg");
    let weights = assets::read("yolov4-tiny.weights");
    Detector::from_model(
        load(&cfg, &weights, kernels, dtype),
        assets::coco_names(),
        DetectorOptions::default(),
    )
    .unwrap()
}

#[test]
fn the_portable_detector_finds_what_the_fast_path_finds() {
    let images = photos();
    let want = tiny_detector(KernelChoice::Native, DType::F32)
        .detect(&images)
        .unwrap();
    let got = tiny_detector(KernelChoice::Portable, DType::F32)
        .detect(&images)
        .unwrap();
    assert!(want.iter().all(|d| !d.is_empty()));
    for (w, g) in want.iter().zip(&got) {
        assert_same_detections(w, g, 0.5, 1e-4);
    }
}

#[test]
fn f16_detections_match_f32_on_bus_jpg() {
    // What a GPU runs in f16, on the CPU: same classes, boxes within 1% of
    // the image (810 px wide), confidences within 0.02.
    let images = photos();
    let want = tiny_detector(KernelChoice::Native, DType::F32)
        .detect(&images[..1])
        .unwrap();
    let f16 = tiny_detector(KernelChoice::Portable, DType::F16);
    assert_eq!(f16.model().dtype(), DType::F16);
    let got = f16.detect(&images[..1]).unwrap();
    println!("{:?}", got[0]);
    assert_same_detections(&want[0], &got[0], 0.01 * 810.0, 0.02);
}

#[test]
fn gathered_cells_decode_to_exactly_the_dense_candidates() {
    let cfg = assets::text("yolov4-tiny.cfg");
    let weights = assets::read("yolov4-tiny.weights");
    let model = load(&cfg, &weights, KernelChoice::Native, DType::F32);
    let logits = model.forward_heads(&input_of(&model, &photos())).unwrap();
    let heads = model.heads();
    let (w, h) = model.input_size();
    let data: Vec<Vec<f32>> = logits
        .iter()
        .map(|t| t.flatten_all().unwrap().to_vec1::<f32>().unwrap())
        .collect();
    // 0 keeps every cell; 0.9 almost none.
    for threshold in [0.0, 0.05, 0.25, 0.9] {
        let dense: Vec<HeadOutput<'_>> = heads
            .iter()
            .zip(&logits)
            .zip(&data)
            .map(|((head, t), values)| {
                let (n, _, hh, ww) = t.dims4().unwrap();
                HeadOutput {
                    layout: head.layout(),
                    data: values,
                    batch: n,
                    height: hh,
                    width: ww,
                }
            })
            .collect();
        let want = postprocess::decode(&dense, w, h, threshold);
        let cells: Vec<_> = heads
            .iter()
            .zip(&logits)
            .map(|(head, t)| gather_cells(t, head.layout(), threshold).unwrap())
            .collect();
        let pairs: Vec<_> = heads.iter().map(|h| h.layout()).zip(&cells).collect();
        let got = postprocess::decode_cells(&pairs, w, h, threshold);
        assert_eq!(got, want, "threshold {threshold}");
        if threshold == 0.0 {
            let all: usize = data.iter().map(Vec::len).sum();
            let copied: usize = cells.iter().map(|c| c.values.len()).sum();
            assert_eq!(copied, all, "threshold 0 copies every cell");
        }
    }
}
