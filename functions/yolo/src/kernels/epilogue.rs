//! The fused output pass: bias plus activation, applied while the GEMM result
//! is copied into the `(N, O, H, W)` output.

use crate::activation::Activation;

/// `dst[i] = act(src[i] + bias)` for every element.
///
/// The activation is matched once per call, so each arm is a straight loop the
/// compiler vectorises (Leaky/Linear) or at least keeps free of branches on
/// the activation kind.
#[inline]
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
        Activation::Mish | Activation::Logistic => {
            for (d, s) in dst.iter_mut().zip(src) {
                *d = activation.apply(s + bias);
            }
        }
    }
}
