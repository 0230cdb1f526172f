//! Scripted, deterministic camera scenes for the CCTV simulator.
//!
//! Frame `n` of a scene depends only on its [`SceneSpec`] and `n`: a still
//! background (procedural street or a real photo, optionally panned), sensor
//! noise, a slow global lighting drift, and objects that enter, move and leave
//! (solid boxes or sprites cut from a photo).

use std::path::{Path, PathBuf};

use image::{ImageFormat, RgbImage, imageops};
use serde::{Deserialize, Serialize};

/// Errors building or rendering a scene.
#[derive(Debug, thiserror::Error)]
pub enum SceneError {
    /// A parameter is out of range.
    #[error("scene parameter `{field}` {reason}")]
    InvalidSpec {
        /// The parameter's name.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A photo could not be read or decoded.
    #[error("scene photo `{path}`: {source}")]
    Photo {
        /// The photo's path.
        path: PathBuf,
        /// Why.
        #[source]
        source: image::ImageError,
    },
    /// JPEG encoding failed.
    #[error("encoding frame {frame} as JPEG: {source}")]
    Encode {
        /// Frame index.
        frame: u64,
        /// Why.
        #[source]
        source: image::ImageError,
    },
}

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

/// A scene ready to render frames.
#[derive(Debug, Clone)]
pub struct Scene {
    spec: SceneSpec,
    /// Background canvas: `canvas_width x height` RGB (wider than the frame when panning).
    canvas: Vec<u8>,
    canvas_width: u32,
    /// Pan speed (px/frame) and the frames it moves in: `from..until`.
    pan: (f32, u64, u64),
    sprites: Vec<Option<RgbImage>>,
}

impl Scene {
    /// Loads photos and draws the background.
    pub fn new(spec: SceneSpec) -> Result<Self, SceneError> {
        spec.validate()?;
        let (w, h) = (spec.width, spec.height);
        let (canvas, canvas_width, pan) = match &spec.background {
            Background::Street => (street(w, h, spec.seed), w, (0.0, 0, 0)),
            Background::Flat { level } => (vec![*level; (w * h * 3) as usize], w, (0.0, 0, 0)),
            Background::Photo {
                path,
                pan_px_per_frame,
                pan_from,
                pan_until,
            } => {
                let photo = load_photo(path)?;
                let canvas_width = if *pan_px_per_frame > 0.0 {
                    w + w / 4
                } else {
                    w
                };
                let cover = cover(&photo, canvas_width, h);
                let pan = (*pan_px_per_frame, *pan_from, pan_until.unwrap_or(u64::MAX));
                (cover.into_raw(), canvas_width, pan)
            }
        };
        let sprites = spec
            .objects
            .iter()
            .map(|o| {
                o.sprite
                    .as_ref()
                    .map(|p| {
                        load_photo(p).map(|img| {
                            imageops::resize(
                                &img,
                                o.width.max(1),
                                o.height.max(1),
                                imageops::FilterType::Triangle,
                            )
                        })
                    })
                    .transpose()
            })
            .collect::<Result<_, _>>()?;
        Ok(Scene {
            spec,
            canvas,
            canvas_width,
            pan,
            sprites,
        })
    }

    /// The specification.
    pub fn spec(&self) -> &SceneSpec {
        &self.spec
    }

