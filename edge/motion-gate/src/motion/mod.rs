//! The pixel half of the gate: how much of a frame changed against a running
//! background. Pure computation, no I/O, no allocation after the first frame
//! of a given size.
//!
//! Per frame:
//! 1. **grayscale + downscale** in one pass: each work pixel is the area
//!    average of its source block; gray input (the gate's luma-only decode)
//!    is averaged as is, RGB input as luma = (77 R + 150 G + 29 B) / 256 (BT.601);
//! 2. **box blur** of radius `blur_radius` (separable, edges replicated);
//! 3. **difference** against the background `B` (8.8 fixed point), optionally
//!    minus the mean difference of the whole frame (global lighting change);
//! 4. **threshold**: a pixel changed when `|I - B - mean| > threshold`;
//! 5. **area**: motion when `changed / total >= min_area`;
//! 6. **background update** `B = (1 - a) B + a I` with `a = alpha` (quantised
//!    to 1/256).
//!
//! The first frame (and the first after a size change) only initialises the
//! background and reports no motion.
//!
//! **Motion masks** (polygons in relative frame coordinates, from the camera
//! registry) are rasterised onto the work grid when the frame size is known:
//! a work pixel is masked when its source block touches a mask at all, and
//! the masked area is then grown by `blur_radius` work pixels, so that the
//! blur never carries a masked pixel's change into a counted one. Masked
//! pixels take no part in steps 3-5: not in the lighting mean, not counted
//! as changed, and `min_area` is a fraction of the *unmasked* pixels.
//!
//! [`MotionDetector`] runs the steps; its parameters ([`MotionConfig`]) are in
//! `config.rs`, the area-average kernels of step 1 in `blocks.rs`.
//!
//! One file on purpose: the code is the 430 lines above `mod tests`, the six
//! steps of one detector sharing its buffers; the rest are its unit tests,
//! which read best beside the steps they pin.

mod blocks;
mod config;
mod error;

pub use config::MotionConfig;
pub use error::MotionError;

use blocks::{gray_blocks, gray_blocks_dyn, luma_blocks, luma_blocks_dyn, rgb_luma};
use safecity_cameras::Polygon;
use safecity_cameras::geometry::{cover_grid, dilate};

/// A borrowed 8-bit image: gray (1 channel) or RGB (3 channels), rows packed.
#[derive(Debug, Clone, Copy)]
pub struct ImageView<'a> {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// 1 (gray) or 3 (RGB).
    pub channels: u8,
    /// `width * height * channels` bytes.
    pub data: &'a [u8],
}

/// What one frame looked like to the detector.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measurement {
    /// Work pixels over the threshold (outside the masks).
    pub changed: u32,
    /// Work pixels counted: all of them, less the masked ones.
    pub total: u32,
    /// Mean difference subtracted for lighting compensation (gray levels).
    pub lighting_offset: i32,
    /// `changed >= min_area * total` (always false on a background-initialising frame).
    pub motion: bool,
}

impl Measurement {
    /// Fraction of work pixels that changed.
    pub fn ratio(&self) -> f32 {
        if self.total == 0 {
            0.0
        } else {
            self.changed as f32 / self.total as f32
        }
    }
}

/// The running-average background detector of one camera.
#[derive(Debug, Clone)]
pub struct MotionDetector {
    config: MotionConfig,
    alpha: i32,
    min_changed: u32,
    /// Source size the buffers below are laid out for.
    source: Option<(u32, u32)>,
    work_w: usize,
    work_h: usize,
    /// Source x range of each work column: `col_start[c]..col_start[c + 1]`.
    col_start: Vec<usize>,
    /// Source y range of each work row.
    row_start: Vec<usize>,
    /// Per-byte column sums of the current block row (u16: at most 257 rows).
    acc: Vec<u16>,
    small: Vec<u8>,
    hsum: Vec<u16>,
    blurred: Vec<u8>,
    /// Background in 8.8 fixed point.
    background: Vec<u16>,
    /// Motion masks (relative coordinates).
    masks: Vec<Polygon>,
    /// Per work pixel: 1 counted, 0 masked (empty: no masks).
    counted: Vec<u8>,
    /// Work pixels counted.
    counted_total: u32,
}

