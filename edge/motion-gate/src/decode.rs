//! Camera JPEGs to the pixels the motion pipeline needs: luma only, and no
//! more of it than the pipeline's work size needs.
//!
//! The gate's entry point is [`decode_for_work`]:
//!
//! - **Frames at least 8x the work size on both axes** (1280x720 and up for
//!   the default 160x90) take a **DC-only reduced decode**
//!   ([`crate::reduced`]): the pipeline would area-average each 8x8 luma block
//!   anyway, and a block's mean is its DC coefficient, so the Huffman data is
//!   walked (every component: the scan is interleaved) but only luma DC
//!   values are kept and no inverse DCT runs. The output is
//!   `ceil(w / 8) x ceil(h / 8)` gray; the pipeline area-averages the rest of
//!   the way (1x at 1280x720, 1.5x at 1920x1080).
//! - **Frames at least 4x the work size** (640x360): the same decoder at 4x,
//!   one byte per 4x4 quadrant, its exact mean from the 25 coefficients
//!   whose cosines do not cancel over 4 samples; still no IDCT.
//!
//!   Each reduced byte is its block's (quadrant's) mean within +-1 of a full
//!   decode's (`tests/reduced.rs`), except where the full decode's pixels
//!   clip at 0 or 255. Baseline Huffman JPEGs only; progressive, arithmetic,
//!   12-bit and non-YCbCr frames take the path below.
//! - **Other frames** (and those the reduced decoder does not take):
//!   [`decode_into`]. The motion pipeline works on grayscale, so decoding
//!   colour only to throw it away is wasted work. Nearly every camera JPEG is
//!   YCbCr (or gray): for those the hot path asks zune-jpeg (the decoder
//!   inside the `image` crate, used here directly because `image` 0.25 has no
//!   luma-only output) for the **Y plane alone**. It still has to walk the
//!   chroma entropy data, but it skips the chroma inverse DCT, the chroma
//!   upsampling and the colour conversion: about half of a colour decode at
//!   1280x720. JPEG's Y is BT.601 luma, the same weights the pipeline applies
//!   to RGB input. Everything else (Adobe RGB/CMYK/YCCK JPEGs) falls back to
//!   the `image` crate and a full RGB decode; the pipeline converts it to
//!   gray itself.
//!
//! Both paths are **strict**: a truncated or damaged frame is an error
//! (skipped and counted as corrupt by the gate) instead of a picture padded
//! with gray, which the gate would see as motion. zune-jpeg runs in strict
//! mode; the reduced decoder rejects invalid codes, coefficient overruns,
//! scans that end early or late, and bad restart markers. The buffer is
//! reused: no allocation per frame once the first frame of a size was decoded.

use std::io::Cursor;

use image::codecs::jpeg::JpegDecoder as ImageJpegDecoder;
use image::{ColorType, ImageDecoder};
use zune_core::bytestream::ZCursor;
use zune_core::colorspace::ColorSpace;
use zune_core::options::DecoderOptions;
use zune_jpeg::JpegDecoder;
use zune_jpeg::errors::DecodeErrors;

pub use safecity_jpeg::limits::MAX_SIDE;
use safecity_jpeg::{self as reduced, ScanError};

