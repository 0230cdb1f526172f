//! Image decoding and conversion to the network input (pure functions).
//!
//! Darknet feeds the network RGB, planar (CHW), scaled to `[0, 1]`, and by
//! default stretches the image to the network size; with `letter_box=1` it
//! keeps the aspect ratio and pads with gray 0.5. [`Placement`] records how
//! the image was placed so boxes can be mapped back to source pixels.
//!
//! Resizing is plain bilinear interpolation with half-pixel centres and no
//! antialiasing — OpenCV's `INTER_LINEAR`, which `cv2.dnn.blobFromImage` uses,
//! and the same family as Darknet's own `resize_image` — rounded back to 8 bits
//! as OpenCV does before scaling to `[0, 1]`.

use std::io::Cursor;

use candle_core::{Device, Tensor};
use image::{ImageFormat, ImageReader, RgbImage};
use rayon::prelude::*;

use crate::postprocess::NormBox;

/// Upper bounds on untrusted encoded images.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageLimits {
    /// Largest accepted encoded size, checked before decoding.
    pub max_bytes: usize,
    /// Largest accepted `width * height`, checked from the header before allocating.
    pub max_pixels: u64,
}

impl Default for ImageLimits {
    /// 20 MiB and 40 megapixels.
    fn default() -> Self {
        ImageLimits {
            max_bytes: 20 * 1024 * 1024,
            max_pixels: 40_000_000,
        }
    }
}

/// How an image is fitted to the network input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Resize {
    /// Scale each axis independently to the network size (Darknet's default).
    #[default]
    Stretch,
    /// Keep the aspect ratio, centre, pad with gray 0.5 (Darknet's `letter_box=1`).
    Letterbox,
}

/// Why an encoded image was rejected.
#[derive(Debug, thiserror::Error)]
pub enum PreprocessError {
    /// Zero bytes.
    #[error("the image is empty (0 bytes)")]
    Empty,
    /// More bytes than [`ImageLimits::max_bytes`].
    #[error("the image is {bytes} bytes; the limit is {max}")]
    TooManyBytes {
        /// Encoded size.
        bytes: usize,
        /// The limit.
        max: usize,
    },
    /// The header announces more pixels than [`ImageLimits::max_pixels`].
    #[error("the image is {width}x{height} = {} pixels; the limit is {max}", u64::from(*width) * u64::from(*height))]
    TooManyPixels {
        /// Width from the header.
        width: u32,
        /// Height from the header.
        height: u32,
        /// The limit.
        max: u64,
    },
    /// The file is far too small for the size its header announces: a
    /// header inflated to make the decoder allocate.
    #[error(
        "the JPEG is {bytes} bytes but its header claims {width}x{height}: a real one needs at least {minimum} bytes (one bit per 8x8 block)"
    )]
    ImplausiblySmall {
        /// Encoded size.
        bytes: usize,
        /// Width from the header.
        width: u32,
        /// Height from the header.
        height: u32,
        /// The least a JPEG of that size can weigh.
        minimum: usize,
    },
    /// Neither JPEG nor PNG.
    #[error("unsupported image format{}: only JPEG and PNG are accepted", .0.map(|f| format!(" {f:?}")).unwrap_or_default())]
    UnsupportedFormat(Option<ImageFormat>),
    /// The data is not a valid image of its format: damaged, or cut short.
    #[error("cannot decode the {format:?} image: {reason}")]
    Corrupt {
        /// The detected format.
        format: ImageFormat,
        /// What the decoder found, on one line.
        reason: String,
    },
}

impl PreprocessError {
    fn corrupt(format: ImageFormat, reason: impl std::fmt::Display) -> Self {
        let text = reason.to_string();
        PreprocessError::Corrupt {
            format,
            reason: text.split_whitespace().collect::<Vec<_>>().join(" "),
        }
    }
}