    /// Renders frame `n` as packed RGB.
    pub fn render(&self, n: u64) -> RgbImage {
        let (w, h) = (self.spec.width as usize, self.spec.height as usize);
        let cw = self.canvas_width as usize;
        let (speed, from, until) = self.pan;
        let x_off = if speed > 0.0 && n > from {
            let range = (cw - w) as f32;
            let moved = n.min(until) - from;
            let travel = (speed * moved as f32) % (2.0 * range);
            (if travel > range {
                2.0 * range - travel
            } else {
                travel
            }) as usize
        } else {
            0
        };
        let light = self.spec.drift.map_or(0.0, |d| {
            d.amplitude
                * (2.0 * std::f32::consts::PI * (n % u64::from(d.period_frames)) as f32
                    / d.period_frames as f32)
                    .sin()
        });
        let light = light.round() as i32;
        let noise = i32::from(self.spec.noise);
        let mut rng = SplitMix::new(self.spec.seed ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let mut out = vec![0u8; w * h * 3];
        for y in 0..h {
            let src = &self.canvas[(y * cw + x_off) * 3..(y * cw + x_off + w) * 3];
            let dst = &mut out[y * w * 3..(y + 1) * w * 3];
            let mut bits = 0u64;
            for (i, (d, s)) in dst.chunks_exact_mut(3).zip(src.chunks_exact(3)).enumerate() {
                if i % 4 == 0 {
                    bits = rng.next();
                }
                let delta = if noise > 0 {
                    // Triangular noise: sum of two uniforms in 0..=noise, centred.
                    let a = ((bits & 0xFF) as i32 * (noise + 1)) >> 8;
                    let b = (((bits >> 8) & 0xFF) as i32 * (noise + 1)) >> 8;
                    bits >>= 16;
                    a + b - noise
                } else {
                    0
                } + light;
                for c in 0..3 {
                    d[c] = (i32::from(s[c]) + delta).clamp(0, 255) as u8;
                }
            }
        }
        let mut frame = RgbImage::from_raw(w as u32, h as u32, out).expect("sized buffer");
        for (object, sprite) in self.spec.objects.iter().zip(&self.sprites) {
            if n < object.enter || object.leave.is_some_and(|leave| n >= leave) {
                continue;
            }
            let t = (n - object.enter) as f32;
            let x = (object.x + object.vx * t).round() as i64;
            let y = (object.y + object.vy * t).round() as i64;
            draw(&mut frame, object, sprite.as_ref(), x, y);
        }
        frame
    }

    /// Whether frame `n` is scripted to be corrupt.
    pub fn is_corrupt(&self, n: u64) -> bool {
        self.spec.corrupt_frames.contains(&n)
    }

    /// Frame `n` as JPEG bytes (scrambled garbage for scripted corrupt frames).
    pub fn jpeg(&self, n: u64) -> Result<Vec<u8>, SceneError> {
        let frame = self.render(n);
        let mut bytes = encode_jpeg(&frame, self.spec.quality)
            .map_err(|source| SceneError::Encode { frame: n, source })?;
        if self.is_corrupt(n) {
            corrupt(&mut bytes, self.spec.seed ^ n);
        }
        Ok(bytes)
    }
}

/// Encodes an RGB image as baseline JPEG.
pub fn encode_jpeg(image: &RgbImage, quality: u8) -> Result<Vec<u8>, image::ImageError> {
    let mut bytes = Vec::with_capacity(image.as_raw().len() / 8);
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, quality).encode_image(image)?;
    Ok(bytes)
}

/// Keeps the JPEG start marker but scrambles and truncates the rest, the way a
/// broken camera or a lossy link does: decoders must reject it.
pub fn corrupt(bytes: &mut Vec<u8>, seed: u64) {
    let mut rng = SplitMix::new(seed);
    let keep = (bytes.len() / 3).max(4);
    bytes.truncate(keep);
    for b in bytes.iter_mut().skip(2) {
        // Never 0xFF: no marker survives, so no decoder can find a picture in it.
        *b = (rng.next() & 0x7F) as u8;
    }
}

fn draw(frame: &mut RgbImage, object: &SceneObject, sprite: Option<&RgbImage>, x: i64, y: i64) {
    let (fw, fh) = (i64::from(frame.width()), i64::from(frame.height()));
    for dy in 0..i64::from(object.height) {
        let py = y + dy;
        if py < 0 || py >= fh {
            continue;
        }
        for dx in 0..i64::from(object.width) {
            let px = x + dx;
            if px < 0 || px >= fw {
                continue;
            }
            let color = match sprite {
                Some(s) => s.get_pixel(dx as u32, dy as u32).0,
                None => object.color,
            };
            frame.put_pixel(px as u32, py as u32, image::Rgb(color));
        }
    }
}

fn load_photo(path: &Path) -> Result<RgbImage, SceneError> {
    let format = ImageFormat::from_path(path).unwrap_or(ImageFormat::Jpeg);
    std::fs::read(path)
        .map_err(image::ImageError::IoError)
        .and_then(|bytes| image::load_from_memory_with_format(&bytes, format))
        .map(|img| img.to_rgb8())
        .map_err(|source| SceneError::Photo {
            path: path.to_owned(),
            source,
        })
}

/// Scales `photo` to cover `w x h` and crops the centre.
fn cover(photo: &RgbImage, w: u32, h: u32) -> RgbImage {
    let scale =
        (f64::from(w) / f64::from(photo.width())).max(f64::from(h) / f64::from(photo.height()));
    let sw = ((f64::from(photo.width()) * scale).ceil() as u32).max(w);
    let sh = ((f64::from(photo.height()) * scale).ceil() as u32).max(h);
    let scaled = imageops::resize(photo, sw, sh, imageops::FilterType::Triangle);
    imageops::crop_imm(&scaled, (sw - w) / 2, (sh - h) / 2, w, h).to_image()
}

/// A procedural street: sky gradient, buildings with lit windows, a road with lane marks.
fn street(w: u32, h: u32, seed: u64) -> Vec<u8> {
    let (w, h) = (w as usize, h as usize);
    let mut rng = SplitMix::new(seed.wrapping_add(0x5EED));
    let mut img = vec![0u8; w * h * 3];
    let horizon = h * 11 / 20;
    let set = |img: &mut [u8], x: usize, y: usize, c: [u8; 3]| {
        img[(y * w + x) * 3..(y * w + x) * 3 + 3].copy_from_slice(&c);
    };
    for y in 0..h {
        for x in 0..w {
            let c = if y < horizon {
                let t = (y * 80 / horizon.max(1)) as u8;
                [120 + t / 2, 150 + t / 2, 200 - t / 4]
            } else {
                let t = ((y - horizon) * 40 / (h - horizon).max(1)) as u8;
                [70 + t, 70 + t, 75 + t]
            };
            set(&mut img, x, y, c);
        }
    }
    // Buildings.
    let mut x = 0usize;
    while x < w {
        let bw = w / 16 + (rng.next() as usize % (w / 8 + 1));
        let top = horizon.saturating_sub(h / 8 + rng.next() as usize % (h * 2 / 5 + 1));
        let shade = 60 + (rng.next() % 90) as u8;
        for y in top..horizon {
            for xx in x..(x + bw).min(w) {
                let window = (xx - x) % 10 > 3 && (xx - x) % 10 < 8 && (y - top) % 12 > 4;
                let c = if window {
                    if (xx / 10 + y / 12 + seed as usize).is_multiple_of(3) {
                        [230, 210, 140]
                    } else {
                        [40, 50, 70]
                    }
                } else {
                    [shade, shade - shade / 8, shade - shade / 5]
                };
                set(&mut img, xx, y, c);
            }
        }
        x += bw + 2;
    }
    // Lane marks.
    let lane = horizon + (h - horizon) / 2;
    for y in lane..(lane + 3).min(h) {
        for x in 0..w {
            if (x / 24) % 2 == 0 {
                set(&mut img, x, y, [230, 230, 220]);
            }
        }
    }
    img
}

/// SplitMix64: tiny, fast, and plenty for deterministic noise.
#[derive(Debug, Clone)]
pub struct SplitMix(u64);

impl SplitMix {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Self {
        SplitMix(seed)
    }

