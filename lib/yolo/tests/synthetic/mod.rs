//! A small network that uses every supported layer, with deterministic
//! pseudo-random weights written in Darknet's format, plus a naive reference
//! implementation of Darknet's layers (unfused batch norm, maxpool that skips
//! out-of-range cells) to check the candle model against.

#![allow(dead_code)]

/// Every layer kind: BN + leaky, grouped strided BN + mish, odd maxpool with
/// stride 1, grouped route, shortcut, even maxpool on an odd input, upsample,
/// unpadded even kernel, two-input route, and a [yolo] head.
pub(crate) const CFG: &str = "\
[net]
width=10
height=10
channels=3
batch=1

[convolutional]
batch_normalize=1
filters=8
size=3
stride=1
pad=1
activation=leaky

[convolutional]
batch_normalize=1
filters=8
size=3
stride=2
pad=1
groups=2
activation=mish

[maxpool]
size=3
stride=1

[route]
layers=-1
groups=2
group_id=1

[convolutional]
filters=8
size=1
stride=1
pad=1
activation=linear

[shortcut]
from=-4
activation=linear

[maxpool]
size=2
stride=2

[upsample]
stride=2

[convolutional]
filters=14
size=2
stride=1
padding=0
activation=logistic

[route]
layers=-1,-5

[convolutional]
filters=14
size=1
stride=1
activation=linear

[yolo]
mask=1,2
anchors=2,3, 4,5, 6,7
num=3
classes=2
scale_x_y=1.1
";

/// Deterministic xorshift numbers in `[-1, 1)`.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    pub(crate) fn next(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
}

/// Raw parameters of one conv, as stored in the file (BN not folded).
pub(crate) struct RawConv {
    pub filters: usize,
    pub channels_per_group: usize,
    pub size: usize,
    pub bias: Vec<f32>,
    pub bn: Option<(Vec<f32>, Vec<f32>, Vec<f32>)>,
    pub weight: Vec<f32>,
}

/// (filters, input channels per group, size, batch_normalize) of the CFG's convs.
pub(crate) const CONVS: [(usize, usize, usize, bool); 5] = [
    (8, 3, 3, true),
    (8, 4, 3, true),
    (8, 4, 1, false),
    (14, 8, 2, false),
    (14, 22, 1, false),
];

