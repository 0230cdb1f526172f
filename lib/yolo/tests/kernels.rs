//! `FusedConv2d` against a naive f64 direct convolution and against candle's
//! own conv2d + bias + activation, on random data.

use candle_core::{Device, Tensor};
use safecity_yolo::activation::Activation;
use safecity_yolo::kernels::{ConvAlgorithm, FusedConv2d, KernelError};

/// Deterministic xorshift values in [-1, 1).
struct Rng(u64);

impl Rng {
    fn values(&mut self, n: usize) -> Vec<f32> {
        (0..n)
            .map(|_| {
                self.0 ^= self.0 << 13;
                self.0 ^= self.0 >> 7;
                self.0 ^= self.0 << 17;
                (self.0 >> 40) as f32 / (1u64 << 23) as f32 - 1.0
            })
            .collect()
    }
}

/// One convolution to check.
#[derive(Debug, Clone, Copy)]
struct Case {
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    o: usize,
    k: usize,
    stride: usize,
    groups: usize,
    activation: Activation,
}

impl Case {
    fn padding(&self) -> usize {
        self.k / 2
    }

    fn out_size(&self) -> (usize, usize) {
        let p = self.padding();
        (
            (self.h + 2 * p - self.k) / self.stride + 1,
            (self.w + 2 * p - self.k) / self.stride + 1,
        )
    }
}

/// Direct convolution in f64 before the activation: `(N, O, H', W')`.
fn naive(case: &Case, x: &[f32], weight: &[f32], bias: &[f32]) -> Vec<f64> {
    let (ho, wo) = case.out_size();
    let (cg, og, k, p) = (
        case.c / case.groups,
        case.o / case.groups,
        case.k,
        case.padding() as isize,
    );
    let mut out = vec![0f64; case.n * case.o * ho * wo];
    for n in 0..case.n {
        for o in 0..case.o {
            let g = o / og;
            for oy in 0..ho {
                for ox in 0..wo {
                    let mut acc = bias[o] as f64;
                    for c in 0..cg {
                        for ky in 0..k {
                            for kx in 0..k {
                                let iy = (oy * case.stride + ky) as isize - p;
                                let ix = (ox * case.stride + kx) as isize - p;
                                if iy < 0
                                    || ix < 0
                                    || iy >= case.h as isize
                                    || ix >= case.w as isize
                                {
                                    continue;
                                }
                                let xi = ((n * case.c + g * cg + c) * case.h + iy as usize)
                                    * case.w
                                    + ix as usize;
                                let wi = ((o * cg + c) * k + ky) * k + kx;
                                acc += x[xi] as f64 * weight[wi] as f64;
                            }
                        }
                    }
                    out[((n * case.o + o) * ho + oy) * wo + ox] = acc;
                }
            }
        }
    }
    out
}

/// Largest |a - b| over the largest |pre-activation reference|.
fn relative_error(got: &[f32], want: &[f32], scale: f64) -> f64 {
    assert_eq!(got.len(), want.len(), "output sizes differ");
    let worst = got
        .iter()
        .zip(want)
        .map(|(g, w)| (*g as f64 - *w as f64).abs())
        .fold(0.0, f64::max);
    worst / scale.max(1e-12)
}

