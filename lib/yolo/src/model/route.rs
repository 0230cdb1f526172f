//! `[route]`: channel concatenation of earlier outputs, optionally one channel group of each.

use candle_core::{Module, Tensor};

use crate::darknet::cfg::RouteConfig;

/// A route layer. It takes several inputs, so besides [`Module`] (single input)
/// it offers [`Route::forward_many`].
#[derive(Debug, Clone)]
pub struct Route {
    groups: usize,
    group_id: usize,
}

impl Route {
    /// Builds the layer from its cfg section.
    pub fn load(cfg: &RouteConfig) -> Route {
        Route {
            groups: cfg.groups,
            group_id: cfg.group_id,
        }
    }

    /// Channel group `group_id` of `x` (all of it when `groups == 1`).
    fn slice(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        if self.groups == 1 {
            return Ok(x.clone());
        }
        let part = x.dim(1)? / self.groups;
        x.narrow(1, self.group_id * part, part)
    }

    /// Concatenates the selected channel group of every input, in order.
    pub fn forward_many(&self, inputs: &[&Tensor]) -> candle_core::Result<Tensor> {
        let parts = inputs
            .iter()
            .map(|x| self.slice(x))
            .collect::<candle_core::Result<Vec<_>>>()?;
        match parts.as_slice() {
            [] => candle_core::bail!("route without inputs"),
            [one] => Ok(one.clone()),
            many => Tensor::cat(many, 1),
        }
    }
}

impl Module for Route {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        self.forward_many(&[x])
    }
}
