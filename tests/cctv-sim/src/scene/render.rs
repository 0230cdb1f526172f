//! [`Scene`]: a spec with its photos loaded and background drawn, rendering
//! frame `n` (background, noise, drift, objects) and its JPEG.

use image::{RgbImage, imageops};

use super::background::{cover, load_photo, street};
use super::error::SceneError;
use super::jpeg::{corrupt, encode_jpeg};
use super::rng::SplitMix;
use super::spec::{Background, SceneObject, SceneSpec};

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
            if !object.visible(n) {
                continue;
            }
            let (x, y) = object.position(n);
            let (x, y) = (x.round() as i64, y.round() as i64);
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