/// Decodes a JPEG or PNG into RGB at full size, enforcing `limits` (see
/// [`probe`]).
pub fn decode(bytes: &[u8], limits: &ImageLimits) -> Result<RgbImage, PreprocessError> {
    probe(bytes, limits, None)?.decode(bytes)
}

/// What the header of an encoded image says, once it passed every check
/// that needs no pixel buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    /// JPEG or PNG.
    pub format: ImageFormat,
    /// Width from the header.
    pub width: u32,
    /// Height from the header.
    pub height: u32,
    /// The decoding scale: 1, or 2, 4, 8 for a JPEG decoded smaller.
    pub scale: u32,
}

impl Probe {
    /// Pixels of the decoded image (after scaling).
    pub fn output_pixels(&self) -> u64 {
        u64::from(self.width.div_ceil(self.scale)) * u64::from(self.height.div_ceil(self.scale))
    }

    /// Decodes `bytes` (the bytes that were probed) into RGB. JPEG is decoded
    /// strictly: damaged entropy data is an error, never an image padded with
    /// gray.
    pub fn decode(&self, bytes: &[u8]) -> Result<RgbImage, PreprocessError> {
        if self.format == ImageFormat::Jpeg {
            return jpeg::decode(bytes, self);
        }
        let (mut reader, _) = reader(bytes)?;
        // Hold the decoder to the dimensions checked.
        let mut decoder_limits = image::Limits::default();
        decoder_limits.max_image_width = Some(self.width);
        decoder_limits.max_image_height = Some(self.height);
        reader.limits(decoder_limits);
        let image = reader
            .decode()
            .map_err(|source| PreprocessError::corrupt(self.format, source))?;
        Ok(image.into_rgb8())
    }
}

/// Checks an encoded JPEG or PNG without decoding its pixels: the byte size,
/// the format, the header's dimensions against `limits`, and, for JPEG, a
/// file size plausible for those dimensions and an end-of-image marker (a
/// stream cut short is refused here).
///
/// With `at_least = Some((w, h))` a JPEG at least twice that size in both
/// directions is to be decoded at 1/2, 1/4 or 1/8 scale (the IDCT scales,
/// so the full frame is never allocated), never below `w`x`h`: the
/// detector's network input is 416 or 608 pixels, a camera frame may be 4K.
pub fn probe(
    bytes: &[u8],
    limits: &ImageLimits,
    at_least: Option<(u32, u32)>,
) -> Result<Probe, PreprocessError> {
    if bytes.is_empty() {
        return Err(PreprocessError::Empty);
    }
    if bytes.len() > limits.max_bytes {
        return Err(PreprocessError::TooManyBytes {
            bytes: bytes.len(),
            max: limits.max_bytes,
        });
    }
    let (header, format) = reader(bytes)?;
    let (width, height) = header
        .into_dimensions()
        .map_err(|source| PreprocessError::corrupt(format, source))?;
    if u64::from(width) * u64::from(height) > limits.max_pixels {
        return Err(PreprocessError::TooManyPixels {
            width,
            height,
            max: limits.max_pixels,
        });
    }
    let scale = if format == ImageFormat::Jpeg {
        jpeg::check(bytes, width, height)?;
        jpeg::scale_for(width, height, at_least)
    } else {
        1
    };
    Ok(Probe {
        format,
        width,
        height,
        scale,
    })
}

/// Decodes a JPEG or PNG into RGB: [`probe`], then [`Probe::decode`].
pub fn decode_at_least(
    bytes: &[u8],
    limits: &ImageLimits,
    at_least: Option<(u32, u32)>,
) -> Result<RgbImage, PreprocessError> {
    probe(bytes, limits, at_least)?.decode(bytes)
}

/// Strict and scaled JPEG decoding.
mod jpeg {
    use image::{ImageFormat, RgbImage};
    use zune_core::bytestream::ZCursor;
    use zune_core::colorspace::ColorSpace;
    use zune_core::options::DecoderOptions;

    use super::{PreprocessError, Probe};

