//! The candle network against a naive reference of Darknet's layers, layer by layer.

mod synthetic;

use candle_core::{Device, Tensor};
use safecity_yolo::darknet::cfg::NetConfig;
use safecity_yolo::darknet::weights::{DARKNET_BN_EPSILON, OPENCV_BN_EPSILON};
use safecity_yolo::model::{Darknet, LoadOptions};

fn assert_close(layer: usize, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "layer {layer}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= 1e-4 * (1.0 + w.abs()),
            "layer {layer}, element {i}: got {g}, want {w}"
        );
    }
}

#[test]
fn every_layer_matches_the_reference() {
    let cfg = NetConfig::parse(synthetic::CFG).unwrap();
    let (convs, bytes) = synthetic::weights(7);
    for eps in [DARKNET_BN_EPSILON, OPENCV_BN_EPSILON] {
        let model = Darknet::load_with(
            &cfg,
            &bytes,
            &Device::Cpu,
            &LoadOptions {
                bn_epsilon: eps,
                ..LoadOptions::default()
            },
        )
        .unwrap();
        let image = synthetic::input(11);
        let want = synthetic::reference(&image, &convs, eps);
        let x = Tensor::from_vec(image.data.clone(), (1, 3, 10, 10), &Device::Cpu).unwrap();
        let all: Vec<usize> = (0..model.num_layers()).collect();
        let got = model.forward_layers(&x, &all).unwrap();
        for (layer, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(g.dims(), &[1, w.c, w.h, w.w], "layer {layer}: shape");
            assert_eq!(model.output_shape(layer), Some((w.c, w.h, w.w)));
            assert_close(
                layer,
                &g.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                &w.data,
            );
        }
        // The stride-1 maxpool saw negative mish outputs at the border: zero
        // padding would have lifted them to 0.
        assert!(want[1].data.iter().any(|v| *v < 0.0));
        let heads = model.forward_heads(&x).unwrap();
        assert_eq!(heads.len(), 1);
        assert_close(
            11,
            &heads[0].flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            &want[11].data,
        );
    }
}

#[test]
fn a_batch_is_the_images_run_one_by_one() {
    let cfg = NetConfig::parse(synthetic::CFG).unwrap();
    let (convs, bytes) = synthetic::weights(3);
    let model = Darknet::load(&cfg, &bytes, &Device::Cpu).unwrap();
    let images = [
        synthetic::input(1),
        synthetic::input(2),
        synthetic::input(3),
    ];
    let data: Vec<f32> = images.iter().flat_map(|m| m.data.clone()).collect();
    let x = Tensor::from_vec(data, (3, 3, 10, 10), &Device::Cpu).unwrap();
    let heads = model.forward_heads(&x).unwrap();
    let got = heads[0].flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let per_image = got.len() / 3;
    for (i, image) in images.iter().enumerate() {
        let want = synthetic::reference(image, &convs, DARKNET_BN_EPSILON);
        assert_close(11, &got[i * per_image..(i + 1) * per_image], &want[11].data);
    }
}

#[test]
fn wrong_input_shapes_are_refused() {
    let cfg = NetConfig::parse(synthetic::CFG).unwrap();
    let (_, bytes) = synthetic::weights(3);
    let model = Darknet::load(&cfg, &bytes, &Device::Cpu).unwrap();
    let x = Tensor::zeros((1, 3, 12, 10), candle_core::DType::F32, &Device::Cpu).unwrap();
    let err = model.forward_heads(&x).unwrap_err().to_string();
    assert!(
        err.contains("(N, 3, 12, 10)") && err.contains("(N, 3, 10, 10)"),
        "{err}"
    );
    let x = Tensor::zeros((1, 3, 10, 10), candle_core::DType::F32, &Device::Cpu).unwrap();
    let err = model.forward_layers(&x, &[12]).unwrap_err().to_string();
    assert!(err.contains("layer 12 requested"), "{err}");
}

#[test]
fn a_maxpool_whose_windows_miss_the_input_is_refused() {
    // padding=6 starts the first window at -3: a size-2 window there sees no input cell.
    let cfg = "[net]\nwidth=4\nheight=4\n[maxpool]\nsize=2\nstride=1\npadding=6\n\
               [convolutional]\nfilters=6\nsize=1\n[yolo]\nmask=0\nanchors=1,1\nclasses=1\n";
    let cfg = NetConfig::parse(cfg).unwrap();
    let err = Darknet::load(&cfg, &[], &Device::Cpu).unwrap_err();
    assert!(
        matches!(
            &err,
            safecity_yolo::LoadError::Shape {
                layer: 0,
                section: "maxpool",
                line: 4,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("entirely outside"), "{err}");
}
