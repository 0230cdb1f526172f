//! The still pictures behind a scene: photos (loaded, scaled to cover the
//! frame) and the procedural street.

use std::path::Path;

use image::{ImageFormat, RgbImage, imageops};

use super::error::SceneError;
use super::rng::SplitMix;

pub(crate) fn load_photo(path: &Path) -> Result<RgbImage, SceneError> {
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
pub(crate) fn cover(photo: &RgbImage, w: u32, h: u32) -> RgbImage {
    let scale =
        (f64::from(w) / f64::from(photo.width())).max(f64::from(h) / f64::from(photo.height()));
    let sw = ((f64::from(photo.width()) * scale).ceil() as u32).max(w);
    let sh = ((f64::from(photo.height()) * scale).ceil() as u32).max(h);
    let scaled = imageops::resize(photo, sw, sh, imageops::FilterType::Triangle);
    imageops::crop_imm(&scaled, (sw - w) / 2, (sh - h) / 2, w, h).to_image()
}

/// A procedural street: sky gradient, buildings with lit windows, a road with lane marks.
pub(crate) fn street(w: u32, h: u32, seed: u64) -> Vec<u8> {
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
