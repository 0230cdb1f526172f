//! Frames as the simulator serves them: baseline JPEG, or scrambled bytes
//! for a scripted corrupt frame.

use image::RgbImage;

use super::rng::SplitMix;

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