/// Why a frame did not decode (the gate skips it and counts it as corrupt).
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// zune-jpeg rejected the frame (luma path).
    #[error("JPEG does not decode: {0}")]
    Jpeg(#[from] DecodeErrors),
    /// The `image` crate rejected the frame (fallback path).
    #[error("JPEG does not decode: {0}")]
    Image(#[from] image::ImageError),
    /// The DC-only decoder rejected the frame's entropy data (reduced path).
    #[error("JPEG does not decode: {0}")]
    Scan(#[from] ScanError),
    /// A colour layout the pipeline does not take.
    #[error("unsupported JPEG colour type {0}")]
    Unsupported(String),
}

/// A decoded frame's layout in the caller's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decoded {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// 1 (gray, the fast path) or 3 (RGB, the fallback).
    pub channels: u8,
    /// The JPEG's own width: `width` unless the decode was reduced.
    pub source_width: u32,
    /// The JPEG's own height: `height` unless the decode was reduced.
    pub source_height: u32,
}

/// Decodes `jpeg` for a motion pipeline that works at `work_width` x
/// `work_height`: when the frame is a baseline gray/YCbCr JPEG at least 8x
/// (4x) that on both axes, a reduced decode ([`crate::reduced`]: one byte per
/// 8x8 luma block (4x4 quadrant), its mean, no IDCT), otherwise
/// [`decode_into`]. The pipeline area-averages either to its work size; the
/// reduced decode already did the first 8x8 (4x4) of that.
pub fn decode_for_work(
    jpeg: &[u8],
    pixels: &mut Vec<u8>,
    work_width: u32,
    work_height: u32,
) -> Result<Decoded, DecodeError> {
    let reduced = reduced::decode_for_work(jpeg, pixels, work_width, work_height)?;
    match reduced {
        Some(r) => Ok(Decoded {
            width: r.width,
            height: r.height,
            channels: 1,
            source_width: r.source_width,
            source_height: r.source_height,
        }),
        None => decode_into(jpeg, pixels),
    }
}

/// Decodes `jpeg` into `pixels` (resized as needed, reused across frames):
/// gray for YCbCr and gray JPEGs, RGB for the rest.
pub fn decode_into(jpeg: &[u8], pixels: &mut Vec<u8>) -> Result<Decoded, DecodeError> {
    let options = DecoderOptions::default()
        .set_strict_mode(true)
        .set_max_width(MAX_SIDE)
        .set_max_height(MAX_SIDE)
        .jpeg_set_out_colorspace(ColorSpace::Luma);
    let mut decoder = JpegDecoder::new_with_options(ZCursor::new(jpeg), options);
    decoder.decode_headers()?;
    let colorspace = decoder.input_colorspace();
    if !matches!(colorspace, Some(ColorSpace::YCbCr | ColorSpace::Luma)) {
        return decode_rgb_into(jpeg, pixels);
    }
    let (width, height) = decoder.dimensions().ok_or(DecodeErrors::FormatStatic(
        "no dimensions after the headers",
    ))?;
    let bytes = decoder
        .output_buffer_size()
        .ok_or(DecodeErrors::FormatStatic("frame size overflows"))?;
    pixels.resize(bytes, 0);
    decoder.decode_into(pixels)?;
    Ok(Decoded {
        width: width as u32,
        height: height as u32,
        channels: 1,
        source_width: width as u32,
        source_height: height as u32,
    })
}

/// The fallback: a full decode with the `image` crate (RGB, or gray when the
/// JPEG is gray).
pub fn decode_rgb_into(jpeg: &[u8], pixels: &mut Vec<u8>) -> Result<Decoded, DecodeError> {
    let decoder = ImageJpegDecoder::new(Cursor::new(jpeg))?;
    let (width, height) = decoder.dimensions();
    let channels = match decoder.color_type() {
        ColorType::L8 => 1,
        ColorType::Rgb8 => 3,
        other => return Err(DecodeError::Unsupported(format!("{other:?}"))),
    };
    if width as usize > MAX_SIDE || height as usize > MAX_SIDE {
        return Err(DecodeError::Unsupported(format!(
            "{width}x{height} (larger than {MAX_SIDE} on a side)"
        )));
    }
    let bytes = width as usize * height as usize * channels as usize;
    pixels.resize(bytes, 0);
    decoder.read_image(pixels)?;
    Ok(Decoded {
        width,
        height,
        channels: channels as u8,
        source_width: width,
        source_height: height,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use safecity_cctv_sim::scene::{
        Background, Scene, SceneObject, SceneSpec, corrupt, encode_jpeg,
    };

    fn frame() -> Vec<u8> {
        let mut spec = SceneSpec {
            width: 96,
            height: 64,
            seed: 3,
            noise: 3,
            background: Background::Street,
            ..SceneSpec::default()
        };
        spec.objects.push(SceneObject {
            enter: 0,
            leave: None,
            x: 10.0,
            y: 20.0,
            vx: 0.0,
            vy: 0.0,
            width: 20,
            height: 30,
            color: [200, 30, 30],
            sprite: None,
            ..SceneObject::default()
        });
        let scene = Scene::new(spec).expect("scene");
        encode_jpeg(&scene.render(0), 90).expect("encode")
    }

    #[test]
    fn luma_path_matches_the_gray_of_a_colour_decode() {
        let jpeg = frame();
        let mut gray = Vec::new();
        let g = decode_into(&jpeg, &mut gray).expect("luma decode");
        assert_eq!((g.width, g.height, g.channels), (96, 64, 1));
        assert_eq!(gray.len(), 96 * 64);
        let mut rgb = Vec::new();
        let c = decode_rgb_into(&jpeg, &mut rgb).expect("colour decode");
        assert_eq!((c.width, c.height, c.channels), (96, 64, 3));
        // Y of the JPEG vs BT.601 luma of its RGB decode: equal up to the
        // rounding of the colour conversion and of chroma upsampling.
        let worst = gray
            .iter()
            .zip(rgb.chunks_exact(3))
            .map(|(&y, p)| {
                let l = (77 * u32::from(p[0]) + 150 * u32::from(p[1]) + 29 * u32::from(p[2]) + 128)
                    >> 8;
                (i32::from(y) - l as i32).unsigned_abs()
            })
            .max()
            .expect("pixels");
        assert!(worst <= 3, "luma differs by {worst} gray levels");
    }

    #[test]
    fn the_buffer_is_reused() {
        let jpeg = frame();
        let mut pixels = Vec::new();
        decode_into(&jpeg, &mut pixels).expect("decode");
        let (ptr, cap) = (pixels.as_ptr(), pixels.capacity());
        decode_into(&jpeg, &mut pixels).expect("decode");
        assert_eq!((pixels.as_ptr(), pixels.capacity()), (ptr, cap));
    }

    #[test]
    fn truncated_and_scrambled_frames_are_errors() {
        let jpeg = frame();
        let mut pixels = Vec::new();
        // Cut mid-scan, the way a dropped connection leaves a frame: without
        // strict mode this would "decode" with the rest painted gray.
        let cut = &jpeg[..jpeg.len() * 2 / 3];
        let error = decode_into(cut, &mut pixels).expect_err("truncated frame");
        assert!(
            error.to_string().contains("JPEG does not decode"),
            "{error}"
        );
        let mut scrambled = jpeg.clone();
        corrupt(&mut scrambled, 7);
        assert!(decode_into(&scrambled, &mut pixels).is_err());
        assert!(decode_into(b"not a jpeg", &mut pixels).is_err());
    }

    #[test]
    fn png_is_not_a_camera_frame() {
        let image = image::RgbImage::from_pixel(8, 8, image::Rgb([1, 2, 3]));
        let mut png = Vec::new();
        image
            .write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png)
            .expect("png");
        assert!(decode_into(&png, &mut Vec::new()).is_err());
    }
}