    fn corrupt(reason: impl std::fmt::Display) -> PreprocessError {
        PreprocessError::corrupt(ImageFormat::Jpeg, reason)
    }

    /// The least a baseline JPEG of `width`x`height` can weigh: one bit per
    /// 8x8 luma block (a flat image still codes a DC difference and an
    /// end-of-block per block).
    pub(super) fn minimum_bytes(width: u32, height: u32) -> usize {
        let blocks = u64::from(width.div_ceil(8)) * u64::from(height.div_ceil(8));
        usize::try_from(blocks / 8).unwrap_or(usize::MAX)
    }

    /// Whether the stream reaches an end-of-image marker after its last
    /// start-of-scan. In entropy-coded data `FF` is only ever followed by
    /// `00` (stuffing) or a restart marker, so `FF D9` there is the real EOI.
    fn ends_properly(bytes: &[u8]) -> bool {
        let Some(scan) = bytes.windows(2).rposition(|w| w == [0xFF, 0xDA]) else {
            return false;
        };
        bytes[scan..].windows(2).any(|w| w == [0xFF, 0xD9])
    }

    /// The IDCT scale (1, 2, 4 or 8) for a `width`x`height` frame that must
    /// stay at least `at_least`.
    pub(super) fn scale_for(width: u32, height: u32, at_least: Option<(u32, u32)>) -> u32 {
        let Some((min_w, min_h)) = at_least else {
            return 1;
        };
        [8, 4, 2]
            .into_iter()
            .find(|s| width / s >= min_w.max(1) && height / s >= min_h.max(1))
            .unwrap_or(1)
    }

    /// The checks that need no pixels: a plausible size, an end marker.
    pub(super) fn check(bytes: &[u8], width: u32, height: u32) -> Result<(), PreprocessError> {
        let minimum = minimum_bytes(width, height);
        if bytes.len() < minimum {
            return Err(PreprocessError::ImplausiblySmall {
                bytes: bytes.len(),
                width,
                height,
                minimum,
            });
        }
        if !ends_properly(bytes) {
            return Err(corrupt(
                "the stream ends before its end-of-image marker (truncated)",
            ));
        }
        Ok(())
    }

    pub(super) fn decode(bytes: &[u8], probe: &Probe) -> Result<RgbImage, PreprocessError> {
        // General decoders fill damaged entropy data in and carry on: walk
        // the whole scan strictly first (baseline files; the others rely on
        // the decoder's own strict mode).
        let mut scratch = Vec::new();
        safecity_jpeg::check_entropy_data(bytes, &mut scratch)
            .map_err(|e| corrupt(format!("damaged entropy data: {e}")))?;
        match probe.scale {
            1 => full(bytes, probe.width, probe.height),
            scale => scaled(
                bytes,
                probe.width.div_ceil(scale),
                probe.height.div_ceil(scale),
            ),
        }
    }

    /// Full size, with zune-jpeg (the decoder `image` uses) in strict mode.
    fn full(bytes: &[u8], width: u32, height: u32) -> Result<RgbImage, PreprocessError> {
        let options = DecoderOptions::default()
            .set_strict_mode(true)
            .set_max_width(width as usize)
            .set_max_height(height as usize)
            .jpeg_set_out_colorspace(ColorSpace::RGB);
        let mut decoder = zune_jpeg::JpegDecoder::new_with_options(ZCursor::new(bytes), options);
        let pixels = decoder.decode().map_err(|e| corrupt(format!("{e:?}")))?;
        let (w, h) = decoder
            .dimensions()
            .ok_or_else(|| corrupt("no dimensions after decoding"))?;
        let rgb = match decoder.output_colorspace() {
            Some(ColorSpace::RGB) => pixels,
            Some(ColorSpace::Luma) => pixels.iter().flat_map(|&v| [v, v, v]).collect(),
            other => return Err(corrupt(format!("unexpected colour space {other:?}"))),
        };
        RgbImage::from_raw(w as u32, h as u32, rgb)
            .ok_or_else(|| corrupt("the decoder returned fewer pixels than its dimensions"))
    }

