//! The weights that turn a block's coefficients into its four 4x4 quadrant
//! means (the 4x reduced decode).

/// Natural (row-major) index of each zig-zag position.
const ZIGZAG: [usize; 64] = [
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20,
    13, 6, 7, 14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59,
    52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
];

/// For each zig-zag position: its weight in the top-left 4x4 quadrant's
/// mean, `C(u) C(v) S(u) S(v) / 64` with `S(u) = sum over x in 0..4 of
/// cos((2x + 1) u pi / 16)` (zero for even u > 0), and its parity class
/// `(u odd) + 2 (v odd)`: the other quadrants take the same weights with the
/// sign `(-1)^u` (right half) and `(-1)^v` (bottom half).
pub(crate) fn quadrant_weights() -> ([f32; 64], [u8; 64]) {
    let s = |u: usize| -> f64 {
        (0..4)
            .map(|x| ((2 * x + 1) as f64 * u as f64 * std::f64::consts::PI / 16.0).cos())
            .sum()
    };
    let c = |u: usize| {
        if u == 0 {
            std::f64::consts::FRAC_1_SQRT_2
        } else {
            1.0
        }
    };
    let mut weights = [0f32; 64];
    let mut classes = [0u8; 64];
    for (k, &n) in ZIGZAG.iter().enumerate() {
        let (u, v) = (n % 8, n / 8);
        let w = c(u) * c(v) * s(u) * s(v) / 64.0;
        weights[k] = if w.abs() < 1e-9 { 0.0 } else { w as f32 };
        classes[k] = (u % 2 + 2 * (v % 2)) as u8;
    }
    (weights, classes)
}
