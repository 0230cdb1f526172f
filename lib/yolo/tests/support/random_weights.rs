//! Deterministic random Darknet `.weights` for any cfg, calibrated so that
//! activations stay O(1) through deep nets (full YOLOv4: 162 layers).
//!
//! The file has the real layout: header `0, 2, 5` + `seen` as u64, then per
//! `[convolutional]` in cfg order: biases, (BN) scales, rolling means,
//! rolling variances, then OIHW weights.
//!
//! Calibration, without running the net: the generator walks the cfg and
//! keeps an estimate of every layer output's mean and mean square (one scalar
//! each for all channels). A conv's weights are uniform with variance
//! `1/fan_in`; for each output channel the BN rolling mean is set to the
//! expected conv output `mean(input) * sum(w)` and the rolling variance to
//! `mean_square(input) * sum(w^2)` (times a per-channel factor in [0.9, 1.1]):
//! a bound that also covers how channel means differ, so each BN output is
//! roughly N(0, 1) or smaller and errors of the estimate do not compound
//! (checked with OpenCV: every layer's RMS stays within ~0.3..1.5 on the
//! stock yolov4.cfg). Activations map that to their mean and
//! mean square on N(0, 1) (computed here by quadrature), shortcuts add,
//! routes average by channels, maxpools grow them. Heads (conv without BN)
//! get weights with variance `1/(fan_in * mean square)`. Scales and betas are
//! drawn per channel too, so that BN folding is exercised.

/// SplitMix64: tiny, seeded, platform-independent.
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    pub(crate) fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [lo, hi).
    pub(crate) fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        let unit = (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
        lo + (hi - lo) * unit
    }
}

/// One cfg section: its header and `key=value` options in file order.
struct Section {
    kind: String,
    line: usize,
    options: Vec<(String, String)>,
}

