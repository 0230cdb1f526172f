//! Hiding people in camera images: each person's box is pixelated so that
//! faces cannot be recognised.
//!
//! The detector does it at the source, on every snapshot before it leaves the
//! process ([`pixelate_boxes`] on the decoded frame); the public-facing
//! functions do it again on the JPEG they post ([`hide_people`]), as defence
//! in depth for events from other producers.

use std::io::Cursor;

use image::codecs::jpeg::JpegEncoder;
use image::{ImageFormat, ImageReader, Limits, RgbImage};
use safecity_events::{BoundingBox, Detection, FrameSize};

/// Largest snapshot side accepted, in pixels (decompression-bomb guard).
pub const MAX_SIDE: u32 = 8192;

/// Why a snapshot could not be processed.
#[derive(Debug, thiserror::Error)]
pub enum PrivacyError {
    /// Not a decodable JPEG, or larger than the limits.
    #[error("snapshot is not a usable JPEG: {0}")]
    Decode(#[from] image::ImageError),
    /// Reading the bytes failed.
    #[error("snapshot could not be read: {0}")]
    Io(#[from] std::io::Error),
}

/// Pixelates the inside of every box whose class is in `classes` (e.g.
/// `person`) so faces cannot be recognised, and re-encodes the JPEG.
///
/// Boxes are in pixels of the analysed frame (`frame`); the snapshot may be a
/// downscaled copy and the boxes are scaled to it.
pub fn hide_people(
    jpeg: &[u8],
    frame: FrameSize,
    detections: &[Detection],
    classes: &[&str],
) -> Result<Vec<u8>, PrivacyError> {
    let mut reader = ImageReader::with_format(Cursor::new(jpeg), ImageFormat::Jpeg);
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(256 * 1024 * 1024);
    reader.limits(limits);
    let mut image = reader.decode()?.to_rgb8();
    let boxes: Vec<BoundingBox> = detections
        .iter()
        .filter(|d| classes.contains(&d.class.as_str()))
        .map(|d| d.bounding_box)
        .collect();
    pixelate_boxes(&mut image, frame, &boxes);
    let mut out = Vec::new();
    encode_rgb_jpeg(image.as_raw(), image.width(), image.height(), &mut out)?;
    Ok(out)
}

/// Encodes packed RGB pixels as a quality-85 JPEG (snapshots, test scenes).
pub fn encode_rgb_jpeg(
    rgb: &[u8],
    width: u32,
    height: u32,
    out: &mut Vec<u8>,
) -> Result<(), PrivacyError> {
    JpegEncoder::new_with_quality(out, 85).encode(
        rgb,
        width,
        height,
        image::ExtendedColorType::Rgb8,
    )?;
    Ok(())
}

/// Pixelates every box of `boxes`, given in pixels of a `frame`-sized image,
/// in `image` (the frame itself or a scaled copy: boxes are scaled to it and
/// rounded outwards, so no pixel of a box escapes).
pub fn pixelate_boxes(image: &mut RgbImage, frame: FrameSize, boxes: &[BoundingBox]) {
    let scale_x = image.width() as f32 / frame.width.max(1) as f32;
    let scale_y = image.height() as f32 / frame.height.max(1) as f32;
    for b in boxes {
        pixelate(
            image,
            (b.x * scale_x).floor().max(0.0) as u32,
            (b.y * scale_y).floor().max(0.0) as u32,
            ((b.x + b.width) * scale_x).ceil().max(0.0) as u32,
            ((b.y + b.height) * scale_y).ceil().max(0.0) as u32,
        );
    }
}

/// The side of the pixelation blocks of a `width` x `height` box: an eighth
/// of its shorter side, at least 6 px.
pub fn block_side(width: u32, height: u32) -> u32 {
    (width.min(height) / 8).max(6)
}

/// Replaces each block inside the rectangle `x0..x1` x `y0..y1` (clipped to
/// the image) by its mean colour. Blocks are [`block_side`] pixels, from the
/// rectangle's top-left corner: coarse enough to hide a face.
pub fn pixelate(image: &mut RgbImage, x0: u32, y0: u32, x1: u32, y1: u32) {
    let (x1, y1) = (x1.min(image.width()), y1.min(image.height()));
    if x0 >= x1 || y0 >= y1 {
        return;
    }
    let block = block_side(x1 - x0, y1 - y0);
    let mut by = y0;
    while by < y1 {
        let ey = (by + block).min(y1);
        let mut bx = x0;
        while bx < x1 {
            let ex = (bx + block).min(x1);
            let mut sum = [0u64; 3];
            for y in by..ey {
                for x in bx..ex {
                    let p = image.get_pixel(x, y).0;
                    for c in 0..3 {
                        sum[c] += u64::from(p[c]);
                    }
                }
            }
            let n = u64::from((ex - bx) * (ey - by));
            let mean = image::Rgb([(sum[0] / n) as u8, (sum[1] / n) as u8, (sum[2] / n) as u8]);
            for y in by..ey {
                for x in bx..ex {
                    image.put_pixel(x, y, mean);
                }
            }
            bx = ex;
        }
        by = ey;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use safecity_events::BoundingBox;

    fn checkerboard(width: u32, height: u32) -> Vec<u8> {
        let image = RgbImage::from_fn(width, height, |x, y| {
            if (x / 2 + y / 2) % 2 == 0 {
                image::Rgb([250, 250, 250])
            } else {
                image::Rgb([5, 5, 5])
            }
        });
        let mut out = Vec::new();
        JpegEncoder::new_with_quality(&mut out, 95)
            .encode_image(&image)
            .expect("encode");
        out
    }

    fn variance(image: &RgbImage, x0: u32, y0: u32, x1: u32, y1: u32) -> f64 {
        let values: Vec<f64> = (y0..y1)
            .flat_map(|y| (x0..x1).map(move |x| (x, y)))
            .map(|(x, y)| f64::from(image.get_pixel(x, y).0[0]))
            .collect();
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / values.len() as f64
    }

    #[test]
    fn people_are_pixelated_and_the_rest_is_kept() {
        // The snapshot is half the frame's size: boxes scale down by 2.
        let snapshot = checkerboard(160, 90);
        let person = Detection {
            class: "person".into(),
            confidence: 0.9,
            bounding_box: BoundingBox {
                x: 40.0,
                y: 40.0,
                width: 96.0,
                height: 96.0,
            },
        };
        let knife = Detection {
            class: "knife".into(),
            ..person.clone()
        };
        let frame = FrameSize {
            width: 320,
            height: 180,
        };
        let out = hide_people(&snapshot, frame, &[person, knife], &["person"]).expect("hidden");
        let before = image::load_from_memory(&snapshot)
            .expect("decode")
            .to_rgb8();
        let after = image::load_from_memory(&out).expect("decode").to_rgb8();
        assert_eq!(after.dimensions(), (160, 90));
        // Inside the person's box (20..68 in snapshot pixels) the pattern is gone.
        let inside_before = variance(&before, 22, 22, 66, 66);
        let inside_after = variance(&after, 22, 22, 66, 66);
        assert!(
            inside_after < inside_before / 10.0,
            "{inside_before} -> {inside_after}"
        );
        // Outside it, the checkerboard survives.
        let outside_after = variance(&after, 100, 10, 150, 80);
        assert!(outside_after > inside_before / 2.0, "{outside_after}");
    }

    #[test]
    fn every_block_of_a_box_is_one_colour_and_pixels_outside_are_untouched() {
        let mut image =
            RgbImage::from_fn(64, 48, |x, y| image::Rgb([(x * 4) as u8, (y * 5) as u8, 9]));
        let before = image.clone();
        // A box of 30x20 frame pixels in a frame twice the image's size.
        let frame = FrameSize {
            width: 128,
            height: 96,
        };
        let b = BoundingBox {
            x: 21.0,
            y: 11.0,
            width: 30.0,
            height: 20.0,
        };
        pixelate_boxes(&mut image, frame, &[b]);
        // Scaled and rounded outwards: x 10..26, y 5..16; blocks of 6 px.
        let side = block_side(16, 11);
        assert_eq!(side, 6);
        for by in (5..16).step_by(6) {
            for bx in (10..26).step_by(6) {
                let first = image.get_pixel(bx, by);
                for y in by..(by + 6).min(16) {
                    for x in bx..(bx + 6).min(26) {
                        assert_eq!(image.get_pixel(x, y), first, "block at {bx},{by}");
                    }
                }
            }
        }
        for (x, y, p) in image.enumerate_pixels() {
            if !(10..26).contains(&x) || !(5..16).contains(&y) {
                assert_eq!(p, before.get_pixel(x, y), "outside the box at {x},{y}");
            }
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let frame = FrameSize {
            width: 10,
            height: 10,
        };
        assert!(hide_people(b"\xff\xd8 not really", frame, &[], &["person"]).is_err());
    }
}
