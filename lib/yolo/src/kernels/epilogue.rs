//! The fused output pass: bias plus activation, applied while the GEMM result
//! is copied into the `(N, O, H, W)` output.

use crate::activation::Activation;

/// `dst[i] = act(src[i] + bias)` for every element.
///
/// The activation is matched once per call, so each arm is a straight,
/// branch-free loop the compiler vectorises (mish through [`mish`]).
#[inline(always)]
pub(crate) fn bias_activate(dst: &mut [f32], src: &[f32], bias: f32, activation: Activation) {
    match activation {
        Activation::Linear => {
            for (d, s) in dst.iter_mut().zip(src) {
                *d = s + bias;
            }
        }
        Activation::Leaky => {
            for (d, s) in dst.iter_mut().zip(src) {
                let v = s + bias;
                *d = if v > 0.0 { v } else { 0.1 * v };
            }
        }
        Activation::Mish => {
            for (d, s) in dst.iter_mut().zip(src) {
                *d = mish(s + bias);
            }
        }
        Activation::Logistic => {
            for (d, s) in dst.iter_mut().zip(src) {
                *d = activation.apply(s + bias);
            }
        }
    }
}

/// Darknet's mish, `x · tanh(softplus(x))`, in a form the compiler
/// vectorises: with `e = exp(x)`, `tanh(ln(1 + e)) = n / (n + 2)` where
/// `n = e · (e + 2)`, so one [`exp`] and one division per value. Above 20 it
/// is `x`, as Darknet's softplus threshold makes it; below -20 the formula
/// gives `x · e^x` as Darknet's does. Within a few f32 ulps of
/// [`Activation::apply`] (tested).
#[inline(always)]
pub(crate) fn mish(x: f32) -> f32 {
    let e = exp(x.min(20.0));
    let n = e * (e + 2.0);
    let y = x * (n / (n + 2.0));
    if x > 20.0 { x } else { y }
}

/// `e^x` for `x` in about `[-87, 88]` (clamped), branch-free so it
/// vectorises: `x = k·ln 2 + r` with `|r| <= ln 2 / 2`, Cephes' degree-6
/// polynomial for `e^r`, and `2^k` built from its exponent bits.
///
/// `k + 127` becomes an integer without an `as` cast: Rust's float-to-int
/// `as` saturates, which LLVM cannot vectorise (it split every vector of
/// mish into 16 scalar conversions). Adding `1.5·2^23` puts a small integer
/// in the low mantissa bits, which `to_bits` reads for free.
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    /// `1.5·2^23`: its bit pattern is `0x4B40_0000`.
    const MAGIC: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 88.0);
    let k = (x * std::f32::consts::LOG2_E + 0.5).floor();
    let r = x - k * LN2_HI - k * LN2_LO;
    let p = 1.987_569_1e-4;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 1.666_666_5e-1;
    let p = p * r + 0.5;
    let p = p * r * r + r + 1.0;
    // k is in [-126, 127] after the clamp: k + 127 in [1, 254], a normal exponent.
    let biased = (k + (127.0 + MAGIC))
        .to_bits()
        .wrapping_sub(MAGIC.to_bits());
    p * f32::from_bits(biased << 23)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_matches_std_within_a_few_ulps() {
        let mut x = -87.0f32;
        while x < 88.0 {
            let (got, want) = (exp(x), x.exp());
            assert!(
                ((got - want) / want).abs() < 4.0 * f32::EPSILON,
                "exp({x}) = {got}, std {want}"
            );
            x += 0.013;
        }
    }

    #[test]
    fn mish_matches_darknet_within_a_few_ulps() {
        let mut x = -40.0f32;
        while x < 40.0 {
            let (got, want) = (mish(x), Activation::Mish.apply(x));
            let scale = want.abs().max(1e-30);
            assert!(
                (got - want).abs() / scale < 8.0 * f32::EPSILON || (got - want).abs() < 1e-7,
                "mish({x}) = {got}, Darknet {want}"
            );
            x += 0.0037;
        }
    }
}
