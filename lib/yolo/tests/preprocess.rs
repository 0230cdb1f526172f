//! Decoding untrusted images: limits are enforced before work is done.

use std::io::Cursor;

use image::{ImageFormat, Rgb, RgbImage};
use safecity_yolo::preprocess::{ImageLimits, PreprocessError, decode};

fn encode(image: &RgbImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    image.write_to(&mut out, format).expect("encode");
    out.into_inner()
}

fn sample() -> RgbImage {
    RgbImage::from_fn(6, 4, |x, y| Rgb([(x * 40) as u8, (y * 60) as u8, 128]))
}

/// CRC-32 (IEEE) as PNG chunks need it.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn push_chunk(out: &mut Vec<u8>, kind: &[u8; 4], payload: &[u8]) {
    let mut chunk = kind.to_vec();
    chunk.extend_from_slice(payload);
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(&chunk);
    out.extend_from_slice(&crc32(&chunk).to_be_bytes());
}

/// A well-formed PNG whose header claims `width x height` but whose (empty)
/// image data holds no pixels.
fn png_header_only(width: u32, height: u32) -> Vec<u8> {
    let mut out = vec![0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]); // 8-bit RGB, deflate, no filter, no interlace
    push_chunk(&mut out, b"IHDR", &ihdr);
    push_chunk(&mut out, b"IDAT", &[]);
    push_chunk(&mut out, b"IEND", &[]);
    out
}

#[test]
fn png_round_trips_exactly() {
    let image = sample();
    let decoded = decode(&encode(&image, ImageFormat::Png), &ImageLimits::default()).unwrap();
    assert_eq!(decoded, image);
}

#[test]
fn jpeg_decodes_to_the_right_size() {
    let decoded = decode(
        &encode(&sample(), ImageFormat::Jpeg),
        &ImageLimits::default(),
    )
    .unwrap();
    assert_eq!(decoded.dimensions(), (6, 4));
}

#[test]
fn empty_body_is_rejected() {
    assert!(matches!(
        decode(&[], &ImageLimits::default()),
        Err(PreprocessError::Empty)
    ));
}

#[test]
fn too_many_bytes_is_rejected_before_decoding() {
    let bytes = encode(&sample(), ImageFormat::Png);
    let limits = ImageLimits {
        max_bytes: bytes.len() - 1,
        ..ImageLimits::default()
    };
    match decode(&bytes, &limits) {
        Err(PreprocessError::TooManyBytes { bytes: n, max }) => {
            assert_eq!((n, max), (bytes.len(), bytes.len() - 1));
        }
        other => panic!("expected TooManyBytes, got {other:?}"),
    }
    // Even garbage is refused on size alone: nothing is parsed.
    let garbage = vec![0u8; 100];
    let limits = ImageLimits {
        max_bytes: 99,
        ..ImageLimits::default()
    };
    assert!(matches!(
        decode(&garbage, &limits),
        Err(PreprocessError::TooManyBytes { .. })
    ));
}