impl MotionDetector {
    /// A detector with validated parameters.
    pub fn new(config: MotionConfig) -> Result<Self, MotionError> {
        Self::with_masks(config, Vec::new())
    }

    /// A detector that ignores motion inside `masks` (validated polygons in
    /// relative frame coordinates, as the camera registry gives them).
    pub fn with_masks(config: MotionConfig, masks: Vec<Polygon>) -> Result<Self, MotionError> {
        config.validate()?;
        for (index, mask) in masks.iter().enumerate() {
            mask.validate()
                .map_err(|error| MotionError::InvalidMask { index, error })?;
        }
        Ok(MotionDetector {
            alpha: config.alpha_q8(),
            config,
            min_changed: 0,
            source: None,
            work_w: 0,
            work_h: 0,
            col_start: Vec::new(),
            row_start: Vec::new(),
            acc: Vec::new(),
            small: Vec::new(),
            hsum: Vec::new(),
            blurred: Vec::new(),
            background: Vec::new(),
            masks,
            counted: Vec::new(),
            counted_total: 0,
        })
    }

    /// The masked work pixels of the current layout, row-major (`true` =
    /// masked); empty before the first frame or without masks.
    pub fn masked(&self) -> Vec<bool> {
        self.counted.iter().map(|&c| c == 0).collect()
    }

    /// The parameters.
    pub fn config(&self) -> &MotionConfig {
        &self.config
    }

    /// Forgets the background: the next frame re-initialises it.
    pub fn reset(&mut self) {
        self.source = None;
    }

    /// The blurred work image of the last frame (for inspection and tests).
    pub fn work_image(&self) -> (&[u8], usize, usize) {
        (&self.blurred, self.work_w, self.work_h)
    }

    /// The background of the last frame, rounded to gray levels.
    pub fn background(&self) -> Vec<u8> {
        self.background
            .iter()
            .map(|&b| ((u32::from(b) + 128) >> 8).min(255) as u8)
            .collect()
    }

    /// Measures one frame and learns it into the background.
    pub fn process(&mut self, image: ImageView<'_>) -> Result<Measurement, MotionError> {
        let expected = image.width as usize * image.height as usize * usize::from(image.channels);
        if !matches!(image.channels, 1 | 3) || image.data.len() != expected || expected == 0 {
            return Err(MotionError::BadImage {
                width: image.width,
                height: image.height,
                channels: image.channels,
                expected,
                actual: image.data.len(),
            });
        }
        let fresh = self.source != Some((image.width, image.height));
        if fresh {
            self.layout(image.width, image.height);
        }
        self.downscale(image, true);
        self.blur();
        let total = self.counted_total;
        if fresh {
            for (b, &p) in self.background.iter_mut().zip(&self.blurred) {
                *b = u16::from(p) << 8;
            }
            return Ok(Measurement {
                changed: 0,
                total,
                lighting_offset: 0,
                motion: false,
            });
        }
        if !self.counted.is_empty() {
            return Ok(self.measure_masked());
        }
        let offset = if self.config.compensate_lighting {
            let mut sum: i64 = 0;
            for (&b, &p) in self.background.iter().zip(&self.blurred) {
                sum += i64::from(p) - i64::from((b + 128) >> 8);
            }
            rounded_mean(sum, i64::from(total))
        } else {
            0
        };
        let threshold = i32::from(self.config.threshold);
        let alpha = self.alpha;
        let mut changed = 0u32;
        for (b, &p) in self.background.iter_mut().zip(&self.blurred) {
            let bg = i32::from(*b);
            let diff = i32::from(p) - ((bg + 128) >> 8) - offset;
            changed += u32::from(diff.abs() > threshold);
            let delta = (i32::from(p) << 8) - bg;
            *b = (bg + ((delta * alpha + 128) >> 8)) as u16;
        }
        Ok(Measurement {
            changed,
            total,
            lighting_offset: offset,
            motion: changed >= self.min_changed,
        })
    }

