//! What a scene is: [`SceneSpec`] and its parts (background, lighting drift,
//! objects), as the registry file spells them, with their ranges.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::SceneError;

/// The still part of a scene.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Background {
    /// A procedural street (sky, buildings with windows, road), from the seed.
    Street,
    /// A flat gray level.
    Flat {
        /// Gray level.
        level: u8,
    },
    /// A real photo, scaled to cover the frame, optionally panned (the
    /// camera turning: the whole view moves).
    Photo {
        /// JPEG or PNG file (relative paths are relative to the registry file).
        path: PathBuf,
        /// Horizontal pan speed in pixels per frame (ping-pong over a quarter
        /// of the frame width); 0 = fixed.
        #[serde(default)]
        pan_px_per_frame: f32,
        /// First frame of the pan (the view is still before it).
        #[serde(default)]
        pan_from: u64,
        /// First frame after the pan: the view stays where it stopped (none:
        /// the camera pans for ever).
        #[serde(default)]
        pan_until: Option<u64>,
    },
}

/// Slow global lighting change: `amplitude * sin(2 pi n / period_frames)` gray levels.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Drift {
    /// Peak change in gray levels.
    pub amplitude: f32,
    /// Frames per full cycle.
    pub period_frames: u32,
}

/// An object crossing the scene.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SceneObject {
    /// First frame the object is drawn.
    pub enter: u64,
    /// First frame it is gone (none: until it leaves the picture).
    #[serde(default)]
    pub leave: Option<u64>,
    /// Top-left x at `enter` (may be off-picture, e.g. negative).
    pub x: f32,
    /// Top-left y at `enter`.
    pub y: f32,
    /// Horizontal speed in pixels per frame.
    #[serde(default)]
    pub vx: f32,
    /// Vertical speed in pixels per frame.
    #[serde(default)]
    pub vy: f32,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Fill colour (RGB) of a box.
    #[serde(default = "default_color")]
    pub color: [u8; 3],
    /// A photo pasted instead of the box (scaled to width x height).
    #[serde(default)]
    pub sprite: Option<PathBuf>,
    /// Blinking (a TV screen, a neon sign): drawn for `blink_frames` frames,
    /// hidden for the next `blink_frames`, and so on; 0 = steady.
    #[serde(default)]
    pub blink_frames: u32,
    /// From this frame on the object stands still where it got to (a car
    /// parking); none = it keeps moving.
    #[serde(default)]
    pub stop: Option<u64>,
}

impl Default for SceneObject {
    /// A 10x10 box of the default colour at the top-left, from frame 0, still.
    fn default() -> Self {
        SceneObject {
            enter: 0,
            leave: None,
            x: 0.0,
            y: 0.0,
            vx: 0.0,
            vy: 0.0,
            width: 10,
            height: 10,
            color: default_color(),
            sprite: None,
            blink_frames: 0,
            stop: None,
        }
    }
}

impl SceneObject {
    /// Whether the object is drawn in frame `n`.
    pub fn visible(&self, n: u64) -> bool {
        if n < self.enter || self.leave.is_some_and(|leave| n >= leave) {
            return false;
        }
        self.blink_frames == 0
            || ((n - self.enter) / u64::from(self.blink_frames)).is_multiple_of(2)
    }

    /// Top-left corner in frame `n` (unrounded), moving until `stop`.
    pub fn position(&self, n: u64) -> (f32, f32) {
        let moving_until = self.stop.map_or(n, |stop| n.min(stop));
        let t = moving_until.saturating_sub(self.enter) as f32;
        (self.x + self.vx * t, self.y + self.vy * t)
    }
}

fn default_color() -> [u8; 3] {
    [200, 40, 40]
}

/// A scripted camera scene.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SceneSpec {
    /// Frame width in pixels.
    pub width: u32,
    /// Frame height in pixels.
    pub height: u32,
    /// Frames per second the simulator serves.
    pub fps: f64,
    /// Seed of the noise and the procedural background.
    pub seed: u64,
    /// Sensor noise: each pixel gets a triangular noise within +-noise gray levels.
    pub noise: u8,
    /// Slow lighting drift, if any.
    pub drift: Option<Drift>,
    /// The still background.
    pub background: Background,
    /// Objects crossing the scene.
    pub objects: Vec<SceneObject>,
    /// Frames sent as corrupt JPEG (truncated and scrambled) instead.
    pub corrupt_frames: Vec<u64>,
    /// JPEG quality 1-100.
    pub quality: u8,
}

impl Default for SceneSpec {
    fn default() -> Self {
        SceneSpec {
            width: 640,
            height: 360,
            fps: 15.0,
            seed: 1,
            noise: 4,
            drift: None,
            background: Background::Street,
            objects: Vec::new(),
            corrupt_frames: Vec::new(),
            quality: 80,
        }
    }
}

impl SceneSpec {
    /// Checks ranges.
    pub fn validate(&self) -> Result<(), SceneError> {
        let bad = |field, reason: &str| {
            Err(SceneError::InvalidSpec {
                field,
                reason: reason.to_owned(),
            })
        };
        if !(16..=7680).contains(&self.width) {
            return bad("width", "must be within 16..=7680");
        }
        if !(16..=4320).contains(&self.height) {
            return bad("height", "must be within 16..=4320");
        }
        if !(self.fps > 0.0 && self.fps <= 1000.0) {
            return bad("fps", "must be within (0, 1000]");
        }
        if !(1..=100).contains(&self.quality) {
            return bad("quality", "must be within 1..=100");
        }
        if let Some(drift) = self.drift
            && drift.period_frames == 0
        {
            return bad("drift.period_frames", "must be at least 1");
        }
        if let Background::Photo {
            pan_px_per_frame,
            pan_from,
            pan_until,
            ..
        } = &self.background
        {
            if !(pan_px_per_frame.is_finite() && *pan_px_per_frame >= 0.0) {
                return bad("background.photo.pan_px_per_frame", "must be >= 0");
            }
            if pan_until.is_some_and(|until| until <= *pan_from) {
                return bad("background.photo.pan_until", "must be after pan_from");
            }
        }
        Ok(())
    }

    /// Resolves relative photo paths against `base` (the registry's folder).
    pub fn resolve_paths(&mut self, base: &Path) {
        if let Background::Photo { path, .. } = &mut self.background
            && path.is_relative()
        {
            *path = base.join(&*path);
        }
        for object in &mut self.objects {
            if let Some(sprite) = &mut object.sprite
                && sprite.is_relative()
            {
                *sprite = base.join(&*sprite);
            }
        }
    }
}