    /// Scaled while decoding (jpeg-decoder's IDCT scaling): the full frame
    /// is never allocated.
    fn scaled(bytes: &[u8], width: u32, height: u32) -> Result<RgbImage, PreprocessError> {
        let mut decoder = jpeg_decoder::Decoder::new(bytes);
        decoder.read_info().map_err(corrupt)?;
        let requested = (
            u16::try_from(width).unwrap_or(u16::MAX),
            u16::try_from(height).unwrap_or(u16::MAX),
        );
        let (w, h) = decoder.scale(requested.0, requested.1).map_err(corrupt)?;
        let pixels = decoder.decode().map_err(corrupt)?;
        let info = decoder
            .info()
            .ok_or_else(|| corrupt("no header after decoding"))?;
        let rgb = match info.pixel_format {
            jpeg_decoder::PixelFormat::RGB24 => pixels,
            jpeg_decoder::PixelFormat::L8 => pixels.iter().flat_map(|&v| [v, v, v]).collect(),
            jpeg_decoder::PixelFormat::L16 => pixels
                .chunks_exact(2)
                .flat_map(|v| [v[0], v[0], v[0]])
                .collect(),
            jpeg_decoder::PixelFormat::CMYK32 => pixels
                .chunks_exact(4)
                .flat_map(|p| {
                    let k = u16::from(255 - p[3]);
                    let channel = |c: u8| ((u16::from(255 - c) * k) / 255) as u8;
                    [channel(p[0]), channel(p[1]), channel(p[2])]
                })
                .collect(),
        };
        RgbImage::from_raw(u32::from(w), u32::from(h), rgb)
            .ok_or_else(|| corrupt("the decoder returned fewer pixels than its dimensions"))
    }
}

/// An image reader over an in-memory encoded image.
type BytesReader<'a> = ImageReader<Cursor<&'a [u8]>>;

/// A reader for `bytes` with its detected format, if that is JPEG or PNG.
fn reader(bytes: &[u8]) -> Result<(BytesReader<'_>, ImageFormat), PreprocessError> {
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|_| PreprocessError::UnsupportedFormat(None))?;
    match reader.format() {
        Some(f @ (ImageFormat::Jpeg | ImageFormat::Png)) => Ok((reader, f)),
        other => Err(PreprocessError::UnsupportedFormat(other)),
    }
}

/// Where the source image sits inside the network input.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Placement {
    /// Source image width in pixels.
    pub source_width: u32,
    /// Source image height in pixels.
    pub source_height: u32,
    /// Network input width.
    pub net_width: usize,
    /// Network input height.
    pub net_height: usize,
    /// Width the image occupies in the input, in input pixels.
    pub placed_width: usize,
    /// Height the image occupies in the input, in input pixels.
    pub placed_height: usize,
    /// Left edge of the image in the input.
    pub offset_x: usize,
    /// Top edge of the image in the input.
    pub offset_y: usize,
}

impl Placement {
    /// Maps a box normalized to the network input into one normalized to the
    /// source image (Darknet's `correct_yolo_boxes`); identity for a stretch.
    pub fn to_source(&self, b: NormBox) -> NormBox {
        let (nw, nh) = (self.net_width as f32, self.net_height as f32);
        let (pw, ph) = (self.placed_width as f32, self.placed_height as f32);
        NormBox {
            x: (b.x - self.offset_x as f32 / nw) / (pw / nw),
            y: (b.y - self.offset_y as f32 / nh) / (ph / nh),
            w: b.w * nw / pw,
            h: b.h * nh / ph,
        }
    }
}