    /// Steps 3-6 with masks: masked pixels are learnt into the background
    /// but take no part in the mean, the count or the area.
    fn measure_masked(&mut self) -> Measurement {
        let offset = if self.config.compensate_lighting {
            let mut sum: i64 = 0;
            for ((&b, &p), &c) in self.background.iter().zip(&self.blurred).zip(&self.counted) {
                sum += (i64::from(p) - i64::from((b + 128) >> 8)) * i64::from(c);
            }
            rounded_mean(sum, i64::from(self.counted_total))
        } else {
            0
        };
        let threshold = i32::from(self.config.threshold);
        let alpha = self.alpha;
        let mut changed = 0u32;
        for ((b, &p), &c) in self
            .background
            .iter_mut()
            .zip(&self.blurred)
            .zip(&self.counted)
        {
            let bg = i32::from(*b);
            let diff = i32::from(p) - ((bg + 128) >> 8) - offset;
            changed += u32::from(diff.abs() > threshold) & u32::from(c);
            let delta = (i32::from(p) << 8) - bg;
            *b = (bg + ((delta * alpha + 128) >> 8)) as u16;
        }
        Measurement {
            changed,
            total: self.counted_total,
            lighting_offset: offset,
            motion: self.counted_total > 0 && changed >= self.min_changed,
        }
    }

    fn layout(&mut self, width: u32, height: u32) {
        let (sw, sh) = (width as usize, height as usize);
        let w = (self.config.work_width as usize).min(sw);
        // Blocks of at most 257 rows keep the u16 column sums from overflowing.
        let h = (self.config.work_height as usize)
            .max(sh.div_ceil(257))
            .min(sh);
        self.work_w = w;
        self.work_h = h;
        self.col_start = (0..=w).map(|c| c * sw / w).collect();
        self.row_start = (0..=h).map(|r| r * sh / h).collect();
        self.acc = vec![0; sw * 3];
        self.small = vec![0; w * h];
        self.hsum = vec![0; w * h];
        self.blurred = vec![0; w * h];
        self.background = vec![0; w * h];
        self.counted = if self.masks.is_empty() {
            Vec::new()
        } else {
            let xs: Vec<f64> = self
                .col_start
                .iter()
                .map(|&x| x as f64 / sw as f64)
                .collect();
            let ys: Vec<f64> = self
                .row_start
                .iter()
                .map(|&y| y as f64 / sh as f64)
                .collect();
            let covered = cover_grid(&self.masks, &xs, &ys);
            dilate(&covered, w, h, self.config.blur_radius as usize)
                .into_iter()
                .map(|masked| u8::from(!masked))
                .collect()
        };
        self.counted_total = if self.counted.is_empty() {
            (w * h) as u32
        } else {
            self.counted.iter().map(|&c| u32::from(c)).sum()
        };
        let total = f64::from(self.counted_total);
        self.min_changed = ((f64::from(self.config.min_area) * total).ceil() as u32).max(1);
        self.source = Some((width, height));
    }

