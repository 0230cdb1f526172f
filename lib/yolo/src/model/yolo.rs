//! `[yolo]`: a detection head. At inference it passes its input through; the
//! decoding lives in [`crate::postprocess`], driven by [`YoloHead::layout`].

use candle_core::{Module, Tensor};

use crate::darknet::cfg::YoloConfig;
use crate::postprocess::HeadLayout;

/// A detection head.
#[derive(Debug, Clone)]
pub struct YoloHead {
    layout: HeadLayout,
}

impl YoloHead {
    /// Builds the head from its cfg section.
    pub fn load(cfg: &YoloConfig) -> YoloHead {
        YoloHead {
            layout: HeadLayout {
                anchors: cfg.masked_anchors(),
                classes: cfg.classes,
                scale_x_y: cfg.scale_x_y,
                new_coords: cfg.new_coords,
            },
        }
    }

    /// What the decoder needs to turn this head's logits into boxes.
    pub fn layout(&self) -> &HeadLayout {
        &self.layout
    }
}

impl Module for YoloHead {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        Ok(x.clone())
    }
}
