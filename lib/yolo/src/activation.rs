//! Darknet activations, as `activation=` names them in a cfg.

use candle_core::{CpuStorage, CustomOp1, Device, Layout, Shape, Tensor};
use rayon::prelude::*;

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
    /// Applies the activation to a tensor on any device.
    ///
    /// On the CPU this runs [`Activation::apply`] element by element (exactly
    /// Darknet's functions, in parallel); on other devices it is composed from
    /// candle tensor ops with the same thresholds.
    pub fn forward(self, x: &Tensor) -> candle_core::Result<Tensor> {
        if self == Activation::Linear {
            return Ok(x.clone());
        }
        if matches!(x.device(), Device::Cpu) && x.dtype() == candle_core::DType::F32 {
            return x.contiguous()?.apply_op1_no_bwd(&ActivationOp(self));
        }
        match self {
            Activation::Linear => Ok(x.clone()),
            Activation::Leaky => x.maximum(&(x * 0.1)?),
            Activation::Logistic => candle_nn::ops::sigmoid(x),
            Activation::Mish => {
                // softplus with Darknet's threshold: x above 20, exp(x) below -20.
                let exp = x.exp()?;
                let middle = (&exp + 1.0)?.log()?;
                let high = x.gt(20.0)?;
                let low = x.lt(-20.0)?;
                let softplus = high.where_cond(x, &low.where_cond(&exp, &middle)?)?;
                x * softplus.tanh()?
            }
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
}