impl Section {
    fn get(&self, key: &str) -> Option<&str> {
        self.options
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn int(&self, key: &str, default: i64) -> i64 {
        self.get(key).map_or(default, |v| {
            v.parse().unwrap_or_else(|_| {
                panic!(
                    "[{}] line {}: {key}={v} is not an integer",
                    self.kind, self.line
                )
            })
        })
    }

    fn ints(&self, key: &str) -> Vec<i64> {
        let v = self
            .get(key)
            .unwrap_or_else(|| panic!("[{}] line {}: no {key}=", self.kind, self.line));
        v.split(',')
            .map(|x| x.trim().parse().expect("integer list"))
            .collect()
    }
}

fn sections(cfg: &str) -> Vec<Section> {
    let mut out: Vec<Section> = Vec::new();
    for (i, raw) in cfg.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() || line.starts_with(';') {
            continue;
        }
        if line.starts_with('[') {
            out.push(Section {
                kind: line.trim_matches(|c| c == '[' || c == ']').to_string(),
                line: i + 1,
                options: vec![],
            });
        } else if let Some((k, v)) = line.split_once('=') {
            let section = out
                .last_mut()
                .unwrap_or_else(|| panic!("line {}: option before any section", i + 1));
            section
                .options
                .push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    out
}

/// (E[act(z)], E[act(z)^2]) for z ~ N(0, 1), by the trapezoid rule on [-10, 10].
pub(crate) fn activation_moments(activation: &str) -> (f64, f64) {
    let f = |x: f64| -> f64 {
        match activation {
            "linear" => x,
            "leaky" => {
                if x > 0.0 {
                    x
                } else {
                    0.1 * x
                }
            }
            "relu" => x.max(0.0),
            "logistic" => 1.0 / (1.0 + (-x).exp()),
            "mish" => {
                let softplus = if x > 20.0 { x } else { x.exp().ln_1p() };
                x * softplus.tanh()
            }
            other => panic!("random weights: unsupported activation {other}"),
        }
    };
    let n = 4000;
    let h = 20.0 / n as f64;
    let norm = h / (2.0 * std::f64::consts::PI).sqrt();
    let (mut mean, mut m2) = (0.0, 0.0);
    for i in 0..=n {
        let x = -10.0 + i as f64 * h;
        let w = if i == 0 || i == n { 0.5 } else { 1.0 } * (-x * x / 2.0).exp() * norm;
        mean += w * f(x);
        m2 += w * f(x).powi(2);
    }
    (mean, m2)
}

/// Resolves a `layers=`/`from=` index (negative: relative to layer I).
fn absolute(index: i64, i: usize) -> usize {
    let abs = if index < 0 { i as i64 + index } else { index };
    assert!(
        abs >= 0 && (abs as usize) < i,
        "layer {i}: reference {index} out of range"
    );
    abs as usize
}

/// The `.weights` bytes of a random, calibrated net for CFG, from SEED.
pub(crate) fn generate(cfg: &str, seed: u64) -> Vec<u8> {
    let all = sections(cfg);
    let net = all.first().expect("cfg has a [net] section");
    assert!(
        net.kind == "net" || net.kind == "network",
        "cfg starts with [{}], not [net]",
        net.kind
    );
    let mut rng = SplitMix64::new(seed);
    let mut floats: Vec<f32> = Vec::new();
    // Per layer: output channels, estimated mean and mean square.
    let mut channels: Vec<usize> = Vec::new();
    let mut moments: Vec<(f64, f64)> = Vec::new();
    // The input: an image in [0, 1].
    let (mut c, mut mean, mut m2) = (net.int("channels", 3) as usize, 0.4, 0.22);
    for (i, s) in all[1..].iter().enumerate() {
        match s.kind.as_str() {
            "convolutional" => {
                let filters = s.int("filters", 1) as usize;
                let size = s.int("size", 1) as usize;
                let groups = s.int("groups", 1) as usize;
                let bn = s.int("batch_normalize", 0) != 0;
                let fan_in = c / groups * size * size;
                let activation = s.get("activation").unwrap_or("logistic");
                let weight_var = if bn {
                    1.0 / fan_in as f64
                } else {
                    1.0 / (fan_in as f64 * m2)
                };
                let bound = (3.0 * weight_var).sqrt() as f32;
                let biases: Vec<f32> = (0..filters).map(|_| rng.uniform(-0.1, 0.1)).collect();
                let weights: Vec<f32> = (0..filters * fan_in)
                    .map(|_| rng.uniform(-bound, bound))
                    .collect();
                floats.extend(&biases); // BN beta when batch_normalize
                if bn {
                    let rows = weights.chunks_exact(fan_in);
                    let (sums, squares): (Vec<f64>, Vec<f64>) = rows
                        .map(|r| {
                            (
                                r.iter().map(|&w| f64::from(w)).sum::<f64>(),
                                r.iter().map(|&w| f64::from(w).powi(2)).sum::<f64>(),
                            )
                        })
                        .unzip();
                    floats.extend((0..filters).map(|_| rng.uniform(0.9, 1.1))); // scales
                    floats.extend(
                        sums.iter()
                            .map(|s| (s * mean) as f32 + rng.uniform(-0.05, 0.05)),
                    ); // rolling mean
                    floats.extend(
                        squares
                            .iter()
                            .map(|q| (q * m2) as f32 * rng.uniform(0.9, 1.1)),
                    ); // rolling var
                    (mean, m2) = activation_moments(activation);
                } else {
                    // A head: O(1) logits, whatever the activation.
                    (mean, m2) = (0.0, 1.0);
                }
                floats.extend(&weights);
                c = filters;
            }
            "route" => {
                let groups = s.int("groups", 1) as usize;
                let sources: Vec<usize> = s
                    .ints("layers")
                    .into_iter()
                    .map(|l| absolute(l, i))
                    .collect();
                let total: usize = sources.iter().map(|&l| channels[l]).sum();
                let weighted = |f: fn(&(f64, f64)) -> f64| {
                    sources
                        .iter()
                        .map(|&l| channels[l] as f64 * f(&moments[l]))
                        .sum::<f64>()
                        / total as f64
                };
                (mean, m2) = (weighted(|m| m.0), weighted(|m| m.1));
                c = total / groups;
            }
            "shortcut" => {
                let (from_mean, from_m2) = moments[absolute(s.ints("from")[0], i)];
                m2 += from_m2 + 2.0 * mean * from_mean;
                mean += from_mean;
            }
            "maxpool" => {
                // The max of size^2 correlated neighbours: a rough, bounded growth.
                let growth = 1.0 + (s.int("size", 1) as f64).ln();
                m2 *= growth;
                mean *= growth.sqrt();
            }
            "upsample" | "yolo" => {}
            other => panic!(
                "random weights: unsupported section [{other}] (line {})",
                s.line
            ),
        }
        channels.push(c);
        moments.push((mean, m2));
    }
    let mut bytes = Vec::with_capacity(20 + 4 * floats.len());
    for v in [0i32, 2, 5] {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    bytes.extend_from_slice(&0u64.to_le_bytes());
    for v in &floats {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    bytes
}
