//! The decode loop: one scan, MCU by MCU, into one byte per luma block (8x)
//! or per 4x4 quadrant (4x), with [`Reduced`] saying what was written.

use crate::bits::Bits;
use crate::error::ScanError;
use crate::header::Header;
use crate::huffman::Huffman;
use crate::quadrant::quadrant_weights;

/// A reduced luma plane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reduced {
    /// Width (`ceil(source_width / scale)`).
    pub width: u32,
    /// Height (`ceil(source_height / scale)`).
    pub height: u32,
    /// The JPEG's width in pixels.
    pub source_width: u32,
    /// The JPEG's height in pixels.
    pub source_height: u32,
}

/// Entropy-decodes the scan of `header` into one byte per luma block
/// (`quarter`: per 4x4 quadrant).
pub(crate) fn decode(
    header: &Header,
    jpeg: &[u8],
    pixels: &mut Vec<u8>,
    quarter: bool,
) -> Result<Reduced, ScanError> {
    let out = Output::new(header, quarter);
    pixels.clear();
    pixels.resize(out.ow * out.oh, 0);
    let luma = LumaScale::new(header);
    let slots = mcu_slots(header);
    let grid = McuGrid::new(header);
    let mut reader = Bits::new(jpeg, header.data);
    let mut predictions = [0i32; 4];
    let mut restart = 0u8;
    for mcu in 0..grid.mcus {
        if mcu > 0 && mcu % grid.interval == 0 {
            reader.finish()?;
            reader.restart(restart)?;
            restart = (restart + 1) & 7;
            predictions = [0; 4];
        }
        let (mx, my) = (mcu % grid.mcu_w, mcu / grid.mcu_w);
        for slot in &slots {
            match slot.luma {
                Some((x, y)) => {
                    let diff = reader.dc(slot.dc)?;
                    let dc = predictions[slot.component] + diff;
                    predictions[slot.component] = dc;
                    let (bx, by) = (mx * grid.per_x + x, my * grid.per_y + y);
                    if !quarter {
                        reader.skip_ac(slot.ac)?;
                        out.store_block_mean(pixels, bx, by, dc, luma.q);
                        continue;
                    }
                    // Sums of the weighted coefficients by parity class.
                    let mut p = [0f32; 4];
                    p[0] = dc as f32 * luma.weights[0];
                    reader.weigh_ac(slot.ac, &luma.weights, &luma.classes, &mut p)?;
                    out.store_quadrant_means(pixels, bx, by, &p);
                }
                None => {
                    reader.skip_dc(slot.dc)?;
                    reader.skip_ac(slot.ac)?;
                }
            }
        }
    }
    reader.finish()?;
    reader.end()?;
    Ok(Reduced {
        width: out.ow as u32,
        height: out.oh as u32,
        source_width: header.width as u32,
        source_height: header.height as u32,
    })
}

/// The output plane: the frame's luma blocks, and the bytes written (one
/// per block, or per quadrant when `quarter`).
struct Output {
    /// Luma blocks per row.
    bw: usize,
    /// Luma blocks per column.
    bh: usize,
    /// Output width.
    ow: usize,
    /// Output height.
    oh: usize,
}

impl Output {
    fn new(header: &Header, quarter: bool) -> Self {
        let (bw, bh) = (header.width.div_ceil(8), header.height.div_ceil(8));
        let (ow, oh) = if quarter {
            (header.width.div_ceil(4), header.height.div_ceil(4))
        } else {
            (bw, bh)
        };
        Output { bw, bh, ow, oh }
    }

    /// 8x: block `(bx, by)`'s mean from its DC, libjpeg's 1x1 IDCT (`q`: the
    /// DC quantiser). Blocks of the MCU padding past the frame are dropped.
    #[inline]
    fn store_block_mean(&self, pixels: &mut [u8], bx: usize, by: usize, dc: i32, q: i32) {
        if bx < self.bw && by < self.bh {
            pixels[by * self.bw + bx] = (((dc * q + 4) >> 3) + 128).clamp(0, 255) as u8;
        }
    }