    /// The next 64 random bits.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> SceneSpec {
        SceneSpec {
            width: 64,
            height: 32,
            noise: 6,
            ..SceneSpec::default()
        }
    }

    #[test]
    fn frames_are_deterministic_and_noisy() {
        let scene = Scene::new(spec()).expect("scene");
        assert_eq!(scene.render(7), scene.render(7));
        assert_ne!(scene.render(7), scene.render(8));
        let a = scene.render(1);
        let b = scene.render(2);
        let max_diff = a
            .as_raw()
            .iter()
            .zip(b.as_raw())
            .map(|(x, y)| x.abs_diff(*y))
            .max()
            .expect("pixels");
        assert!(max_diff <= 12, "noise stays within +-6: {max_diff}");
    }

    #[test]
    fn objects_move_and_leave() {
        let mut s = spec();
        s.noise = 0;
        s.background = Background::Flat { level: 0 };
        s.objects.push(SceneObject {
            enter: 2,
            leave: Some(5),
            x: 0.0,
            y: 0.0,
            vx: 10.0,
            vy: 0.0,
            width: 4,
            height: 4,
            color: [255, 255, 255],
            sprite: None,
        });
        let scene = Scene::new(s).expect("scene");
        assert_eq!(scene.render(1).get_pixel(0, 0).0, [0, 0, 0]);
        assert_eq!(scene.render(2).get_pixel(0, 0).0, [255, 255, 255]);
        assert_eq!(scene.render(3).get_pixel(10, 0).0, [255, 255, 255]);
        assert_eq!(scene.render(3).get_pixel(0, 0).0, [0, 0, 0]);
        assert_eq!(scene.render(5).get_pixel(30, 0).0, [0, 0, 0]);
    }