/// Runs one case through every algorithm that can run it and both oracles.
fn check(case: Case, seed: u64) {
    let mut rng = Rng(seed);
    let cg = case.c / case.groups;
    let x = rng.values(case.n * case.c * case.h * case.w);
    let weight = rng.values(case.o * cg * case.k * case.k);
    let bias = rng.values(case.o);
    let reference = naive(&case, &x, &weight, &bias);
    let scale = reference.iter().fold(0f64, |m, v| m.max(v.abs()));
    let want: Vec<f32> = reference
        .iter()
        .map(|v| case.activation.apply(*v as f32))
        .collect();

    let device = Device::Cpu;
    let input = Tensor::from_vec(x.clone(), (case.n, case.c, case.h, case.w), &device).unwrap();
    let wt = Tensor::from_vec(weight.clone(), (case.o, cg, case.k, case.k), &device).unwrap();
    let bt = Tensor::from_vec(bias.clone(), (1, case.o, 1, 1), &device).unwrap();
    let candle: Vec<f32> = input
        .conv2d(&wt, case.padding(), case.stride, 1, case.groups)
        .unwrap()
        .broadcast_add(&bt)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
        .into_iter()
        .map(|v| case.activation.apply(v))
        .collect();

    let (ho, wo) = case.out_size();
    // Each algorithm forced, then the size-adaptive choice of `new`.
    for algorithm in [
        Some(ConvAlgorithm::Im2colGemm),
        Some(ConvAlgorithm::Winograd4x4),
        None,
    ] {
        let shape = (case.o, cg, case.k, case.k);
        let (s, p, g, act) = (case.stride, case.padding(), case.groups, case.activation);
        let conv = match algorithm {
            Some(algorithm) => {
                FusedConv2d::with_algorithm(&weight, shape, &bias, s, p, g, act, algorithm)
            }
            None => FusedConv2d::new(&weight, shape, &bias, s, p, g, act),
        }
        .unwrap();
        let y = conv.forward(&input).unwrap();
        assert_eq!(y.dims(), &[case.n, case.o, ho, wo], "{case:?}");
        let got = y.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let vs_naive = relative_error(&got, &want, scale);
        let vs_candle = relative_error(&got, &candle, scale);
        assert!(
            vs_naive < 1e-4 && vs_candle < 1e-4,
            "{case:?} with {:?}: error vs naive {vs_naive:.2e}, vs candle {vs_candle:.2e} (scale {scale:.2})",
            conv.algorithm()
        );
    }
}

#[test]
fn matches_naive_and_candle_on_random_shapes() {
    use Activation::*;
    #[rustfmt::skip]
    let cases = [
        // n, c, h, w, o, k, stride, groups, activation
        (1, 3, 17, 23, 8, 3, 2, 1, Leaky),
        (1, 8, 13, 13, 16, 3, 1, 1, Leaky),
        (3, 8, 11, 9, 6, 3, 1, 1, Mish),
        (3, 16, 10, 14, 12, 1, 1, 1, Linear),
        (1, 6, 9, 7, 4, 1, 1, 2, Logistic),
        (3, 8, 15, 12, 10, 3, 1, 2, Leaky),
        (3, 8, 15, 12, 10, 3, 2, 2, Mish),
        (1, 5, 5, 6, 7, 1, 2, 1, Linear),
        (1, 4, 1, 1, 3, 3, 1, 1, Logistic),
        (1, 64, 26, 26, 32, 3, 1, 1, Leaky),
        (1, 256, 13, 13, 64, 3, 1, 1, Linear),
        (1, 64, 20, 20, 32, 1, 1, 1, Mish),
        // Several im2col column blocks, with block edges inside images.
        (3, 64, 40, 40, 8, 3, 2, 1, Leaky),
        (3, 128, 30, 30, 16, 1, 1, 2, Linear),
        // Winograd in several passes (576 tiles per image: one image a pass).
        (3, 4, 96, 94, 6, 3, 1, 1, Leaky),
        // im2col depth 720: three accumulating GEMM passes of at most 256.
        (2, 80, 9, 11, 13, 3, 1, 1, Leaky),
        // Few pixels, many output channels: items split the channels and
        // share one im2col matrix filled before them.
        (1, 16, 5, 5, 40, 3, 2, 1, Mish),
        // The same with two groups and a matrix in two passes (depth 288).
        (1, 64, 7, 7, 48, 3, 1, 2, Leaky),
        // Winograd with 13 tiles per tile row: groups of 8 end inside a row.
        (1, 24, 20, 52, 16, 3, 1, 1, Mish),
    ];
    for (i, (n, c, h, w, o, k, stride, groups, activation)) in cases.into_iter().enumerate() {
        check(
            Case {
                n,
                c,
                h,
                w,
                o,
                k,
                stride,
                groups,
                activation,
            },
            0x9E37_79B9_7F4A_7C15 ^ i as u64,
        );
    }
}

