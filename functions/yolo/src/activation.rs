//! Darknet activations, as `activation=` names them in a cfg.

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
}