    #[test]
    fn a_pan_moves_the_view_only_within_its_frames() {
        // A horizontal ramp as the "photo": the view's left column tells the offset.
        let dir = std::env::temp_dir().join(format!("safecity-pan-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("ramp.png");
        let ramp = RgbImage::from_fn(80, 32, |x, _| image::Rgb([x as u8 * 3; 3]));
        ramp.save(&path).expect("ramp written");
        let mut s = spec();
        s.noise = 0;
        s.background = Background::Photo {
            path,
            pan_px_per_frame: 2.0,
            pan_from: 3,
            pan_until: Some(6),
        };
        let scene = Scene::new(s).expect("scene");
        let left = |n| scene.render(n).get_pixel(0, 0).0[0];
        // Canvas 80 wide (64 + 64 / 4): the ramp is drawn 1:1.
        assert_eq!([left(0), left(3)], [0, 0], "still before the pan");
        assert_eq!([left(4), left(5), left(6)], [6, 12, 18], "2 px a frame");
        assert_eq!([left(7), left(50)], [18, 18], "still after it");
        let _ = std::fs::remove_dir_all(&dir);
        let mut bad = spec();
        bad.background = Background::Photo {
            path: "x.jpg".into(),
            pan_px_per_frame: 1.0,
            pan_from: 5,
            pan_until: Some(5),
        };
        assert!(matches!(
            Scene::new(bad),
            Err(SceneError::InvalidSpec {
                field: "background.photo.pan_until",
                ..
            })
        ));
    }

    #[test]
    fn drift_shifts_every_pixel() {
        let mut s = spec();
        s.noise = 0;
        s.background = Background::Flat { level: 100 };
        s.drift = Some(Drift {
            amplitude: 20.0,
            period_frames: 40,
        });
        let scene = Scene::new(s).expect("scene");
        assert_eq!(scene.render(0).get_pixel(3, 3).0, [100; 3]);
        assert_eq!(scene.render(10).get_pixel(3, 3).0, [120; 3]);
        assert_eq!(scene.render(30).get_pixel(3, 3).0, [80; 3]);
    }

    #[test]
    fn corrupt_frames_do_not_decode() {
        let mut s = spec();
        s.corrupt_frames = vec![3];
        let scene = Scene::new(s).expect("scene");
        let good = scene.jpeg(2).expect("jpeg");
        assert!(image::load_from_memory_with_format(&good, ImageFormat::Jpeg).is_ok());
        let bad = scene.jpeg(3).expect("jpeg");
        assert!(bad.starts_with(&[0xFF, 0xD8]));
        assert!(image::load_from_memory_with_format(&bad, ImageFormat::Jpeg).is_err());
    }
}