#[test]
fn default_algorithm_follows_the_shape() {
    let weight = vec![0.5f32; 4 * 16 * 9];
    let bias = vec![0.0f32; 4];
    let pick = |stride| {
        FusedConv2d::new(
            &weight,
            (4, 16, 3, 3),
            &bias,
            stride,
            1,
            1,
            Activation::Leaky,
        )
        .unwrap()
    };
    assert_eq!(pick(1).algorithm(), ConvAlgorithm::Winograd4x4);
    assert_eq!(pick(2).algorithm(), ConvAlgorithm::Im2colGemm);
    // 12x12 outputs are 9 Winograd blocks per image: too few below batch 2;
    // 13x13 outputs are 16, the minimum.
    assert_eq!(pick(1).algorithm_for(1, 12, 12), ConvAlgorithm::Im2colGemm);
    assert_eq!(pick(1).algorithm_for(2, 12, 12), ConvAlgorithm::Winograd4x4);
    assert_eq!(pick(1).algorithm_for(1, 13, 13), ConvAlgorithm::Winograd4x4);
    assert_eq!(pick(1).algorithm_for(1, 26, 26), ConvAlgorithm::Winograd4x4);
    // A forced algorithm holds for every size.
    let forced = FusedConv2d::with_algorithm(
        &weight,
        (4, 16, 3, 3),
        &bias,
        1,
        1,
        1,
        Activation::Leaky,
        ConvAlgorithm::Winograd4x4,
    )
    .unwrap();
    assert_eq!(forced.algorithm_for(1, 5, 5), ConvAlgorithm::Winograd4x4);
    let one = FusedConv2d::new(
        &weight[..64],
        (4, 16, 1, 1),
        &bias,
        1,
        0,
        1,
        Activation::Leaky,
    )
    .unwrap();
    assert_eq!(one.algorithm(), ConvAlgorithm::Im2colGemm);
    // An image's 3 channels are too few for Winograd: im2col, whatever the size.
    let rgb = FusedConv2d::new(
        &weight[..4 * 3 * 9],
        (4, 3, 3, 3),
        &bias,
        1,
        1,
        1,
        Activation::Leaky,
    )
    .unwrap();
    assert_eq!(rgb.algorithm(), ConvAlgorithm::Im2colGemm);
    assert_eq!(rgb.algorithm_for(1, 416, 416), ConvAlgorithm::Im2colGemm);
}

#[test]
fn rejects_inconsistent_parameters() {
    let build = |weight: &[f32], shape, bias: &[f32], stride, groups| {
        FusedConv2d::new(weight, shape, bias, stride, 1, groups, Activation::Linear).unwrap_err()
    };
    assert_eq!(
        build(&[0.0; 10], (2, 1, 3, 3), &[0.0; 2], 1, 1),
        KernelError::WeightLength {
            shape: (2, 1, 3, 3),
            expected: 18,
            found: 10
        }
    );
    assert_eq!(
        build(&[0.0; 18], (2, 1, 3, 3), &[0.0; 3], 1, 1),
        KernelError::BiasLength {
            expected: 2,
            found: 3
        }
    );
    assert_eq!(
        build(&[0.0; 27], (3, 1, 3, 3), &[0.0; 3], 1, 2),
        KernelError::GroupsMismatch {
            out_channels: 3,
            groups: 2
        }
    );
    assert_eq!(
        build(&[0.0; 18], (2, 1, 3, 3), &[0.0; 2], 0, 1),
        KernelError::Zero { what: "stride" }
    );
}

#[test]
fn rejects_an_input_with_the_wrong_channel_count() {
    let conv = FusedConv2d::new(
        &[0.0; 18],
        (2, 1, 3, 3),
        &[0.0; 2],
        1,
        1,
        1,
        Activation::Linear,
    )
    .unwrap();
    let x = Tensor::zeros((1, 3, 8, 8), candle_core::DType::F32, &Device::Cpu).unwrap();
    let err = conv.forward(&x).unwrap_err().to_string();
    assert!(err.contains("expected an f32 (N, 1, H, W) input"), "{err}");
}
