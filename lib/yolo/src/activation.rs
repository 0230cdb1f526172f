//! Darknet activations, as `activation=` names them in a cfg.

use candle_core::{CpuStorage, CustomOp1, Device, Layout, Shape, Tensor};
use rayon::prelude::*;

use crate::kernels::KernelChoice;

/// The activation that follows a convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Activation {
    /// `linear`: the identity.
    Linear,
    /// `leaky`: `x` for `x > 0`, else `0.1 * x`.
    Leaky,
    /// `mish`: `x * tanh(softplus(x))`, softplus with Darknet's threshold of 20.
    Mish,
    /// `logistic`: the sigmoid.
    Logistic,
}

impl Activation {
    /// Parses a cfg `activation=` value; `None` for names Darknet inference cannot run here.
    pub fn from_cfg(name: &str) -> Option<Self> {
        match name {
            "linear" => Some(Activation::Linear),
            "leaky" => Some(Activation::Leaky),
            "mish" => Some(Activation::Mish),
            "logistic" => Some(Activation::Logistic),
            _ => None,
        }
    }

    /// Applies the activation to one value, exactly as Darknet does.
    #[inline]
    pub fn apply(self, x: f32) -> f32 {
        match self {
            Activation::Linear => x,
            Activation::Leaky => {
                if x > 0.0 {
                    x
                } else {
                    0.1 * x
                }
            }
            Activation::Mish => x * softplus(x).tanh(),
            Activation::Logistic => 1.0 / (1.0 + (-x).exp()),
        }
    }
}

impl Activation {
    /// Applies the activation to a tensor on any device:
    /// [`Activation::forward_with`] with [`KernelChoice::Native`].
    pub fn forward(self, x: &Tensor) -> candle_core::Result<Tensor> {
        self.forward_with(x, KernelChoice::Native)
    }

    /// Applies the activation with the chosen implementation: with
    /// [`KernelChoice::Native`] an f32 CPU tensor runs [`Activation::apply`]
    /// element by element (exactly Darknet's functions, in parallel); anything
    /// else runs [`Activation::forward_portable`].
    pub fn forward_with(self, x: &Tensor, kernels: KernelChoice) -> candle_core::Result<Tensor> {
        if self == Activation::Linear {
            return Ok(x.clone());
        }
        if kernels == KernelChoice::Native
            && matches!(x.device(), Device::Cpu)
            && x.dtype() == candle_core::DType::F32
        {
            return x.contiguous()?.apply_op1_no_bwd(&ActivationOp(self));
        }
        self.forward_portable(x)
    }

    /// The activation composed from candle tensor ops, which have kernels on
    /// every device (CUDA included) and for every float dtype.
    ///
    /// Leaky and logistic compute what [`Activation::apply`] does. Mish is
    /// `x * tanh(ln(exp(x) + 1))`, five element-wise kernels: above Darknet's
    /// softplus threshold (20) `ln(exp(x) + 1)` rounds to `x` in f32 and
    /// `exp` overflowing to infinity still gives `tanh = 1`, so the result is
    /// `x` as in Darknet; below -20 `exp(x) + 1` rounds to 1 and the result is
    /// 0 where Darknet gives `x * exp(x)`, under 5e-8 in magnitude. In
    /// between, `ln(1 + e)` instead of `ln_1p(e)` differs by at most half an
    /// ulp of 1 in the softplus.
    pub fn forward_portable(self, x: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Activation::Linear => Ok(x.clone()),
            Activation::Leaky => x.maximum(&(x * 0.1)?),
            Activation::Logistic => candle_nn::ops::sigmoid(x),
            Activation::Mish => x * (x.exp()? + 1.0)?.log()?.tanh()?,
        }
    }
}

/// [`Activation`] as a candle CPU op over contiguous f32 storage.
struct ActivationOp(Activation);

impl CustomOp1 for ActivationOp {
    fn name(&self) -> &'static str {
        "darknet-activation"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let CpuStorage::F32(data) = storage else {
            candle_core::bail!("darknet activation: only f32 is supported on the CPU");
        };
        let act = self.0;
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("darknet activation: the input must be contiguous");
        };
        let out: Vec<f32> = data[start..end].par_iter().map(|&v| act.apply(v)).collect();
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }
}

/// Darknet's softplus with threshold 20: `x` above 20, `exp(x)` below -20.
#[inline]
fn softplus(x: f32) -> f32 {
    const THRESHOLD: f32 = 20.0;
    if x > THRESHOLD {
        x
    } else if x < -THRESHOLD {
        x.exp()
    } else {
        x.exp().ln_1p()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activations_match_darknet_reference_values() {
        assert_eq!(Activation::Leaky.apply(2.0), 2.0);
        assert!((Activation::Leaky.apply(-2.0) + 0.2).abs() < 1e-7);
        // mish(1) = tanh(ln(1 + e)) = 0.865098...
        assert!((Activation::Mish.apply(1.0) - 0.865_098_4).abs() < 1e-6);
        // Above the softplus threshold mish is x * tanh(x) = x within f32.
        assert_eq!(Activation::Mish.apply(30.0), 30.0);
        assert!((Activation::Logistic.apply(0.0) - 0.5).abs() < 1e-7);
        assert_eq!(Activation::from_cfg("swish"), None);
    }

    #[test]
    fn tensor_forward_matches_scalar_apply() -> candle_core::Result<()> {
        let values = [-30.0f32, -21.0, -5.0, -0.5, 0.0, 0.5, 5.0, 21.0, 30.0];
        let x = Tensor::new(&values[..], &Device::Cpu)?;
        for act in [
            Activation::Linear,
            Activation::Leaky,
            Activation::Mish,
            Activation::Logistic,
        ] {
            let got = act.forward(&x)?.to_vec1::<f32>()?;
            let want: Vec<f32> = values.iter().map(|&v| act.apply(v)).collect();
            assert_eq!(got, want, "{act:?}");
        }
        Ok(())
    }

    #[test]
    fn the_portable_composition_matches_the_cpu_op() -> candle_core::Result<()> {
        // Every f32 from -100 to 100 in steps of 1/64, around both softplus
        // thresholds and far past exp's overflow.
        let values: Vec<f32> = (-6400..=6400).map(|i| i as f32 / 64.0).collect();
        let x = Tensor::new(&values[..], &Device::Cpu)?;
        for act in [
            Activation::Linear,
            Activation::Leaky,
            Activation::Mish,
            Activation::Logistic,
        ] {
            let native = act.forward(&x)?.to_vec1::<f32>()?;
            let portable = act.forward_portable(&x)?.to_vec1::<f32>()?;
            for ((v, n), p) in values.iter().zip(&native).zip(&portable) {
                assert!(p.is_finite(), "{act:?}({v}) = {p}");
                assert!(
                    (n - p).abs() <= 1e-6 * (1.0 + n.abs()),
                    "{act:?}({v}): native {n}, portable {p}"
                );
            }
        }
        Ok(())
    }
}
