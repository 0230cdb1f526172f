//! `[shortcut]`: element-wise sum of the previous output and earlier outputs.

use candle_core::{Module, Tensor};

use crate::activation::Activation;
use crate::darknet::cfg::ShortcutConfig;
use crate::kernels::KernelChoice;

/// A residual sum. It takes several inputs, so besides [`Module`] (which only
/// applies the activation) it offers [`Shortcut::forward_many`].
#[derive(Debug, Clone)]
pub struct Shortcut {
    activation: Activation,
}

impl Shortcut {
    /// Builds the layer from its cfg section.
    pub fn load(cfg: &ShortcutConfig) -> Shortcut {
        Shortcut {
            activation: cfg.activation,
        }
    }

    /// Sums the inputs (previous output first) and applies the activation.
    pub fn forward_many(&self, inputs: &[&Tensor]) -> candle_core::Result<Tensor> {
        self.forward_many_with(inputs, KernelChoice::Native)
    }

    /// [`Shortcut::forward_many`] with the activation's implementation chosen
    /// (the sum is a tensor op on every device).
    pub fn forward_many_with(
        &self,
        inputs: &[&Tensor],
        kernels: KernelChoice,
    ) -> candle_core::Result<Tensor> {
        let Some((first, rest)) = inputs.split_first() else {
            candle_core::bail!("shortcut without inputs");
        };
        let mut sum = (*first).clone();
        for x in rest {
            sum = (&sum + *x)?;
        }
        self.activation.forward_with(&sum, kernels)
    }
}

impl Module for Shortcut {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        self.forward_many(&[x])
    }
}
