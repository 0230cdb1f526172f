//! The event's snapshot: the frame scaled down to a maximum side, people
//! pixelated (privacy at the source), as JPEG.

use image::RgbImage;
use image::codecs::jpeg::JpegEncoder;
use image::imageops::FilterType;
use safecity_cameras::privacy::pixelate_boxes;
use safecity_events::{BoundingBox, FrameSize};

/// How snapshots are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotSettings {
    /// Longest side in pixels; larger frames are scaled down (aspect ratio kept).
    pub max_side: u32,
    /// JPEG quality, 1..=100.
    pub quality: u8,
}

/// A snapshot could not be encoded.
#[derive(Debug, thiserror::Error)]
#[error("encoding the snapshot as JPEG: {0}")]
pub struct SnapshotError(#[from] image::ImageError);

/// The size `width` x `height` scaled to fit `max_side` (never up, never to zero).
pub fn fitted_size(width: u32, height: u32, max_side: u32) -> (u32, u32) {
    let longest = width.max(height);
    if longest <= max_side || longest == 0 {
        return (width, height);
    }
    let scale = |side: u32| {
        let scaled =
            (u64::from(side) * u64::from(max_side) + u64::from(longest) / 2) / u64::from(longest);
        u32::try_from(scaled).unwrap_or(max_side).max(1)
    };
    (scale(width), scale(height))
}

/// The snapshot's pixels: `frame` scaled to fit the settings, with every
/// box of `hidden` (frame pixels, e.g. the people) pixelated.
pub fn render(frame: &RgbImage, settings: SnapshotSettings, hidden: &[BoundingBox]) -> RgbImage {
    let (width, height) = fitted_size(frame.width(), frame.height(), settings.max_side);
    let mut small = if (width, height) == frame.dimensions() {
        frame.clone()
    } else {
        image::imageops::resize(frame, width, height, FilterType::Triangle)
    };
    let size = FrameSize {
        width: frame.width(),
        height: frame.height(),
    };
    pixelate_boxes(&mut small, size, hidden);
    small
}

/// Encodes `frame` as a JPEG no larger than the settings allow, with the
/// `hidden` boxes pixelated (see [`render`]).
pub fn encode(
    frame: &RgbImage,
    settings: SnapshotSettings,
    hidden: &[BoundingBox],
) -> Result<Vec<u8>, SnapshotError> {
    let image = render(frame, settings, hidden);
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, settings.quality.clamp(1, 100)).encode_image(&image)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_keep_the_aspect_ratio_and_never_grow() {
        assert_eq!(fitted_size(1280, 720, 640), (640, 360));
        assert_eq!(fitted_size(810, 1080, 640), (480, 640));
        assert_eq!(fitted_size(320, 200, 640), (320, 200));
        assert_eq!(fitted_size(10_000, 1, 640), (640, 1));
    }

    #[test]
    fn snapshots_decode_within_the_max_side() {
        let frame = RgbImage::from_fn(1280, 720, |x, y| {
            image::Rgb([(x % 256) as u8, (y % 256) as u8, 128])
        });
        let jpeg = encode(
            &frame,
            SnapshotSettings {
                max_side: 640,
                quality: 80,
            },
            &[],
        )
        .expect("encode");
        assert!(jpeg.starts_with(&[0xFF, 0xD8]));
        let decoded = image::load_from_memory(&jpeg).expect("decodes").to_rgb8();
        assert_eq!(decoded.dimensions(), (640, 360));
    }

    #[test]
    fn hidden_boxes_are_pixelated_in_the_scaled_snapshot_only_there() {
        // Fine stripes everywhere; a box of 200x100 frame pixels at (400, 200)
        // becomes (200, 100)..(300, 150) in the half-size snapshot.
        let frame = RgbImage::from_fn(1280, 720, |x, _| {
            image::Rgb(if (x / 8) % 2 == 0 { [250; 3] } else { [5; 3] })
        });
        let person = BoundingBox {
            x: 400.0,
            y: 200.0,
            width: 200.0,
            height: 100.0,
        };
        let settings = SnapshotSettings {
            max_side: 640,
            quality: 80,
        };
        let small = render(&frame, settings, &[person]);
        let plain = render(&frame, settings, &[]);
        let spread = |image: &RgbImage, x0: u32, x1: u32, y: u32| {
            let row: Vec<u8> = (x0..x1).map(|x| image.get_pixel(x, y).0[0]).collect();
            row.iter().max().copied().unwrap_or(0) - row.iter().min().copied().unwrap_or(0)
        };
        // Inside: each 6-pixel block is one colour (block side = 50 / 8 = 6).
        assert_eq!(spread(&small, 200, 206, 120), 0);
        assert!(
            spread(&plain, 200, 206, 120) > 50,
            "the stripes survive the scaling"
        );
        // Outside the box the snapshot is untouched.
        assert_eq!(spread(&small, 400, 406, 120), spread(&plain, 400, 406, 120));
    }
}