#[test]
fn a_header_claiming_50000x50000_is_rejected_without_allocating() {
    // 2.5 gigapixels (7.5 GB of RGB) announced in 57 bytes.
    let bytes = png_header_only(50_000, 50_000);
    let err = decode(&bytes, &ImageLimits::default()).unwrap_err();
    match &err {
        PreprocessError::TooManyPixels { width, height, max } => {
            assert_eq!((*width, *height, *max), (50_000, 50_000, 40_000_000));
        }
        other => panic!("expected TooManyPixels, got {other:?}"),
    }
    assert!(
        err.to_string().contains("50000x50000 = 2500000000 pixels"),
        "{err}"
    );
    // The same header within the limits gets as far as the (missing) pixel data.
    let err = decode(&png_header_only(4, 4), &ImageLimits::default()).unwrap_err();
    assert!(
        matches!(
            err,
            PreprocessError::Corrupt {
                format: ImageFormat::Png,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn a_pixel_limit_counts_width_times_height() {
    let bytes = encode(&sample(), ImageFormat::Png);
    let exact = ImageLimits {
        max_pixels: 24,
        ..ImageLimits::default()
    };
    assert!(decode(&bytes, &exact).is_ok());
    let below = ImageLimits {
        max_pixels: 23,
        ..ImageLimits::default()
    };
    assert!(matches!(
        decode(&bytes, &below),
        Err(PreprocessError::TooManyPixels {
            width: 6,
            height: 4,
            ..
        })
    ));
}

#[test]
fn corrupt_jpeg_is_a_decode_error() {
    // A JPEG start-of-image marker followed by noise.
    let mut bytes = vec![0xFF, 0xD8, 0xFF, 0xE0];
    bytes.extend((0..200u32).map(|i| (i * 37 % 251) as u8));
    let err = decode(&bytes, &ImageLimits::default()).unwrap_err();
    assert!(
        matches!(
            err,
            PreprocessError::Corrupt {
                format: ImageFormat::Jpeg,
                ..
            }
        ),
        "{err:?}"
    );

    // A real JPEG cut inside its header.
    let jpeg = encode(&sample(), ImageFormat::Jpeg);
    let err = decode(&jpeg[..20], &ImageLimits::default()).unwrap_err();
    assert!(
        matches!(
            err,
            PreprocessError::Corrupt {
                format: ImageFormat::Jpeg,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn other_formats_are_unsupported() {
    let err = decode(
        b"GIF89a\x01\x00\x01\x00\x00\x00\x00",
        &ImageLimits::default(),
    )
    .unwrap_err();
    assert!(
        matches!(err, PreprocessError::UnsupportedFormat(_)),
        "{err:?}"
    );
    let err = decode(b"hello, this is text", &ImageLimits::default()).unwrap_err();
    assert!(
        matches!(err, PreprocessError::UnsupportedFormat(None)),
        "{err:?}"
    );
    assert!(err.to_string().contains("only JPEG and PNG"), "{err}");
}

/// A textured, camera-like picture (smooth gradients and edges), JPEG-encoded.
fn camera_like(width: u32, height: u32) -> Vec<u8> {
    let image = RgbImage::from_fn(width, height, |x, y| {
        let stripe = if (x / 37 + y / 23) % 2 == 0 { 60 } else { 0 };
        Rgb([
            (x * 255 / width) as u8,
            (y * 255 / height) as u8,
            (128 + stripe) as u8,
        ])
    });
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 85)
        .encode_image(&image)
        .expect("encode");
    out
}

/// The index just after the start-of-scan header: where entropy data begins.
fn scan_data_start(jpeg: &[u8]) -> usize {
    let sos = jpeg
        .windows(2)
        .position(|w| w == [0xFF, 0xDA])
        .expect("a scan");
    let length = usize::from(u16::from_be_bytes([jpeg[sos + 2], jpeg[sos + 3]]));
    sos + 2 + length
}

#[test]
fn a_jpeg_cut_in_half_is_refused_not_padded_with_gray() {
    let jpeg = camera_like(640, 360);
    let half = &jpeg[..jpeg.len() / 2];
    let Err(err) = decode(half, &ImageLimits::default()) else {
        panic!("the truncated JPEG decoded");
    };
    match &err {
        PreprocessError::Corrupt {
            format: ImageFormat::Jpeg,
            reason,
        } => assert!(reason.contains("end-of-image"), "{reason}"),
        other => panic!("expected a corrupt JPEG, got {other:?}"),
    }
    assert!(!err.to_string().contains('\n'), "one line: {err}");
    // The whole file decodes.
    assert_eq!(
        decode(&jpeg, &ImageLimits::default()).unwrap().dimensions(),
        (640, 360)
    );
}

#[test]
fn damaged_entropy_data_is_refused() {
    let jpeg = camera_like(640, 360);
    let start = scan_data_start(&jpeg);
    let end = jpeg.len() - 2;
    // Overwrite a stretch of the scan with bits that are not a valid Huffman
    // sequence (ones), the way a burst error on a link does; no marker bytes.
    let mut damaged = jpeg.clone();
    for byte in &mut damaged[start + (end - start) / 3..start + (end - start) / 3 + 400] {
        *byte = 0xFE;
    }
    let Err(err) = decode(&damaged, &ImageLimits::default()) else {
        panic!("the damaged JPEG decoded");
    };
    assert!(
        matches!(
            err,
            PreprocessError::Corrupt {
                format: ImageFormat::Jpeg,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!err.to_string().contains('\n'), "one line: {err}");
}

#[test]
fn an_inflated_header_is_refused_before_any_pixel_is_allocated() {
    // A 16x16 JPEG whose frame header is rewritten to claim 8000x5000: within
    // the 40-megapixel limit, and 120 MB of RGB if decoded.
    let mut jpeg = camera_like(16, 16);
    let sof = jpeg
        .windows(2)
        .position(|w| w == [0xFF, 0xC0])
        .expect("a baseline frame header");
    jpeg[sof + 5..sof + 7].copy_from_slice(&5000u16.to_be_bytes());
    jpeg[sof + 7..sof + 9].copy_from_slice(&8000u16.to_be_bytes());
    let err = decode(&jpeg, &ImageLimits::default()).unwrap_err();
    match err {
        PreprocessError::ImplausiblySmall {
            width,
            height,
            minimum,
            ..
        } => assert_eq!((width, height, minimum), (8000, 5000, 78_125)),
        other => panic!("expected ImplausiblySmall, got {other:?}"),
    }
}

#[test]
fn large_frames_are_decoded_at_a_smaller_scale_never_below_the_network_input() {
    use safecity_yolo::preprocess::{decode_at_least, probe};
    let jpeg = camera_like(3328, 1872);
    let limits = ImageLimits::default();
    let probed = probe(&jpeg, &limits, Some((416, 416))).unwrap();
    assert_eq!(probed.scale, 4, "1/8 would be 416x234, below 416");
    assert_eq!(probed.output_pixels(), 832 * 468);
    let small = decode_at_least(&jpeg, &limits, Some((416, 416))).unwrap();
    assert_eq!(small.dimensions(), (832, 468));
    // The same picture: compare with the full decode averaged over 4x4 blocks.
    let full = decode(&jpeg, &limits).unwrap();
    let mut total_error = 0u64;
    for (x, y, pixel) in small.enumerate_pixels() {
        for channel in 0..3 {
            let mut sum = 0u32;
            for dy in 0..4 {
                for dx in 0..4 {
                    sum += u32::from(full.get_pixel(x * 4 + dx, y * 4 + dy)[channel]);
                }
            }
            total_error += u64::from((sum / 16).abs_diff(u32::from(pixel[channel])));
        }
    }
    let mean_error = total_error as f64 / (832.0 * 468.0 * 3.0);
    assert!(mean_error < 4.0, "mean abs difference {mean_error}");
}
