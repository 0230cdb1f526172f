//! The event's snapshot: the frame scaled down to a maximum side, as JPEG.

use image::RgbImage;
use image::codecs::jpeg::JpegEncoder;
use image::imageops::FilterType;

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

/// Encodes `frame` as a JPEG no larger than the settings allow.
pub fn encode(frame: &RgbImage, settings: SnapshotSettings) -> Result<Vec<u8>, SnapshotError> {
    let (width, height) = fitted_size(frame.width(), frame.height(), settings.max_side);
    let mut out = Vec::new();
    let mut encoder = JpegEncoder::new_with_quality(&mut out, settings.quality.clamp(1, 100));
    if (width, height) == frame.dimensions() {
        encoder.encode_image(frame)?;
    } else {
        let small = image::imageops::resize(frame, width, height, FilterType::Triangle);
        encoder.encode_image(&small)?;
    }
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
        )
        .expect("encode");
        assert!(jpeg.starts_with(&[0xFF, 0xD8]));
        let decoded = image::load_from_memory(&jpeg).expect("decodes").to_rgb8();
        assert_eq!(decoded.dimensions(), (640, 360));
    }
}
