//! # safecity-jpeg
//!
//! A strict baseline-JPEG entropy decoder in safe Rust, shared by the edge
//! and the detector: the motion gate uses it to decode reduced luma, the
//! detector to prove a frame's entropy data intact before it is analysed
//! (a general decoder fills damaged data in and carries on).
//!
//! Reduced luma decode: a baseline JPEG straight to its 8x8 block means
//! (DC-only) or 4x4 quadrant means, without any inverse DCT.
//!
//! The mean of an 8x8 block of samples is its DC coefficient: `DC * q / 8 +
//! 128` (`q` the DC quantiser). When a frame is at least 8x the gate's work
//! size on both axes, decoding full resolution and then area-averaging 8x8
//! blocks (or larger) throws away almost everything the inverse DCT computed.
//! This decoder fuses the two: it entropy-decodes the scan (every component:
//! the stream is interleaved, and AC coefficients have to be walked to find
//! the next block), keeps only the luma DC values (differentially predicted),
//! skips every AC coefficient without storing it and runs no IDCT at all.
//! libjpeg-turbo's `scale_denom = 8` (OpenCV's `IMREAD_REDUCED_GRAYSCALE_8`)
//! is the same idea.
//!
//! The 4x variant ([`decode_quarter_luma`]) gives each 4x4 quadrant's exact
//! mean instead: summed over 4 samples, `cos((2x + 1) u pi / 16)` cancels for
//! even `u > 0`, so a quadrant mean is a fixed weighting of the 25
//! coefficients with `u, v` in {0, 1, 3, 5, 7} (the other quadrants flip the
//! signs of odd `u` / odd `v`). Their values are decoded and weighted; the
//! rest are skipped; still no IDCT (libjpeg-turbo's `scale_denom = 4` runs a
//! 2x2 IDCT, which is not an exact mean).
//!
//! Output: one byte per luma block, `ceil(width / 8) x ceil(height / 8)`
//! (a partial edge block averages the encoder's edge padding too). Each byte
//! is `clamp(((DC * q + 4) >> 3) + 128)`, libjpeg's 1x1 IDCT; a full decode
//! clamps every pixel first, so on blocks whose ringing crosses 0 or 255
//! the two can differ.
//!
//! Scope: 8-bit baseline and extended Huffman (SOF0/SOF1), one scan holding
//! every component, gray or YCbCr with luma at the highest sampling factors
//! (4:4:4, 4:2:2, 4:2:0, 4:4:0, ...), restart intervals. Everything else
//! (progressive, arithmetic, lossless, 12-bit, CMYK/YCCK/RGB, multi-scan
//! baseline, odd headers) is [`None`] from [`decode_dc_luma`]: the caller
//! decodes it the ordinary way. Damaged entropy data is an error, as strict
//! as the full decoder: an invalid Huffman code, a coefficient run past 63, a
//! scan that ends early (truncated: it would read past the data), leaves
//! bytes unread before its end marker, or a wrong or missing restart marker.
//!
//! The parts: `header.rs` (markers and tables up to the scan, and the scope
//! check), `huffman.rs` (the tables), `bits.rs` (the bit reader),
//! `quadrant.rs` (the 4x weights), `scan.rs` (the decode loop) and
//! `error.rs`; [`limits`] holds the frame-size limit the motion gate's full
//! decode shares.

mod bits;
mod error;
mod header;
mod huffman;
pub mod limits;
mod quadrant;
mod scan;

pub use error::ScanError;
pub use scan::Reduced;

use header::Header;

/// Decodes `jpeg` into `pixels` (one byte per 8x8 luma block, reused across
/// frames) when it is a baseline gray or YCbCr JPEG of at least `min_width` x
/// `min_height` pixels; `Ok(None)` (nothing decoded) for anything else.
pub fn decode_dc_luma(
    jpeg: &[u8],
    pixels: &mut Vec<u8>,
    min_width: u32,
    min_height: u32,
) -> Result<Option<Reduced>, ScanError> {
    decode_reduced(jpeg, pixels, false, min_width, min_height)
}

/// Like [`decode_dc_luma`] at a quarter of the size: one byte per 4x4 luma
/// quadrant (the quadrant's exact mean, from the 25 coefficients whose
/// cosines do not cancel over 4 samples; still no IDCT).
pub fn decode_quarter_luma(
    jpeg: &[u8],
    pixels: &mut Vec<u8>,
    min_width: u32,
    min_height: u32,
) -> Result<Option<Reduced>, ScanError> {
    decode_reduced(jpeg, pixels, true, min_width, min_height)
}

/// For a pipeline working at `work_width` x `work_height`: the 8x reduced
/// decode ([`decode_dc_luma`]) when the frame is at least 8x that on both
/// axes, else the 4x one ([`decode_quarter_luma`]) when it is at least 4x,
/// else `Ok(None)`. The headers are parsed once.
pub fn decode_for_work(
    jpeg: &[u8],
    pixels: &mut Vec<u8>,
    work_width: u32,
    work_height: u32,
) -> Result<Option<Reduced>, ScanError> {
    let Some(header) = Header::parse(jpeg) else {
        return Ok(None);
    };
    let at_least = |scale: usize| {
        header.width >= scale * work_width as usize && header.height >= scale * work_height as usize
    };
    if at_least(8) {
        scan::decode(&header, jpeg, pixels, false).map(Some)
    } else if at_least(4) {
        scan::decode(&header, jpeg, pixels, true).map(Some)
    } else {
        Ok(None)
    }
}

/// Walks the whole entropy-coded scan of a baseline JPEG (every coefficient
/// of every component, restart markers, the end marker) and fails if any of
/// it is damaged; `Ok(false)` when the file is outside this decoder's scope
/// (progressive, arithmetic, 12-bit, ...) and was not checked. `scratch` is
/// reused across calls (one byte per 8x8 luma block).
pub fn check_entropy_data(jpeg: &[u8], scratch: &mut Vec<u8>) -> Result<bool, ScanError> {
    decode_dc_luma(jpeg, scratch, 0, 0).map(|decoded| decoded.is_some())
}

fn decode_reduced(
    jpeg: &[u8],
    pixels: &mut Vec<u8>,
    quarter: bool,
    min_width: u32,
    min_height: u32,
) -> Result<Option<Reduced>, ScanError> {
    let Some(header) = Header::parse(jpeg) else {
        return Ok(None);
    };
    if header.width < min_width as usize || header.height < min_height as usize {
        return Ok(None);
    }
    scan::decode(&header, jpeg, pixels, quarter).map(Some)
}