/// Converts an image into the network's planar RGB input (`3 * height * width`
/// floats in `[0, 1]`) and reports where it was placed.
pub fn to_planar(
    image: &RgbImage,
    width: usize,
    height: usize,
    resize: Resize,
) -> (Vec<f32>, Placement) {
    let (iw, ih) = image.dimensions();
    let (placed_w, placed_h) = match resize {
        Resize::Stretch => (width, height),
        Resize::Letterbox => {
            // Darknet's letterbox_image, integer arithmetic included.
            let (w, h, sw, sh) = (width as u64, height as u64, u64::from(iw), u64::from(ih));
            if w * sh < h * sw {
                (width, ((sh * w) / sw).max(1) as usize)
            } else {
                (((sw * h) / sh).max(1) as usize, height)
            }
        }
    };
    let placement = Placement {
        source_width: iw,
        source_height: ih,
        net_width: width,
        net_height: height,
        placed_width: placed_w,
        placed_height: placed_h,
        offset_x: (width - placed_w) / 2,
        offset_y: (height - placed_h) / 2,
    };
    let resized;
    let src = if (iw as usize, ih as usize) == (placed_w, placed_h) {
        image
    } else {
        resized = resize_bilinear(image, placed_w, placed_h);
        &resized
    };
    let plane = width * height;
    let mut out = vec![0.5f32; 3 * plane];
    for (x, y, px) in src.enumerate_pixels() {
        let at = (y as usize + placement.offset_y) * width + x as usize + placement.offset_x;
        for (c, v) in px.0.iter().enumerate() {
            out[c * plane + at] = f32::from(*v) / 255.0;
        }
    }
    (out, placement)
}

/// For each output coordinate: the two source indices and the weight of the second.
fn bilinear_taps(src: usize, dst: usize) -> Vec<(usize, usize, f32)> {
    let scale = src as f64 / dst as f64;
    (0..dst)
        .map(|d| {
            let f = ((d as f64 + 0.5) * scale - 0.5).max(0.0);
            let i0 = (f.floor() as usize).min(src - 1);
            let i1 = (i0 + 1).min(src - 1);
            let w = if i1 == i0 {
                0.0
            } else {
                (f - i0 as f64) as f32
            };
            (i0, i1, w)
        })
        .collect()
}

/// Bilinear resize with half-pixel centres (OpenCV `INTER_LINEAR` semantics).
pub fn resize_bilinear(image: &RgbImage, width: usize, height: usize) -> RgbImage {
    let (iw, ih) = (image.width() as usize, image.height() as usize);
    let xs = bilinear_taps(iw, width);
    let ys = bilinear_taps(ih, height);
    let src = image.as_raw();
    let mut out = vec![0u8; width * height * 3];
    out.par_chunks_mut(width * 3)
        .zip(&ys)
        .for_each(|(row, &(y0, y1, wy))| {
            let r0 = &src[y0 * iw * 3..(y0 + 1) * iw * 3];
            let r1 = &src[y1 * iw * 3..(y1 + 1) * iw * 3];
            for (px, &(x0, x1, wx)) in row.chunks_exact_mut(3).zip(&xs) {
                for (c, v) in px.iter_mut().enumerate() {
                    let at = |r: &[u8], x: usize| f32::from(r[x * 3 + c]);
                    let top = at(r0, x0) + (at(r0, x1) - at(r0, x0)) * wx;
                    let bottom = at(r1, x0) + (at(r1, x1) - at(r1, x0)) * wx;
                    *v = (top + (bottom - top) * wy).round().clamp(0.0, 255.0) as u8;
                }
            }
        });
    RgbImage::from_raw(width as u32, height as u32, out).expect("buffer sized width * height * 3")
}

