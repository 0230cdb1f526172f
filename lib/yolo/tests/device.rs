//! Device selection, and every tensor of the model on the model's device.

mod synthetic;

use candle_core::{Device, Tensor};
use safecity_yolo::darknet::cfg::NetConfig;
use safecity_yolo::device::{DeviceError, DevicePreference, select};
use safecity_yolo::model::Darknet;

#[test]
fn preferences_parse_from_config_strings() {
    assert_eq!(
        "cpu".parse::<DevicePreference>().unwrap(),
        DevicePreference::Cpu
    );
    assert_eq!(
        " CUDA ".parse::<DevicePreference>().unwrap(),
        DevicePreference::Cuda(0)
    );
    assert_eq!(
        "cuda:1".parse::<DevicePreference>().unwrap(),
        DevicePreference::Cuda(1)
    );
    assert_eq!(
        "auto".parse::<DevicePreference>().unwrap(),
        DevicePreference::Auto
    );
    for bad in ["", "tpu", "cuda:", "cuda:x", "cuda:-1"] {
        let err = bad.parse::<DevicePreference>().unwrap_err();
        assert!(matches!(err, DeviceError::Parse(_)), "{bad}: {err:?}");
        assert!(
            err.to_string()
                .contains("expected cpu, cuda, cuda:N or auto"),
            "{err}"
        );
    }
    for pref in [
        DevicePreference::Cpu,
        DevicePreference::Cuda(3),
        DevicePreference::Auto,
    ] {
        assert_eq!(pref.to_string().parse::<DevicePreference>().unwrap(), pref);
    }
}

#[test]
fn cpu_and_auto_select_a_device() {
    assert!(matches!(
        select(DevicePreference::Cpu).unwrap(),
        Device::Cpu
    ));
    // Auto falls back to the CPU when this build or machine has no CUDA.
    let auto = select(DevicePreference::Auto).unwrap();
    if !cfg!(feature = "cuda") {
        assert!(matches!(auto, Device::Cpu));
    }
}

#[cfg(not(feature = "cuda"))]
#[test]
fn cuda_without_the_feature_is_a_clear_error() {
    let err = select(DevicePreference::Cuda(1)).unwrap_err();
    assert!(matches!(err, DeviceError::CudaNotCompiled(1)), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("cuda:1") && text.contains("--features cuda"),
        "{text}"
    );
}

#[test]
fn every_tensor_lives_on_the_model_device() {
    let device = select(DevicePreference::Auto).unwrap();
    let cfg = NetConfig::parse(synthetic::CFG).unwrap();
    let (_, bytes) = synthetic::weights(5);
    let model = Darknet::load(&cfg, &bytes, &device).unwrap();
    assert!(model.device().same_device(&device));
    let blocks = model.conv_blocks();
    assert_eq!(blocks.len(), synthetic::CONVS.len());
    for (layer, block) in blocks {
        assert!(
            block.weight().device().same_device(&device),
            "layer {layer} weight"
        );
        assert!(
            block.bias().device().same_device(&device),
            "layer {layer} bias"
        );
        assert!(
            block.weight().is_contiguous(),
            "layer {layer} weight layout"
        );
    }
    let x = Tensor::from_vec(synthetic::input(1).data, (1, 3, 10, 10), &device).unwrap();
    let all: Vec<usize> = (0..model.num_layers()).collect();
    for (layer, out) in model.forward_layers(&x, &all).unwrap().iter().enumerate() {
        assert!(out.device().same_device(&device), "layer {layer} output");
    }
    for head in model.forward_heads(&x).unwrap() {
        assert!(head.device().same_device(&device));
        assert_eq!(head.dtype(), candle_core::DType::F32);
    }
    // An input on another device is refused with a clear message, not moved silently.
    if !matches!(device, Device::Cpu) {
        let cpu = Tensor::zeros((1, 3, 10, 10), candle_core::DType::F32, &Device::Cpu).unwrap();
        assert!(model.forward_heads(&cpu).is_err());
    }
}
