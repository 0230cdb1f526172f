//! [`MotionConfig`]: the pixel pipeline's parameters, their defaults and
//! their ranges.

use serde::{Deserialize, Serialize};

use super::error::MotionError;

/// Parameters of the pixel pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MotionConfig {
    /// Width of the work image (frames are area-averaged down to it; never up).
    pub work_width: u32,
    /// Height of the work image.
    pub work_height: u32,
    /// Box blur radius in work pixels (0 = no blur, max 8).
    pub blur_radius: u32,
    /// Background learning rate `a` in `B = (1 - a) B + a I` (quantised to 1/256).
    pub alpha: f32,
    /// A work pixel changed when its difference exceeds this many gray levels.
    pub threshold: u8,
    /// Motion when at least this fraction of work pixels changed.
    pub min_area: f32,
    /// Subtract the frame's mean difference first, so that global lighting
    /// changes (clouds, auto exposure) are not motion.
    pub compensate_lighting: bool,
}

impl Default for MotionConfig {
    fn default() -> Self {
        MotionConfig {
            work_width: 160,
            work_height: 90,
            blur_radius: 1,
            alpha: 0.05,
            threshold: 25,
            min_area: 0.005,
            compensate_lighting: true,
        }
    }
}

impl MotionConfig {
    /// Checks every parameter's range.
    pub fn validate(&self) -> Result<(), MotionError> {
        let bad = |field, reason: &str| {
            Err(MotionError::InvalidConfig {
                field,
                reason: reason.to_owned(),
            })
        };
        if !(1..=4096).contains(&self.work_width) {
            return bad("work_width", "must be within 1..=4096");
        }
        if !(1..=4096).contains(&self.work_height) {
            return bad("work_height", "must be within 1..=4096");
        }
        if self.blur_radius > 8 {
            return bad("blur_radius", "must be at most 8");
        }
        if !(self.alpha > 0.0 && self.alpha <= 1.0) {
            return bad("alpha", "must be within (0, 1]");
        }
        if !(self.min_area > 0.0 && self.min_area <= 1.0) {
            return bad("min_area", "must be within (0, 1]");
        }
        Ok(())
    }

    /// `alpha` in 1/256 units, at least 1.
    pub(crate) fn alpha_q8(&self) -> i32 {
        ((self.alpha * 256.0).round() as i32).clamp(1, 256)
    }
}