    /// 4x: block `(bx, by)`'s four quadrant means from the sums `p` of its
    /// weighted coefficients by parity class (see
    /// [`quadrant_weights`](super::quadrant::quadrant_weights)).
    #[inline]
    fn store_quadrant_means(&self, pixels: &mut [u8], bx: usize, by: usize, p: &[f32; 4]) {
        if bx < self.bw && by < self.bh {
            let quadrants = [
                p[0] + p[1] + p[2] + p[3],
                p[0] - p[1] + p[2] - p[3],
                p[0] + p[1] - p[2] - p[3],
                p[0] - p[1] - p[2] + p[3],
            ];
            for (i, mean) in quadrants.into_iter().enumerate() {
                let (ox, oy) = (2 * bx + (i & 1), 2 * by + (i >> 1));
                if ox < self.ow && oy < self.oh {
                    pixels[oy * self.ow + ox] = (mean + 128.5).clamp(0.0, 255.0) as u8;
                }
            }
        }
    }
}

/// The luma quantiser as the output needs it.
struct LumaScale {
    /// The DC quantiser.
    q: i32,
    /// Quadrant weights with the quantiser folded in, by zig-zag position.
    weights: [f32; 64],
    /// The parity class of each zig-zag position.
    classes: [u8; 64],
}

impl LumaScale {
    fn new(header: &Header) -> Self {
        let (_, _, _, lq) = header.components[0];
        let quant = header.quant[lq].unwrap_or([1; 64]);
        let q = quant[0];
        let (mut weights, classes) = quadrant_weights();
        for (w, &q) in weights.iter_mut().zip(&quant) {
            *w *= q as f32;
        }
        LumaScale {
            q,
            weights,
            classes,
        }
    }
}

/// One block of an MCU, in stream order: where it goes if it is luma, and
/// the tables that decode it.
struct Slot<'a> {
    /// The block's `(x, y)` within the MCU's luma blocks; `None`: chroma.
    luma: Option<(usize, usize)>,
    /// Its frame component (the index of its DC prediction).
    component: usize,
    dc: &'a Huffman,
    ac: &'a Huffman,
}

/// The blocks of one MCU in stream order (one block per MCU when the scan
/// holds a single component).
fn mcu_slots(header: &Header) -> Vec<Slot<'_>> {
    let mut slots = Vec::with_capacity(10);
    let interleaved = header.scan.len() > 1;
    for &(index, dc, ac) in &header.scan {
        let (_, h, v, _) = header.components[index];
        let (h, v) = if interleaved { (h, v) } else { (1, 1) };
        for y in 0..v {
            for x in 0..h {
                slots.push(Slot {
                    luma: (index == 0).then_some((x, y)),
                    component: index,
                    dc: header.dc[dc].as_ref().expect("checked in the scan header"),
                    ac: header.ac[ac].as_ref().expect("checked in the scan header"),
                });
            }
        }
    }
    slots
}

/// The MCU grid of the scan and its restart interval.
struct McuGrid {
    /// MCUs per row.
    mcu_w: usize,
    /// MCUs in the scan.
    mcus: usize,
    /// Luma blocks per MCU across and down.
    per_x: usize,
    per_y: usize,
    /// MCUs between restart markers (`mcus` when there are none).
    interval: usize,
}

impl McuGrid {
    fn new(header: &Header) -> Self {
        let interleaved = header.scan.len() > 1;
        let (_, lh, lv, _) = header.components[0];
        let (mcu_w, mcu_h) = if interleaved {
            let hmax = header.components.iter().map(|c| c.1).max().unwrap_or(1);
            let vmax = header.components.iter().map(|c| c.2).max().unwrap_or(1);
            (
                header.width.div_ceil(8 * hmax),
                header.height.div_ceil(8 * vmax),
            )
        } else {
            (header.width.div_ceil(8), header.height.div_ceil(8))
        };
        let (per_x, per_y) = if interleaved { (lh, lv) } else { (1, 1) };
        let mcus = mcu_w * mcu_h;
        let interval = if header.restart_interval == 0 {
            mcus
        } else {
            header.restart_interval
        };
        McuGrid {
            mcu_w,
            mcus,
            per_x,
            per_y,
            interval,
        }
    }
}