    /// Grayscale and area-average into `small`.
    ///
    /// Two passes per work row, both cheap: the block's source rows are added
    /// column-wise into `acc` (u16 lanes, vectorised), then each block's
    /// column sums are weighted into luma. So each source byte costs one
    /// vector add, and only one in `block height` bytes needs scalar work.
    fn downscale(&mut self, image: ImageView<'_>, fixed_blocks: bool) {
        let ch = usize::from(image.channels);
        let stride = image.width as usize * ch;
        let w = self.work_w;
        for r in 0..self.work_h {
            let (y0, y1) = (self.row_start[r], self.row_start[r + 1]);
            let acc = &mut self.acc[..stride];
            for (a, &b) in acc
                .iter_mut()
                .zip(&image.data[y0 * stride..(y0 + 1) * stride])
            {
                *a = u16::from(b);
            }
            for y in y0 + 1..y1 {
                let row = &image.data[y * stride..(y + 1) * stride];
                for (a, &b) in acc.iter_mut().zip(row) {
                    *a += u16::from(b);
                }
            }
            let rows = (y1 - y0) as u32;
            let out = &mut self.small[r * w..(r + 1) * w];
            let uniform = self.col_start[1] * w == image.width as usize;
            if ch == 3 && uniform && fixed_blocks {
                // Equal blocks (the common 2x, 4x, 8x cases): fixed-size,
                // fully unrolled block sums.
                let count = self.col_start[1] as u32 * rows * 256;
                match self.col_start[1] {
                    2 => luma_blocks::<6>(acc, out, count),
                    4 => luma_blocks::<12>(acc, out, count),
                    8 => luma_blocks::<24>(acc, out, count),
                    _ => luma_blocks_dyn(acc, out, self.col_start[1] * 3, count),
                }
                continue;
            }
            if ch == 1 && uniform && fixed_blocks {
                // Gray (the luma decode): the same with one byte per pixel.
                let count = self.col_start[1] as u32 * rows;
                match self.col_start[1] {
                    2 => gray_blocks::<2>(acc, out, count),
                    4 => gray_blocks::<4>(acc, out, count),
                    8 => gray_blocks::<8>(acc, out, count),
                    _ => gray_blocks_dyn(acc, out, self.col_start[1], count),
                }
                continue;
            }
            for (c, o) in out.iter_mut().enumerate() {
                let (x0, x1) = (self.col_start[c], self.col_start[c + 1]);
                let block = &acc[x0 * ch..x1 * ch];
                let luma = if ch == 3 {
                    rgb_luma(block)
                } else {
                    block.iter().map(|&v| u32::from(v)).sum::<u32>() * 256
                };
                let count = (x1 - x0) as u32 * rows * 256;
                *o = ((luma + count / 2) / count).min(255) as u8;
            }
        }
    }

    /// Separable box blur of `small` into `blurred`, edges replicated.
    fn blur(&mut self) {
        let (w, h) = (self.work_w, self.work_h);
        let r = self.config.blur_radius as usize;
        if r == 0 {
            self.blurred.copy_from_slice(&self.small);
            return;
        }
        for y in 0..h {
            let src = &self.small[y * w..(y + 1) * w];
            let dst = &mut self.hsum[y * w..(y + 1) * w];
            let mut sum: u32 = 0;
            for k in 0..=2 * r {
                sum += u32::from(src[k.saturating_sub(r).min(w - 1)]);
            }
            // Window centred on x covers x - r ..= x + r (clamped).
            for (x, d) in dst.iter_mut().enumerate() {
                *d = sum as u16;
                let leave = src[x.saturating_sub(r)];
                let enter = src[(x + r + 1).min(w - 1)];
                sum = sum + u32::from(enter) - u32::from(leave);
            }
        }
        let k = (2 * r + 1) * (2 * r + 1);
        let recip = ((65536 + k / 2) / k) as u32;
        for y in 0..h {
            let out = &mut self.blurred[y * w..(y + 1) * w];
            let rows: [usize; 17] = std::array::from_fn(|i| {
                if i <= 2 * r {
                    (y + i).saturating_sub(r).min(h - 1)
                } else {
                    0
                }
            });
            for (x, o) in out.iter_mut().enumerate() {
                let mut sum = 0u32;
                for &row in &rows[..=2 * r] {
                    sum += u32::from(self.hsum[row * w + x]);
                }
                *o = ((sum * recip + 32768) >> 16).min(255) as u8;
            }
        }
    }
}