/// Pseudo-random parameters for every conv of [`CFG`] and the `.weights` bytes holding them.
pub(crate) fn weights(seed: u64) -> (Vec<RawConv>, Vec<u8>) {
    let mut rng = Rng::new(seed);
    let mut bytes = Vec::new();
    for v in [0i32, 2, 5] {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    bytes.extend_from_slice(&0u64.to_le_bytes());
    let mut convs = Vec::new();
    for (filters, cpg, size, bn) in CONVS {
        let mut draw =
            |n: usize, f: &dyn Fn(f32) -> f32| (0..n).map(|_| f(rng.next())).collect::<Vec<f32>>();
        let bias = draw(filters, &|r| 0.5 * r);
        let bn = bn.then(|| {
            (
                draw(filters, &|r| 1.0 + 0.5 * r),
                draw(filters, &|r| 0.3 * r),
                draw(filters, &|r| 0.6 + 0.5 * r),
            )
        });
        let weight = draw(filters * cpg * size * size, &|r| 0.4 * r);
        let mut floats = bias.clone();
        if let Some((s, m, v)) = &bn {
            floats.extend(s);
            floats.extend(m);
            floats.extend(v);
        }
        floats.extend(&weight);
        bytes.extend(floats.iter().flat_map(|f| f.to_le_bytes()));
        convs.push(RawConv {
            filters,
            channels_per_group: cpg,
            size,
            bias,
            bn,
            weight,
        });
    }
    (convs, bytes)
}

/// A CHW feature map.
#[derive(Clone, Debug)]
pub(crate) struct Map {
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub data: Vec<f32>,
}

impl Map {
    pub(crate) fn at(&self, c: usize, y: usize, x: usize) -> f32 {
        self.data[(c * self.h + y) * self.w + x]
    }
}

pub(crate) fn leaky(x: f32) -> f32 {
    if x > 0.0 { x } else { 0.1 * x }
}

pub(crate) fn mish(x: f32) -> f32 {
    let sp = if x > 20.0 {
        x
    } else if x < -20.0 {
        x.exp()
    } else {
        x.exp().ln_1p()
    };
    x * sp.tanh()
}

pub(crate) fn logistic(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// Darknet's convolution: zero padding, groups, then either bias or
/// `(y - mean) / sqrt(var + eps) * scale + beta`, then the activation.
pub(crate) fn conv(
    x: &Map,
    p: &RawConv,
    stride: usize,
    pad: usize,
    groups: usize,
    eps: f32,
    act: fn(f32) -> f32,
) -> Map {
    let oh = (x.h + 2 * pad - p.size) / stride + 1;
    let ow = (x.w + 2 * pad - p.size) / stride + 1;
    let per_group_out = p.filters / groups;
    let mut data = vec![0.0; p.filters * oh * ow];
    for o in 0..p.filters {
        let g = o / per_group_out;
        for oy in 0..oh {
            for ox in 0..ow {
                let mut sum = 0.0f64;
                for ci in 0..p.channels_per_group {
                    let c = g * p.channels_per_group + ci;
                    for ky in 0..p.size {
                        for kx in 0..p.size {
                            let y = (oy * stride + ky) as isize - pad as isize;
                            let xx = (ox * stride + kx) as isize - pad as isize;
                            if y < 0 || xx < 0 || y >= x.h as isize || xx >= x.w as isize {
                                continue;
                            }
                            let wv = p.weight
                                [((o * p.channels_per_group + ci) * p.size + ky) * p.size + kx];
                            sum += f64::from(wv) * f64::from(x.at(c, y as usize, xx as usize));
                        }
                    }
                }
                let mut v = sum as f32;
                v = match &p.bn {
                    Some((scale, mean, var)) => {
                        (v - mean[o]) / (var[o] + eps).sqrt() * scale[o] + p.bias[o]
                    }
                    None => v + p.bias[o],
                };
                data[(o * oh + oy) * ow + ox] = act(v);
            }
        }
    }
    Map {
        c: p.filters,
        h: oh,
        w: ow,
        data,
    }
}

/// Darknet's maxpool: window from `-padding/2`, out-of-range cells skipped.
pub(crate) fn maxpool(x: &Map, size: usize, stride: usize, padding: usize) -> Map {
    let oh = (x.h + padding - size) / stride + 1;
    let ow = (x.w + padding - size) / stride + 1;
    let off = -((padding / 2) as isize);
    let mut data = vec![0.0; x.c * oh * ow];
    for c in 0..x.c {
        for oy in 0..oh {
            for ox in 0..ow {
                let mut m = f32::NEG_INFINITY;
                for ky in 0..size {
                    for kx in 0..size {
                        let y = off + (oy * stride + ky) as isize;
                        let xx = off + (ox * stride + kx) as isize;
                        if y >= 0 && xx >= 0 && y < x.h as isize && xx < x.w as isize {
                            m = m.max(x.at(c, y as usize, xx as usize));
                        }
                    }
                }
                data[(c * oh + oy) * ow + ox] = m;
            }
        }
    }
    Map {
        c: x.c,
        h: oh,
        w: ow,
        data,
    }
}

/// Channel group `id` of `groups` from each input, concatenated.
pub(crate) fn route(inputs: &[&Map], groups: usize, id: usize) -> Map {
    let mut data = Vec::new();
    let mut c = 0;
    for m in inputs {
        let part = m.c / groups;
        let plane = m.h * m.w;
        data.extend_from_slice(&m.data[id * part * plane..(id + 1) * part * plane]);
        c += part;
    }
    Map {
        c,
        h: inputs[0].h,
        w: inputs[0].w,
        data,
    }
}

pub(crate) fn add(a: &Map, b: &Map) -> Map {
    Map {
        data: a.data.iter().zip(&b.data).map(|(x, y)| x + y).collect(),
        ..a.clone()
    }
}

pub(crate) fn upsample(x: &Map, s: usize) -> Map {
    let (h, w) = (x.h * s, x.w * s);
    let mut data = vec![0.0; x.c * h * w];
    for c in 0..x.c {
        for y in 0..h {
            for xx in 0..w {
                data[(c * h + y) * w + xx] = x.at(c, y / s, xx / s);
            }
        }
    }
    Map { c: x.c, h, w, data }
}

/// Every layer's output of [`CFG`] for one image, by the naive reference.
pub(crate) fn reference(input: &Map, convs: &[RawConv], eps: f32) -> Vec<Map> {
    let linear: fn(f32) -> f32 = |v| v;
    let mut out: Vec<Map> = vec![conv(input, &convs[0], 1, 1, 1, eps, leaky)]; // 0
    out.push(conv(&out[0], &convs[1], 2, 1, 2, eps, mish)); // 1
    out.push(maxpool(&out[1], 3, 1, 2)); // 2
    out.push(route(&[&out[2]], 2, 1)); // 3
    out.push(conv(&out[3], &convs[2], 1, 0, 1, eps, linear)); // 4 (size 1: pad=1 gives 0)
    out.push(add(&out[4], &out[1])); // 5
    out.push(maxpool(&out[5], 2, 2, 1)); // 6
    out.push(upsample(&out[6], 2)); // 7
    out.push(conv(&out[7], &convs[3], 1, 0, 1, eps, logistic)); // 8
    out.push(route(&[&out[8], &out[4]], 1, 0)); // 9
    out.push(conv(&out[9], &convs[4], 1, 0, 1, eps, linear)); // 10
    out.push(out[10].clone()); // 11: [yolo] passes through
    out
}

/// A pseudo-random input image in `[0, 1]`, CHW.
pub(crate) fn input(seed: u64) -> Map {
    let mut rng = Rng::new(seed);
    Map {
        c: 3,
        h: 10,
        w: 10,
        data: (0..300).map(|_| 0.5 + 0.5 * rng.next()).collect(),
    }
}