/// Stacks planar images (each `3 * height * width` floats) into an
/// `(N, 3, height, width)` f32 tensor on `device`.
pub fn batch(
    planes: &[Vec<f32>],
    width: usize,
    height: usize,
    device: &Device,
) -> candle_core::Result<Tensor> {
    let len = 3 * width * height;
    if let Some((i, p)) = planes.iter().enumerate().find(|(_, p)| p.len() != len) {
        candle_core::bail!(
            "image {i} has {} floats; a 3x{height}x{width} input needs {len}",
            p.len()
        );
    }
    let data: Vec<f32> = planes.concat();
    Tensor::from_vec(data, (planes.len(), 3, height, width), device)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_keep_the_frame_at_least_the_network_size() {
        assert_eq!(jpeg::scale_for(8000, 5000, Some((416, 416))), 8);
        assert_eq!(jpeg::scale_for(3840, 2160, Some((416, 416))), 4);
        assert_eq!(jpeg::scale_for(1920, 1080, Some((416, 416))), 2);
        assert_eq!(jpeg::scale_for(1280, 720, Some((416, 416))), 1);
        assert_eq!(jpeg::scale_for(1280, 720, None), 1);
        assert_eq!(jpeg::scale_for(8000, 5000, Some((608, 608))), 8);
    }

    #[test]
    fn the_least_a_jpeg_weighs() {
        // 8000x5000: 625,000 blocks, one bit each.
        assert_eq!(jpeg::minimum_bytes(8000, 5000), 78_125);
        assert_eq!(jpeg::minimum_bytes(640, 360), 450);
        assert_eq!(jpeg::minimum_bytes(1, 1), 0);
    }

    #[test]
    fn stretch_is_planar_rgb_over_255() {
        let mut image = RgbImage::new(2, 1);
        image.put_pixel(0, 0, image::Rgb([255, 0, 51]));
        image.put_pixel(1, 0, image::Rgb([0, 102, 0]));
        let (planes, placement) = to_planar(&image, 2, 1, Resize::Stretch);
        assert_eq!(planes, vec![1.0, 0.0, 0.0, 0.4, 0.2, 0.0]);
        assert_eq!((placement.offset_x, placement.placed_width), (0, 2));
    }

    #[test]
    fn bilinear_uses_half_pixel_centres() {
        // 4 -> 2 pixels: each output samples the midpoint of a pair.
        let mut image = RgbImage::new(4, 1);
        for (x, v) in [0u8, 100, 200, 250].into_iter().enumerate() {
            image.put_pixel(x as u32, 0, image::Rgb([v, v, v]));
        }
        let out = resize_bilinear(&image, 2, 1);
        assert_eq!(out.get_pixel(0, 0).0[0], 50);
        assert_eq!(out.get_pixel(1, 0).0[0], 225);
        // 2 -> 4: edges clamp, inner pixels interpolate at 1/4 and 3/4.
        let mut image = RgbImage::new(2, 1);
        image.put_pixel(0, 0, image::Rgb([0, 0, 0]));
        image.put_pixel(1, 0, image::Rgb([200, 200, 200]));
        let out = resize_bilinear(&image, 4, 1);
        let row: Vec<u8> = (0..4).map(|x| out.get_pixel(x, 0).0[0]).collect();
        assert_eq!(row, vec![0, 50, 150, 200]);
    }

    #[test]
    fn letterbox_centres_and_pads_with_gray() {
        // A 4x2 white image in a 4x4 input: placed 4x2 at y offset 1.
        let image = RgbImage::from_pixel(4, 2, image::Rgb([255, 255, 255]));
        let (planes, placement) = to_planar(&image, 4, 4, Resize::Letterbox);
        assert_eq!((placement.placed_width, placement.placed_height), (4, 2));
        assert_eq!((placement.offset_x, placement.offset_y), (0, 1));
        let red = &planes[..16];
        assert_eq!(&red[..4], &[0.5; 4]);
        assert_eq!(&red[4..12], &[1.0; 8]);
        assert_eq!(&red[12..], &[0.5; 4]);
        // The centre of the input is the centre of the image; the full placed
        // height is the full image height.
        let b = placement.to_source(NormBox {
            x: 0.5,
            y: 0.5,
            w: 1.0,
            h: 0.5,
        });
        assert_eq!((b.x, b.y, b.w, b.h), (0.5, 0.5, 1.0, 1.0));
    }
}