/// `sum / n` rounded to nearest, halves away from zero (0 when `n` is 0).
fn rounded_mean(sum: i64, n: i64) -> i32 {
    if n == 0 {
        return 0;
    }
    ((2 * sum + n * sum.signum()) / (2 * n)) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gray(width: u32, height: u32, data: &[u8]) -> ImageView<'_> {
        ImageView {
            width,
            height,
            channels: 1,
            data,
        }
    }

    fn config(w: u32, h: u32) -> MotionConfig {
        MotionConfig {
            work_width: w,
            work_height: h,
            blur_radius: 0,
            alpha: 0.5,
            threshold: 10,
            min_area: 0.25,
            compensate_lighting: false,
        }
    }

    #[test]
    fn rgb_is_averaged_down_with_bt601_weights() {
        // 4x2 RGB -> 2x1: left block two red + two green pixels, right block white.
        let mut data = Vec::new();
        for row in 0..2 {
            let left = if row == 0 { [255, 0, 0] } else { [0, 255, 0] };
            data.extend_from_slice(&left);
            data.extend_from_slice(&left);
            data.extend_from_slice(&[255, 255, 255]);
            data.extend_from_slice(&[255, 255, 255]);
        }
        let mut d = MotionDetector::new(config(2, 1)).expect("config");
        d.process(ImageView {
            width: 4,
            height: 2,
            channels: 3,
            data: &data,
        })
        .expect("frame");
        // left: (2*77*255 + 2*150*255) / (4*256) = 115770/1024 = 113.06 -> 113
        // right: 256*255*4/1024 = 255
        assert_eq!(d.work_image().0, &[113, 255]);
    }

    #[test]
    fn equal_and_uneven_blocks_agree() {
        // The fixed-size block path and the general one compute the same.
        let mut rng = safecity_cctv_sim::scene::SplitMix::new(5);
        let even: Vec<u8> = (0..8 * 4 * 3).map(|_| (rng.next() & 0xFF) as u8).collect();
        let mut fast = MotionDetector::new(config(4, 2)).expect("config");
        fast.process(ImageView {
            width: 8,
            height: 4,
            channels: 3,
            data: &even,
        })
        .expect("frame");
        let mut slow = MotionDetector::new(config(4, 2)).expect("config");
        slow.layout(8, 4);
        slow.downscale(
            ImageView {
                width: 8,
                height: 4,
                channels: 3,
                data: &even,
            },
            false,
        );
        assert_eq!(fast.work_image().0, &slow.small[..]);
    }

    #[test]
    fn equal_and_uneven_gray_blocks_agree() {
        let mut rng = safecity_cctv_sim::scene::SplitMix::new(6);
        for (w, h, ww, wh) in [(8, 4, 4, 2), (16, 8, 4, 2), (32, 16, 4, 2), (24, 6, 4, 2)] {
            let gray: Vec<u8> = (0..w * h).map(|_| (rng.next() & 0xFF) as u8).collect();
            let image = ImageView {
                width: w,
                height: h,
                channels: 1,
                data: &gray,
            };
            let mut fast = MotionDetector::new(config(ww, wh)).expect("config");
            fast.process(image).expect("frame");
            let mut slow = MotionDetector::new(config(ww, wh)).expect("config");
            slow.layout(w, h);
            slow.downscale(image, false);
            assert_eq!(fast.work_image().0, &slow.small[..], "{w}x{h}");
        }
    }

    #[test]
    fn non_divisible_sizes_use_uneven_blocks() {
        // 5 columns -> 2: blocks 0..2 and 2..5.
        let data = [10, 20, 30, 40, 50];
        let mut d = MotionDetector::new(config(2, 1)).expect("config");
        d.process(gray(5, 1, &data)).expect("frame");
        // (10+20)/2 = 15; (30+40+50)/3 = 40
        assert_eq!(d.work_image().0, &[15, 40]);
    }

    #[test]
    fn box_blur_replicates_edges() {
        let mut cfg = config(3, 3);
        cfg.blur_radius = 1;
        let data = [0, 0, 0, 0, 90, 0, 0, 0, 0];
        let mut d = MotionDetector::new(cfg).expect("config");
        d.process(gray(3, 3, &data)).expect("frame");
        // Every 3x3 window (edges replicated) contains the centre exactly
        // once: 90/9 = 10 everywhere.
        assert_eq!(d.work_image().0, &[10; 9]);
        let data = [9, 0, 0, 0, 0, 0, 0, 0, 0];
        d.reset();
        d.process(gray(3, 3, &data)).expect("frame");
        // Top-left window replicates the corner 4 times: 36/9 = 4; its
        // neighbours 2 times: 18/9 = 2; the centre once: 1; far cells 0.
        assert_eq!(d.work_image().0, &[4, 2, 0, 2, 1, 0, 0, 0, 0]);
    }

    #[test]
    fn first_frame_initialises_then_differences_are_counted() {
        let mut d = MotionDetector::new(config(2, 2)).expect("config");
        let first = d.process(gray(2, 2, &[100; 4])).expect("frame");
        assert_eq!(first.changed, 0);
        assert!(!first.motion);
        // One pixel +11 (> 10): changed; one +10: not (strictly greater).
        let m = d.process(gray(2, 2, &[111, 110, 100, 100])).expect("frame");
        assert_eq!(m.changed, 1);
        assert_eq!(m.total, 4);
        assert!(m.motion, "1/4 >= min_area 0.25");
        // Background moved halfway (alpha 0.5 = 128/256): 100 + 11/2 = 105.5 -> 106 (rounded), 105.
        assert_eq!(d.background(), vec![106, 105, 100, 100]);
    }

    #[test]
    fn background_converges_to_a_new_still_scene() {
        let mut cfg = config(1, 1);
        cfg.alpha = 0.25;
        let mut d = MotionDetector::new(cfg).expect("config");
        d.process(gray(1, 1, &[0])).expect("frame");
        let mut changed_frames = 0;
        for _ in 0..40 {
            if d.process(gray(1, 1, &[100])).expect("frame").changed > 0 {
                changed_frames += 1;
            }
        }
        // Differences against the rounded background: 100, 75, 56, 42, 32, 24,
        // 18, 13, then 10 (B = 23037/256 = 89.99 rounds to 90; not > 10):
        // 8 frames. (Exact arithmetic would give 100 * 0.75^8 = 10.01: one more.)
        assert_eq!(changed_frames, 8);
        assert_eq!(d.background(), vec![100]);
    }

    #[test]
    fn lighting_compensation_removes_a_global_shift() {
        let mut cfg = config(4, 1);
        cfg.compensate_lighting = true;
        let mut d = MotionDetector::new(cfg).expect("config");
        d.process(gray(4, 1, &[50, 60, 70, 80])).expect("frame");
        // Everything 30 brighter: offset 30, nothing changed.
        let m = d.process(gray(4, 1, &[80, 90, 100, 110])).expect("frame");
        assert_eq!((m.lighting_offset, m.changed), (30, 0));
        let mut plain = MotionDetector::new(config(4, 1)).expect("config");
        plain.process(gray(4, 1, &[50, 60, 70, 80])).expect("frame");
        let m = plain
            .process(gray(4, 1, &[80, 90, 100, 110]))
            .expect("frame");
        assert_eq!(m.changed, 4);
    }

    #[test]
    fn min_area_rounds_up_to_whole_pixels() {
        let mut cfg = config(10, 10);
        cfg.min_area = 0.015; // 1.5 pixels -> 2
        let mut d = MotionDetector::new(cfg).expect("config");
        let mut frame = vec![0u8; 100];
        d.process(gray(10, 10, &frame)).expect("frame");
        frame[0] = 200;
        assert!(!d.process(gray(10, 10, &frame)).expect("frame").motion);
        frame[1] = 200;
        frame[0] = 0;
        let m = d.process(gray(10, 10, &frame)).expect("frame");
        // pixel 1 new (+200) and pixel 0 back to 0 against a background of 100.
        assert_eq!(m.changed, 2);
        assert!(m.motion);
    }

    #[test]
    fn size_change_reinitialises_and_bad_buffers_are_rejected() {
        let mut d = MotionDetector::new(config(2, 2)).expect("config");
        d.process(gray(2, 2, &[0; 4])).expect("frame");
        let m = d.process(gray(4, 4, &[255; 16])).expect("frame");
        assert!(!m.motion && m.changed == 0);
        assert!(matches!(
            d.process(gray(4, 4, &[0; 15])),
            Err(MotionError::BadImage { expected: 16, .. })
        ));
    }

    fn left_half_mask() -> Polygon {
        Polygon::new(
            [[0.0, 0.0], [0.45, 0.0], [0.45, 1.0], [0.0, 1.0]]
                .into_iter()
                .map(Into::into)
                .collect(),
        )
    }

    #[test]
    fn masked_pixels_are_not_counted_nor_in_the_lighting_mean() {
        // 4x4 frame = 4x4 work image, no blur: the mask (x <= 0.45) covers
        // columns 0 and 1; min_area 0.25 of the 8 unmasked pixels = 2.
        let mut cfg = config(4, 4);
        cfg.compensate_lighting = true;
        cfg.threshold = 20;
        let mut d = MotionDetector::with_masks(cfg, vec![left_half_mask()]).expect("mask");
        let first = d.process(gray(4, 4, &[100; 16])).expect("frame");
        assert_eq!(first.total, 8, "masked pixels are not part of the total");
        let masked: Vec<bool> = d.masked();
        assert_eq!(masked.iter().filter(|&&m| m).count(), 8);
        assert!(masked[0] && masked[1] && !masked[2] && !masked[3]);
        // The masked half flickers by +100: no change counted, and the
        // lighting offset (unmasked pixels only) stays 0.
        let mut flicker = [100u8; 16];
        for row in 0..4 {
            flicker[row * 4] = 200;
            flicker[row * 4 + 1] = 200;
        }
        let m = d.process(gray(4, 4, &flicker)).expect("frame");
        assert_eq!((m.changed, m.lighting_offset, m.motion), (0, 0, false));
        // Two unmasked pixels change by +60 (the offset is then 120 / 8 = 15,
        // below the threshold of 20 for the others): motion (2 >= 0.25 x 8).
        let mut moved = flicker;
        moved[2] = 160;
        moved[3] = 160;
        let m = d.process(gray(4, 4, &moved)).expect("frame");
        assert_eq!((m.changed, m.total), (2, 8));
        assert!(m.motion);
    }

    #[test]
    fn masks_grow_by_the_blur_radius_and_bad_masks_are_refused() {
        let mut cfg = config(8, 4);
        cfg.blur_radius = 1;
        let mut d = MotionDetector::with_masks(cfg.clone(), vec![left_half_mask()]).expect("mask");
        d.process(gray(8, 4, &[0; 32])).expect("frame");
        // Columns 0..=3 touch x <= 0.45 (column 3 spans 0.375..0.5); one more for the blur.
        let row: Vec<bool> = d.masked()[..8].to_vec();
        assert_eq!(row, [true, true, true, true, true, false, false, false]);
        let bad = Polygon::new(vec![[0.0, 0.0].into(), [1.0, 1.0].into()]);
        assert!(matches!(
            MotionDetector::with_masks(cfg, vec![bad]),
            Err(MotionError::InvalidMask { index: 0, .. })
        ));
    }

    #[test]
    fn invalid_parameters_are_named() {
        let cfg = MotionConfig {
            alpha: 0.0,
            ..MotionConfig::default()
        };
        assert!(matches!(
            MotionDetector::new(cfg),
            Err(MotionError::InvalidConfig { field: "alpha", .. })
        ));
    }
}
